"""Ensembles on a real Dask cluster: a scheduler and two workers started here as separate processes
(``dask scheduler``, ``dask worker``) on free loopback ports, running the toy engine's seeds.

The same comparison on the cluster and on the local process pool gives byte-identical seeds; the
manifest says which worker ran each; a worker killed (SIGKILL) while its seed runs has that seed run
again on the other worker, every seed finishing exactly once with the same numbers; an unreachable
scheduler is one line and leaves nothing written. ``--cluster local`` starts its ``LocalCluster``
beside the scenarios' preparation, with civictwin's worker settings, and one that cannot start is one
line with no seed written.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import shapely
from plugin import subprocess_env, write_twin

from civictwin.compare import compare_ensemble, ensemble_manifest
from civictwin.engines.base import TwinContext
from civictwin.engines.cluster import LOCAL, SHIPPED_INPUTS, WORKER_CONFIG, open_cluster
from civictwin.engines.ensemble import Ensemble, run_ensemble
from civictwin.errors import EngineError
from civictwin.runs import SeedRecord, read_seed
from civictwin.scenarios.spec import Scenario

BIN = Path(sys.executable).parent
ZONES = gpd.GeoDataFrame(
    {"zone_id": ["a", "b", "c"]},
    geometry=[shapely.box(385_000 + 200 * i, 6_672_000, 385_100 + 200 * i, 6_672_100) for i in range(3)],
    crs="EPSG:32635",
)
SEEDS = [1, 2]


@dataclass
class Cluster:
    """A running scheduler and its workers: address, and worker address → process."""

    address: str
    workers: dict[str, subprocess.Popen[bytes]]
    barrier: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)


@pytest.fixture(autouse=True)
def python_takes_ctrl_c() -> Iterator[None]:
    """Python's own SIGINT handler for each test here, as a command line has it: the Ctrl-C tests
    simulate the key with ``_thread.interrupt_main``, which does nothing while SIGINT is ignored, and
    a test run earlier in the same pytest worker may leave it ignored. In the fresh-clone run that
    hung on 2026-12-01 at 22:45 the worker's /proc status listed SIGINT among its ignored signals:
    the simulated Ctrl-C was lost and the test waited for seeds held at its barrier."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="module")
def toy(toy_site: list[str]) -> list[str]:
    """The toy engine's import paths (conftest's ``toy_site``)."""
    return toy_site


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, toy: list[str]) -> Iterator[Cluster]:
    """``dask scheduler`` and two one-thread ``dask worker`` processes (no nanny, so a killed worker
    stays dead), which see the toy engine and wait at its barrier only while ``go`` is missing."""
    from distributed import Client

    logs = tmp_path_factory.mktemp("dask")
    barrier = logs / "barrier"
    barrier.mkdir()
    (barrier / "go").touch()
    env = subprocess_env(toy, TOY_BARRIER=str(barrier))
    address = f"tcp://127.0.0.1:{free_port()}"
    processes = [
        start(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
             "--no-dashboard"],
            logs / "scheduler.log", env,
        )
    ]  # fmt: skip
    try:
        for name in ("w1", "w2"):
            processes.append(
                start(
                    [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-nanny", "--host",
                     "127.0.0.1", "--no-dashboard", "--name", name],
                    logs / f"{name}.log", env,
                )
            )  # fmt: skip
        with Client(address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
            pids = client.run(os.getpid)
        by_pid = {p.pid: p for p in processes[1:]}
        yield Cluster(address, {a: by_pid[pid] for a, pid in pids.items()}, barrier)
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def engines(toy: list[str]) -> tuple[Any, list[Scenario]]:
    """The toy engine and two scenarios: the baseline and zone b's demand × 1.5."""
    from civictwin_toy.engine import Nudge, ToyEngine

    warm = Scenario(name="warm", interventions=[Nudge(type="toy_nudge", factor=1.5, zones=["b"])])
    return ToyEngine(), [Scenario.baseline_scenario(), warm]


def ensemble(twin: Path, engines: tuple[Any, list[Scenario]], comparison: str, **how: Any) -> Ensemble:
    engine, scenarios = engines
    return run_ensemble(
        TwinContext.load(twin), scenarios, [engine], comparison_id=comparison, seeds=SEEDS, **how
    )


def seed_bytes(result: Ensemble) -> dict[tuple[str, int], tuple[str, bytes, bytes]]:
    """Per (scenario, seed): the saved KPIs as JSON text and the bytes of both saved tables."""
    return {
        (scenario, r.seed): record_bytes(r) for scenario, seeds in result.runs["toy"].items() for r in seeds
    }


def saved_bytes(comparison: Path) -> dict[tuple[str, int], tuple[str, bytes, bytes]]:
    """:func:`seed_bytes` of the seeds a comparison saved (``runs/<id>``), read back from its folders."""
    out = {}
    for folder in sorted((comparison / "seeds" / "toy").glob("*/seed_*")):
        record = read_seed(folder)
        assert record is not None, folder
        out[(folder.parent.name, record.seed)] = record_bytes(record)
    return out


def record_bytes(record: SeedRecord) -> tuple[str, bytes, bytes]:
    assert record.directory is not None
    kpis = "".join(k.model_dump_json() for k in record.kpis)
    zones, cells = (record.directory / f"{t}.parquet" for t in ("zones", "cells"))
    return kpis, zones.read_bytes(), cells.read_bytes()


@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory, engines: Any) -> Ensemble:
    """The comparison on the local pool: what the cluster must reproduce."""
    twin = write_twin(tmp_path_factory.mktemp("pool-twin"), ZONES)
    return ensemble(twin, engines, "pool", workers=1)


def seed_processes(cluster: Cluster) -> dict[str, list[list[str]]]:
    """Per live worker, the command lines of its seed processes that still run (one that ended and
    that its worker did not reap yet, a zombie, is not counted)."""
    import psutil

    running: dict[str, list[list[str]]] = {}
    for address, worker in cluster.workers.items():
        if worker.poll() is not None:
            continue
        running[address] = []
        for child in psutil.Process(worker.pid).children():
            with contextlib.suppress(psutil.ZombieProcess, psutil.NoSuchProcess):  # it ended
                if "seed_process_main" in " ".join(command := child.cmdline()):
                    running[address].append(command)
    return running


def test_opening_the_executor_starts_a_seed_process_on_every_worker(cluster: Cluster) -> None:
    """Runs first, on workers that never ran a seed: opening the executor (before any seed is
    submitted, as the driving process then prepares the scenarios) starts one seed process per worker
    thread, importing the engines' modules; opening it again starts no more."""
    assert seed_processes(cluster) == {address: [] for address in cluster.workers}
    modules = ("civictwin_toy.engine", "pyarrow.parquet")
    for _ in range(2):
        with open_cluster(cluster.address, workers=2)(4, modules):
            deadline = time.monotonic() + 30
            while any(len(c) != 1 for c in seed_processes(cluster).values()) and time.monotonic() < deadline:
                time.sleep(0.05)
        started = seed_processes(cluster)
        assert sorted(started) == sorted(cluster.workers)
        assert all(len(cmds) == 1 and cmds[0][-2:] == list(modules) for cmds in started.values()), started


def test_the_cluster_gives_the_local_pools_seeds_and_records_the_workers(
    tmp_path: Path, cluster: Cluster, engines: Any, pooled: Ensemble
) -> None:
    twin = write_twin(tmp_path / "twin", ZONES)
    result = ensemble(twin, engines, "dask", workers=2, executor=open_cluster(cluster.address, workers=2))
    assert seed_bytes(result) == seed_bytes(pooled)
    assert result.runs["toy"]["warm"][0].kpi("toy_heat_mwh") == pytest.approx(
        pooled.runs["toy"]["baseline"][0].kpi("toy_heat_mwh") + 0.05, rel=1e-12
    )  # the toy's +50 kWh in zone b, on the same draws
    manifest = ensemble_manifest(result, compare_ensemble(result))
    host = socket.gethostname()
    where = {(r["scenario"], r["seed"]): r["worker"] for r in manifest["runs"]}
    assert set(where) == {(s, n) for s in ("baseline", "warm") for n in SEEDS}
    assert {w.split(" ")[0] for w in where.values()} == {host}
    assert {w.split(" ")[1] for w in where.values()} <= set(cluster.workers)
    assert manifest["run_notes"] == [] and result.notes == ()
    pool_where = {r.worker for s in pooled.runs["toy"].values() for r in s}
    assert all(w.startswith(f"{host} pid ") for w in pool_where)
    assert sorted((twin / "toy-runs.log").read_text().splitlines()) == [
        "baseline 1", "baseline 2", "warm 1", "warm 2",
    ]  # fmt: skip
    assert list((result.directory / "work").rglob(SHIPPED_INPUTS)) == []  # removed after the run

    # resuming works as on the pool: a lost seed folder is the only seed run again
    shutil.rmtree(result.directory / "seeds" / "toy" / "warm" / "seed_2")
    again = ensemble(twin, engines, "dask", workers=2, executor=open_cluster(cluster.address, workers=2))
    assert again.computed == (("toy", "warm", 2),) and len(again.resumed) == 3
    assert seed_bytes(again) == seed_bytes(pooled)
    assert (twin / "toy-runs.log").read_text().splitlines()[4:] == ["warm 2"]


def test_a_seed_that_fails_the_quality_check_on_the_cluster_is_the_pools_failed_seed(
    tmp_path: Path, cluster: Cluster
) -> None:
    """A gridlocked seed comes back from a Dask worker as the same failed seed the local pool saves:
    its message kept, no KPIs, saved and reused on a rerun."""
    from civictwin_toy.engine import Gridlock, ToyEngine

    jam = Scenario(name="jam", interventions=[Gridlock(type="toy_gridlock", seeds=[2])])
    twins = {how: write_twin(tmp_path / how, ZONES) for how in ("pool", "dask")}

    def run(how: str) -> Ensemble:
        executor = open_cluster(cluster.address, workers=2) if how == "dask" else None
        return run_ensemble(
            TwinContext.load(twins[how]), [jam], [ToyEngine()], comparison_id="jam", seeds=SEEDS,
            workers=2, executor=executor,
        )  # fmt: skip

    pooled, dasked = run("pool"), run("dask")
    reason = "200 teleports for 5,390 trips exceed the allowed share 5%: the network is gridlocked or broken"
    for result in (pooled, dasked):
        assert [(r.seed, r.failure, len(r.kpis)) for r in result.runs["toy"]["jam"]] == [
            (1, "", 1),
            (2, reason, 0),
        ]
    assert dasked.runs["toy"]["jam"][1].worker.split(" ")[1] in cluster.workers
    again = run("dask")
    assert again.computed == () and again.runs["toy"]["jam"][1].failure == reason


def test_a_hanging_seed_on_the_cluster_is_one_line(tmp_path: Path, cluster: Cluster) -> None:
    from civictwin_toy.engine import Hang, ToyEngine

    hang = Scenario(name="hang", interventions=[Hang(type="toy_hang", seed=1)])
    with pytest.raises(EngineError) as failed:
        run_ensemble(
            TwinContext.load(write_twin(tmp_path / "twin", ZONES)), [hang], [ToyEngine()],
            comparison_id="hang", seeds=[1], seed_timeout_s=1, executor=open_cluster(cluster.address, workers=2),
        )  # fmt: skip
    assert failed.value.user_message() == (
        "engine 'toy', scenario 'hang', seed 1: no result within the per-seed timeout of 1 s (the engine "
        "hangs, or the seed needs a longer --seed-timeout)"
    )
    assert list((tmp_path / "twin" / "runs" / "hang" / "seeds" / "toy" / "hang").iterdir()) == []
    from distributed import Client

    from civictwin.engines import cluster as dask_seeds

    with Client(cluster.address, timeout=30, set_as_default=False) as client:
        waiting = client.run(lambda: sum(p.alive() for p in dask_seeds._idle) + len(dask_seeds._starting))
    assert waiting == {
        address: 1 for address in cluster.workers
    }  # the failed seed's process waits for the next


def test_the_local_pool_never_imports_dask() -> None:
    code = (
        "import sys; import civictwin.cli.scenario, civictwin.engines.ensemble; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_an_unreachable_scheduler_is_one_line_and_writes_nothing(
    tmp_path: Path, toy: list[str], engines: Any
) -> None:
    """A port that accepts connections and never answers (the handshake would wait forever), through
    the command line with the timeout from twin.toml; a refused port, in-process; a wrong address."""
    twin = write_twin(tmp_path / "twin", ZONES)
    (twin / "scenarios").mkdir()
    (twin / "scenarios" / "warm.toml").write_text(
        'name = "warm"\n[[interventions]]\ntype = "toy_nudge"\nfactor = 1.5\n'
    )
    with (twin / "twin.toml").open("a", encoding="utf-8") as config:
        config.write("\n[compute]\nconnect_timeout_s = 1\n")  # the timeout from twin.toml, the address given
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        nobody = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        done = subprocess.run(
            [str(BIN / "civictwin"), "compare", "baseline", "warm", "--twin", str(twin), "--seeds", "2",
             "--cluster", nobody],
            env=subprocess_env(toy), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: the Dask scheduler at {nobody} did not answer within 1 s"
    refused = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(EngineError) as failed:
        ensemble(twin, engines, "refused", executor=open_cluster(refused, workers=2, connect_timeout_s=0.5))
    assert failed.value.user_message() == f"the Dask scheduler at {refused} did not answer within 0.5 s"
    assert not (twin / "runs").exists() and not (twin / "toy-runs.log").exists()
    with pytest.raises(EngineError) as wrong:
        open_cluster("127.0.0.1:8786", workers=2)
    assert wrong.value.user_message() == (
        "--cluster: '127.0.0.1:8786' is not a Dask scheduler address (expected tcp://host:port or 'local')"
    )


def close_barrier(cluster: Cluster) -> None:
    for old in cluster.barrier.glob("started-*"):
        old.unlink()
    (cluster.barrier / "go").unlink()


def wait_started(cluster: Cluster, count: int) -> list[Path]:
    """The barrier's ``started-*`` files once ``count`` seeds wait there (one per worker)."""
    deadline = time.monotonic() + 180  # seeds may start slowly on a loaded machine
    while len(started := sorted(cluster.barrier.glob("started-*"))) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(started) == count, started
    return started


def test_ctrl_c_stops_the_seeds_on_the_workers_and_the_comparison_resumes(
    tmp_path: Path, cluster: Cluster, engines: Any, pooled: Ensemble
) -> None:
    """Ctrl-C while the seeds run on the workers (SIGINT's KeyboardInterrupt in this main thread, as
    the command line gets it): the seeds there are interrupted and leave nothing, the workers stay,
    and the same comparison then resumes and runs every seed exactly once."""
    twin = write_twin(tmp_path / "twin", ZONES)
    close_barrier(cluster)

    late: list[AssertionError] = []

    def press_ctrl_c() -> None:
        try:
            wait_started(cluster, 2)
        except AssertionError as error:  # the seeds never started: fail, never leave the test waiting
            late.append(error)
        _thread.interrupt_main()

    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            ensemble(twin, engines, "stopped", workers=2, executor=open_cluster(cluster.address, workers=2))
        seeds = twin / "runs" / "stopped" / "seeds" / "toy"
        deadline = time.monotonic() + 30
        while list(seeds.glob("*/.seed_*")) and time.monotonic() < deadline:
            time.sleep(0.05)  # the interrupted seeds remove their staging folders
        assert list(seeds.glob("*/*")) == []
    finally:
        presser.join(timeout=60)
        (cluster.barrier / "go").touch()
    assert not late, late
    assert all(p.poll() is None for p in cluster.workers.values())
    resumed = ensemble(twin, engines, "stopped", workers=2, executor=open_cluster(cluster.address, workers=2))
    assert len(resumed.computed) == 4 and seed_bytes(resumed) == seed_bytes(pooled)
    assert sorted((twin / "toy-runs.log").read_text().splitlines()) == [
        "baseline 1", "baseline 2", "warm 1", "warm 2",
    ]  # fmt: skip  # the interrupted seeds never finished


def test_a_real_ctrl_c_stops_civictwin_compare_on_the_workers_and_the_same_command_resumes(
    tmp_path: Path, cluster: Cluster, toy: list[str], pooled: Ensemble
) -> None:
    """SIGINT as a terminal's Ctrl-C sends it, to ``civictwin compare --cluster`` while both seeds
    wait on the workers: the command ends with one line and exit 130, the seeds there are stopped
    (their seed processes end, no staging folder or finished seed is left), and the same command
    then resumes and saves the local pool's seeds, each seed run exactly once."""
    twin = write_twin(tmp_path / "twin", ZONES)
    (twin / "scenarios").mkdir()
    (twin / "scenarios" / "warm.toml").write_text(
        'name = "warm"\n[[interventions]]\ntype = "toy_nudge"\nfactor = 1.5\nzones = ["b"]\n'
    )  # the pooled comparison's warm scenario
    command = [str(BIN / "civictwin"), "compare", "baseline", "warm", "--twin", str(twin), "--seeds", "2",
               "--cluster", cluster.address, "--workers", "2", "--id", "signalled"]  # fmt: skip
    comparison = twin / "runs" / "signalled"
    close_barrier(cluster)
    try:
        process = subprocess.Popen(
            command, env=subprocess_env(toy), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            wait_started(cluster, 2)
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 130, stderr
        assert stderr.strip() == "interrupted: nothing half-written was kept"
        deadline = time.monotonic() + 30
        while any(seed_processes(cluster).values()) and time.monotonic() < deadline:
            time.sleep(0.05)  # each interrupted seed's process ends once its seed has cleaned up
        assert seed_processes(cluster) == {address: [] for address in cluster.workers}
        assert list((comparison / "seeds" / "toy").glob("*/*")) == []
        assert not (twin / "toy-runs.log").exists()  # no seed finished
    finally:
        (cluster.barrier / "go").touch()
    resumed = subprocess.run(command, env=subprocess_env(toy), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert saved_bytes(comparison) == seed_bytes(pooled)
    assert sorted((twin / "toy-runs.log").read_text().splitlines()) == [
        "baseline 1", "baseline 2", "warm 1", "warm 2",
    ]  # fmt: skip


def test_a_worker_killed_mid_seed_has_its_seed_run_again_elsewhere(
    tmp_path: Path, cluster: Cluster, engines: Any, pooled: Ensemble
) -> None:
    """Runs last: it leaves one worker. Both workers hold a seed at the barrier; one is killed -9.
    The seed run again removes the job folder the killed worker left in the temporary folder."""
    twin = write_twin(tmp_path / "twin", ZONES)
    close_barrier(cluster)
    outcome: dict[str, Any] = {}

    def drive() -> None:
        try:
            outcome["result"] = ensemble(
                twin, engines, "killed", workers=2, executor=open_cluster(cluster.address, workers=2)
            )
        except BaseException as exc:
            outcome["error"] = exc

    driver = threading.Thread(target=drive)
    driver.start()
    try:
        started = wait_started(cluster, 2)
        victim_pid = int(started[0].name.rsplit("-", 1)[1])
        victim_seed = started[0].name.removeprefix("started-").rsplit("-", 1)[0]
        victim = next(a for a, p in cluster.workers.items() if p.pid == victim_pid)
        job_folders = Path(tempfile.gettempdir()).glob(f"civictwin-seed-{victim_pid}-*")
        assert len(list(job_folders)) == 1  # its seed's job folder, which its death leaves behind
        os.kill(victim_pid, signal.SIGKILL)
        cluster.workers[victim].wait(timeout=10)
    finally:
        (cluster.barrier / "go").touch()
        driver.join(timeout=120)
    assert "error" not in outcome, outcome.get("error")
    result: Ensemble = outcome["result"]
    assert seed_bytes(result) == seed_bytes(pooled)
    assert sorted((twin / "toy-runs.log").read_text().splitlines()) == [
        "baseline 1", "baseline 2", "warm 1", "warm 2",
    ]  # fmt: skip  # each seed finished exactly once
    survivor = next(a for a in cluster.workers if a != victim)
    scenario, seed = victim_seed.rsplit("-", 1)
    assert result.notes == (
        f"engine 'toy', scenario '{scenario}', seed {seed} was run 2 times: its worker {victim} left "
        f"the cluster mid-run, and {survivor} finished it",
    )
    rerun = next(r for r in result.runs["toy"][scenario] if r.seed == int(seed))
    assert rerun.worker == f"{socket.gethostname()} {survivor}"
    seeds = twin / "runs" / "killed" / "seeds" / "toy"
    assert sorted(p.name for p in (seeds / scenario).iterdir()) == ["seed_1", "seed_2"]  # no staging left
    assert (
        list(Path(tempfile.gettempdir()).glob(f"civictwin-seed-{victim_pid}-*")) == []
    )  # removed by the rerun


def test_a_seed_whose_workers_keep_dying_fails_with_one_line(
    tmp_path: Path, cluster: Cluster, engines: Any
) -> None:
    """Runs after the kill test, on the one worker left, with the scheduler allowing no worker death
    (its ``allowed-failures`` set to 0 for this test): the lost worker makes the seed fail."""
    from distributed import Client

    (survivor,) = [a for a, p in cluster.workers.items() if p.poll() is None]
    with Client(cluster.address, timeout=30, set_as_default=False) as client:
        client.run_on_scheduler(lambda dask_scheduler: setattr(dask_scheduler, "allowed_failures", 0))
    close_barrier(cluster)
    outcome: dict[str, BaseException] = {}

    def drive() -> None:
        try:
            run_ensemble(
                TwinContext.load(write_twin(tmp_path / "twin", ZONES)), [Scenario.baseline_scenario()],
                [engines[0]], comparison_id="lost", seeds=[1], executor=open_cluster(cluster.address, workers=1),
            )  # fmt: skip
        except BaseException as exc:
            outcome["error"] = exc

    driver = threading.Thread(target=drive)
    driver.start()
    try:
        wait_started(cluster, 1)
        cluster.workers[survivor].kill()
        cluster.workers[survivor].wait(timeout=10)
    finally:
        (cluster.barrier / "go").touch()
        driver.join(timeout=60)
    error = outcome.get("error")
    assert isinstance(error, EngineError), error
    assert error.user_message() == (
        f"engine 'toy', scenario 'baseline', seed 1: 1 Dask worker(s) were lost while running it (the last "
        f"{survivor}), so the scheduler gave up on it; the seed may exhaust a worker's memory"
    )
    assert list((tmp_path / "twin" / "runs" / "lost" / "seeds" / "toy" / "baseline").iterdir()) == []


def test_a_seed_process_reads_a_scenarios_inputs_once_and_a_replaced_file_again(tmp_path: Path) -> None:
    """Seeds of one scenario share one read of the shipped inputs; a file put in its place (the same
    comparison run again) is read afresh; a missing file is one line."""
    import pickle

    from civictwin.engines import cluster as dask_seeds

    path = tmp_path / SHIPPED_INPUTS
    path.write_bytes(pickle.dumps({"zones": [1, 2, 3]}))
    first = dask_seeds._read_inputs(path)
    assert first == {"zones": [1, 2, 3]} and dask_seeds._read_inputs(path) is first
    replacement = tmp_path / "next.pickle"
    replacement.write_bytes(pickle.dumps({"zones": [4]}))
    replacement.replace(path)
    assert dask_seeds._read_inputs(path) == {"zones": [4]}
    path.unlink()
    with pytest.raises(EngineError) as missing:
        dask_seeds._read_inputs(path)
    assert missing.value.user_message() == (
        f"the prepared inputs {path} are not readable on this worker (No such file or directory)"
    )


def test_a_local_cluster_starts_beside_the_preparation_and_gives_the_pools_seeds(
    tmp_path: Path,
    toy: list[str],
    engines: Any,
    pooled: Ensemble,
    monkeypatch: pytest.MonkeyPatch,
    recwarn: pytest.WarningsRecorder,
) -> None:
    """Opening ``--cluster local`` returns before its cluster is up (the scenarios are prepared
    meanwhile); its workers run with :data:`WORKER_CONFIG` (no profiler, the memory monitor every
    second); its scheduler's HTTP server takes a free loopback port, not Dask's dashboard port 8787
    (held here), without a warning; the comparison's seeds are the pool's, run on its workers, which
    are gone afterwards."""
    import psutil

    monkeypatch.setenv("PYTHONPATH", subprocess_env(toy)["PYTHONPATH"])  # for the seed processes
    before = {" ".join(child.cmdline()) for child in psutil.Process().children()}  # other tests' cluster
    assert WORKER_CONFIG["distributed.worker.memory.monitor-interval"] == "1s"
    with socket.socket() as dashboard_port:
        with contextlib.suppress(OSError):  # already taken on this machine, which does as well
            dashboard_port.bind(("", 8787))
            dashboard_port.listen()
        with open_cluster(LOCAL, workers=2)(4, ()) as seeds:
            assert not seeds.connected.done()  # starting on its own thread: spawning workers takes seconds
            callbacks = seeds.client.run(
                lambda dask_worker: sorted(
                    (name, pc.callback_time)
                    for name, pc in dask_worker.periodic_callbacks.items()
                    if name in ("profile", "memory_monitor")
                )
            )
            http = seeds.client.run_on_scheduler(
                lambda dask_scheduler: (dask_scheduler.http_server.address, dask_scheduler.http_server.port)
            )
    assert list(callbacks.values()) == [[("memory_monitor", 1000.0)]] * 2, callbacks  # milliseconds
    assert http[0] == "127.0.0.1" and http[1] != 8787, http
    assert [str(w.message) for w in recwarn if "8787" in str(w.message)] == []

    twin = write_twin(tmp_path / "twin", ZONES)
    result = ensemble(twin, engines, "local", workers=2, executor=open_cluster(LOCAL, workers=2))
    assert seed_bytes(result) == seed_bytes(pooled)
    where = {r.worker for s in result.runs["toy"].values() for r in s}
    assert all(w.startswith(f"{socket.gethostname()} tcp://127.0.0.1:") for w in where), where
    assert result.notes == () and list((result.directory / "work").rglob(SHIPPED_INPUTS)) == []

    def ours() -> list[str]:  # new child processes, besides multiprocessing's own resource tracker
        lines = []
        for child in psutil.Process().children():
            with contextlib.suppress(psutil.NoSuchProcess):  # it ended meanwhile
                lines.append(" ".join(child.cmdline()))
        return [line for line in lines if "resource_tracker" not in line and line not in before]

    deadline = time.monotonic() + 30
    while ours() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ours() == []  # the cluster's workers and their seed processes are gone


def test_a_failed_preparation_stops_the_local_cluster_starting_beside_it(
    tmp_path: Path, engines: Any
) -> None:
    """The preparation fails while the ``LocalCluster`` still starts: its one line is what is reported,
    and the cluster, once up, is stopped with its workers."""
    import psutil
    from civictwin_toy.engine import ToyEngine

    class Unprepared(ToyEngine):
        def prepare(self, twin: TwinContext, scenario: Scenario, *, workdir: Path) -> Any:
            raise ValueError("no zones layer")

    before = {child.pid for child in psutil.Process().children()}
    with pytest.raises(EngineError) as failed:
        run_ensemble(
            TwinContext.load(write_twin(tmp_path / "twin", ZONES)), [Scenario.baseline_scenario()],
            [Unprepared()], comparison_id="unprepared", seeds=[1], executor=open_cluster(LOCAL, workers=2),
        )  # fmt: skip
    assert failed.value.user_message() == (
        "engine 'toy' failed to prepare scenario 'baseline': ValueError: no zones layer"
    )
    left = []
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.NoSuchProcess):  # it ended meanwhile
            if child.pid not in before and "resource_tracker" not in " ".join(child.cmdline()):
                left.append(child)
    assert left == []  # the cluster's workers were stopped before run_ensemble returned


def test_a_local_cluster_that_cannot_start_is_one_line_and_writes_no_seed(
    tmp_path: Path, toy: list[str], engines: Any
) -> None:
    """A scheduler preload that does not import (a broken Dask configuration, from the environment):
    through the command line, one line and exit 1, reported once the scenarios are prepared, with no
    seed, manifest or shipped inputs written; the same id then runs once the configuration is fixed."""
    twin = write_twin(tmp_path / "twin", ZONES)
    (twin / "scenarios").mkdir()
    (twin / "scenarios" / "warm.toml").write_text(
        'name = "warm"\n[[interventions]]\ntype = "toy_nudge"\nfactor = 1.5\n'
    )
    command = [str(BIN / "civictwin"), "compare", "baseline", "warm", "--twin", str(twin), "--seeds", "2",
               "--cluster", LOCAL, "--workers", "2", "--id", "broken"]  # fmt: skip
    broken = subprocess_env(toy, DASK_DISTRIBUTED__SCHEDULER__PRELOAD='["civictwin_no_such_preload"]')
    done = subprocess.run(command, env=broken, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: the Dask LocalCluster for --cluster local could not start: Cluster failed to start: No "
        "module named 'civictwin_no_such_preload'"
    )
    comparison = twin / "runs" / "broken"
    assert not (comparison / "seeds").exists() and not (comparison / "manifest.json").exists()
    assert list(comparison.rglob(SHIPPED_INPUTS)) == [] and not (twin / "toy-runs.log").exists()
    fixed = subprocess.run(
        command, env=subprocess_env(toy), capture_output=True, text=True, timeout=300, check=False
    )
    assert fixed.returncode == 0, fixed.stderr
    assert sorted((twin / "toy-runs.log").read_text().splitlines()) == [
        "baseline 1", "baseline 2", "warm 1", "warm 2",
    ]  # fmt: skip


class _Finalised:
    """Garbage whose finalizer runs Python code (as distributed's ``Future.__del__`` does): it says it
    started, then runs until ``handled()`` (the SIGINT handler ran), at most 30 s."""

    def __init__(self, started: threading.Event, handled: Callable[[], bool]) -> None:
        self.started, self.handled = started, handled
        self.itself = self  # a reference cycle: freed only by the garbage collector

    def __del__(self) -> None:
        self.started.set()
        deadline = time.monotonic() + 30
        while not self.handled() and time.monotonic() < deadline:
            pass


def test_a_ctrl_c_lost_in_a_finalizer_still_stops_the_wait_for_the_seeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The mechanism of the hang the Ctrl-C test showed in two fresh-clone runs: an interrupt that
    lands while this (main) thread's garbage collection runs a finalizer is raised inside it, where
    Python drops it ("Exception ignored"), so a wait for seeds that themselves wait never ends.
    Noticed by the handler, it is raised by the wait about a second later (an empty queue stands for
    seeds that never end; a sentinel after 30 s fails the test instead of hanging it)."""
    import gc

    from civictwin.engines import cluster as dask_seeds

    dropped: list[type[BaseException] | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: dropped.append(unraisable.exc_type))
    finished: queue.SimpleQueue[Any] = queue.SimpleQueue()
    started = threading.Event()

    def press() -> None:
        started.wait()
        _thread.interrupt_main()

    def give_up() -> None:
        time.sleep(30)
        finished.put("the interrupt stayed lost")

    threading.Thread(target=press, daemon=True).start()
    threading.Thread(target=give_up, daemon=True).start()
    previous = signal.getsignal(signal.SIGINT)
    with dask_seeds._noticing_interrupts() as noticed:
        _Finalised(started, lambda: noticed.at is not None)
        gc.collect()  # the finalizer runs until the handler ran, and raised, inside it
        assert dropped == [KeyboardInterrupt]
        with pytest.raises(KeyboardInterrupt, match="lost on its way"):
            dask_seeds._next_finished(finished, noticed)
        assert noticed.at is not None
    assert signal.getsignal(signal.SIGINT) is previous  # the handler in place before is back


def test_a_pending_ctrl_c_is_raised_by_its_handler_when_the_wait_for_the_seeds_wakes() -> None:
    """An interrupt that only is marked pending (``_thread.interrupt_main``) while the wait sleeps
    is raised by the handler in place (pytest's, or civictwin's after an in-process command) when
    the wait wakes, not by the loss check; a finished future waiting on the queue is returned as
    is; the handler in place before is back afterwards."""
    from civictwin.engines import cluster as dask_seeds

    previous = signal.getsignal(signal.SIGINT)
    finished: queue.SimpleQueue[Any] = queue.SimpleQueue()
    finished.put("done")
    with dask_seeds._noticing_interrupts() as noticed:
        assert dask_seeds._next_finished(finished, noticed) == "done"
        assert noticed.at is None
        threading.Timer(0.05, _thread.interrupt_main).start()
        with pytest.raises(KeyboardInterrupt) as raised:
            dask_seeds._next_finished(finished, noticed)
        assert noticed.at is not None
    assert raised.value.args == ()  # the handler's own, not the loss check's
    assert signal.getsignal(signal.SIGINT) is previous


def test_an_open_executor_notices_a_ctrl_c_dropped_before_its_seeds_are_sent(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the executor is open (the scenarios prepared, the seeds submitted: where the Ctrl-C of
    the hung test runs came), an interrupt dropped in a finalizer is noted, so the wait for the seeds
    raises it; closing the executor puts the SIGINT handler back."""
    import gc

    from civictwin.engines import cluster as dask_seeds

    dropped: list[type[BaseException] | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: dropped.append(unraisable.exc_type))
    previous = signal.getsignal(signal.SIGINT)
    started = threading.Event()

    def press() -> None:
        started.wait()
        _thread.interrupt_main()

    with open_cluster(cluster.address, workers=2)(4, ()) as seeds:
        assert signal.getsignal(signal.SIGINT) is not previous
        threading.Thread(target=press, daemon=True).start()
        _Finalised(started, lambda: seeds.noticed.at is not None)
        gc.collect()
        assert dropped == [KeyboardInterrupt]
        with pytest.raises(KeyboardInterrupt, match="lost on its way"):
            dask_seeds._next_finished(queue.SimpleQueue(), seeds.noticed)
    assert signal.getsignal(signal.SIGINT) is previous
