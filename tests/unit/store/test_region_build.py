"""Region-sized builds on a tiled extract: the network built in spatial partitions holds exactly the
rows of the network built in one piece (DuckDB and PostGIS), and a build that runs out of disk is
one line with the served twin untouched.

The input is the demo extract tiled 2 × 2 by ``../shared/tools/tile_osm.py`` (neighbouring copies
joined by roads, so roads cross the partitions' borders); the tests skip without it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
import shapely

import civictwin.memory
from civictwin.build import build_twin
from civictwin.config import load_config
from civictwin.demo import DEMO_BBOX, demo_pbf
from civictwin.memory import PARTITION_SHARE, grid_cells
from civictwin.model.network import NetworkPart, Ways, network_part
from civictwin.store.opening import open_store

TILER = Path(__file__).resolve().parents[4] / "shared" / "tools" / "tile_osm.py"
PARTITIONS = 9
EDGES_2X2 = 37_212
NODES_2X2 = 14_312


@pytest.fixture(scope="module")
def tiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo extract tiled 2 × 2."""
    if not TILER.is_file():
        pytest.skip(f"the tiler {TILER} is absent (../shared)")
    out = tmp_path_factory.mktemp("tiled") / "helsinki_2x2.osm.pbf"
    subprocess.run([sys.executable, str(TILER), str(demo_pbf()), str(out), "--n", "2"], check=True,
                   capture_output=True)  # fmt: skip
    return out


def write_twin(folder: Path, pbf: Path, *, store: str | None = None, build: str = "") -> Path:
    """A twin over the 2 × 2 copies (the tiler shifts each copy by the extract's extent × 1.02)."""
    x0, y0, x1, y1 = DEMO_BBOX
    bbox = [x0 - 0.001, y0 - 0.001, x0 + (x1 - x0) * 2.04 + 0.001, y0 + (y1 - y0) * 2.04 + 0.001]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "twin.toml").write_text(
        f'[twin]\nname = "region"\n{f"store = {store!r}" if store else ""}\n[area]\nbbox = {bbox}\n'
        f'{build}\n[[sources]]\nname = "osm"\nkind = "osm"\npath = "{pbf}"\nlicence = "ODbL-1.0"\n'
        'publisher = "OSM"\nsteward = "GIS"\n'
    )
    return folder


def force_partitions(monkeypatch: pytest.MonkeyPatch, roads: int, partitions: int) -> None:
    """Make the default budget (4096 MB) fit ``roads / partitions`` roads per partition."""
    per_partition_bytes = 4096 * PARTITION_SHARE * 1024 * 1024
    monkeypatch.setattr(
        civictwin.memory, "NETWORK_BYTES_PER_ROAD", int(per_partition_bytes * partitions / roads)
    )


def sorted_network(store_table: pd.DataFrame, key: str) -> pd.DataFrame:
    frame = pd.DataFrame(store_table).sort_values(key).reset_index(drop=True)
    frame["geometry"] = shapely.to_wkb(frame["geometry"].to_numpy(), hex=True)
    return frame


@pytest.fixture(scope="module")
def one_piece(tiled: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 2 × 2 twin built with the default budget: the network in one piece."""
    folder = write_twin(tmp_path_factory.mktemp("one"), tiled)
    build_twin(load_config(folder))
    return folder / "region.duckdb"


def test_partitioned_build_holds_the_rows_of_the_one_piece_build(
    tiled: Path, one_piece: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(load_config(one_piece.parent)) as local:
        roads = next(t.rows for t in local.tables() if t.name == "roads")
        bounds = local.table_bounds("roads")
    assert bounds is not None
    force_partitions(monkeypatch, roads, PARTITIONS)
    folder = write_twin(tmp_path / "parts", tiled)
    build_twin(load_config(folder))
    con = duckdb.connect(str(one_piece), read_only=True)
    con.execute(f"ATTACH '{folder / 'region.duckdb'}' AS parts (READ_ONLY)")
    for table, rows in (("network_edges", EDGES_2X2), ("network_nodes", NODES_2X2)):
        assert con.execute(f"SELECT count(*) FROM {table}").fetchone() == (rows,)
        assert con.execute(f"SELECT count(*) FROM parts.{table}").fetchone() == (rows,)
        for a, b in ((table, f"parts.{table}"), (f"parts.{table}", table)):  # no row on one side only
            assert con.execute(f"SELECT count(*) FROM (FROM {a} EXCEPT ALL FROM {b})").fetchone() == (0,)
        assert (
            con.execute(f"DESCRIBE {table}").fetchall() == con.execute(f"DESCRIBE parts.{table}").fetchall()
        )
    lineage = con.execute("SELECT record->'parameters' FROM parts._records WHERE kind = 'lineage' "
                          "AND key = 'network_edges'").fetchone()[0]  # type: ignore[index]  # fmt: skip
    cells = len(grid_cells(bounds, PARTITIONS))  # 2 columns × 5 rows over the tall extent (in metres)
    assert cells == 10
    assert json.loads(lineage)["partitions"] == cells
    quality = "SELECT record->'connectivity' FROM {}_records WHERE kind = 'quality' AND key = 'network_edges'"
    assert con.execute(quality.format("")).fetchone() == con.execute(quality.format("parts.")).fetchone()
    # the catalogue's extents, from the partitions' vertices as they were made, equal the one piece's
    extent = "SELECT record->'bbox_wgs84' FROM {}_records WHERE kind = 'catalog' AND key = '{}'"
    for table in ("network_edges", "network_nodes"):
        found = con.execute(extent.format("parts.", table)).fetchone()
        assert found is not None and found[0] is not None
        assert found == con.execute(extent.format("", table)).fetchone()
    con.close()


def test_a_failed_build_stops_its_partitioned_network_at_the_next_partition(
    tiled: Path, one_piece: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The buildings step fails while the network is built in partitions beside it (each partition
    made to take 0.3 s): the network stops before its next partition instead of splitting all ten,
    and the error reported is the buildings' own; the half-built twin is gone."""
    with open_store(load_config(one_piece.parent)) as local:
        roads = next(t.rows for t in local.tables() if t.name == "roads")
    force_partitions(monkeypatch, roads, PARTITIONS)
    split: list[int] = []

    def slow(ways: Ways, *, shared: npt.NDArray[np.int64]) -> NetworkPart:
        split.append(len(ways.roads))
        time.sleep(0.3)
        return network_part(ways, shared=shared)

    def failing(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the buildings step failed")

    monkeypatch.setattr("civictwin.build_network.network_part", slow)
    monkeypatch.setattr("civictwin.build._buildings", failing)
    folder = write_twin(tmp_path / "stopped", tiled)
    with pytest.raises(RuntimeError, match="the buildings step failed"):
        build_twin(load_config(folder))
    assert 1 <= len(split) < 10
    assert not (folder / "region.duckdb").exists()


def test_partitioned_build_into_postgis_holds_the_rows_of_the_duckdb_build(
    tiled: Path, one_piece: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgis_url: str
) -> None:
    with open_store(load_config(one_piece.parent)) as local:
        roads = next(t.rows for t in local.tables() if t.name == "roads")
    force_partitions(monkeypatch, roads, PARTITIONS)
    config = load_config(write_twin(tmp_path / "pg", tiled, store=postgis_url))
    build_twin(config)
    with open_store(config) as pg, open_store(load_config(one_piece.parent)) as local:
        for table, key in (("network_edges", "edge_id"), ("network_nodes", "node_id")):
            ours, theirs = (
                sorted_network(pg.read_table(table), key),
                sorted_network(local.read_table(table), key),
            )
            assert len(ours) == (EDGES_2X2 if table == "network_edges" else NODES_2X2)
            pd.testing.assert_frame_equal(ours, theirs, check_dtype=False)
        assert (
            pg.records("quality")["network_edges"]["connectivity"]
            == (local.records("quality")["network_edges"]["connectivity"])
        )
        # every table in the database (counted there) as in the DuckDB build; the catalogue's row
        # counts, taken from the build's local copy, are the database's
        rows = {t.name: t.rows for t in pg.tables()}
        assert rows == {t.name: t.rows for t in local.tables()}
        assert rows["roads"] > 0 and rows["network_edges"] == EDGES_2X2
        assert {name: record["rows"] for name, record in pg.records("catalog").items()} == rows
        # the roads' node references (lists of integers, stored as jsonb) as the DuckDB build has them
        ours, theirs = (
            store.read_table("roads", columns=["osm_id", "node_refs"]).sort_values("osm_id")
            for store in (pg, local)
        )
        assert [list(r) for r in ours["node_refs"]] == [list(r) for r in theirs["node_refs"]]
        # the same quality records (the personal data found in text columns included), network aside
        ours_q, theirs_q = pg.records("quality"), local.records("quality")
        assert set(ours_q) == set(theirs_q)
        for table in set(ours_q) - {"network_edges", "network_nodes"}:
            assert ours_q[table] == theirs_q[table], table


def test_a_build_out_of_disk_is_one_line_and_keeps_the_served_twin(
    tiled: Path, one_piece: Path, tmp_path: Path
) -> None:
    """The build's spill folder may hold 1 MB (``[build] spill_mb``), which DuckDB enforces as a full
    disk: decoding the 2 × 2 extract in 48 MB of working memory needs more than that."""
    before = one_piece.read_bytes()
    spill = tmp_path / "spill"
    build = f'[build]\nmemory_mb = 96\nspill_mb = 1\ntemp_dir = "{spill}"'
    folder = write_twin(tmp_path / "full", tiled, store=str(one_piece), build=build)
    failed = subprocess.run(
        [sys.executable, "-c", "from civictwin.cli import main; main()", "build", str(folder)],
        capture_output=True, text=True, timeout=300, env={"COLUMNS": "200", "PATH": ""},
    )  # fmt: skip
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in failed.stderr, failed.stderr
    assert lines[0].startswith(f"error: {one_piece}: the build stopped: its working memory needed more disk")
    assert "[build] spill_mb" in lines[0] and lines[0].endswith("the twin being served is unchanged")
    assert one_piece.read_bytes() == before
    assert not one_piece.with_name("region.duckdb.building").exists()
    assert list(spill.iterdir()) == []  # the spill folders are gone too
