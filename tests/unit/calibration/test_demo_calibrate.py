"""`civictwin demo-calibrate`: the demo's traffic settings written once, a missing counts file or an
existing calibration leaves the twin as it is (the calibration itself: test_traffic_calibration.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from civictwin.demo import write_demo_config, write_demo_traffic
from civictwin.engines.traffic.params import load_params


def civictwin(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from civictwin.cli import main; main()", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, env={"COLUMNS": "200", "PATH": ""},
    )  # fmt: skip


def test_the_demo_traffic_settings_are_written_once_and_read_as_stated(tmp_path: Path) -> None:
    assert write_demo_traffic(tmp_path) == tmp_path / "traffic.toml"
    params = load_params(tmp_path)
    calibration = params.calibration
    assert tuple(calibration.classes) == ("ha", "pa", "ka", "ra", "mp")  # no bus: the demo simulates none
    assert (calibration.folds, calibration.max_iterations, calibration.max_demand_growth) == (2, 2, 0.25)
    assert calibration.use_ambiguous and calibration.timezone == "Europe/Helsinki"
    assert (params.warmup_s, params.time_to_impatience_s, params.ignore_junction_blocker_s) == (1800, 30, 60)
    assert params.gateways.enabled
    assert (params.gateways.inbound_vph_per_lane, params.gateways.outbound_vph_per_lane) == (60, 60)
    (tmp_path / "traffic.toml").write_text("warmup_s = 600\n")
    assert write_demo_traffic(tmp_path) is None  # the user's own settings are kept
    assert (tmp_path / "traffic.toml").read_text() == "warmup_s = 600\n"


def test_without_the_counts_the_demo_is_left_uncalibrated(tmp_path: Path) -> None:
    write_demo_config(tmp_path / "demo")
    done = civictwin("demo-calibrate", "demo", "--counts", "absent.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Not calibrated: the Helsinki counts are not at absent.csv" in done.stdout
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["twin.toml"]


def test_a_calibrated_demo_is_left_as_it_is(tmp_path: Path) -> None:
    write_demo_config(tmp_path / "demo")
    records = tmp_path / "demo" / "calibration"
    records.mkdir()
    (records / "calibration-002.json").write_text("{}")
    counts = tmp_path / "counts.csv"
    counts.write_text("piste,nimi\n")
    done = civictwin("demo-calibrate", "demo", "--counts", str(counts), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (
        "Already calibrated (calibration-002); `civictwin calibrate run demo` calibrates it again."
        in done.stdout
    )
    assert not (tmp_path / "demo" / "traffic.toml").exists()
    assert "helsinki_counts" not in (tmp_path / "demo" / "twin.toml").read_text()


def test_a_missing_twin_is_one_line(tmp_path: Path) -> None:
    done = civictwin("demo-calibrate", "nowhere", cwd=tmp_path)
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1 and "nowhere" in done.stderr
