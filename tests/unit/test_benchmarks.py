"""The benchmark scripts still import against the package: a module or function renamed in ``src``
breaks a benchmark long before anyone runs it (bench_traffic once imported a pipeline module that the
engine seam had split up). Nothing here runs a benchmark; speed targets live in BENCHMARKS.md."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from civictwin.engines.traffic import run

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = sorted([*BENCHMARKS.glob("bench_*.py"), *BENCHMARKS.glob("parity_*.py")])


def load_script(path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import one benchmark script as a module, as running it would (its folder first on the path)."""
    monkeypatch.setattr(sys, "path", [str(BENCHMARKS), *sys.path])  # bench_ops imports bench_api
    name = f"benchmark_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # dataclasses look up their module while it loads
    spec.loader.exec_module(module)
    return module


def test_every_benchmark_is_found() -> None:
    assert len(SCRIPTS) >= 10
    assert BENCHMARKS / "bench_traffic.py" in SCRIPTS


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_benchmark_imports(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert callable(load_script(path, monkeypatch).main)


def test_bench_traffic_reads_its_sections_and_the_engine_parameters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = load_script(BENCHMARKS / "bench_traffic.py", monkeypatch)
    assert bench.SECTIONS == ("overhead", "seam", "speedup", "demo", "scaling", "bare", "growth")
    settings = bench.parse(["--only", "seam,overhead", "--scale", "0.5", "--iterations", "2", "--seeds", "3"])
    assert settings.sections == ("seam", "overhead")
    assert (settings.speedup_seeds, settings.demo_seeds) == (3, 3)
    params = settings.params(tmp_path, meso=True)  # no traffic.toml there: the defaults and these overrides
    assert (params.demand.scale, params.iterations, params.mesoscopic) == (0.5, 2, True)
    assert settings.params(tmp_path).mesoscopic is False
    with pytest.raises(SystemExit) as shown:
        bench.parse(["--help"])
    assert shown.value.code == 0
    assert "--only ONLY" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        bench.parse(["--only", "seem"])
    assert refused.value.code == 2
    assert "unknown section(s) seem" in capsys.readouterr().err


def test_bench_region_reads_its_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = load_script(BENCHMARKS / "bench_region.py", monkeypatch)
    assert bench.SECTIONS == ("city", "levels", "routing")
    settings = bench.parse(["--only", "city", "--tiles", "4", "--focus", "--scale", "0.5"])
    assert (settings.sections, settings.tiles, settings.focus, settings.scale) == (("city",), 4, True, 0.5)
    assert (settings.city_iterations, settings.iterations, settings.seeds) == (1, 3, 5)
    with pytest.raises(SystemExit) as refused:
        bench.parse(["--only", "town"])
    assert refused.value.code == 2
    routing = bench.parse(["--only", "routing", "--seeds", "2", "--iterations", "1"])
    assert (routing.sections, routing.seeds, routing.iterations) == (("routing",), 2, 1)


def test_bench_region_routes_meso_runs_by_astar_only_inside_its_switch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bench = load_script(BENCHMARKS / "bench_region.py", monkeypatch)
    assert run.MESO_OPTIONS["routing-algorithm"] == "CCH"
    with bench.meso_router("astar"):
        assert run.MESO_OPTIONS["routing-algorithm"] == "astar" and run.MESO_OPTIONS["mesosim"] == "true"
    assert run.MESO_OPTIONS["routing-algorithm"] == "CCH"


def test_bench_postgis_serving_gives_both_servers_the_same_mixes(monkeypatch: pytest.MonkeyPatch) -> None:
    """250 rows make 2 whole pages of 100: the pages mix asks each once per round (offsets 0 and 100),
    the first mix one path, and every bbox is a tenth of the extent wide, inside it; pygeoapi's paths
    are civictwin's with ``&f=json``."""
    bench = load_script(BENCHMARKS / "bench_postgis_serving.py", monkeypatch)
    extent = [24.0, 60.0, 25.0, 60.5]
    ours = {mix: bench.request_paths(mix, "b", 250, extent, suffix="") for mix in bench.MIXES}
    theirs = {mix: bench.request_paths(mix, "b", 250, extent, suffix="&f=json") for mix in bench.MIXES}
    assert theirs == {mix: [p + "&f=json" for p in paths] for mix, paths in ours.items()}
    assert ours["first"] == ["/collections/b/items?limit=100"]
    pages = ours["pages"]
    assert len(pages) == bench.PATHS_PER_MIX
    assert all(sorted(pages[i : i + 2]) == [f"/collections/b/items?limit=100&offset={o}" for o in (0, 100)]
               for i in range(0, len(pages), 2))  # fmt: skip
    for path in ours["bbox"][:50]:
        west, south, east, north = map(float, path.split("bbox=")[1].split(","))
        assert (east - west, north - south) == pytest.approx((0.1, 0.05), abs=2e-6)
        assert west >= 24.0 and east <= 25.0 and south >= 60.0 and north <= 60.5
    assert bench._cpu_requests("pages", pages) == 2 and bench._cpu_requests("bbox", ours["bbox"]) == 300


def test_the_network_step_timer_wraps_calls_that_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    """network_step.py times calls by name: a call renamed in ``src`` would otherwise fail only when run."""
    import civictwin.build_network
    from civictwin.store.duckdb import DuckDBStore

    bench = load_script(BENCHMARKS / "network_step.py", monkeypatch)
    assert all(callable(getattr(DuckDBStore, name)) for name in bench.STORE_CALLS)
    assert all(callable(getattr(civictwin.build_network, name)) for name in bench.NETWORK_CALLS)
