"""Scenario and comparison endpoints: the evidence of every engine's comparisons, as JSON, GeoJSON
and HTML.

A comparison lives in ``<twin dir>/runs/<comparison id>/`` as ``civictwin compare`` writes it (the
layout and the records are :mod:`civictwin.runs`): ``comparison.json`` (KPIs of every engine with 95%
confidence intervals, differences, tables, a plain-language summary), ``manifest.json``, per table
``tables/<engine>.<table>/diff_<plan>.parquet`` (GeoParquet in WGS84), ``report.html`` and a
``complete`` marker written last. Only complete comparisons are published: a run that is still going
or was interrupted is invisible here, so nothing half-written is ever shown. Nothing here knows an
engine: tables are served by the id and key the comparison declares.

Scenario files are ``<twin dir>/scenarios/*.toml`` (:mod:`civictwin.scenarios.library`). Ids in URLs
are checked against a strict pattern and must name a directory directly under ``runs/`` (no path
traversal); every failure is a 404 problem document.

Access: a comparison derives from the twin layers its engines read (``sources`` in
``comparison.json``; every layer when it does not say), so only callers who may read all of those see
it; for everyone else it does not exist (empty listings, 404), as with any forbidden layer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import geopandas as gpd
from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError

from civictwin.api.context import get_twin
from civictwin.api.problems import ProblemError, not_found
from civictwin.api.query import check_params
from civictwin.api.security import current_principal
from civictwin.i18n import COOKIE, DEFAULT, choose
from civictwin.runs import (
    COMPARISON_FILE,
    COMPLETE,
    MANIFEST_FILE,
    REPORT_FILE,
    RUNS_DIR,
    ComparisonRecord,
    DifferenceRow,
    KpiRow,
    NotEvaluated,
    is_valid_id,
    report_file,
    table_diff_file,
)
from civictwin.scenarios.library import ScenarioFile, scenario_files

logger = logging.getLogger(__name__)

GEOJSON_MEDIA_TYPE = "application/geo+json"


ComparisonId = Annotated[
    str, PathParam(description="A comparison (a folder under <twin>/runs/)", max_length=128)
]
ReportLang = Annotated[
    str | None,
    Query(
        description="The report's language (en, sk, it); else the lang cookie, else Accept-Language",
        max_length=16,
    ),
]
PlanId = Annotated[str, PathParam(description="One of the comparison's plans", max_length=128)]
TableId = Annotated[
    str, PathParam(description="One of the comparison's tables, <engine>.<table>", max_length=128)
]


class ComparisonLinks(BaseModel):
    """Where the parts of a comparison are served."""

    self: str
    manifest: str
    kpis: str
    report: str
    tables: dict[str, dict[str, str]] = Field(
        description="GeoJSON per-key differences with 95% intervals, by table id and plan"
    )


class ComparisonListItem(BaseModel):
    """A complete comparison as listed by ``GET /comparisons``."""

    id: str
    created: str
    baseline: str
    plans: list[str]
    links: ComparisonLinks


class ComparisonList(BaseModel):
    """All complete comparisons, newest first."""

    comparisons: list[ComparisonListItem]


class KpiTable(BaseModel):
    """The KPI table of a comparison: per-scenario KPIs and plan − baseline differences, and the plans
    not evaluated (their simulation failed the engine's quality check: a finding without numbers)."""

    id: str
    baseline: str
    plans: list[str]
    kpis: list[KpiRow]
    differences: list[DifferenceRow]
    not_evaluated: list[NotEvaluated] = Field(default_factory=list)


class ScenarioItem(BaseModel):
    """One scenario file and the complete comparisons that include it."""

    id: str = Field(description="The file name without .toml")
    file: str
    name: str
    description: str
    baseline: str | None
    interventions: list[dict[str, Any]]
    comparisons: list[str]
    error: str | None = Field(default=None, description="Why the file could not be read, if it could not")


class ScenarioList(BaseModel):
    """Every scenario file of the twin, sorted by id."""

    scenarios: list[ScenarioItem]


class Problem(BaseModel):
    """An RFC 9457 problem document (the body of every error)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None


_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Unknown query parameter"},
    404: {"model": Problem, "description": "Unknown, incomplete or unreadable comparison, or unknown plan"},
}
# The comparison routes that answer with a GeoJSON FeatureCollection (tables).
_GEOJSON_OR_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    **_NOT_FOUND,
    200: {"content": {GEOJSON_MEDIA_TYPE: {}}, "description": "FeatureCollection"},
}


def check_id(comparison_id: str) -> None:
    """A 404 problem unless ``comparison_id`` could name a folder directly under ``runs/``."""
    if not is_valid_id(comparison_id):
        raise not_found(f"'{comparison_id[:80]}' is not a valid comparison id")


@dataclass(frozen=True)
class ComparisonStore:
    """Reads the comparisons and scenario files of one twin directory, safely.

    Every failure to find, validate or read something is a 404 problem (:func:`not_found`), so
    a client cannot tell a missing comparison from an unreadable or unfinished one.
    """

    twin_dir: Path

    @property
    def runs(self) -> Path:
        return self.twin_dir / RUNS_DIR

    def run_dir(self, comparison_id: str) -> Path:
        """The directory of a complete comparison."""
        check_id(comparison_id)
        runs = self.runs.resolve()
        path = (runs / comparison_id).resolve()
        if path.parent != runs or not path.is_dir():
            raise not_found(f"no comparison '{comparison_id}'")
        if not (path / COMPLETE).is_file():
            raise not_found(f"comparison '{comparison_id}' is not complete")
        return path

    def comparison(self, comparison_id: str) -> ComparisonRecord:
        """The validated ``comparison.json`` of a complete comparison."""
        path = self.run_dir(comparison_id) / COMPARISON_FILE
        try:
            return ComparisonRecord.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as exc:
            logger.warning("unreadable %s: %s", path, str(exc).splitlines()[0])
            raise not_found(f"comparison '{comparison_id}' has no readable {COMPARISON_FILE}") from None

    def draft(self, comparison_id: str) -> ComparisonRecord | None:
        """The ``comparison.json`` of a comparison folder even if unfinished (None when unreadable):
        only to decide who may learn why a comparison cannot be shown."""
        path = self.runs / comparison_id / COMPARISON_FILE
        try:
            return ComparisonRecord.model_validate_json(path.read_bytes())
        except (OSError, ValidationError):
            return None

    def all_comparisons(self) -> list[ComparisonRecord]:
        """Every complete, readable comparison, newest first (then by id)."""
        if not self.runs.is_dir():
            return []
        found = []
        for child in sorted(self.runs.iterdir()):
            try:
                found.append(self.comparison(child.name))
            except ProblemError:
                continue
        return sorted(found, key=lambda c: (c.created, c.id), reverse=True)

    def part(self, comparison_id: str, name: str) -> Path:
        """A file of a complete comparison (manifest, report, table results)."""
        path = self.run_dir(comparison_id) / name
        if not path.is_file():
            raise not_found(f"comparison '{comparison_id}' has no {name}")
        return path

    def manifest(self, comparison_id: str) -> Any:
        """The parsed ``manifest.json``."""
        try:
            return json.loads(self.part(comparison_id, MANIFEST_FILE).read_bytes())
        except (OSError, ValueError):
            raise not_found(f"comparison '{comparison_id}' has no readable {MANIFEST_FILE}") from None

    def table_differences(self, comparison_id: str, table: str, plan: str) -> gpd.GeoDataFrame:
        """The per-key differences of ``plan`` against the baseline in ``table``, in WGS84."""
        comparison = self.comparison(comparison_id)
        if table not in {t.id for t in comparison.tables} or not is_valid_id(table):
            raise not_found(f"comparison '{comparison_id}' has no table '{table[:80]}'")
        if plan not in comparison.plans or not is_valid_id(plan):
            raise not_found(f"comparison '{comparison_id}' has no plan '{plan[:80]}'")
        path = table_diff_file(self.run_dir(comparison_id), table, plan)
        try:
            frame = gpd.read_parquet(path)
        except (OSError, ValueError) as exc:
            logger.warning("unreadable %s: %s", path, exc)
            raise not_found(f"comparison '{comparison_id}' has no readable {table} for '{plan}'") from None
        if frame.crs is not None and frame.crs.to_epsg() != 4326:
            frame = frame.to_crs(4326)
        return frame

    def scenarios(self, comparisons: list[ComparisonRecord]) -> list[ScenarioItem]:
        """Every ``scenarios/*.toml``, each with those of ``comparisons`` that include it."""
        return [_scenario_item(entry, comparisons) for entry in scenario_files(self.twin_dir)]


def _scenario_item(entry: ScenarioFile, comparisons: list[ComparisonRecord]) -> ScenarioItem:
    """Describe one scenario file; a malformed one is listed with its error rather than hidden."""
    included = [c.id for c in comparisons if {entry.id, entry.name} & {c.baseline, *c.plans}]
    return ScenarioItem(
        id=entry.id,
        file=f"{entry.path.parent.name}/{entry.path.name}",
        name=entry.name,
        description=entry.description,
        baseline=entry.baseline,
        interventions=[jsonable_encoder(i) for i in entry.interventions],
        comparisons=included,
        error=entry.error,
    )


def _feature_collection(frame: gpd.GeoDataFrame, key: list[str]) -> bytes:
    """GeoJSON with NaN as null; feature ids are the table's key (joined with ``/`` when composite)."""
    collection = json.loads(frame.to_json(na="null", drop_id=True, to_wgs84=False))
    if key and all(k in frame.columns for k in key):
        for feature in collection["features"]:
            values = [feature["properties"][k] for k in key]
            feature["id"] = values[0] if len(values) == 1 else "/".join(map(str, values))
    collection["numberReturned"] = len(collection["features"])
    return json.dumps(collection, allow_nan=False).encode()


# ---- access and context ----------------------------------------------------------------------------


def _store(request: Request) -> ComparisonStore:
    """The comparisons of the twin this app serves (beside its store when served from a store file)."""
    twin = get_twin(request)
    folder = twin.twin_dir if twin.twin_dir.is_dir() else twin.store_path.parent
    return ComparisonStore(folder)


def may_read(request: Request, comparison: ComparisonRecord) -> bool:
    """Whether the caller may read ``comparison``: every twin layer it derives from must be readable.

    The layers are the ``sources`` its engines declared (every layer of the twin when it names none);
    a caller who may not read one of those sees no such comparison at all (404, as if absent).
    """
    twin = get_twin(request)
    principal = current_principal(request)
    layers = twin.features.layers
    needed = layers if comparison.sources is None else [name for name in comparison.sources if name in layers]
    return all(twin.policy.allows(principal, name) for name in needed)


def _readable(
    request: Request, comparison_id: str, *, params: Collection[str] = ()
) -> tuple[ComparisonStore, ComparisonRecord]:
    """The store and the comparison, once the caller is known to be allowed to see it (404 otherwise);
    ``params``: the query parameters the route takes (any other is a 400)."""
    check_params(request, params)
    store = _store(request)
    check_id(comparison_id)
    try:
        comparison = store.comparison(comparison_id)
    except ProblemError:
        # why it cannot be shown (unfinished, unreadable) is told only to those who could read it
        draft = store.draft(comparison_id)
        if not (may_read(request, draft) if draft is not None else _may_read_any(request)):
            raise not_found(f"no comparison '{comparison_id}'") from None
        raise
    if not may_read(request, comparison):
        raise not_found(f"no comparison '{comparison_id}'")
    return store, comparison


def readable(
    request: Request, comparison_id: str, *, params: Collection[str] = ()
) -> tuple[ComparisonStore, ComparisonRecord]:
    """:func:`_readable` for other routers that show a comparison (the consultation pages)."""
    return _readable(request, comparison_id, params=params)


def _may_read_any(request: Request) -> bool:
    """Whether the caller may read every layer of the twin (then a comparison's absence may be told
    apart from its being hidden)."""
    twin = get_twin(request)
    principal = current_principal(request)
    return all(twin.policy.allows(principal, name) for name in twin.features.layers)


def readable_comparison_ids(request: Request) -> set[str]:
    """Ids of the finished comparisons the caller may read (alerts on scenario results follow them)."""
    return {c.id for c in _visible(request)}


def _visible(request: Request) -> list[ComparisonRecord]:
    """The complete comparisons the caller may read, newest first."""
    return [c for c in _store(request).all_comparisons() if may_read(request, c)]


def _links(request: Request, comparison: ComparisonRecord) -> ComparisonLinks:
    def url(name: str, **params: str) -> str:
        return str(request.url_for(name, comparison_id=comparison.id, **params))

    return ComparisonLinks(
        self=url("comparison"),
        manifest=url("comparison_manifest"),
        kpis=url("comparison_kpis"),
        report=url("comparison_report"),
        tables={
            table.id: {plan: url("comparison_table", table=table.id, plan=plan) for plan in comparison.plans}
            for table in comparison.tables
        },
    )


# ---- endpoints ---------------------------------------------------------------------------------------

router = APIRouter(tags=["Scenarios and comparisons"])


@router.get("/scenarios", response_model=ScenarioList, responses=_NOT_FOUND, summary="Scenario files")
def list_scenarios(request: Request) -> ScenarioList:
    """Every scenario file of the twin, with the complete comparisons (you may read) that include it."""
    check_params(request, ())
    return ScenarioList(scenarios=_store(request).scenarios(_visible(request)))


@router.get("/comparisons", response_model=ComparisonList, responses=_NOT_FOUND, summary="Comparisons")
def list_comparisons(request: Request) -> ComparisonList:
    """Complete comparisons you may read (every layer they derive from), newest first."""
    check_params(request, ())
    items = [
        ComparisonListItem(
            id=c.id, created=c.created, baseline=c.baseline, plans=c.plans, links=_links(request, c)
        )
        for c in _visible(request)
    ]
    return ComparisonList(comparisons=items)


@router.get(
    "/comparisons/{comparison_id}",
    name="comparison",
    response_model=ComparisonRecord,
    responses=_NOT_FOUND,
    summary="A comparison: KPIs, differences, tables and summary",
)
def get_comparison(request: Request, comparison_id: ComparisonId) -> ComparisonRecord:
    """The whole ``comparison.json``: every engine's KPIs with 95% intervals, differences, the tables
    that can be mapped, and the plain-language summary."""
    return _readable(request, comparison_id)[1]


@router.get(
    "/comparisons/{comparison_id}/manifest",
    name="comparison_manifest",
    responses=_NOT_FOUND,
    summary="Run manifest: data versions, scenario hashes, seeds, engines, software",
)
def get_manifest(request: Request, comparison_id: ComparisonId) -> JSONResponse:
    """The manifest that lets anyone re-run the comparison and get the same numbers."""
    store, _ = _readable(request, comparison_id)
    return JSONResponse(store.manifest(comparison_id))


@router.get(
    "/comparisons/{comparison_id}/kpis",
    name="comparison_kpis",
    response_model=KpiTable,
    responses=_NOT_FOUND,
    summary="KPI table with 95% confidence intervals",
)
def get_kpis(request: Request, comparison_id: ComparisonId) -> KpiTable:
    """Per-scenario KPIs and plan − baseline differences, each with its interval and verdict."""
    _, c = _readable(request, comparison_id)
    return KpiTable(
        id=c.id,
        baseline=c.baseline,
        plans=c.plans,
        kpis=c.kpis,
        differences=c.differences,
        not_evaluated=c.not_evaluated,
    )


@router.get(
    "/comparisons/{comparison_id}/tables/{table}/{plan}",
    name="comparison_table",
    response_class=Response,
    responses=_GEOJSON_OR_NOT_FOUND,
    summary="Per-key differences of a plan against the baseline in one table, with 95% intervals (GeoJSON, WGS84)",
)
def get_table(request: Request, comparison_id: ComparisonId, table: TableId, plan: PlanId) -> Response:
    """Every key of the table (street edge, building, zone, grid cell) with, per value, the baseline and
    plan means, their difference, its 95% interval over the seeds and whether it stands out from
    run-to-run noise (``<value>_real``)."""
    store, comparison = _readable(request, comparison_id)
    frame = store.table_differences(comparison_id, table, plan)
    key = next((t.key for t in comparison.tables if t.id == table), [])
    return Response(_feature_collection(frame, key), media_type=GEOJSON_MEDIA_TYPE)


@router.get(
    "/comparisons/{comparison_id}/report",
    name="comparison_report",
    response_class=FileResponse,
    responses={**_NOT_FOUND, 200: {"content": {"text/html": {}}, "description": "The HTML report"}},
    summary="The self-contained HTML report",
)
def get_report(request: Request, comparison_id: ComparisonId, lang: ReportLang = None) -> FileResponse:
    """The report ``civictwin compare`` wrote, as is, in the reader's language: ``lang``, else the
    ``lang`` cookie, else Accept-Language, as the consultation page chooses; English (``report.html``)
    when nothing matches, or for a comparison written before reports were translated."""
    store, _ = _readable(request, comparison_id, params=("lang",))
    code = choose(
        override=lang,
        cookie=request.cookies.get(COOKIE),
        accept_language=request.headers.get("accept-language"),
    )
    path = store.run_dir(comparison_id) / report_file(code)
    if not path.is_file():
        code, path = DEFAULT, store.part(comparison_id, REPORT_FILE)
    return FileResponse(
        path,
        media_type="text/html; charset=utf-8",
        headers={"Content-Language": code, "Vary": "Accept-Language, Cookie"},
    )
