"""The CityJSON file reader's structural byte scan: strings that look like structure, chunk edges, bad vertices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from city3d_fixtures import EXPECTED, Ingest, house_cityjson, write_cityjsonseq, write_json

from civictwin.errors import SourceError
from civictwin.sources import cityjson
from civictwin.sources.city3d import SURFACES_TABLE

TRICKY = 'a "quoted" } ] [ { : , \\ "vertices": [[1.5]] \\\\'
"""An attribute value full of JSON structure, escaped quotes and backslashes (a scanner must skip it)."""


def _tricky_house() -> dict[str, object]:
    document = house_cityjson()
    objects = document["CityObjects"]
    objects["house0"]["attributes"]["note"] = TRICKY  # type: ignore[index]
    objects["house0"]["attributes"]["vertices"] = {"CityObjects": [TRICKY]}  # type: ignore[index]
    # the vertex list first, the city objects after it, and a member the reader does not know
    return {"vertices": document.pop("vertices"), "x-extra": {'a\\"': [TRICKY]}, **document}


@pytest.mark.parametrize("chunk", [7, 1 << 20])
def test_structure_inside_strings_and_chunk_edges_change_nothing(
    tmp_path: Path, ingest: Ingest, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(cityjson, "_SCAN_CHUNK", chunk)  # 7 bytes: every edge case lands on a chunk edge
    path = tmp_path / "tricky.city.json"
    path.write_text(json.dumps(_tricky_house(), indent=2), encoding="utf-8")
    store, result = ingest("cityjson", path)
    (building,) = store.read_table("city").to_dict("records")
    attributes = json.loads(building["attributes"])
    assert (attributes["note"], attributes["vertices"]) == (TRICKY, {"CityObjects": [TRICKY]})
    surfaces = store.read_table(SURFACES_TABLE)
    rows = sorted(
        (
            round(r.area_m2, 3),
            round(r.tilt_deg, 2),
            None if np.isnan(r.azimuth_deg) else round(r.azimuth_deg, 2),
        )
        for r in surfaces.itertuples()
    )
    assert rows == sorted(EXPECTED, key=lambda r: (r[0], r[1], -1 if r[2] is None else r[2]))
    assert result.layers[0].quality["skipped_objects"] == {"SolitaryVegetationObject": 1}


def test_vertices_parse_to_the_integers_written(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(cityjson, "_SCAN_CHUNK", 11)
    text = b"[ [0, -1,23], [ 987654321012, 5 ,-60 ],\n[7,8,9]]"
    (tmp_path / "v").write_bytes(text)
    buf = cityjson._map(tmp_path / "v")
    with (tmp_path / "out").open("wb") as out:
        count = cityjson._write_vertices(buf, (0, len(text)), out, tmp_path / "v")
    values = np.fromfile(tmp_path / "out", dtype=np.int64).reshape(-1, 3)
    assert count == 3
    assert values.tolist() == [[0, -1, 23], [987654321012, 5, -60], [7, 8, 9]]


@pytest.mark.parametrize(
    ("vertices", "message"),
    [
        ("[[0,0,0],[1.5,0,0]]", r"'vertices' holds '\.': CityJSON 1\.1 and 2\.0 vertices are integers"),
        ("[[0,0,0],[1,0]]", r"'vertices' is not a list of \[x, y, z\] integer triples"),
        ("[[0,0,0],,[1,0,0]]", r"'vertices' is not a list of \[x, y, z\] integer triples"),
        ("[[0,0,0] [1,0,0]]", r"'vertices' is not a list of \[x, y, z\] integer triples"),
        ("[[0,0,0],[1,2,3,4]]", r"'vertices' is not a list of \[x, y, z\] integer triples"),
        ("[[0,0,0],]", r"'vertices' is not a list of \[x, y, z\] integer triples"),
        ("[[0,0,-],[1,2,3]]", r"'vertices' holds a number that is not a 64-bit integer"),
    ],
)
def test_bad_vertex_lists_are_one_line(tmp_path: Path, ingest: Ingest, vertices: str, message: str) -> None:
    text = json.dumps({**house_cityjson(), "vertices": []}).replace(
        '"vertices": []', f'"vertices": {vertices}'
    )
    path = tmp_path / "bad.city.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SourceError, match=message) as caught:
        ingest("cityjson", path)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (lambda t: t[:-40], "the file ends inside a string, object or list"),
        (lambda t: t + "{}", r"not one JSON object"),
        (lambda t: t.replace('"house0": {', '"house0": {{', 1), r"not valid JSON"),
    ],
)
def test_truncated_or_broken_json_is_one_line(
    tmp_path: Path, ingest: Ingest, cut: object, message: str
) -> None:
    path = write_json(tmp_path / "broken.city.json", house_cityjson())
    path.write_text(cut(path.read_text()), encoding="utf-8")  # type: ignore[operator]
    with pytest.raises(SourceError, match=message) as caught:
        ingest("cityjson", path)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


@pytest.mark.parametrize("chunk", [7, 1 << 20])
def test_a_repeated_city_objects_member_counts_once_the_last_as_in_json(
    tmp_path: Path, ingest: Ingest, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(cityjson, "_SCAN_CHUNK", chunk)
    text = json.dumps(house_cityjson())
    path = tmp_path / "twice.city.json"
    path.write_text('{"CityObjects": {"ghost": {"type": "Building"}}, ' + text[1:], encoding="utf-8")
    store, _result = ingest("cityjson", path)
    assert store.read_table("city")["building_id"].tolist() == ["house0"]
    path.write_text(text[:-1] + ', "CityObjects": {}}', encoding="utf-8")
    with pytest.raises(SourceError, match="no buildings in the file"):
        ingest("cityjson", path)


LONE = "bad \ud800 half"
"""An attribute value with a lone surrogate, which ``json.dumps`` writes as the escape ``\\ud800``."""


@pytest.mark.parametrize(
    ("attributes", "place"),
    [
        ({"name": LONE}, "attributes.name"),
        ({"names": ["ok", {"fi": LONE}]}, "attributes.names[1].fi"),
        ({"x\udc00y": 1}, "attributes.x\\udc00y"),
    ],
)
@pytest.mark.parametrize("sequence", [False, True])
def test_a_lone_surrogate_in_an_attribute_is_one_line_naming_it(
    tmp_path: Path, ingest: Ingest, attributes: dict[str, object], place: str, sequence: bool
) -> None:
    document = house_cityjson()
    document["CityObjects"]["house0"]["attributes"].update(attributes)  # type: ignore[index]
    if sequence:
        path = write_cityjsonseq(tmp_path / "bad.city.jsonl", document)
        where = f"line 2: CityObjects.house0.{place}"
    else:
        path = write_json(tmp_path / "bad.city.json", document)
        where = f"CityObjects['house0']: {place}"
    assert "\\u" in path.read_text(encoding="ascii")  # the escape, as a file holds it
    with pytest.raises(SourceError) as caught:
        ingest("cityjson", path)
    assert str(caught.value) == f"{path}: {where}: a lone surrogate escape (half of a UTF-16 pair), not text"


def test_the_build_prints_that_line_and_writes_no_store(tmp_path: Path) -> None:
    document = house_cityjson()
    document["CityObjects"]["house0"]["attributes"]["name"] = LONE  # type: ignore[index]
    write_json(tmp_path / "city.json", document)
    (tmp_path / "twin.toml").write_text(
        '[twin]\nname = "Lone"\ncrs = "EPSG:25832"\n[area]\nbbox = [8.9, 48.7, 9.1, 48.8]\n'
        '[[sources]]\nname = "city3d"\nkind = "cityjson"\npath = "city.json"\n'
        'licence = "CC0"\npublisher = "p"\nsteward = "s"\n',
        encoding="utf-8",
    )
    built = subprocess.run(
        [sys.executable, "-c", "from civictwin.entry import main; main()", "build", str(tmp_path)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert built.returncode == 1
    assert built.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'city.json'}: CityObjects['house0']: attributes.name: "
        "a lone surrogate escape (half of a UTF-16 pair), not text"
    ]
    assert not list(tmp_path.glob("*.duckdb")) and not list(tmp_path.glob("*.duckdb.building"))
