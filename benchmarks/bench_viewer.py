"""Time to the viewer's first full render of the demo twin in headless Chromium on localhost.

"First full render" is the map's first ``idle`` event with every tile of every layer loaded (the
viewer then sets ``body[data-map-state=ready]`` and ``window.civictwin.readyAtMs``, milliseconds since
navigation started). Each run uses a fresh browser context (empty HTTP cache) against the same
running server. Prints one markdown row for BENCHMARKS.md; the target is under 3 s.

    .venv/bin/python benchmarks/bench_viewer.py --runs 5
    .venv/bin/python benchmarks/bench_viewer.py --twin demo-twin --runs 10
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TARGET_S = 3.0


def _app(twin_dir: Path) -> Any:
    from civictwin.api.app import create_app

    return create_app(twin_dir)


@contextmanager
def serve(twin_dir: Path) -> Iterator[str]:
    """The real API server on a free loopback port, in a thread; yields its base URL."""
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(_app(twin_dir), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise SystemExit("the API server failed to start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def measure(base_url: str, runs: int, viewport: tuple[int, int]) -> list[float]:
    """Seconds from navigation start to the first full render, one value per run."""
    from playwright.sync_api import sync_playwright

    seconds = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for _ in range(runs):
                context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
                page = context.new_page()
                page.goto(f"{base_url}/viewer/")
                page.wait_for_selector("body[data-map-state=ready]", state="attached", timeout=60_000)
                seconds.append(float(page.evaluate("window.civictwin.readyAtMs")) / 1000)
                context.close()
        finally:
            browser.close()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="page loads to time (default 5)")
    parser.add_argument("--twin", type=Path, help="a built twin directory (default: build the demo)")
    parser.add_argument("--viewport", default="1280x800", help="browser window, WxH (default 1280x800)")
    args = parser.parse_args(argv)
    if not CHROMIUM.is_file():
        print("skipped: /usr/bin/chromium is missing (apt-get install chromium)", file=sys.stderr)
        return 1
    from civictwin.api.viewer import BUILD_HINT, viewer_built

    if not viewer_built():
        print(f"skipped: the viewer is not built ({BUILD_HINT})", file=sys.stderr)
        return 1
    width, height = (int(v) for v in args.viewport.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="bench-viewer-") as scratch:
        twin_dir = args.twin
        if twin_dir is None:
            from civictwin.demo import build_demo

            twin_dir = Path(scratch) / "demo"
            build_demo(twin_dir)
        with serve(twin_dir) as base_url:
            seconds = measure(base_url, args.runs, (width, height))
    median = statistics.median(seconds)
    verdict = "meets" if median < TARGET_S else "misses"
    print("| benchmark | runs | median | min | max | target |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(
        f"| viewer first full render, demo twin, headless Chromium {width}×{height}, localhost | {len(seconds)} "
        f"| {median:.2f} s | {min(seconds):.2f} s | {max(seconds):.2f} s | < {TARGET_S:.0f} s ({verdict}) |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
