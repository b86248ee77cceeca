"""Operators' aggregated phone-based mobility: an OD matrix and presence counts in the provider's zoning.

Disclosure control comes first: every OD cell (origin, destination, hour) and presence cell (zone,
hour) under ``k_anonymity`` (default 10) is dropped before anything is written, and the quality
record counts the cells and trips (or people) that touched. Files that look like per-device records
are refused. The tables stay in the provider's zoning here; ``model.mobility`` re-aggregates them
onto the twin's analysis zones once those exist (see docs/methods-mobility.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from civictwin.config import SourceConfig
from civictwin.errors import SourceError
from civictwin.geometry import prepare_geometries
from civictwin.sources.base import BuildContext, IngestedLayer, IngestResult
from civictwin.sources.vector import read_layer

DEFAULT_K = 10
"""Smallest cell value published: the k of k-anonymity (operators' usual threshold for aggregates)."""

ZONING_SUFFIX, OD_SUFFIX, PRESENCE_SUFFIX = "_zoning", "_od", "_presence"

_PERSONAL = re.compile(
    r"(device|imei|imsi|msisdn|iccid|subscriber|user_?id|person_?id|phone_?(number|no)|handset|"
    r"advertising_?id|ad_?id|mac_?address)",
    re.IGNORECASE,
)
_TIMESTAMP = re.compile(r"(timestamp|datetime|date_?time|^time$|start_?time|end_?time|event_?time)", re.I)


@dataclass(frozen=True)
class Suppression:
    """Cells kept after the k-threshold and what the threshold removed."""

    kept: pd.DataFrame
    cells_total: int
    cells_suppressed: int
    value_total: float
    value_suppressed: float

    def as_dict(self, *, k: int) -> dict[str, Any]:
        """Plain numbers for the quality record."""
        return {
            "k": k,
            "cells_total": self.cells_total,
            "cells_suppressed": self.cells_suppressed,
            "value_total": round(self.value_total, 3),
            "value_suppressed": round(self.value_suppressed, 3),
            "handling": "dropped",
        }


def suppress_small_cells(cells: pd.DataFrame, *, value: str, k: int) -> Suppression:
    """Drop every cell whose ``value`` is under ``k`` (the suppressed amount is dropped, not merged).

    Dropping, rather than merging small cells into a per-origin remainder, keeps every published
    number an aggregate of at least ``k``: a remainder could itself fall under ``k``.
    """
    small = cells[value] < k
    return Suppression(
        kept=cells.loc[~small].reset_index(drop=True),
        cells_total=len(cells),
        cells_suppressed=int(small.sum()),
        value_total=float(cells[value].sum()),
        value_suppressed=float(cells.loc[small, value].sum()),
    )


def refuse_per_device(frame: pd.DataFrame, *, value: str, path: Path) -> None:
    """Refuse a file that looks like per-device records: an identifier column, or unit rows with times."""
    personal = [str(c) for c in frame.columns if _PERSONAL.search(str(c))]
    if personal:
        raise SourceError(
            f"looks like per-device records (column '{personal[0]}'); give aggregated counts only", path=path
        )
    timestamps = [str(c) for c in frame.columns if _TIMESTAMP.search(str(c))]
    values = pd.to_numeric(frame[value], errors="coerce") if value in frame.columns else None
    if timestamps and values is not None and len(values) > 1 and bool((values == 1).all()):
        raise SourceError(
            f"looks like per-device records (every '{value}' is 1, with timestamps in "
            f"'{timestamps[0]}'); give aggregated counts only",
            path=path,
        )


def ingest(source: SourceConfig, ctx: BuildContext) -> IngestResult:
    """Read the zoning, the OD matrix (``path``) and the presence counts, suppress, write three tables.

    Every file is read and checked before anything is written.
    """
    k = source.k_anonymity or DEFAULT_K
    zoning = read_zoning(source, ctx.config.resolve(source.zoning or ""), crs=ctx.crs)
    zone_ids = set(zoning["zone_id"])
    od_path = ctx.path_of(source)
    od = read_counts(od_path, keys=("origin", "destination"), value="trips", zone_ids=zone_ids)
    presence = None
    if source.presence is not None:
        presence_path = ctx.config.resolve(source.presence)
        presence = read_counts(presence_path, keys=("zone_id",), value="count", zone_ids=zone_ids)
    layers = [_write(ctx, source, ZONING_SUFFIX, zoning, "provider zoning", {"zones": len(zoning)}, [])]
    layers.append(_write_suppressed(ctx, source, OD_SUFFIX, od, value="trips", k=k, what="OD"))
    if presence is not None:
        layers.append(
            _write_suppressed(ctx, source, PRESENCE_SUFFIX, presence, value="count", k=k, what="presence")
        )
    return IngestResult(source=source, path=od_path, layers=layers)


def read_zoning(source: SourceConfig, path: Path, *, crs: str) -> gpd.GeoDataFrame:
    """The provider's zone polygons in the twin's CRS (not clipped: areal weights need whole zones)."""
    raw = read_layer(source, path)
    id_column = source.zoning_id or "zone_id"
    if id_column not in raw.attributes.columns:
        available = ", ".join(str(c) for c in raw.attributes.columns) or "(none)"
        raise SourceError(f"no zone id column '{id_column}'; available: {available}", path=path)
    ids = raw.attributes[id_column].astype(str)
    if ids.duplicated().any():
        raise SourceError(f"zone id '{ids[ids.duplicated()].iloc[0]}' appears twice", path=path)
    kept, geometries, _ = prepare_geometries(raw.geometries, source_crs=raw.crs, target_crs=crs, area=None)
    return gpd.GeoDataFrame(
        {"zone_id": ids[kept].to_numpy()}, geometry=gpd.GeoSeries(geometries, crs=crs), crs=crs
    )


def read_counts(path: Path, *, keys: Sequence[str], value: str, zone_ids: set[str]) -> pd.DataFrame:
    """Counts per zone key (and ``hour`` when given), checked: known zones, non-negative numbers.

    Repeated cells are summed. ``hour`` is 0–23, or empty for a count over the whole period.
    """
    frame = _read_csv(path)
    refuse_per_device(frame, value=value, path=path)
    missing = [c for c in (*keys, value) if c not in frame.columns]
    if missing:
        need = ", ".join((*keys, "[hour]", value))
        raise SourceError(f"missing column(s) {', '.join(missing)} (need {need})", path=path)
    numbers = pd.to_numeric(frame[value], errors="coerce")
    bad = np.flatnonzero((numbers.isna() | (numbers < 0) | ~np.isfinite(numbers.fillna(0))).to_numpy())
    if len(bad):
        raise SourceError(f"row {bad[0] + 2}: '{value}' must be a non-negative number", path=path)
    for key in keys:
        known = frame[key].astype(str).isin(zone_ids).to_numpy()
        if not known.all():
            row = int(np.flatnonzero(~known)[0])
            raise SourceError(
                f"row {row + 2}: {key} zone id '{frame[key].iloc[row]}' is not in the zoning", path=path
            )
    cells = pd.DataFrame({key: frame[key].astype(str) for key in keys})
    cells["hour"] = _hours(frame, path)
    cells[value] = numbers.astype(float)
    return cells.groupby([*keys, "hour"], dropna=False)[value].sum().reset_index()


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except FileNotFoundError:
        raise SourceError("file not found", path=path) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SourceError(f"not a readable CSV file: {str(exc).splitlines()[0]}", path=path) from None


def _hours(frame: pd.DataFrame, path: Path) -> pd.Series:
    if "hour" not in frame.columns:
        return pd.Series(pd.NA, index=frame.index, dtype="Int64")
    hours = pd.to_numeric(frame["hour"], errors="coerce")
    wrong = hours.isna() | ~hours.between(0, 23) | (hours.fillna(0) % 1 != 0)
    bad = np.flatnonzero((frame["hour"].notna() & wrong).to_numpy())
    if len(bad):
        raise SourceError(f"row {bad[0] + 2}: hour must be a whole hour 0–23 or empty", path=path)
    return hours.astype("Int64")


def _write_suppressed(
    ctx: BuildContext,
    source: SourceConfig,
    suffix: str,
    cells: pd.DataFrame,
    *,
    value: str,
    k: int,
    what: str,
) -> IngestedLayer:
    result = suppress_small_cells(cells, value=value, k=k)
    unit = "trips" if value == "trips" else "counted people"
    note = (
        f"{what}: {result.cells_suppressed} of {result.cells_total} cells under k = {k} suppressed "
        f"(dropped), {result.value_suppressed:,.0f} of {result.value_total:,.0f} {unit}"
    )
    return _write(ctx, source, suffix, result.kept, what, {"suppression": result.as_dict(k=k)}, [note])


def _write(
    ctx: BuildContext,
    source: SourceConfig,
    suffix: str,
    frame: pd.DataFrame,
    what: str,
    quality: dict[str, Any],
    notes: list[str],
) -> IngestedLayer:
    table = f"{source.name}{suffix}"
    rows = ctx.store.write_table(table, frame)
    ctx.report(f"{table}: {rows} rows")
    return IngestedLayer(
        table=table, rows=rows, title=f"{source.display_title} ({what})", quality=quality, notes=notes
    )
