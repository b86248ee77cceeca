"""Twin build vs the peer Python stack (pyrosm + GeoPandas), on the demo extract tiled 1×1 … 8×8.

Each measurement runs in a fresh subprocess so peak memory (ru_maxrss) is that run's alone. The peer
does the same extraction: buildings (with height attributes), the drivable network, POIs and green
(natural/landuse). pyrosm (0.25) caches each read's result under the temporary folder and answers a
repeated read from that cache without decoding the file, so every peer run gets an empty temporary
folder of its own: the comparison is a first extraction, as a twin build is. Its cached re-read is
measured too, for information. pyrosm decodes on one thread for files under ~70 MB on a 2-core
machine; it is also run with ``workers=2`` (both cores, as DuckDB uses), and the speed-ups are
against the faster of the two. A build sets its process as ``civictwin.allocation`` says (no
transparent huge pages, a lazier garbage collector); the peer with ``workers=2`` is run once more
under the same settings, for information: the speed-ups are against the peer as it ships.
civictwin is measured twice: the OSM ingest alone (the like-for-like extraction, all layers
including walk/bike network; the reader alone, without the build's settings) and the whole build
(plus network, LoD1, population, zones, catalogue). The "decode floor" is what any DuckDB-based
reader pays before it builds a single geometry: a fresh process loading DuckDB's spatial extension
and reading every column of every object in the file once. The "stripped reader" is civictwin's own
reader with everything but decoding, assembling geometries and writing the seven layers taken out
(no repair, clipping or quality counts; the CRS fixed to Helsinki's UTM zone): the least this design
can cost.
Each process's CPU seconds (user + system, every thread) are reported too: on a machine shared with
other work they say more than its wall seconds. Prints a markdown table; results go into BENCHMARKS.md.

``--region`` measures region-sized builds instead (issue 14, part 4): per size, the full build in a
fresh process with its wall and CPU seconds, peak memory, seconds per tile, and where the time and
memory go step by step (``benchmarks/build_steps.py``). ``--inputs DIR`` keeps the tiled extracts in
``DIR`` between runs, in either mode (the 32×32 one is about 700 MB and takes minutes to make).

    .venv/bin/python benchmarks/bench_build.py [--sizes 1 2 4 8] [--repeat 3]
    .venv/bin/python benchmarks/bench_build.py --region --sizes 8 16 32 --repeat 1 --inputs /tmp/tiles
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TILER = ROOT.parent / "shared" / "tools" / "tile_osm.py"

PEER = """
import contextlib, json, resource, sys, time
t = time.perf_counter()
from pyrosm import OSM
settings = contextlib.nullcontext()
if sys.argv[3] == "tuned":
    from civictwin.allocation import tuned_for_build
    settings = tuned_for_build()
with settings:
    osm = OSM(sys.argv[1], workers=None if sys.argv[2] == "auto" else int(sys.argv[2]))
    counts = {
        "buildings": len(osm.get_buildings()),
        "drive_edges": len(osm.get_network(network_type="driving")),
        "pois": len(osm.get_pois()),
        "green": sum(len(frame) for frame in (osm.get_natural(), osm.get_landuse()) if frame is not None),
    }
print(json.dumps({"seconds": time.perf_counter() - t, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "counts": counts}))
"""

INGEST = """
import json, resource, sys, time
from pathlib import Path
t = time.perf_counter()
import numpy as np, shapely
from civictwin.config import parse_config
from civictwin.geometry import WGS84, reproject, utm_crs_for
from civictwin.sources.base import BuildContext
from civictwin.sources.osm import ingest
from civictwin.store.duckdb import build_store
pbf, out, bbox = sys.argv[1], Path(sys.argv[2]), [float(v) for v in sys.argv[3].split(",")]
config = parse_config({"twin": {"name": "bench"}, "area": {"bbox": bbox}, "sources": [{"name": "osm", "kind": "osm",
    "path": pbf, "licence": "ODbL-1.0", "publisher": "OSM", "steward": "bench"}]}, base_dir=out.parent)
area_wgs84 = shapely.box(*bbox)
crs = utm_crs_for(*area_wgs84.centroid.coords[0])
with build_store(out, crs=crs) as store:
    ctx = BuildContext(config, store, area_wgs84, reproject(np.array([area_wgs84], dtype=object), WGS84, crs)[0], crs)
    counts = {layer.table: layer.rows for layer in ingest(config.sources[0], ctx).layers}
print(json.dumps({"seconds": time.perf_counter() - t, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "counts": counts}))
"""

FLOOR = """
import json, resource, sys, time
t = time.perf_counter()
from civictwin.store.duckdb import connect
row = connect().execute(
    "SELECT count(*), sum(lat), sum(len(refs)), sum(len(ref_types)), sum(cardinality(tags)) FROM ST_ReadOSM(?)",
    [sys.argv[1]],
).fetchone()
print(json.dumps({"seconds": time.perf_counter() - t, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "counts": {"osm_objects": row[0]}}))
"""

STRIPPED = """
import json, resource, sys, time
t = time.perf_counter()
from pathlib import Path
import civictwin.sources.osm as osm
from civictwin.store.duckdb import DuckDBStore, connect
store = DuckDBStore.create(Path(sys.argv[2]), crs="EPSG:32635")
con = connect()
osm._decode(con, Path(sys.argv[1]))
osm._assemble(con, "EPSG:32635")
counts = {}
for layer in osm._layers():
    sql = f"SELECT * EXCLUDE (geom), ST_AsWKB(geom) AS geometry FROM ({layer.sql})"
    counts[layer.table] = store.write_table(layer.table, con.execute(sql).to_arrow_table())
store.connection.execute("CHECKPOINT")
store.close()
print(json.dumps({"seconds": time.perf_counter() - t, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "counts": counts}))
"""

BUILD = """
import json, resource, sys, time
from pathlib import Path
t = time.perf_counter()
from civictwin.build import build_twin
from civictwin.config import load_config
summary = build_twin(load_config(Path(sys.argv[1])))
print(json.dumps({"seconds": time.perf_counter() - t, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "counts": {k: summary.tables[k] for k in ("buildings", "network_edges", "pois", "green", "zones")}}))
"""


def tiled(n: int, work: Path) -> Path:
    from civictwin.demo import demo_pbf

    if n == 1:
        return demo_pbf()
    out = work / f"helsinki_{n}x{n}.osm.pbf"
    if not out.exists():  # written under another name first: an interrupted tiling is never taken for one
        partial = out.with_name(out.name + ".part.osm.pbf")
        subprocess.run([sys.executable, str(TILER), str(demo_pbf()), str(partial), "--n", str(n)], check=True)
        partial.rename(out)
    return out


def extent(n: int) -> str:
    """The bbox covering the tiled copies (the tiler shifts each copy by the extent × 1.02)."""
    from civictwin.demo import DEMO_BBOX

    x0, y0, x1, y1 = DEMO_BBOX
    return ",".join(
        str(v)
        for v in (
            x0 - 0.001,
            y0 - 0.001,
            x0 + (x1 - x0) * 1.02 * n + 0.001,
            y0 + (y1 - y0) * 1.02 * n + 0.001,
        )
    )


def run(code: str, *args: str, tmpdir: Path | None = None) -> dict[str, object]:
    """One fresh process's own measurements, plus its CPU seconds (user + system, every thread), which a
    machine shared with other work disturbs far less than wall time."""
    env = {**os.environ, "TMPDIR": str(tmpdir)} if tmpdir is not None else None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, env=env
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    last = result.stdout.strip().splitlines()[-1]
    # DuckDB draws a progress bar (no newline after it) on stdout for a query over 2 s, which a loaded
    # machine makes of the stripped reader's: the measurements are the JSON object ending the line
    measured: dict[str, object] = json.loads(last[last.index("{") :])
    measured["cpu_seconds"] = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return measured


def run_peer(pbf: Path, workers: str, *, tuned: bool = False) -> tuple[dict[str, object], dict[str, object]]:
    """The peer's first extraction (empty result cache), then the same read again from its cache;
    ``tuned``: in a process set as civictwin sets a build's (``civictwin.allocation``)."""
    settings = "tuned" if tuned else "default"
    with tempfile.TemporaryDirectory() as own_tmp:
        first = run(PEER, str(pbf), workers, settings, tmpdir=Path(own_tmp))
        cached = run(PEER, str(pbf), workers, settings, tmpdir=Path(own_tmp))
    return first, cached


def write_config(directory: Path, pbf: Path, bbox: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "twin.toml").write_text(
        f'[twin]\nname = "bench"\n[area]\nbbox = [{bbox}]\n[[sources]]\nname = "osm"\nkind = "osm"\npath = "{pbf}"\n'
        'licence = "ODbL-1.0"\npublisher = "OSM"\nsteward = "bench"\n'
    )
    return directory


STEPS = ROOT / "benchmarks" / "build_steps.py"


def region(sizes: list[int], repeat: int, inputs: Path) -> None:
    """The full build per size: seconds, CPU seconds, peak MB, seconds per tile, and per step."""
    inputs.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            pbf, bbox = tiled(n, inputs), extent(n)
            runs = []
            for i in range(repeat):
                result = subprocess.run([sys.executable, str(STEPS), str(write_config(Path(tmp) / f"r{n}_{i}", pbf, bbox))],
                                        capture_output=True, text=True, check=True)  # fmt: skip
                runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
            median = sorted(runs, key=lambda r: float(r["seconds"]))[len(runs) // 2]
            rows.append(
                (n, round(pbf.stat().st_size / 1e6, 1), median, max(float(r["peak_mb"]) for r in runs),
                 [float(r["seconds"]) for r in runs])
            )  # fmt: skip
            print(json.dumps(rows[-1]), file=sys.stderr)
    print(
        "| tiles | PBF MB | full build s (median) | every run s | CPU s | s per tile (median; every run) | peak MB | edges | buildings |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n, mb, r, peak, every in rows:
        print(f"| {n}×{n} | {mb} | {r['seconds']:.1f} | {', '.join(f'{s:.1f}' for s in every)} | "
              f"{r['cpu_seconds']:.1f} | {r['seconds'] / n / n:.3f}; {', '.join(f'{s / n / n:.3f}' for s in every)} | "
              f"{peak:.0f} | {r['counts'].get('network_edges', 0):,} | {r['counts'].get('buildings', 0):,} |")  # fmt: skip
    print()
    names = list(rows[0][2]["steps"])
    print("Steps (… inside the step above it; a peak only for the outermost steps):\n")
    print("| step | " + " | ".join(f"{n}×{n} s / CPU s (peak MB)" for n, *_ in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for name in names:
        cells = []
        for _, _, r, _, _ in rows:
            step = r["steps"].get(name, {})
            peak_text = f" ({step['peak_mb']})" if step.get("peak_mb") is not None else ""
            cells.append(f"{step['seconds']:.1f} / {step['cpu_seconds']:.1f}{peak_text}" if step else "–")
        print(f"| {'… ' if name.startswith(' ') else ''}{name.strip()} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--region", action="store_true", help="region-sized builds: per-step time and memory")
    parser.add_argument("--inputs", type=Path, default=None, help="keep the tiled extracts in this folder")
    args = parser.parse_args()
    if args.region:
        with tempfile.TemporaryDirectory() as tmp:
            region(args.sizes, args.repeat, args.inputs or Path(tmp))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for n in args.sizes:
            pbf = tiled(n, args.inputs or work)
            bbox = extent(n)
            measured: dict[str, list[dict[str, object]]] = {
                "peer": [],
                "peer2": [],
                "peer2_tuned": [],
                "cached": [],
                "ingest": [],
                "build": [],
                "floor": [],
                "stripped": [],
            }
            for i in range(args.repeat):
                first, cached = run_peer(pbf, "auto")
                measured["peer"].append(first)
                measured["cached"].append(cached)
                measured["peer2"].append(run_peer(pbf, "2")[0])
                measured["peer2_tuned"].append(run_peer(pbf, "2", tuned=True)[0])
                measured["ingest"].append(run(INGEST, str(pbf), str(work / f"i{n}_{i}.duckdb"), bbox))
                measured["build"].append(run(BUILD, str(write_config(work / f"b{n}_{i}", pbf, bbox))))
                measured["floor"].append(run(FLOOR, str(pbf)))
                measured["stripped"].append(run(STRIPPED, str(pbf), str(work / f"s{n}_{i}.duckdb")))
            row = {"n": n, "mb": round(pbf.stat().st_size / 1e6, 1)}
            for key, runs in measured.items():
                row[f"{key}_s"] = statistics.median(float(r["seconds"]) for r in runs)  # type: ignore[arg-type]
                row[f"{key}_mb"] = max(float(r["peak_mb"]) for r in runs)  # type: ignore[arg-type]
                row[f"{key}_cpu"] = statistics.median(float(r["cpu_seconds"]) for r in runs)  # type: ignore[arg-type]
                row[f"{key}_counts"] = runs[0]["counts"]
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    print(
        "| tiles | PBF MB | peer s (its default threads) | peer s (workers=2) "
        "| peer s (workers=2, civictwin's process settings) | peer peak MB | civictwin ingest s "
        "| ingest peak MB | speed-up (ingest) | full build s | build peak MB | speed-up (build) "
        "| peer re-read from its cache s | decode floor s | stripped reader s "
        "| peer CPU s (default / workers=2 / settings) | ingest CPU s | full build CPU s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        peer = min(r["peer_s"], r["peer2_s"])
        print(
            f"| {r['n']}×{r['n']} | {r['mb']} | {r['peer_s']:.2f} | {r['peer2_s']:.2f} | {r['peer2_tuned_s']:.2f} | "
            f"{max(r['peer_mb'], r['peer2_mb']):.0f} | {r['ingest_s']:.2f} | {r['ingest_mb']:.0f} | "
            f"{peer / r['ingest_s']:.2f}× | {r['build_s']:.2f} | {r['build_mb']:.0f} | {peer / r['build_s']:.2f}× "
            f"| {r['cached_s']:.2f} | {r['floor_s']:.2f} | {r['stripped_s']:.2f} "
            f"| {r['peer_cpu']:.2f} / {r['peer2_cpu']:.2f} / {r['peer2_tuned_cpu']:.2f} | {r['ingest_cpu']:.2f} "
            f"| {r['build_cpu']:.2f} |"
        )
    print()
    for r in rows:
        print(
            f"{r['n']}×{r['n']}: peer {r['peer_counts']}; civictwin {r['ingest_counts']}; build {r['build_counts']}"
        )


if __name__ == "__main__":
    main()
