"""Socio-demographics on zones: both weightings against hand computation, totals, coverage, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import Point, box

from civictwin.errors import SourceError
from civictwin.model.sociodemo import interpolate

CRS = "EPSG:3067"
SHARED_GRID = (
    Path(__file__).resolve().parents[3].parent / "shared/data/helsinki/helsinki_population_grid_2020.gpkg"
)


@pytest.fixture(scope="module")
def zones() -> gpd.GeoDataFrame:
    """Z1 and Z2 side by side (100 m × 100 m each), Z3 above Z1, Z4 far away (no source there)."""
    shapes = [box(0, 0, 100, 100), box(100, 0, 200, 100), box(0, 100, 100, 200), box(0, 300, 100, 400)]
    return gpd.GeoDataFrame({"zone_id": ["z1", "z2", "z3", "z4"]}, geometry=shapes, crs=CRS)


@pytest.fixture(scope="module")
def cells() -> gpd.GeoDataFrame:
    """C1 spans Z1 and a third of Z2... (0–150 m); C2 half in Z2, half outside every zone; C3 = Z3."""
    return gpd.GeoDataFrame(
        {"people": [300, 100, 50], "income": [30_000.0, 20_000.0, 10_000.0]},
        geometry=[box(0, 0, 150, 100), box(150, 0, 250, 100), box(0, 100, 100, 200)], crs=CRS,
    )  # fmt: skip


@pytest.fixture(scope="module")
def buildings() -> gpd.GeoDataFrame:
    """Residents: 10 in C1∩Z1, 30 in C1∩Z2, 20 in C2∩Z2, 20 in C2 outside the zones, none in C3."""
    points = [Point(50, 50), Point(120, 50), Point(175, 50), Point(225, 50)]
    return gpd.GeoDataFrame({"population_est": [10.0, 30.0, 20.0, 20.0]}, geometry=points, crs=CRS)


def _by_zone(frame: pd.DataFrame, column: str) -> dict[str, float]:
    return dict(zip(frame["zone_id"], frame[column], strict=True))


def test_areal_weighting_splits_counts_and_averages_intensive_values(
    zones: gpd.GeoDataFrame, cells: gpd.GeoDataFrame
) -> None:
    result = interpolate(zones, cells, counts=["people"], intensive=["income"], weighting="area")
    people, income = _by_zone(result.values, "people"), _by_zone(result.values, "income")
    # Z1: 2/3 of C1 (300) = 200; Z2: 1/3 of C1 + 1/2 of C2 = 100 + 50 = 150; Z3: all of C3
    assert people["z1"] == pytest.approx(200.0)
    assert people["z2"] == pytest.approx(150.0)
    assert people["z3"] == pytest.approx(50.0)
    # Z2's income: C1 over 5,000 m², C2 over 5,000 m² -> (30,000 + 20,000) / 2
    assert income["z1"] == pytest.approx(30_000.0)
    assert income["z2"] == pytest.approx(25_000.0)
    assert income["z3"] == pytest.approx(10_000.0)
    # Z4 lies outside the source: no value, never zero; its coverage says why
    assert math.isnan(people["z4"]) and math.isnan(income["z4"])
    assert _by_zone(result.values, "coverage") == {"z1": 1.0, "z2": 1.0, "z3": 1.0, "z4": 0.0}
    quality = result.quality()
    assert quality["zones_uncovered"] == 1
    assert quality["source_totals"] == {"people": 450.0}
    assert quality["zone_totals"] == {"people": 400.0}  # half of C2 lies outside every zone
    assert "1 of 4 zones lie outside the source" in result.notes()[0]


def test_residents_weighting_splits_by_the_buildings_residents(
    zones: gpd.GeoDataFrame, cells: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame
) -> None:
    result = interpolate(
        zones, cells, counts=["people"], intensive=["income"], weighting="residents", residents=buildings
    )
    people, income = _by_zone(result.values, "people"), _by_zone(result.values, "income")
    # C1 (40 residents): 10/40 of 300 to Z1, 30/40 to Z2; C2 (40): 20/40 of 100 to Z2, 20/40 outside
    assert people["z1"] == pytest.approx(75.0)
    assert people["z2"] == pytest.approx(225.0 + 50.0)
    # C3 holds no residents: weighted by area instead, and counted
    assert people["z3"] == pytest.approx(50.0)
    assert result.fallback_polygons == 1
    # Z2's income weighted by its residents: 30 at 30,000 and 20 at 20,000
    assert income["z1"] == pytest.approx(30_000.0)
    assert income["z2"] == pytest.approx((30 * 30_000 + 20 * 20_000) / 50)
    assert income["z3"] == pytest.approx(10_000.0)
    assert math.isnan(people["z4"])
    assert result.quality()["zone_totals"] == {"people": 400.0}


def test_counts_are_conserved_where_the_zones_cover_the_source(
    cells: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame
) -> None:
    covering = gpd.GeoDataFrame(
        {"zone_id": ["a", "b", "c"]},
        geometry=[box(0, 0, 100, 100), box(100, 0, 250, 100), box(0, 100, 100, 200)], crs=CRS,
    )  # fmt: skip
    for weighting in ("area", "residents"):
        result = interpolate(
            covering, cells, counts=["people"], intensive=[], weighting=weighting, residents=buildings
        )  # type: ignore[arg-type]
        assert result.values["people"].sum() == pytest.approx(450.0)


def test_source_in_degrees_is_reprojected(zones: gpd.GeoDataFrame, cells: gpd.GeoDataFrame) -> None:
    result = interpolate(zones, cells.to_crs("EPSG:4326"), counts=["people"], intensive=[], weighting="area")
    assert _by_zone(result.values, "people")["z2"] == pytest.approx(150.0, rel=1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.set_crs(None, allow_override=True), "grid: has no coordinate reference system"),
        (lambda c: c.assign(income=["high", "low", "mid"]), "grid: income: column 'income' is not numeric"),
        (lambda c: c.drop(columns=["income"]), "grid: income: no column 'income'; available: people"),
        (lambda c: c.set_geometry(c.geometry.translate(10_000, 0)), "grid: covers none of the twin's zones"),
    ],
)
def test_bad_input_is_one_line(
    zones: gpd.GeoDataFrame, cells: gpd.GeoDataFrame, change, message: str
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SourceError) as caught:
        interpolate(zones, change(cells), counts=["people"], intensive=["income"], name="grid")
    assert caught.value.user_message().startswith(message)
    assert "\n" not in caught.value.user_message()


def test_residents_weighting_without_buildings_is_refused(
    zones: gpd.GeoDataFrame, cells: gpd.GeoDataFrame
) -> None:
    with pytest.raises(SourceError, match="needs the twin's buildings"):
        interpolate(zones, cells, counts=["people"], intensive=[], weighting="residents", name="grid")


@pytest.mark.skipif(not SHARED_GRID.exists(), reason="../shared/data (Helsinki population grid) is absent")
def test_helsinki_grid_on_h3_zones_keeps_every_resident() -> None:
    grid = gpd.read_file(SHARED_GRID)
    grid["density"] = grid["population"] / grid.to_crs(CRS).area  # an intensive column: people per m²
    outline = shapely.union_all(grid.geometry.to_numpy()).buffer(0.01)
    cells = h3.h3shape_to_cells_experimental(
        h3.geo_to_h3shape(outline.__geo_interface__), 8, contain="overlap"
    )
    hexagons = [shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)]) for c in cells]
    zones = gpd.GeoDataFrame({"zone_id": cells}, geometry=hexagons, crs="EPSG:4326").to_crs(CRS)
    result = interpolate(zones, grid, counts=["population"], intensive=["density"], weighting="area")
    values = result.values
    # the real grid holds 71,724 residents (HSY 2020); zones covering it keep every one of them
    assert values["population"].sum() == pytest.approx(71_724.0, rel=1e-9)
    # a zone the grid covers whole: its count equals its area-weighted density times its area
    whole = values["coverage"] >= 0.9999
    assert whole.sum() > 0
    area = zones.geometry.area.to_numpy()[whole.to_numpy()]
    np.testing.assert_allclose(
        values.loc[whole, "density"] * area, values.loc[whole, "population"], rtol=1e-6
    )
    assert result.quality()["zones_uncovered"] == int((values["coverage"] == 0).sum())


def test_missing_values_count_nothing_and_stay_out_of_averages(
    zones: gpd.GeoDataFrame, cells: gpd.GeoDataFrame
) -> None:
    gaps = cells.assign(people=[300, None, 50], income=[30_000.0, None, -1.0])
    result = interpolate(zones, gaps, counts=["people"], intensive=["income"], weighting="area")
    people, income = _by_zone(result.values, "people"), _by_zone(result.values, "income")
    assert people["z2"] == pytest.approx(100.0)  # only C1's third; C2 has no count
    assert income["z2"] == pytest.approx(30_000.0)  # C2's missing income is not a zero income
    assert income["z3"] == pytest.approx(-1.0)  # kept as given, and said
    quality = result.quality()
    assert quality["missing_values"] == {"people": 1, "income": 1}
    assert quality["negative_values"] == {"income": 1}
    assert any("hold a negative value" in note for note in result.notes())
