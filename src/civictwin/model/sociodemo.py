"""Socio-demographics of a grid or statistical-area layer interpolated onto the twin's analysis zones.

Two weightings (docs/methods-sociodemographics.md), with the formulas of the areal-interpolation
literature as tobler documents them (``area_interpolate``), written here over a GeoPandas overlay:

- **areal**: a source polygon ``i`` and a zone ``j`` share the area ``a_ij`` of their intersection;
- **residents** (dasymetric): they share ``r_ij``, the residents of the twin's buildings whose centroid
  lies in both (``buildings_3d.population_est``); a source polygon holding no residents falls back to
  its areal weights, and is counted.

Counts (extensive: people, households, cars) are split by weight, ``v_j = Σ_i v_i · w_ij / W_i`` with
``W_i`` the polygon's whole area or all its residents, so the part of a polygon outside every zone
stays outside and the zones' total equals the source's where the zones cover it. Averages and rates
(intensive: median income, mean household size, car-ownership share) are weight-averaged,
``v_j = Σ_i v_i · w_ij / Σ_k w_kj``. A zone's ``coverage`` is the share of its area the source
covers; a zone the source does not touch gets no value (NaN), never zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd

from civictwin.errors import SourceError

Weighting = Literal["area", "residents"]

COVERAGE = "coverage"
"""Column of the share (0–1) of each zone's area that the source's polygons cover."""


@dataclass(frozen=True)
class Interpolated:
    """Source values on the zones (one row per zone, in the zones' order) and what they rest on."""

    values: pd.DataFrame
    """``zone_id``, every count and intensive column, and :data:`COVERAGE`; NaN where coverage is 0."""
    weighting: Weighting
    source_totals: dict[str, float]
    """Each count column summed over the source's polygons."""
    fallback_polygons: int
    """Residents weighting: source polygons with values but no residents, weighted by area instead."""
    missing: dict[str, int] = field(default_factory=dict)
    """Source polygons without a value, per column: nothing for counts, left out of averages."""
    negative: dict[str, int] = field(default_factory=dict)
    """Source polygons with a negative value, per column (often a statistics office's suppression code)."""

    def quality(self) -> dict[str, object]:
        """Coverage, totals in and on the zones, and the fallbacks, for the quality report."""
        coverage = self.values[COVERAGE]
        return {
            "weighting": self.weighting,
            "zones": len(coverage),
            "zones_uncovered": int((coverage <= 0).sum()),
            "zones_partly_covered": int(((coverage > 0) & (coverage < 0.999)).sum()),
            "mean_coverage": round(float(coverage.mean()), 4) if len(coverage) else 0.0,
            "source_totals": {c: round(v, 2) for c, v in self.source_totals.items()},
            "zone_totals": {c: round(float(self.values[c].sum()), 2) for c in self.source_totals},
            "fallback_polygons": self.fallback_polygons,
            "missing_values": {c: n for c, n in self.missing.items() if n},
            "negative_values": {c: n for c, n in self.negative.items() if n},
        }

    def notes(self) -> list[str]:
        """Plain sentences on coverage and fallbacks."""
        coverage = self.values[COVERAGE]
        uncovered, partly = int((coverage <= 0).sum()), int(((coverage > 0) & (coverage < 0.999)).sum())
        notes = [
            f"{uncovered} of {len(coverage)} zones lie outside the source and have no values (mean coverage "
            f"of a zone {float(coverage.mean()) if len(coverage) else 0.0:.1%})"
        ]
        if partly:
            notes.append(f"{partly} zones are only partly covered: their counts hold only the covered part, "
                         "their averages describe it")  # fmt: skip
        if self.fallback_polygons:
            notes.append(f"{self.fallback_polygons} source polygons hold no residents in the twin's buildings "
                         "and were weighted by area")  # fmt: skip
        notes += [f"{column}: {n} source polygons have no value (no count there; left out of averages)"
                  for column, n in self.missing.items() if n]  # fmt: skip
        notes += [f"{column}: {n} source polygons hold a negative value, kept as given; if it codes suppressed "
                  "cells, clean the source" for column, n in self.negative.items() if n]  # fmt: skip
        return notes


def interpolate(
    zones: gpd.GeoDataFrame,
    source: gpd.GeoDataFrame,
    *,
    counts: Sequence[str],
    intensive: Sequence[str],
    weighting: Weighting = "area",
    residents: gpd.GeoDataFrame | None = None,
    name: str = "source",
) -> Interpolated:
    """``counts`` and ``intensive`` columns of ``source`` on ``zones`` (see the module docstring).

    ``zones``: ``zone_id`` and polygons in a metric CRS; ``source``: polygons with the columns, any CRS
    (reprojected); ``residents``: points or buildings with ``population_est`` (needed for the residents
    weighting). ``name`` names the source in errors. Raises :class:`SourceError` for a source without
    CRS, a column missing or not numeric, or a source that covers none of the zones.
    """
    cells = _checked_source(source, [*counts, *intensive], name=name, crs=zones.crs)
    zone_frame = zones[["zone_id", "geometry"]].reset_index(drop=True)
    pieces = _pieces(cells, zone_frame)
    coverage = (
        pieces.groupby("zone")["area"].sum().reindex(zone_frame.index, fill_value=0.0)
        / zone_frame.geometry.area.where(zone_frame.geometry.area > 0, 1.0)
    ).clip(upper=1.0)
    if not (coverage > 0).any():
        raise SourceError("covers none of the twin's zones (coverage 0%)", path=name)
    share, weight, fallback = _count_shares(pieces, cells), pieces["area"], 0
    if weighting == "residents":
        if residents is None:
            raise SourceError("the residents weighting needs the twin's buildings (buildings_3d)", path=name)
        people, per_cell = _resident_weights(pieces, cells, zone_frame, residents)
        housed = pieces["cell"].map(per_cell).to_numpy() > 0
        share = share.where(~housed, people / pieces["cell"].map(per_cell).where(housed, 1.0))
        fallback = int((per_cell.iloc[pieces["cell"].unique()] <= 0).sum())
        by_zone = people.groupby(pieces["zone"]).transform("sum")
        weight = people.where(by_zone > 0, pieces["area"])
    values = pd.DataFrame({"zone_id": zone_frame["zone_id"].astype(str)})
    covered = (coverage > 0).to_numpy()
    for column in counts:
        known = np.nan_to_num(cells[column].to_numpy()[pieces["cell"]], nan=0.0)
        spread = (known * share).groupby(pieces["zone"]).sum()
        values[column] = np.where(covered, spread.reindex(zone_frame.index, fill_value=0.0), np.nan)
    for column in intensive:
        value = pd.Series(cells[column].to_numpy()[pieces["cell"]], index=pieces.index)
        known_weight = weight.where(value.notna(), 0.0)
        weighted = (value.fillna(0.0) * known_weight).groupby(pieces["zone"]).sum()
        total = known_weight.groupby(pieces["zone"]).sum()
        mean = (weighted / total.where(total > 0, np.nan)).reindex(zone_frame.index)
        values[column] = np.where(covered, mean, np.nan)
    values[COVERAGE] = coverage.round(4).to_numpy()
    columns = [*counts, *intensive]
    return Interpolated(
        values=values, weighting=weighting, source_totals={c: float(cells[c].sum()) for c in counts},
        fallback_polygons=fallback, missing={c: int(cells[c].isna().sum()) for c in columns},
        negative={c: int((cells[c] < 0).sum()) for c in columns},
    )  # fmt: skip


def _checked_source(
    source: gpd.GeoDataFrame, columns: Sequence[str], *, name: str, crs: object
) -> gpd.GeoDataFrame:
    """The source's polygons in ``crs`` with its columns as floats (missing values NaN); one-line errors."""
    if source.crs is None:
        raise SourceError("has no coordinate reference system; declare one (e.g. `crs = \"EPSG:3067\"`)",
                          path=name)  # fmt: skip
    for column in columns:
        if column not in source.columns:
            available = ", ".join(str(c) for c in source.columns if c != source.geometry.name)
            raise SourceError(f"no column '{column}'; available: {available}", path=name, field=column)
        if not pd.api.types.is_numeric_dtype(source[column]) or pd.api.types.is_bool_dtype(source[column]):
            raise SourceError(f"column '{column}' is not numeric ({source[column].dtype})", path=name,
                              field=column)  # fmt: skip
    frame = source[[*columns]].astype("float64").reset_index(drop=True)
    return gpd.GeoDataFrame(frame, geometry=source.geometry.to_numpy(), crs=source.crs).to_crs(crs)


def _pieces(cells: gpd.GeoDataFrame, zones: gpd.GeoDataFrame) -> pd.DataFrame:
    """``cell``, ``zone`` (row positions) and ``area`` (m²) of every source polygon ∩ zone with area."""
    left = gpd.GeoDataFrame(
        {"cell": np.arange(len(cells))}, geometry=cells.geometry.to_numpy(), crs=cells.crs
    )
    right = gpd.GeoDataFrame(
        {"zone": np.arange(len(zones))}, geometry=zones.geometry.to_numpy(), crs=zones.crs
    )
    overlay = gpd.overlay(left, right, how="intersection", keep_geom_type=True)
    frame = pd.DataFrame({"cell": overlay["cell"].to_numpy(), "zone": overlay["zone"].to_numpy(),
                          "area": overlay.geometry.area.to_numpy()})  # fmt: skip
    return frame[frame["area"] > 0].reset_index(drop=True)


def _count_shares(pieces: pd.DataFrame, cells: gpd.GeoDataFrame) -> pd.Series:
    """Areal weights of counts: the share ``a_ij / a_i`` of each source polygon's area in each piece."""
    whole = cells.geometry.area.to_numpy()[pieces["cell"].to_numpy()]
    return pd.Series(pieces["area"].to_numpy() / whole, index=pieces.index)


def _resident_weights(
    pieces: pd.DataFrame, cells: gpd.GeoDataFrame, zones: gpd.GeoDataFrame, residents: gpd.GeoDataFrame
) -> tuple[pd.Series, pd.Series]:
    """Residents per piece (``r_ij``) and per whole source polygon (``R_i``, inside zones or not)."""
    points = gpd.GeoDataFrame(
        {"people": pd.to_numeric(residents["population_est"], errors="coerce").fillna(0.0).to_numpy()},
        geometry=residents.geometry.centroid.to_numpy(), crs=residents.crs,
    ).to_crs(cells.crs)  # fmt: skip
    points = points[points["people"] > 0]
    points["cell"] = _first_holder(points, cells)
    points["zone"] = _first_holder(points, zones)
    in_cell = points.dropna(subset=["cell"])
    per_cell = in_cell.groupby("cell")["people"].sum()
    per_cell = pd.Series(per_cell.reindex(np.arange(len(cells), dtype=float), fill_value=0.0).to_numpy())
    per_piece = in_cell.dropna(subset=["zone"]).groupby(["cell", "zone"])["people"].sum()
    keys = pd.MultiIndex.from_arrays([pieces["cell"].astype(float), pieces["zone"].astype(float)])
    return pd.Series(per_piece.reindex(keys, fill_value=0.0).to_numpy(), index=pieces.index), per_cell


def _first_holder(points: gpd.GeoDataFrame, polygons: gpd.GeoDataFrame) -> pd.Series:
    """Row position of the first polygon holding each point (NaN when none)."""
    frame = gpd.GeoDataFrame(geometry=polygons.geometry.to_numpy(), crs=polygons.crs)
    joined = gpd.sjoin(points[["geometry"]], frame, how="left", predicate="within")
    first: pd.Series = joined[~joined.index.duplicated(keep="first")]["index_right"]
    return pd.Series(first.reindex(points.index).to_numpy(dtype=float), index=points.index)
