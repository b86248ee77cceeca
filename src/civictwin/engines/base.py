"""The seam every simulation engine plugs into: the contract between an engine and the ensemble.

An engine prepares picklable inputs from the twin and a scenario (:meth:`Engine.prepare`, in the
driving process), then runs one seed at a time in a worker process (:meth:`Engine.run`) and returns
an :class:`EngineResult`: KPIs (name, unit, value) and named tables it declared with a
:class:`TableSpec`. The ensemble (:mod:`civictwin.engines.ensemble`) handles everything else: seeds,
processes, resuming, interrupts, timeouts, atomic saving and manifests; compare, the report, the API
and the viewer show any engine's KPIs and tables from what it declares here.

Engines are found through Python entry points (group ``civictwin.engines``, see
:mod:`civictwin.engines.registry`); docs/engines.md is the guide to writing one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import pandas as pd
from pydantic import BaseModel

from civictwin.config import CONFIG_FILENAME, TwinConfig, load_config
from civictwin.errors import StoreError
from civictwin.runs import SeedRecord
from civictwin.scenarios.spec import Scenario

if TYPE_CHECKING:
    from civictwin.store.base import Store

Better = Literal["lower", "higher", "neither"]


@dataclass(frozen=True)
class Kpi:
    """One indicator of one seed.

    ``name`` is snake_case and unique across engines (``co2_kg``, ``heating_mwh``); ``unit`` is short
    unit text (``"kg"``, ``"MWh"``, ``"%"``; ``"share"`` for a fraction between 0 and 1, shown as a
    percentage); ``label`` is plain words for reports. ``better`` says which direction is an
    improvement, for the "improves"/"worsens" wording; ``headline`` KPIs are the ones the summary of a
    comparison speaks about (all KPIs when an engine marks none). ``value`` may be NaN when a seed has
    nothing to measure (no trip arrived); such seeds are left out of that KPI's statistics.
    """

    name: str
    unit: str
    value: float
    label: str
    better: Better = "neither"
    headline: bool = False


@dataclass(frozen=True)
class TableSpec:
    """A named table an engine returns for every seed (per edge, building, zone or grid cell).

    ``key`` columns identify a row and must be unique; ``layer`` is the twin layer whose rows the key
    joins to for maps (``"network_edges"``, ``"zones"``, ``"buildings_3d"``), or None when the table
    carries its own WKB ``geometry`` column in the twin's CRS. ``values`` lists the numeric columns
    (with their units) that compare averages over seeds and differences between scenarios, each with
    its 95% interval. ``label`` is plain words for reports and the viewer ("Street edges").
    """

    name: str
    key: tuple[str, ...]
    layer: str | None
    values: tuple[tuple[str, str], ...]
    label: str = ""


@dataclass(frozen=True)
class EngineResult:
    """What one seed of one scenario produced.

    ``tables`` holds one frame per declared :class:`TableSpec` (by name), each complete: every key
    column, every value column, unique keys; an engine that cannot produce them raises
    :class:`~civictwin.errors.EngineError` instead. ``notes`` are plain-language caveats for the
    report ("3% of buildings without a construction year"). ``details`` are JSON-able facts of this
    seed that are not KPIs (iterations, the simulator's version); they are saved with the seed,
    listed in the manifest and handed back to the engine's :meth:`Reports.report`.
    """

    kpis: tuple[Kpi, ...]
    tables: Mapping[str, pd.DataFrame]
    notes: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TwinContext:
    """The twin an engine prepares from: its directory, configuration, a read-only store, and options.

    ``options`` hold per-engine parameter overrides from the command line
    (``{"traffic": {"iterations": 2}}``); an engine reads its own with :meth:`options_for`. Without a
    ``config`` the context names only a folder (an engine given its data in memory, in tests): it has
    no store, and its data fingerprint is that of an empty catalogue.
    """

    twin_dir: Path
    config: TwinConfig | None = None
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, twin_dir: Path, *, options: Mapping[str, Mapping[str, Any]] | None = None) -> TwinContext:
        """The context of the twin in ``twin_dir`` (its ``twin.toml`` is read and validated)."""
        config = load_config(twin_dir)
        return cls(twin_dir=config.base_dir, config=config, options=dict(options or {}))

    @property
    def store_path(self) -> Path:
        """The twin's store file."""
        if self.config is None:
            raise StoreError(f"no {CONFIG_FILENAME} here, so no store to read", path=self.twin_dir)
        return self.config.store_path.resolve()

    def options_for(self, engine: str) -> Mapping[str, Any]:
        """The overrides given for ``engine`` (empty when none)."""
        return self.options.get(engine, {})

    @contextmanager
    def open_store(self) -> Iterator[Store]:
        """The twin's store, read-only, closed when the block ends."""
        from civictwin.store.opening import open_store

        if self.config is None:
            raise StoreError(f"no {CONFIG_FILENAME} here, so no store to read", path=self.twin_dir)
        with open_store(self.config) as store:
            yield store

    def catalog(self) -> dict[str, dict[str, Any]]:
        """The twin's catalogue records (source checksums, rows, issue times), by table."""
        if self.config is None:
            return {}
        with self.open_store() as store:
            return store.records("catalog")

    def data_fingerprint(self) -> str:
        """A hash of the twin's catalogue records: changes when the data does."""
        return hashlib.sha256(json.dumps(self.catalog(), sort_keys=True, default=str).encode()).hexdigest()


@runtime_checkable
class Engine(Protocol):
    """A simulation engine, as the ensemble drives it.

    ``intervention_types`` maps each intervention ``type`` this engine understands to its pydantic
    model (with ``type: Literal["..."]``; subclass :class:`civictwin.scenarios.spec.Intervention` for
    the ``describe()`` wording). ``reads`` names the twin layers :meth:`prepare` reads: only callers
    allowed to read all of them may see the engine's comparisons through the API.
    """

    # Read-only members: a class attribute, a property or a cached property each satisfies them.
    @property
    def name(self) -> str:
        """The engine's key (``--engine``, ``runs/`` folders, scenario TOML)."""
        ...

    @property
    def version(self) -> str:
        """The engine's version: a new one recomputes saved seeds."""
        ...

    @property
    def intervention_types(self) -> Mapping[str, type[BaseModel]]:
        """Each intervention ``type`` this engine understands, to its pydantic model."""
        ...

    @property
    def tables(self) -> tuple[TableSpec, ...]:
        """The named tables every seed returns."""
        ...

    @property
    def reads(self) -> tuple[str, ...]:
        """The twin layers :meth:`prepare` reads."""
        ...

    def parameters(self, twin: TwinContext) -> Mapping[str, Any]:
        """Every parameter value that shapes this engine's numbers for ``twin`` (JSON-able).

        Recorded in the manifest and the report, and part of each seed's fingerprint: a seed is
        reused on resume only when these (and the scenario, the twin's data and the engine version)
        are unchanged.
        """
        ...

    def prepare(self, twin: TwinContext, scenario: Scenario, *, workdir: Path) -> Any:
        """Read what the engine needs from the twin and apply the scenario's interventions of this
        engine's types (others are ignored); return picklable inputs for :meth:`run`.

        Runs once per scenario in the driving process; files it writes go under ``workdir``.
        """
        ...

    def run(self, inputs: Any, *, seed: int, workdir: Path) -> EngineResult:
        """One seed, deterministic for that seed, in its own worker process; scratch files go under
        ``workdir`` (removed afterwards). Uncertain parameters are sampled with
        ``numpy.random.default_rng(seed)``."""
        ...


@runtime_checkable
class Validates(Protocol):
    """Optional: an engine that can check a scenario against the twin without simulating it."""

    def check(self, twin: TwinContext, scenario: Scenario) -> list[str]:
        """Every problem with this engine's interventions of ``scenario``, one line each (empty: valid)."""
        ...


@runtime_checkable
class DocumentsScenarios(Protocol):
    """Optional: an engine that contributes commented examples to ``civictwin scenario new``."""

    def scenario_examples(self) -> str:
        """Commented TOML lines (each starting with ``#``), one block per intervention type."""
        ...


@dataclass(frozen=True)
class ReportSection:
    """A part of the report an engine adds: a heading, paragraphs and PNG figures (bytes)."""

    heading: str
    paragraphs: tuple[str, ...] = ()
    figures: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class EngineReport:
    """What an engine adds to a comparison's report beyond its KPIs and tables.

    ``summary`` sentences join the plain-language summary; ``notes`` the "what was simulated" facts;
    ``method`` is a paragraph on the method and its assumptions; ``sections`` are engine-specific
    figures (traffic's modal split). ``warnings`` say loudly that the engine's results rest on a
    broken input (implausible demand): the report shows them first and does not call this engine's
    differences "within noise" without pointing to them.
    """

    summary: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    method: str = ""
    sections: tuple[ReportSection, ...] = ()
    warnings: tuple[str, ...] = ()


@runtime_checkable
class Reports(Protocol):
    """Optional: an engine that describes its own runs in the report."""

    def report(self, runs: Mapping[str, Sequence[SeedRecord]]) -> EngineReport:
        """The engine's part of the report, from its saved seeds per scenario (in comparison order)."""
        ...
