"""Scenario files: valid ones load with every intervention type of the installed engines; bad ones
give one line naming the file, the intervention and the key."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import geopandas as gpd
import pytest

from civictwin.engines.registry import intervention_catalog
from civictwin.engines.traffic.edits import validate_scenario
from civictwin.engines.traffic.engine import TrafficEngine
from civictwin.engines.traffic.interventions import INTERVENTIONS, CloseStreets, ScaleDemand, WorksClosure
from civictwin.errors import ScenarioError
from civictwin.scenarios.spec import load_scenario, parse_scenario, scenario_template

CATALOG = intervention_catalog([TrafficEngine()])
INTERVENTION_TYPES = list(INTERVENTIONS)

Grid = tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]

FULL = """
name = "everything"
description = "One of each."
baseline = "baseline"

[[interventions]]
type = "close_streets"
streets = ["Main Street"]
modes = ["car", "bus"]

[[interventions]]
type = "one_way"
osm_ids = [200]
keep = "reverse"

[[interventions]]
type = "reverse"
edge_ids = ["202_0"]

[[interventions]]
type = "speed_limit"
polygon = "POLYGON ((24 60, 25 60, 25 61, 24 61, 24 60))"
speed_kmh = 30

[[interventions]]
type = "bus_lane"
streets = ["Main Street"]

[[interventions]]
type = "modal_filter"
at = [24.5, 60.1]

[[interventions]]
type = "pedestrianise"
polygon = "POLYGON ((24 60, 25 60, 25 61, 24 61, 24 60))"
allow_bikes = false

[[interventions]]
type = "works_closure"
streets = ["Row 0 Street"]
begin_s = 600
end_s = 1200

[[interventions]]
type = "transit_frequency"
route = "4"
factor = 1.5

[[interventions]]
type = "scale_demand"
at = [24.94, 60.17]
extra_trips = 500
end_s = 3600

[[interventions]]
type = "cycle_lane"
streets = ["Main Street"]

[[interventions]]
type = "transit_line"
name = "X1"
stops = [[24.93, 60.16], [24.94, 60.16]]
headway_min = 7.5
"""


def write(tmp_path: Path, text: str, name: str = "plan.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_every_intervention_type_loads(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    scenario = load_scenario(path, CATALOG)
    assert [i.type for i in scenario.interventions] == INTERVENTION_TYPES
    assert scenario.name == "everything"
    assert scenario.file_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert scenario.path == path
    close = scenario.interventions[0]
    assert isinstance(close, CloseStreets) and close.modes == ["car", "bus"]
    works = scenario.interventions[7]
    assert isinstance(works, WorksClosure) and (works.begin_s, works.end_s, works.modes) == (
        600,
        1200,
        ["car"],
    )
    demand = scenario.interventions[9]
    assert isinstance(demand, ScaleDemand) and demand.extra_trips == 500 and demand.factor is None


def test_defaults() -> None:
    scenario = parse_scenario({"name": "b"}, CATALOG, origin="b.toml")
    assert scenario.baseline == "baseline" and scenario.interventions == [] and scenario.file_hash == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'name = "x"\n[[interventions]]\ntype = "close_streets"\nmodes = ["car"]\n',
            "interventions[0] (close_streets): select edges with at least one of streets",
        ),
        (
            'name = "x"\n[[interventions]]\ntype = "speed_limit"\nstreets = ["A"]\nspeed_kmh = -5\n',
            "interventions[0] (speed_limit): speed_kmh: Input should be greater than 0",
        ),
        (
            'name = "x"\n[[interventions]]\ntype = "teleport"\n',
            "interventions[0] (teleport): no installed engine knows the intervention type 'teleport' "
            "(installed engines: traffic)",
        ),
        ('name = "x"\n[[interventions]]\nstreets = ["A"]\n', "interventions[0]: intervention needs a `type`"),
        ('name = "x"\ncolour = "red"\n', "colour: unknown key"),
        ('description = "no name"\n', "name: required key is missing"),
        (
            'name = "x"\n[[interventions]]\ntype = "close_streets"\nstreets = ["A"]\nmodes = ["boat"]\n',
            "interventions[0] (close_streets): modes[0]: Input should be 'all', 'car', 'bus', 'bike' or 'walk'",
        ),
        (
            'name = "x"\n[[interventions]]\ntype = "works_closure"\nstreets = ["A"]\nbegin_s = 50\nend_s = 10\n',
            "interventions[0] (works_closure): end_s must be after begin_s",
        ),
        (
            'name = "x"\n[[interventions]]\ntype = "scale_demand"\nfactor = 1.2\nat = [24.9, 60.1]\n',
            "interventions[0] (scale_demand): give either `factor`, or an event",
        ),
        (
            'name = "x"\n[[interventions]]\ntype = "modal_filter"\nat = [240, 60]\n',
            "interventions[0] (modal_filter): at[0]: Input should be less than or equal to 180",
        ),
        ('name = "x" = 3\n', "not valid TOML"),
    ],
)
def test_bad_files_give_one_line_naming_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, CATALOG)
    message = info.value.user_message()
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="scenario file not found"):
        load_scenario(tmp_path / "nope.toml", CATALOG)


def test_template_is_valid_toml_and_a_valid_scenario(tmp_path: Path) -> None:
    text = scenario_template("my_plan", examples={"traffic": TrafficEngine().scenario_examples()})
    assert tomllib.loads(text)["name"] == "my_plan"
    assert load_scenario(write(tmp_path, text), CATALOG).interventions == []
    for kind in INTERVENTION_TYPES:
        assert f'type = "{kind}"' in text
    uncommented = "\n".join(line.removeprefix("# ") for line in text.splitlines() if line.startswith("# ["))
    assert uncommented.count("[[interventions]]") == len(INTERVENTION_TYPES)


def test_validate_lists_every_selection_problem(grid: Grid, tmp_path: Path) -> None:
    edges, _ = grid
    text = (
        'name = "x"\n'
        '[[interventions]]\ntype = "close_streets"\nstreets = ["Main Street", "Nowhere Road"]\n'
        '[[interventions]]\ntype = "speed_limit"\nedge_ids = ["999_0"]\nspeed_kmh = 30\n'
        '[[interventions]]\ntype = "one_way"\nosm_ids = [200]\n'
    )
    path = write(tmp_path, text)
    problems = validate_scenario(load_scenario(path, CATALOG), edges, crs="EPSG:32635")
    assert problems == [
        f"{path}: interventions[0] (close_streets): streets: no street named 'Nowhere Road' in the network",
        f"{path}: interventions[1] (speed_limit): edge_ids: no edge '999_0' in the network",
    ]


def test_validate_accepts_a_good_scenario(grid: Grid, tmp_path: Path) -> None:
    edges, _ = grid
    path = write(
        tmp_path, 'name = "x"\n[[interventions]]\ntype = "close_streets"\nstreets = ["main street"]\n'
    )
    assert validate_scenario(load_scenario(path, CATALOG), edges, crs="EPSG:32635") == []


def test_the_documented_example_is_valid() -> None:
    doc = Path(__file__).resolve().parents[3] / "docs" / "traffic-engine.md"
    example = doc.read_text(encoding="utf-8").split("```toml\n", 1)[1].split("```", 1)[0]
    scenario = parse_scenario(tomllib.loads(example), CATALOG, origin=str(doc))
    assert [i.type for i in scenario.interventions] == ["close_streets", "speed_limit"]


def test_validate_finds_problems_of_the_combination(grid: Grid, tmp_path: Path) -> None:
    edges, _ = grid
    text = 'name = "x"\n[[interventions]]\ntype = "bus_lane"\nstreets = ["Row 0 Street"]\n'
    problems = validate_scenario(load_scenario(write(tmp_path, text), CATALOG), edges, crs="EPSG:32635")
    assert problems == [
        f"{tmp_path / 'plan.toml'}: interventions[0] (bus_lane): no selected car edge has more than 1 lane(s) to convert"
    ]
