"""The decision log: appended with the manifest's hash, listed in order, exported, chained against
tampering; bad input is one line."""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from civictwin.cli import main
from civictwin.readiness.decisions import (
    DECISIONS_FILE,
    DecisionError,
    export_decisions,
    read_decisions,
    record_decision,
)


@pytest.fixture
def twin(tmp_path: Path) -> Path:
    """A twin folder with one finished comparison, ``cmp1`` (each test starts with an empty log)."""
    comparison = tmp_path / "runs" / "cmp1"
    comparison.mkdir(parents=True)
    (comparison / "manifest.json").write_text('{"comparison": "cmp1"}\n', encoding="utf-8")
    (comparison / "complete").write_text("2026-11-01T00:00:00+00:00\n", encoding="utf-8")
    (tmp_path / "runs" / "unfinished").mkdir()
    (tmp_path / "runs" / "unfinished" / "manifest.json").write_text("{}", encoding="utf-8")
    return tmp_path


def test_append_list_and_export(twin: Path) -> None:
    manifest = hashlib.sha256((twin / "runs/cmp1/manifest.json").read_bytes()).hexdigest()
    first = record_decision(
        twin, comparison="cmp1", decision="  Adopt the zone 30 plan.  ", by="city  council",
        now=datetime(2026, 11, 2, 9, tzinfo=UTC),
    )  # fmt: skip
    record_decision(
        twin, comparison="cmp1", decision="Review in a year.", by="mobility committee",
        now=datetime(2026, 11, 1, 9, tzinfo=UTC),
    )  # fmt: skip
    assert (first.decision, first.by, first.manifest_sha256) == (
        "Adopt the zone 30 plan.",
        "city council",
        manifest,
    )
    log = read_decisions(twin)
    assert log.problems == []
    assert [(e.time, e.by) for e in log.entries] == [
        ("2026-11-01T09:00:00+00:00", "mobility committee"),
        ("2026-11-02T09:00:00+00:00", "city council"),
    ]
    lines = (twin / "runs/cmp1" / DECISIONS_FILE).read_text().splitlines()
    assert json.loads(lines[1])["prev"] == json.loads(lines[0])["hash"]  # chained in the order written
    assert export_decisions(twin, twin / "out.csv") == 2
    rows = list(csv.DictReader((twin / "out.csv").open(encoding="utf-8")))
    assert [r["decision"] for r in rows] == ["Review in a year.", "Adopt the zone 30 plan."]
    assert {r["manifest_sha256"] for r in rows} == {manifest}
    assert export_decisions(twin, twin / "out.json", comparison="cmp1") == 2
    assert json.loads((twin / "out.json").read_text())[1]["by"] == "city council"


def test_the_commands(twin: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["decision", "record", str(twin), "--comparison", "cmp1", "--decision", "Adopt.", "--by", "council"])
    assert capsys.readouterr().out.startswith("Recorded the decision of council on cmp1 at ")
    main(["decision", "export", str(twin), "--output", str(twin / "log.json")])
    assert "".join(capsys.readouterr().out.split()) == "".join(
        f"Wrote 1 decision(s) to {twin / 'log.json'}".split()
    )
    assert [e["decision"] for e in json.loads((twin / "log.json").read_text())] == ["Adopt."]
    main(["decision", "list", str(twin)])
    assert "council" in capsys.readouterr().out


def test_a_tampered_log_is_reported_and_not_extended(twin: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record_decision(twin, comparison="cmp1", decision="Adopt.", by="council")
    path = twin / "runs/cmp1" / DECISIONS_FILE
    path.write_text(path.read_text().replace("Adopt.", "Reject."))
    assert read_decisions(twin).problems == [
        f"{path}: line 1: altered (its content no longer matches its hash)"
    ]
    with pytest.raises(SystemExit) as exited:
        main(["decision", "list", str(twin)])
    assert exited.value.code == 1
    assert "tampered: " in capsys.readouterr().out
    with pytest.raises(DecisionError, match="not intact"):
        record_decision(twin, comparison="cmp1", decision="More.", by="council")
    with pytest.raises(DecisionError, match="not intact"):
        export_decisions(twin, twin / "out.csv")


@pytest.mark.parametrize(
    ("comparison", "decision", "by", "message"),
    [
        ("nope", "Adopt.", "council", "--comparison: no finished comparison 'nope' in {runs}"),
        ("../cmp1", "Adopt.", "council", "--comparison: no finished comparison '../cmp1' in {runs}"),
        ("unfinished", "Adopt.", "council", "--comparison: no finished comparison 'unfinished' in {runs}"),
        ("cmp1", "   ", "council", "--decision: the decision text is empty"),
        ("cmp1", "Adopt.", " ", "--by: a role of 1 to 80 characters is needed"),
    ],
)
def test_bad_input_is_one_line(
    twin: Path, capsys: pytest.CaptureFixture[str], comparison: str, decision: str, by: str, message: str
) -> None:
    argv = ["decision", "record", str(twin), "--comparison", comparison, "--decision", decision, "--by", by]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 1
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {message.format(runs=twin / 'runs')}"]
    assert not (twin / "runs/cmp1" / DECISIONS_FILE).exists()
