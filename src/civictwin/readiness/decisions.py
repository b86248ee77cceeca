"""The decision log: which comparison informed which decision, when, and by whom (a role).

Each comparison's log lives in its own folder, beside the evidence it refers to
(``runs/<comparison id>/decisions.jsonl``), so a backup or a copy of the comparison carries it. An
entry holds the time (UTC), the role that decided (a role such as "city council", never a person's
name), the decision in plain words, the comparison id and the SHA-256 of its ``manifest.json`` at
that moment: if the comparison is later re-run and its evidence changes, the entry still says which
evidence the decision saw. The log is append-only and tamper-evident: every line is chained to the
one before it (:mod:`civictwin.governance.chain`'s format, checked by ``civictwin decision list``),
and fsynced before the command returns; it is never rotated or expired.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

import portalocker

from civictwin import durable
from civictwin.errors import CivicTwinError
from civictwin.governance.chain import seal, verify_chain
from civictwin.runs import COMPLETE, MANIFEST_FILE, RUNS_DIR, comparison_dir, is_valid_id

DECISIONS_FILE = "decisions.jsonl"
MAX_DECISION_CHARS = 4000
MAX_ROLE_CHARS = 80
EXPORT_FORMATS = (".csv", ".json")


class DecisionError(CivicTwinError):
    """A decision cannot be recorded or exported (unknown comparison, empty text, bad role)."""


@dataclass(frozen=True)
class Decision:
    """One entry of the log."""

    time: str
    comparison: str
    manifest_sha256: str
    decision: str
    by: str


@dataclass(frozen=True)
class DecisionLog:
    """The entries read (oldest first) and any sign of tampering, one line per problem."""

    entries: list[Decision]
    problems: list[str]


def record_decision(
    twin_dir: Path, *, comparison: str, decision: str, by: str, now: datetime | None = None
) -> Decision:
    """Append a decision informed by the finished comparison ``comparison`` to its log."""
    text, role = decision.strip(), " ".join(by.split())
    if not text:
        raise DecisionError("the decision text is empty", field="--decision")
    if len(text) > MAX_DECISION_CHARS:
        raise DecisionError(f"longer than {MAX_DECISION_CHARS} characters", field="--decision")
    if not role or len(role) > MAX_ROLE_CHARS:
        raise DecisionError(f"a role of 1 to {MAX_ROLE_CHARS} characters is needed", field="--by")
    folder = _finished(twin_dir, comparison)
    entry = Decision(
        time=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
        comparison=comparison,
        manifest_sha256=hashlib.sha256((folder / MANIFEST_FILE).read_bytes()).hexdigest(),
        decision=text,
        by=role,
    )
    _append(folder / DECISIONS_FILE, entry)
    return entry


def _append(path: Path, entry: Decision) -> None:
    """Chain ``entry`` to the log's last line and append it durably, under an exclusive lock; a log
    that is no longer intact is refused rather than extended."""
    with open(path, "ab") as handle:
        portalocker.lock(handle, portalocker.LockFlags.EXCLUSIVE)
        try:
            report = verify_chain([path])
            if not report.intact:
                raise DecisionError(f"the decision log is not intact: {report.problems[0]}", path=path)
            line, _ = seal(asdict(entry), report.head)
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            portalocker.unlock(handle)


def read_decisions(twin_dir: Path, *, comparison: str | None = None) -> DecisionLog:
    """Every decision of the twin (or of one comparison), oldest first, with each log verified."""
    if comparison is not None:
        paths = [_finished(twin_dir, comparison) / DECISIONS_FILE]
    else:
        paths = sorted((twin_dir / RUNS_DIR).glob(f"*/{DECISIONS_FILE}"))
    entries: list[Decision] = []
    problems: list[str] = []
    names = [f.name for f in fields(Decision)]
    for path in (p for p in paths if p.is_file()):
        problems += verify_chain([path]).problems
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                data = json.loads(line)
                entries.append(Decision(**{name: str(data[name]) for name in names}))
            except (ValueError, KeyError, TypeError):
                continue  # verify_chain has reported it
    return DecisionLog(sorted(entries, key=lambda e: (e.time, e.comparison)), problems)


def export_decisions(twin_dir: Path, output: Path, *, comparison: str | None = None) -> int:
    """Write the decisions to ``output`` (CSV or JSON, by its suffix); a tampered log is refused."""
    if output.suffix.lower() not in EXPORT_FORMATS:
        raise DecisionError(f"expected a {' or '.join(EXPORT_FORMATS)} file", path=output)
    log = read_decisions(twin_dir, comparison=comparison)
    if log.problems:
        raise DecisionError(f"the decision log is not intact: {log.problems[0]}")
    rows = [asdict(entry) for entry in log.entries]
    if output.suffix.lower() == ".json":
        text = json.dumps(rows, indent=1, ensure_ascii=False)
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=[f.name for f in fields(Decision)])
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    durable.write_text(output, text)
    return len(rows)


def _finished(twin_dir: Path, comparison: str) -> Path:
    """The folder of a finished comparison with a manifest, or a one-line error."""
    folder = comparison_dir(twin_dir, comparison) if is_valid_id(comparison) else None
    if folder is None or not (folder / COMPLETE).is_file() or not (folder / MANIFEST_FILE).is_file():
        raise DecisionError(
            f"no finished comparison '{comparison[:80]}' in {twin_dir / RUNS_DIR}", field="--comparison"
        )
    return folder
