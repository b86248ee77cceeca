"""The seam every simulation engine follows: inputs prepared from the model and a scenario, one run
per seed in its own process, outputs read back into a result of tidy tables.

Engines are plain functions behind this protocol so that orchestration (ensembles over seeds,
comparisons) can treat traffic, and later accessibility, energy or heat, the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, TypeVar

InputsT = TypeVar("InputsT", contravariant=True)
ResultT = TypeVar("ResultT", covariant=True)


class Engine(Protocol[InputsT, ResultT]):
    """Runs one seed of a simulation on prepared inputs, writing its files under ``workdir``.

    Implementations must be deterministic for a given seed and must raise
    :class:`~civictwin.errors.EngineError` (never return partial results) when the run fails.
    """

    name: str

    def run(self, inputs: InputsT, *, seed: int, workdir: Path) -> ResultT:
        """Simulate once with ``seed``; the result's tables are complete or an EngineError is raised."""
        ...
