"""Resolve a scenario's shared selections: streets to network edge ids, buildings to building rows.

A selection that matches nothing is an error, never a silent no-op: every listed name, OSM id and edge
id must match at least one edge, a polygon must contain at least one selected edge, and a building
selection must match at least one building. Every engine resolves selections here, so a street or a
set of buildings means the same thing to traffic, energy and heat.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.errors import GEOSException
from shapely.geometry.base import BaseGeometry

from civictwin.errors import ScenarioError
from civictwin.geometry import WGS84, gdal_read_options, reproject
from civictwin.i18n import DEFAULT, N_, Language, language
from civictwin.scenarios.spec import BuildingSelection, Scenario, StreetSelection, intervention_label


def select_edges(
    edges: gpd.GeoDataFrame,
    selection: StreetSelection,
    *,
    crs: str,
    base_dir: Path,
    lang: Language | None = None,
) -> list[str]:
    """The ids of the edges ``selection`` matches, in table order.

    Raises :class:`ScenarioError` (``field`` = the selection key) when a name, OSM id or edge id matches
    no edge, or when the whole selection is empty; its message in ``lang`` (English by default: a
    citizen's proposal is checked in the page's language).
    """
    reader = lang or language(DEFAULT)
    ids = edges["edge_id"].astype(str)
    mask = pd.Series(False, index=edges.index)
    listed = bool(selection.streets or selection.osm_ids or selection.edge_ids)
    if selection.streets:
        mask |= _match_names(edges, selection.streets, lang=reader)
    if selection.osm_ids:
        mask |= _match_values(edges["osm_id"], selection.osm_ids, key="osm_ids",
                              message=N_("no OSM way {values} in the network"), lang=reader)  # fmt: skip
    if selection.edge_ids:
        mask |= _match_values(ids, selection.edge_ids, key="edge_ids",
                              message=N_("no edge {values} in the network"), lang=reader)  # fmt: skip
    if selection.polygon:
        area = load_polygon(selection.polygon, crs=crs, base_dir=base_dir)
        inside = edges_inside(edges, area)
        mask = (mask & inside) if listed else inside
        if not mask.any():
            message = (
                N_("the polygon does not contain the selected streets")
                if listed
                else N_("the polygon does not contain any edge")
            )
            raise ScenarioError(reader.gettext(message), field="polygon")
    return [str(v) for v in ids[mask]]


def resolve_intervention(edges: gpd.GeoDataFrame, scenario: Scenario, index: int, *, crs: str) -> list[str]:
    """The edge ids intervention ``index`` of ``scenario`` selects; errors name file and intervention.

    Interventions without a street selection (modal filters, demand changes) select nothing.
    """
    intervention = scenario.interventions[index]
    if not isinstance(intervention, StreetSelection):
        return []
    try:
        return select_edges(edges, intervention, crs=crs, base_dir=scenario.base_dir)
    except ScenarioError as exc:
        field = intervention_label(index, intervention) + (f": {exc.field}" if exc.field else "")
        raise ScenarioError(exc.message, path=scenario.origin, field=field) from None


def nearest_node(edges: gpd.GeoDataFrame, at: tuple[float, float], radius_m: float, *, crs: str) -> int:
    """The network node (an edge end) nearest to the point ``at`` (lon, lat), within ``radius_m``."""
    point = reproject(np.array([shapely.Point(*at)], dtype=object), WGS84, crs)[0]
    geoms = edges.geometry.to_numpy()
    starts = shapely.get_point(geoms, 0)
    ends = shapely.get_point(geoms, -1)
    nodes = np.concatenate([edges["from_node"].to_numpy(), edges["to_node"].to_numpy()])
    dist = shapely.distance(np.concatenate([starts, ends]), point)
    best = int(np.argmin(dist)) if len(dist) else -1
    if best < 0 or dist[best] > radius_m:
        raise ScenarioError(f"no network node within {radius_m:g} m of the point", field="at")
    return int(nodes[best])


def select_buildings(
    buildings: gpd.GeoDataFrame,
    selection: BuildingSelection,
    *,
    crs: str,
    base_dir: Path,
    zones: gpd.GeoDataFrame | None = None,
    year_column: str = "construction_year",
) -> pd.Series:
    """Which rows of ``buildings`` (``buildings_3d``, in the metric ``crs``) ``selection`` matches.

    Every OSM id listed must be a building of the twin (one line naming the missing ones).

    A building's place is its footprint's representative point (always inside the footprint). ``zones``
    (``zone_id`` + polygon, same CRS) is needed when the selection names zones; ``year_column`` holds
    construction years (missing years never match a period). Raises :class:`ScenarioError`
    (``field`` = the key) when a zone id or use class does not exist, a needed column is missing, or
    nothing is selected.
    """
    mask = pd.Series(True, index=buildings.index)
    points = buildings.geometry.representative_point()
    if selection.zones:
        mask &= _in_zones(points, selection.zones, zones)
    if selection.polygon:
        area = load_polygon(selection.polygon, crs=crs, base_dir=base_dir)
        shapely.prepare(area)
        mask &= pd.Series(shapely.covers(area, points.to_numpy()), index=buildings.index)
    if selection.osm_ids:
        mask &= _match_values(
            buildings["osm_id"],
            selection.osm_ids,
            key="osm_ids",
            message=N_("no building with OSM id {values} in the twin"),
        )
    if selection.uses:
        mask &= _match_values(
            buildings["use"].astype(str),
            selection.uses,
            key="uses",
            message=N_("no building use {values} in the buildings"),
        )
    if selection.built_from is not None or selection.built_to is not None:
        if year_column not in buildings:
            raise ScenarioError(
                f"the buildings have no construction year (column '{year_column}')", field="built_from"
            )
        years = pd.to_numeric(buildings[year_column], errors="coerce")
        low = selection.built_from if selection.built_from is not None else -np.inf
        high = selection.built_to if selection.built_to is not None else np.inf
        mask &= years.between(low, high).fillna(False)
    if not mask.any():
        raise ScenarioError(f"the selection ({selection.describe()}) matches no building", field="buildings")
    return mask


def _in_zones(points: gpd.GeoSeries, zone_ids: list[str], zones: gpd.GeoDataFrame | None) -> pd.Series:
    if zones is None:
        raise ScenarioError("selecting buildings by zone needs the twin's zones", field="zones")
    ids = zones["zone_id"].astype(str)
    missing = [z for z in zone_ids if z not in set(ids)]
    if missing:
        raise ScenarioError(f"no zone {', '.join(map(repr, missing))} in the twin", field="zones")
    chosen = zones.loc[ids.isin(zone_ids).to_numpy()].geometry.union_all()
    shapely.prepare(chosen)
    return pd.Series(shapely.covers(chosen, points.to_numpy()), index=points.index)


def edges_inside(edges: gpd.GeoDataFrame, area: BaseGeometry) -> pd.Series:
    """Whether each edge's midpoint lies inside ``area`` (so edges merely touching it stay out)."""
    mid = shapely.line_interpolate_point(edges.geometry.to_numpy(), 0.5, normalized=True)
    shapely.prepare(area)
    return pd.Series(shapely.contains(area, mid) | shapely.touches(area, mid), index=edges.index)


def load_polygon(value: str, *, crs: str, base_dir: Path) -> BaseGeometry:
    """A polygon from WKT (WGS84) or a vector file (its own CRS; WGS84 if undeclared), in ``crs``."""
    text = value.strip()
    if text.upper().startswith(("POLYGON", "MULTIPOLYGON")):
        try:
            geom = shapely.from_wkt(text)
        except GEOSException as exc:
            raise ScenarioError(f"not valid WKT: {exc}", field="polygon") from None
        geom = reproject(np.array([geom], dtype=object), WGS84, crs)[0]
    else:
        geom = _polygon_from_file(base_dir / text if not Path(text).is_absolute() else Path(text), crs)
    if geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise ScenarioError("expected a polygon or multipolygon", field="polygon")
    return shapely.make_valid(geom) if not geom.is_valid else geom


def _polygon_from_file(path: Path, crs: str) -> BaseGeometry:
    if not path.is_file():
        raise ScenarioError(f"polygon file {path} not found (nor is the value WKT)", field="polygon")
    try:
        frame = gpd.read_file(path, **gdal_read_options(path))
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise ScenarioError(f"cannot read polygon file {path}: {exc}", field="polygon") from None
    if frame.empty:
        raise ScenarioError(f"polygon file {path} holds no features", field="polygon")
    if frame.crs is None:
        frame = frame.set_crs(WGS84)
    geom: BaseGeometry = frame.to_crs(crs).geometry.union_all()
    return geom


def _match_names(edges: gpd.GeoDataFrame, names: list[str], *, lang: Language) -> pd.Series:
    normalised = edges["name"].fillna("").astype(str).str.strip().str.casefold()
    wanted = {n.strip().casefold(): n for n in names}
    missing = [original for key, original in wanted.items() if not (normalised == key).any()]
    if missing:
        message = lang.gettext("no street named {names} in the network")
        raise ScenarioError(message.format(names=", ".join(map(repr, missing))), field="streets")
    matched: pd.Series = normalised.isin(list(wanted))
    return matched


def _match_values(
    column: pd.Series,
    values: list[int] | list[str],
    *,
    key: str,
    message: str,
    lang: Language | None = None,
) -> pd.Series:
    """Where ``column`` holds one of ``values``; ScenarioError (``message``, a message id with
    ``{values}``, in ``lang``) naming the values it lacks."""
    present = set(column.tolist())
    missing = [v for v in values if v not in present]
    if missing:
        text = (lang or language(DEFAULT)).gettext(message)
        raise ScenarioError(text.format(values=", ".join(map(repr, missing))), field=key)
    matched: pd.Series = column.isin(values)
    return matched
