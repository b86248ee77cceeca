"""Configuration parsing: valid files load, every invalid one names the file, key and expectation."""

from __future__ import annotations

import copy
import string
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from civictwin.config import AccessLevel, SourceKind, load_config, parse_config, slug
from civictwin.errors import ConfigError
from civictwin.templates import twin_template

VALID: dict[str, Any] = {
    "twin": {"name": "Test twin"},
    "area": {"bbox": [24.93, 60.16, 24.96, 60.18]},
    "sources": [
        {"name": "osm", "kind": "osm", "path": "x.osm.pbf", "licence": "ODbL-1.0", "publisher": "OSM",
         "steward": "GIS"},
        {"name": "pop", "kind": "grid", "path": "grid.gpkg", "licence": "CC-BY-4.0", "publisher": "HSY",
         "steward": "Stats", "access": "internal", "columns": ["population"]},
    ],
}  # fmt: skip


def with_changes(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    target: Any = data
    for key in path[:-1]:
        target = target.setdefault(key, {}) if isinstance(target, dict) else target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


_DELETE = object()


def test_valid_config_loads_with_defaults(tmp_path: Path) -> None:
    config = parse_config(VALID, base_dir=tmp_path)
    assert config.store_path == tmp_path / "test-twin.duckdb"
    assert config.zones.kind == "h3" and config.zones.resolution == 9
    assert config.population.persons_per_m2 == 0.025
    assert config.source("pop").access is AccessLevel.INTERNAL
    assert config.sources[0].kind is SourceKind.OSM


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("sources", 0, "kind"), "shapefile", "sources[0] (osm).kind: expected 'osm', 'gtfs', 'grid', 'vector', 'cityjson', 'citygml', 'dem', 'mobility', 'ogcapi_features', 'wfs', 'sensorthings', 'survey' or 'drone'"),
        (("sources", 1, "colour"), "red", "sources[1] (pop).colour: unknown key"),
        (("sources", 0, "steward"), _DELETE, "sources[0] (osm).steward: required key is missing"),
        (("sources", 0, "access"), "secret", "sources[0] (osm).access: expected 'public', 'internal' or 'restricted'"),
        (("sources", 0, "columns"), ["a"], "option(s) columns do not apply to kind 'osm'"),
        (("area", "bbox"), [25, 60, 24, 61], "area: bbox must be [min_lon, min_lat, max_lon, max_lat]"),
        (("area", "polygon"), "area.geojson", "area: give exactly one of bbox, polygon or source"),
        (("zones", "resolution"), 20, "zones.resolution: Input should be less than or equal to 12"),
        (("twin", "crs"), "EPSG:4326", "twin.crs: 'EPSG:4326' is not a projected CRS in metres"),
        (("twin", "crs"), "EPSG:999999", "twin.crs: unknown CRS 'EPSG:999999'"),
        (("population", "grid_source"), "osm", "population.grid_source names 'osm' of kind 'osm'; expected 'grid'"),
        (("sources", 1, "name"), "osm", "duplicate source name(s): osm"),
        (("sources", 0, "name"), "Bad Name", "sources[0] (Bad Name).name: String should match pattern"),
    ],
)  # fmt: skip
def test_invalid_configs_name_the_key(path: tuple[str | int, ...], value: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(with_changes(path, value), base_dir=Path("."), origin="city/twin.toml")
    message = info.value.user_message()
    assert message.startswith("city/twin.toml: ")
    assert expected in message
    assert "\n" not in message


def test_load_config_reports_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"twin.toml: configuration file not found"):
        load_config(tmp_path / "nowhere")
    (tmp_path / "twin.toml").write_text("[twin\nname = 1", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"twin.toml: not valid TOML"):
        load_config(tmp_path)
    (tmp_path / "twin.toml").write_bytes(b"\xff\xfe[twin]")
    with pytest.raises(ConfigError, match=r"not UTF-8 text"):
        load_config(tmp_path)


def test_template_is_a_valid_config(tmp_path: Path) -> None:
    (tmp_path / "twin.toml").write_text(twin_template(), encoding="utf-8")
    config = load_config(tmp_path)
    assert config.twin.name == "My district"
    assert [s.name for s in config.sources] == ["osm"]
    assert config.resolve("district.osm.pbf") == tmp_path / "district.osm.pbf"


names = st.text(alphabet=string.ascii_lowercase + string.digits + "_", min_size=1, max_size=20).filter(
    lambda s: s[0].isalpha()
)
bbox = st.tuples(st.floats(-179, 178), st.floats(-89, 88), st.floats(0.001, 1), st.floats(0.001, 1)).map(
    lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]]
)


@settings(max_examples=60, deadline=None)
@given(name=names, box=bbox, access=st.sampled_from(["public", "internal", "restricted"]),
       resolution=st.integers(5, 12))  # fmt: skip
def test_any_well_formed_config_round_trips(
    name: str, box: list[float], access: str, resolution: int
) -> None:
    data = with_changes(("sources", 0, "name"), name)
    data["sources"][0]["access"] = access
    data["area"]["bbox"] = box
    data["zones"] = {"resolution": resolution}
    if name == "pop":
        data["sources"][1]["name"] = "pop2"
    config = parse_config(data, base_dir=Path("."))
    assert config.sources[0].name == name
    assert config.area.bbox == tuple(box)
    assert config.sources[0].access.value == access
    assert config.zones.resolution == resolution


@settings(max_examples=80, deadline=None)
@given(garbage=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
))  # fmt: skip
def test_arbitrary_values_never_crash_only_config_errors(garbage: Any) -> None:
    for key in ("twin", "area", "sources", "zones"):
        data = with_changes((key,), garbage)
        try:
            parse_config(data, base_dir=Path("."))
        except ConfigError as exc:
            assert "\n" not in exc.user_message()


@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_toml_text_gives_config_error_or_config(text: str) -> None:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return
    with pytest.raises(ConfigError):
        parse_config(data, base_dir=Path("."))


@pytest.mark.parametrize(
    ("name", "expected"), [("Helsinki centre (demo)", "helsinki-centre-demo"), ("!!!", "twin")]
)
def test_slug(name: str, expected: str) -> None:
    assert slug(name) == expected
