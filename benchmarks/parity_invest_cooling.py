"""The heat engine's Urban Cooling step against natcap-invest's own model, on the same grids.

civictwin expresses InVEST's Urban Cooling model ("factors" method) on numpy arrays
(``civictwin.engines.heat.cooling``) because natcap-invest cannot be part of ``make test`` (its GDAL
bindings and pygeoprocessing build from source: docs/methods-heat.md). This script installs
natcap-invest into a side environment once and runs both on one land-cover grid, cell by cell:

    .venv/bin/python benchmarks/parity_invest_cooling.py --setup-peer   # once, several minutes, root
    .venv/bin/python benchmarks/parity_invest_cooling.py

The grid (``--size`` cells of ``--cell`` metres, EPSG:3067) holds paved ground, asphalt, buildings, a
3 ha wooded park (over InVEST's 2 ha threshold), a 0.5 ha grass one (under it), a row of street trees and a
pond; the biophysical table takes the heat engine's own albedo and Kc per class and shade 1 under
canopy. InVEST reads it from GeoTIFFs with a constant ET0 and an AOI covering the grid; civictwin's
function gets the same values as arrays. Printed: the largest and the mean absolute difference of
CC, HM, T_air,nomix and T_air, and the cells that differ by more than ``--tolerance``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from civictwin.engines.heat.cooling import CoolingParameters, CoolingResult, urban_cooling
from civictwin.engines.heat.params import ALBEDO, KC_BARE_SOIL, KC_WATER, UNCERTAIN
from civictwin.engines.heat.rasters import Cover

ROOT = Path(__file__).resolve().parents[1]
PEER_VENV = ROOT / "benchmarks" / ".peer-venv-invest"
CRS = "EPSG:3067"
ORIGIN = (385_000.0, 6_672_000.0)
CENTRAL = {p.name: p.central for p in UNCERTAIN}
TREE = 9  # a land-cover code of its own for canopy over grass (shade 1)
KC = {Cover.PAVED: CENTRAL["kc_sealed"], Cover.ASPHALT: CENTRAL["kc_sealed"],
      Cover.BUILDING: CENTRAL["kc_sealed"], Cover.GRASS: CENTRAL["kc_grass"], Cover.WATER: KC_WATER,
      Cover.BARE_SOIL: KC_BARE_SOIL, TREE: CENTRAL["kc_tree"]}  # fmt: skip
SETUP_STEPS = (
    # GDAL's bindings build against Debian's libgdal-dev (the version gdal-config reports);
    # pygeoprocessing 2.4.10's Cython sources compile with Cython 3.1 (3.0 and 3.2+ reject
    # routing.pyx); natcap-invest's build calls pybabel.
    ["pip", "install", "--quiet", "--upgrade", "pip", "wheel", "setuptools", "setuptools_scm"],
    ["pip", "install", "--quiet", "numpy<2.3", "cython==3.1.8", "babel"],
    ["pip", "install", "--quiet", "--no-build-isolation", "gdal=={gdal}"],
    ["pip", "install", "--quiet", "--no-build-isolation", "pygeoprocessing"],
    ["pip", "install", "--quiet", "--no-build-isolation", "natcap.invest"],
)

INVEST_DRIVER = """
import json, sys, logging
logging.disable(logging.INFO)
from natcap.invest import urban_cooling_model
args = json.loads(sys.argv[1])
urban_cooling_model.execute(args)
"""


def main() -> None:
    """Set up the peer, or run the comparison and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup-peer", action="store_true", help="install natcap-invest beside")
    parser.add_argument("--size", type=int, default=300, help="cells per side")
    parser.add_argument("--cell", type=float, default=2.0, help="cell size, metres")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="°C (and index units)")
    parser.add_argument("--cooling-distance", type=float, default=CENTRAL["cooling_distance_m"], help="m")
    parser.add_argument("--blending-distance", type=float, default=CENTRAL["blending_distance_m"], help="m")
    args = parser.parse_args()
    if args.setup_peer:
        setup_peer()
        return
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        raise SystemExit("no natcap-invest yet: run with --setup-peer first")
    cover = land_cover(args.size, args.cell)
    params = CoolingParameters(
        t_ref_c=22.0,
        uhi_max_c=CENTRAL["uhi_max_c"],
        cooling_distance_m=args.cooling_distance,
        blending_distance_m=args.blending_distance,
    )
    ours = urban_cooling(
        shade=(cover == TREE).astype(np.float64),
        albedo=_lookup(cover, albedo_table()),
        kc=_lookup(cover, KC),
        green_area=np.isin(cover, [Cover.GRASS, TREE]),
        cell_m=args.cell,
        params=params,
    )
    with tempfile.TemporaryDirectory(prefix="parity-invest-") as scratch:
        theirs = run_invest(python, Path(scratch), cover, args.cell, params)
    report(ours, theirs, args)


def albedo_table() -> dict[int, float]:
    """Albedo per code: the heat engine's per class, canopy its central sampled value."""
    table = {int(code): value for code, value in ALBEDO.items()}
    table[TREE] = CENTRAL["albedo_canopy"]
    return table


def land_cover(size: int, cell_m: float) -> np.ndarray:
    """The test grid: paved with an asphalt street, buildings, a wood, a lawn, street trees and a pond."""
    cover = np.full((size, size), int(Cover.PAVED), dtype=np.int16)

    def cells(metres: float) -> int:
        return round(metres / cell_m)

    cover[:, cells(280) : cells(300)] = Cover.ASPHALT
    for row in range(cells(20), size - cells(40), cells(60)):
        cover[row : row + cells(30), cells(20) : cells(100)] = Cover.BUILDING
    big = cells(float(np.sqrt(30_000)))  # 3 ha
    cover[cells(60) : cells(60) + big, cells(360) : cells(360) + big] = TREE
    small = cells(float(np.sqrt(5_000)))  # 0.5 ha
    cover[cells(450) : cells(450) + small, cells(150) : cells(150) + small] = Cover.GRASS
    cover[::6, cells(272) : cells(278)] = TREE
    cover[cells(500) : cells(540), cells(420) : cells(480)] = Cover.WATER
    return cover


def _lookup(cover: np.ndarray, table: dict[int, float]) -> np.ndarray:
    values = np.zeros(cover.shape, dtype=np.float64)
    for code, value in table.items():
        values[cover == code] = value
    return values


def run_invest(
    python: Path, folder: Path, cover: np.ndarray, cell_m: float, params: CoolingParameters
) -> dict[str, np.ndarray]:
    """natcap-invest's Urban Cooling on the same grid; its CC, HM, T_air,nomix and T_air grids."""
    transform = from_origin(ORIGIN[0], ORIGIN[1] + cover.shape[0] * cell_m, cell_m, cell_m)
    profile = {"driver": "GTiff", "height": cover.shape[0], "width": cover.shape[1], "count": 1,
               "crs": CRS, "transform": transform}  # fmt: skip
    lulc, et0 = folder / "lulc.tif", folder / "et0.tif"
    with rasterio.open(lulc, "w", dtype="int16", nodata=-1, **profile) as out:
        out.write(cover, 1)
    with rasterio.open(et0, "w", dtype="float32", nodata=-1.0, **profile) as out:
        out.write(np.full(cover.shape, 5.0, dtype=np.float32), 1)
    aoi = folder / "aoi.geojson"
    x0, y0 = ORIGIN
    x1, y1 = x0 + cover.shape[1] * cell_m, y0 + cover.shape[0] * cell_m
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    aoi.write_text(json.dumps({
        "type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3067"}},
        "features": [{"type": "Feature", "properties": {"id": 1}, "geometry": {"type": "Polygon", "coordinates": [ring]}}],
    }))  # fmt: skip
    table = folder / "biophysical.csv"
    albedo = albedo_table()
    lines = ["lucode,kc,green_area,shade,albedo"]
    for code in sorted(albedo):
        green = int(code in (Cover.GRASS, TREE))
        lines.append(f"{code},{KC[code]},{green},{int(code == TREE)},{albedo[code]}")
    table.write_text("\n".join(lines) + "\n")
    workspace = folder / "workspace"
    invest_args = {
        "workspace_dir": str(workspace), "results_suffix": "", "n_workers": -1,
        "lulc_raster_path": str(lulc), "ref_eto_raster_path": str(et0), "aoi_vector_path": str(aoi),
        "biophysical_table_path": str(table), "t_ref": params.t_ref_c, "uhi_max": params.uhi_max_c,
        "t_air_average_radius": params.blending_distance_m,
        "green_area_cooling_distance": params.cooling_distance_m, "cc_method": "factors",
        "cc_weight_shade": params.weight_shade, "cc_weight_albedo": params.weight_albedo,
        "cc_weight_eti": params.weight_eti, "do_energy_valuation": False, "do_productivity_valuation": False,
    }  # fmt: skip
    subprocess.run([str(python), "-c", INVEST_DRIVER, json.dumps(invest_args)], check=True)
    grids = {}
    for name, path in (("cc", "cc.tif"), ("hm", "hm.tif"),
                       ("t_air_nomix", "intermediate/T_air_nomix.tif"), ("t_air", "T_air.tif")):  # fmt: skip
        with rasterio.open(workspace / path) as source:
            grids[name] = source.read(1).astype(np.float64)
    return grids


def report(ours: CoolingResult, theirs: dict[str, np.ndarray], args: argparse.Namespace) -> None:
    """A markdown table of the differences per grid."""
    mine = {"cc": ours.cc, "hm": ours.hm, "t_air_nomix": ours.t_air_nomix_c, "t_air": ours.t_air_c}
    park = int((ours.hm > ours.cc).sum()), int((theirs["hm"] > theirs["cc"] + 1e-6).sum())
    print(
        f"d_cool {args.cooling_distance:g} m, d_blend {args.blending_distance:g} m: a park's cooling "
        f"raises HM above CC in {park[0]} cells (civictwin) and {park[1]} (natcap-invest)\n"
    )
    print(
        f"| grid ({args.size}×{args.size} cells of {args.cell:g} m) | civictwin mean | natcap-invest mean "
        f"| largest abs. difference | mean abs. difference | cells differing by > {args.tolerance:g} |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, grid in mine.items():
        other = theirs[name]
        if other.shape != grid.shape:
            print(f"| {name} | shapes differ: {grid.shape} vs {other.shape} | | | | |")
            continue
        diff = np.abs(grid - other)
        print(
            f"| {name} | {grid.mean():.4f} | {other.mean():.4f} | {diff.max():.5f} | {diff.mean():.6f} "
            f"| {int((diff > args.tolerance).sum())} of {diff.size} |"
        )


def setup_peer() -> None:
    """Create ``benchmarks/.peer-venv-invest`` with GDAL's bindings, pygeoprocessing and natcap-invest."""
    if shutil.which("gdal-config") is None:
        if os.geteuid() != 0:
            raise SystemExit("needs Debian's libgdal-dev (apt-get install libgdal-dev, as root)")
        subprocess.run(["apt-get", "install", "-y", "-q", "libgdal-dev"], check=True)
    gdal = subprocess.run(
        ["gdal-config", "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    env = {**os.environ, "PATH": f"{PEER_VENV / 'bin'}:{os.environ['PATH']}"}
    for step in SETUP_STEPS:
        command = [str(PEER_VENV / "bin" / "python"), "-m", *[part.format(gdal=gdal) for part in step]]
        subprocess.run(command, check=True, env=env)
    print(f"natcap-invest installed in {PEER_VENV}")


if __name__ == "__main__":
    main()
