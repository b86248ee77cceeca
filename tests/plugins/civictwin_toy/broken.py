"""An engine that returns what it should not, one way per ``flaw``, for the ensemble's checks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from civictwin.engines.base import EngineResult, Kpi, TableSpec, TwinContext
from civictwin.scenarios.spec import Intervention, Scenario


@dataclass
class BrokenEngine:
    """``flaw``: ``no-table``, ``no-column``, ``repeated-keys``, ``repeated-kpi``, ``not-a-result``,
    ``prepare-fails`` or ``none`` (a correct result)."""

    flaw: str
    name: str = "broken"
    version: str = "1"
    reads: tuple[str, ...] = ()

    @property
    def intervention_types(self) -> Mapping[str, type[Intervention]]:
        return {}

    @property
    def tables(self) -> tuple[TableSpec, ...]:
        return (TableSpec("things", ("thing",), None, (("size", "m"),)),)

    def parameters(self, twin: TwinContext) -> Mapping[str, Any]:
        return {"flaw": self.flaw}

    def prepare(self, twin: TwinContext, scenario: Scenario, *, workdir: Path) -> str:
        if self.flaw == "prepare-fails":
            raise KeyError("no such column")
        return scenario.name

    def run(self, inputs: str, *, seed: int, workdir: Path) -> Any:
        things = pd.DataFrame({"thing": [1, 2], "size": [float(seed), 2.0], "geometry": [b"", b""]})
        kpis = (Kpi("size_m", "m", float(seed), "Size"),)
        if self.flaw == "not-a-result":
            return {"size_m": seed}
        if self.flaw == "no-table":
            return EngineResult(kpis=kpis, tables={})
        if self.flaw == "no-column":
            return EngineResult(kpis=kpis, tables={"things": things.drop(columns="size")})
        if self.flaw == "repeated-keys":
            return EngineResult(kpis=kpis, tables={"things": things.assign(thing=[1, 1])})
        if self.flaw == "repeated-kpi":
            return EngineResult(kpis=kpis * 2, tables={"things": things})
        return EngineResult(kpis=kpis, tables={"things": things})
