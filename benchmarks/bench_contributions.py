"""Contributions accepted per second by a consultation page, and their latency (issue 13, part 2).

A real ``civictwin serve`` (one uvicorn worker, its own process) over a tiny twin with one published
comparison and a ``[[consultations]]`` block; the load generator (asyncio + httpx, in this process)
sends contributions open-loop at ``--rate`` per second for ``--duration`` seconds, each a comment and
a vote with a solved proof-of-work challenge, and counts the 202 answers (queued for moderation,
durably committed to ``<store>.contributions.sqlite``) and their client-side latencies. The
challenges are fetched and solved before the clock starts: solving is the browser's work, not the
server's, and the server checks a proof with one SHA-256 whatever the difficulty (``--bits``, 8 by
default, keeps the preparation short). Every request comes from 127.0.0.1 while it stands for many
citizens, so the consultation's per-source limit is lifted and the API's per-client rate limit is
raised to cover the whole run (burst: every challenge and contribution; rate: twice ``--rate``); the
limiter itself still charges every request.

    .venv/bin/python benchmarks/bench_contributions.py --rate 200 --duration 10

Prints a markdown row for BENCHMARKS.md; the target is 200 contributions/s accepted with p95 under
100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
from bench_api import CIVICTWIN_CLI, free_port, percentile, running

from civictwin.compare.participation import solve

TARGET_RATE = 200.0
TARGET_P95_MS = 100.0
COMPARISON_ID = "bench-contributions"
TWIN_TOML = """[twin]
name = "Contributions bench"
store = "bench.duckdb"

[area]
bbox = [24.93, 60.16, 24.95, 60.18]

[[sources]]
name = "osm"
kind = "osm"
path = "city.osm.pbf"
licence = "ODbL-1.0"
publisher = "OpenStreetMap contributors"
steward = "City GIS team"

[[consultations]]
comparison = "{comparison}"
opens = 2000-01-01
closes = 2100-01-01
themes = ["safety", "noise"]
contributions_per_hour = 100000
proof_of_work_bits = {bits}
"""


def write_twin(folder: Path, bits: int) -> None:
    """A twin with one public layer, one complete comparison built from it, and its consultation."""
    import geopandas as gpd
    from shapely.geometry import box

    from civictwin.store.duckdb import DuckDBStore

    store = DuckDBStore.create(folder / "bench.duckdb", crs="EPSG:32635")
    try:
        buildings = gpd.GeoDataFrame(
            {"use": ["residential"]}, geometry=[box(385_000, 6_672_000, 385_020, 6_672_020)], crs="EPSG:32635"
        )
        store.write_table("buildings", buildings)
        store.put_record(
            "catalog", "buildings", {"title": "Buildings", "access": "public", "licence": "ODbL-1.0"}
        )
    finally:
        store.close()
    (folder / "twin.toml").write_text(TWIN_TOML.format(comparison=COMPARISON_ID, bits=bits), encoding="utf-8")
    (folder / "city.osm.pbf").write_bytes(b"unused")
    run = folder / "runs" / COMPARISON_ID
    run.mkdir(parents=True)
    comparison = {"id": COMPARISON_ID, "created": "2026-12-01T00:00:00Z", "baseline": "baseline", "plans": ["zone30"],
                  "engines": [{"name": "traffic", "version": "0"}], "sources": ["buildings"], "tables": [], "kpis": [],
                  "differences": [], "summary": []}  # fmt: skip
    (run / "comparison.json").write_text(json.dumps(comparison), encoding="utf-8")
    (run / "manifest.json").write_text(json.dumps({"scenarios": [], "runs": []}), encoding="utf-8")
    (run / "complete").touch()


async def _proofs(client: httpx.AsyncClient, base: str, count: int) -> list[dict[str, str]]:
    """``count`` challenges with their solutions (fetched 16 at a time)."""
    url = f"{base}/consultations/{COMPARISON_ID}/challenge"
    proofs: list[dict[str, str]] = []
    while len(proofs) < count:
        answers = await asyncio.gather(*(client.get(url) for _ in range(min(16, count - len(proofs)))))
        for answer in answers:
            issued = answer.raise_for_status().json()
            proofs.append(
                {"challenge": issued["challenge"], "nonce": solve(issued["challenge"], issued["bits"])}
            )
    return proofs


async def _drive(base: str, rate: float, seconds: float) -> tuple[int, int, float, list[float]]:
    """Send ``rate`` contributions per second for ``seconds``: (accepted, not accepted, elapsed s,
    latencies ms); a failed connection counts as not accepted, with its time to failure."""
    count = int(rate * seconds)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        proofs = await _proofs(client, base, count)
        url = f"{base}/consultations/{COMPARISON_ID}/contributions"
        latencies: list[float] = []
        statuses: list[int] = []

        async def one(index: int, proof: dict[str, str]) -> None:
            body = {"consent": True, "scenario": "zone30", "theme": ("safety", "noise")[index % 2],
                    "vote": ("for", "against")[index % 3 == 0], "text": f"Comment number {index}", **proof}  # fmt: skip
            started = time.perf_counter()
            try:
                status = (await client.post(url, json=body)).status_code
            except httpx.TransportError:
                status = 0  # the connection failed: not accepted
            latencies.append((time.perf_counter() - started) * 1000)
            statuses.append(status)

        started = time.perf_counter()
        tasks = []
        for index, proof in enumerate(proofs):
            delay = started + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(index, proof)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    accepted = sum(s == 202 for s in statuses)
    return accepted, len(statuses) - accepted, elapsed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="Contributions sent per second")
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds of load")
    parser.add_argument("--bits", type=int, default=8, help="Proof-of-work difficulty (zero bits)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-contributions-") as tmp:
        folder = Path(tmp)
        write_twin(folder, args.bits)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        requests = 2 * int(args.rate * args.duration) + 100  # a challenge and a contribution each
        command = [sys.executable, "-c", CIVICTWIN_CLI, "serve", str(folder), "--port", str(port),
                   "--burst", str(requests), "--rate-limit", str(2 * args.rate)]  # fmt: skip
        with running(command, f"{base}/conformance"):
            accepted, refused, elapsed, latencies = asyncio.run(_drive(base, args.rate, args.duration))
    p50, p95, p99 = (percentile(latencies, q) for q in (50, 95, 99))
    per_second = accepted / elapsed
    verdict = "meets" if per_second >= TARGET_RATE * 0.99 and p95 < TARGET_P95_MS else "misses"
    print(f"| contributions sent at {args.rate:g}/s for {args.duration:g} s, one worker, proof of work {args.bits} bits "
          f"| {accepted} accepted, {refused} not | {per_second:.0f}/s | {p50:.1f} ms | {p95:.1f} ms | {p99:.1f} ms "
          f"| ≥ {TARGET_RATE:g}/s, p95 < {TARGET_P95_MS:g} ms ({verdict}) |")  # fmt: skip


if __name__ == "__main__":
    main()
