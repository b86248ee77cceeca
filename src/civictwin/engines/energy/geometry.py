"""Envelope geometry of LoD1 buildings: exposed walls by orientation, walls shared with neighbours, roofs.

Every footprint edge is a wall of the building's height. A wall is shared (adiabatic, no heat flow,
no windows) up to the height of the neighbouring building whose footprint lies just outside it: a
probe point ``tolerance_m`` outside the edge's midpoint falls inside that neighbour. What remains is
exposed and is binned by the direction its outward normal faces (north, east, south, west), so solar
gains through windows can follow the real orientation of each façade. All of it is vectorised with
shapely over every edge of the city at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

PROBE_TOLERANCE_M = 0.5
"""How far outside a wall the neighbour test looks (m): OSM neighbours share nodes or nearly so."""


@dataclass(frozen=True)
class EnvelopeGeometry:
    """Per building (arrays of length n, facades n × 4 in N, E, S, W order), all in m²."""

    facade_m2: np.ndarray  # exposed wall area (windows included) per orientation
    shared_wall_m2: np.ndarray  # wall area against a neighbour, treated as adiabatic
    roof_m2: np.ndarray  # horizontal projection of the roof = footprint
    ground_m2: np.ndarray  # floor against the ground = footprint

    @property
    def exposed_wall_m2(self) -> np.ndarray:
        """Exposed wall area of each building (m²)."""
        total: np.ndarray = self.facade_m2.sum(axis=1)
        return total


def envelope_geometry(
    footprints: np.ndarray, heights_m: np.ndarray, *, tolerance_m: float = PROBE_TOLERANCE_M
) -> EnvelopeGeometry:
    """Walls, roofs and floors of each footprint (polygons in a metric CRS) with its height (m)."""
    count = len(footprints)
    oriented = shapely.orient_polygons(footprints, exterior_cw=False)
    parts, part_owner = shapely.get_parts(oriented, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, ring_of_vertex = shapely.get_coordinates(rings, return_index=True)
    same_ring = ring_of_vertex[:-1] == ring_of_vertex[1:]
    start, end = coords[:-1][same_ring], coords[1:][same_ring]
    owner = part_owner[ring_part[ring_of_vertex[:-1][same_ring]]]
    delta = end - start
    length = np.hypot(delta[:, 0], delta[:, 1])
    keep = length > 1e-6
    start, delta, length, owner = start[keep], delta[keep], length[keep], owner[keep]
    # exteriors run counter-clockwise and holes clockwise, so the right-hand normal points outwards
    normal = np.column_stack([delta[:, 1], -delta[:, 0]]) / length[:, None]
    azimuth = np.degrees(np.arctan2(normal[:, 0], normal[:, 1])) % 360.0
    probes = shapely.points(start + delta / 2 + normal * tolerance_m)
    neighbour_height = _neighbour_height(footprints, heights_m, probes, owner)
    own_height = heights_m[owner]
    shared_height = np.minimum(own_height, neighbour_height)
    exposed = length * (own_height - shared_height)
    orientation = np.rint(azimuth / 90.0).astype(int) % 4
    facade = np.zeros((count, 4))
    np.add.at(facade, (owner, orientation), exposed)
    shared = np.bincount(owner, weights=length * shared_height, minlength=count)
    footprint_area = shapely.area(footprints)
    return EnvelopeGeometry(
        facade_m2=facade, shared_wall_m2=shared, roof_m2=footprint_area, ground_m2=footprint_area
    )


def _neighbour_height(
    footprints: np.ndarray, heights_m: np.ndarray, probes: np.ndarray, owner: np.ndarray
) -> np.ndarray:
    """Per probe: the tallest other building it falls in (m), 0 where none."""
    tree = shapely.STRtree(footprints)
    probe_index, building_index = tree.query(probes, predicate="intersects")
    other = building_index != owner[probe_index]
    result = np.zeros(len(probes))
    np.maximum.at(result, probe_index[other], heights_m[building_index[other]])
    return result


def flat_roof_pv_area(footprints: np.ndarray, *, setback_m: float) -> np.ndarray:
    """Roof area (m²) left for modules on a flat LoD1 roof once a ``setback_m`` strip along every edge
    (fire access, parapets) is removed: the footprint shrunk inwards, 0 for roofs too narrow."""
    shrunk = shapely.buffer(footprints, -setback_m, join_style="mitre")
    return np.asarray(shapely.area(shrunk), dtype=float)
