"""A citizen proposal's menu, its field-by-field validation against the installed engines and a
hand-made street network, and the scenario file it runs as (docs/consultation.md#citizen-proposals).

The network: three edges in EPSG:32635 (central Helsinki), ``Mannerheimintie`` (OSM way 201) and
``Kaivokatu`` (202) carrying cars, and a footway ``Esplanadi path`` (203) that does not.
"""

from __future__ import annotations

import tomllib

import geopandas as gpd
import pytest
from shapely.geometry import LineString

from civictwin.engines.registry import intervention_catalog, load_engines
from civictwin.i18n import language
from civictwin.scenarios.proposal import Network, check_draft, menu, scenario_toml
from civictwin.scenarios.proposal_words import WORDS
from civictwin.scenarios.spec import InterventionCatalog, parse_scenario

CRS = "EPSG:32635"
X0, Y0 = 385_000.0, 6_672_000.0


@pytest.fixture(scope="module")
def catalog() -> InterventionCatalog:
    return intervention_catalog(load_engines())


@pytest.fixture(scope="module")
def network() -> Network:
    edges = gpd.GeoDataFrame(
        {
            "edge_id": ["201_0", "202_0", "203_0"],
            "osm_id": [201, 202, 203],
            "name": ["Mannerheimintie", "Kaivokatu", "Esplanadi path"],
            "car": [True, True, False],
        },
        geometry=[LineString([(X0, Y0 + 100 * i), (X0 + 200, Y0 + 100 * i)]) for i in range(3)],
        crs=CRS,
    )
    return Network(edges=edges, crs=CRS)


def _wkt(network: Network, dx: float = 0.0) -> str:
    """A WGS84 square around the network's middle edge, shifted ``dx`` metres east."""
    square = gpd.GeoSeries.from_xy([X0 + 100 + dx], [Y0 + 100], crs=CRS).buffer(60, cap_style="square")
    return str(square.to_crs("EPSG:4326").iloc[0].wkt)


def test_the_menu_offers_map_placed_types_of_every_engine_with_their_settings(
    catalog: InterventionCatalog,
) -> None:
    entries = {e["type"]: e for e in menu(catalog)}
    assert {k: e["placed"] for k, e in entries.items()} == {
        "bus_lane": "streets", "close_streets": "streets", "cycle_lane": "streets", "one_way": "streets",
        "pedestrianise": "streets", "reverse": "streets", "speed_limit": "streets",
        "works_closure": "streets", "plant_street_trees": "streets", "cool_surfaces": "area",
        "depave": "area", "plant_trees_in_area": "area",
    }  # fmt: skip
    speed = entries["speed_limit"]
    assert speed["engine"] == "traffic" and speed["required"] == ["speed_kmh"]
    assert speed["settings"]["speed_kmh"] == {"type": "number", "exclusiveMinimum": 0, "maximum": 200,
                                              "optional": False}  # fmt: skip
    assert speed["settings"]["only_lower"] == {"type": "boolean", "default": True, "optional": False}
    assert entries["one_way"]["settings"]["keep"]["enum"] == ["forward", "reverse"]
    assert entries["bus_lane"]["help"] == "Reserve the rightmost lanes lanes for buses."
    assert [e["type"] for e in menu(catalog, offered=["speed_limit", "depave", "pv_uptake"])] == [
        "depave",
        "speed_limit",
    ]


def test_a_good_draft_has_no_problems_and_becomes_scenario_data(
    catalog: InterventionCatalog, network: Network
) -> None:
    offered = [e["type"] for e in menu(catalog)]
    draft = {
        "title": "  A 30 zone on Kaivokatu ",
        "interventions": [
            {"type": "speed_limit", "osm_ids": [202], "speed_kmh": 30},
            {"type": "plant_trees_in_area", "polygon": _wkt(network), "count": 12},
        ],
    }
    checked = check_draft(draft, catalog, network, offered=offered, max_interventions=5)
    assert checked.problems == []
    assert checked.title == "A 30 zone on Kaivokatu" and checked.description == ""
    assert checked.interventions[0] == {"type": "speed_limit", "osm_ids": [202], "speed_kmh": 30.0,
                                        "only_lower": True}  # fmt: skip
    assert checked.interventions[1]["count"] == 12 and checked.interventions[1]["crown_radius_m"] == 3.0


def test_impossible_interventions_each_get_their_field_and_problem(
    catalog: InterventionCatalog, network: Network
) -> None:
    offered = [e["type"] for e in menu(catalog)]
    far_away = "POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0))"
    flat = "POLYGON ((24.94 60.17, 24.95 60.17, 24.94 60.17, 24.94 60.17))"
    draft = {
        "title": "x",
        "email": "someone@example.org",
        "interventions": [
            {"type": "teleport", "streets": ["Mannerheimintie"]},
            {"type": "speed_limit", "streets": ["Mannerheimintie"], "speed_kmh": 500},
            {"type": "close_streets", "streets": ["Nowhere Street"]},
            {"type": "speed_limit", "streets": ["Esplanadi path"], "speed_kmh": 30},
            {"type": "plant_trees_in_area", "polygon": flat, "count": 5},
            {"type": "depave", "polygon": "POLYGON EMPTY"},
            {"type": "plant_trees_in_area", "polygon": far_away, "count": 5},
            {"type": "pv_uptake", "polygon": far_away, "share": 0.5},
            {"type": "bus_lane", "polygon": _wkt(network, dx=150)},
            {"type": "speed_limit", "speed_kmh": 30},
            "close this street",
        ],
    }
    checked = check_draft(draft, catalog, network, offered=offered, max_interventions=20)
    problems = [(p.field, p.message) for p in checked.problems]
    assert problems[:2] == [("email", "unknown key"), ("title", "at least 3 characters")]
    assert problems[2] == (
        "interventions[0].type",
        "no installed engine knows the intervention type 'teleport' (installed engines: energy, heat, traffic)",
    )
    assert problems[3:8] == [
        ("interventions[1].speed_kmh", "Input should be less than or equal to 200"),
        ("interventions[2].streets", "no street named 'Nowhere Street' in the network"),
        ("interventions[3].streets", "the selected street carries no cars (not drivable): choose a street cars use"),
        ("interventions[4].polygon", "the polygon has no area (draw at least three distinct corners)"),
        ("interventions[5].polygon", "the polygon is empty"),
    ]  # fmt: skip
    assert problems[8] == ("interventions[6].polygon", "the polygon lies outside the twin's area")
    assert problems[9][0] == "interventions[7].type"
    assert problems[9][1].startswith("'pv_uptake' cannot be proposed here (offered: bus_lane, close_streets,")
    assert problems[10:] == [
        ("interventions[8].polygon", "the polygon does not contain any edge"),
        ("interventions[9]", "select edges with at least one of streets, osm_ids, edge_ids or polygon"),
        ("interventions[10]", "expected an object with a type"),
    ]
    assert checked.interventions == []


def test_the_count_of_interventions_and_the_text_fields_are_bounded(
    catalog: InterventionCatalog, network: Network
) -> None:
    one = {"type": "speed_limit", "osm_ids": [201], "speed_kmh": 30}
    too_many = check_draft({"title": "Many", "interventions": [one] * 4}, catalog, network,
                           offered=["speed_limit"], max_interventions=3)  # fmt: skip
    assert [(p.field, p.message) for p in too_many.problems] == [
        ("interventions", "at most 3 interventions per proposal")
    ]
    empty = check_draft({"title": "Tab\x07", "description": "y" * 1001, "interventions": []}, catalog,
                        network, offered=["speed_limit"], max_interventions=3)  # fmt: skip
    assert [(p.field, p.message) for p in empty.problems] == [
        ("title", "control characters are not allowed"),
        ("description", "at most 1000 characters"),
        ("interventions", "add at least one intervention"),
    ]
    assert [
        p.field for p in check_draft([1], catalog, network, offered=[], max_interventions=3).problems
    ] == ["body"]


def test_the_scenario_file_reads_back_as_the_same_scenario(catalog: InterventionCatalog) -> None:
    items = [
        {"type": "speed_limit", "osm_ids": [202], "speed_kmh": 30.0, "only_lower": True},
        {"type": "plant_trees_in_area", "polygon": 'POLYGON ((24.9 60.1, 25 60.1, 25 60.2, 24.9 60.1))',
         "count": 12},
    ]  # fmt: skip
    text = scenario_toml("proposal-7", 'Quiet "centre"\nplease', items)
    scenario = parse_scenario(tomllib.loads(text), catalog, origin="proposal-7.toml")
    assert scenario.name == "proposal-7" and scenario.description == 'Quiet "centre"\nplease'
    assert scenario.baseline == "baseline"
    assert [i.model_dump(mode="json", exclude_none=True) for i in scenario.interventions] == [
        items[0],
        {**items[1], "crown_radius_m": 3.0, "height_m": 10.0},
    ]


def test_the_menu_reads_in_slovak_and_italian(catalog: InterventionCatalog) -> None:
    """Labels, help, setting and choice names in the page's language; types and settings stay keys."""
    slovak = {e["type"]: e for e in menu(catalog, lang=language("sk"))}
    italian = {e["type"]: e for e in menu(catalog, lang=language("it"))}
    assert (slovak["bus_lane"]["label"], slovak["cycle_lane"]["label"]) == ("autobusový pruh", "cyklopruh")
    assert (italian["bus_lane"]["label"], italian["cycle_lane"]["label"]) == (
        "corsia preferenziale",
        "pista ciclabile",
    )
    assert slovak["speed_limit"]["setting_labels"] == {"speed_kmh": "rýchlosť (km/h)",
                                                       "only_lower": "len znížiť rýchlosť"}  # fmt: skip
    assert italian["speed_limit"]["setting_labels"]["speed_kmh"] == "velocità (km/h)"
    assert slovak["one_way"]["choice_labels"] == {"forward": "v smere zakreslenia v OpenStreetMap",
                                                  "reverse": "proti smeru zakreslenia"}  # fmt: skip
    assert italian["depave"]["help"] == (
        "Il suolo pavimentato nell'area disegnata diventa prato; il verde pubblico conta per l'accesso al verde."
    )
    english = {e["type"]: e for e in menu(catalog)}
    assert slovak["speed_limit"]["settings"] == english["speed_limit"]["settings"]  # the schema is the same
    assert english["bus_lane"]["label"] == "bus lane"
    assert english["speed_limit"]["setting_labels"]["speed_kmh"] == "speed (km/h)"


def test_every_own_map_placed_type_has_its_words_and_its_help_is_its_docstring(
    catalog: InterventionCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The words table covers the menu, and its English help is each model's docstring, so an edited
    docstring cannot leave its translations behind; a type it lacks (a third-party engine's) reads its
    docstring and its keys, in English, whatever the language."""
    entries = menu(catalog)
    assert sorted(WORDS) == sorted(e["type"] for e in entries)
    for entry in entries:
        model = catalog.types[entry["type"]]
        doc = " ".join((model.__doc__ or "").strip().split("\n\n")[0].replace("``", "").split())
        assert WORDS[entry["type"]].help == doc, entry["type"]
        assert set(WORDS[entry["type"]].settings) == set(entry["settings"]), entry["type"]
    monkeypatch.delitem(WORDS, "depave")
    third = next(e for e in menu(catalog, lang=language("sk")) if e["type"] == "depave")
    assert (third["label"], third["setting_labels"]) == ("depave", {"public": "public"})
    assert third["help"] == "Paved ground inside polygon becomes grass; public green counts for green access."


def test_validation_problems_read_in_slovak_and_italian_with_their_fields_as_keys(
    catalog: InterventionCatalog, network: Network
) -> None:
    offered = [e["type"] for e in menu(catalog)]
    draft = {
        "title": "x",
        "interventions": [
            {"type": "speed_limit", "streets": ["Mannerheimintie"], "speed_kmh": 500},
            {"type": "close_streets", "streets": ["Nowhere Street"]},
            {"type": "depave", "polygon": "POLYGON EMPTY"},
            {"type": "plant_trees_in_area", "polygon": _wkt(network), "canopy_share": 1.5},
        ],
    }
    slovak = check_draft(draft, catalog, network, offered=offered, max_interventions=5, lang=language("sk"))
    assert [(p.field, p.message) for p in slovak.problems] == [
        ("title", "aspoň 3 znaky"),
        ("interventions[0].speed_kmh", "Hodnota má byť menšia alebo rovná 200"),
        ("interventions[1].streets", "v sieti nie je ulica s názvom 'Nowhere Street'"),
        ("interventions[2].polygon", "polygón je prázdny"),
        ("interventions[3].canopy_share", "Hodnota má byť menšia alebo rovná 1"),
    ]
    italian = check_draft(draft, catalog, network, offered=offered, max_interventions=1, lang=language("it"))
    assert [(p.field, p.message) for p in italian.problems] == [
        ("title", "almeno 3 caratteri"),
        ("interventions", "al massimo 1 intervento per proposta"),
    ]
    italian = check_draft(draft, catalog, network, offered=offered, max_interventions=5, lang=language("it"))
    assert italian.problems[1].message == "Il valore deve essere minore o uguale a 200"
    assert italian.problems[2].message == "nessuna strada chiamata 'Nowhere Street' nella rete"
    cool = {"type": "cool_surfaces", "polygon": _wkt(network), "albedo": 1}
    decimal = check_draft({"title": "Cool", "interventions": [cool, {"type": "works_closure", "osm_ids": [201],
                           "begin_s": 600, "end_s": 60}]}, catalog, network, offered=offered,
                          max_interventions=5, lang=language("sk"))  # fmt: skip
    assert [(p.field, p.message) for p in decimal.problems] == [
        ("interventions[0].albedo", "Hodnota má byť menšia ako 1"),
        ("interventions[1]", "end_s musí byť po begin_s"),
    ]
