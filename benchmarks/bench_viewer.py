"""Time to the viewer's first full render of the demo twin in headless Chromium on localhost.

"First full render" is the map's first ``idle`` event with every tile of every layer loaded (the
viewer then sets ``body[data-map-state=ready]`` and ``window.civictwin.readyAtMs``, milliseconds since
navigation started). Each run uses a fresh browser context (empty HTTP cache) against the same
running server. Prints one markdown row for BENCHMARKS.md; the target is under 3 s.

With ``--lod2-mb M`` the twin is instead a real LoD2 model, ``../shared/data/citygml/district1_LoD2.gml``
(104 buildings) tiled eastwards to about M MB (``bench_city3d.write_citygml``), so the row also gives
the time until the LoD2 layer has drawn every building (``window.civictwin.lod2.drawnAtMs``) and the
size of ``GET /buildings/lod2.json``.

    .venv/bin/python benchmarks/bench_viewer.py --runs 5
    .venv/bin/python benchmarks/bench_viewer.py --twin demo-twin --runs 10
    .venv/bin/python benchmarks/bench_viewer.py --lod2-mb 8 --runs 5
"""

from __future__ import annotations

import argparse
import math
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


def measure(
    base_url: str, runs: int, viewport: tuple[int, int], *, lod2: bool = False
) -> list[tuple[float, float]]:
    """Seconds from navigation start to the first full render and (with ``lod2``) to the LoD2 layer's
    first frame (NaN without), one pair per run."""
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
                drawn = math.nan
                if lod2:
                    page.wait_for_selector("body[data-lod2-state=drawn]", state="attached", timeout=120_000)
                    drawn = float(page.evaluate("window.civictwin.lod2.drawnAtMs")) / 1000
                seconds.append((float(page.evaluate("window.civictwin.readyAtMs")) / 1000, drawn))
                context.close()
        finally:
            browser.close()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="page loads to time (default 5)")
    parser.add_argument("--twin", type=Path, help="a built twin directory (default: build the demo)")
    parser.add_argument("--viewport", default="1280x800", help="browser window, WxH (default 1280x800)")
    parser.add_argument(
        "--lod2-mb", type=float, help="build a twin of the real LoD2 district tiled to this size"
    )
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
        what = "demo twin"
        if args.lod2_mb:
            twin_dir, buildings = lod2_twin(Path(scratch) / "lod2", args.lod2_mb)
            what = f"{buildings} LoD2 buildings (district1 tiled)"
        elif twin_dir is None:
            from civictwin.demo import build_demo

            twin_dir = Path(scratch) / "demo"
            build_demo(twin_dir)
        with serve(twin_dir) as base_url:
            runs = measure(base_url, args.runs, (width, height), lod2=bool(args.lod2_mb))
            if args.lod2_mb:
                import httpx

                what += f", /buildings/lod2.json {len(httpx.get(f'{base_url}/buildings/lod2.json').content) / 1e6:.1f} MB"
    _print_rows([r[0] for r in runs], [r[1] for r in runs], what, (width, height))
    return 0


def _print_rows(first: list[float], drawn: list[float], what: str, viewport: tuple[int, int]) -> None:
    median = statistics.median(first)
    verdict = "meets" if median < TARGET_S else "misses"
    print("| benchmark | runs | median | min | max | target |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(
        f"| viewer first full render, {what}, headless Chromium {viewport[0]}×{viewport[1]}, localhost | {len(first)} "
        f"| {median:.2f} s | {min(first):.2f} s | {max(first):.2f} s | < {TARGET_S:.0f} s ({verdict}) |"
    )
    if all(math.isfinite(d) for d in drawn):
        print(
            f"| LoD2 layer drawn, {what} | {len(drawn)} | {statistics.median(drawn):.2f} s "
            f"| {min(drawn):.2f} s | {max(drawn):.2f} s | (none) |"
        )


def lod2_twin(folder: Path, target_mb: float) -> tuple[Path, int]:
    """A twin of the real LoD2 district tiled eastwards to about ``target_mb`` (no OSM, no DEM)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_city3d import CRS, SAMPLE, TILE_STEP_M, write_citygml
    from pyproj import Transformer

    from civictwin.build import build_twin
    from civictwin.config import parse_config

    folder.mkdir(parents=True)
    buildings = write_citygml(folder / "district.gml", target_mb)
    copies = math.ceil(buildings / 104)
    to_wgs84 = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    west, south = to_wgs84.transform(
        329_500.0, 5_651_100.0
    )  # the district's extent (SAMPLE's envelope) plus 80 m
    east, north = to_wgs84.transform(330_000.0 + copies * TILE_STEP_M, 5_651_450.0)
    source = {"licence": "see the sample", "publisher": str(SAMPLE.name), "steward": "benchmark"}
    config = parse_config(
        {"twin": {"name": "lod2 bench", "crs": CRS}, "area": {"bbox": [west, south, east, north]},
         "sources": [{"name": "district", "kind": "citygml", "path": "district.gml", **source}]},
        base_dir=folder,
    )  # fmt: skip
    build_twin(config)
    return config.store_path, buildings


if __name__ == "__main__":
    raise SystemExit(main())
