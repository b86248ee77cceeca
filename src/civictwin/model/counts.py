"""Traffic counting points matched to the twin's directed network edges: which edge, which direction.

A count is only useful for calibration (and comparable with a simulation) on the directed edge it
measured. For each counting point:

1. **Street.** The drivable (car) edges within ``max_distance_m`` are candidates; only those whose
   street name matches the point's name count (names compared in capitals without spaces; a letter
   the source lost, U+FFFD, matches any letter; an abbreviation ``KIRKKOT.`` matches any ending;
   ``A + B`` names either street). The nearest matching segment is the street. No matching name
   within reach means no match, with the nearest street named in the reason: two Helsinki points
   (Kaivokatu and Pohjoisesplanadi) share one coordinate, and taking the nearest street would put
   the Pohjoisesplanadi count on Kaivokatu.
2. **Direction.** A street mapped as two one-way carriageways counts as two-way: the nearest segment
   of the same street heading the other way is the second carriageway. On a one-way street the
   direction that carries traffic is its only edge (the other direction gets no edge: there is none
   to count). On a two-way street, direction ``1`` is the edge heading towards the configured centre
   and ``2`` the one heading away (the heading is the edge's tangent at the point, compared with the
   direction to the centre). That convention is what the Helsinki counts themselves show: at most
   points direction 1 carries a larger share of its traffic in the morning peak than direction 2
   (the tidal flow into the centre), so each point's own peaks are checked against it (a direction
   that counted nothing at all is flagged instead). A two-way
   count without a direction (``both``) gets both edges.
3. **Doubt is flagged, not hidden.** A match is *ambiguous* when another named street lies within
   10 m of the chosen one, the street runs across the direction to the centre (``|cos| < 0.5``), the
   point is within 300 m of the centre, the point's peaks contradict the convention, or a one-way
   street has counts in both directions. Each reason is recorded with the match.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import LineString, Point

from civictwin.sources.observations.feed import CountSite

NEARBY_OTHER_STREET_M = 10.0
ACROSS_COS = 0.5
NEAR_CENTRE_M = 300.0
BOTH = "both"
INBOUND, OUTBOUND = "inbound", "outbound"


@dataclass(frozen=True)
class EdgeMatch:
    """Where one direction of a counting point was matched.

    ``edge_ids`` holds one directed edge (two for a two-way ``both`` count, none when no edge
    exists); ``distance_m`` is from the point to the street; ``heading`` is ``inbound``/``outbound``
    relative to the centre (``both`` for a two-way count).
    """

    site: str
    direction: str
    edge_ids: tuple[str, ...]
    heading: str | None
    distance_m: float | None
    street: str | None
    ambiguous: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def as_properties(self) -> dict[str, object]:
        """The match as datastream properties (plain JSON)."""
        return {
            "edge_id": self.edge_ids[0] if len(self.edge_ids) == 1 else None,
            "edge_ids": list(self.edge_ids),
            "heading": self.heading,
            "match_distance_m": None if self.distance_m is None else round(self.distance_m, 1),
            "matched_street": self.street,
            "ambiguous": self.ambiguous,
            "match_notes": list(self.reasons),
        }


def match_count_sites(
    sites: list[CountSite],
    points: gpd.GeoSeries,
    edges: gpd.GeoDataFrame,
    *,
    centre: Point,
    max_distance_m: float,
) -> list[EdgeMatch]:
    """Match every direction of every site; ``points`` (same order as ``sites``), ``edges``
    (``network_edges``) and ``centre`` are in the twin's metric CRS."""
    drivable = edges[edges["car"].fillna(False).astype(bool)].reset_index(drop=True)
    tree = shapely.STRtree(drivable.geometry.to_numpy())
    matches: list[EdgeMatch] = []
    for site, point in zip(sites, points, strict=True):
        near = tree.query(point, predicate="dwithin", distance=max_distance_m)
        if len(near) == 0:
            reason = f"no drivable edge within {max_distance_m:g} m"
            matches.extend(
                EdgeMatch(site.key, d, (), None, None, None, False, (reason,)) for d in site.directions
            )
            continue
        matches.extend(_match_site(site, point, drivable.iloc[np.sort(near)], centre, max_distance_m))
    return matches


def _match_site(
    site: CountSite, point: Point, near: gpd.GeoDataFrame, centre: Point, max_distance_m: float
) -> list[EdgeMatch]:
    segments = _segments(near, point)
    patterns = _name_patterns(site.name)
    named = [s for s in segments if _matches(patterns, s.name)] if patterns else segments
    if not named:
        nearest = (
            f" (nearest: {segments[0].name or 'an unnamed street'} at {segments[0].distance:.0f} m)"
            if segments
            else ""
        )
        reason = f"no street named like '{site.name}' within {max_distance_m:g} m{nearest}"
        return [EdgeMatch(site.key, d, (), None, None, None, False, (reason,)) for d in site.directions]
    chosen = named[0]
    reasons: list[str] = []
    rival = next(
        (
            s
            for s in segments
            if s.name
            and _normal(s.name) != _normal(chosen.name)
            and s.distance <= chosen.distance + NEARBY_OTHER_STREET_M
        ),
        None,
    )
    if rival is not None:
        reasons.append(f"another street ({rival.name}) within {NEARBY_OTHER_STREET_M:g} m")
    edges = _carriageways(
        chosen, [s for s in named if _normal(s.name) == _normal(chosen.name)], point, centre
    )
    if BOTH in site.directions:
        return [_match(site, BOTH, tuple(edges), BOTH, edges, reasons)]
    if {e.heading for e in edges.values()} == {INBOUND, OUTBOUND}:
        return _two_way(site, point, centre, edges, reasons)
    return _one_way(site, edges, reasons)


@dataclass(frozen=True)
class _Edge:
    """A candidate directed edge: its heading relative to the centre, cosine and distance."""

    cosine: float
    distance: float
    street: str

    @property
    def heading(self) -> str:
        return INBOUND if self.cosine > 0 else OUTBOUND


def _carriageways(
    chosen: _Segment, same_street: list[_Segment], point: Point, centre: Point
) -> dict[str, _Edge]:
    """The directed edges counting can be on: the chosen segment's, plus, when it is one-way, the
    nearest segment of the same street heading the other way (a dual carriageway)."""
    edges = {
        edge_id: _Edge(_cosine(line, point, centre), chosen.distance, chosen.name)
        for edge_id, line in chosen.edges.items()
    }
    if len(edges) > 1:
        return edges
    (heading,) = {e.heading for e in edges.values()}
    for other in same_street:
        if other.key == chosen.key or len(other.edges) != 1:
            continue
        ((edge_id, line),) = other.edges.items()
        candidate = _Edge(_cosine(line, point, centre), other.distance, other.name)
        if candidate.heading != heading:
            edges[edge_id] = candidate
            break
    return edges


def _two_way(
    site: CountSite, point: Point, centre: Point, edges: dict[str, _Edge], reasons: list[str]
) -> list[EdgeMatch]:
    inbound = max(edges, key=lambda e: edges[e].cosine)
    outbound = min(edges, key=lambda e: edges[e].cosine)
    doubts = list(reasons)
    if abs(edges[inbound].cosine) < ACROSS_COS:
        doubts.append("the street runs across the direction to the centre")
    if point.distance(centre) < NEAR_CENTRE_M:
        doubts.append(f"within {NEAR_CENTRE_M:g} m of the centre: inbound and outbound are unclear")
    silent = [d for d in site.directions if site.totals.get(d, 0.0) == 0]
    ratio_1, ratio_2 = site.am_pm_ratio.get("1", math.nan), site.am_pm_ratio.get("2", math.nan)
    if silent:
        doubts.extend(f"direction {d} counted no vehicle at all" for d in silent)
    elif not ratio_1 > ratio_2:
        doubts.append(
            f"peaks contradict direction 1 inbound (morning/afternoon {ratio_1:.2f} vs {ratio_2:.2f} for direction 2)"
        )
    chosen = {"1": inbound, "2": outbound}
    return [
        _match(site, direction, (chosen[direction],), edges[chosen[direction]].heading, edges, doubts)
        for direction in site.directions
    ]


def _one_way(site: CountSite, edges: dict[str, _Edge], reasons: list[str]) -> list[EdgeMatch]:
    busiest = max(site.directions, key=lambda d: site.totals.get(d, 0.0))
    counted = [d for d in site.directions if site.totals.get(d, 0.0) > 0]
    doubts = list(reasons) + (
        ["a one-way street, yet both directions have counts"] if len(counted) > 1 else []
    )
    ((edge_id, edge),) = ((k, v) for k, v in edges.items())
    result = []
    for direction in site.directions:
        if direction == busiest:
            result.append(_match(site, direction, (edge_id,), edge.heading, edges, doubts))
        else:
            result.append(
                EdgeMatch(
                    site.key,
                    direction,
                    (),
                    None,
                    edge.distance,
                    edge.street,
                    len(counted) > 1,
                    tuple([*doubts, "one-way street: no edge in this direction"]),
                )
            )
    return result


def _match(
    site: CountSite,
    direction: str,
    chosen: tuple[str, ...],
    heading: str,
    edges: dict[str, _Edge],
    reasons: list[str],
) -> EdgeMatch:
    return EdgeMatch(
        site=site.key,
        direction=direction,
        edge_ids=chosen,
        heading=heading,
        distance_m=max(edges[e].distance for e in chosen),
        street=edges[chosen[0]].street,
        ambiguous=bool(reasons),
        reasons=tuple(reasons),
    )


@dataclass
class _Segment:
    """A street segment: the directed edges sharing one undirected id, their name and distance."""

    key: str
    name: str
    distance: float
    edges: dict[str, LineString]


def _segments(near: gpd.GeoDataFrame, point: Point) -> list[_Segment]:
    segments: dict[str, _Segment] = {}
    for edge_id, name, line in zip(near["edge_id"], near["name"], near.geometry, strict=True):
        key = str(edge_id).lstrip("-")
        street = name if isinstance(name, str) else ""
        segment = segments.setdefault(key, _Segment(key, street, line.distance(point), {}))
        segment.edges[str(edge_id)] = line
    return sorted(segments.values(), key=lambda s: (s.distance, s.key))


def _cosine(line: LineString, point: Point, centre: Point) -> float:
    """Cosine between the edge's travel direction at the point and the direction to the centre."""
    at = line.project(point)
    ahead = line.interpolate(min(at + 1.0, line.length))
    behind = line.interpolate(max(at - 1.0, 0.0))
    dx, dy = ahead.x - behind.x, ahead.y - behind.y
    cx, cy = centre.x - point.x, centre.y - point.y
    norm = math.hypot(dx, dy) * math.hypot(cx, cy)
    return (dx * cx + dy * cy) / norm if norm else 0.0


def _normal(name: str) -> str:
    """A street name in capitals with only its letters and digits (spaces and hyphens dropped)."""
    return re.sub(r"[^\w\ufffd.]", "", name.upper())


def _name_patterns(name: str) -> list[re.Pattern[str]]:
    """Patterns for each street a counting point names (``A + B`` names two)."""
    patterns = []
    for part in name.split("+"):
        text = _normal(part)
        if not text:
            continue
        regex = "".join("." if c == "\ufffd" else r"\w*" if c == "." else re.escape(c) for c in text)
        patterns.append(re.compile(regex))
    return patterns


def _matches(patterns: list[re.Pattern[str]], street: str) -> bool:
    normal = _normal(street).replace(".", "")
    return bool(normal) and any(p.fullmatch(normal) for p in patterns)
