"""Judge each need of a use case against what the twin holds, and place the twin on the maturity scale.

A need is **met** when the twin holds it whole (a layer with its columns and rows, enough
datastreams, the file, the record), governed (a layer or datastream has a catalogue record with a
licence and an access level) and fresh (not older than the need's ``max_age_days``). Otherwise its
status says why: ``missing``, ``incomplete``, ``ungoverned``, ``stale``, or ``failed`` (a record
whose ``status`` is ``failed``). The maturity level is the highest level whose needs, and those of
every level below it, are all met (docs/readiness.md). A use case with traffic KPIs also shows whether
an observed modal split is configured and how closely the calibrated mode-choice constants reproduce
it (:class:`SplitReport`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from civictwin.catalog.quality import percent, table_findings
from civictwin.i18n import N_
from civictwin.readiness.holdings import DatastreamHolding, Holdings, SplitHolding
from civictwin.readiness.templates import LEVELS, Need, UseCase

LEVEL_NAMES = {
    0: N_("not ready"),
    1: N_("status"),
    2: N_("informative"),
    3: N_("predictive"),
    4: N_("optimisation"),
}
"""The maturity levels (docs/readiness.md), after the five levels of Wageningen's framework; the fifth,
autonomous, is never assessed: civictwin informs decisions, people take them."""
MET = "present"
_SECONDS_PER_DAY = 86_400
SPLIT_STATES = (
    N_("not configured"),
    N_("not calibrated"),
    N_("calibrated to another split"),
    N_("fits"),
    N_("does not fit"),
    N_("withheld"),
)
"""Where a twin stands with its observed modal split: none in ``twin.toml``; configured but no
calibration fitted the constants to it; the latest calibration fitted another split; the calibrated
constants reproduce it within the calibration's tolerance, or not; the calibration record is withheld
from the caller (it derives from layers they may not read)."""
_SAME_SHARE = 1e-9


@dataclass(frozen=True)
class NeedReport:
    """What the twin holds of one need."""

    id: str
    kind: str
    target: str
    level: int
    what: str
    status: str
    met: bool
    details: list[str]
    quality: list[str]
    as_of: str | None
    age_days: float | None
    licence: str | None
    access: str | None
    steward: str | None
    validation: str | None
    how_to_get: str | None


@dataclass(frozen=True)
class KpiReport:
    """Whether the twin holds everything one KPI needs."""

    name: str
    engine: str
    label: str
    ready: bool
    needs: list[str]
    unmet: list[str]


@dataclass(frozen=True)
class SplitShare:
    """One mode's observed share and the share the calibrated mode choice gives it (0–1)."""

    mode: str
    observed: float | None
    modelled: float | None


@dataclass(frozen=True)
class SplitReport:
    """The observed modal split and the calibrated constants' fit to it (one of :data:`SPLIT_STATES`)."""

    status: str
    source: str | None
    record: str | None
    """The calibration record whose constants the traffic engine uses (``calibration-NNN``)."""
    tolerance: float | None
    """Largest difference per mode the calibration accepts (share, 0–1)."""
    gap: float | None
    """Largest difference between an observed and a modelled share (0–1), after the count calibration
    where the record has one."""
    shares: list[SplitShare]


@dataclass(frozen=True)
class ReadinessReport:
    """The walk-back of one use case on one twin."""

    use_case: str
    title: str
    objective: str
    template: str
    assessed_at: str
    maturity: int
    maturity_name: str
    next_level: list[str]
    """The unmet needs standing between the twin and the next level (empty at level 4)."""
    kpis: list[KpiReport]
    needs: list[NeedReport]
    modal_split: SplitReport | None = None
    """Only for use cases with traffic KPIs (the mode choice is the traffic engine's)."""

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)


def assess(use_case: UseCase, holdings: Holdings, *, now: datetime) -> ReadinessReport:
    """The readiness report of ``use_case`` on the twin that ``holdings`` describe, as of ``now`` (UTC)."""
    needs = [_need(need_id, need, holdings, now) for need_id, need in use_case.needs.items()]
    by_id = {report.id: report for report in needs}
    maturity = _maturity(needs)
    upcoming = [n.id for n in needs if not n.met and n.level <= maturity + 1] if maturity < LEVELS[-1] else []
    kpis = [
        KpiReport(
            name=kpi.name,
            engine=kpi.engine,
            label=kpi.label,
            ready=all(by_id[n].met for n in kpi.needs),
            needs=list(kpi.needs),
            unmet=[n for n in kpi.needs if not by_id[n].met],
        )
        for kpi in use_case.kpis
    ]
    return ReadinessReport(
        use_case=use_case.name,
        title=use_case.title,
        objective=use_case.objective,
        template=use_case.path,
        assessed_at=now.isoformat(),
        maturity=maturity,
        maturity_name=LEVEL_NAMES[maturity],
        next_level=upcoming,
        kpis=kpis,
        needs=needs,
        modal_split=split_report(holdings.modal_split)
        if any(kpi.engine == "traffic" for kpi in use_case.kpis)
        else None,
    )


def split_report(held: SplitHolding) -> SplitReport:
    """How the twin stands with its observed modal split (see :data:`SPLIT_STATES`)."""
    fit = held.calibration
    if held.shares is None:
        return SplitReport(SPLIT_STATES[0], None, held.record, None, None, [])
    observed = [SplitShare(mode, share, None) for mode, share in held.shares.items()]
    if held.withheld:
        return SplitReport(SPLIT_STATES[5], held.source, None, None, None, observed)
    if fit is None:
        return SplitReport(SPLIT_STATES[1], held.source, None, None, None, observed)
    fitted = {str(m): float(v) for m, v in fit["inputs"]["shares"].items()}
    if set(fitted) != set(held.shares) or any(
        abs(fitted[m] - v) > _SAME_SHARE for m, v in held.shares.items()
    ):
        return SplitReport(SPLIT_STATES[2], held.source, held.record, None, None, observed)
    tolerance = float(fit["parameters"]["tolerance"])
    gap = float(fit["final_gap"] if fit.get("final_gap") is not None else fit["gap"])
    shares = [
        SplitShare(
            str(row["mode"]),
            None if row.get("observed") is None else float(row["observed"]),
            float(row["final"] if row.get("final") is not None else row["modelled"]),
        )
        for row in fit["fit"]
    ]
    status = SPLIT_STATES[3] if gap <= tolerance else SPLIT_STATES[4]
    return SplitReport(status, held.source, held.record, tolerance, gap, shares)


def _maturity(needs: list[NeedReport]) -> int:
    """The highest level L with every need of level ≤ L met (0 when a status need is unmet)."""
    reached = 0
    for level in LEVELS:
        if not all(n.met for n in needs if n.level == level):
            break
        reached = level
    return reached


@dataclass
class _Finding:
    """A need's assessment while it is being built."""

    status: str = MET
    details: list[str] | None = None
    quality: list[str] | None = None
    as_of: str | None = None
    licence: str | None = None
    access: str | None = None
    steward: str | None = None
    validation: str | None = None

    def fail(self, status: str, detail: str) -> None:
        """Record a problem; the first one decides the status."""
        if self.status == MET:
            self.status = status
        self.details = [*(self.details or []), detail]


def _need(need_id: str, need: Need, holdings: Holdings, now: datetime) -> NeedReport:
    finding = _Finding()
    if need.kind == "layer":
        _layer(need, holdings, finding)
    elif need.kind == "datastream":
        _datastream(need, holdings.datastreams, finding)
    elif need.kind == "config":
        _config(need, holdings, finding)
    else:
        _record(need, holdings, finding)
    age = _age_days(finding.as_of, now)
    if (
        finding.status == MET
        and need.max_age_days is not None
        and age is not None
        and age > need.max_age_days
    ):
        finding.fail("stale", f"{age:g} days old; this use case needs at most {need.max_age_days:g}")
    met = finding.status == MET
    return NeedReport(
        id=need_id,
        kind=need.kind,
        target=need.target,
        level=need.level,
        what=need.what,
        status=finding.status,
        met=met,
        details=finding.details or [],
        quality=finding.quality or [],
        as_of=finding.as_of,
        age_days=age,
        licence=finding.licence,
        access=finding.access,
        steward=finding.steward,
        validation=finding.validation,
        how_to_get=None if met else need.how_to_get,
    )


def _layer(need: Need, holdings: Holdings, finding: _Finding) -> None:
    layer = holdings.layers.get(str(need.table))
    if layer is None:
        finding.fail("missing", f"the twin has no table '{need.table}'")
        return
    absent = [c for c in need.columns if c not in layer.columns]
    if absent:
        finding.fail("incomplete", f"columns missing: {', '.join(absent)}")
    if layer.rows < need.min_rows:
        finding.fail("incomplete", f"{layer.rows} rows; at least {need.min_rows} needed")
    _governance(layer.catalog, finding)
    finding.quality = table_findings(layer.quality) if layer.quality else ["no quality record"]
    finding.as_of = _text(layer.catalog.get("issued"))
    finding.validation = _text(layer.validation.get("status"))


def _datastream(need: Need, datastreams: list[DatastreamHolding], finding: _Finding) -> None:
    wanted = str(need.observed_property).casefold()
    matching = [d for d in datastreams if wanted in d.observed_property.casefold()]
    if not matching:
        finding.fail("missing", f"no datastream observes '{need.observed_property}'")
        return
    if len(matching) < need.min_datastreams:
        finding.fail("incomplete", f"{len(matching)} datastream(s); at least {need.min_datastreams} needed")
    for stream in matching:
        _governance(stream.catalog, finding, subject=f"datastream '{stream.key}'")
    finding.licence, finding.access, finding.steward = (
        _joined(s.catalog.get(key) for s in matching) for key in ("licence", "access", "steward")
    )
    shares = [float(s.quality["completeness"]["result"]) for s in matching if "completeness" in s.quality]
    low, high = (percent(min(shares)), percent(max(shares))) if shares else ("", "")
    span = (
        "no quality record"
        if not shares
        else f"completeness {low}"
        if low == high
        else f"completeness {low}–{high}"
    )
    finding.quality = [f"{len(matching)} datastream(s), {span}"]
    lasts = [str(s.quality["last"]) for s in matching if s.quality.get("last")]
    finding.as_of = max(lasts, key=datetime.fromisoformat) if lasts else None


def _config(need: Need, holdings: Holdings, finding: _Finding) -> None:
    held = holdings.files.get(str(need.key))
    if held is None:
        where = "heat.toml" if need.key == "heat.epw" else "twin.toml"
        finding.fail("missing", f"{need.key} is not set in {where}")
        return
    if not held.exists:
        finding.fail("missing", f"{need.key} names {held.path}, which does not exist")
    finding.licence, finding.as_of = held.licence, held.modified
    finding.steward = held.publisher


def _record(need: Need, holdings: Holdings, finding: _Finding) -> None:
    kind, key = str(need.record).split("/", 1)
    record = holdings.records.get(kind, {}).get(key)
    if record is None:
        finding.fail("missing", f"the twin holds no {kind} record '{key}'")
        return
    finding.validation = _text(record.get("status"))
    if finding.validation == "failed":
        finding.fail("failed", f"the {kind} record '{key}' says it failed")
    finding.as_of = _text(record.get("issued") or record.get("created"))


def _governance(catalog: Mapping[str, Any], finding: _Finding, *, subject: str = "") -> None:
    """A catalogue record with a licence and an access level, or an ``ungoverned`` finding."""
    lacking = [key for key in ("licence", "access") if not catalog.get(key)]
    if lacking:
        prefix = f"{subject}: " if subject else ""
        finding.fail("ungoverned", f"{prefix}no {' and no '.join(lacking)} in the catalogue")
    finding.licence = _text(catalog.get("licence"))
    finding.access = _text(catalog.get("access"))
    finding.steward = _text(catalog.get("steward"))


def _age_days(as_of: str | None, now: datetime) -> float | None:
    if as_of is None:
        return None
    try:
        then = datetime.fromisoformat(as_of)
    except ValueError:
        return None
    if then.tzinfo is None:
        return None
    return round((now - then).total_seconds() / _SECONDS_PER_DAY, 1)


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _joined(values: Iterable[Any]) -> str | None:
    distinct = sorted({str(v) for v in values if v})
    return "; ".join(distinct) or None
