"""Analysis zones and what they hold: people, a jobs proxy, POIs, green space and transit service.

Zones are H3 cells covering the area (every cell that overlaps it) at a configurable resolution, or
the user's own polygons. Buildings, POIs and stops count in the zone holding their centroid; green
area is the overlap of the green polygons with each zone, where green polygons overlap counted once.
With a population grid, people the grid put on buildable land (no homes in their cell) and every other
numeric column of a grid source (as ``<source>_<column>``) reach the zones by area: a zone gets a polygon's value times
the share of the polygon's area inside it.
"""

from __future__ import annotations

import geopandas as gpd
import h3
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from civictwin.geometry import WGS84, reproject
from civictwin.sources.osm import POI_KEYS

NON_JOB_USES = frozenset({"residential", "ancillary", "agricultural"})


def h3_zones(area_wgs84: BaseGeometry, resolution: int, crs: str) -> gpd.GeoDataFrame:
    """H3 cells overlapping the area, as polygons in ``crs`` with ``zone_id`` = the H3 index."""
    shape = h3.geo_to_h3shape(area_wgs84.__geo_interface__)
    cells = sorted(h3.h3shape_to_cells_experimental(shape, resolution, contain="overlap"))
    polygons = np.array(
        [shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)]) for c in cells], dtype=object
    )
    return gpd.GeoDataFrame({"zone_id": cells}, geometry=reproject(polygons, WGS84, crs), crs=crs)


def polygon_zones(polygons: gpd.GeoDataFrame, id_column: str | None) -> gpd.GeoDataFrame:
    """User zones: their id column (or row numbers) as ``zone_id``."""
    ids = (
        polygons[id_column].astype(str)
        if id_column
        else pd.Series([f"zone_{i}" for i in range(1, len(polygons) + 1)], index=polygons.index)
    )
    return gpd.GeoDataFrame(
        {"zone_id": ids.to_numpy()}, geometry=polygons.geometry.to_numpy(), crs=polygons.crs
    )


def _zone_of_points(zones: gpd.GeoDataFrame, points: npt.NDArray[np.object_]) -> npt.NDArray[np.float64]:
    """Index of the zone holding each point within its interior (NaN: none; the lowest index when
    several zones do): one STR-tree query of the zones against the points, without a spatial join's
    frames."""
    zone_idx, point_idx = shapely.STRtree(points).query(zones.geometry.to_numpy(), predicate="contains")
    zone = np.full(len(points), np.inf)
    np.minimum.at(zone, point_idx, zone_idx)
    zone[np.isinf(zone)] = np.nan
    return zone


def _sum_in_zones(
    zones: gpd.GeoDataFrame, zone: npt.NDArray[np.float64], values: pd.Series | float
) -> pd.Series:
    """``values`` summed per zone, given the zone of each value (:func:`_zone_of_points`; NaN: none)."""
    series = values if isinstance(values, pd.Series) else pd.Series(values, index=range(len(zone)))
    summed = pd.Series(series.to_numpy(), index=zone).groupby(level=0).sum()
    return summed.reindex(zones.index, fill_value=0)


def summarise_zones(
    zones: gpd.GeoDataFrame,
    *,
    buildings: gpd.GeoDataFrame | None,
    residential_floor_m2: pd.Series | None,
    pois: gpd.GeoDataFrame | None,
    green: gpd.GeoDataFrame | None,
    stops: gpd.GeoDataFrame | None,
    stop_peak_departures: pd.Series | None,
    population_land: gpd.GeoDataFrame | None = None,
    grid_values: dict[str, gpd.GeoDataFrame] | None = None,
) -> gpd.GeoDataFrame:
    """Zones with population, jobs proxy, POI counts per category, green area and transit service.

    ``population_land``: polygons with a ``population`` column (people on open land) added to the
    zones' population by area; ``grid_values``: per grid source, cells whose numeric columns become
    ``<source>_<column>``.
    """
    out = zones.reset_index(drop=True).copy()
    out["area_m2"] = out.geometry.area.round(1)
    if buildings is not None and residential_floor_m2 is not None:
        zone = _zone_of_points(out, shapely.centroid(buildings.geometry.to_numpy()))
        out["population"] = _sum_in_zones(out, zone, buildings["population_est"].reset_index(drop=True))
        job_floor = (buildings["floor_area_m2"] - residential_floor_m2).where(
            ~buildings["use"].isin(NON_JOB_USES), 0
        )
        out["jobs_proxy_m2"] = _sum_in_zones(out, zone, job_floor.reset_index(drop=True)).round(1)
    else:
        out["population"] = 0.0
        out["jobs_proxy_m2"] = 0.0
    poi_zone = (  # found once for every POI, then counted per category
        _zone_of_points(out, pois.geometry.to_numpy()) if pois is not None and len(pois) else None
    )
    for key in POI_KEYS:
        if pois is not None and poi_zone is not None:
            mask = (pois["category"] == key).to_numpy()
            out[f"poi_{key}"] = _sum_in_zones(out, poi_zone[mask], 1.0).astype(int)
        else:
            out[f"poi_{key}"] = 0
    out["green_m2"] = _green_area(out, green)
    if stops is not None and len(stops):
        stop_zone = _zone_of_points(out, stops.geometry.to_numpy())
        out["transit_stops"] = _sum_in_zones(out, stop_zone, 1.0).astype(int)
        peak = stop_peak_departures.reset_index(drop=True) if stop_peak_departures is not None else 0.0
        out["transit_departures_peak_hour"] = _sum_in_zones(out, stop_zone, peak).astype(int)
    else:
        out["transit_stops"] = 0
        out["transit_departures_peak_hour"] = 0
    if population_land is not None and len(population_land):
        out["population"] = (
            out["population"] + areal_sums(out, population_land[["population", "geometry"]])["population"]
        )
    for source, cells in (grid_values or {}).items():
        for column, values in areal_sums(out, cells).items():
            out[f"{source}_{column}"] = values.round(2)
    out["population"] = out["population"].astype(float).round(1)
    return out


def areal_sums(zones: gpd.GeoDataFrame, polygons: gpd.GeoDataFrame) -> pd.DataFrame:
    """Each numeric column of ``polygons`` summed per zone, weighted by the share of area inside it.

    A polygon of no area (a line, a point) counts whole in the zone it touches first.
    """
    columns = [c for c in polygons.columns if c != polygons.geometry.name]
    values = polygons[columns].astype("float64").fillna(0.0).to_numpy()
    geoms = polygons.geometry.to_numpy()
    zone_geoms = zones.geometry.to_numpy()
    poly_idx, zone_idx = shapely.STRtree(zone_geoms).query(geoms, predicate="intersects")
    areas = shapely.area(geoms)[poly_idx]
    pieces = shapely.area(shapely.intersection(geoms[poly_idx], zone_geoms[zone_idx]))
    first = ~pd.Series(poly_idx).duplicated().to_numpy()
    weight = np.where(areas > 0, pieces / np.where(areas > 0, areas, 1.0), first.astype(float))
    sums = np.zeros((len(zones), len(columns)))
    np.add.at(sums, zone_idx, values[poly_idx] * weight[:, None])
    return pd.DataFrame(sums, index=zones.index, columns=columns)


def _green_area(zones: gpd.GeoDataFrame, green: gpd.GeoDataFrame | None) -> pd.Series:
    """Green area per zone, overlapping green polygons counted once.

    Each green polygon is cut by the zones it touches (an STR-tree finds the pairs). A piece of a
    polygon that overlaps no other green polygon adds its own area; only the pieces of overlapping
    polygons (a playground inside a park) are dissolved per zone, which is where the cost lies.
    """
    if green is None or green.empty:
        return pd.Series(0.0, index=zones.index)
    green_geoms = shapely.make_valid(green.geometry.to_numpy())
    zone_geoms = zones.geometry.to_numpy()
    tree = shapely.STRtree(green_geoms)
    zone_idx, green_idx = tree.query(zone_geoms, predicate="intersects")
    pieces = shapely.intersection(zone_geoms[zone_idx], green_geoms[green_idx])
    overlapping = _overlapping(green_geoms, tree)[green_idx]
    area = np.zeros(len(zones))
    np.add.at(area, zone_idx[~overlapping], shapely.area(pieces[~overlapping]))
    if overlapping.any():
        _add_dissolved_areas(area, zone_idx[overlapping], pieces[overlapping])
    return pd.Series(area, index=zones.index).round(1)


def _overlapping(geoms: npt.NDArray[np.object_], tree: shapely.STRtree) -> npt.NDArray[np.bool_]:
    """Which geometries share interior area with another one (touching along an edge does not count)."""
    first, second = tree.query(geoms, predicate="intersects")
    pairs = first < second
    first, second = first[pairs], second[pairs]
    shared = shapely.relate_pattern(geoms[first], geoms[second], "T********")
    flags = np.zeros(len(geoms), dtype=bool)
    flags[first[shared]] = True
    flags[second[shared]] = True
    return flags


def _add_dissolved_areas(
    area: npt.NDArray[np.float64], zone_idx: npt.NDArray[np.intp], pieces: npt.NDArray[np.object_]
) -> None:
    """Add to ``area`` (m², per zone) the area of each zone's ``pieces`` unioned: one GEOS union per
    zone, of its pieces in their given order (what a dissolve by zone does, without its frames)."""
    order = np.argsort(zone_idx, kind="stable")
    zones, starts = np.unique(zone_idx[order], return_index=True)
    groups = np.split(pieces[order], starts[1:])
    area[zones] += [shapely.area(shapely.union_all(group)) for group in groups]
