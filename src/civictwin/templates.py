"""The commented ``twin.toml`` template written by ``civictwin init``."""

from __future__ import annotations

_TEMPLATE = """\
# civictwin configuration. Paths are relative to this file.
# Reference: docs/configuration.md

[twin]
name = "My district"
description = "What this twin is for."
# crs = "EPSG:3067"        # metric CRS for storage; default: the UTM zone of the area
# store = "twin.duckdb"    # default: <name>.duckdb next to this file

[area]
# Exactly one of:
bbox = [24.935, 60.164, 24.953, 60.179]     # [min_lon, min_lat, max_lon, max_lat], WGS84
# polygon = "area.geojson"                  # a file with the area polygon(s)
# source = "districts"                      # a named polygon inside a vector source...
# where = { name = "Kallio" }               # ...picked by an attribute

[zones]
kind = "h3"          # "h3" cells, or "polygons" from a vector source
resolution = 9       # H3 resolution (9: cells of about 0.1 km²)
# source = "districts"
# id_column = "code"

[population]
# Used when no grid is given: residents per m² of residential floor area (0.025 = 40 m² per person).
persons_per_m2 = 0.025
# Share of an untyped building's floor area counted as residential where no OSM land use says otherwise.
mixed_use_residential_share = 0.5
# grid_source = "population"   # a source of kind "grid" with observed population: everyone is placed,
# grid_column = "population"   # in homes, else on the cell's buildable land (docs/methods-population.md)

[buildings]
storey_height_m = 3.0
# default_levels = { house = 2, apartments = 5 }   # storeys where OSM has no height

# One [[sources]] block per dataset. kind: osm | gtfs | grid | vector | cityjson | citygml | dem | mobility | survey | drone,
# or from an API: ogcapi_features | wfs | sensorthings (url instead of path; `civictwin refresh` re-checks them).
# access: public | internal | restricted. steward: the person or department responsible.
[[sources]]
name = "osm"
kind = "osm"
path = "district.osm.pbf"
title = "OpenStreetMap extract"
licence = "ODbL-1.0"
publisher = "OpenStreetMap contributors"
steward = "GIS department"
access = "public"

# [[sources]]
# name = "transit"
# kind = "gtfs"
# path = "gtfs.zip"
# licence = "CC-BY-4.0"
# publisher = "Transit agency"
# steward = "Mobility department"

# [[sources]]
# name = "population"
# kind = "grid"
# path = "population_grid.gpkg"
# layer = "grid"                 # for multi-layer files
# cell_size_m = 250              # when the cells are points at their centres: the side of a cell
# h3_column = "h3"               # or: a CSV of H3 cell ids and values, no geometry needed
# columns = ["population"]       # default: every numeric column (each reaches the zones)
# licence = "CC-BY-4.0"
# publisher = "Statistics office"
# steward = "Statistics department"
# access = "internal"

# [sociodemographics]            # a grid's or statistical areas' columns on the zones, and the equity view
# source = "population"          # a grid or vector source
# weighting = "residents"        # or "area" (docs/methods-sociodemographics.md)
# intensive = ["median_income"]  # averages and rates; every other numeric column is a count
# equity_by = ["median_income"]  # break each comparison's zone values down by classes of these columns
# car_availability = "car_share" # an intensive share (0-1) of residents with a car, for the mode choice

# [modal_split]                  # an observed split of the residents' trips: `calibrate run` fits the
# shares = { car = 0.25, pt = 0.3, bike = 0.1, walk = 0.35 }   # mode choice's constants to it (an example)
# source = "Travel survey 2024, residents of the area, weekday trips"   # docs/methods-calibration.md

# [[sources]]
# name = "trees"
# kind = "vector"
# path = "trees.csv"
# x = "lon"                      # CSV: x/y columns, or wkt = "geometry"
# y = "lat"
# crs = "EPSG:4326"              # for files that declare no CRS
# licence = "CC0-1.0"
# publisher = "Parks department"
# steward = "Parks department"

# [[sources]]                    # from the city's data platform: ogcapi_features | wfs | sensorthings
# name = "street_trees"
# kind = "ogcapi_features"
# url = "https://data.example.org/ogcapi"
# collection = "trees"           # wfs: typename = "..."
# token_env = "CITY_API_TOKEN"   # the NAME of an environment variable, never the token itself
# licence = "CC-BY-4.0"
# publisher = "City of Example"
# steward = "Urban data platform team"
"""


def twin_template() -> str:
    """The commented template for a new ``twin.toml``."""
    return _TEMPLATE
