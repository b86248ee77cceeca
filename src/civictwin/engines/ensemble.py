"""The one driver of every engine: scenarios × engines × seeds in worker processes, resumable.

For each engine and scenario the inputs are prepared once in this process (:meth:`Engine.prepare`);
then every seed runs in its own worker process (a ``ProcessPoolExecutor`` with ``spawn``), at most
``workers`` at a time. Each seed is written into a staging folder beside its final place
(:func:`civictwin.runs.seed_dir`) and renamed into place only when complete, with the ``complete``
marker written last, so an interrupted or failed seed leaves nothing that looks finished. Running
the same comparison id again reuses every seed that is complete *and* has the same fingerprint
(engine and version, its parameters, the scenario's interventions for that engine, the twin's data):
an interrupted comparison resumes without recomputing finished seeds.

Where the seeds run is pluggable (:class:`SeedExecutor`): the local process pool by default, or a
Dask cluster (:mod:`civictwin.engines.cluster`), which calls :func:`run_seed` in seed processes of
its workers. Every seed records where it ran (``SeedRecord.worker``).

Failures are one line naming the engine, the scenario and the seed: an engine that raises, returns
tables other than it declared, or hangs past the per-seed timeout (the worker is stopped). Ctrl-C
cancels queued seeds and interrupts running ones, each of which removes its staging folder. One kind
of failure is a result instead: a simulation that ran but failed the engine's quality check
(:class:`~civictwin.errors.QualityCheckFailed`, e.g. a plan that gridlocks the network) is saved as a
*failed seed* (``SeedRecord.failure``, no KPIs or tables), reused on a rerun like any other seed, and
reported by the comparison as a finding (:mod:`civictwin.compare`).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import hashlib
import importlib
import json
import multiprocessing
import os
import queue
import shutil
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from civictwin import durable
from civictwin.engines.base import Engine, EngineResult, TableSpec, TwinContext
from civictwin.errors import CivicTwinError, EngineError, QualityCheckFailed, ScenarioError
from civictwin.locking import LockHeld, exclusive
from civictwin.runs import (
    COMPLETE,
    LOCK_FILE,
    RUN_FILE,
    SeedKpi,
    SeedRecord,
    comparison_dir,
    read_seed,
    seed_dir,
    work_dir,
)
from civictwin.scenarios.spec import Scenario

Progress = Callable[[str, int, int], None]
"""Called with (message, done, total) as seeds finish."""

DEFAULT_SEED_TIMEOUT_S = 7200.0
"""How long one seed may run before it counts as hanging (``civictwin compare --seed-timeout``)."""
STOP_GRACE_S = 5.0
"""How long interrupted workers get to clean up before they are killed; also how long past its
timeout a seed may take before the driving process stops its worker."""
WATCH_S = 1.0
"""How often the driving process looks for seeds past their timeout."""
SAVING_MODULES = ("pyarrow.parquet",)
"""What saving a seed's tables imports (pandas loads it on a process's first ``to_parquet``): each worker
imports it while it waits for its first seed, so the seed's saving does not (about 0.05 s)."""


@dataclass(frozen=True)
class Ensemble:
    """Every engine's seeds of every scenario, and what the orchestration did.

    ``runs[engine][scenario]`` lists the saved seeds in the order of ``seeds``; ``resumed`` the
    (engine, scenario, seed) reused from an earlier run, ``computed`` those run this time.
    """

    comparison_id: str
    directory: Path
    twin: TwinContext
    scenarios: tuple[Scenario, ...]
    engines: tuple[Engine, ...]
    seeds: tuple[int, ...]
    parameters: dict[str, dict[str, Any]]
    runs: dict[str, dict[str, list[SeedRecord]]]
    resumed: tuple[tuple[str, str, int], ...]
    computed: tuple[tuple[str, str, int], ...]
    wall_s: float
    notes: tuple[str, ...] = ()
    """What the executor reports about the run itself, e.g. a cluster worker lost and its seeds re-run."""


def seed_list(seeds: int | Sequence[int]) -> tuple[int, ...]:
    """``5`` → seeds 1 … 5; an explicit list is kept (duplicates dropped)."""
    if isinstance(seeds, int):
        if seeds < 1:
            raise ScenarioError("the number of seeds must be at least 1", field="seeds")
        return tuple(range(1, seeds + 1))
    return tuple(dict.fromkeys(int(s) for s in seeds))


def fingerprint(
    engine: Engine, scenario: Scenario, parameters: Mapping[str, Any], data_fingerprint: str
) -> str:
    """What a seed of ``engine`` on ``scenario`` depends on, hashed (seeds are reused only on a match).

    Only the interventions of this engine's types count, so editing another engine's intervention in
    a mixed scenario does not recompute this engine's seeds.
    """
    own = [i.model_dump(mode="json") for i in scenario.interventions if i.type in engine.intervention_types]
    parts = {
        "engine": engine.name,
        "version": engine.version,
        "parameters": parameters,
        "scenario": scenario.name,
        "interventions": own,
        "data": data_fingerprint,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class SeedJob:
    """One seed for a worker process: the engine, its prepared inputs, and where the result goes."""

    engine: Engine
    inputs: Any
    scenario: str
    seed: int
    fingerprint: str
    final_dir: Path
    timeout_s: float

    @property
    def key(self) -> tuple[str, str, int]:
        """(engine, scenario, seed)."""
        return (self.engine.name, self.scenario, self.seed)

    @property
    def who(self) -> str:
        """``engine 'traffic', scenario 'zone_30', seed 3``: how errors name the seed."""
        return f"engine '{self.engine.name}', scenario '{self.scenario}', seed {self.seed}"


OnDone = Callable[[SeedJob, SeedRecord], None]
"""Called in the driving process with each seed's saved record as it finishes."""


class SeedExecutor(Protocol):
    """Where the seeds run: the local process pool, or a Dask cluster (:mod:`civictwin.engines.cluster`)."""

    notes: list[str]
    """Plain-language lines about the run (workers lost, seeds re-run), filled while running."""

    def run(self, jobs: Sequence[SeedJob], on_done: OnDone) -> None:
        """Run every job once, calling ``on_done`` as each finishes; raise the first seed's failure."""


OpenExecutor = Callable[[int, tuple[str, ...]], AbstractContextManager[SeedExecutor]]
"""Opens a :class:`SeedExecutor` for at most this many seed runs (sized, connected), whose seed
processes import these modules (the engines' own, :data:`SAVING_MODULES`) while the scenarios are
prepared; it is entered before anything is written, so one that cannot start leaves nothing behind."""


def run_ensemble(
    twin: TwinContext,
    scenarios: Sequence[Scenario],
    engines: Sequence[Engine],
    *,
    comparison_id: str,
    seeds: int | Sequence[int] = 5,
    workers: int = 2,
    seed_timeout_s: float = DEFAULT_SEED_TIMEOUT_S,
    progress: Progress | None = None,
    executor: OpenExecutor | None = None,
) -> Ensemble:
    """Run every scenario with every engine over every seed, one process per seed (at most ``workers``).

    Seeds already complete under the same comparison id (and fingerprint) are not run again and are
    listed in :attr:`Ensemble.resumed`; the scenario is then not even prepared when all its seeds are.
    ``executor`` decides where the seeds run (default: a local pool of ``workers`` processes).
    """
    start = time.perf_counter()
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        raise ScenarioError(f"scenario names must differ, got {', '.join(names)}", field="scenarios")
    if not engines:
        raise ScenarioError("no engine to run", field="engines")
    chosen = seed_list(seeds)
    directory = comparison_dir(twin.twin_dir, comparison_id)
    most_runs = len(engines) * len(scenarios) * len(chosen)
    warm = tuple(dict.fromkeys([*SAVING_MODULES, *(type(e).__module__ for e in engines)]))
    opened = executor or (lambda most, modules: _seed_pool(workers, most, warm_modules=modules))
    with opened(most_runs, warm) as running, _sole_run(directory, comparison_id):
        data = twin.data_fingerprint()
        parameters = {e.name: dict(e.parameters(twin)) for e in engines}
        prints = {
            (e.name, s.name): fingerprint(e, s, parameters[e.name], data) for e in engines for s in scenarios
        }
        runs, resumed, todo = _resume(directory, engines, scenarios, chosen, prints)
        total = len(todo) + len(resumed)
        inputs = _prepare(twin, directory, engines, scenarios, {(e, s) for e, s, _ in todo}, progress)
        if progress:
            progress(f"{len(resumed)} seed run(s) already complete, {len(todo)} to run", len(resumed), total)
        by_name = {e.name: e for e in engines}
        jobs = [
            SeedJob(
                engine=by_name[e],
                inputs=inputs[(e, s)],
                scenario=s,
                seed=seed,
                fingerprint=prints[(e, s)],
                final_dir=seed_dir(directory, e, s, seed),
                timeout_s=seed_timeout_s,
            )
            for e, s, seed in todo
        ]
        _execute(running, jobs, runs, progress, len(resumed), total)
    return Ensemble(
        comparison_id=comparison_id,
        directory=directory,
        twin=twin,
        scenarios=tuple(scenarios),
        engines=tuple(engines),
        seeds=chosen,
        parameters=parameters,
        runs={e.name: {s: [runs[(e.name, s)][seed] for seed in chosen] for s in names} for e in engines},
        resumed=tuple(resumed),
        computed=tuple(todo),
        wall_s=time.perf_counter() - start,
        notes=tuple(running.notes),
    )


@contextlib.contextmanager
def _sole_run(directory: Path, comparison_id: str) -> Iterator[None]:
    """Hold the comparison's lock while it runs.

    A second run of the same comparison id would rewrite the prepared inputs under the first one and
    remove its seed folders in progress as if a killed run had left them, so it is refused.
    """
    try:
        with exclusive(directory / LOCK_FILE, wait=False):
            yield
    except LockHeld:
        raise ScenarioError(
            f"comparison '{comparison_id}' is already running in another process; wait for it to finish "
            "or give this one another --id",
            path=directory,
        ) from None


def _resume(
    directory: Path,
    engines: Sequence[Engine],
    scenarios: Sequence[Scenario],
    seeds: Sequence[int],
    prints: Mapping[tuple[str, str], str],
) -> tuple[
    dict[tuple[str, str], dict[int, SeedRecord]], list[tuple[str, str, int]], list[tuple[str, str, int]]
]:
    """The seeds already complete with a matching fingerprint, which those are, and which remain.

    Staging folders left by a killed run are removed: they are never resumed from.
    """
    runs: dict[tuple[str, str], dict[int, SeedRecord]] = {}
    resumed: list[tuple[str, str, int]] = []
    todo: list[tuple[str, str, int]] = []
    for scenario in scenarios:
        for engine in engines:
            key = (engine.name, scenario.name)
            runs[key] = {}
            for seed in seeds:
                final = seed_dir(directory, engine.name, scenario.name, seed)
                done = read_seed(final)
                if done is not None and done.fingerprint == prints[key]:
                    runs[key][seed] = done
                    resumed.append((engine.name, scenario.name, seed))
                    continue
                todo.append((engine.name, scenario.name, seed))
                for stale in final.parent.glob(f".{final.name}.partial-*"):
                    shutil.rmtree(stale, ignore_errors=True)
    return runs, resumed, todo


def _prepare(
    twin: TwinContext,
    directory: Path,
    engines: Sequence[Engine],
    scenarios: Sequence[Scenario],
    needed: set[tuple[str, str]],
    progress: Progress | None,
) -> dict[tuple[str, str], Any]:
    """Each engine's inputs for each scenario that still has seeds to run."""
    inputs: dict[tuple[str, str], Any] = {}
    for scenario in scenarios:
        for engine in engines:
            if (engine.name, scenario.name) not in needed:
                continue
            if progress:
                progress(f"preparing '{scenario.name}' for {engine.name}", 0, 0)
            workdir = work_dir(directory, engine.name, scenario.name)
            try:
                inputs[(engine.name, scenario.name)] = engine.prepare(twin, scenario, workdir=workdir)
            except CivicTwinError:
                raise
            except Exception as exc:
                raise EngineError(
                    f"engine '{engine.name}' failed to prepare scenario '{scenario.name}': "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
    return inputs


# ------------------------------------------------------------------------------------- the process pool


@dataclass
class _Pool:
    """The local worker processes, and the queue on which each reports the seed it starts."""

    executor: ProcessPoolExecutor
    started: Any  # multiprocessing.Queue of (engine, scenario, seed)
    notes: list[str]

    def run(self, jobs: Sequence[SeedJob], on_done: OnDone) -> None:
        """Run the jobs in the pool, stopping a seed past its timeout (:func:`_watch_pool`)."""
        _watch_pool(self, jobs, on_done)


@contextlib.contextmanager
def _seed_pool(workers: int, most_runs: int, *, warm_modules: Sequence[str] = ()) -> Iterator[_Pool]:
    """Worker processes for the seed runs, started at once so that their interpreters start and import
    (civictwin and ``warm_modules``, the engines' own) while this process loads the twin and prepares
    the scenarios: a seed's first run then pays no import (about half a second for traffic), nor does
    its saving (:data:`SAVING_MODULES`).

    On any error or interrupt, queued seeds are cancelled and running ones interrupted (and killed if
    they do not stop within :data:`STOP_GRACE_S`).
    """
    size = max(1, min(workers, most_runs))
    # spawn: a fresh interpreter per worker, safe beside threads (progress bars) and open libraries
    context = multiprocessing.get_context("spawn")
    started = context.Queue()
    executor = ProcessPoolExecutor(
        max_workers=size, mp_context=context, initializer=init_seed_process, initargs=(started,)
    )
    with executor:
        with _children_ignore_interrupts():
            for _ in range(size):  # a spawn pool starts one worker per submitted task, up to its size
                executor.submit(_started, tuple(warm_modules))
        try:
            yield _Pool(executor, started, [])
        except BaseException:
            _stop(executor)
            raise
        finally:
            started.close()
            started.cancel_join_thread()


@contextlib.contextmanager
def _children_ignore_interrupts() -> Iterator[None]:
    """Processes started inside begin with SIGINT ignored (an ignored signal survives exec) until their
    initializer installs the handler: a Ctrl-C while a worker still starts up cannot kill it with a
    traceback. Only the main thread may change signal handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _execute(
    running: SeedExecutor,
    jobs: Sequence[SeedJob],
    runs: dict[tuple[str, str], dict[int, SeedRecord]],
    progress: Progress | None,
    done: int,
    total: int,
) -> None:
    """Run the jobs on ``running``, keeping each saved record and reporting progress."""
    count = done

    def on_done(job: SeedJob, record: SeedRecord) -> None:
        nonlocal count
        runs[(job.engine.name, job.scenario)][job.seed] = record
        count += 1
        if progress:
            progress(f"{job.engine.name}: {job.scenario} seed {job.seed} done", count, total)

    running.run(jobs, on_done)


def _watch_pool(pool: _Pool, jobs: Sequence[SeedJob], on_done: OnDone) -> None:
    """Run the jobs; a seed still running ``timeout + grace`` seconds after it started stops the run.

    Each worker enforces its own timeout with an alarm; this watchdog catches an engine that blocks
    the alarm (a long call into C). A seed's clock starts when its worker reports starting it, so time
    spent queued or while the worker process starts up does not count.
    """
    futures: dict[Future[SeedRecord], SeedJob] = {pool.executor.submit(_seed_job, job): job for job in jobs}
    begun: dict[tuple[str, str, int], float] = {}
    pending = set(futures)
    while pending:
        finished, pending = wait(pending, timeout=WATCH_S, return_when=FIRST_COMPLETED)
        _note_starts(pool.started, begun)
        for future in finished:
            on_done(futures[future], future.result())
        now = time.monotonic()
        hung = [
            job
            for job in (futures[f] for f in pending)
            if job.key in begun and now - begun[job.key] > job.timeout_s + STOP_GRACE_S
        ]
        if hung:
            raise EngineError(
                f"{hung[0].who}: no result within the per-seed timeout of {hung[0].timeout_s:g} s; the worker "
                "was stopped (the engine hangs, or the seed needs a longer --seed-timeout)"
            )


def _note_starts(started: Any, begun: dict[tuple[str, str, int], float]) -> None:
    """Record when each seed the workers reported starting was first seen started."""
    while True:
        try:
            key = started.get_nowait()
        except queue.Empty:
            return
        begun.setdefault(tuple(key), time.monotonic())


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel queued seeds and interrupt running ones (each removes its staging folder and its own
    child processes); a worker still alive after :data:`STOP_GRACE_S` is killed.

    The pool's manager thread is joined at the end: left running, it could close its wake-up pipe
    while the interpreter's exit hook writes to it (a race in Python 3.11's ProcessPoolExecutor), and
    the CLI's one-line error would be followed by an "Exception ignored … Bad file descriptor".
    """
    manager = getattr(pool, "_executor_manager_thread", None)  # cleared by shutdown(wait=False)
    pool.shutdown(wait=False, cancel_futures=True)
    children = [c for c in multiprocessing.active_children() if c.pid is not None]
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGINT)  # type: ignore[arg-type]
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
    if isinstance(manager, threading.Thread):
        manager.join(STOP_GRACE_S)


# --------------------------------------------------------------------------------- inside a worker

_interrupted = False
"""Set in a worker once it was interrupted: seeds queued to it afterwards are not started."""
_started_queue: Any = None
"""Where this worker reports each seed it starts (see :func:`_execute`)."""
_running_seed = False
"""Whether this worker is inside a seed run (an interrupt then stops that run)."""


class _SeedTimeout(BaseException):
    """Raised in a worker by the per-seed alarm (a BaseException, so engines cannot swallow it)."""


def init_seed_process(started: Any) -> None:
    """Prepare a process that runs seeds: Ctrl-C stops the running seed, the per-seed alarm is armed
    by :func:`run_seed`; ``started`` (a queue, or None) hears of each seed the pool starts."""
    global _started_queue
    _started_queue = started

    def on_interrupt(signum: int, frame: object) -> None:
        # Ctrl-C reaches the worker twice (from the terminal and from the parent's _stop): only the
        # first stops the running seed, so the second cannot cut its clean-up short. An idle worker
        # just waits to be shut down by the parent.
        global _interrupted
        first = not _interrupted
        _interrupted = True
        if first and _running_seed:
            raise KeyboardInterrupt

    def on_alarm(signum: int, frame: object) -> None:
        if _running_seed:
            raise _SeedTimeout

    signal.signal(signal.SIGINT, on_interrupt)
    if _ALARM is not None:
        signal.signal(_ALARM, on_alarm)
    # The driving process waits for its workers to exit (the pool's shutdown joins them), and a worker's
    # last garbage collection walks everything it imported (pandas, pyarrow, the engine): 0.2-0.4 s here.
    # Frozen objects are left to the operating system instead. A worker's results are saved and synced
    # before it exits, and Python never promised __del__ for objects alive at exit (Data model, __del__).
    atexit.register(gc.freeze)


_ALARM = getattr(signal, "SIGALRM", None)
"""The per-seed alarm signal (POSIX only)."""


def _started(modules: Sequence[str]) -> None:
    """Submitted once per worker so that each starts at once and imports the engines' modules."""
    for module in modules:
        importlib.import_module(module)


def _seed_job(job: SeedJob) -> SeedRecord:
    """One seed in a worker of the local pool."""
    if _interrupted:
        raise KeyboardInterrupt(f"{job.who} not started: the run was interrupted")
    _started_queue.put(job.key)
    return run_seed(job, ran_on=f"{socket.gethostname()} pid {os.getpid()}")


def run_seed(job: SeedJob, *, ran_on: str) -> SeedRecord:
    """Run and save one seed in this process (prepared by :func:`init_seed_process`), within its timeout.

    ``ran_on`` says where, for the seed's record: host name and process id, or Dask worker address.
    """
    global _running_seed
    _running_seed = True
    _arm_alarm(job.timeout_s)
    try:
        return _run_and_save(job, ran_on=ran_on)
    except _SeedTimeout:
        raise EngineError(
            f"{job.who}: no result within the per-seed timeout of {job.timeout_s:g} s (the engine hangs, or "
            "the seed needs a longer --seed-timeout)"
        ) from None
    finally:
        _arm_alarm(0)
        _running_seed = False


def _arm_alarm(seconds: float) -> None:
    """Raise :class:`_SeedTimeout` in this worker after ``seconds`` (0 disarms); where the system has no
    alarm signal (Windows), the driving process's watchdog alone stops a hanging seed."""
    if _ALARM is not None:
        signal.setitimer(signal.ITIMER_REAL, seconds)


def _run_and_save(job: SeedJob, *, ran_on: str) -> SeedRecord:
    """Run one seed in a staging folder beside its final place and rename it there when complete.

    The engine's scratch files (``work/`` in the seed folder) are kept with the result; the staging
    folder is removed on any failure, so nothing partial is left behind. A run that fails the engine's
    quality check is saved as a failed seed (its scratch files kept, to see why).
    """
    engine, final = job.engine, job.final_dir
    staging = final.with_name(f".{final.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        start = time.perf_counter()
        seed = SeedRecord(
            engine=engine.name,
            engine_version=engine.version,
            scenario=job.scenario,
            seed=job.seed,
            fingerprint=job.fingerprint,
            kpis=[],
            wall_s=0.0,
            worker=ran_on,
        )
        try:
            result = _run(job, staging / "work")
        except QualityCheckFailed as failed:
            record = seed.model_copy(
                update={
                    "failure": failed.message or "the engine's quality check failed",
                    "wall_s": time.perf_counter() - start,
                }
            )
        else:
            _check_result(engine, result, job)
            for spec in engine.tables:
                result.tables[spec.name].to_parquet(staging / f"{spec.name}.parquet", index=False)
            record = seed.model_copy(
                update={
                    "kpis": [SeedKpi(**vars(k)) for k in result.kpis],
                    "notes": list(result.notes),
                    "details": dict(result.details),
                    "tables": [spec.name for spec in engine.tables],
                    "wall_s": time.perf_counter() - start,
                }
            )
        (staging / RUN_FILE).write_text(record.to_json(), encoding="utf-8")
        (staging / COMPLETE).write_text("", encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        durable.replace_directory(staging, final)
        return record.model_copy(update={"directory": final})
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _run(job: SeedJob, workdir: Path) -> EngineResult:
    """The engine's run, with any failure turned into one line naming engine, scenario and seed; a
    failed quality check is passed on as it is (the caller saves it as a failed seed)."""
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        return job.engine.run(job.inputs, seed=job.seed, workdir=workdir)
    except QualityCheckFailed:
        raise
    except CivicTwinError as exc:
        raise EngineError(f"{job.who}: {exc.user_message()}") from None
    except Exception as exc:
        raise EngineError(f"{job.who}: the engine failed: {type(exc).__name__}: {exc}") from None


def _check_result(engine: Engine, result: object, job: SeedJob) -> None:
    """An EngineError unless ``result`` is an EngineResult with every declared table complete."""
    if not isinstance(result, EngineResult):
        raise EngineError(f"{job.who}: run() returned {type(result).__name__}, not an EngineResult")
    names = [k.name for k in result.kpis]
    if len(set(names)) != len(names):
        raise EngineError(f"{job.who}: KPI names repeat ({', '.join(sorted(names))})")
    for spec in engine.tables:
        if spec.name not in result.tables:
            raise EngineError(f"{job.who}: the result lacks the declared table '{spec.name}'")
        _check_table(spec, result.tables[spec.name], job)


def _check_table(spec: TableSpec, frame: pd.DataFrame, job: SeedJob) -> None:
    needed = [*spec.key, *(column for column, _ in spec.values)]
    if spec.layer is None:
        needed.append("geometry")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise EngineError(f"{job.who}: table '{spec.name}' lacks column(s) {', '.join(missing)}")
    if frame.duplicated(list(spec.key)).any():
        raise EngineError(f"{job.who}: table '{spec.name}' repeats keys ({', '.join(spec.key)})")
