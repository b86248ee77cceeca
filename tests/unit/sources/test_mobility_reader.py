"""The phone-based mobility reader: k-suppression against hand counts, stored tables, refused files.

The provider's zoning is three 1 km squares A, B, C in a row (UTM 35N, central Helsinki); the OD
matrix is 3 × 3 with four cells under k = 10.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import box

from civictwin.build import mobility_on_zones
from civictwin.catalog.metadata import record_derived, record_source
from civictwin.config import SourceKind
from civictwin.errors import ConfigError, SourceError
from civictwin.sources import reader_for
from civictwin.sources.base import BuildContext, IngestResult
from civictwin.sources.mobility import ingest, suppress_small_cells

X0, Y0 = 385_000.0, 6_672_000.0

OD_3X3 = {  # (origin, destination): trips; under 10: A→B 4, B→A 9, C→A 1, C→C 7 (4 cells, 21 trips)
    ("A", "A"): 25, ("A", "B"): 4, ("A", "C"): 12,
    ("B", "A"): 9, ("B", "B"): 30, ("B", "C"): 10,
    ("C", "A"): 1, ("C", "B"): 15, ("C", "C"): 7,
}  # fmt: skip


def _zoning(tmp_path: Path) -> Path:
    features = []
    for i, zone in enumerate("ABC"):
        x = X0 + 1000 * i
        ring = [[x, Y0], [x + 1000, Y0], [x + 1000, Y0 + 1000], [x, Y0 + 1000], [x, Y0]]
        features.append(
            {
                "type": "Feature",
                "properties": {"code": zone},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    path = tmp_path / "zoning.geojson"
    crs = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32635"}}
    path.write_text(json.dumps({"type": "FeatureCollection", "crs": crs, "features": features}))
    return path


def _csv(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _od_lines() -> list[str]:
    return ["origin,destination,trips"] + [f"{o},{d},{t}" for (o, d), t in OD_3X3.items()]


def _ingest(
    make_context: Any, source_entry: Any, tmp_path: Path, od: Path, **options: Any
) -> tuple[IngestResult, BuildContext]:
    entry = source_entry("phone", "mobility", od, zoning=str(_zoning(tmp_path)), zoning_id="code", **options)
    ctx = make_context([entry])
    return ingest(ctx.config.sources[0], ctx), ctx


def test_suppression_of_a_3x3_matrix_by_hand() -> None:
    cells = pd.DataFrame(
        [(o, d, t) for (o, d), t in OD_3X3.items()], columns=["origin", "destination", "trips"]
    )
    result = suppress_small_cells(cells, value="trips", k=10)
    assert (result.cells_total, result.cells_suppressed) == (9, 4)
    assert (result.value_total, result.value_suppressed) == (113.0, 21.0)
    assert result.kept["trips"].sum() == 92.0
    assert sorted(zip(result.kept["origin"], result.kept["destination"], strict=True)) == [
        ("A", "A"), ("A", "C"), ("B", "B"), ("B", "C"), ("C", "B"),
    ]  # fmt: skip
    # a stricter k = 13 also drops A→C 12 and B→C 10
    assert suppress_small_cells(cells, value="trips", k=13).cells_suppressed == 6


def test_ingest_stores_only_cells_of_at_least_k(make_context: Any, source_entry: Any, tmp_path: Path) -> None:
    assert reader_for(SourceKind.MOBILITY) is ingest
    od = _csv(tmp_path, "od.csv", _od_lines())
    presence = _csv(tmp_path, "presence.csv", ["zone_id,hour,count", "A,8,120", "B,8,9", "C,8,10", "A,8,5"])
    result, ctx = _ingest(make_context, source_entry, tmp_path, od, presence=str(presence))
    layers = {layer.table: layer for layer in result.layers}
    assert set(layers) == {"phone_zoning", "phone_od", "phone_presence"}
    stored = ctx.store.read_table("phone_od")
    assert len(stored) == 5 and stored["trips"].sum() == 92.0
    assert layers["phone_od"].quality["suppression"] == {
        "k": 10, "cells_total": 9, "cells_suppressed": 4, "value_total": 113.0, "value_suppressed": 21.0,
        "handling": "dropped",
    }  # fmt: skip
    assert layers["phone_od"].notes == ["OD: 4 of 9 cells under k = 10 suppressed (dropped), 21 of 113 trips"]
    # A's two rows for hour 8 are summed (125) before the threshold; B (9) is suppressed, C (10) kept
    people = ctx.store.read_table("phone_presence").sort_values("zone_id")
    assert people["zone_id"].tolist() == ["A", "C"] and people["count"].tolist() == [125.0, 10.0]
    assert layers["phone_presence"].quality["suppression"]["value_suppressed"] == 9.0
    assert ctx.store.read_frame("phone_zoning").geometry.area.round().tolist() == [1e6, 1e6, 1e6]


def test_a_per_device_file_is_refused(make_context: Any, source_entry: Any, tmp_path: Path) -> None:
    by_id = _csv(tmp_path, "imsi.csv", ["msisdn,origin,destination,trips", "3584012,A,B,1"])
    with pytest.raises(SourceError, match=r"imsi\.csv: looks like per-device records \(column 'msisdn'\)"):
        _ingest(make_context, source_entry, tmp_path, by_id)
    units = ["origin,destination,trips,timestamp", "A,B,1,2026-03-02T08:01:12", "B,C,1,2026-03-02T08:03:40"]
    with pytest.raises(SourceError, match=r"every 'trips' is 1, with timestamps in 'timestamp'"):
        _ingest(make_context, source_entry, tmp_path, _csv(tmp_path, "units.csv", units))


def test_a_zone_id_the_zoning_lacks_is_named_with_its_row(
    make_context: Any, source_entry: Any, tmp_path: Path
) -> None:
    with pytest.raises(SourceError, match=r"hourly\.csv: row 2: hour must be a whole hour 0–23 or empty"):
        hourly = ["origin,destination,hour,trips", "A,B,8.5,30"]
        _ingest(make_context, source_entry, tmp_path, _csv(tmp_path, "hourly.csv", hourly))
    lines = [*_od_lines(), "B,Q7,30"]
    with pytest.raises(SourceError, match=r"od\.csv: row 11: destination zone id 'Q7' is not in the zoning"):
        _ingest(make_context, source_entry, tmp_path, _csv(tmp_path, "od.csv", lines))


def test_build_reaggregates_the_stored_cells_onto_the_twin_zones(
    make_context: Any, source_entry: Any, tmp_path: Path
) -> None:
    """Twin zones T1 = A + west half of B, T2 = east half of B + west half of C (C's east half is outside).

    Kept cells A→A 25, A→C 12, B→B 30, B→C 10, C→B 15 (92 trips) give T1→T1 25 + 7.5 = 32.5,
    T1→T2 6 + 7.5 + 2.5 = 16, T2→T1 7.5 + 3.75 = 11.25, T2→T2 7.5 + 2.5 + 3.75 = 13.75 (73.5 trips).
    """
    od = _csv(tmp_path, "od.csv", _od_lines())
    presence = _csv(tmp_path, "presence.csv", ["zone_id,count", "A,125", "C,10", "B,3"])
    result, ctx = _ingest(make_context, source_entry, tmp_path, od, presence=str(presence))
    now = datetime.now(UTC)
    record_source(ctx.store, result, ingested_at=now)
    halves = [box(X0, Y0, X0 + 1500, Y0 + 1000), box(X0 + 1500, Y0, X0 + 2500, Y0 + 1000)]
    ctx.store.write_table("zones", gpd.GeoDataFrame({"zone_id": ["T1", "T2"]}, geometry=halves, crs=ctx.crs))
    record_derived(ctx.store, "zones", title="Zones", description="", inputs=["phone_zoning"], built_at=now)
    mobility_on_zones(ctx.store, ctx.config, now)
    trips = ctx.store.read_table("mobility_od").set_index(["origin", "destination"])["trips"].to_dict()
    # with C's east half outside: T1→out 6 + 2.5, T2→out 2.5, out→T1 3.75, out→T2 3.75 (18.5 trips)
    assert trips == pytest.approx(
        {("T1", "T1"): 32.5, ("T1", "T2"): 16.0, ("T2", "T1"): 11.25, ("T2", "T2"): 13.75,
         ("T1", "outside"): 8.5, ("T2", "outside"): 2.5, ("outside", "T1"): 3.75, ("outside", "T2"): 3.75}
    )  # fmt: skip
    quality = ctx.store.records("quality")["mobility_od"]
    assert (quality["share_within_zones"], quality["total_in"], quality["total_out"]) == (0.7989, 92.0, 73.5)
    assert quality["total_one_end_outside"] == pytest.approx(18.5)
    assert quality["notes"] == [
        "79.9% of the provider's counts lie within the twin's zones",
        "18.5 trips with one end outside the twin's zones (zone 'outside')",
    ]
    people = ctx.store.read_table("mobility_presence").set_index("zone_id")["count"].to_dict()
    assert people == pytest.approx({"T1": 125.0, "T2": 5.0})  # B's 3 suppressed, half of C outside
    assert ctx.store.records("catalog")["mobility_od"]["publisher"] == "Test publisher"


def test_mobility_options_belong_to_kind_mobility(make_context: Any, source_entry: Any) -> None:
    with pytest.raises(ConfigError, match="kind 'mobility' needs `zoning`"):
        make_context([source_entry("phone", "mobility", "od.csv")])
    with pytest.raises(ConfigError, match=r"option\(s\) k_anonymity, zoning apply only to kind 'mobility'"):
        make_context([source_entry("grid", "grid", "g.csv", zoning="z.geojson", k_anonymity=5)])
