"""Transit stops tied to the walking network: each stop snapped to its nearest walkable edge.

Accessibility and zone statistics reach a stop through the network, so every stop needs the edge a
rider walks along to get there. :func:`snap_stops` is a pure function of the stored ``transit_stops``
and ``network_edges`` tables (see docs/data-model.md); its result is ``transit_stops_snapped``.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

EDGE_ID = "edge_id"
SNAP_DISTANCE = "snap_distance_m"
UNSNAPPED = "unsnapped"
"""Key in the result's ``attrs``: how many stops found no walkable edge within ``max_distance_m``."""


def snap_stops(
    stops: gpd.GeoDataFrame, edges: gpd.GeoDataFrame, *, max_distance_m: float = 250.0
) -> gpd.GeoDataFrame:
    """The stops with ``edge_id`` and ``snap_distance_m`` (metres) of the nearest edge with ``walk`` true.

    Both frames must share one projected CRS in metres (the twin's CRS). A stop farther than
    ``max_distance_m`` from every walkable edge, or without a geometry, keeps a null ``edge_id`` and
    distance; their number is in ``result.attrs["unsnapped"]``. Directed edges come in pairs with one
    geometry (``12_0`` and ``-12_0``), so ties are common: the lexicographically smallest ``edge_id``
    among the equally near edges wins, which makes the result independent of row order.
    """
    _check_inputs(stops, edges, max_distance_m)
    result = gpd.GeoDataFrame(stops.copy(), geometry=stops.geometry.name, crs=stops.crs)
    edge_ids = np.full(len(stops), None, dtype=object)
    distances = np.full(len(stops), np.nan)
    walkable = edges.loc[edges["walk"].fillna(False).astype(bool), [EDGE_ID, edges.geometry.name]]
    geometry = stops.geometry.to_numpy()
    present = ~(pd.isna(geometry) | stops.geometry.is_empty.to_numpy())
    if not walkable.empty and present.any():
        positions = np.flatnonzero(present)
        points = gpd.GeoDataFrame({"_pos": positions}, geometry=geometry[present], crs=stops.crs)
        nearest = _nearest(points, walkable, max_distance_m)
        edge_ids[nearest["_pos"].to_numpy()] = nearest[EDGE_ID].to_numpy()
        distances[nearest["_pos"].to_numpy()] = nearest[SNAP_DISTANCE].to_numpy()
    result[EDGE_ID] = pd.array(edge_ids, dtype="string")
    result[SNAP_DISTANCE] = distances
    result.attrs[UNSNAPPED] = int(result[EDGE_ID].isna().sum())
    return result


def _nearest(points: gpd.GeoDataFrame, walkable: gpd.GeoDataFrame, max_distance_m: float) -> pd.DataFrame:
    """For each point (``_pos``) within reach: the chosen nearest edge and its distance."""
    joined = gpd.sjoin_nearest(
        points,
        walkable.rename(columns={EDGE_ID: "_edge"}),
        how="inner",
        max_distance=max_distance_m,
        distance_col=SNAP_DISTANCE,
    )
    # Compare distances to the micrometre so an edge and its reverse twin tie despite rounding noise.
    joined = joined.assign(_rank=joined[SNAP_DISTANCE].round(6))
    joined = joined.sort_values(["_pos", "_rank", "_edge"], kind="stable")
    best = joined.drop_duplicates("_pos")
    return pd.DataFrame(best.rename(columns={"_edge": EDGE_ID})[["_pos", EDGE_ID, SNAP_DISTANCE]])


def _check_inputs(stops: gpd.GeoDataFrame, edges: gpd.GeoDataFrame, max_distance_m: float) -> None:
    if not max_distance_m > 0:
        raise ValueError(f"max_distance_m must be positive, got {max_distance_m}")
    missing = [c for c in (EDGE_ID, "walk") if c not in edges.columns]
    if missing:
        raise ValueError(f"edges lack column(s) {', '.join(missing)} (expected network_edges)")
    if stops.crs is None or edges.crs is None or not CRS.from_user_input(stops.crs).equals(edges.crs):
        raise ValueError(f"stops ({stops.crs}) and edges ({edges.crs}) must share one CRS")
    crs = CRS.from_user_input(stops.crs)
    if not crs.is_projected or crs.axis_info[0].unit_name not in ("metre", "meter"):
        raise ValueError(f"snapping needs a projected CRS in metres, got {stops.crs}")
