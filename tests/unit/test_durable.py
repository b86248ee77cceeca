"""Durable replacement: a finished artefact's data is synced before its rename and its folder after.

The system calls are recorded (``fsync`` resolved to the path it synced through ``/proc/self/fd``), so
each test checks the order a power cut would care about: data on disk, then the rename, then the
directory entry.
"""

from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import Point

from civictwin import durable
from civictwin.export.layers import export_layer
from civictwin.governance.tokens import Role, create_token, tokens_path
from civictwin.store.duckdb import DuckDBStore, build_store

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name synced fds")


@pytest.fixture()
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """Every fsync (with the path synced) and replace, in order."""
    recorded: list[tuple[str, str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        recorded.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"), ""))
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        recorded.append(("replace", str(Path(src).resolve()), str(Path(dst).resolve())))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return recorded


def _synced_around_rename(calls: list[tuple[str, str, str]], target: Path) -> None:
    """The file renamed onto ``target`` was synced before, and ``target``'s folder after the rename."""
    target = target.resolve()
    renames = [i for i, c in enumerate(calls) if c[0] == "replace" and c[2] == str(target)]
    assert len(renames) == 1, calls
    at = renames[0]
    source = calls[at][1]
    assert ("fsync", source, "") in calls[:at], f"{source} not synced before its rename: {calls}"
    assert ("fsync", str(target.parent), "") in calls[at + 1 :], f"folder not synced after rename: {calls}"


def test_a_finished_build_is_synced_before_and_after_its_rename(
    tmp_path: Path, calls: list[tuple[str, str, str]]
) -> None:
    store_path = tmp_path / "twin.duckdb"
    with build_store(store_path, crs="EPSG:3067") as store:
        store.write_table("t", gpd.GeoDataFrame({"v": [1]}, geometry=[Point(0, 0)], crs="EPSG:3067"))
    _synced_around_rename(calls, store_path)
    with DuckDBStore.open(store_path) as reopened:
        assert [t.rows for t in reopened.tables()] == [1]


def test_the_token_file_is_replaced_durably_and_privately(
    tmp_path: Path, calls: list[tuple[str, str, str]]
) -> None:
    path = tokens_path(tmp_path / "twin.duckdb")
    create_token(path, role=Role.VIEWER)
    _synced_around_rename(calls, path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_an_export_is_replaced_durably(tmp_path: Path, calls: list[tuple[str, str, str]]) -> None:
    with build_store(tmp_path / "twin.duckdb", crs="EPSG:3067") as store:
        store.write_table("t", gpd.GeoDataFrame({"v": [7]}, geometry=[Point(0, 0)], crs="EPSG:3067"))
    calls.clear()
    with DuckDBStore.open(tmp_path / "twin.duckdb") as store:
        assert export_layer(store, "t", tmp_path / "t.parquet", "geoparquet") == 1
    _synced_around_rename(calls, tmp_path / "t.parquet")


def test_write_text_leaves_the_old_file_when_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "kept.json"
    durable.write_text(target, "old")

    def interrupted(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        durable.write_text(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.json"]


def test_atomic_path_removes_the_partial_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.gpkg"
    with pytest.raises(RuntimeError), durable.atomic_path(target) as partial:
        assert partial.suffix == ".gpkg" and partial.name.startswith(".out.gpkg.")
        partial.write_text("half")
        raise RuntimeError("writer failed")
    assert list(tmp_path.iterdir()) == []


def test_directories_are_not_synced_where_they_cannot_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calls: list[tuple[str, str, str]]
) -> None:
    """On Windows a directory cannot be opened to sync it: the file is still synced and renamed."""
    monkeypatch.setattr(durable, "_SYNC_DIRECTORIES", False)
    source = tmp_path / "a"
    source.write_text("x")
    durable.replace(source, tmp_path / "b")
    assert calls == [
        ("fsync", str(source.resolve()), ""),
        ("replace", str(source.resolve()), str((tmp_path / "b").resolve())),
    ]


def test_a_finished_folder_has_every_file_synced_before_its_rename(
    tmp_path: Path, calls: list[tuple[str, str, str]]
) -> None:
    staging, final = tmp_path / ".seed_1.partial", tmp_path / "seed_1"
    (staging / "work").mkdir(parents=True)
    names = ["edges.parquet", "zones.parquet", "counts.parquet", "run.json", "complete"]
    for name in names:
        (staging / name).write_text(name)
    (staging / "work" / "scratch.xml").write_text("not a record")
    durable.replace_directory(staging, final)
    at = calls.index(("replace", str(staging.resolve()), str(final.resolve())))
    synced_before = {c[1] for c in calls[:at] if c[0] == "fsync"}
    # every record and the folder itself, synced concurrently but all before the rename; scratch not
    assert synced_before == {str(staging.resolve() / n) for n in names} | {str(staging.resolve())}
    assert calls[:at][-1] == ("fsync", str(staging.resolve()), "")
    assert calls[at + 1 :] == [("fsync", str(tmp_path.resolve()), "")]
    assert sorted(p.name for p in final.iterdir()) == sorted([*names, "work"])
