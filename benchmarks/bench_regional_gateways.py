"""The regional model of gateway traffic (issue 11, part 2) at region size: what it costs to prepare.

The region is the demo extract tiled N × N (``../shared/tools/tile_osm.py``, neighbouring tiles joined
by roads), built into a twin; the area is one tile of it (column and row ``--tile``), built from the
same file, with ``[gateways] region`` naming the region twin. Each ``prepare_scenario`` of the
baseline is timed in one process: the first pays for the region's gravity matrix and the searches on
its roads, later ones reuse them. Prints one markdown row per prepare and the model's note.

    .venv/bin/python benchmarks/bench_regional_gateways.py --size 8 --tile 3 --inputs /tmp/region
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_build import extent, tiled, write_config

from civictwin.build import build_twin
from civictwin.config import load_config
from civictwin.demo import DEMO_BBOX
from civictwin.engines.traffic.gateways import GatewaySettings
from civictwin.engines.traffic.inputs import load_twin
from civictwin.engines.traffic.params import TrafficParams
from civictwin.engines.traffic.prepare import prepare_scenario
from civictwin.scenarios.spec import Scenario


def tile_bbox(n_tile: int) -> str:
    """The bbox of tile (``n_tile``, ``n_tile``) of the tiled extract, 50 m wider each side."""
    x0, y0, x1, y1 = DEMO_BBOX
    dx, dy = (x1 - x0) * 1.02, (y1 - y0) * 1.02  # the tiler's shift
    pad = 0.0005
    return (
        f"{x0 + n_tile * dx - pad},{y0 + n_tile * dy - pad},{x1 + n_tile * dx + pad},{y1 + n_tile * dy + pad}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=8, help="tiles per side of the region")
    parser.add_argument("--tile", type=int, default=3, help="column and row of the area's tile")
    parser.add_argument("--inputs", type=Path, default=Path(tempfile.gettempdir()) / "civictwin-tiles")
    parser.add_argument("--prepares", type=int, default=2)
    args = parser.parse_args()
    args.inputs.mkdir(parents=True, exist_ok=True)
    pbf = tiled(args.size, args.inputs)
    with tempfile.TemporaryDirectory() as tmp:
        region = write_config(Path(tmp) / "region", pbf, extent(args.size))
        area = write_config(Path(tmp) / "area", pbf, tile_bbox(args.tile))
        for twin in (region, area):
            build_twin(load_config(twin))
        inputs = load_twin(area)
        params = TrafficParams(gateways=GatewaySettings(enabled=True, region=str(region)))
        print("| prepare | seconds | peak MB |\n|---|---|---|")
        for number in range(1, args.prepares + 1):
            started = time.perf_counter()
            prepared = prepare_scenario(
                inputs, Scenario.baseline_scenario(), Path(tmp) / f"w{number}", params
            )
            seconds = time.perf_counter() - started
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"| {number} | {seconds:.1f} | {peak:.0f} |")
        assert prepared.gateways is not None
        regional = len(load_twin(region).zones), len(load_twin(region).edges)
        print(f"\nregion: {regional[0]} zones, {regional[1]} edges; area: {len(inputs.zones)} zones")
        print(*prepared.gateways.notes)


if __name__ == "__main__":
    main()
