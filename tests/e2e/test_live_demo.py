"""The live demo: Helsinki's counts inside the demo area imported once, replayed over a local Mosquitto,
stored by the consumer and raising the busy-street alert at the morning peak; `civictwin demo-live`
serves it all and stops the broker with the server. Needs the shared counts (skipped without)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from civictwin.config import load_config
from civictwin.live.broker import free_port, mosquitto_available
from civictwin.live.consumer import LiveConsumer
from civictwin.live.demo import add_counts, live_demo, shared_counts, typical_day
from civictwin.store.alerts import AlertStore, alerts_path
from civictwin.store.observations import open_observations

pytestmark = pytest.mark.e2e

if not shared_counts().is_file():
    pytest.skip(
        f"the shared Helsinki counts are absent (expected at {shared_counts()})", allow_module_level=True
    )
if not mosquitto_available():
    pytest.skip("Eclipse Mosquitto is not installed (apt-get install mosquitto)", allow_module_level=True)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from civictwin.demo import build_demo

    folder = tmp_path_factory.mktemp("live-demo")
    build_demo(folder)
    return folder


def _csv_hour(point: str, direction: int, year: int, hour: int) -> float:
    """All motor vehicles at a point, direction and hour of a year's typical day, summed by hand."""
    table = pd.read_csv(shared_counts(), encoding="latin-1", sep=None, engine="python")
    rows = table[(table["piste"] == point) & (table["suunta"] == direction) & (table["vuosi"] == year)]
    return float(rows[rows["aika"] // 100 == hour]["autot"].sum())


def test_the_counts_are_replayed_stored_and_raise_the_busy_street_alert(demo_dir: Path) -> None:
    config = add_counts(demo_dir, shared_counts())
    with open_observations(config.store_path, read_only=True) as store:
        imported = sum(store.counts().values())
    add_counts(demo_dir, shared_counts())  # a second run adds nothing to twin.toml and imports nothing again
    assert (demo_dir / "twin.toml").read_text().count("live demo (civictwin demo-live)") == 1
    with open_observations(config.store_path, read_only=True) as store:
        keys = sorted(d.key for d in store.datastreams())
        assert sum(store.counts().values()) == imported
    points = sorted({key.split("/")[1] for key in keys})
    assert points == ["A08", "D07", "D09", "D10"]  # Pitkäsilta, Kaivokatu and the two Esplanadi streets
    assert keys == [f"helsinki_counts/{p}/{d}/autot" for p in points for d in (1, 2)]
    day = typical_day(config)
    ids = {key: i + 1 for i, key in enumerate(keys)}
    assert len(day) == 24
    assert day[7].counts[ids["helsinki_counts/A08/1/autot"]] == _csv_hour("A08", 1, 2016, 7)  # 06:00 + 1 h
    assert day[8].counts[ids["helsinki_counts/D09/1/autot"]] == _csv_hour("D09", 1, 2016, 8)

    consumers: list[LiveConsumer] = []
    with live_demo(config, step_s=0.1, on_ready=lambda consumer, _: consumers.append(consumer)) as replayer:
        broker_port = int(consumers[0].settings.broker.rpartition(":")[2])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and consumers[0].counters.stored < 24 * len(keys):
            time.sleep(0.2)
        counters = consumers[0].counters
    assert counters.stored >= 24 * len(keys) and sum(counters.dead_lettered.values()) == 0
    assert counters.alerts_opened >= 1 and replayer.published >= counters.stored
    with open_observations(config.store_path, read_only=True) as store:
        assert sum(store.counts().values()) == imported + counters.stored
    with AlertStore(alerts_path(config.store_path)) as alerts:
        busy = alerts.alerts(rule="busy_street")
    assert busy and all(a.evidence["observations"][0]["result"] > 700 for a in busy)
    with socket.socket() as probe:  # the broker is gone with the demo
        assert probe.connect_ex(("127.0.0.1", broker_port)) != 0


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_demo_live_serves_live_sensors_and_stops_the_broker(demo_dir: Path) -> None:
    load_config(demo_dir)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", "from civictwin.cli import main; main()", "demo-live", str(demo_dir),
         "--step", "0.2", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        alerts: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not alerts:
            time.sleep(0.5)
            try:  # alerts open at the morning peak and close after it: the list keeps both
                alerts = _get(f"http://127.0.0.1:{port}/alerts")["alerts"]
            except OSError:
                continue
        assert alerts and {a["rule"] for a in alerts} == {"busy_street"}
        sensors = _get(f"http://127.0.0.1:{port}/live/sensors")
        assert len(sensors["features"]) == 8
        assert {f["properties"]["status"] for f in sensors["features"]} <= {"ok", "alert"}
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err.decode()[-2000:]  # Ctrl+C ends every command with 130
    assert err.decode().strip().splitlines()[-1] == "interrupted: nothing half-written was kept"
    assert "Stopped the replay" in out.decode()
    assert not list(Path("/proc").glob("*/cmdline")) or all(
        str(demo_dir / "live-demo" / "broker") not in _cmdline(p)
        for p in Path("/proc").glob("[0-9]*/cmdline")
    )


def _cmdline(path: Path) -> str:
    try:
        return path.read_bytes().decode(errors="replace")
    except OSError:
        return ""
