"""The engine seam against the pipeline it replaced: one traffic seed, orchestration time side by side.

Issue 10's target: "the engine seam adds under 2% to a traffic run (today's orchestration share,
measured in the same run)". "Today" is the traffic pipeline before the seam (commit ``9049368^``,
``engines/traffic/pipeline.run_ensemble``): this script checks that commit out into a git worktree
under ``benchmarks/out/`` and runs, in one run, alternating which goes first, each in a fresh process:

- **pre-seam**: ``pipeline.run_ensemble(twin, [baseline], seeds=[1], workers=1)``, the old code
  imported from the worktree (``PYTHONPATH``), this venv's libraries;
- **seam**: ``TwinContext.load`` and ``engines.ensemble.run_ensemble`` with the installed ``traffic``
  engine, one seed, one worker, as ``civictwin compare --engine traffic --seeds 1 --workers 1``.

The pre-seam code runs on a copy of the twin whose ``twin.toml`` lacks the sections it does not know
(``[energy]`` and later ones, which traffic does not read). Both write a fresh comparison under their
twin's ``runs/``. Imports happen before the clock starts.
The SUMO versions of the two runs are the same wheels, but the network and run options changed after
the seam (issue 11 part 8: merged edge chains, a run ending with its last vehicle), so SUMO's own
seconds differ: the comparison is of the time **outside** SUMO's processes and netconvert
(orchestration: loading, preparing, the worker pool, saving). What the seam adds is that time's
increase as a share of the seam run's own wall time (the stricter denominator: today's runs are the
faster ones).

    .venv/bin/python benchmarks/bench_seam_preseam.py --twin bench-twin --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESEAM_COMMIT = "9049368^"
TARGET = 0.02

PRESEAM_CODE = """
import json, sys, time
from pathlib import Path
from civictwin.engines.traffic.pipeline import run_ensemble
from civictwin.scenarios.spec import Scenario
twin, comparison = Path(sys.argv[1]), sys.argv[2]
start = time.perf_counter()
ensemble = run_ensemble(twin, [Scenario.baseline_scenario()], comparison_id=comparison, seeds=[1], workers=1)
wall = time.perf_counter() - start
run = ensemble.runs["baseline"][0]
print(json.dumps({"wall_s": wall, "sumo_s": run.sumo_wall_s,
                  "netconvert_s": ensemble.prepared["baseline"].network.wall_s,
                  "in_worker_s": run.wall_s, "trips": run.kpis["trips"]}))
"""

SEAM_CODE = """
import json, sys, time
from pathlib import Path
from civictwin.engines.base import TwinContext
from civictwin.engines.ensemble import run_ensemble
from civictwin.engines.registry import load_engines
from civictwin.scenarios.spec import Scenario
twin, comparison = Path(sys.argv[1]), sys.argv[2]
engine = load_engines(["traffic"])["traffic"].engine
start = time.perf_counter()
context = TwinContext.load(twin, options={})
ensemble = run_ensemble(context, [Scenario.baseline_scenario()], [engine], comparison_id=comparison,
                        seeds=[1], workers=1)
wall = time.perf_counter() - start
record = ensemble.runs["traffic"]["baseline"][0]
kpis = {k.name: k.value for k in record.kpis}
print(json.dumps({"wall_s": wall, "sumo_s": float(record.details["sumo_wall_s"]),
                  "netconvert_s": float(record.details["netconvert_s"]),
                  "in_worker_s": record.wall_s, "trips": kpis.get("trips")}))
"""


@dataclass(frozen=True)
class Run:
    """One seed's wall time (s), SUMO's and netconvert's seconds, and the rest: orchestration."""

    variant: str
    wall_s: float
    sumo_s: float
    netconvert_s: float
    trips: float | None

    @property
    def outside_s(self) -> float:
        """Seconds outside SUMO's processes and netconvert."""
        return self.wall_s - self.sumo_s - self.netconvert_s


def preseam_source(commit: str) -> Path:
    """The pre-seam code's ``src`` folder, checked out once into a detached worktree."""
    folder = ROOT / "benchmarks" / "out" / "preseam"
    if not (folder / "src" / "civictwin").is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), commit],
            check=True,
            capture_output=True,
        )
    return folder / "src"


STRIP_CODE = """
import re, sys, tomllib
from pathlib import Path
from civictwin.config import parse_config
from civictwin.errors import ConfigError
path = Path(sys.argv[1])
dropped = set()
while True:
    text = path.read_text()
    try:
        parse_config(tomllib.loads(text), base_dir=path.parent, origin=str(path))
        break
    except ConfigError as exc:
        section = str(exc).split(": ")[1]
        if section in dropped or not re.search(rf"^\\[+{section}[.\\]]", text, re.M):
            raise
        dropped.add(section)
    kept, current = [], None
    for line in text.splitlines():
        header = re.match(r"^\\[+([A-Za-z_]+)", line)
        if header:
            current = header.group(1)
        if current not in dropped:
            kept.append(line)
    path.write_text("\\n".join(kept) + "\\n")
"""


def preseam_twin(twin: Path, source: Path) -> Path:
    """A copy of ``twin`` (its store and ``twin.toml``) that the pre-seam code can read."""
    folder = ROOT / "benchmarks" / "out" / "preseam-twin"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for entry in twin.iterdir():
        if entry.is_file() and (entry.suffix == ".duckdb" or entry.name == "twin.toml"):
            shutil.copy2(entry, folder / entry.name)
    if (twin / "scenarios").is_dir():
        shutil.copytree(twin / "scenarios", folder / "scenarios")
    env = dict(os.environ, PYTHONPATH=str(source))
    subprocess.run([sys.executable, "-c", STRIP_CODE, str(folder / "twin.toml")], env=env, check=True)
    return folder


def run_variant(variant: str, twin: Path, source: Path) -> Run:
    """One seed of ``variant`` ("pre-seam" or "seam") in a fresh Python process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(source)
    code = PRESEAM_CODE if variant == "pre-seam" else SEAM_CODE
    comparison = f"bench-seam-{variant}-{uuid.uuid4().hex[:8]}"
    done = subprocess.run(
        [sys.executable, "-c", code, str(twin), comparison],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
    values = json.loads(done.stdout.strip().splitlines()[-1])
    return Run(variant, values["wall_s"], values["sumo_s"], values["netconvert_s"], values["trips"])


def main(argv: Sequence[str] | None = None) -> None:
    """Run both variants ``--repeat`` times, alternating, and print the table and the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--twin", type=Path, required=True, help="a built twin folder (the demo twin)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--commit", default=PRESEAM_COMMIT, help="the pre-seam commit")
    args = parser.parse_args(argv)
    twin = args.twin.resolve()
    sources = {"pre-seam": preseam_source(args.commit), "seam": ROOT / "src"}
    twins = {"pre-seam": preseam_twin(twin, sources["pre-seam"]), "seam": twin}
    rows: list[tuple[int, Run, Run]] = []
    for index in range(args.repeat):
        order = ["pre-seam", "seam"] if index % 2 == 0 else ["seam", "pre-seam"]
        runs = {variant: run_variant(variant, twins[variant], sources[variant]) for variant in order}
        rows.append((index + 1, runs["pre-seam"], runs["seam"]))
        print(f"run {index + 1} done ({order[0]} first)", file=sys.stderr)
    print(
        "| run | pre-seam wall s | sumo + netconvert s | outside s | seam wall s | sumo + netconvert s "
        "| outside s | seam adds, outside s (share of the seam run) | trips pre / seam |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    added: list[float] = []
    for index, old, new in rows:
        share = (new.outside_s - old.outside_s) / new.wall_s
        added.append(share)
        print(
            f"| {index} | {old.wall_s:.2f} | {old.sumo_s:.2f} + {old.netconvert_s:.2f} | {old.outside_s:.2f} "
            f"| {new.wall_s:.2f} | {new.sumo_s:.2f} + {new.netconvert_s:.2f} | {new.outside_s:.2f} "
            f"| {new.outside_s - old.outside_s:+.2f} ({share:+.1%}) | {old.trips:.0f} / {new.trips:.0f} |"
        )
    median = statistics.median(added)
    verdict = "meets" if median < TARGET else "misses"
    print(f"\nMedian: the seam adds {median:+.1%} of a run's wall time; {verdict} the < {TARGET:.0%} target.")


if __name__ == "__main__":
    main()
