"""The energy and heat engines through the seam: one comparison of a scenario that mixes both, on a
tiny twin of two buildings (hand-checked PV and canopy), and the demo's shared-data lookup.

Needs the shared Helsinki EPW and Swedish TABULA file (skipped with the reason when ../shared is absent).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

import civictwin.cli.scenario  # noqa: F401  (registers the commands)
from civictwin.cli import main
from civictwin.config import load_config
from civictwin.demo import demo_data_note, demo_energy_files, write_demo_config
from civictwin.engines.energy.params import sample
from civictwin.engines.registry import intervention_catalog, load_engines
from civictwin.errors import ScenarioError
from civictwin.scenarios.spec import load_scenario
from civictwin.store.duckdb import DuckDBStore

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"
CRS = "EPSG:3067"
X0, Y0 = 385_000.0, 6_671_000.0
MIXED = """name = "mixed"
baseline = "baseline"

[[interventions]]
type = "pv_uptake"
zones = ["east"]
share = 0.5

[[interventions]]
type = "plant_street_trees"
streets = ["Testikatu"]
spacing_m = 20.0
crown_radius_m = 5.0
"""


def _box(x1: float, y1: float, x2: float, y2: float) -> shapely.Geometry:
    return shapely.box(X0 + x1, Y0 + y1, X0 + x2, Y0 + y2)


def _layers() -> dict[str, gpd.GeoDataFrame]:
    """200 m × 200 m: two 20 m × 20 m four-storey blocks of flats (west and east), one street along
    y = 100 (walkable nodes at x = 0, 100, 200), a 0.85 ha park, one OSM tree, two zones."""
    buildings = gpd.GeoDataFrame(
        {"osm_type": ["way", "way"], "osm_id": [1, 2], "building": ["apartments"] * 2,
         "use": ["residential"] * 2, "levels": [4, 4], "height_m": [12.0, 12.0], "height_source": ["tag"] * 2,
         "floor_area_m2": [1600.0, 1600.0], "start_date": ["1960", "1990"], "population_est": [40.0, 40.0]},
        geometry=[_box(0, 0, 20, 20), _box(180, 180, 200, 200)], crs=CRS,
    )  # fmt: skip
    xy = [(X0, Y0 + 100), (X0 + 100, Y0 + 100), (X0 + 200, Y0 + 100)]
    nodes = gpd.GeoDataFrame({"node_id": [1, 2, 3]}, geometry=shapely.points(xy), crs=CRS)
    rows = []
    for a, b, seq in ((0, 1, 0), (1, 2, 1)):
        for u, v, sign in ((a, b, ""), (b, a, "-")):
            rows.append({"edge_id": f"{sign}9_{seq}", "osm_id": 9, "name": "Testikatu", "lanes": 1, "car": True,
                         "bus": True, "walk": True, "from_node": u + 1, "to_node": v + 1, "length_m": 100.0,
                         "geometry": shapely.LineString([xy[u], xy[v]])})  # fmt: skip
    empty = gpd.GeoDataFrame(
        {"kind": pd.Series(dtype=str), "landuse": pd.Series(dtype=str)}, geometry=[], crs=CRS
    )
    return {
        "buildings_3d": buildings,
        "network_nodes": nodes,
        "network_edges": gpd.GeoDataFrame(rows, crs=CRS),
        "green": gpd.GeoDataFrame({"kind": ["park"]}, geometry=[_box(100, 0, 200, 85)], crs=CRS),
        "water": empty,
        "landuse": empty,
        "trees": gpd.GeoDataFrame({"osm_id": [5]}, geometry=[shapely.Point(X0 + 50, Y0 + 50)], crs=CRS),
        "zones": gpd.GeoDataFrame(
            {"zone_id": ["west", "east"]}, geometry=[_box(0, 0, 100, 200), _box(100, 0, 200, 200)], crs=CRS
        ),
    }


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny twin compared: ``baseline`` against ``mixed`` (energy and heat), 2 seeds."""
    if demo_energy_files(SHARED) is None:
        pytest.skip(f"shared EPW or TABULA file absent under {SHARED}")
    twin_dir = tmp_path_factory.mktemp("mixed-twin")
    store_path = load_config(write_demo_config(twin_dir, shared=SHARED)).store_path
    with DuckDBStore.create(store_path, crs=CRS) as store:
        for name, frame in _layers().items():
            store.write_table(name, frame)
            store.put_record("catalog", name, {"title": name, "access": "public", "rows": len(frame)})
    (twin_dir / "heat.toml").write_text("cell_m = 8.0\nfirst_hour = 12\nlast_hour = 12\n")
    (twin_dir / "scenarios").mkdir()
    (twin_dir / "scenarios" / "mixed.toml").write_text(MIXED)
    main(
        [
            "compare",
            "baseline",
            "mixed",
            "--twin",
            str(twin_dir),
            "--seeds",
            "2",
            "--workers",
            "1",
            "--id",
            "mix",
        ]
    )
    return twin_dir / "runs" / "mix"


def test_a_mixed_scenario_runs_both_engines_over_the_same_seeds(compared: Path) -> None:
    manifest = json.loads((compared / "manifest.json").read_text())
    assert sorted(manifest["engines"]) == ["energy", "heat"]
    seeds = {(r["engine"], r["scenario"]): [] for r in manifest["runs"]}
    for run in manifest["runs"]:
        seeds[(run["engine"], run["scenario"])].append(run["seed"])
    assert {key: sorted(value) for key, value in seeds.items()} == {
        ("energy", "baseline"): [1, 2], ("energy", "mixed"): [1, 2],
        ("heat", "baseline"): [1, 2], ("heat", "mixed"): [1, 2],
    }  # fmt: skip
    assert manifest["engines"]["energy"]["parameters"]["uncertain"]["u_value_factor"]["sampled"] is True
    kpis = {(k["engine"], k["kpi"]) for k in json.loads((compared / "comparison.json").read_text())["kpis"]}
    assert ("energy", "buildings_pv_mwh") in kpis and ("energy", "buildings_co2_t") in kpis
    assert ("heat", "canopy_cover") in kpis and ("heat", "residents_utci_strong_heat") in kpis


def test_every_seed_saved_every_declared_table_complete_and_no_solweig_rasters(compared: Path) -> None:
    engines = load_engines(["energy", "heat"])
    for name, installed in engines.items():
        for scenario in ("baseline", "mixed"):
            seed = compared / "seeds" / name / scenario / "seed_1"
            for spec in installed.engine.tables:
                frame = pd.read_parquet(seed / f"{spec.name}.parquet")
                assert {*spec.key, *(column for column, _ in spec.values)} <= set(frame.columns)
                assert not frame.duplicated(list(spec.key)).any()
            assert not (seed / "work" / "solweig").exists()
    # the body's absorption is not sampled by default, so both seeds of a scenario share one Tmrt
    for scenario in ("baseline", "mixed"):
        assert len(list((compared / "work" / "heat" / scenario / "tmrt").glob("tmrt-*.npy"))) == 1
    energy_zones = pd.read_parquet(compared / "seeds" / "energy" / "baseline" / "seed_1" / "zones.parquet")
    assert sorted(energy_zones["zone_id"]) == ["east", "west"]


def test_pv_goes_exactly_on_the_selected_zone_with_the_hand_computed_capacity(compared: Path) -> None:
    diff = pd.read_parquet(compared / "tables" / "energy.buildings" / "diff_mixed.parquet").set_index(
        "osm_id"
    )
    # east block: 20 m square roof less a 1 m setback = 18 × 18 = 324 m², modules on half (162 m²), half
    # of it taken up, at each seed's drawn module efficiency (0.20 kWp/m² at the centre: 16.2 kWp), the
    # mean over seeds 1 and 2; the west block keeps none
    efficiency = [sample(seed, assumed=True).pv.module_efficiency for seed in (1, 2)]
    assert diff.loc[2, "pv_kwp_diff"] == pytest.approx(162 * 0.5 * sum(efficiency) / 2)
    assert diff.loc[1, "pv_kwp_diff"] == 0.0
    assert diff.loc[1, "heating_need_kwh_diff"] == 0.0 and diff.loc[2, "heating_need_kwh_diff"] == 0.0
    # the report maps only the values that change beyond noise: PV capacity and yield; the building's CO2
    # falls in both seeds, but by amounts that follow each seed's drawn PV efficiency and losses, and with
    # two seeds (t(0.975, 1) = 12.7) its paired interval still holds zero
    unmapped = re.findall(r"Not mapped \(no change beyond noise[^<]*", (compared / "report.html").read_text())
    buildings = next(line for line in unmapped if "heating_need_kwh_m2" in line)
    assert "pv_kwp" not in buildings and "pv_kwh" not in buildings and "co2_kg" in buildings


def test_street_trees_raise_canopy_by_the_cells_they_plant(compared: Path) -> None:
    record = json.loads((compared / "comparison.json").read_text())
    canopy = {k["scenario"]: k["mean"] for k in record["kpis"] if k["kpi"] == "canopy_cover"}
    runs = json.loads((compared / "manifest.json").read_text())["runs"]
    changed = next(
        r["details"]["changed_cells"] for r in runs if (r["engine"], r["scenario"]) == ("heat", "mixed")
    )
    # 25 × 25 cells of 8 m; the OSM tree's crown covers one cell centre, the street trees `changed` more
    assert canopy["baseline"] == pytest.approx(1 / 625)
    assert changed > 0 and canopy["mixed"] == pytest.approx((1 + changed) / 625)


def test_an_unknown_type_names_the_file_the_index_and_the_installed_engines(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text('name = "typo"\n[[interventions]]\ntype = "pv_uptake"\nuses = ["residential"]\nshare = 0.5\n'
                    '[[interventions]]\ntype = "plant_trees"\ncount = 3\n')  # fmt: skip
    catalog = intervention_catalog(load_engines())
    with pytest.raises(ScenarioError) as err:
        load_scenario(path, catalog)
    assert err.value.user_message() == (
        f"{path}: interventions[1] (plant_trees): no installed engine knows the intervention type "
        "'plant_trees' (installed engines: energy, heat, traffic)"
    )


def test_the_demo_writes_energy_only_where_the_shared_data_is(tmp_path: Path) -> None:
    absent = tmp_path / "no-shared"
    config = load_config(write_demo_config(tmp_path / "bare", shared=absent))
    assert config.energy.weather is None
    assert "[energy] left out" in (tmp_path / "bare" / "twin.toml").read_text()
    assert demo_data_note(absent) == (
        f"no {absent / 'weather' / 'FIN_Helsinki.029740_IWEC.epw'} or {absent / 'tabula' / 'sweden.csv'}: "
        "the demo twin has no [energy] section, so the energy and heat engines (netzero_zone, "
        "green_main_street) cannot run on it"
    )
    if demo_energy_files(SHARED) is None:
        pytest.skip(f"shared EPW or TABULA file absent under {SHARED}")
    full = load_config(write_demo_config(tmp_path / "full", shared=SHARED))
    assert full.energy.weather is not None and full.energy.weather.path.endswith(
        "FIN_Helsinki.029740_IWEC.epw"
    )
    assert full.energy.typology is not None and "Finland" in full.energy.typology.note
    assert demo_data_note(SHARED) is None
