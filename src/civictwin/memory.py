"""The build's memory budget (``[build] memory_mb``), divided between the parts of a build that hold data.

DuckDB caps its own working memory and spills beyond it to files in a temporary folder; Python's
frames do not, so the steps that would hold a whole table at once (the road network) work in
spatial partitions instead, as many as the budget needs. The shares below are assumptions chosen
so that the parts that are alive at the same time add up to the budget; the bytes a road costs
while the network is built were measured (BENCHMARKS.md, "Region-sized twins").
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from civictwin.config import TwinConfig

READER_SHARE = 0.5
"""Share of the budget for the OSM reader's DuckDB (decoding and assembling), which is closed before
the model steps start."""
STORE_SHARE = 0.25
"""Share for the store's own DuckDB connection while the build writes it (its buffer cache)."""
PARTITION_SHARE = 0.25
"""Share for one partition of the road network while it is split into edges: a quarter, since the
partitions are split beside the buildings and zones steps, whose frames are not capped (at 32×32 a
half let the build peak at 4.4 GB of its 4 GB budget while the zones were made)."""
NETWORK_BYTES_PER_ROAD = 4000
"""Peak bytes one road (an OSM way of the ``roads`` layer) costs while the network is built from it:
its frame, vertices, directed edges with their geometries and strings, and their Arrow copy for
the store. Measured on the 16×16 tiled Helsinki extract: the network step's peak above the build's
resident memory before it, divided by the roads (BENCHMARKS.md, "Region-sized twins"), rounded up."""


@dataclass(frozen=True)
class BuildMemory:
    """How much memory (MB) a build may use, and where and how much it may spill."""

    budget_mb: int
    temp_dir: Path
    spill_mb: int | None = None

    @classmethod
    def of(cls, config: TwinConfig) -> BuildMemory:
        """The ``[build]`` settings of ``config`` (the temporary folder resolved against the twin's)."""
        settings = config.build
        temp_dir = config.resolve(settings.temp_dir) if settings.temp_dir else Path(tempfile.gettempdir())
        return cls(budget_mb=settings.memory_mb, temp_dir=temp_dir, spill_mb=settings.spill_mb)

    def share_mb(self, share: float) -> int:
        """``share`` of the budget in whole MB (at least 32: DuckDB needs some to work at all)."""
        return max(32, int(self.budget_mb * share))

    def network_partitions(self, roads: int) -> int:
        """How many spatial partitions the network of ``roads`` roads needs to fit its share (≥ 1)."""
        per_partition = self.share_mb(PARTITION_SHARE) * 1024 * 1024 / NETWORK_BYTES_PER_ROAD
        return max(1, math.ceil(roads / per_partition))

    @contextmanager
    def spill_folder(self) -> Iterator[Path]:
        """A new folder of its own under :attr:`temp_dir` for one DuckDB's spilled memory, removed after."""
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="civictwin-spill-", dir=self.temp_dir) as folder:
            yield Path(folder)


def grid_cells(
    bounds: tuple[float, float, float, float], count: int
) -> list[tuple[float, float, float, float]]:
    """``count`` or a few more half-open cells in a square-ish grid over ``bounds`` that tile the plane.

    The outer cells reach to infinity, so every point, on a border or outside ``bounds``, lies in
    exactly one cell (``[xmin, xmax) × [ymin, ymax)``).
    """
    xmin, ymin, xmax, ymax = bounds
    width, height = max(xmax - xmin, 1e-9), max(ymax - ymin, 1e-9)
    columns = max(1, round(math.sqrt(count * width / height)))
    rows = max(1, math.ceil(count / columns))
    xs = [xmin + width * i / columns for i in range(1, columns)]
    ys = [ymin + height * j / rows for j in range(1, rows)]
    x_edges = [-math.inf, *xs, math.inf]
    y_edges = [-math.inf, *ys, math.inf]
    return [
        (x_edges[i], y_edges[j], x_edges[i + 1], y_edges[j + 1]) for j in range(rows) for i in range(columns)
    ]
