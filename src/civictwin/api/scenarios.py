"""Scenario and comparison endpoints: the evidence of traffic comparisons, as JSON, GeoJSON and HTML.

A comparison lives in ``<twin dir>/runs/<comparison id>/`` as written by ``civictwin compare``:
``comparison.json`` (KPIs with 95% confidence intervals, differences, a plain-language summary),
``manifest.json``, ``edges_<scenario>.parquet``, ``edge_diff_<plan>.parquet`` (GeoParquet in WGS84),
``report.html`` and a ``complete`` marker written last. Only complete comparisons are published: a run
that is still going or was interrupted is invisible here, so nothing half-written is ever shown.

Scenario files are ``<twin dir>/scenarios/*.toml``. The viewer and other systems read the same
evidence through these endpoints. Ids in URLs are checked against a strict pattern and must name a
directory directly under ``runs/`` (no path traversal); every failure is a 404 problem document.

Access: comparisons derive from the twin's road network and zones, so only callers who may read
those layers see them; for everyone else they do not exist (empty listings, 404), as with any
forbidden layer.
"""

from __future__ import annotations

import json
import logging
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import geopandas as gpd
from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from civictwin.api.context import get_twin
from civictwin.api.problems import ProblemError, not_found
from civictwin.api.query import check_params
from civictwin.api.security import current_principal

logger = logging.getLogger(__name__)

RUNS_DIR = "runs"
SCENARIOS_DIR = "scenarios"
COMPLETE_MARKER = "complete"
COMPARISON_FILE = "comparison.json"
MANIFEST_FILE = "manifest.json"
REPORT_FILE = "report.html"

COMPARISON_SOURCES = ("network_edges", "zones")
"""Twin layers a comparison derives from: reading comparisons needs read access to each present one."""

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
GEOJSON_MEDIA_TYPE = "application/geo+json"


ComparisonId = Annotated[
    str, PathParam(description="A comparison (a folder under <twin>/runs/)", max_length=128)
]
PlanId = Annotated[str, PathParam(description="One of the comparison's plans", max_length=128)]


def _finite_or_none(value: Any) -> Any:
    """NaN and infinities (which JSON cannot carry) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


FiniteOrNone = Annotated[float | None, BeforeValidator(_finite_or_none)]
"""A number from ``comparison.json``; NaN and infinities are read as null."""


class KpiRow(BaseModel):
    """One KPI of one scenario aggregated over the seeds: mean and 95% confidence interval."""

    model_config = ConfigDict(extra="allow")

    kpi: str
    unit: str
    scenario: str
    mean: FiniteOrNone
    ci_low: FiniteOrNone
    ci_high: FiniteOrNone
    n: int = Field(ge=0, description="Number of seeds (runs) aggregated")


class DifferenceRow(BaseModel):
    """A plan minus the baseline for one KPI, with its 95% interval and a verdict in words."""

    model_config = ConfigDict(extra="allow")

    kpi: str
    plan: str
    mean: FiniteOrNone
    ci_low: FiniteOrNone
    ci_high: FiniteOrNone
    distinguishable: bool = Field(description="Whether the interval excludes zero (not within noise)")
    words: str


class Comparison(BaseModel):
    """The content of ``comparison.json``: a baseline, its plans, KPIs, differences and a summary."""

    model_config = ConfigDict(extra="allow")

    id: str
    created: str
    baseline: str
    plans: list[str]
    kpis: list[KpiRow]
    differences: list[DifferenceRow]
    summary: list[str]


class ComparisonLinks(BaseModel):
    """Where the parts of a comparison are served."""

    self: str
    manifest: str
    kpis: str
    report: str
    edges: dict[str, str] = Field(description="GeoJSON edge differences, by plan")
    zones: dict[str, str] = Field(description="GeoJSON zone differences with 95% intervals, by plan")


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
    """The KPI table of a comparison: per-scenario KPIs and plan − baseline differences."""

    id: str
    baseline: str
    plans: list[str]
    kpis: list[KpiRow]
    differences: list[DifferenceRow]


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
# The comparison routes that answer with a GeoJSON FeatureCollection (edges, zones).
_GEOJSON_OR_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    **_NOT_FOUND,
    200: {"content": {GEOJSON_MEDIA_TYPE: {}}, "description": "FeatureCollection"},
}


def check_id(comparison_id: str) -> None:
    """A 404 problem unless ``comparison_id`` could name a folder directly under ``runs/``."""
    if not _ID.match(comparison_id) or ".." in comparison_id:
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
        if not (path / COMPLETE_MARKER).is_file():
            raise not_found(f"comparison '{comparison_id}' is not complete")
        return path

    def comparison(self, comparison_id: str) -> Comparison:
        """The validated ``comparison.json`` of a complete comparison."""
        path = self.run_dir(comparison_id) / COMPARISON_FILE
        try:
            return Comparison.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as exc:
            logger.warning("unreadable %s: %s", path, str(exc).splitlines()[0])
            raise not_found(f"comparison '{comparison_id}' has no readable {COMPARISON_FILE}") from None

    def all_comparisons(self) -> list[Comparison]:
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
        """A file of a complete comparison (manifest, report, edge results)."""
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

    def edge_differences(self, comparison_id: str, plan: str) -> gpd.GeoDataFrame:
        """The edge-level differences of ``plan`` against the baseline, in WGS84."""
        return self._plan_layer(comparison_id, plan, "edge_diff", "edges")

    def zone_differences(self, comparison_id: str, plan: str) -> gpd.GeoDataFrame:
        """The per-zone differences of ``plan`` against the baseline, with 95% intervals, in WGS84."""
        return self._plan_layer(comparison_id, plan, "zone_diff", "zones")

    def _plan_layer(self, comparison_id: str, plan: str, prefix: str, what: str) -> gpd.GeoDataFrame:
        comparison = self.comparison(comparison_id)
        if plan not in comparison.plans or not _ID.match(plan):
            raise not_found(f"comparison '{comparison_id}' has no plan '{plan[:80]}'")
        path = self.part(comparison_id, f"{prefix}_{plan}.parquet")
        try:
            frame = gpd.read_parquet(path)
        except (OSError, ValueError) as exc:
            logger.warning("unreadable %s: %s", path, exc)
            raise not_found(f"comparison '{comparison_id}' has no readable {what} for '{plan}'") from None
        if frame.crs is not None and frame.crs.to_epsg() != 4326:
            frame = frame.to_crs(4326)
        return frame

    def scenarios(self, comparisons: list[Comparison]) -> list[ScenarioItem]:
        """Every ``scenarios/*.toml``, each with those of ``comparisons`` that include it."""
        folder = self.twin_dir / SCENARIOS_DIR
        if not folder.is_dir():
            return []
        return [_scenario_item(path, comparisons) for path in sorted(folder.glob("*.toml"))]


def _scenario_item(path: Path, comparisons: list[Comparison]) -> ScenarioItem:
    """Describe one scenario file; a malformed one is listed with its error rather than hidden."""
    error = None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        data, error = {}, f"{path.name}: {exc}"
    section = data.get("scenario")
    table: dict[str, Any] = section if isinstance(section, dict) else data
    name = str(table.get("name") or path.stem)
    interventions = table.get("interventions", data.get("interventions", []))
    if not isinstance(interventions, list):
        interventions = []
    baseline = table.get("baseline")
    included = [c.id for c in comparisons if {path.stem, name} & {c.baseline, *c.plans}]
    return ScenarioItem(
        id=path.stem,
        file=f"{SCENARIOS_DIR}/{path.name}",
        name=name,
        description=str(table.get("description", "")),
        baseline=str(baseline) if baseline is not None else None,
        interventions=[jsonable_encoder(i) for i in interventions if isinstance(i, dict)],
        comparisons=included,
        error=error,
    )


def _feature_collection(frame: gpd.GeoDataFrame) -> bytes:
    """GeoJSON with NaN as null; feature ids are the edge or zone ids when present."""
    collection = json.loads(frame.to_json(na="null", drop_id=True, to_wgs84=False))
    key = next((k for k in ("edge_id", "zone_id") if k in frame.columns), None)
    if key is not None:
        for feature in collection["features"]:
            feature["id"] = feature["properties"][key]
    collection["numberReturned"] = len(collection["features"])
    return json.dumps(collection, allow_nan=False).encode()


# ---- access and context ----------------------------------------------------------------------------


def _store(request: Request) -> ComparisonStore:
    """The comparisons of the twin this app serves (beside its store when served from a store file)."""
    twin = get_twin(request)
    folder = twin.twin_dir if twin.twin_dir.is_dir() else twin.store_path.parent
    return ComparisonStore(folder)


def may_read_comparisons(request: Request) -> bool:
    """Whether the caller may read comparisons: every twin layer they derive from must be readable.

    Simulations run on ``network_edges`` (whose geometry the edge results carry) with demand from
    ``zones``; a caller who may not read one of those sees no comparison at all (404, as if absent).
    """
    twin = get_twin(request)
    principal = current_principal(request)
    present = [name for name in COMPARISON_SOURCES if name in twin.features.layers]
    return all(twin.policy.allows(principal, name) for name in present)


def _readable(request: Request, comparison_id: str) -> ComparisonStore:
    """The store, once the caller is known to be allowed to see ``comparison_id`` (404 otherwise)."""
    check_params(request, ())
    store = _store(request)
    if not may_read_comparisons(request):
        check_id(comparison_id)
        raise not_found(f"no comparison '{comparison_id}'")
    return store


def _links(request: Request, comparison: Comparison) -> ComparisonLinks:
    def url(name: str, **params: str) -> str:
        return str(request.url_for(name, comparison_id=comparison.id, **params))

    return ComparisonLinks(
        self=url("comparison"),
        manifest=url("comparison_manifest"),
        kpis=url("comparison_kpis"),
        report=url("comparison_report"),
        edges={plan: url("comparison_edges", plan=plan) for plan in comparison.plans},
        zones={plan: url("comparison_zones", plan=plan) for plan in comparison.plans},
    )


# ---- endpoints ---------------------------------------------------------------------------------------

router = APIRouter(tags=["Scenarios and comparisons"])


@router.get("/scenarios", response_model=ScenarioList, responses=_NOT_FOUND, summary="Scenario files")
def list_scenarios(request: Request) -> ScenarioList:
    """Every scenario file of the twin, with the complete comparisons (you may read) that include it."""
    check_params(request, ())
    store = _store(request)
    comparisons = store.all_comparisons() if may_read_comparisons(request) else []
    return ScenarioList(scenarios=store.scenarios(comparisons))


@router.get("/comparisons", response_model=ComparisonList, responses=_NOT_FOUND, summary="Comparisons")
def list_comparisons(request: Request) -> ComparisonList:
    """Complete comparisons, newest first (none for callers who may not read their inputs)."""
    check_params(request, ())
    if not may_read_comparisons(request):
        return ComparisonList(comparisons=[])
    items = [
        ComparisonListItem(
            id=c.id, created=c.created, baseline=c.baseline, plans=c.plans, links=_links(request, c)
        )
        for c in _store(request).all_comparisons()
    ]
    return ComparisonList(comparisons=items)


@router.get(
    "/comparisons/{comparison_id}",
    name="comparison",
    response_model=Comparison,
    responses=_NOT_FOUND,
    summary="A comparison: KPIs, differences and summary",
)
def get_comparison(request: Request, comparison_id: ComparisonId) -> Comparison:
    """The whole ``comparison.json``: KPIs with 95% intervals, differences, plain-language summary."""
    return _readable(request, comparison_id).comparison(comparison_id)


@router.get(
    "/comparisons/{comparison_id}/manifest",
    name="comparison_manifest",
    responses=_NOT_FOUND,
    summary="Run manifest: data versions, scenario hashes, seeds, software",
)
def get_manifest(request: Request, comparison_id: ComparisonId) -> JSONResponse:
    """The manifest that lets anyone re-run the comparison and get the same numbers."""
    return JSONResponse(_readable(request, comparison_id).manifest(comparison_id))


@router.get(
    "/comparisons/{comparison_id}/kpis",
    name="comparison_kpis",
    response_model=KpiTable,
    responses=_NOT_FOUND,
    summary="KPI table with 95% confidence intervals",
)
def get_kpis(request: Request, comparison_id: ComparisonId) -> KpiTable:
    """Per-scenario KPIs and plan − baseline differences, each with its interval and verdict."""
    c = _readable(request, comparison_id).comparison(comparison_id)
    return KpiTable(id=c.id, baseline=c.baseline, plans=c.plans, kpis=c.kpis, differences=c.differences)


@router.get(
    "/comparisons/{comparison_id}/edges/{plan}",
    name="comparison_edges",
    response_class=Response,
    responses=_GEOJSON_OR_NOT_FOUND,
    summary="Edge-level differences of a plan against the baseline (GeoJSON, WGS84)",
)
def get_edges(request: Request, comparison_id: ComparisonId, plan: PlanId) -> Response:
    """Every simulated edge with its plan − baseline differences (flows, speeds, emissions, noise)."""
    frame = _readable(request, comparison_id).edge_differences(comparison_id, plan)
    return Response(_feature_collection(frame), media_type=GEOJSON_MEDIA_TYPE)


@router.get(
    "/comparisons/{comparison_id}/zones/{plan}",
    name="comparison_zones",
    response_class=Response,
    responses=_GEOJSON_OR_NOT_FOUND,
    summary="Per-zone differences of a plan against the baseline, with 95% intervals (GeoJSON, WGS84)",
)
def get_zones(request: Request, comparison_id: ComparisonId, plan: PlanId) -> Response:
    """Every analysis zone with its plan − baseline change in vehicle-km and CO2, each with its 95%
    interval over the seeds and whether it stands out from run-to-run noise."""
    frame = _readable(request, comparison_id).zone_differences(comparison_id, plan)
    return Response(_feature_collection(frame), media_type=GEOJSON_MEDIA_TYPE)


@router.get(
    "/comparisons/{comparison_id}/report",
    name="comparison_report",
    response_class=FileResponse,
    responses={**_NOT_FOUND, 200: {"content": {"text/html": {}}, "description": "The HTML report"}},
    summary="The self-contained HTML report",
)
def get_report(request: Request, comparison_id: ComparisonId) -> FileResponse:
    """The report ``civictwin compare`` wrote, as is."""
    path = _readable(request, comparison_id).part(comparison_id, REPORT_FILE)
    return FileResponse(path, media_type="text/html; charset=utf-8")
