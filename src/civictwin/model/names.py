"""Find streets and places by (part of) their name, ignoring case and accents, with suggestions.

A user closing a street needs its edge ids; a user picking a park needs to know which of three
"Esplanadi" polygons is meant. Streets are the ``network_edges`` sharing one name, grouped: their
edge ids, OSM way ids and a point on them. Places are the named rows of the other layers (POIs,
green, water, land use, buildings), each with its OSM id and a point. A name matches when the folded
query (case-folded, accents removed: "aleksanterin" finds "Aleksanterinkatu", "cafe" finds "Café")
is part of the folded name. When nothing matches, the closest names by :mod:`difflib`'s similarity
ratio (at least :data:`SUGGESTION_CUTOFF`) are suggested.
"""

from __future__ import annotations

import difflib
import unicodedata
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely

from civictwin.geometry import WGS84, reproject
from civictwin.store.base import GEOMETRY, Store

STREETS = "network_edges"
PLACE_TABLES = ("pois", "green", "water", "landuse", "buildings_3d")
SUGGESTION_CUTOFF = 0.6
"""Least :class:`difflib.SequenceMatcher` ratio (0–1) for a name to be suggested."""
MAX_SUGGESTIONS = 5


@dataclass(frozen=True)
class NamedFeature:
    """One street (all edges of that name) or one named place, with a WGS84 point on it."""

    table: str
    name: str
    osm_ids: list[int]
    """OSM ids: a street's ways, or a place's own id (a node, way or relation: ``osm_type``)."""
    osm_type: str | None
    edge_ids: list[str]
    """Directed edge ids of a street (empty for places)."""
    lon: float
    lat: float


@dataclass(frozen=True)
class NameSearch:
    """What a search found, and the closest names when it found nothing."""

    query: str
    matches: list[NamedFeature]
    suggestions: list[str]


def fold(text: str) -> str:
    """``text`` case-folded and without accents ("Ålandsgatan" → "alandsgatan")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).strip()


def find_by_name(store: Store, query: str) -> NameSearch:
    """Streets and places whose name contains ``query`` (case and accents ignored), streets first."""
    wanted = fold(query)
    named = _named_layers(store)
    matches: list[NamedFeature] = []
    names: set[str] = set()
    for table, frame in named.items():
        names.update(str(n) for n in frame["name"].dropna())
        hits = frame[frame["name"].map(lambda n: wanted in fold(str(n)))]
        if hits.empty:
            continue
        matches += _streets(hits, store.crs) if table == STREETS else _places(table, hits, store.crs)
    suggestions = [] if matches else _suggestions(wanted, names)
    return NameSearch(query=query, matches=matches, suggestions=suggestions)


def _named_layers(store: Store) -> dict[str, gpd.GeoDataFrame]:
    """Each searched layer that has names: only its named rows, with name, ids and geometry."""
    info = {t.name: t for t in store.tables()}
    layers: dict[str, gpd.GeoDataFrame] = {}
    for table in (STREETS, *PLACE_TABLES):
        if table not in info or "name" not in info[table].columns or not info[table].has_geometry:
            continue
        columns = [c for c in ("name", "osm_id", "osm_type", "edge_id", GEOMETRY) if c in info[table].columns]
        frame = store.read_frame(table, columns=columns)
        layers[table] = frame[frame["name"].notna() & (frame["name"].astype(str).str.strip() != "")]
    return layers


def _streets(edges: gpd.GeoDataFrame, crs: str) -> list[NamedFeature]:
    """One entry per street name: its edge and way ids, and a point on its edges."""
    streets = []
    for name, group in edges.groupby("name", sort=True):
        lon, lat = _point(shapely.union_all(group.geometry.to_numpy()), crs)
        streets.append(
            NamedFeature(
                table=STREETS,
                name=str(name),
                osm_ids=sorted({int(w) for w in group["osm_id"].dropna()}) if "osm_id" in group else [],
                osm_type="way",
                edge_ids=sorted(str(e) for e in group["edge_id"]),
                lon=lon,
                lat=lat,
            )
        )
    return streets


def _places(table: str, rows: gpd.GeoDataFrame, crs: str) -> list[NamedFeature]:
    """One entry per named row, sorted by name."""
    places = []
    for row in rows.sort_values("name").itertuples():
        lon, lat = _point(row.geometry, crs)
        osm_id = getattr(row, "osm_id", None)
        ids = [int(osm_id)] if osm_id is not None and osm_id == osm_id else []
        osm_type = getattr(row, "osm_type", None)
        places.append(
            NamedFeature(
                table=table, name=str(row.name), osm_ids=ids, osm_type=osm_type, edge_ids=[], lon=lon, lat=lat
            )
        )
    return places


def _point(geometry: shapely.Geometry, crs: str) -> tuple[float, float]:
    """A point on ``geometry`` in WGS84 lon/lat (6 decimals): on a line the point nearest its centroid
    (the middle of a straight street), else the representative point."""
    if shapely.get_dimensions(geometry) == 1:
        on = shapely.get_point(shapely.shortest_line(geometry, shapely.centroid(geometry)), 0)
    else:
        on = shapely.point_on_surface(geometry)
    point = reproject(np.array([on], dtype=object), crs, WGS84)[0]
    return round(float(point.x), 6), round(float(point.y), 6)


def _suggestions(wanted: str, names: set[str]) -> list[str]:
    """The names closest to the folded query, best first."""
    by_fold: dict[str, str] = {}
    for name in sorted(names):
        by_fold.setdefault(fold(name), name)
    close = difflib.get_close_matches(wanted, list(by_fold), n=MAX_SUGGESTIONS, cutoff=SUGGESTION_CUTOFF)
    return [by_fold[c] for c in close]
