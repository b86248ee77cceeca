"""The twin commands through the real entry point: outputs, exit codes, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from civictwin.demo import write_demo_config
from civictwin.locking import exclusive
from civictwin.store.duckdb import DuckDBStore


def civictwin(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from civictwin.cli import main; main()", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300, env={"COLUMNS": "200", "PATH": ""},
    )  # fmt: skip


def test_init_writes_a_template_once(tmp_path: Path) -> None:
    first = civictwin("init", "city", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "city" / "twin.toml").read_text().startswith("# civictwin configuration")
    again = civictwin("init", "city", cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        "error: city/twin.toml: already exists (use --force to overwrite)"
    ]


def test_build_and_layers_on_the_demo_config(tmp_path: Path) -> None:
    write_demo_config(tmp_path / "demo")
    built = civictwin("build", "demo", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert "buildings_3d" in built.stdout and "446" in built.stdout
    assert "population is an estimate" in built.stdout
    listed = civictwin("layers", "demo", cwd=tmp_path)
    assert listed.returncode == 0
    assert "network_edges" in listed.stdout and "9,275" in listed.stdout


def test_failed_rebuild_keeps_the_previous_twin(tmp_path: Path) -> None:
    config = write_demo_config(tmp_path / "demo")
    assert civictwin("build", "demo", cwd=tmp_path).returncode == 0
    store_path = tmp_path / "demo" / "helsinki-centre-demo.duckdb"
    before = store_path.read_bytes()
    broken = tmp_path / "broken.osm.pbf"
    broken.write_bytes(b"\x00\x00\x00\x0dnot really a pbf")
    text = config.read_text()
    config.write_text("\n".join(
        f'path = "{broken}"' if line.startswith("path = ") else line for line in text.splitlines()
    ))  # fmt: skip
    failed = civictwin("build", "demo", cwd=tmp_path)
    assert failed.returncode == 1
    assert len(failed.stderr.strip().splitlines()) == 1
    assert "Traceback" not in failed.stderr
    assert f"{broken}: not a readable OSM PBF file" in failed.stderr
    assert store_path.read_bytes() == before
    with DuckDBStore.open(store_path) as store:
        assert {t.name: t.rows for t in store.tables()}["buildings"] == 446


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[twin]\nname = "x"\n[area]\nbbox = [0, 0, 1, 1]\n[[sources]]\nname = "a"\nkind = "lidar"\npath = "x"\n'
         'licence = "x"\npublisher = "x"\nsteward = "x"\n',
         "sources[0] (a).kind: expected 'osm', 'gtfs', 'grid', 'vector', 'cityjson', 'citygml', 'dem', 'mobility', 'ogcapi_features', 'wfs', 'sensorthings', 'survey' or 'drone', got 'lidar'"),
        ('[twin]\nname = "x"\n[area]\nbbox = [0, 0, 1, 1]\n[[sources]]\nname = "a"\nkind = "osm"\n'
         'path = "missing.osm.pbf"\nlicence = "x"\npublisher = "x"\nsteward = "x"\n',
         "missing.osm.pbf: file not found"),
        # square brackets in a message are printed as they are, not read as terminal markup
        ('[twin]\nname = "x"\n[area]\nbbox = [1, 0, 0, 1]\n[[sources]]\nname = "a"\nkind = "osm"\n'
         'path = "x.osm.pbf"\nlicence = "x"\npublisher = "x"\nsteward = "x"\n',
         "twin.toml: area: bbox must be [min_lon, min_lat, max_lon, max_lat] with min < max in WGS84"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_debug_shows_the_traceback(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "twin.toml").write_text(toml)
    result = civictwin("build", ".", cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    debug = civictwin("--debug", "build", ".", cwd=tmp_path)
    assert "Traceback" in debug.stderr


def test_a_build_is_refused_while_another_process_builds_the_same_twin(tmp_path: Path) -> None:
    write_demo_config(tmp_path / "demo")
    store_path = tmp_path / "demo" / "helsinki-centre-demo.duckdb"
    lock = store_path.with_name(store_path.name + ".building.lock")
    with exclusive(lock, wait=False):  # this test process plays the build under way
        refused = civictwin("build", "demo", cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"error: {store_path.resolve()}: another build of this twin is running; run this one when it has finished"
    ]
    assert not store_path.exists()
    assert civictwin("build", "demo", cwd=tmp_path).returncode == 0  # once it has finished


def test_area_that_intersects_nothing(tmp_path: Path) -> None:
    config = write_demo_config(tmp_path / "demo")
    config.write_text(config.read_text().replace("bbox = [", "bbox = [10.0, 50.0, 10.01, 50.01] # ["))
    result = civictwin("build", "demo", cwd=tmp_path)
    assert result.returncode == 1
    assert "no OSM features inside the area of interest" in result.stderr
    assert not (tmp_path / "demo" / "helsinki-centre-demo.duckdb").exists()
