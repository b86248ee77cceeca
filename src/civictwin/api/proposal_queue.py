"""The server's run queue of approved citizen proposals (docs/consultation.md#citizen-proposals).

Each run is ``civictwin compare <consultation's baseline> <proposal>.toml`` in a child process: the
same ensemble driver, report and manifest as every official comparison, with the consultation's
seeds (at most ``[proposals] max_seeds``) and the twin's current parameters and latest calibration,
into ``runs/proposal-<id>-<consultation>``. A thread ticks every ``poll_s`` seconds:

* its own runs send a heartbeat; a finished one becomes ``done`` (exit 0 and the comparison complete)
  or ``failed`` (its last output line is the reason); one being cancelled is sent SIGINT, which the
  command's interrupt handling turns into a clean stop of every seed (the ensemble driver's), and is
  killed with its process group if it has not ended ``STOP_AFTER_S`` later;
* runs whose heartbeat is older than ``stale_after_s`` (their server died) are re-queued, and resume
  the seeds they completed, since the comparison id is the same;
* the oldest queued proposal starts while fewer than ``concurrent_runs`` run and fewer than
  ``runs_per_day`` first started this UTC day (the claim is one transaction, so several server
  processes share the limits).

Stopping the queue (the server shuts down) interrupts its runs and re-queues them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from civictwin.config import load_config
from civictwin.config_consult import ProposalsSection
from civictwin.runs import COMPLETE, MANIFEST_FILE, comparison_dir
from civictwin.scenarios.proposal import scenario_toml, toml_value
from civictwin.scenarios.spec import BASELINE
from civictwin.store.proposals import Proposal, ProposalStore, State

logger = logging.getLogger(__name__)

PROPOSALS_DIR = "proposals"
"""``<twin dir>/proposals``: each proposal's scenario file and its run's output."""
STOP_AFTER_S = 30.0
"""How long a run told to stop (SIGINT) gets before its process group is killed (s)."""
_OUTCOME_CHARS = 300

Command = Callable[[Proposal, Path, ProposalsSection], list[str]]
"""The command line of a proposal's run (tests give a stand-in)."""
Clock = Callable[[], datetime]


def proposal_file(twin_dir: Path, proposal: Proposal) -> Path:
    """Where a proposal's scenario file is written."""
    return twin_dir / PROPOSALS_DIR / f"proposal-{proposal.id}.toml"


def remove_files(twin_dir: Path, proposal: Proposal) -> None:
    """Remove what a proposal left on disk: its scenario file, its run's output and its comparison
    (whose question is the proposal's title)."""
    for path in (proposal_file(twin_dir, proposal), proposal_file(twin_dir, proposal).with_suffix(".log")):
        path.unlink(missing_ok=True)
    if proposal.comparison is not None:
        shutil.rmtree(comparison_dir(twin_dir, proposal.comparison), ignore_errors=True)


def compare_command(proposal: Proposal, twin_dir: Path, settings: ProposalsSection) -> list[str]:
    """``civictwin compare`` of the consultation's baseline and the proposal (its file written first),
    with the consultation's seeds and the ``[proposals]`` settings."""
    official = comparison_dir(twin_dir, proposal.consultation)
    baseline, seeds = _official(official)
    if settings.max_seeds is not None:
        seeds = min(seeds, settings.max_seeds)
    path = proposal_file(twin_dir, proposal)
    path.parent.mkdir(parents=True, exist_ok=True)
    description = proposal.description or proposal.title
    path.write_text(
        scenario_toml(f"proposal-{proposal.id}", description, proposal.interventions), encoding="utf-8"
    )
    options = [
        f"--set={engine}.{key}={toml_value(value)}"
        for engine, values in sorted(settings.settings.items())
        for key, value in sorted(values.items())
    ]
    return [
        sys.executable, "-c", "from civictwin.entry import main; main()", "compare", baseline, str(path),
        "--twin", str(twin_dir), "--id", str(proposal.comparison), "--seeds", str(seeds),
        "--workers", str(settings.workers), "--seed-timeout", str(settings.seed_timeout_s),
        "--question", proposal.title, *options,
    ]  # fmt: skip


def _official(directory: Path) -> tuple[str, int]:
    """The official comparison's baseline and number of seeds (5, the CLI's default, when unrecorded)."""
    baseline, seeds = BASELINE, 5
    with contextlib.suppress(OSError, ValueError):
        record = json.loads((directory / "comparison.json").read_text(encoding="utf-8"))
        baseline = str(record.get("baseline") or BASELINE)
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        seeds = len(json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))["seeds"]) or seeds
    return baseline, seeds


def utc_now() -> datetime:
    """The current time (tests give their own clock)."""
    return datetime.now(UTC)


@dataclass
class _Run:
    """A run this process started."""

    proposal: Proposal
    process: subprocess.Popen[bytes]
    log: Path
    stop_sent: float | None = None


@dataclass
class ProposalQueue:
    """The run queue of one twin's proposals (see the module docstring)."""

    store: ProposalStore
    twin_dir: Path
    command: Command = compare_command
    clock: Clock = utc_now
    poll_s: float = 1.0
    stale_after_s: float = 60.0
    _runs: dict[int, _Run] = field(default_factory=dict)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _tick_lock: threading.Lock = field(default_factory=threading.Lock)

    def settings(self) -> ProposalsSection:
        """The ``[proposals]`` section, read afresh (a running server follows ``twin.toml``)."""
        return load_config(self.twin_dir).proposals

    def start(self) -> None:
        """Tick in a daemon thread until :meth:`stop` (starting twice does nothing)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="proposal-queue", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop ticking, interrupt this process's runs and hand them back (re-queued)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_s + STOP_AFTER_S)
            self._thread = None
        with self._tick_lock:
            for run in list(self._runs.values()):
                _interrupt(run.process)
            for proposal_id, run in list(self._runs.items()):
                _wait_or_kill(run.process, STOP_AFTER_S)
                self.store.release(proposal_id, now=self.clock())
                del self._runs[proposal_id]

    def _loop(self) -> None:
        while not self._stopping.wait(self.poll_s):
            try:
                self.tick()
            except Exception:  # a tick's failure is logged, the queue goes on (no personal data in it)
                logger.exception("the proposal queue's tick failed")

    def tick(self) -> None:
        """One round: heartbeats and finished runs, stale runs re-queued, queued proposals started."""
        with self._tick_lock:
            now = self.clock()
            for proposal_id in list(self._runs):
                self._watch(proposal_id, now)
            self.store.recover(stale_after_s=self.stale_after_s, now=now)
            settings = self.settings()
            while True:
                claimed = self.store.claim(
                    concurrent=settings.concurrent_runs, per_day=settings.runs_per_day, now=now
                )
                if claimed is None:
                    return
                self._launch(claimed, settings, now)

    def ticking(self) -> bool:
        """Whether the queue's thread is running (between :meth:`start` and :meth:`stop`)."""
        return self._thread is not None and self._thread.is_alive()

    def _launch(self, proposal: Proposal, settings: ProposalsSection, now: datetime) -> None:
        log = proposal_file(self.twin_dir, proposal).with_suffix(".log")
        try:
            argv = self.command(proposal, self.twin_dir, settings)
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("ab") as out:
                process = subprocess.Popen(
                    argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    cwd=self.twin_dir, start_new_session=True,
                )  # fmt: skip
        except (OSError, ValueError) as exc:
            self.store.finish(proposal.id, State.FAILED, outcome=f"the run could not start: {exc}", now=now)
            return
        self._runs[proposal.id] = _Run(proposal, process, log)

    def _watch(self, proposal_id: int, now: datetime) -> None:
        run = self._runs[proposal_id]
        state = self.store.beat(proposal_id, now=now)
        code = run.process.poll()
        if code is not None:
            del self._runs[proposal_id]
            self._finished(run, code, state, now)
            return
        if state is State.CANCELLING:
            if run.stop_sent is None:
                _interrupt(run.process)
                run.stop_sent = time.monotonic()
            elif time.monotonic() - run.stop_sent > STOP_AFTER_S:
                _kill_group(run.process)

    def _finished(self, run: _Run, code: int, state: State | None, now: datetime) -> None:
        proposal = run.proposal
        if state is State.CANCELLING:
            self.store.finish(proposal.id, State.CANCELLED, outcome=None, now=now)
            return
        complete = (comparison_dir(self.twin_dir, str(proposal.comparison)) / COMPLETE).is_file()
        if code == 0 and complete:
            self.store.finish(proposal.id, State.DONE, outcome="done", now=now)
            return
        reason = _last_line(run.log) or f"the run ended with exit status {code}"
        self.store.finish(proposal.id, State.FAILED, outcome=reason[:_OUTCOME_CHARS], now=now)


def _last_line(log: Path) -> str:
    """The last non-empty line of a run's output (the command's one-line error)."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return next((line.strip() for line in reversed(lines) if line.strip()), "")


def _interrupt(process: subprocess.Popen[bytes]) -> None:
    """SIGINT to the run's command, as Ctrl-C would: it stops its seeds and removes their partial files."""
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGINT)


def _wait_or_kill(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(process)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the run's whole process group (its seed workers included) and reap it; where there are no
    process groups (Windows), the run's own process."""
    kill = getattr(signal, "SIGKILL", None)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if kill is None or not hasattr(os, "killpg"):
            process.kill()
        else:
            os.killpg(process.pid, kill)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
