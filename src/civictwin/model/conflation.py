"""Conflation: one building per real building and one edge per real street, from a city layer and OSM.

Buildings are matched by footprint overlap (shared area ÷ the smaller footprint ≥ ``min_overlap``);
matches form groups (one OSM block may hold three city houses), and in each group the side whose
geometry wins (``prefer.geometry``) gives the twin's buildings, each taking the other side's
attributes from the partner it shares most area with. Streets are matched edge by edge: an edge
matches the city line that lies within ``max_distance_m`` of its quarter, middle and three-quarter
points, runs within ``max_angle_deg`` of it, and carries the same name when both have one.

Per attribute the preferred side wins where both have a value, and the other fills gaps; values
that differ (numbers by more than ``conflict_tolerance``) are counted as conflicts. Every decision,
per object, is kept in a decisions table (``conflation_buildings``, ``conflation_streets``) named in
the derived tables' lineage; the counts go to the quality report. The method:
docs/methods-conflation.md.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from civictwin.config import BUILDING_ATTRIBUTES, STREET_ATTRIBUTES, ConflationRule, SourceKind
from civictwin.errors import ConfigError

CITY_MODEL_COLUMNS = {"height_m": "height_m", "levels": "storeys", "year_built": "year_built", "name": "name"}
"""Columns of a ``cityjson``/``citygml`` source table feeding twin attributes unless a rule says otherwise."""
DEFAULT_BUILDING_PREFER = {
    "geometry": "city", "height_m": "city", "levels": "city", "year_built": "city",
    "population_est": "city", "use": "osm", "name": "osm",
}  # fmt: skip
"""A surveyed city model beats OSM on geometry and heights; OSM's tags usually say more about use."""
DEFAULT_STREET_PREFER = {"name": "osm", "maxspeed_kmh": "city", "lanes": "city", "oneway": "city",
                         "capacity_vph": "city"}  # fmt: skip
_NUMERIC = frozenset(
    {"height_m", "levels", "year_built", "population_est", "maxspeed_kmh", "lanes", "capacity_vph"}
)
_SAMPLES = (0.25, 0.5, 0.75)


@dataclass
class Conflated:
    """The merged layer, one decision row per input object, and the counts for the quality report."""

    frame: gpd.GeoDataFrame
    decisions: pd.DataFrame
    quality: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def rule_columns(
    rule: ConflationRule, kind: SourceKind, available: list[str], *, origin: str, index: int
) -> dict[str, str]:
    """Twin attribute → city column for this rule; a rule naming a missing column is an error."""
    if kind in (SourceKind.CITYJSON, SourceKind.CITYGML):
        defaults = CITY_MODEL_COLUMNS
    else:
        known = BUILDING_ATTRIBUTES if rule.layer == "buildings" else STREET_ATTRIBUTES
        defaults = {a: a for a in known if a != "geometry"}
    columns = {a: c for a, c in defaults.items() if c in available}
    columns.update(rule.columns)
    for attribute in rule.prefer:
        if attribute != "geometry" and attribute not in columns:
            columns[attribute] = attribute
    if rule.layer == "streets" and rule.name_column:
        columns.setdefault("name", rule.name_column)
    for attribute, column in columns.items():
        if column not in available:
            key = (
                f"conflation[{index}].columns.{attribute}"
                if attribute in rule.columns
                else f"conflation[{index}].prefer.{attribute}"
            )
            raise ConfigError(
                f"source '{rule.source}' has no column '{column}' (available: {', '.join(available) or 'none'})",
                path=origin,
                field=key,
            )
    return columns


def prefer_of(rule: ConflationRule) -> dict[str, str]:
    """Which side wins per attribute: the defaults of the layer, overridden by the rule."""
    base = DEFAULT_BUILDING_PREFER if rule.layer == "buildings" else DEFAULT_STREET_PREFER
    return {**base, **rule.prefer}


# ---------------------------------------------------------------------------------------- buildings


def conflate_buildings(
    osm: gpd.GeoDataFrame | None,
    city: gpd.GeoDataFrame,
    rule: ConflationRule,
    columns: dict[str, str],
    *,
    storey_height_m: float,
) -> Conflated:
    """Merge OSM's LoD1 buildings (may be None) with a city building layer; see the module docstring."""
    prefer = prefer_of(rule)
    city_std = _city_buildings(city, columns, rule.source, storey_height_m)
    osm_std = _osm_buildings(osm) if osm is not None else _osm_buildings(_empty_osm(city.crs))
    pairs = _overlaps(osm_std.geometry.to_numpy(), city_std.geometry.to_numpy(), rule.min_overlap)
    keep_city = True if rule.keep_unmatched_city is None else rule.keep_unmatched_city
    winner = prefer["geometry"]
    rows, decided, conflicts = _merge_groups(osm_std, city_std, pairs, prefer, winner, rule, keep_city)
    frame = gpd.GeoDataFrame(pd.DataFrame(rows), geometry="geometry", crs=city.crs)
    frame = _finish(frame, storey_height_m)
    counts = decided["decision"].value_counts().to_dict() if len(decided) else {}
    quality = {
        "matched_groups": int(pairs.groups), "matched_pairs": len(pairs.osm),
        "osm_buildings": len(osm_std), "city_buildings": len(city_std),
        "only_osm": int(counts.get("only_osm", 0)), "only_city": int(counts.get("only_city", 0)),
        "dropped_only_osm": int(counts.get("dropped_only_osm", 0)),
        "dropped_only_city": int(counts.get("dropped_only_city", 0)),
        "merged": int(counts.get("merged", 0)), "conflicting": conflicts,
        "rules": {"prefer": prefer, "columns": columns, "min_overlap": rule.min_overlap},
    }  # fmt: skip
    notes = [
        f"buildings conflated with '{rule.source}': {quality['matched_pairs']} OSM/city pairs in "
        f"{quality['matched_groups']} matched groups, {quality['only_osm']} only in OSM, "
        f"{quality['only_city']} only in the city layer; conflicts: "
        + (", ".join(f"{k} {v}" for k, v in conflicts.items() if v) or "none")
    ]
    return Conflated(frame=frame, decisions=decided, quality=quality, notes=notes)


def _empty_osm(crs: Any) -> gpd.GeoDataFrame:
    columns = ["osm_id", "osm_type", "building", "use", "name", "levels", "height_m", "height_source"]
    return gpd.GeoDataFrame(
        {c: pd.Series(dtype=object) for c in columns}, geometry=gpd.GeoSeries([], crs=crs)
    )


def _osm_buildings(osm: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    out = osm.reset_index(drop=True).copy()
    out["key"] = [f"{t}-{i}" for t, i in zip(out["osm_type"], out["osm_id"], strict=True)]
    if "year_built" not in out:
        out["year_built"] = pd.Series(np.nan, index=out.index)
    if "population_est" not in out:
        out["population_est"] = pd.Series(np.nan, index=out.index)
    return out


def _city_buildings(
    city: gpd.GeoDataFrame, columns: dict[str, str], source: str, storey: float
) -> gpd.GeoDataFrame:
    city = city.reset_index(drop=True)
    ids = (
        city["building_id"].astype(str)
        if "building_id" in city
        else pd.Series([f"{source}-{n}" for n in range(len(city))])
    )
    out = gpd.GeoDataFrame({"key": ids.to_numpy()}, geometry=city.geometry.to_numpy(), crs=city.crs)
    for attribute, column in columns.items():
        values = city[column]
        out[attribute] = (
            pd.to_numeric(values, errors="coerce") if attribute in _NUMERIC else values.astype(object)
        )
    if "levels" not in out and "height_m" in out:
        out["levels"] = (out["height_m"] / storey).round().clip(lower=1)
    for extra in ("lod", "ground_z", "height_source"):
        if extra in city:
            out[f"city_{extra}"] = city[extra].to_numpy()
    return out


@dataclass
class _Pairs:
    osm: npt.NDArray[np.int64]
    city: npt.NDArray[np.int64]
    shared: npt.NDArray[np.float64]
    ratio: npt.NDArray[np.float64]
    groups: int = 0
    component_osm: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    component_city: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))


def _overlaps(osm: npt.NDArray[np.object_], city: npt.NDArray[np.object_], minimum: float) -> _Pairs:
    """Pairs whose shared area is at least ``minimum`` of the smaller footprint, and their groups.

    Candidates are the pairs whose bounding boxes intersect; those whose bounding boxes share less
    than ``minimum`` of the smaller footprint cannot share more of the footprints themselves and are
    left out before the (costly) exact intersections.
    """
    tree = shapely.STRtree(city)
    i, j = tree.query(osm) if len(osm) and len(city) else (np.zeros(0, int), np.zeros(0, int))
    smaller = np.minimum(shapely.area(osm[i]), shapely.area(city[j])) if len(i) else np.zeros(0)
    possible = _box_overlap(osm[i], city[j]) >= minimum * smaller * (1 - 1e-9)
    i, j, smaller = i[possible], j[possible], smaller[possible]
    shared = _shared_area(osm[i], city[j]) if len(i) else np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(smaller > 0, shared / smaller, 0.0)
    ok = ratio >= minimum
    pairs = _Pairs(
        osm=i[ok].astype(np.int64), city=j[ok].astype(np.int64), shared=shared[ok], ratio=ratio[ok]
    )
    n_osm, n_city = len(osm), len(city)
    graph = coo_matrix(
        (np.ones(len(pairs.osm)), (pairs.osm, n_osm + pairs.city)), shape=(n_osm + n_city,) * 2
    )
    _count, labels = connected_components(graph, directed=False)
    pairs.component_osm, pairs.component_city = labels[:n_osm], labels[n_osm:]
    pairs.groups = len(np.unique(labels[pairs.osm])) if len(pairs.osm) else 0
    return pairs


def _box_overlap(a: npt.NDArray[np.object_], b: npt.NDArray[np.object_]) -> npt.NDArray[np.float64]:
    """Areas (m²) shared by the pairs' bounding boxes: an upper bound of the footprints' shared area."""
    box_a, box_b = shapely.bounds(a).reshape(-1, 4), shapely.bounds(b).reshape(-1, 4)
    width = np.minimum(box_a[:, 2], box_b[:, 2]) - np.maximum(box_a[:, 0], box_b[:, 0])
    height = np.minimum(box_a[:, 3], box_b[:, 3]) - np.maximum(box_a[:, 1], box_b[:, 1])
    overlap: npt.NDArray[np.float64] = np.clip(width, 0, None) * np.clip(height, 0, None)
    return overlap


def _shared_area(a: npt.NDArray[np.object_], b: npt.NDArray[np.object_]) -> npt.NDArray[np.float64]:
    """Areas of the pairwise intersections; snap rounding (much slower) only if GEOS needs it."""
    try:
        areas: npt.NDArray[np.float64] = shapely.area(shapely.intersection(a, b))
    except shapely.errors.GEOSException:
        areas = shapely.area(shapely.intersection(a, b, grid_size=1e-6))
    return areas


def _best_pair(
    own: npt.NDArray[np.int64], shared: npt.NDArray[np.float64], count: int
) -> npt.NDArray[np.int64]:
    """For each of ``count`` objects on one side, its pair sharing the most area (-1: none).

    Ties go to the pair listed first, as a stable sort keeps them.
    """
    order = np.argsort(-shared, kind="stable")
    objects, first = np.unique(own[order], return_index=True)
    best = np.full(count, -1, dtype=np.int64)
    best[objects] = order[first]
    return best


@dataclass
class _Side:
    """One side's objects as columns of Python values (as ``to_dict`` would give them)."""

    name: str
    frame: pd.DataFrame
    columns: dict[str, npt.NDArray[np.object_]]

    @classmethod
    def of(cls, name: str, frame: pd.DataFrame) -> _Side:
        return cls(name, frame, {c: frame[c].to_numpy(dtype=object) for c in frame.columns})

    def values(self, column: str, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.object_]:
        """The column's values at ``rows``; None where the side has no such column."""
        if column not in self.columns:
            return np.full(len(rows), None, dtype=object)
        return self.columns[column][rows]

    def present(self, column: str) -> npt.NDArray[np.bool_]:
        """Where the column has a value: not missing, not NaN, not a blank text."""
        if column not in self.frame:
            return np.zeros(len(self.frame), dtype=bool)
        values = self.columns[column]
        filled: npt.NDArray[np.bool_] = ~pd.isna(values)
        if self.frame[column].dtype.kind not in "biufc":
            blank = np.fromiter((isinstance(v, str) and not v.strip() for v in values), bool, len(values))
            filled &= ~blank
        return filled


def _merge_groups(
    osm: gpd.GeoDataFrame,
    city: gpd.GeoDataFrame,
    pairs: _Pairs,
    prefer: dict[str, str],
    winner: str,
    rule: ConflationRule,
    keep_city: bool,
) -> tuple[dict[str, list[Any]], pd.DataFrame, dict[str, int]]:
    """The twin's buildings (columns), one decision per object of either side, conflicts per attribute.

    Rows come in the winning side's order (matched or kept alone), then the losing side's objects
    kept alone; decisions list the winning side's objects, then the losing side's.
    """
    attributes = [a for a in prefer if a != "geometry" and (a in osm.columns or a in city.columns)]
    sides = {"osm": _Side.of("osm", osm), "city": _Side.of("city", city)}
    best = {"osm": _best_pair(pairs.osm, pairs.shared, len(osm)),
            "city": _best_pair(pairs.city, pairs.shared, len(city))}  # fmt: skip
    of_pair = {"osm": pairs.osm, "city": pairs.city}
    win, lose = sides[winner], sides["osm" if winner == "city" else "city"]
    keep = {"osm": rule.keep_unmatched_osm, "city": keep_city}

    win_pair = best[win.name]
    matched = np.flatnonzero(win_pair >= 0)
    pair = win_pair[matched]
    index = {"osm": pairs.osm[pair], "city": pairs.city[pair]}
    merged, sources, clashes, conflicts = _merge_attributes(
        sides["osm"], sides["city"], index, attributes, prefer, rule.conflict_tolerance
    )
    matched_block = {
        **merged, "geometry": win.values("geometry", matched), "match": _repeat("matched", len(matched)),
        "osm_key": sides["osm"].values("key", index["osm"]), "city_key": sides["city"].values("key", index["city"]),
        "lod": sides["city"].values("city_lod", index["city"]),
        "ground_z": sides["city"].values("city_ground_z", index["city"]),
        **{k: sides["osm"].values(k, index["osm"]) for k in ("osm_id", "osm_type", "building")},
    }  # fmt: skip
    alone = np.flatnonzero(win_pair < 0)
    kept_alone = alone if keep[win.name] else alone[:0]
    winner_rows = _interleave(matched_block, matched, _single(win, kept_alone), kept_alone)

    lose_pair = best[lose.name]
    lose_alone = np.flatnonzero(lose_pair < 0)
    loser_rows = _single(lose, lose_alone if keep[lose.name] else lose_alone[:0])
    rows = _stack([winner_rows, loser_rows])

    win_keys, lose_keys = win.columns["key"], lose.columns["key"]
    win_decision = np.full(
        len(win_pair), ("only_" if keep[win.name] else "dropped_only_") + win.name, dtype=object
    )
    win_decision[matched] = "matched"
    win_partner = np.full(len(win_pair), None, dtype=object)
    win_partner[matched] = lose_keys[of_pair[lose.name][pair]]
    overlap = np.full(len(win_pair), None, dtype=object)
    overlap[matched] = [round(float(r), 4) for r in pairs.ratio[pair]]
    attribute_sources = np.full(len(win_pair), None, dtype=object)
    attribute_sources[matched] = sources
    conflicting = np.full(len(win_pair), None, dtype=object)
    conflicting[matched] = clashes

    has = lose_pair >= 0
    their_winner = np.full(len(lose_pair), -1, dtype=np.int64)
    their_winner[has] = of_pair[win.name][lose_pair[has]]
    mutual = np.zeros(len(lose_pair), dtype=bool)  # the loser is its best partner's best partner too
    mutual[has] = of_pair[lose.name][win_pair[their_winner[has]]] == np.flatnonzero(has)
    lose_decision = np.where(
        has,
        np.where(mutual, "matched", "merged"),
        ("only_" if keep[lose.name] else "dropped_only_") + lose.name,
    ).astype(object)
    lose_partner = np.full(len(lose_pair), None, dtype=object)
    lose_partner[has] = win_keys[their_winner[has]]
    none = np.full(len(lose_pair), None, dtype=object)
    decisions = {
        "side": [win.name] * len(win_pair) + [lose.name] * len(lose_pair),
        "object": [*win_keys, *lose_keys],
        "decision": [*win_decision, *lose_decision],
        "partner": [*win_partner, *lose_partner],
        "overlap": [*overlap, *none],
        "attribute_sources": [*attribute_sources, *none],
        "conflicts": [*conflicting, *none],
    }
    decided = pd.DataFrame(decisions) if len(win_pair) + len(lose_pair) else pd.DataFrame()
    return rows, decided, conflicts


def _merge_attributes(
    osm: _Side,
    city: _Side,
    index: dict[str, npt.NDArray[np.int64]],
    attributes: list[str],
    prefer: dict[str, str],
    tolerance: float,
) -> tuple[dict[str, npt.NDArray[np.object_]], list[str | None], list[str | None], dict[str, int]]:
    """Per matched pair (``index``: its OSM and city rows) the merged attributes and ``height_source``,
    which side gave each attribute (JSON text), which attributes conflict (comma-separated) and the
    conflicts' count per attribute."""
    count = len(index["osm"])
    merged: dict[str, npt.NDArray[np.object_]] = {}
    source_parts: list[npt.NDArray[np.object_]] = []
    clash_parts: list[npt.NDArray[np.object_]] = []
    conflicts: dict[str, int] = {}
    height_from_city = np.zeros(count, dtype=bool)
    for attribute in attributes:
        o, c = osm.values(attribute, index["osm"]), city.values(attribute, index["city"])
        o_ok, c_ok = osm.present(attribute)[index["osm"]], city.present(attribute)[index["city"]]
        if prefer[attribute] == "city":
            first, second, first_ok, second_ok, names = c, o, c_ok, o_ok, ("city", "osm")
        else:
            first, second, first_ok, second_ok, names = o, c, o_ok, c_ok, ("osm", "city")
        merged[attribute] = np.where(first_ok, first, np.where(second_ok, second, _repeat(None, count)))
        source = np.where(first_ok, names[0], np.where(second_ok, names[1], ""))
        key = json.dumps(attribute)
        source_parts.append(np.where(source != "", [f'{key}: "{s}"' for s in source], ""))
        if attribute == "height_m":
            height_from_city = source == "city"
        both = o_ok & c_ok
        differ = np.zeros(count, dtype=bool)
        differ[both] = _differ_many(o[both], c[both], attribute, tolerance)
        conflicts[attribute] = int(differ.sum())
        clash_parts.append(np.where(differ, attribute, ""))
    city_source = city.values("city_height_source", index["city"])
    osm_source = osm.values("height_source", index["osm"])
    merged["height_source"] = np.array(
        [
            _city_height_source(s) if h else o
            for h, s, o in zip(height_from_city, city_source, osm_source, strict=True)
        ],
        dtype=object,
    ).reshape(count)
    if not attributes:
        return merged, [None] * count, [None] * count, conflicts
    sources = [
        ("{" + ", ".join(p for p in row if p) + "}") if any(row) else None
        for row in zip(*source_parts, strict=True)
    ]
    clashes = [",".join(p for p in row if p) or None for row in zip(*clash_parts, strict=True)]
    return merged, sources, clashes, conflicts


def _differ_many(
    osm: npt.NDArray[np.object_], city: npt.NDArray[np.object_], attribute: str, tolerance: float
) -> npt.NDArray[np.bool_]:
    """Whether each pair of present values differs: numbers beyond ``tolerance`` of the larger, texts
    after normalisation (see :func:`_normal_text`)."""
    if attribute in _NUMERIC:
        x, y = np.asarray(osm, dtype=float), np.asarray(city, dtype=float)
        differ: npt.NDArray[np.bool_] = np.abs(x - y) > tolerance * np.maximum(np.abs(x), np.abs(y))
        return differ
    texts = [str(v) for v in osm], [str(v) for v in city]
    normal = {t: _normal_text(t) for t in {*texts[0], *texts[1]}}
    return np.array([normal[a] != normal[b] for a, b in zip(*texts, strict=True)], dtype=bool)


def _differ(a: Any, b: Any, attribute: str, tolerance: float) -> bool:
    """One pair of present values: :func:`_differ_many`'s rule for a single street attribute."""
    if attribute in _NUMERIC:
        x, y = float(a), float(b)
        return abs(x - y) > tolerance * max(abs(x), abs(y))
    return _normal_text(str(a)) != _normal_text(str(b))


def _city_height_source(value: object) -> str:
    """``city:<how the city model got the height>``, ``city:height`` where it does not say (None, NaN, blank)."""
    return f"city:{value}" if isinstance(value, str) and value.strip() else "city:height"


def _repeat(value: Any, count: int) -> npt.NDArray[np.object_]:
    return np.full(count, value, dtype=object)


def _single(side: _Side, rows: npt.NDArray[np.int64]) -> dict[str, npt.NDArray[np.object_]]:
    """Objects kept without a partner: all their columns, their key, and for the city its extras."""
    block = {c: side.values(c, rows) for c in side.columns if c != "key"}
    block["match"] = _repeat(f"{side.name}_only", len(rows))
    block[f"{side.name}_key"] = side.values("key", rows)
    if side.name == "city":
        block["lod"] = side.values("city_lod", rows)
        block["ground_z"] = side.values("city_ground_z", rows)
        block["height_source"] = np.array(
            [_city_height_source(s) for s in side.values("city_height_source", rows)], dtype=object
        ).reshape(len(rows))
    return block


def _interleave(
    first: dict[str, npt.NDArray[np.object_]],
    first_at: npt.NDArray[np.int64],
    second: dict[str, npt.NDArray[np.object_]],
    second_at: npt.NDArray[np.int64],
) -> dict[str, npt.NDArray[np.object_]]:
    """Two blocks of rows merged in the order of their positions; a column one block lacks is NaN
    there (as pandas fills a key missing from some of a list of dicts)."""
    order = np.argsort(np.concatenate([first_at, second_at]), kind="stable")
    stacked = _stack([first, second])
    return {c: np.asarray(v, dtype=object)[order] for c, v in stacked.items()}


def _stack(blocks: list[dict[str, npt.NDArray[np.object_]]]) -> dict[str, list[Any]]:
    """Blocks of rows one after another; only blocks with rows contribute columns, NaN fills gaps."""
    filled = [b for b in blocks if len(next(iter(b.values()), ()))]
    columns = list(dict.fromkeys(c for b in filled for c in b))
    out: dict[str, list[Any]] = {}
    for column in columns:
        values: list[Any] = []
        for block in filled:
            size = len(next(iter(block.values())))
            values.extend(block[column] if column in block else [np.nan] * size)
        out[column] = values
    return out


def _finish(frame: gpd.GeoDataFrame, storey: float) -> gpd.GeoDataFrame:
    """The columns ``buildings_3d`` needs: ids, use, levels, floor area."""
    for column in ("osm_id", "osm_type", "building", "use", "name", "levels", "height_m", "height_source",
                   "year_built", "lod", "ground_z", "osm_key", "city_key", "population_est"):  # fmt: skip
        if column not in frame:
            frame[column] = None
    frame["building_id"] = frame["city_key"].where(frame["city_key"].notna(), frame["osm_key"])
    frame["city_id"] = frame["city_key"]
    frame["use"] = frame["use"].fillna("unknown")
    frame["height_m"] = pd.to_numeric(frame["height_m"], errors="coerce").astype("float64")
    levels = pd.to_numeric(frame["levels"], errors="coerce").astype("float64")
    frame["levels"] = levels.fillna((frame["height_m"] / storey).round().clip(lower=1))
    frame["footprint_m2"] = frame.geometry.area.round(2)
    frame["floor_area_m2"] = (frame["footprint_m2"] * frame["levels"]).round(2)
    frame["year_built"] = pd.to_numeric(frame["year_built"], errors="coerce").astype("Int32")
    frame["osm_id"] = pd.to_numeric(frame["osm_id"], errors="coerce").astype("Int64")
    for column in ("lod", "ground_z"):
        frame[column] = frame[column].astype("float64" if column == "ground_z" else object)
    if frame["lod"].isna().all():
        frame["lod"] = frame["lod"].astype(object)
    frame.loc[frame["lod"].isna(), "lod"] = "1"
    order = ["building_id", "osm_id", "osm_type", "city_id", "match", "building", "use", "name", "levels",
             "height_m", "height_source", "year_built", "footprint_m2", "floor_area_m2", "lod", "ground_z",
             "population_est", "geometry"]  # fmt: skip
    return frame[order]


# ------------------------------------------------------------------------------------------ streets


def conflate_streets(
    edges: gpd.GeoDataFrame, city: gpd.GeoDataFrame, rule: ConflationRule, columns: dict[str, str]
) -> Conflated:
    """Set street attributes on the network's edges from the city road layer they match."""
    prefer = prefer_of(rule)
    edges = edges.reset_index(drop=True).copy()
    city = city.reset_index(drop=True)
    lines = np.asarray(shapely.line_merge(city.geometry.to_numpy()), dtype=object)
    keys = edges["edge_id"].astype(str).str.lstrip("-")
    first = ~keys.duplicated()
    geometry = edges.geometry.to_numpy()
    base = np.flatnonzero(first.to_numpy())
    match, along = _match_edges(geometry[base], edges["name"].to_numpy()[base], lines, city, columns, rule)
    matched_of_key = dict(zip(keys.to_numpy()[base], match, strict=True))
    city_index = keys.map(matched_of_key).to_numpy()
    direction = _directions(geometry, lines, city_index)
    counts: dict[str, int] = {a: 0 for a in prefer}
    changed: dict[str, int] = {a: 0 for a in prefer}
    for attribute in columns:
        if attribute in prefer:
            _apply(edges, city, columns[attribute], attribute, city_index, direction, prefer[attribute],
                   rule.conflict_tolerance, counts, changed)  # fmt: skip
    used = set(int(c) for c in match if c >= 0)
    unmatched_edges = int((np.asarray(match) < 0).sum())
    decisions = pd.DataFrame({
        "side": "osm", "object": keys.to_numpy()[base],
        "decision": np.where(np.asarray(match) >= 0, "matched", "only_osm" if rule.keep_unmatched_osm else "dropped_only_osm"),
        "partner": [_city_id(city, m) if m >= 0 else None for m in match], "overlap": np.round(along, 2),
    })  # fmt: skip
    city_rows = pd.DataFrame({
        "side": "city", "object": [_city_id(city, n) for n in range(len(city))],
        "decision": ["matched" if n in used else "only_city_not_added" for n in range(len(city))],
        "partner": None, "overlap": np.nan,
    })  # fmt: skip
    if not rule.keep_unmatched_osm:
        edges = edges[np.array([not pd.isna(v) and int(v) >= 0 for v in city_index], dtype=bool)]
    quality = {
        "matched_edges": int((np.asarray(match) >= 0).sum()), "only_osm_edges": unmatched_edges,
        "city_lines": len(city), "matched_city_lines": len(used), "only_city_lines": len(city) - len(used),
        "conflicting": {k: v for k, v in counts.items() if k in columns},
        "changed": {k: v for k, v in changed.items() if k in columns},
        "rules": {"prefer": prefer, "columns": columns, "max_distance_m": rule.max_distance_m,
                  "max_angle_deg": rule.max_angle_deg},
    }  # fmt: skip
    notes = [
        f"streets conflated with '{rule.source}': {quality['matched_edges']} edge geometries matched "
        f"{quality['matched_city_lines']} of {len(city)} city lines; {quality['only_city_lines']} city lines match "
        "no edge and are not added (listed in conflation_streets)"
    ]
    return Conflated(frame=edges, decisions=pd.concat([decisions, city_rows], ignore_index=True), quality=quality,
                     notes=notes)  # fmt: skip


def _city_id(city: pd.DataFrame, index: int) -> str:
    for column in ("id", "fid", "gml_id", "osm_id"):
        if column in city:
            return str(city[column].iloc[index])
    return str(index)


def _match_edges(
    geometry: npt.NDArray[np.object_],
    names: npt.NDArray[np.object_],
    lines: npt.NDArray[np.object_],
    city: pd.DataFrame,
    columns: dict[str, str],
    rule: ConflationRule,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """For each edge, the city line matching it (-1: none) and the mean distance to it (m)."""
    n = len(geometry)
    points = np.stack(
        [shapely.line_interpolate_point(geometry, f, normalized=True) for f in _SAMPLES], axis=1
    )
    tree = shapely.STRtree(lines)
    e, c = tree.query(points[:, 1], predicate="dwithin", distance=rule.max_distance_m)
    if not len(e):
        return np.full(n, -1, dtype=np.int64), np.full(n, np.nan)
    distances = np.stack([shapely.distance(points[e, k], lines[c]) for k in range(len(_SAMPLES))], axis=1)
    ok = distances.max(axis=1) <= rule.max_distance_m
    ok &= _angles_ok(geometry[e], lines[c], points[e, 1], rule.max_angle_deg)
    same_name = np.zeros(len(e), dtype=bool)
    name_column = columns.get("name")
    if name_column is not None:
        city_names = np.array([_normal_text(v) for v in city[name_column].to_numpy()], dtype=object)[c]
        edge_names = np.array([_normal_text(v) for v in names], dtype=object)[e]
        both = (city_names != "") & (edge_names != "")
        same_name = both & (city_names == edge_names)
        ok &= ~both | same_name
    score = distances.mean(axis=1) - np.where(same_name, rule.max_distance_m, 0.0)
    match = np.full(n, -1, dtype=np.int64)
    mean = np.full(n, np.nan)
    order = np.lexsort((score, e))
    for k in order[ok[order]]:
        if match[e[k]] < 0:
            match[e[k]] = c[k]
            mean[e[k]] = distances[k].mean()
    return match, mean


def _angles_ok(
    edges: npt.NDArray[np.object_], lines: npt.NDArray[np.object_], mid: npt.NDArray[np.object_], limit: float
) -> npt.NDArray[np.bool_]:
    """Whether each edge runs within ``limit`` degrees of its candidate line near the edge's middle."""
    start = shapely.get_coordinates(shapely.get_point(edges, 0))
    end = shapely.get_coordinates(shapely.get_point(edges, -1))
    edge_dir = end - start
    at = shapely.line_locate_point(lines, mid)
    lengths = shapely.length(lines)
    a = shapely.get_coordinates(shapely.line_interpolate_point(lines, np.clip(at - 2.0, 0, lengths)))
    b = shapely.get_coordinates(shapely.line_interpolate_point(lines, np.clip(at + 2.0, 0, lengths)))
    line_dir = b - a
    norms = np.linalg.norm(edge_dir, axis=1) * np.linalg.norm(line_dir, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.abs((edge_dir * line_dir).sum(axis=1)) / norms
    within: npt.NDArray[np.bool_] = np.nan_to_num(cosine, nan=0.0) >= np.cos(np.radians(limit))
    return within


def _directions(
    geometry: npt.NDArray[np.object_], lines: npt.NDArray[np.object_], city_index: Any
) -> npt.NDArray[np.float64]:
    """+1 where a directed edge runs the way its city line was drawn, -1 against it, 0 unmatched."""
    out = np.zeros(len(geometry))
    idx = np.asarray([-1 if pd.isna(v) else int(v) for v in city_index], dtype=np.int64)
    has = idx >= 0
    if not has.any():
        return out
    g, lines_ = geometry[has], lines[idx[has]]
    start = shapely.line_locate_point(lines_, shapely.get_point(g, 0))
    end = shapely.line_locate_point(lines_, shapely.get_point(g, -1))
    out[has] = np.where(end >= start, 1.0, -1.0)
    return out


_TRUE = frozenset({"yes", "true", "1", "y", "ft", "forward"})
_REVERSE = frozenset({"-1", "reverse", "tf", "backward"})
_FALSE = frozenset({"no", "false", "0", "n", "both"})


def _apply(
    edges: gpd.GeoDataFrame, city: pd.DataFrame, column: str, attribute: str, city_index: Any,
    direction: npt.NDArray[np.float64], prefer: str, tolerance: float, conflicts: dict[str, int], changed: dict[str, int],
) -> None:  # fmt: skip
    idx = np.asarray([-1 if pd.isna(v) else int(v) for v in city_index], dtype=np.int64)
    has = idx >= 0
    raw = city[column].to_numpy()[np.where(has, idx, 0)]
    if attribute == "oneway":
        _apply_oneway(edges, raw, has, direction, prefer, conflicts, changed)
        return
    values = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy() if attribute in _NUMERIC else raw
    present = has & pd.notna(values)
    target = {
        "maxspeed_kmh": "maxspeed_kmh",
        "lanes": "lanes",
        "capacity_vph": "capacity_vph",
        "name": "name",
    }[attribute]
    current = edges[target].to_numpy()
    current_present = pd.notna(current)
    if attribute == "lanes":
        one_direction = _one_direction(edges)
        values = np.where(one_direction, values, np.maximum(1.0, np.floor(np.asarray(values, float) / 2)))
    differs = (
        present
        & current_present
        & np.array(
            [
                _differ(a, b, attribute, tolerance) if p else False
                for a, b, p in zip(current, values, present & current_present, strict=True)
            ],
            dtype=bool,
        )
    )
    conflicts[attribute] += int(differs.sum())
    write = present & (~current_present if prefer == "osm" else np.ones(len(edges), dtype=bool))
    if attribute == "lanes":
        per_lane = edges["capacity_vph"].to_numpy(float) / np.maximum(edges["lanes"].to_numpy(float), 1)
        edges.loc[write, "capacity_vph"] = np.round(
            per_lane[write] * np.asarray(values, float)[write]
        ).astype(int)
    changed[attribute] += int((write & (~current_present | differs)).sum())
    if attribute == "maxspeed_kmh":
        edges.loc[write, "speed_kmh"] = np.asarray(values, float)[write]
    edges.loc[write, target] = np.asarray(values, dtype=float if attribute in _NUMERIC else object)[write]
    if attribute in ("lanes", "capacity_vph"):
        edges[target] = edges[target].round().astype(int)


def _one_direction(edges: gpd.GeoDataFrame) -> npt.NDArray[np.bool_]:
    """Edges whose way carries cars one way only (no car edge in the opposite direction)."""
    keys = edges["edge_id"].astype(str)
    car_keys = set(keys[edges["car"].to_numpy(bool)])
    reverse = keys.map(lambda k: k[1:] if k.startswith("-") else "-" + k)
    one_way: npt.NDArray[np.bool_] = ~reverse.isin(car_keys).to_numpy(dtype=bool)
    return one_way


def _apply_oneway(
    edges: gpd.GeoDataFrame, raw: Any, has: npt.NDArray[np.bool_], direction: npt.NDArray[np.float64],
    prefer: str, conflicts: dict[str, int], changed: dict[str, int],
) -> None:  # fmt: skip
    text = np.array([str(v).strip().lower() if pd.notna(v) else "" for v in raw], dtype=object)
    allowed = np.where(
        np.isin(text, list(_TRUE)),
        direction > 0,
        np.where(np.isin(text, list(_REVERSE)), direction < 0, True),
    )
    known = has & np.isin(text, list(_TRUE | _REVERSE | _FALSE))
    car_road = _car_road(edges)
    applicable = known & car_road
    current = edges["car"].to_numpy(bool)
    differs = applicable & (current != allowed)
    conflicts["oneway"] += int(differs.sum())
    if prefer == "city":
        edges.loc[applicable, "car"] = allowed[applicable]
        changed["oneway"] += int(differs.sum())


def _car_road(edges: gpd.GeoDataFrame) -> npt.NDArray[np.bool_]:
    """Edges of ways that carry cars in at least one direction."""
    keys = edges["edge_id"].astype(str).str.lstrip("-")
    car_ways = set(keys[edges["car"].to_numpy(bool)])
    road: npt.NDArray[np.bool_] = keys.isin(car_ways).to_numpy(dtype=bool)
    return road


def _normal_text(value: Any) -> str:
    """A name compared loosely: case, accents' composition, punctuation and spacing ignored."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    text = unicodedata.normalize("NFC", str(value)).casefold()
    return re.sub(r"[\W_]+", " ", text).strip()
