"""One heat run on a tiny hand-made twin: hand-checked canopy and green access, deterministic seeds."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from heat_surfaces import CRS

from civictwin.engines.base import Kpi
from civictwin.engines.heat.interventions import PlantStreetTrees
from civictwin.engines.heat.run import HeatInputs, Layers, prepare_inputs, run_seed
from civictwin.engines.heat.settings import HeatSettings, load_settings
from civictwin.engines.heat.weather import HotDay
from civictwin.errors import ConfigError, EngineError

X0, Y0 = 385_000.0, 6_671_000.0


def _tiny_layers() -> Layers:
    """200 m x 200 m: a 12 m house (24 residents) at the south-west corner, an empty one at the
    north-east corner (they span the grid), a 0.8 ha park (x 100-200, y 0-85), one tree at (50, 50),
    and a street along y = 100 with walkable nodes at x = 0, 100, 200."""

    def box(x1: float, y1: float, x2: float, y2: float) -> shapely.Geometry:
        return shapely.box(X0 + x1, Y0 + y1, X0 + x2, Y0 + y2)

    buildings = gpd.GeoDataFrame(
        {
            "osm_id": [1, 2],
            "use": ["residential", "commercial"],
            "height_m": [12.0, 12.0],
            "population_est": [24.0, 0.0],
        },
        geometry=[box(0, 0, 8, 8), box(192, 192, 200, 200)],
        crs=CRS,
    )
    node_xy = [(X0, Y0 + 100), (X0 + 100, Y0 + 100), (X0 + 200, Y0 + 100)]
    nodes = gpd.GeoDataFrame({"node_id": [1, 2, 3]}, geometry=shapely.points(node_xy), crs=CRS)
    rows = []
    for a, b, seq in ((0, 1, 0), (1, 2, 1)):
        for u, v, sign in ((a, b, ""), (b, a, "-")):
            rows.append({"edge_id": f"{sign}9_{seq}", "osm_id": 9, "name": "Testikatu", "lanes": 1, "car": True,
                         "bus": True, "walk": True, "from_node": u + 1, "to_node": v + 1, "length_m": 100.0,
                         "geometry": shapely.LineString([node_xy[u], node_xy[v]])})  # fmt: skip
    edges = gpd.GeoDataFrame(rows, crs=CRS)
    green = gpd.GeoDataFrame({"kind": ["park"]}, geometry=[box(100, 0, 200, 85)], crs=CRS)
    empty = gpd.GeoDataFrame({"kind": [], "landuse": []}, geometry=[], crs=CRS)
    trees = gpd.GeoDataFrame({"osm_id": [5]}, geometry=[shapely.Point(X0 + 50, Y0 + 50)], crs=CRS)
    zones = gpd.GeoDataFrame(
        {"zone_id": ["west", "east"]}, geometry=[box(0, 0, 100, 200), box(100, 0, 200, 200)], crs=CRS
    )
    return Layers(buildings=buildings, trees=trees, green=green, water=empty, landuse=empty, edges=edges,
                  nodes=nodes, zones=zones, crs=CRS)  # fmt: skip


def _day() -> HotDay:
    stamp = pd.Timestamp("2025-07-15 13:00")
    return HotDay(source="test", latitude=60.17, longitude=24.94, utc_offset_h=2.0, times=(stamp,),
                  temp_air_c=(30.0,), relative_humidity_pct=(40.0,), wind_speed_ms=(2.0,),
                  ghi_wm2=(750.0,), dni_wm2=(800.0,), dhi_wm2=(120.0,))  # fmt: skip


SETTINGS = HeatSettings(cell_m=8.0, first_hour=12, last_hour=12)


@pytest.fixture(scope="module")
def baseline() -> HeatInputs:
    return prepare_inputs(_tiny_layers(), _day(), [], settings=SETTINGS, origin="base", base_dir=Path("."))


@pytest.fixture(scope="module")
def seed_one(
    baseline: HeatInputs, tmp_path_factory: pytest.TempPathFactory
) -> tuple[tuple[Kpi, ...], dict[str, pd.DataFrame]]:
    return run_seed(baseline, seed=1, workdir=tmp_path_factory.mktemp("seed1"))


def test_a_run_reports_hand_checked_canopy_and_green_access(
    seed_one: tuple[tuple[Kpi, ...], dict[str, pd.DataFrame]],
) -> None:
    kpis, tables = seed_one
    values = {k.name: k.value for k in kpis}
    # 25 x 25 cells of 8 m; the tree's 3 m crown at (50, 50) holds one cell centre, (52, 52): 1 / 625
    assert values["canopy_cover"] == pytest.approx(1 / 625)
    # the house's doors snap ~95 m to node 1, then 100 m to node 2, 15 m from the park: < 300 m
    assert values["residents_green_access"] == pytest.approx(24.0)
    assert values["residents_green_access_share"] == pytest.approx(1.0)
    zones = tables["zones"].set_index("zone_id")
    assert zones.loc["west", "residents"] == pytest.approx(24.0) and zones.loc["east", "residents"] == 0.0
    assert 25.0 < values["heat_air_temp_c"] < 30.0 + 3.5  # EPW 30 °C plus at most UHI_max
    assert np.isfinite(values["heat_utci_peak_c"])
    assert set(tables["cells"].columns) == {
        "cell_id",
        "air_temp_peak_c",
        "utci_peak_c",
        "canopy_share",
        "geometry",
    }


def test_the_same_seed_gives_the_same_numbers_and_seeds_differ(
    baseline: HeatInputs, seed_one: tuple[tuple[Kpi, ...], dict[str, pd.DataFrame]], tmp_path: Path
) -> None:
    first, _ = run_seed(baseline, seed=1, workdir=tmp_path / "a")
    other, _ = run_seed(baseline, seed=4, workdir=tmp_path / "b")
    assert first == seed_one[0]
    assert first[1].value != other[1].value  # heat_air_temp_c moves with the sampled Kc of grass (the park)


def test_street_trees_raise_canopy_cover_by_exactly_the_cells_they_plant(
    baseline: HeatInputs, tmp_path: Path
) -> None:
    trees = PlantStreetTrees(
        type="plant_street_trees", streets=["Testikatu"], spacing_m=20.0, crown_radius_m=5.0
    )
    plan = prepare_inputs(
        _tiny_layers(), _day(), [(0, trees)], settings=SETTINGS, origin="plan", base_dir=Path(".")
    )
    kpis, _ = run_seed(plan, seed=1, workdir=tmp_path)
    canopy = next(k.value for k in kpis if k.name == "canopy_cover")
    assert plan.changed_cells > 0
    assert canopy == pytest.approx((1 + plan.changed_cells) / 625)


def test_heat_toml_problems_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "heat.toml").write_text("cell_m = 2\nspeed = 3\n")
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path)
    assert err.value.user_message() == f"{tmp_path / 'heat.toml'}: speed: unknown key"
    (tmp_path / "heat.toml").write_text("cell_m = 2\n")
    with pytest.raises(ConfigError, match=r"heat\.toml: epw: no weather file given"):
        load_settings(tmp_path).epw_path(tmp_path)
    assert load_settings(tmp_path, {"cell_m": 5}).cell_m == 5.0


def test_empty_layers_are_one_line_or_simply_absent() -> None:
    layers = _tiny_layers()
    no_buildings = Layers(**{**layers.__dict__, "buildings": layers.buildings.iloc[:0]})
    with pytest.raises(EngineError) as err:
        prepare_inputs(no_buildings, _day(), [], settings=SETTINGS, origin="base", base_dir=Path("."))
    assert (
        err.value.user_message()
        == "the twin has no buildings (layer buildings_3d is empty): nothing to place a grid on"
    )
    bare = Layers(**{**layers.__dict__, "trees": layers.trees.iloc[:0], "green": layers.green.iloc[:0]})
    inputs = prepare_inputs(bare, _day(), [], settings=SETTINGS, origin="base", base_dir=Path("."))
    assert not inputs.surface.canopy_height_m.any() and inputs.green_access_residents.sum() == 0.0
