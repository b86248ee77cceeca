"""Calibration records and commands: bad records and missing twins are one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from civictwin.cli import main
from civictwin.engines.traffic.calibration import latest_record, save_record, statement, with_calibration
from civictwin.engines.traffic.fit import fit
from civictwin.engines.traffic.params import TrafficParams
from civictwin.errors import EngineError


def test_records_are_versioned_and_a_broken_one_is_refused(tmp_path: Path) -> None:
    assert latest_record(tmp_path) is None and with_calibration(TrafficParams(), tmp_path) == TrafficParams()
    record = {
        "od_factors": [["a", "b", float("nan")]],
        "count_edges": ["e1"],
        "fit_after": {"r2": float("nan")},
    }
    path = save_record(tmp_path, record)
    assert path.read_text(encoding="utf-8").count("null") == 2  # NaN is stored as null, never as NaN
    (tmp_path / "calibration" / "calibration-002.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(EngineError, match="unreadable calibration record"):
        latest_record(tmp_path)


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ([1, 2], "expected a JSON object"),
        ({"count_edges": []}, "od_factors: Field required"),
        ({"od_factors": 7, "count_edges": []}, "od_factors: Input should be a valid list"),
        ({"od_factors": [["a", "b", None]], "count_edges": []}, r"od_factors\[0\]\[2\]: Input should be a valid number"),
        ({"od_factors": [], "count_edges": [1.5]}, r"count_edges\[0\]: Input should be a valid string"),
    ],
)  # fmt: skip
def test_a_record_of_the_wrong_shape_names_the_member(tmp_path: Path, record: object, problem: str) -> None:
    path = tmp_path / "calibration" / "calibration-001.json"
    path.parent.mkdir()
    path.write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(
        EngineError, match=f"^{re.escape(str(path))}: unreadable calibration record: {problem}$"
    ):
        latest_record(tmp_path)


def test_numbered_zones_and_edges_are_read_as_text(tmp_path: Path) -> None:
    save_record(tmp_path, {"od_factors": [[1, 2, 0.5]], "count_edges": [7]})
    record = latest_record(tmp_path)
    assert record is not None
    assert record["od_factors"] == [("1", "2", 0.5)] and record["count_edges"] == ["7"]


def test_the_statement_never_flatters() -> None:
    before, after = fit([100, 200, 300], [10, 20, 30]), fit([100, 200, 300], [100, 100, 300])  # GEH 0, 8.2, 0
    text = statement(before, after, converged=False, folds={"note": "1 site(s): too few to hold any back"})
    assert text.startswith("After calibration GEH < 5 holds at 67% of 3 count site-hours (0% before)")
    assert "does not meet the DMRB / TAG M3.1 criterion of 85%" in text
    assert "No held-back validation: 1 site(s): too few to hold any back." in text
    assert text.endswith(
        "The calibration did not converge: its last update still changed an OD or gateway factor by more than 5 %."
    )


def test_calibrate_sites_without_a_twin_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["calibrate", "sites", str(tmp_path)])
    assert exit_.value.code != 0
    assert capsys.readouterr().err.startswith("error: ")
