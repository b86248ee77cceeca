"""The City of Helsinki counts, checked against the file: 15-minute slots summed into hours, point C18
(no direction, two rows per slot) as one two-way count, the nominal date, and the demo twin's edges."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sensortwin import sensors_entry, twin_config

from civictwin.build import build_twin
from civictwin.config import load_config
from civictwin.demo import (
    CALIBRATION_COUNTS,
    DEMO_BBOX,
    add_calibration_counts,
    build_demo,
    write_demo_traffic,
)
from civictwin.engines.traffic.calibration import twin_count_sites
from civictwin.engines.traffic.params import load_params
from civictwin.ingest import import_sensors
from civictwin.sources.observations.helsinki import read_helsinki_counts
from civictwin.store.observations import iso, open_observations

pytestmark = pytest.mark.shared
COUNTS = "counts/helsinki/liikennemaarat_2011_2016.csv"
CENTRE = [24.9414, 60.1710]  # Helsinki central railway station


def file_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def slot_sum(rows: list[dict[str, str]], point: str, direction: str, year: str, slots: set[str]) -> float:
    return float(
        sum(
            int(r["autot"])
            for r in rows
            if r["piste"] == point and r["suunta"] == direction and r["vuosi"] == year and r["aika"] in slots
        )
    )


def test_slots_are_summed_into_hours_and_c18_into_one_two_way_count(
    shared_path: Callable[[str], Path],
) -> None:
    path = shared_path(COUNTS)
    source = twin_config(
        path.parent, [sensors_entry("counts", "helsinki_counts", path=str(path), centre=CENTRE)]
    )
    feed = read_helsinki_counts(source.sensors[0], path, None)
    rows = file_rows(path)
    frame = feed.observations

    def value(key: str, start: str) -> float:
        hit = frame[(frame["datastream"] == key) & (frame["phenomenon_time"].map(iso) == start)]
        assert len(hit) == 1
        return float(hit["result"].iloc[0])

    # 07:00 local (EET) on the nominal date, 1 January 2014 = 05:00 UTC: the four 15-minute slots
    expected_7 = slot_sum(rows, "A08", "1", "2014", {"700", "715", "730", "745"})
    assert value("counts/A08/1/autot", "2014-01-01T05:00:00Z") == expected_7
    assert value("counts/A08/1/autot", "2014-01-01T01:00:00Z") == slot_sum(rows, "A08", "1", "2014", {"300"})
    # C18: no direction, two rows per slot, summed
    both = [
        int(r["autot"]) for r in rows if r["piste"] == "C18" and r["vuosi"] == "2011" and r["aika"] == "0"
    ]
    assert len(both) == 2
    assert value("counts/C18/both/autot", "2010-12-31T22:00:00Z") == float(sum(both))
    points = {r["piste"] for r in rows}
    assert len(feed.datastreams) == (2 * (len(points) - 1) + 1) * 8  # 8 classes; C18 has one direction
    assert len(frame) == len(feed.datastreams) * 24 * 6  # every hour of every year of every datastream
    assert frame["result"].notna().all()
    silent = {p for p in points if all(int(r["autot"]) == 0 for r in rows if r["piste"] == p)}
    assert (
        silent == {"B11"}
        and set(frame.loc[frame["quality"] == 2, "datastream"].str.split("/").str[1]) == silent
    )
    copied = f"2016: {len(points) - 1} of {len(points) - 1} points that counted traffic repeat 2015's counts exactly"
    assert any(note.startswith(copied) for note in feed.notes)


@pytest.fixture(scope="module")
def demo_twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The demo twin of central Helsinki (built once for this module) with the counts configured."""
    directory = tmp_path_factory.mktemp("demo")
    build_demo(directory)
    yield directory


def test_demo_counts_sit_on_directed_edges(demo_twin: Path, shared_path: Callable[[str], Path]) -> None:
    path = shared_path(COUNTS)
    toml = demo_twin / "twin.toml"
    text = toml.read_text(encoding="utf-8")
    if "[[sensors]]" not in text:
        toml.write_text(
            text + f'\n[[sensors]]\nname = "counts"\nformat = "helsinki_counts"\npath = "{path}"\n'
            'licence = "CC-BY-4.0"\npublisher = "City of Helsinki"\nsteward = "Traffic planning"\n'
            f"centre = {CENTRE}\n",
            encoding="utf-8",
        )
    config = load_config(demo_twin)
    assert config.area.bbox == DEMO_BBOX
    (summary,) = import_sensors(config)
    assert (summary.datastreams, summary.stored) == (4 * 2 * 8, 4 * 2 * 8 * 144)  # 4 points inside the area
    with open_observations(config.store_path) as store:
        matches = {d.key: d.properties for d in store.datastreams() if d.key.endswith("/autot")}
    a08_in, a08_out = matches["counts/A08/1/autot"], matches["counts/A08/2/autot"]
    assert (a08_in["matched_street"], a08_in["heading"], a08_out["heading"]) == (
        "Pitkäsilta",
        "inbound",
        "outbound",
    )
    assert a08_in["edge_id"] != a08_out["edge_id"] and a08_in["match_distance_m"] < 10
    # Kaivokatu and Pohjoisesplanadi share one coordinate: only the street found there is matched
    assert matches["counts/D07/1/autot"]["matched_street"] == "Kaivokatu"
    assert matches["counts/D09/1/autot"]["edge_ids"] == []
    assert matches["counts/D09/1/autot"]["match_notes"][0].startswith(
        "no street named like 'POHJOISESPLANADI'"
    )
    assert (summary.matched_edges, summary.unmatched) == (6, 2)
    again = import_sensors(config)[0]
    assert (again.stored, again.duplicates) == (0, summary.stored)
    before = observation_counts(config.store_path)
    build_twin(config)  # a rebuild replaces the twin's store file: the observations beside it stay
    assert observation_counts(config.store_path) == before and sum(before.values()) == summary.stored


def observation_counts(store_path: Path) -> dict[int, int]:
    with open_observations(store_path, read_only=True) as store:
        return store.counts()


def test_the_demo_calibration_counts_every_class_but_buses(
    demo_twin: Path, shared_path: Callable[[str], Path]
) -> None:
    path = shared_path(COUNTS)
    config = add_calibration_counts(demo_twin, path)
    assert add_calibration_counts(demo_twin, path) == config  # once: a second call adds and imports nothing
    assert (demo_twin / "twin.toml").read_text().count(f'name = "{CALIBRATION_COUNTS}"') == 1
    with open_observations(config.store_path, read_only=True) as store:
        streams = [d for d in store.datastreams() if d.dataset == CALIBRATION_COUNTS]
    assert sorted({d.properties["vehicle_class"] for d in streams}) == ["ha", "ka", "mp", "pa", "ra"]
    write_demo_traffic(demo_twin)
    sites = twin_count_sites(demo_twin).window(load_params(demo_twin).calibration, 1)
    observed = sites[sites["site"].str.startswith(CALIBRATION_COUNTS)].set_index("site")["observed"]
    # 08:00-09:00 local of 2016 (its all-motor-vehicle counts repeat 2015's, its classes do not, so it is
    # the latest day that repeats none), ha + pa + ka + ra + mp summed by hand from the CSV: Pitkäsilta
    # inbound 1,026 + 175 + 42 + 0 + 8 (of 1,327 motor vehicles: 125 were buses), outbound
    # 358 + 73 + 30 + 1 + 2 (of 634: 145 buses)
    assert set(sites.loc[sites["site"].str.startswith(CALIBRATION_COUNTS), "hour"]) == {0}
    assert observed[f"{CALIBRATION_COUNTS}/A08/1"] == 1026 + 175 + 42 + 0 + 8
    assert observed[f"{CALIBRATION_COUNTS}/A08/2"] == 358 + 73 + 30 + 1 + 2
    assert observed[f"{CALIBRATION_COUNTS}/D07/1"] == 534 + 106 + 25 + 0 + 0
    assert observed[f"{CALIBRATION_COUNTS}/D10/2"] == 580 + 82 + 26 + 0 + 0
