"""Operations benchmark: the cost of the chained, rotating audit log, and graceful shutdown under load.

1. Audit cost: ``items?limit=100`` throughput at N concurrent clients (default 50), served by the real
   serving path (:func:`civictwin.api.serving.run_server`: uvicorn, the edge protocol, every
   middleware) once with the audit log on — hash chaining, and rotation by size every 1 MiB so it
   rotates many times during the run — and once with the audit log replaced by a no-op (the only
   change), alternating off/on for several rounds in one run. Target: under 5% fewer requests/s.
2. Graceful shutdown: the same load with auditing on, SIGTERM after a few seconds. Measured: time
   from SIGTERM to the process's exit, every response the clients got, and — from the audit log —
   whether every request the server began handling reached its client. Target: in-flight requests
   complete within 5 s, none failed.

    .venv/bin/python benchmarks/bench_ops.py demo-twin --layer buildings --concurrency 50 --duration 15 --rounds 3

Prints markdown tables (results go into BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
from bench_api import free_port, load, percentile

LAUNCH = "serve"


def serve(twin: Path, port: int, audit: bool) -> None:
    """Run the server in this process (the real path), with the audit log on or a no-op instead."""
    from civictwin.api.app import create_app
    from civictwin.api.serving import run_server
    from civictwin.api.settings import ServerSettings
    from civictwin.cli.serve import server_settings
    from civictwin.governance.chain import RotationPolicy

    settings: ServerSettings = server_settings(twin, port=port, rate_per_second=1e9, rate_burst=10**9)
    settings = replace(settings, trusted_hosts=("*",), audit_rotation=RotationPolicy(max_bytes=1_048_576))
    app = create_app(twin, settings=settings)
    if not audit:
        for middleware in app.user_middleware:
            if "audit" in middleware.kwargs:
                middleware.kwargs["audit"] = _NoAudit(app.state.audit)
    run_server(app, settings)


class _NoAudit:
    """The audit log's interface, writing nothing (the benchmark's "auditing off")."""

    def __init__(self, real: object) -> None:
        self.pseudonymise = real.pseudonymise  # type: ignore[attr-defined]

    def record(self, **fields: object) -> None:
        """Write nothing."""


def start(twin: Path, audit: bool) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    here = Path(__file__).resolve().parent
    process = subprocess.Popen(
        [sys.executable, str(here / "bench_ops.py"), LAUNCH, str(twin), str(port), "on" if audit else "off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            httpx.get(base + "/health/live", timeout=2)
            return process, base
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit("server did not start") from None
            time.sleep(0.3)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=300)


def audit_cost(twin: Path, layer: str, concurrency: int, seconds: float, rounds: int) -> None:
    rates: dict[str, list[float]] = {"off": [], "on": []}
    rows = []
    for number in range(rounds):
        for mode in ("off", "on"):
            process, base = start(twin, audit=mode == "on")
            try:
                result = load(f"{base}/collections/{layer}/items?limit=100", concurrency, seconds)
            finally:
                stop(process)
            rates[mode].append(result.rate)
            rows.append(
                f"| {number + 1} | audit {mode} | {result.rate:.1f} | {statistics.median(result.latencies_ms):.1f} | "
                f"{percentile(result.latencies_ms, 99):.1f} | {result.requests} | {result.errors} |"
            )
    print("| round | server | requests/s | p50 ms | p99 ms | requests | errors |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    print(f"\nmedian requests/s: audit off {off:.1f}, audit on {on:.1f}: cost {100 * (off - on) / off:.1f}%")


async def _shutdown_load(
    base: str, url: str, concurrency: int, stop_after: float, process: subprocess.Popen[bytes]
) -> dict[str, float]:
    statuses: list[int] = []
    refused = 0
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def worker() -> None:
            nonlocal refused
            while True:
                try:
                    statuses.append((await client.get(url)).status_code)
                except httpx.TransportError:
                    refused += (
                        1  # not accepted: the server had stopped listening or closed the idle connection
                    )
                    return

        workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
        await asyncio.sleep(stop_after)
        process.send_signal(signal.SIGTERM)
        sent = time.perf_counter()
        while process.poll() is None:
            await asyncio.sleep(0.01)
        exit_s = time.perf_counter() - sent
        await asyncio.gather(*workers)
    return {"exit_s": exit_s, "ok": statuses.count(200), "failed": len(statuses) - statuses.count(200),
            "refused": refused}  # fmt: skip


def graceful_shutdown(twin: Path, layer: str, concurrency: int) -> None:
    from civictwin.api.app import resolve_store
    from civictwin.governance.audit import audit_path, read_audit

    store, _ = resolve_store(twin)
    before = len(read_audit(audit_path(store)))
    process, base = start(twin, audit=True)
    url = f"{base}/collections/{layer}/items?limit=100"
    result = asyncio.run(_shutdown_load(base, url, concurrency, 5.0, process))
    handled = [e for e in read_audit(audit_path(store))[before:] if e.path.endswith("/items")]
    lost = len(handled) - int(result["ok"]) - int(result["failed"])
    print(
        "| SIGTERM → exit (s) | responses 200 | responses failed | handled by server, never answered | not accepted (after SIGTERM) | exit code |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    print(
        f"| {result['exit_s']:.2f} | {result['ok']:.0f} | {result['failed']:.0f} | {lost} | {result['refused']:.0f} | {process.returncode} |"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == LAUNCH:
        serve(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "on")
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("twin", type=Path)
    parser.add_argument("--layer", default="buildings")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of load per server and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n")
    audit_cost(args.twin, args.layer, args.concurrency, args.duration, args.rounds)
    print()
    graceful_shutdown(args.twin, args.layer, args.concurrency)


if __name__ == "__main__":
    main()
