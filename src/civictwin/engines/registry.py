"""Installed engines, found through Python entry points (group ``civictwin.engines``).

A package adds an engine without touching civictwin by declaring, in its ``pyproject.toml``::

    [project.entry-points."civictwin.engines"]
    energy = "my_package.engine:EnergyEngine"

The entry point names an engine object, or a class or function that makes one when called without
arguments. civictwin's own traffic engine registers itself the same way. Problems (a plug-in that
cannot be imported, one that does not follow :class:`civictwin.engines.base.Engine`, two engines
claiming one name or one intervention type) are one-line :class:`~civictwin.errors.EngineError`\\ s
naming the entry point and its distribution.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from pydantic import BaseModel

from civictwin.engines.base import Engine
from civictwin.errors import EngineError, ScenarioError
from civictwin.scenarios.spec import InterventionCatalog, Scenario

GROUP = "civictwin.engines"
_REQUIRED = ("name", "version", "intervention_types", "tables", "reads", "parameters", "prepare", "run")


@dataclass(frozen=True)
class Installed:
    """An engine and the distribution (package) that provides it."""

    engine: Engine
    distribution: str
    distribution_version: str


def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=GROUP):
        if point.name in found and _origin(found[point.name]) != _origin(point):
            raise EngineError(
                f"two packages provide the engine '{point.name}': {_origin(found[point.name])} and {_origin(point)}"
            )
        found[point.name] = point
    return found


def _origin(point: EntryPoint) -> str:
    dist = point.dist
    return f"{dist.name} {dist.version}" if dist is not None else point.value


def installed_names() -> list[str]:
    """The names of the installed engines, sorted (nothing is imported)."""
    return sorted(_entry_points())


def load_engines(names: Collection[str] | None = None) -> dict[str, Installed]:
    """The installed engines (or those in ``names``), loaded and checked, by name."""
    points = _entry_points()
    wanted = sorted(points) if names is None else list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in points]
    if unknown:
        raise EngineError(
            f"no installed engine '{unknown[0]}' (installed engines: {', '.join(sorted(points)) or 'none'})"
        )
    return {name: _load(points[name]) for name in wanted}


def _load(point: EntryPoint) -> Installed:
    where = f"engine plug-in '{point.name}' ({point.value}, from {_origin(point)})"
    try:
        target = point.load()
        engine = target if _looks_like_engine(target) else target()
    except Exception as exc:
        raise EngineError(f"{where} cannot be loaded: {type(exc).__name__}: {exc}") from None
    missing = [attribute for attribute in _REQUIRED if not hasattr(engine, attribute)]
    if missing:
        raise EngineError(f"{where} is not a civictwin engine: it lacks {', '.join(missing)}")
    if engine.name != point.name:
        raise EngineError(f"{where} calls itself '{engine.name}'; the entry point must use the same name")
    dist = point.dist
    return Installed(
        engine=engine,
        distribution=dist.name if dist is not None else "",
        distribution_version=dist.version if dist is not None else "",
    )


def _looks_like_engine(target: object) -> bool:
    """An engine object rather than a class or factory: it has ``run`` and is not itself a type."""
    return not isinstance(target, type) and hasattr(target, "run") and hasattr(target, "prepare")


def intervention_catalog(engines: Mapping[str, Installed] | Sequence[Engine]) -> InterventionCatalog:
    """Every intervention type of ``engines`` with its model and the engine that declares it.

    Two engines declaring the same type is an EngineError naming both.
    """
    listed = [e.engine for e in engines.values()] if isinstance(engines, Mapping) else list(engines)
    types: dict[str, type[BaseModel]] = {}
    owners: dict[str, str] = {}
    for engine in listed:
        for kind, model in engine.intervention_types.items():
            if kind in owners and owners[kind] != engine.name:
                raise EngineError(
                    f"engines '{owners[kind]}' and '{engine.name}' both declare the intervention type '{kind}'"
                )
            types[kind] = model
            owners[kind] = engine.name
    return InterventionCatalog(types=types, owners=owners, engines=tuple(sorted(e.name for e in listed)))


def engines_for(
    scenarios: Sequence[Scenario],
    catalog: InterventionCatalog,
    *,
    named: Sequence[str] = (),
) -> list[str]:
    """The engines a comparison runs: those any scenario's interventions belong to, plus ``named``.

    When no scenario has an intervention (the twin as built) and none is named, every installed
    engine runs. A named engine that is not installed is a ScenarioError listing the installed ones.
    """
    unknown = [n for n in named if n not in catalog.engines]
    if unknown:
        raise ScenarioError(
            f"no installed engine '{unknown[0]}' (installed engines: {', '.join(catalog.engines) or 'none'})",
            field="--engine",
        )
    touched = {catalog.owners[i.type] for s in scenarios for i in s.interventions}
    chosen = touched | set(named)
    if not chosen:
        return list(catalog.engines)
    return [name for name in catalog.engines if name in chosen]
