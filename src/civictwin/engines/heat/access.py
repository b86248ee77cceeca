"""Green access: residents within a walking distance of a public green space of a minimum size.

The WHO Regional Office for Europe's indicator counts residents living within 300 m of a public green
space of at least 0.5 ha (Annerstedt van den Bosch et al. 2016; WHO Europe 2016, "Urban green spaces
and health"). WHO states the distance as a straight line; here it is walked on the twin's network:
the shortest walk from each building's door (its representative point, snapped to the nearest
walkable node, the snap counted) to any node within ``entry_m`` of a qualifying green space, with
:func:`scipy.sparse.csgraph.dijkstra` from all entrances at once (the same multi-source search that
network-based tools such as cityseer run).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

WHO_DISTANCE_M = 300.0
WHO_MIN_AREA_M2 = 5000.0


def qualifying_green(
    polygons: NDArray[np.object_], *, min_area_m2: float = WHO_MIN_AREA_M2
) -> NDArray[np.object_]:
    """Public green spaces (touching parts merged) of at least ``min_area_m2``."""
    shapes = [g for g in polygons if g is not None and not g.is_empty]
    if not shapes:
        return np.array([], dtype=object)
    merged = shapely.get_parts(shapely.union_all(np.asarray(shapes, dtype=object)))
    return np.asarray([g for g in merged if g.area >= min_area_m2], dtype=object)


def walk_distance_to_green(
    *,
    edges: gpd.GeoDataFrame,
    nodes: gpd.GeoDataFrame,
    doors: NDArray[np.object_],
    green: NDArray[np.object_],
    entry_m: float = 20.0,
    limit_m: float = WHO_DISTANCE_M,
) -> NDArray[np.float64]:
    """Walking distance (m) from each door point to the nearest qualifying green space (inf beyond ``limit_m``).

    ``edges`` need ``from_node``, ``to_node``, ``length_m`` and ``walk``; ``nodes`` need ``node_id`` and a
    point geometry. A door inside a green space has distance 0.
    """
    result = np.full(len(doors), np.inf)
    walk = edges[edges["walk"].astype(bool)]
    if len(doors) == 0 or len(green) == 0 or walk.empty:
        return result
    node_ids = nodes["node_id"].to_numpy()
    index = pd.Series(np.arange(len(node_ids)), index=node_ids)
    graph = coo_matrix(
        (
            walk["length_m"].to_numpy(dtype=float),
            (index[walk["from_node"]].to_numpy(), index[walk["to_node"]].to_numpy()),
        ),
        shape=(len(node_ids), len(node_ids)),
    ).tocsr()
    points = nodes.geometry.to_numpy()
    area = shapely.union_all(green)
    entrances = np.flatnonzero(shapely.dwithin(points, area, entry_m))
    if entrances.size == 0:
        return result
    # distances *to* the entrances: search the reversed graph from them
    reach = dijkstra(graph.T.tocsr(), directed=True, indices=entrances, min_only=True, limit=limit_m)
    walkable = np.unique(np.concatenate([walk["from_node"], walk["to_node"]]))
    candidates = index[walkable].to_numpy()
    tree = shapely.STRtree(points[candidates])
    nearest = tree.query_nearest(doors, return_distance=True, all_matches=False)
    door_idx, hit = nearest[0]
    snap = nearest[1]
    result[door_idx] = snap + reach[candidates[hit]]
    result[shapely.intersects(doors, area)] = 0.0
    result[result > limit_m] = np.inf
    return result
