"""The ``runs/`` folder of a twin: its layout and the records written there, defined once.

The ensemble writes seeds here, compare writes the comparison beside them, and the API and the
viewer read it back, all through the names and models below::

    <twin dir>/runs/<comparison id>/
        .lock                                   held while a run of this comparison is going
        seeds/<engine>/<scenario>/seed_<n>/     one seed: run.json (SeedRecord), <table>.parquet,
                                                and the ``complete`` marker, written last
        work/<engine>/<scenario>/               what the engine prepared for the scenario's seeds
        tables/<engine>.<table>/mean_<scenario>.parquet    per-key means over the seeds (WGS84)
        tables/<engine>.<table>/diff_<plan>.parquet        plan − baseline per key, 95% intervals
        comparison.json (ComparisonRecord), manifest.json, report.html (English) and report.<code>.html (sk, it), complete (written last)

Only a folder with its ``complete`` marker is finished; anything else is a run in progress or one that
was interrupted, and readers treat it as absent.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from civictwin.i18n import DEFAULT

RUNS_DIR = "runs"
SEEDS_DIR = "seeds"
WORK_DIR = "work"
TABLES_DIR = "tables"
COMPLETE = "complete"
LOCK_FILE = ".lock"
RUN_FILE = "run.json"
COMPARISON_FILE = "comparison.json"
MANIFEST_FILE = "manifest.json"
REPORT_FILE = "report.html"
"""The report in English (:data:`civictwin.i18n.DEFAULT`); each other language's is :func:`report_file`."""


def report_file(code: str) -> str:
    """The report's file name in language ``code``: ``report.html`` in English (the name links have
    always used), ``report.<code>.html`` in the others (``report.sk.html``)."""
    return REPORT_FILE if code == DEFAULT else f"report.{code}.html"


ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
"""Comparison ids, scenario names and table ids: one safe path segment (no ``..``, no ``/``)."""


def is_valid_id(name: str) -> bool:
    """Whether ``name`` can be one path segment under ``runs/`` (letters, digits, ``_ . -``, no ``..``)."""
    return bool(ID_PATTERN.match(name)) and ".." not in name


def comparison_dir(twin_dir: Path, comparison_id: str) -> Path:
    """``<twin dir>/runs/<comparison id>``."""
    return twin_dir / RUNS_DIR / comparison_id


def seed_dir(directory: Path, engine: str, scenario: str, seed: int) -> Path:
    """Where one engine's result of one scenario and seed lives in comparison ``directory``."""
    return directory / SEEDS_DIR / engine / scenario / f"seed_{seed}"


def work_dir(directory: Path, engine: str, scenario: str) -> Path:
    """Where an engine's prepared inputs for one scenario live (the traffic engine's SUMO network)."""
    return directory / WORK_DIR / engine / scenario


def table_id(engine: str, table: str) -> str:
    """How a table is named across engines: ``traffic.edges``."""
    return f"{engine}.{table}"


def table_mean_file(directory: Path, table: str, scenario: str) -> Path:
    """The per-key means of table ``table`` (a :func:`table_id`) for one scenario."""
    return directory / TABLES_DIR / table / f"mean_{scenario}.parquet"


def table_diff_file(directory: Path, table: str, plan: str) -> Path:
    """The per-key differences plan − baseline of table ``table`` (a :func:`table_id`)."""
    return directory / TABLES_DIR / table / f"diff_{plan}.parquet"


def _finite_or_none(value: Any) -> Any:
    """NaN and infinities (which JSON cannot carry) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


FiniteOrNone = Annotated[float | None, BeforeValidator(_finite_or_none)]
"""A number in ``comparison.json``: NaN and infinities are written and read as null."""


# ------------------------------------------------------------------------------------------ seeds


class SeedKpi(BaseModel):
    """One KPI of one seed as saved in ``run.json`` (NaN kept as NaN: nothing to measure)."""

    model_config = ConfigDict(frozen=True)

    name: str
    unit: str
    value: float
    label: str
    better: str = "neither"
    headline: bool = False


class SeedRecord(BaseModel):
    """``run.json`` of one seed: who made it from what, its KPIs, notes and details.

    ``fingerprint`` hashes everything that shapes the numbers (engine and version, parameters, the
    scenario's interventions for this engine, the twin's data); a saved seed is reused only when it
    matches. ``directory`` is where the record was read from (not saved). A seed whose simulation ran
    but failed the engine's quality check (``QualityCheckFailed``: a gridlocked network) is saved too,
    with the check's message as ``failure`` and no KPIs or tables: the failure is as deterministic as a
    result, so a rerun reuses it, and the comparison reports the scenario as not evaluated.
    """

    model_config = ConfigDict(frozen=True)

    engine: str
    engine_version: str
    scenario: str
    seed: int
    fingerprint: str
    kpis: list[SeedKpi]
    notes: list[str] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)
    tables: list[str] = Field(default_factory=list)
    wall_s: float
    worker: str = Field(
        default="",
        description="Where the seed ran: host name and process id on the local pool, host name and "
        "worker address on a Dask cluster (empty in records written before this was kept)",
    )
    failure: str = Field(
        default="",
        description="Why the seed has no results: the engine's quality check's one-line message "
        "(empty for a seed with results, and in records written before failed seeds were kept)",
    )
    directory: Path | None = Field(default=None, exclude=True)

    @property
    def failed(self) -> bool:
        """Whether the simulation failed the engine's quality check (no KPIs, no tables)."""
        return bool(self.failure)

    def kpi(self, name: str) -> float:
        """The value of KPI ``name`` (NaN when this seed does not have it)."""
        return next((k.value for k in self.kpis if k.name == name), math.nan)

    def table(self, name: str) -> pd.DataFrame:
        """One of the seed's tables, read from its folder."""
        if self.directory is None or name not in self.tables:
            raise KeyError(f"seed {self.seed} of '{self.scenario}' has no table '{name}'")
        return pd.read_parquet(self.directory / f"{name}.parquet")

    def to_json(self) -> str:
        """The ``run.json`` text (NaN written as NaN, so values read back bit for bit)."""
        return json.dumps(self.model_dump(mode="python"), indent=1, default=_plain)


def _plain(value: object) -> object:
    """numpy scalars (and anything with ``item()``) as Python numbers for JSON."""
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_seed(directory: Path) -> SeedRecord | None:
    """The seed saved in ``directory`` if it is complete and readable, else None."""
    if not (directory / COMPLETE).is_file():
        return None
    try:
        data = json.loads((directory / RUN_FILE).read_text(encoding="utf-8"))
        return SeedRecord.model_validate({**data, "directory": directory})
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------------- comparisons


class KpiRow(BaseModel):
    """One KPI of one scenario aggregated over the seeds: mean and 95% confidence interval."""

    model_config = ConfigDict(extra="allow")

    engine: str = ""
    kpi: str
    unit: str
    label: str = ""
    better: str = "neither"
    headline: bool = False
    scenario: str
    mean: FiniteOrNone
    ci_low: FiniteOrNone
    ci_high: FiniteOrNone
    n: int = Field(ge=0, description="Number of seeds (runs) aggregated")


class DifferenceRow(BaseModel):
    """A plan minus the baseline for one KPI, with its 95% interval and a verdict in words."""

    model_config = ConfigDict(extra="allow")

    engine: str = ""
    kpi: str
    plan: str
    mean: FiniteOrNone
    ci_low: FiniteOrNone
    ci_high: FiniteOrNone
    distinguishable: bool = Field(description="Whether the interval excludes zero (not within noise)")
    words: str
    relative: FiniteOrNone = None


class TableColumn(BaseModel):
    """A value column of a table and its unit."""

    column: str
    unit: str


class TableRecord(BaseModel):
    """A table of a comparison: which engine made it, its key, the twin layer it maps onto, its values.

    Per scenario the means over the seeds are in ``mean_<scenario>.parquet``; per plan the differences
    against the baseline in ``diff_<plan>.parquet`` with, per value column, ``<col>_base``,
    ``<col>_plan``, ``<col>_diff``, ``<col>_ci_low``, ``<col>_ci_high`` and ``<col>_real`` (the
    interval excludes zero). Both carry WGS84 geometry when the table can be mapped.
    """

    id: str
    engine: str
    name: str
    label: str = ""
    key: list[str]
    layer: str | None
    values: list[TableColumn]


class EngineRecord(BaseModel):
    """An engine that took part in a comparison."""

    name: str
    version: str


class SeedFailure(BaseModel):
    """One seed whose simulation failed the engine's quality check, and the check's message."""

    engine: str
    seed: int
    reason: str


class NotEvaluated(BaseModel):
    """A scenario left out of the comparison because some of its seeds failed the quality check.

    Reporting the seeds that happened to pass would flatter the plan (survivorship bias), so none of
    its KPIs, intervals or changes are reported; ``statement`` says so in plain English.
    """

    scenario: str
    runs: int = Field(ge=1, description="Seed runs of the scenario, over every engine")
    failures: list[SeedFailure] = Field(min_length=1)
    statement: str


class ComparisonRecord(BaseModel):
    """The content of ``comparison.json``: a baseline, its plans, KPIs, differences, tables, summary.

    ``sources`` are the twin layers the engines read; None (a comparison written before engines
    declared them) means every layer of the twin. ``plans`` are the plans compared; a requested plan
    whose simulation failed the quality check is in ``not_evaluated`` instead.
    """

    model_config = ConfigDict(extra="allow")

    id: str
    created: str
    baseline: str
    plans: list[str]
    engines: list[EngineRecord] = Field(default_factory=list)
    sources: list[str] | None = None
    tables: list[TableRecord] = Field(default_factory=list)
    kpis: list[KpiRow]
    differences: list[DifferenceRow]
    summary: list[str]
    question: str = Field(
        default="",
        description="The question the comparison answers, in plain words, for its consultation page "
        "(``civictwin compare --question``); empty when none was given",
    )

    not_evaluated: list[NotEvaluated] = Field(
        default_factory=list,
        description="Plans whose simulation failed the engines' quality check in some seed: a finding "
        "in words, without numbers",
    )

    def kpi(self, kpi: str, scenario: str) -> KpiRow:
        """One KPI row."""
        return next(r for r in self.kpis if r.kpi == kpi and r.scenario == scenario)

    def difference(self, kpi: str, plan: str) -> DifferenceRow:
        """One difference row."""
        return next(r for r in self.differences if r.kpi == kpi and r.plan == plan)

    def table(self, table: str) -> TableRecord:
        """One table by id (``traffic.edges``)."""
        return next(t for t in self.tables if t.id == table)

    def to_json(self) -> str:
        """The ``comparison.json`` text (non-finite numbers as null)."""
        return self.model_dump_json(indent=1)
