"""Use-case readiness (the walk-back): from one objective to the KPIs it needs, to the data each KPI
needs, to what the twin holds of it, and a maturity level on the scale of docs/readiness.md.

:mod:`.templates` reads use-case templates (TOML files: the built-in ones and a city's own),
:mod:`.holdings` gathers what a twin holds as plain data, :mod:`.assess` judges each need against it,
:mod:`.render` writes the report as JSON or Markdown, and :mod:`.decisions` keeps the decision log:
which comparison informed which decision, when, by which role.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from civictwin.config import TwinConfig
from civictwin.readiness.assess import ReadinessReport, assess
from civictwin.readiness.holdings import gather
from civictwin.readiness.templates import UseCase, find_template
from civictwin.store.opening import open_store

__all__ = ["ReadinessReport", "readiness_report", "record_kinds", "template_folders"]


def template_folders(config: TwinConfig, extra: Path | None = None) -> list[Path]:
    """The city's template folders: ``[readiness] templates`` of ``twin.toml``, then ``extra``."""
    folders = [config.resolve(config.readiness.templates)] if config.readiness.templates else []
    return [*folders, *([extra] if extra is not None else [])]


def readiness_report(
    config: TwinConfig, use_case: str, *, templates: Path | None = None, now: datetime | None = None
) -> ReadinessReport:
    """The readiness of the twin of ``config`` for ``use_case`` (a template name), as of ``now``."""
    template = find_template(use_case, template_folders(config, templates))
    kinds = record_kinds(template)
    with open_store(config) as store:
        holdings = gather(config, store, record_kinds=kinds)
    return assess(template, holdings, now=now or datetime.now(UTC))


def record_kinds(template: UseCase) -> set[str]:
    """The governance record kinds the template's ``record`` needs name (``validation``)."""
    return {need.record.split("/", 1)[0] for need in template.needs.values() if need.record}
