"""Scenario rules on finished comparisons: an alert opens with the comparison as evidence, stays one
alert while later comparisons agree, closes when one clears it, and reaches the webhook signed."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from receiver import Receiver

from civictwin.config import load_config
from civictwin.live.service import raise_comparison_alerts
from civictwin.store.alerts import AlertStore, alerts_path

SECRET = "webhook-secret"
RULES = """
[[rules]]
name = "co2_up"
kind = "scenario_difference"
kpis = ["co2_kg"]
by_more_than = 500.0
severity = "critical"

[[rules]]
name = "car_share_target"
kind = "scenario_target"
kpis = ["share_car"]
above = 0.38
"""
COMPARISON: dict[str, Any] = {
    "id": "cmp-1",
    "created": "2026-11-21T10:00:00Z",
    "baseline": "baseline",
    "plans": ["close_main", "zone30"],
    "kpis": [
        {"kpi": "co2_kg", "unit": "kg", "scenario": "baseline", "mean": 1731.0, "ci_low": 1700.0, "ci_high": 1762.0, "n": 5},
        {"kpi": "share_car", "unit": "share", "scenario": "close_main", "mean": 0.42, "ci_low": 0.40, "ci_high": 0.44, "n": 5},
        {"kpi": "share_car", "unit": "share", "scenario": "zone30", "mean": 0.36, "ci_low": 0.33, "ci_high": 0.39, "n": 5},
    ],
    "differences": [
        {"kpi": "co2_kg", "plan": "close_main", "mean": 988.0, "ci_low": 870.0, "ci_high": 1106.0},
        {"kpi": "co2_kg", "plan": "zone30", "mean": -29.0, "ci_low": -90.0, "ci_high": 32.0},
    ],
}  # fmt: skip


def twin(folder: Path, webhook_url: str) -> Path:
    (folder / "hook.secret").write_text(SECRET)
    (folder / "twin.toml").write_text(
        '[twin]\nname = "scenario alerts"\n[area]\nbbox = [0, 0, 1, 1]\n[[sources]]\nname = "osm"\nkind = "osm"\n'
        'path = "x.pbf"\nlicence = "ODbL-1.0"\npublisher = "OSM"\nsteward = "me"\n'
        + RULES
        + f'[[webhooks]]\nname = "ops"\nurl = "{webhook_url}"\nsecret_file = "hook.secret"\n'
    )
    return folder


def test_scenario_alerts_open_persist_and_close_with_the_comparison_as_evidence(tmp_path: Path) -> None:
    receiver = Receiver(SECRET)
    config = load_config(twin(tmp_path, receiver.url))
    try:
        first = raise_comparison_alerts(config, COMPARISON)
        again = copy.deepcopy(COMPARISON) | {"id": "cmp-2", "created": "2026-11-22T10:00:00Z"}
        repeated = raise_comparison_alerts(config, again)
        cleared = copy.deepcopy(COMPARISON) | {"id": "cmp-3", "created": "2026-11-23T10:00:00Z"}
        cleared["differences"][0] |= {"mean": 420.0, "ci_low": 300.0, "ci_high": 540.0}
        closed = raise_comparison_alerts(config, cleared)
        deliveries = receiver.wait_for(3)
    finally:
        receiver.close()
    assert [(a.rule, a.subject, str(e)) for a, e in first] == [
        ("co2_up", "scenario:close_main:co2_kg", "opened"),
        ("car_share_target", "scenario:close_main:share_car", "opened"),
    ]
    assert repeated == []  # still firing: counted, not delivered again
    assert [(a.rule, a.subject, str(e)) for a, e in closed] == [
        ("co2_up", "scenario:close_main:co2_kg", "closed")
    ]
    with AlertStore(alerts_path(config.store_path)) as alerts:
        [co2] = alerts.alerts(rule="co2_up")
        [share] = alerts.alerts(rule="car_share_target")
    assert co2.evidence == {
        "comparison": "cmp-1",
        "baseline": "baseline",
        "difference": {"kpi": "co2_kg", "scenario": "close_main", "unit": "kg", "mean": 988.0, "ci_low": 870.0,
                       "ci_high": 1106.0, "confidence": 0.95},
    }  # fmt: skip
    assert (co2.fired, co2.severity, co2.closing["value"] if co2.closing else None) == (2, "critical", 300.0)
    assert co2.last_evidence["comparison"] == "cmp-2"
    assert (share.status, share.fired, share.value) == ("open", 3, 0.40)
    assert [d.body["event"] for d in deliveries] == ["opened", "opened", "closed"]
    assert all(d.signature_ok for d in deliveries)


def test_the_cli_checks_a_comparison_folder(tmp_path: Path) -> None:
    receiver = Receiver(SECRET)
    twin(tmp_path, receiver.url)
    folder = tmp_path / "runs" / "cmp-1"
    folder.mkdir(parents=True)
    (folder / "comparison.json").write_text(json.dumps(COMPARISON))
    command = [sys.executable, "-c", "from civictwin.cli import main; main()", "alerts"]
    try:
        checked = subprocess.run(
            [*command, "check", "cmp-1", "--twin", str(tmp_path)], capture_output=True, text=True, check=False
        )
        missing = subprocess.run(
            [*command, "check", "cmp-9", "--twin", str(tmp_path)], capture_output=True, text=True, check=False
        )
        receiver.wait_for(2)
    finally:
        receiver.close()
    assert checked.returncode == 0, checked.stderr
    assert "alert 1 opened: co2_up on scenario:close_main:co2_kg" in checked.stdout
    assert missing.returncode == 2
    assert (
        missing.stderr.strip()
        == f"error: {tmp_path / 'runs' / 'cmp-9' / 'comparison.json'}: no finished comparison with this id"
    )
