"""What a twin holds, gathered once as plain data for the readiness assessment.

Layers with their columns and rows come from the twin's store; catalogue (steward, licence, access,
issue time), quality and validation records from its governance records; datastreams with their
catalogue and quality (completeness, last observation) from the observation store beside it, when
there is one; the engines' files from ``twin.toml`` (``[energy]``) and ``heat.toml``; the observed modal
split of ``twin.toml`` (``[modal_split]``) and the mode-choice part of the twin's latest calibration record.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from civictwin.catalog.metadata import CATALOG
from civictwin.catalog.observations import DATASTREAM
from civictwin.catalog.quality import QUALITY
from civictwin.config import TwinConfig
from civictwin.engines.traffic.calibration import latest_record, latest_record_path
from civictwin.engines.traffic.inputs import READS
from civictwin.errors import ConfigError, EngineError
from civictwin.store.base import Store
from civictwin.store.observations import has_observations, open_observations

VALIDATION = "validation"
HEAT_SETTINGS = "heat.toml"


@dataclass(frozen=True)
class LayerHolding:
    """One table of the twin: its columns and rows, and its records (empty when it has none)."""

    rows: int
    columns: tuple[str, ...]
    catalog: dict[str, Any]
    quality: dict[str, Any]
    validation: dict[str, Any]


@dataclass(frozen=True)
class DatastreamHolding:
    """One datastream: its observed property and its catalogue and quality records."""

    key: str
    observed_property: str
    catalog: dict[str, Any]
    quality: dict[str, Any]


@dataclass(frozen=True)
class FileHolding:
    """A file the engines read: where, whether it is there, when it changed, its licence if given."""

    path: str
    exists: bool
    modified: str | None
    licence: str | None
    publisher: str | None


@dataclass(frozen=True)
class SplitHolding:
    """The observed modal split the mode choice is calibrated to, and how the calibration went."""

    shares: dict[str, float] | None = None
    """Share (0–1) per mode as ``[modal_split]`` of ``twin.toml`` gives it; None: not configured."""
    source: str | None = None
    calibration: dict[str, Any] | None = None
    """The ``mode_choice`` part of the latest calibration record (engines/traffic/modesplit.py's
    ``split_record``); None: no record fitted the constants to a split."""
    record: str | None = None
    """The id of that record (``calibration-NNN``)."""
    withheld: bool = False
    """The record is withheld from the caller: it derives from layers they may not read (as the
    calibration endpoints of the API withhold it)."""


@dataclass(frozen=True)
class Holdings:
    """Everything the assessment looks at, read once."""

    layers: dict[str, LayerHolding]
    datastreams: list[DatastreamHolding]
    files: dict[str, FileHolding]
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """Governance records by kind then key, for ``record`` needs."""
    modal_split: SplitHolding = field(default_factory=SplitHolding)


def gather(config: TwinConfig, store: Store, *, record_kinds: set[str]) -> Holdings:
    """Read what the twin of ``config`` holds from its open ``store`` (and the observation store beside
    it); ``record_kinds`` are the record kinds the template's ``record`` needs name."""
    return Holdings(
        layers=_layers(store),
        datastreams=_datastreams(config),
        files=_files(config),
        records={kind: store.records(kind) for kind in sorted(record_kinds)},
        modal_split=_modal_split(config),
    )


def only_readable(
    holdings: Holdings, *, layers: frozenset[str], datastreams: Callable[[DatastreamHolding], bool]
) -> Holdings:
    """``holdings`` as a caller sees them who may read ``layers`` and the datastreams for which
    ``datastreams`` is true: what they may not read is absent, as everywhere in the API, and the
    calibration record is withheld unless they may read every layer a traffic run reads."""
    withheld = any(name in holdings.layers and name not in layers for name in READS)
    split = holdings.modal_split
    if withheld and split.calibration is not None:
        split = replace(split, calibration=None, record=None, withheld=True)
    return replace(
        holdings,
        layers={name: held for name, held in holdings.layers.items() if name in layers},
        datastreams=[d for d in holdings.datastreams if datastreams(d)],
        modal_split=split,
    )


def _layers(store: Store) -> dict[str, LayerHolding]:
    catalog, quality, validation = (store.records(k) for k in (CATALOG, QUALITY, VALIDATION))
    return {
        info.name: LayerHolding(
            rows=info.rows,
            columns=tuple(info.columns),
            catalog=catalog.get(info.name, {}),
            quality=quality.get(info.name, {}),
            validation=validation.get(info.name, {}),
        )
        for info in store.tables()
    }


def _datastreams(config: TwinConfig) -> list[DatastreamHolding]:
    if not has_observations(config):
        return []
    with open_observations(config, read_only=True) as observations:
        catalog = observations.records(CATALOG)
        quality = observations.records(QUALITY)
        return [
            DatastreamHolding(
                key=info.key,
                observed_property=info.observed_property,
                catalog=catalog.get(info.key, {}),
                quality=quality.get(info.key, {}),
            )
            for info in observations.datastreams()
            if catalog.get(info.key, {}).get("kind", DATASTREAM) == DATASTREAM
        ]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True)


class _SplitInputs(_Strict):
    shares: dict[str, float]


class _SplitParameters(_Strict):
    tolerance: float


class _SplitRow(_Strict):
    mode: str
    observed: float | None = None
    modelled: float
    final: float | None = None


class _ModeChoicePart(_Strict):
    """What the readiness report reads of a calibration record's ``mode_choice`` part (as
    engines/traffic/modesplit.py writes it; other members are not read): shares, tolerance and gaps
    as fractions of trips."""

    inputs: _SplitInputs
    parameters: _SplitParameters
    fit: list[_SplitRow]
    gap: float
    final_gap: float | None = None


def _modal_split(config: TwinConfig) -> SplitHolding:
    """``[modal_split]`` and the mode-choice part of the latest calibration record beside ``twin.toml``
    (an unreadable record, or a ``mode_choice`` part without the members the report reads, is an
    :class:`EngineError` naming the record's file, as for the traffic engine)."""
    section = config.modal_split
    record = latest_record(config.base_dir)
    part = (record or {}).get("mode_choice") or None
    if part is not None:
        _check_mode_choice(part, path=latest_record_path(config.base_dir, "calibration"))
    return SplitHolding(
        shares=dict(section.shares) if section is not None else None,
        source=section.source if section is not None else None,
        calibration=part,
        record=str(record.get("id")) if record is not None and part is not None else None,
    )


def _check_mode_choice(part: object, *, path: Path | None) -> None:
    """Raise :class:`EngineError` (one line: the record's file, the member, the problem) unless ``part``
    has the members the report reads, of the types it reads them as."""
    try:
        _ModeChoicePart.model_validate(part)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in problem["loc"])
        message = "expected a JSON object" if problem["type"] == "model_type" else problem["msg"]
        raise EngineError(
            f"unreadable calibration record: mode_choice{where}: {message}", path=path
        ) from None


def _files(config: TwinConfig) -> dict[str, FileHolding]:
    found: dict[str, FileHolding] = {}
    for key, entry in (
        ("energy.weather", config.energy.weather),
        ("energy.typology", config.energy.typology),
    ):
        if entry is not None:
            found[key] = _file(config.resolve(entry.path), licence=entry.licence, publisher=entry.publisher)
    epw = _heat_epw(config.base_dir)
    if epw is not None:
        found["heat.epw"] = _file(config.resolve(epw), licence=None, publisher=None)
    elif "energy.weather" in found:  # the heat engine falls back to [energy].weather (engines/heat/engine.py)
        found["heat.epw"] = found["energy.weather"]
    return found


def _heat_epw(twin_dir: Path) -> str | None:
    """The ``epw`` of ``heat.toml`` beside ``twin.toml`` (None without the file or the key)."""
    path = twin_dir / HEAT_SETTINGS
    if not path.is_file():
        return None
    try:
        value = tomllib.loads(path.read_text(encoding="utf-8")).get("epw")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=path) from None
    if value is not None and not isinstance(value, str):
        raise ConfigError("expected a file path", path=path, field="epw")
    return value


def _file(path: Path, *, licence: str | None, publisher: str | None) -> FileHolding:
    exists = path.is_file()
    modified = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat() if exists else None
    return FileHolding(path=str(path), exists=exists, modified=modified, licence=licence, publisher=publisher)
