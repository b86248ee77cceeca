"""Use-case templates: an objective, the KPIs it needs, and the data each KPI needs, as TOML files.

The built-in templates ship in ``civictwin/readiness/templates/``; a city adds its own (or replaces a
built-in one of the same name) from a folder named in ``twin.toml`` (``[readiness] templates``) or
given on the command line. A file's name without ``.toml`` is the template's name. A malformed file
is one :class:`~civictwin.errors.ConfigError` line naming the file and the field.

A need is one of four kinds:

- ``layer``: a table of the twin (``table``), optionally with ``columns`` it must have and
  ``min_rows``;
- ``datastream``: observations whose observed property's name contains ``observed_property``
  (without regard to case: ``"traffic count"`` matches ``Traffic count: cars``), at least
  ``min_datastreams`` of them;
- ``config``: a file the engines read, named by its ``twin.toml`` key (``energy.weather``,
  ``energy.typology``) or ``heat.epw`` (``heat.toml``);
- ``record``: a governance record of the twin store (``record = "validation/traffic"``), such as a
  calibration or validation record.

Each need has a maturity ``level`` (1 status, 2 informative, 3 predictive, 4 optimisation: see
docs/readiness.md; a template has at least one need at every level), what it is for (``what``), and
how to get it in plain words (``how_to_get``).
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from civictwin.errors import ConfigError

NeedKind = Literal["layer", "datastream", "config", "record"]
ConfigKey = Literal["energy.weather", "energy.typology", "heat.epw"]
"""The engine files a ``config`` need may name."""
LEVELS = (1, 2, 3, 4)
"""The maturity levels a need can belong to (docs/readiness.md); every template has needs at each."""
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_BUILT_IN = "civictwin.readiness"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Need(_Strict):
    """One piece of data a KPI needs, how the twin can hold it, and how to get it when it does not."""

    kind: NeedKind
    level: Annotated[int, Field(ge=1, le=4)]
    what: str = Field(min_length=1)
    how_to_get: str = Field(min_length=1)
    table: str | None = None
    columns: tuple[str, ...] = ()
    min_rows: Annotated[int, Field(ge=1)] = 1
    observed_property: str | None = None
    min_datastreams: Annotated[int, Field(ge=1)] = 1
    key: ConfigKey | None = None
    record: Annotated[str, Field(pattern=r"^[a-z_]+/[A-Za-z0-9_.-]+$")] | None = None
    max_age_days: Annotated[float, Field(gt=0)] | None = None
    """Older than this (issue time, or the last observation of a datastream) counts as stale."""

    @model_validator(mode="after")
    def _target_matches_kind(self) -> Need:
        required = {"layer": "table", "datastream": "observed_property", "config": "key", "record": "record"}
        field = required[self.kind]
        if getattr(self, field) is None:
            raise ValueError(f"a '{self.kind}' need requires '{field}'")
        others = sorted(f for f in required.values() if f != field and getattr(self, f) is not None)
        if others:
            raise ValueError(
                f"a '{self.kind}' need takes '{field}', not {', '.join(repr(o) for o in others)}"
            )
        return self

    @property
    def target(self) -> str:
        """What the need names: a table, an observed property, a config key or a record."""
        return str(self.table or self.observed_property or self.key or self.record)


class KpiNeeds(_Strict):
    """A KPI as its engine names it, and the needs (by id) it cannot be computed without."""

    name: str = Field(min_length=1)
    engine: str = Field(min_length=1)
    label: str = Field(min_length=1)
    needs: Annotated[tuple[str, ...], Field(min_length=1)]


class UseCase(_Strict):
    """One use-case template: an objective walked back to KPIs and data."""

    title: str = Field(min_length=1)
    objective: str = Field(min_length=1)
    kpis: Annotated[tuple[KpiNeeds, ...], Field(min_length=1)]
    needs: dict[Annotated[str, Field(pattern=NAME_PATTERN)], Need]
    name: str = ""
    path: str = ""

    @model_validator(mode="after")
    def _needs_resolve(self) -> UseCase:
        for index, kpi in enumerate(self.kpis):
            unknown = [n for n in kpi.needs if n not in self.needs]
            if unknown:
                raise ValueError(f"kpis[{index}] ({kpi.name}).needs: unknown need(s) {', '.join(unknown)}")
        levels = {need.level for need in self.needs.values()}
        absent = [str(level) for level in LEVELS if level not in levels]
        if absent:
            raise ValueError(f"no need at maturity level {', '.join(absent)} (every level 1-4 needs one)")
        used = {n for kpi in self.kpis for n in kpi.needs}
        unused = sorted(set(self.needs) - used)
        if unused:
            raise ValueError(f"needs {', '.join(unused)} are used by no KPI")
        return self


def built_in_dir() -> Path:
    """The folder of the templates that ship with civictwin."""
    return Path(str(resources.files(_BUILT_IN).joinpath("templates")))


def template_files(folders: list[Path]) -> dict[str, Path]:
    """Template name → file: the built-in ones, then each folder's (a later one replaces by name)."""
    found: dict[str, Path] = {}
    for folder in [built_in_dir(), *folders]:
        if not folder.is_dir():
            raise ConfigError("templates folder not found", path=folder)
        for path in sorted(folder.glob("*.toml")):
            found[path.stem] = path
    return found


def load_template(path: Path) -> UseCase:
    """Read and validate one template file; problems are one line naming the file and the field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=path) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", path=path) from None
    try:
        return UseCase.model_validate({**data, "name": path.stem, "path": str(path)})
    except ValidationError as exc:
        raise ConfigError(_describe(exc), path=path) from None


def find_template(name: str, folders: list[Path]) -> UseCase:
    """The template called ``name`` (a city's own before a built-in one of the same name)."""
    files = template_files(folders)
    if name not in files:
        known = ", ".join(sorted(files))
        raise ConfigError(f"no use-case template '{name}' (known: {known})", field="--use-case")
    return load_template(files[name])


def _describe(exc: ValidationError) -> str:
    """The first problem as ``field: message``, ``kpis[0].needs`` style."""
    error = exc.errors()[0]
    parts: list[str] = []
    for item in error["loc"]:
        if isinstance(item, int) and parts:
            parts[-1] = f"{parts[-1]}[{item}]"
        else:
            parts.append(str(item))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required key is missing"
    field = ".".join(parts)
    return f"{field}: {message}" if field else message
