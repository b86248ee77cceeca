"""Time to the consultation page's first full render on the demo twin in headless Chromium, next to
the viewer's map page, in one run against one server.

"First full render" of the consultation page: the server-rendered text is in place and the map has
had its first ``idle`` event with the plan's changes and the context tiles drawn (the page then sets
``body[data-consult-state=ready]`` and ``window.civictwin.readyAtMs``, milliseconds since navigation
started); the viewer's is its map's first ``idle`` with every layer loaded (bench_viewer.py). Each
page load uses a fresh browser context (empty HTTP cache), alternating the two pages.

Without ``--comparison`` the demo gets a comparison written by hand in the layout of
``civictwin compare``: every street edge of the demo with a made-up change (seeded), so the map
carries as many features as a real traffic comparison of the demo; ``--twin DIR --comparison ID``
times a comparison a real ``civictwin compare`` wrote instead. Prints markdown rows for
BENCHMARKS.md; the target is under 1 s.

    .venv/bin/python benchmarks/bench_consultation.py --runs 5
    .venv/bin/python benchmarks/bench_consultation.py --twin demo-twin --comparison baseline-vs-zone30 --runs 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from bench_viewer import CHROMIUM, CHROMIUM_ARGS, serve

TARGET_S = 1.0
COMPARISON_ID = "bench-consultation"


def write_comparison(twin_dir: Path) -> str:
    """A complete comparison of every street edge of the twin (made-up, seeded changes); its id."""
    import geopandas as gpd

    from civictwin.compare.layers import read_layers
    from civictwin.engines.base import TwinContext
    from civictwin.geometry import WGS84

    edges = read_layers(TwinContext.load(twin_dir), ["network_edges"]).frames["network_edges"].to_crs(WGS84)
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 500, len(edges)).round()
    diff = rng.normal(0, 40, len(edges)).round()
    folder = twin_dir / "runs" / COMPARISON_ID
    (folder / "tables" / "traffic.edges").mkdir(parents=True, exist_ok=True)
    frame = gpd.GeoDataFrame(
        {"edge_id": edges["edge_id"].astype(str), "name": edges.get("name"), "vehicles_base": base,
         "vehicles_plan": base + diff, "vehicles_diff": diff, "vehicles_real": np.abs(diff) > 30},
        geometry=edges.geometry.to_numpy(), crs=WGS84,
    )  # fmt: skip
    frame.to_parquet(folder / "tables" / "traffic.edges" / "diff_plan.parquet")
    kpis = [
        {"engine": "traffic", "kpi": "share_car", "unit": "share", "label": "Car share of trips", "headline": True,
         "scenario": s, "mean": m, "ci_low": m - 0.007, "ci_high": m + 0.007, "n": 5}
        for s, m in (("baseline", 0.186), ("plan", 0.162))
    ]  # fmt: skip
    record = {
        "id": COMPARISON_ID, "created": "2026-12-01T00:00:00Z", "baseline": "baseline", "plans": ["plan"],
        "question": "Benchmark: what changes with the plan?", "sources": ["network_edges"],
        "tables": [{"id": "traffic.edges", "engine": "traffic", "name": "edges", "label": "Street edges",
                    "key": ["edge_id"], "layer": "network_edges", "values": [{"column": "vehicles", "unit": "vehicles"}]}],
        "kpis": kpis,
        "differences": [{"kpi": "share_car", "plan": "plan", "mean": -0.024, "ci_low": -0.031, "ci_high": -0.017,
                         "distinguishable": True, "words": ""}],
        "summary": ["A made-up comparison for the benchmark."],
    }  # fmt: skip
    (folder / "comparison.json").write_text(json.dumps(record))
    (folder / "manifest.json").write_text(json.dumps({"seeds": [1, 2, 3, 4, 5]}))
    (folder / "report.html").write_text("<!doctype html><title>report</title>")
    (folder / "complete").touch()
    return COMPARISON_ID


def measure(base_url: str, comparison: str, runs: int, viewport: tuple[int, int]) -> dict[str, list[float]]:
    """Seconds from navigation start to the first full render of each page, one value per load."""
    from playwright.sync_api import sync_playwright

    pages = {
        "consultation": (f"{base_url}/consultations/{comparison}", "body[data-consult-state=ready]"),
        "viewer": (f"{base_url}/viewer/", "body[data-map-state=ready]"),
    }
    seconds: dict[str, list[float]] = {name: [] for name in pages}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for _ in range(runs):
                for name, (url, selector) in pages.items():
                    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
                    page = context.new_page()
                    page.goto(url)
                    page.wait_for_selector(selector, state="attached", timeout=60_000)
                    seconds[name].append(float(page.evaluate("window.civictwin.readyAtMs")) / 1000)
                    context.close()
        finally:
            browser.close()
    return seconds


def _row(name: str, seconds: list[float], viewport: tuple[int, int], target: str) -> str:
    return (
        f"| {name} first full render, demo twin, headless Chromium {viewport[0]}×{viewport[1]}, localhost "
        f"| {len(seconds)} | {statistics.median(seconds):.2f} s | {min(seconds):.2f} s | {max(seconds):.2f} s "
        f"| {target} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="page loads of each page (default 5)")
    parser.add_argument("--twin", type=Path, help="a built twin directory (default: build the demo)")
    parser.add_argument("--comparison", help="a complete comparison of --twin (default: write one by hand)")
    parser.add_argument("--viewport", default="1280x800", help="browser window, WxH (default 1280x800)")
    args = parser.parse_args(argv)
    if not CHROMIUM.is_file():
        print("skipped: /usr/bin/chromium is missing (apt-get install chromium)", file=sys.stderr)
        return 1
    from civictwin.api.viewer import BUILD_HINT, STATIC_DIR, viewer_built

    if not viewer_built() or not (STATIC_DIR / "consult.js").is_file():
        print(f"skipped: the viewer is not built ({BUILD_HINT})", file=sys.stderr)
        return 1
    if args.comparison and args.twin is None:
        parser.error("--comparison needs --twin")
    width, height = (int(v) for v in args.viewport.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="bench-consultation-") as scratch:
        twin_dir: Path = args.twin or _demo(Path(scratch) / "demo")
        comparison = args.comparison or write_comparison(twin_dir)
        with serve(twin_dir) as base_url:
            seconds = measure(base_url, comparison, args.runs, (width, height))
    median = statistics.median(seconds["consultation"])
    verdict = "meets" if median < TARGET_S else "misses"
    print("| benchmark | runs | median | min | max | target |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(
        _row("consultation page", seconds["consultation"], (width, height), f"< {TARGET_S:.0f} s ({verdict})")
    )
    print(_row("viewer map page (peer)", seconds["viewer"], (width, height), "—"))
    return 0


def _demo(folder: Path) -> Path:
    from civictwin.demo import build_demo

    build_demo(folder)
    return folder


if __name__ == "__main__":
    raise SystemExit(main())
