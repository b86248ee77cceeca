"""Tiled extracts (``../shared/tools/tile_osm.py``) are one street network: the car network the traffic
engine drives on spans every tile, not one.

A hand-made extract of a 3 × 3 grid of two-way residential streets (12 ways of one block each, 24
directed car edges, all strongly connected) is tiled 2 × 2 and built into a twin. With the tiler's
joining roads (two per pair of neighbouring tiles, each two-way) every car edge of the four copies and
of the joins is in the largest strongly connected car network; with ``--links 0`` only one copy's 24.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import osmium
import pytest
from osmium.osm.mutable import Node, Way

from civictwin.build import build_twin
from civictwin.config import load_config
from civictwin.engines.traffic.edits import apply_interventions
from civictwin.engines.traffic.inputs import load_twin
from civictwin.scenarios.spec import Scenario

TILER = Path(__file__).resolve().parents[4] / "shared" / "tools" / "tile_osm.py"
pytestmark = pytest.mark.skipif(not TILER.is_file(), reason=f"the tiler {TILER} is absent")

WEST, SOUTH, STEP = 24.94, 60.17, 0.002  # the grid's south-west node and its spacing (degrees)
SIDE = 3  # nodes per side
TILES = 2
BLOCK_EDGES = 2 * 2 * SIDE * (SIDE - 1)  # 12 two-way streets of one block: 24 directed car edges


def _write_grid(path: Path) -> None:
    """Nodes ``1 + row·SIDE + col``; a residential street between every pair of neighbouring nodes."""
    writer = osmium.SimpleWriter(str(path), overwrite=True)
    for row in range(SIDE):
        for col in range(SIDE):
            location = osmium.osm.Location(WEST + col * STEP, SOUTH + row * STEP)
            writer.add_node(Node(id=1 + row * SIDE + col, location=location, version=1))
    way_id = 100
    for row in range(SIDE):
        for col in range(SIDE):
            here = 1 + row * SIDE + col
            for there, ok in ((here + 1, col + 1 < SIDE), (here + SIDE, row + 1 < SIDE)):
                if ok:
                    tags = {"highway": "residential", "name": f"street {way_id}"}
                    writer.add_way(Way(id=way_id, nodes=[here, there], tags=tags, version=1))
                    way_id += 1
    writer.close()


def _tiled_twin(folder: Path, links: int) -> Path:
    """The grid tiled TILES × TILES with ``links`` joining roads per neighbouring pair, built into a twin."""
    folder.mkdir()
    grid, tiled = folder / "grid.osm.pbf", folder / "tiled.osm.pbf"
    _write_grid(grid)
    command = [sys.executable, str(TILER), str(grid), str(tiled), "--n", str(TILES), "--links", str(links)]
    subprocess.run(command, check=True, capture_output=True)
    extent = (SIDE - 1) * STEP * 1.02 * TILES  # the tiler shifts each copy by the extent × 1.02
    bbox = [WEST - 0.001, SOUTH - 0.001, WEST + extent + 0.001, SOUTH + extent + 0.001]
    (folder / "twin.toml").write_text(
        f'[twin]\nname = "Tiled grid"\ncrs = "EPSG:32635"\n[area]\nbbox = {bbox}\n'
        '[[sources]]\nname = "osm"\nkind = "osm"\npath = "tiled.osm.pbf"\nlicence = "ODbL-1.0"\n'
        'publisher = "hand-made"\nsteward = "tests"\n',
        encoding="utf-8",
    )
    build_twin(load_config(folder))
    return folder


def _connected(twin: Path) -> tuple[int, int]:
    """(car edges in the largest strongly connected car network, all car edges) as the engine sees them."""
    inputs = load_twin(twin)
    modified = apply_interventions(
        inputs.edges, Scenario.baseline_scenario(), crs=inputs.crs, zones=inputs.zones
    )
    return len(modified.car_edges), int(inputs.edges["car"].astype(bool).sum())


def test_joined_tiles_are_one_car_network(tmp_path: Path) -> None:
    joins = 2 * TILES * (TILES - 1) * 2  # pairs of neighbouring tiles (4) × 2 roads, each two-way
    expected = TILES * TILES * BLOCK_EDGES + 2 * joins
    assert _connected(_tiled_twin(tmp_path / "joined", links=2)) == (expected, expected)


def test_unjoined_tiles_leave_three_quarters_of_the_car_network_out(tmp_path: Path) -> None:
    connected, cars = _connected(_tiled_twin(tmp_path / "apart", links=0))
    assert (connected, cars) == (BLOCK_EDGES, TILES * TILES * BLOCK_EDGES)
