"""Seeds on a Dask cluster: ``civictwin compare … --cluster tcp://host:8786`` (or ``--cluster local``).

:func:`open_cluster` gives :func:`civictwin.engines.ensemble.run_ensemble` an executor that sends
every seed to Dask distributed workers instead of the local process pool. The driving process still
prepares each scenario and keeps the ``runs/`` layout; each seed is one Dask task, which hands the
seed to a seed process of that worker (:func:`run_seed` there, the same code as in a worker of the
local pool: per-seed alarm, staging folder, atomic rename). Like the local pool's workers, a seed
process runs seeds one at a time and is reused for the next (engines keep no state between seeds),
so a seed's hang or crash cannot take the Dask worker with it, and no seed pays an interpreter start.
When the executor opens, every worker starts its seed processes, which import the engines' modules
while the driving process prepares the scenarios (as the local pool's workers do). Each scenario's
prepared inputs are written once to the comparison's shared work folder (:data:`SHIPPED_INPUTS`)
instead of travelling with every seed through the scheduler, and a seed process reads them once for
all the seeds of that scenario it runs.

What the cluster must offer: the twin's folder at the same path on every worker (a shared file
system), because seeds are saved straight into ``runs/`` and engines read what ``prepare`` wrote
there; civictwin and the engines installed on the workers.

A worker lost mid-seed (killed, out of memory, its machine gone) is noticed by the scheduler, which
runs the seed again on another worker: up to its ``distributed.scheduler.allowed-failures`` (3 by
default, so at most 4 attempts) before the seed fails with a one-line error. The seed's process on
the lost worker dies with it (Linux: ``PR_SET_PDEATHSIG``), so no seed is ever saved twice. Each run
again is reported in the ensemble's notes. ``local`` starts a ``LocalCluster`` of ``workers``
one-thread worker processes for the run (on a thread, while the scenarios are prepared, with
:data:`WORKER_CONFIG`) and stops it afterwards. A task waiting for its seed sleeps until the seed
process announces the result, waking every :data:`_CANCEL_CHECK_S` for a cancellation.

Dask is imported only here, and only when a cluster is asked for.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import importlib
import logging
import os
import pickle
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from civictwin.engines.ensemble import (
    STOP_GRACE_S,
    OnDone,
    OpenExecutor,
    SeedJob,
    init_seed_process,
    run_seed,
)
from civictwin.errors import EngineError
from civictwin.runs import SeedRecord, seed_dir, work_dir

LOCAL = "local"
"""The ``--cluster`` value that starts a Dask ``LocalCluster`` on this machine for the run."""
WORKER_CONFIG: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.admin.system-monitor.gil.enabled": False,
    "distributed.worker.memory.monitor-interval": "1s",
}
"""Dask settings for the processes of a :data:`LOCAL` cluster (and recommended in docs/cluster.md for a
cluster a city runs): its tasks only wait for their seed processes, so the worker's statistical
profiler (every 10 ms by default), event-loop health check (20 ms), system monitor (500 ms) and memory
monitor (100 ms; seed processes are not the worker's memory anyway) only take CPU from the seeds'
SUMO runs: together about 5% of a core on two idle workers (BENCHMARKS.md). Defaults:
``distributed.yaml``."""
SCHEMES = ("tcp://", "tls://")
"""Scheduler address schemes accepted (``tcp://host:8786``)."""
DEFAULT_CONNECT_TIMEOUT_S = 10.0
"""How long to wait for the scheduler to answer before giving up (``--cluster-timeout``)."""
_HANDSHAKE_GRACE_S = 0.5
"""Beyond the connect timeout, how long the scheduler's handshake may take."""
_CANCEL_CHECK_S = 0.2
"""How often a task waiting for its seed's result wakes to look for a cancellation (the result itself,
or the seed process's end, wakes it at once)."""
_INTERRUPT_CHECK_S = 0.25
"""The longest the driving process waits at a time for its seeds (or its ``LocalCluster``), so that
an interrupt marked pending meanwhile is raised within this time (:func:`_next_finished`)."""
_LOST_INTERRUPT_S = 1.0
"""How long after its SIGINT handler ran an interrupt that has not unwound the wait for the seeds
counts as lost (:func:`_noticing_interrupts`); a handler that raises unwinds it at once, and
civictwin's own handler re-raises one that landed in the import system 0.01 s later."""
_JOB_FOLDER_PREFIX = "civictwin-seed-"
"""A seed's job folder in the worker's temporary folder: this, the worker's process id, ``-``, random."""
_ORPHAN_POLL_S = 0.2
"""Where the OS cannot kill a seed's process with its worker, how often it checks its parent."""
_PR_SET_PDEATHSIG = 1
"""Linux ``prctl`` option: a signal for this process when its parent dies."""
SHIPPED_INPUTS = "seed-inputs.pickle"
"""The prepared inputs of one engine and scenario, pickled once for all its seeds, in its work folder
(``runs/<id>/work/<engine>/<scenario>/``) while the seeds run; removed afterwards."""


def open_cluster(
    address: str, *, workers: int, connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
) -> OpenExecutor:
    """An executor for :func:`~civictwin.engines.ensemble.run_ensemble` on the Dask scheduler at
    ``address`` (``tcp://host:port``), or on a new ``LocalCluster`` of ``workers`` processes for
    :data:`LOCAL`. The address is checked now; the connection is made when the ensemble opens it."""
    if address != LOCAL and not address.startswith(SCHEMES):
        raise EngineError(
            f"'{address}' is not a Dask scheduler address (expected tcp://host:port or '{LOCAL}')",
            field="--cluster",
        )

    def opened(most_runs: int, warm_modules: tuple[str, ...]) -> contextlib.AbstractContextManager[DaskSeeds]:
        return _dask_seeds(
            address,
            workers=min(workers, most_runs),
            most_runs=most_runs,
            warm_modules=warm_modules,
            connect_timeout_s=connect_timeout_s,
        )

    return opened


@contextlib.contextmanager
def _dask_seeds(
    address: str, *, workers: int, most_runs: int, warm_modules: tuple[str, ...], connect_timeout_s: float
) -> Iterator[DaskSeeds]:
    """A client on the cluster for the run, whose workers start their seed processes at once
    (:func:`_warm_seed_processes`). A scheduler address is connected to now, before anything is
    written; a :data:`LOCAL` cluster starts on a thread of its own while the driving process prepares
    the scenarios (:func:`_start_local_cluster`), and is waited for when the first seed is sent."""
    if address != LOCAL:
        client = _connect(address, connect_timeout_s)
        with client, _noticing_interrupts() as noticed:
            client.run(_warm_seed_processes, warm_modules, most_runs, wait=False)
            connected: Future[Any] = Future()
            connected.set_result(client)
            yield DaskSeeds(connected, noticed)
        return
    with (
        contextlib.ExitStack() as started,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="civictwin-local-cluster") as starter,
        _noticing_interrupts() as noticed,
    ):  # the starter's thread is joined first, so a cluster still starting is stopped once it is up
        yield DaskSeeds(
            starter.submit(
                _start_local_cluster, started, workers=workers, most_runs=most_runs, warm_modules=warm_modules
            ),
            noticed,
        )


def _start_local_cluster(
    started: contextlib.ExitStack, *, workers: int, most_runs: int, warm_modules: tuple[str, ...]
) -> Any:
    """A ``LocalCluster`` of ``workers`` one-thread worker processes with :data:`WORKER_CONFIG`, and a
    client on it whose workers start their seed processes; both are closed by ``started``. A cluster
    that cannot start is one line (the first line of Dask's own message)."""
    import dask.config
    from distributed import Client, LocalCluster

    try:
        with dask.config.set(WORKER_CONFIG):  # the nannies hand the configuration to their workers
            cluster = started.enter_context(
                LocalCluster(
                    n_workers=max(1, workers),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    # the scheduler's HTTP server (health, metrics) starts even without a dashboard, on
                    # Dask's dashboard port 8787 unless told otherwise (warning when that port is taken)
                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                    silence_logs=logging.ERROR,
                )
            )
        client = started.enter_context(Client(cluster, set_as_default=False))
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EngineError(f"the Dask LocalCluster for --cluster {LOCAL} could not start: {reason}") from exc
    client.run(_warm_seed_processes, warm_modules, most_runs, wait=False)
    return client


def _connect(address: str, timeout_s: float) -> Any:
    """A client of the scheduler at ``address``, or one line when it does not answer in time.

    Dask's own timeout covers reaching the address but not its handshake: a peer that accepts the
    connection and never answers (a wrong service on the port, a hung scheduler) would block forever.
    So the client is made in a daemon thread that is abandoned (and the run stopped) after the timeout.
    """
    from distributed import Client

    made: dict[str, Any] = {}

    def attempt() -> None:
        try:
            made["client"] = Client(address, timeout=timeout_s, set_as_default=False)
        except BaseException as exc:
            made["error"] = exc

    thread = threading.Thread(target=attempt, name="civictwin-dask-connect", daemon=True)
    thread.start()
    thread.join(timeout_s + _HANDSHAKE_GRACE_S)
    if "client" in made:
        return made["client"]
    if thread.is_alive() or isinstance(made.get("error"), OSError | TimeoutError):
        raise EngineError(f"the Dask scheduler at {address} did not answer within {timeout_s:g} s")
    raise made["error"]


@dataclass
class DaskSeeds:
    """Seeds as Dask tasks on ``client``'s cluster (a :class:`~civictwin.engines.ensemble.SeedExecutor`)."""

    connected: Future[Any]
    """The ``distributed.Client``, once connected (a :data:`LOCAL` cluster starts meanwhile)."""
    noticed: _Noticed
    """When an interrupt arrived while the executor is open (:func:`_noticing_interrupts`)."""
    notes: list[str] = field(default_factory=list)

    @property
    def client(self) -> Any:
        """The client, waiting for the cluster if it still starts (:data:`_INTERRUPT_CHECK_S` at a
        time, so a Ctrl-C meanwhile is raised at once: :func:`_next_finished`); one line if it could
        not."""
        while True:
            try:
                return self.connected.result(timeout=_INTERRUPT_CHECK_S)
            except TimeoutError:
                continue

    def run(self, jobs: Sequence[SeedJob], on_done: OnDone) -> None:
        """Submit every seed, hand each record to ``on_done`` as it arrives; on any failure or
        interrupt, cancel the seeds not yet finished. Seeds run again after a lost worker are noted."""
        client = self.client  # a cluster that could not start fails here, before any seed is shipped
        run_id = uuid.uuid4().hex[:12]
        topic = f"civictwin-seed-start-{run_id}"
        with _shipped_inputs(jobs) as shipped:
            futures = {
                client.submit(
                    _seed_task,
                    dataclasses.replace(job, inputs=None),
                    shipped[job.key[:2]],
                    topic,
                    key=f"civictwin-{run_id}-{'-'.join(map(str, job.key))}",
                    pure=False,
                ): job
                for job in jobs
            }
            self._collect(futures, topic, on_done)

    def _collect(self, futures: dict[Any, SeedJob], topic: str, on_done: OnDone) -> None:
        """Hand each seed's record to ``on_done`` as it arrives; cancel the rest on any failure or
        interrupt.

        Each future reports its end on a queue (from Dask's callback thread) that this thread reads
        :data:`_INTERRUPT_CHECK_S` at a time (:func:`_next_finished`), so a Ctrl-C is raised here
        however it arrives, and even if Python lost it on the way (:func:`_noticing_interrupts`).
        Distributed's ``as_completed`` is not used: its iteration takes locks that its event-loop
        thread also takes, so an interrupt raised while this thread holds one could stall the loop,
        and with it the cancellation below."""
        from distributed import KilledWorker

        client = self.client
        finished: queue.SimpleQueue[Any] = queue.SimpleQueue()
        jobs = list(futures.values())
        try:
            for future in futures:
                future.add_done_callback(finished.put)
            for _ in futures:
                future = _next_finished(finished, self.noticed)
                job = futures[future]
                try:
                    record = future.result()
                except KilledWorker as lost:
                    _remove_staging(job)  # left by its attempts, whose seed processes died with them
                    raise EngineError(
                        f"{job.who}: {lost.allowed_failures + 1} Dask worker(s) were lost while running it "
                        f"(the last {lost.last_worker.address}), so the scheduler gave up on it; the seed may "
                        "exhaust a worker's memory"
                    ) from None
                on_done(job, record)
        except BaseException:
            client.cancel(list(futures), force=True)
            raise
        finally:
            self.notes.extend(_restarts(client.get_events(topic), {j.key: j for j in jobs}))


@dataclass
class _Noticed:
    """When this process's SIGINT handler last ran during a run (``time.monotonic`` seconds)."""

    at: float | None = None


@contextlib.contextmanager
def _noticing_interrupts() -> Iterator[_Noticed]:
    """Note the time of each SIGINT (a real one, or ``_thread.interrupt_main``) before the handler
    in place raises it, while the executor is open (the scenarios' preparation, the seeds'
    submission, the wait for them), so that :func:`_next_finished` can raise an interrupt that Python
    lost.

    Python runs a signal's handler in the main thread wherever it next runs Python code, and an
    exception raised inside a finalizer (``__del__``, a weakref callback: the garbage collector runs
    them in whichever thread allocates, e.g. this one while it submits the seeds) is only printed as
    "Exception ignored" and dropped. A Ctrl-C lost that way left this thread waiting for seeds that
    wait in turn, as in the fresh-clone test runs that hung (docs/cluster.md). Signals can be handled
    only in the main thread; elsewhere, or without a Python handler to call, nothing is noted."""
    noticed = _Noticed()
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield noticed
        return
    handler: Callable[[int, FrameType | None], Any] = previous

    def note(signum: int, frame: FrameType | None) -> Any:
        noticed.at = time.monotonic()  # a plain store: a handler must not take locks this thread may hold
        return handler(signum, frame)

    signal.signal(signal.SIGINT, note)
    try:
        yield noticed
    finally:
        if signal.getsignal(signal.SIGINT) is note:  # unless something else replaced it meanwhile
            signal.signal(signal.SIGINT, previous)


def _next_finished(finished: queue.SimpleQueue[Any], noticed: _Noticed) -> Any:
    """The next future to report its end on ``finished``, waiting :data:`_INTERRUPT_CHECK_S` at a
    time; an interrupt ``noticed`` over :data:`_LOST_INTERRUPT_S` ago that has not unwound this
    thread was lost (:func:`_noticing_interrupts`) and is raised here.

    Waiting with a timeout matters too: a real SIGINT wakes this thread from any wait, but a
    simulated one (``_thread.interrupt_main``, or civictwin's handler re-raising SIGINT from another
    thread) only marks the interrupt pending, which a wait without a timeout never returns to take.
    ``SimpleQueue`` waits in C, without Python-level locks, so an interrupt raised here leaves no lock
    held that another thread needs."""
    while True:
        try:
            return finished.get(timeout=_INTERRUPT_CHECK_S)
        except queue.Empty:
            if noticed.at is not None and time.monotonic() - noticed.at > _LOST_INTERRUPT_S:
                raise KeyboardInterrupt(
                    "interrupted (the interrupt was lost on its way and noticed)"
                ) from None


@contextlib.contextmanager
def _shipped_inputs(jobs: Sequence[SeedJob]) -> Iterator[dict[tuple[str, str], Path]]:
    """Each (engine, scenario)'s prepared inputs pickled once into its work folder, on the file system
    the workers share, for as long as its seeds run: a seed then carries only its path (the demo's
    traffic inputs are 2.7 MB, which every seed would otherwise take through the scheduler and pickle
    twice more on its worker)."""
    shipped: dict[tuple[str, str], Path] = {}
    try:
        for job in jobs:
            engine, scenario, _ = job.key
            if (engine, scenario) in shipped:
                continue
            comparison = job.final_dir.parents[3]  # <comparison>/seeds/<engine>/<scenario>/seed_<n>
            assert seed_dir(comparison, *job.key) == job.final_dir, "runs.seed_dir's layout changed"
            target = work_dir(comparison, engine, scenario) / SHIPPED_INPUTS
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}")
            try:
                partial.write_bytes(pickle.dumps(job.inputs, protocol=pickle.HIGHEST_PROTOCOL))
                partial.replace(target)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
            shipped[(engine, scenario)] = target
        yield shipped
    finally:
        for path in shipped.values():
            path.unlink(missing_ok=True)


def _restarts(events: Sequence[tuple[float, Any]], jobs: dict[tuple[str, str, int], SeedJob]) -> list[str]:
    """One line per seed started more than once (its worker was lost), from the start events."""
    starts: dict[tuple[str, str, int], list[str]] = {}
    for _, event in sorted(events, key=lambda e: e[0]):
        starts.setdefault((event["engine"], event["scenario"], int(event["seed"])), []).append(
            event["worker"]
        )
    return [
        f"{jobs[key].who} was run {len(workers)} times: its worker{'s' if len(workers) > 2 else ''} "
        f"{', '.join(workers[:-1])} left the cluster mid-run, and {workers[-1]} finished it"
        for key, workers in starts.items()
        if len(workers) > 1 and key in jobs
    ]


# ------------------------------------------------------------------------------ on a Dask worker


def _seed_task(job: SeedJob, inputs_file: Path, topic: str) -> SeedRecord:
    """One seed, as a Dask task: announce the start, then run it in a seed process of this worker,
    which reads its prepared inputs from ``inputs_file`` (:func:`_shipped_inputs`).

    Leftover staging folders of this seed (from an attempt on a worker that was lost) are removed
    first: the seed runs nowhere else now, because a lost worker's seed process died with it. So are
    the job folders of lost workers on this machine (:func:`_remove_lost_workers_job_folders`).
    """
    from distributed import get_worker

    worker = get_worker()
    address, key = worker.address, worker.get_current_task()
    ran_on = f"{socket.gethostname()} {address}"

    def cancelled() -> bool:  # the client cancelled the seed, or left (Ctrl-C)
        task = worker.state.tasks.get(key)
        return task is None or task.state == "cancelled"

    worker.log_event(
        topic, {"engine": job.engine.name, "scenario": job.scenario, "seed": job.seed, "worker": address}
    )
    _remove_staging(job)
    _remove_lost_workers_job_folders()
    process = _borrow()
    try:
        return process.run(job, inputs_file, ran_on, cancelled)
    finally:
        _give_back(process)  # also after a failed seed: its process lives on and is reused


def _remove_staging(job: SeedJob) -> None:
    """Remove the staging folders of this seed that a lost worker's attempt left behind."""
    for stale in job.final_dir.parent.glob(f".{job.final_dir.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _remove_lost_workers_job_folders() -> None:
    """Remove this machine's seed job folders (:meth:`_SeedProcess.run`, in the system's temporary
    folder, named after the worker process that made them) whose worker is gone.

    A worker killed mid-seed never ran its clean-up (the demo's job folders took 2.7 MB each), and its
    seed process died with it (:func:`_die_with_parent`), so nothing uses the folder any more. One
    whose worker still runs is left alone, as is one whose owner cannot be told (another naming, or a
    process this user may not inspect); a process that took a dead worker's id after the folder was
    made does not keep it."""
    import psutil

    for folder in Path(tempfile.gettempdir()).glob(f"{_JOB_FOLDER_PREFIX}*-*"):
        owner = folder.name.removeprefix(_JOB_FOLDER_PREFIX).split("-", 1)[0]
        if not owner.isdigit():
            continue
        try:
            made = folder.stat().st_mtime
            process = psutil.Process(int(owner))
            gone = process.status() == psutil.STATUS_ZOMBIE or process.create_time() > made
        except (psutil.NoSuchProcess, FileNotFoundError):
            gone = True
        except psutil.AccessDenied:
            gone = False
        if gone:
            shutil.rmtree(folder, ignore_errors=True)


class _SeedProcess:
    """A Python process on a Dask worker that runs seeds one at a time, one after another (as a
    worker of the local pool does): a job file's path in on its standard input, ``(ok, record or
    error)`` out as a result file, announced by a line on its standard output, for which a thread
    listens (:meth:`_listen`) so that the task waiting for the seed sleeps instead of polling. It
    imports ``modules`` as it starts, and dies with the worker (:func:`_die_with_parent`)."""

    def __init__(self, modules: Sequence[str] = ()) -> None:
        code = "import sys; from civictwin.engines.cluster import seed_process_main as m; m(*sys.argv[1:])"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, str(os.getpid()), *modules],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.interrupted = False
        """Whether its seed was interrupted, after which the process ends (never reused)."""
        self.news = threading.Event()
        """Set when the process announces a result, or ends."""
        threading.Thread(target=self._listen, name="civictwin-seed-results", daemon=True).start()

    def _listen(self) -> None:
        """Wake the waiting task at each result the process announces, and when it ends (reaped at
        once: an interrupted seed's process is never polled again, and would stay a zombie)."""
        assert self.process.stdout is not None
        with self.process.stdout:
            for _ in self.process.stdout:
                self.news.set()
        self.process.wait()
        self.news.set()

    def alive(self) -> bool:
        """Whether the process still runs (it ends after an interrupt, and may have been killed)."""
        return self.process.poll() is None

    def run(self, job: SeedJob, inputs_file: Path, ran_on: str, cancelled: Callable[[], bool]) -> SeedRecord:
        """Run one seed there (its inputs read from ``inputs_file``); past its timeout (plus grace)
        the process is killed. Once ``cancelled`` the seed is interrupted (it removes its staging
        folder) and the process ends."""
        with tempfile.TemporaryDirectory(prefix=f"{_JOB_FOLDER_PREFIX}{os.getpid()}-") as scratch:
            job_file, result_file = Path(scratch) / "job.pickle", Path(scratch) / "result.pickle"
            job_file.write_bytes(pickle.dumps((job, inputs_file, ran_on)))
            assert self.process.stdin is not None
            try:
                self.process.stdin.write(f"{job_file}\t{result_file}\n")
                self.process.stdin.flush()
            except BrokenPipeError:
                pass  # it died just now: reported below
            self._wait(job, ran_on, result_file, cancelled)
            ok, value = pickle.loads(result_file.read_bytes())
        if not ok:
            raise value
        record: SeedRecord = value
        return record

    def _wait(self, job: SeedJob, ran_on: str, result_file: Path, cancelled: Callable[[], bool]) -> None:
        """Sleep until the seed's result is there, waking at the process's news and every
        :data:`_CANCEL_CHECK_S` to look for a cancellation, the process's end and the deadline."""
        deadline = time.monotonic() + job.timeout_s + STOP_GRACE_S
        interrupted = False
        while not result_file.is_file():
            if not interrupted and cancelled():
                self.process.send_signal(signal.SIGINT)
                interrupted, deadline = True, time.monotonic() + STOP_GRACE_S
                self.interrupted = True
            if not self.alive():
                raise EngineError(
                    f"{job.who}: the seed's process on {ran_on} ended without a result "
                    f"(exit status {self.process.returncode})"
                )
            if time.monotonic() > deadline:
                self.process.kill()
                self.process.wait()
                raise EngineError(
                    f"{job.who}: cancelled, and its process did not stop within {STOP_GRACE_S:g} s"
                    if interrupted
                    else f"{job.who}: no result within the per-seed timeout of {job.timeout_s:g} s; its "
                    "process was stopped (the engine hangs, or the seed needs a longer --seed-timeout)"
                )
            if self.news.wait(min(_CANCEL_CHECK_S, max(0.0, deadline - time.monotonic()))):
                self.news.clear()  # the result file is in place before its line is written


_idle: list[_SeedProcess] = []
"""This worker's seed processes waiting for a seed."""
_starting: list[Future[_SeedProcess]] = []
"""Seed processes this worker was asked to start ahead of its seeds (:func:`_warm_seed_processes`)."""
_idle_lock = threading.Lock()
_spawner: ThreadPoolExecutor | None = None
"""The one thread that starts seed processes. Linux kills a process whose *thread* of origin ends;
this thread lives as long as the worker, so a seed process dies exactly when its worker dies."""


async def _warm_seed_processes(modules: Sequence[str], most_runs: int, dask_worker: Any = None) -> None:
    """Run on every worker as the executor opens (``Client.run`` without waiting, which Dask allows
    for coroutines only; on the worker's event loop, so it only hands the starts to the spawner
    thread): one seed process per worker thread, at most
    ``most_runs``, beyond those already idle, each importing ``modules`` while the driving process
    prepares the scenarios, so that a worker's first seed waits for no interpreter start (about 1.5 s
    for the traffic engine's imports on a quiet machine)."""
    wanted = min(int(dask_worker.state.nthreads), most_runs) if dask_worker is not None else 1
    with _idle_lock:
        missing = wanted - sum(p.alive() for p in _idle) - len(_starting)
        _starting.extend(_spawn(modules) for _ in range(missing))


def _spawn(modules: Sequence[str]) -> Future[_SeedProcess]:
    """A seed process being started by the spawner thread (call with ``_idle_lock`` held)."""
    global _spawner
    if _spawner is None:
        _spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="civictwin-seeds")
    return _spawner.submit(_SeedProcess, tuple(modules))


def _borrow() -> _SeedProcess:
    """An idle seed process of this worker, else one started ahead, else a new one."""
    while True:
        with _idle_lock:
            while _idle:
                process = _idle.pop()
                if process.alive():
                    return process
            starting = _starting.pop(0) if _starting else _spawn(())
        process = starting.result()
        if process.alive():
            return process


def _give_back(process: _SeedProcess) -> None:
    with _idle_lock:
        if process.alive() and not process.interrupted:
            _idle.append(process)


def seed_process_main(parent_pid: str, *modules: str) -> None:
    """A seed process: die with the worker, import ``modules`` (a module that fails to import is left
    for the seed that needs it to report), then run each seed named on standard input in turn,
    announcing each result with a line on standard output; after an interrupt it stops (its seed
    reported as interrupted). Everything else written to standard output, by the engine or its own
    subprocesses, goes to standard error instead, beside the worker's own log."""
    _die_with_parent(int(parent_pid))
    news = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    init_seed_process(None)
    for module in modules:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    for line in sys.stdin:
        job_file, result_file = line.rstrip("\n").split("\t")
        going_on = _serve(Path(job_file), Path(result_file))
        news.write("done\n")
        news.flush()
        if not going_on:
            return


def _serve(job_file: Path, result_file: Path) -> bool:
    """Run one seed and leave its outcome in ``result_file``; False once interrupted."""
    job, inputs_file, ran_on = pickle.loads(job_file.read_bytes())
    outcome: tuple[bool, Any]
    interrupted = False
    try:
        job = dataclasses.replace(job, inputs=_read_inputs(inputs_file))
        outcome = (True, run_seed(job, ran_on=ran_on))
    except EngineError as exc:
        outcome = (False, exc)
    except KeyboardInterrupt:
        interrupted = True
        outcome = (False, EngineError(f"{job.who}: interrupted on {ran_on}"))
    partial = result_file.with_name(f"{result_file.name}.partial")
    partial.write_bytes(pickle.dumps(outcome))
    partial.rename(result_file)
    return not interrupted


_inputs_read: tuple[tuple[str, int, int, int], Any] | None = None
"""The last inputs this seed process read, with their file's (path, inode, size, mtime ns)."""


def _read_inputs(path: Path) -> Any:
    """The prepared inputs in ``path``, unpickled once for all the seeds of that scenario this process
    runs one after another (the file is replaced, never rewritten in place, so its identity tells a
    new file from the one already read)."""
    global _inputs_read
    try:
        stat = path.stat()
    except OSError as exc:
        raise EngineError(
            f"the prepared inputs {path} are not readable on this worker ({exc.strerror})"
        ) from None
    identity = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if _inputs_read is None or _inputs_read[0] != identity:
        _inputs_read = None  # let the previous scenario's inputs go before reading the next
        _inputs_read = (identity, pickle.loads(path.read_bytes()))
    return _inputs_read[1]


def _die_with_parent(parent_pid: int) -> None:
    """Kill this process when the worker that started it dies, so a lost worker's seed cannot finish
    (and be saved) after the scheduler gave it to another worker."""
    kill = getattr(signal, "SIGKILL", None)  # POSIX only
    if sys.platform.startswith("linux") and kill is not None:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, kill)
        if os.getppid() != parent_pid:  # the parent died before the request took effect
            os._exit(1)
        return

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(_ORPHAN_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
