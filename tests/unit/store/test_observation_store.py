"""The observation store on both backends (SQLite beside a DuckDB twin, the schema of a PostGIS
twin's database): entities, idempotent appends with hand-counted outcomes, windows, hand-computed
aggregates (a DST day included), dead letters, records, and several real processes at once. Every
test but the file-specific ones runs on both, with the same expected values."""

from __future__ import annotations

import ast
import math
import multiprocessing
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from civictwin.errors import StoreError
from civictwin.store.observations import (
    MS_PER_HOUR,
    AggregateQuery,
    DatasetSpec,
    DatastreamSpec,
    DeadLetter,
    LocationSpec,
    ObservationBatch,
    ObservedPropertySpec,
    Quality,
    RejectReason,
    SensorSpec,
    ThingSpec,
    Unit,
    Window,
    has_observations,
    iso,
    observations_path,
    open_observations,
    to_ms,
)
from civictwin.store.opening import StoreLocation
from civictwin.store.postgis_observations import PostGISObservationStore
from civictwin.store.sensorthings import QueryError, QueryOptions, SensorThingsReader
from civictwin.store.sql_observations import SQLObservationStore
from civictwin.store.sqlite_observations import SQLiteObservationStore

T0 = to_ms("2014-01-01T00:00:00Z")
H = MS_PER_HOUR


def spec(key: str = "air/s1/no2", *, dataset: str = "air", low: float | None = 0.0) -> DatastreamSpec:
    station = key.split("/")[1]
    return DatastreamSpec(
        key=key,
        name=f"{station} NO2",
        dataset=dataset,
        thing=ThingSpec(
            f"{dataset}/{station}", station, LocationSpec(f"{dataset}/{station}", station, 6.96, 50.94)
        ),
        sensor=SensorSpec(f"{dataset}/analyser", "NO2 analyser"),
        observed_property=ObservedPropertySpec(
            f"{dataset}/no2", "NO2", "http://dd.eionet.europa.eu/vocabulary/aq/pollutant/8"
        ),
        unit=Unit("ug/m3", "microgram per cubic metre", "µg/m³"),
        valid_range=(low, 1000.0),
        interval_s=3600,
    )


def reopen(store: SQLObservationStore, *, read_only: bool = False) -> SQLObservationStore:
    """Another handle on the same store (as another process would open it)."""
    if isinstance(store, PostGISObservationStore):
        return PostGISObservationStore.open(store.dsn, read_only=read_only)
    assert isinstance(store, SQLiteObservationStore)
    return SQLiteObservationStore.open(store.path, read_only=read_only)


def _open(kind: str, where: str, *, read_only: bool = False) -> SQLObservationStore:
    if kind == "postgis":
        return PostGISObservationStore.open(where, read_only=read_only)
    return SQLiteObservationStore.open(Path(where), read_only=read_only)


@pytest.fixture(params=["sqlite", "postgis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLObservationStore]:
    """An observation store with the dataset ``air``: a SQLite file, or a fresh PostGIS database's."""
    if request.param == "postgis":
        opened: SQLObservationStore = PostGISObservationStore.open(request.getfixturevalue("postgis_url"))
    else:
        opened = SQLiteObservationStore.open(tmp_path / "twin.observations.sqlite")
    opened.ensure_dataset(DatasetSpec("air", "Air quality", "UBA", "Air team", "dl-de/by-2-0", "public"))
    yield opened
    opened.close()


def where(store: SQLObservationStore) -> tuple[str, str]:
    """The backend and location another process opens ``store`` by."""
    if isinstance(store, PostGISObservationStore):
        return "postgis", store.dsn
    assert isinstance(store, SQLiteObservationStore)
    return "sqlite", str(store.path)


def test_entities_are_created_once_and_belong_to_their_dataset(store: SQLObservationStore) -> None:
    first = store.ensure_datastream(spec())
    assert store.ensure_datastream(spec()) == first  # idempotent: the same id every time
    second = store.ensure_datastream(spec("air/s2/no2"))
    assert second != first
    infos = {d.key: d for d in store.datastreams()}
    assert infos["air/s1/no2"].unit.definition == "ucum:ug/m3"
    assert (infos["air/s1/no2"].access, infos["air/s1/no2"].thing_key) == ("public", "air/s1")
    with pytest.raises(StoreError, match="no dataset named 'noise'"):
        store.ensure_datastream(spec("noise/s1/la", dataset="noise"))
    store.ensure_dataset(DatasetSpec("noise", "Noise", "City", "Env", "CC-BY-4.0", "restricted"))
    with pytest.raises(StoreError, match="belongs to dataset 'air'"):
        store.ensure_datastream(spec("air/s1/no2", dataset="noise"))
    with pytest.raises(StoreError, match="not a UCUM unit code"):
        Unit("µg/m³", "microgram per cubic metre", "µg/m³")


def test_append_counts_every_observation_once(store: SQLObservationStore) -> None:
    ds = store.ensure_datastream(spec())
    batch = ObservationBatch.of(
        datastream_id=[ds, ds, ds, ds, ds, 999, ds, ds],
        phenomenon_time=[T0, T0 + H, T0 + 2 * H, T0 + H, T0 + 3 * H, T0, T0 + 4 * H, T0 + 5 * H],
        result=[40.0, None, 1500.0, None, -3.0, 1.0, math.inf, 12.5],
    )
    result = store.append(batch, origin="test")
    # stored: T0 (40), T0+H (null), T0+5H (12.5); the repeat of T0+H (null again) is a duplicate
    assert (result.stored, result.duplicates) == (3, 1)
    assert {(r.index, r.reason) for r in result.rejected} == {
        (2, RejectReason.OUT_OF_RANGE),
        (4, RejectReason.OUT_OF_RANGE),
        (5, RejectReason.UNKNOWN_DATASTREAM),
        (6, RejectReason.NOT_FINITE),
    }
    again = store.append(batch, origin="test again")
    assert (again.stored, again.duplicates, len(again.rejected)) == (0, 4, 4)
    conflict = store.append(
        ObservationBatch.of(datastream_id=[ds], phenomenon_time=[T0], result=[41.0]), origin="c"
    )
    assert conflict.stored == 0 and conflict.rejected[0].reason is RejectReason.CONFLICT
    stored = store.observations(ds)
    assert stored["phenomenon_time"].tolist() == [T0, T0 + H, T0 + 5 * H]
    assert stored["result"].tolist()[0] == 40.0 and math.isnan(stored["result"].tolist()[1])
    assert stored["quality"].tolist() == [Quality.GOOD, Quality.MISSING, Quality.GOOD]
    # rejections are counted once per datastream, time and reason, however often they are re-sent
    assert store.rejections() == {
        ds: {
            "out of range": 2,
            "result is not a finite number": 1,
            "conflicts with a stored observation of the same time": 1,
        }
    }
    assert store.counts() == {ds: 3}


def test_far_future_bad_intervals_and_pre_epoch_times_are_rejected(store: SQLObservationStore) -> None:
    ds = store.ensure_datastream(spec())
    now = to_ms("2030-01-01T00:00:00Z")
    batch = ObservationBatch.of(
        datastream_id=[ds, ds, ds],
        phenomenon_time=[now * 2, T0, -H],
        phenomenon_end=[-1, T0 - H, -1],
        result=[1.0, 2.0, 3.0],
    )
    reasons = [r.reason for r in store.append(batch, origin="t").rejected]
    assert reasons == [RejectReason.FAR_FUTURE, RejectReason.BAD_INTERVAL, RejectReason.BEFORE_EPOCH]


def test_reads_half_open_windows_latest_and_descending(store: SQLObservationStore) -> None:
    ds = store.ensure_datastream(spec())
    times = [T0 + i * H for i in range(10)]
    store.append(
        ObservationBatch.of(datastream_id=[ds] * 10, phenomenon_time=times, result=list(range(10))),
        origin="t",
    )
    window = store.observations(ds, start=T0 + 2 * H, end=T0 + 5 * H)
    assert window["result"].tolist() == [2.0, 3.0, 4.0]
    assert store.observations(ds, limit=2, descending=True)["result"].tolist() == [9.0, 8.0]
    latest = store.latest()
    assert latest[["datastream_id", "phenomenon_time", "result"]].values.tolist() == [[ds, T0 + 9 * H, 9.0]]


def test_hourly_and_daily_aggregates_match_hand_computation(store: SQLObservationStore) -> None:
    ds = store.ensure_datastream(spec())
    # two days of values every 30 minutes: day 1 = 0..47, day 2 = 100..147; one missing value
    times = [T0 + i * H // 2 for i in range(96)]
    values: list[float | None] = [float(i) for i in range(48)] + [100.0 + i for i in range(48)]
    values[1] = None
    store.append(
        ObservationBatch.of(datastream_id=[ds] * 96, phenomenon_time=times, result=values), origin="t"
    )
    days = store.aggregate(
        AggregateQuery((ds,), Window.DAY, T0, T0 + 48 * H, ("mean", "max", "count", "p50"))
    )
    first = days.iloc[0]
    assert first["count"] == 47
    assert first["mean"] == pytest.approx((sum(range(48)) - 1) / 47)  # 1128 - 1 over 47 = 23.978...
    assert (first["max"], first["p50"]) == (47.0, 24.0)  # the median of 0, 2, 3, ..., 47
    assert days.iloc[1][["mean", "max", "count"]].tolist() == [123.5, 147.0, 48]
    assert days["window_start"].tolist() == [T0, T0 + 24 * H]
    hours = store.aggregate(AggregateQuery((ds,), Window.HOUR, T0, T0 + 2 * H, ("mean", "min", "sum")))
    assert hours[["mean", "min", "sum"]].values.tolist() == [[0.0, 0.0, 0.0], [2.5, 2.0, 5.0]]


def test_daily_windows_follow_the_local_wall_clock_across_dst(store: SQLObservationStore) -> None:
    ds = store.ensure_datastream(spec())
    # hourly values from 2014-03-29 00:00 CET (= 03-28 23:00 UTC) for three days; value = hour index
    start = to_ms("2014-03-28T23:00:00Z")
    store.append(
        ObservationBatch.of(
            datastream_id=[ds] * 72,
            phenomenon_time=[start + i * H for i in range(72)],
            result=[float(i) for i in range(72)],
        ),
        origin="t",
    )
    days = store.aggregate(
        AggregateQuery((ds,), Window.DAY, start, start + 72 * H, ("mean", "count"), timezone="Europe/Berlin")
    )
    # 29 March: 24 hours (0..23); 30 March, the day clocks go forward: 23 hours (24..46); 31 March: 47..70
    assert days["count"].tolist()[:3] == [24, 23, 24]
    assert days["mean"].tolist()[:3] == [11.5, 35.0, 58.5]
    assert [iso(int(t)) for t in days["window_start"][:3]] == [
        "2014-03-28T23:00:00Z",
        "2014-03-29T23:00:00Z",
        "2014-03-30T22:00:00Z",
    ]
    assert iso(int(days["window_end"].iloc[1])) == "2014-03-30T22:00:00Z"
    with pytest.raises(StoreError, match="unknown time zone"):
        store.aggregate(AggregateQuery((ds,), Window.DAY, start, start + H, timezone="Mars/Olympus"))


def test_dead_letters_keep_message_reason_and_time(store: SQLObservationStore) -> None:
    assert store.dead_letter([DeadLetter(message='{"v": "x"}', reason="malformed", source="air/topic")]) == 1
    (letter,) = store.dead_letters()
    assert (letter.message, letter.reason, letter.source, letter.id) == (
        '{"v": "x"}',
        "malformed",
        "air/topic",
        1,
    )
    assert letter.received.endswith("+00:00")
    assert store.dead_letters(after_id=1) == []


def test_records_round_trip(store: SQLObservationStore) -> None:
    store.put_records(
        [("quality", "air/s1/no2", {"gaps": {"count": 2}}), ("catalog", "air/s1/no2", {"rows": 3})]
    )
    assert store.records("quality") == {"air/s1/no2": {"gaps": {"count": 2}}}
    assert store.records("catalog")["air/s1/no2"]["rows"] == 3


def test_sensorthings_filters_on_json_properties_and_text_agree(store: SQLObservationStore) -> None:
    from dataclasses import replace

    store.ensure_datastream(replace(spec(), properties={"point": "A1", "lanes": 2}))
    store.ensure_datastream(replace(spec("air/s2/no2"), properties={"point": "B7", "lanes": 1}))
    reader = SensorThingsReader(store, ["air"])

    def names(query: str) -> list[str]:
        page = reader.collection("Datastreams", QueryOptions(filter=query, top=10))
        return [entity.properties["name"] for entity in page.entities]

    assert names("properties/lanes eq 2") == ["s1 NO2"]
    assert names("properties/lanes ge 1") == ["s1 NO2", "s2 NO2"]
    assert names("properties/point eq 'B7'") == ["s2 NO2"]
    assert names("properties/point eq 2") == []  # a text is never a number
    assert names("startswith(name, 'S2')") == ["s2 NO2"]  # case-insensitive, as SQLite's LIKE
    assert names("properties/steward eq 'Air team'") == ["s1 NO2", "s2 NO2"]
    with pytest.raises(QueryError, match="no property 'result'"):
        names("result eq 1")
    if isinstance(store, PostGISObservationStore):  # the one difference: PostgreSQL refuses text = number
        with pytest.raises(QueryError, match="cannot run the query"):
            names("name eq 3")
    else:
        assert names("name eq 3") == []


def test_read_only_store_refuses_writes(tmp_path: Path) -> None:
    with open_observations(tmp_path / "t.duckdb", read_only=True) as reader:
        assert observations_path(tmp_path / "t.duckdb").is_file()  # created (empty) beside the store
        with pytest.raises(StoreError, match="read-only"):
            reader.dead_letter([DeadLetter(message="m", reason="r")])


def test_callers_find_the_whole_interface_where_the_store_is_opened() -> None:
    """``store/observations.py`` names every public name ``store/observation_base.py`` defines (the
    same objects), so that a name added to the interface cannot be missing for the callers."""
    from civictwin.store import observation_base, observations

    tree = ast.parse(Path(observation_base.__file__).read_text(encoding="utf-8"))
    defined = {node.name for node in tree.body if isinstance(node, ast.ClassDef | ast.FunctionDef)}
    defined |= {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    public = {name for name in defined if not name.startswith("_")}
    assert {"ObservationStore", "DatastreamInfo", "MS_PER_HOUR", "iso", "to_ms_array"} <= public
    assert public <= set(observations.__all__)
    assert all(getattr(observations, name) is getattr(observation_base, name) for name in public)


def test_a_read_only_postgis_store_is_refused_writes_by_the_server(postgis_url: str) -> None:
    location = StoreLocation(kind="postgis", dsn=postgis_url)
    assert not has_observations(location)
    with open_observations(location, read_only=True) as reader:
        assert isinstance(reader, PostGISObservationStore)
        assert has_observations(location)  # created (empty) in the database
        with pytest.raises(StoreError, match="read-only"):
            reader.dead_letter([DeadLetter(message="m", reason="r")])
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):  # not only refused by civictwin
            reader.connection.execute("INSERT INTO meta VALUES ('x', 'y')")


# ---------------------------------------------------------------- several processes

BATCHES, PER_BATCH = 40, 500


def _writer(kind: str, path: str, ready: multiprocessing.synchronize.Event) -> None:
    with _open(kind, path) as store:
        ds = store.datastream("air/s1/no2")
        assert ds is not None
        ready.set()
        for b in range(BATCHES):
            times = T0 + (np.arange(PER_BATCH) + b * PER_BATCH) * H
            store.append(
                ObservationBatch.of(
                    datastream_id=[ds.id] * PER_BATCH, phenomenon_time=times, result=np.ones(PER_BATCH)
                ),
                origin=f"batch {b}",
            )


def test_a_reader_process_reads_while_a_writer_process_appends(store: SQLObservationStore) -> None:
    store.ensure_datastream(spec())
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    writer = ctx.Process(target=_writer, args=(*where(store), ready))
    writer.start()
    assert ready.wait(60)
    seen = []
    with reopen(store, read_only=True) as reader:
        while writer.is_alive() or not seen or seen[-1] < BATCHES * PER_BATCH:
            seen.append(sum(reader.counts().values()))
            if not writer.is_alive() and seen[-1] == BATCHES * PER_BATCH:
                break
    writer.join(60)
    assert writer.exitcode == 0
    assert seen == sorted(seen) and seen[-1] == BATCHES * PER_BATCH  # never a partial batch, never less
    assert all(n % PER_BATCH == 0 for n in seen)


def _acknowledge_then_die(kind: str, path: str, acknowledged: multiprocessing.synchronize.Event) -> None:
    with _open(kind, path) as store:
        ds = store.datastream("air/s1/no2")
        assert ds is not None
        store.append(
            ObservationBatch.of(
                datastream_id=[ds.id] * 3, phenomenon_time=[T0, T0 + H, T0 + 2 * H], result=[1.0, 2.0, 3.0]
            ),
            origin="acknowledged",
        )
        acknowledged.set()
        os.kill(os.getpid(), signal.SIGKILL)  # crash right after the append returned


def test_nothing_acknowledged_is_lost_when_the_writer_is_killed(store: SQLObservationStore) -> None:
    ds = store.ensure_datastream(spec())
    ctx = multiprocessing.get_context("spawn")
    acknowledged = ctx.Event()
    process = ctx.Process(target=_acknowledge_then_die, args=(*where(store), acknowledged))
    process.start()
    process.join(60)
    assert acknowledged.is_set() and process.exitcode == -signal.SIGKILL
    with reopen(store) as after:
        assert after.observations(ds)["result"].tolist() == [1.0, 2.0, 3.0]
