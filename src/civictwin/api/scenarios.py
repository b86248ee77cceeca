"""Scenario and comparison endpoints: the evidence of traffic comparisons, as JSON, GeoJSON and HTML.

A comparison lives in ``<twin dir>/runs/<comparison id>/`` as written by ``civictwin compare``:
``comparison.json`` (KPIs with 95% confidence intervals, differences, a plain-language summary),
``manifest.json``, ``edges_<scenario>.parquet``, ``edge_diff_<plan>.parquet`` (GeoParquet in WGS84),
``report.html`` and a ``complete`` marker written last. Only complete comparisons are published: a run
that is still going or was interrupted is invisible here, so nothing half-written is ever shown.

Scenario files are ``<twin dir>/scenarios/*.toml``. The viewer and other systems read the same
evidence through these endpoints. Ids in URLs are checked against a strict pattern and must name a
directory directly under ``runs/`` (no path traversal); every failure is a 404 problem document.
"""

from __future__ import annotations

import json
import logging
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

logger = logging.getLogger(__name__)

RUNS_DIR = "runs"
SCENARIOS_DIR = "scenarios"
COMPLETE_MARKER = "complete"
COMPARISON_FILE = "comparison.json"
MANIFEST_FILE = "manifest.json"
REPORT_FILE = "report.html"

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
PROBLEM_MEDIA_TYPE = "application/problem+json"
GEOJSON_MEDIA_TYPE = "application/geo+json"


class KpiRow(BaseModel):
    """One KPI of one scenario aggregated over the seeds: mean and 95% confidence interval."""

    model_config = ConfigDict(extra="allow")

    kpi: str
    unit: str
    scenario: str
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int = Field(ge=0, description="Number of seeds (runs) aggregated")

    @field_validator("mean", "ci_low", "ci_high", mode="before")
    @classmethod
    def _finite_or_none(cls, value: Any) -> Any:
        return _finite_or_none(value)


class DifferenceRow(BaseModel):
    """A plan minus the baseline for one KPI, with its 95% interval and a verdict in words."""

    model_config = ConfigDict(extra="allow")

    kpi: str
    plan: str
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    distinguishable: bool = Field(description="Whether the interval excludes zero (not within noise)")
    words: str

    @field_validator("mean", "ci_low", "ci_high", mode="before")
    @classmethod
    def _finite_or_none(cls, value: Any) -> Any:
        return _finite_or_none(value)


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
    """An RFC 9457 problem document."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str


_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "Unknown or incomplete comparison, or unknown plan"}
}


def _finite_or_none(value: Any) -> Any:
    """NaN and infinities (which JSON cannot carry) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def problem(status: int, title: str, detail: str) -> JSONResponse:
    """A problem+json response; the one way this router reports errors."""
    body = Problem(title=title, status=status, detail=detail).model_dump()
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE)


class _NotPublished(Exception):
    """A requested comparison or plan is unknown, incomplete, unreadable or its id is invalid."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class ComparisonStore:
    """Reads the comparisons and scenario files of one twin directory, safely."""

    twin_dir: Path

    @property
    def runs(self) -> Path:
        return self.twin_dir / RUNS_DIR

    def run_dir(self, comparison_id: str) -> Path:
        """The directory of a complete comparison; raises :class:`_NotPublished` otherwise."""
        if not _ID.match(comparison_id) or ".." in comparison_id:
            raise _NotPublished(f"'{comparison_id[:80]}' is not a valid comparison id")
        runs = self.runs.resolve()
        path = (runs / comparison_id).resolve()
        if path.parent != runs or not path.is_dir():
            raise _NotPublished(f"no comparison '{comparison_id}'")
        if not (path / COMPLETE_MARKER).is_file():
            raise _NotPublished(f"comparison '{comparison_id}' is not complete")
        return path

    def comparison(self, comparison_id: str) -> Comparison:
        """The validated ``comparison.json`` of a complete comparison."""
        path = self.run_dir(comparison_id) / COMPARISON_FILE
        try:
            return Comparison.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as exc:
            logger.warning("unreadable %s: %s", path, str(exc).splitlines()[0])
            raise _NotPublished(f"comparison '{comparison_id}' has no readable {COMPARISON_FILE}") from None

    def all_comparisons(self) -> list[Comparison]:
        """Every complete, readable comparison, newest first (then by id)."""
        if not self.runs.is_dir():
            return []
        found = []
        for child in sorted(self.runs.iterdir()):
            try:
                found.append(self.comparison(child.name))
            except _NotPublished:
                continue
        return sorted(found, key=lambda c: (c.created, c.id), reverse=True)

    def part(self, comparison_id: str, name: str) -> Path:
        """A file of a complete comparison (manifest, report)."""
        path = self.run_dir(comparison_id) / name
        if not path.is_file():
            raise _NotPublished(f"comparison '{comparison_id}' has no {name}")
        return path

    def edge_differences(self, comparison_id: str, plan: str) -> gpd.GeoDataFrame:
        """The edge-level differences of ``plan`` against the baseline, in WGS84."""
        comparison = self.comparison(comparison_id)
        if plan not in comparison.plans or not _ID.match(plan):
            raise _NotPublished(f"comparison '{comparison_id}' has no plan '{plan[:80]}'")
        path = self.part(comparison_id, f"edge_diff_{plan}.parquet")
        try:
            frame = gpd.read_parquet(path)
        except (OSError, ValueError) as exc:
            logger.warning("unreadable %s: %s", path, exc)
            raise _NotPublished(f"comparison '{comparison_id}' has no readable edges for '{plan}'") from None
        if frame.crs is not None and frame.crs.to_epsg() != 4326:
            frame = frame.to_crs(4326)
        return frame

    def scenarios(self) -> list[ScenarioItem]:
        """Every ``scenarios/*.toml`` with the comparisons that include it."""
        folder = self.twin_dir / SCENARIOS_DIR
        if not folder.is_dir():
            return []
        comparisons = self.all_comparisons()
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


def _links(comparison: Comparison, prefix: str) -> ComparisonLinks:
    base = f"{prefix}/comparisons/{comparison.id}"
    return ComparisonLinks(
        self=base,
        manifest=f"{base}/manifest",
        kpis=f"{base}/kpis",
        report=f"{base}/report",
        edges={plan: f"{base}/edges/{plan}" for plan in comparison.plans},
    )


def _feature_collection(frame: gpd.GeoDataFrame) -> bytes:
    """GeoJSON with NaN as null; ids are the edge ids when present."""
    text = frame.to_json(na="null", drop_id=True, to_wgs84=False)
    collection = json.loads(text)
    if "edge_id" in frame.columns:
        for feature in collection["features"]:
            feature["id"] = feature["properties"]["edge_id"]
    collection["numberReturned"] = len(collection["features"])
    return json.dumps(collection, allow_nan=False).encode()


def scenarios_router(twin_dir: Path, *, prefix: str = "") -> APIRouter:
    """The scenario and comparison endpoints over ``twin_dir`` (include it in the app).

    ``prefix`` is where the app mounts the router; it is used in the links of listings.
    """
    store = ComparisonStore(Path(twin_dir))
    router = APIRouter(tags=["scenarios"])

    @router.get("/scenarios", response_model=ScenarioList, summary="Scenario files and their comparisons")
    def list_scenarios() -> ScenarioList:
        return ScenarioList(scenarios=store.scenarios())

    @router.get("/comparisons", response_model=ComparisonList, summary="Complete comparisons, newest first")
    def list_comparisons() -> ComparisonList:
        items = [
            ComparisonListItem(
                id=c.id, created=c.created, baseline=c.baseline, plans=c.plans, links=_links(c, prefix)
            )
            for c in store.all_comparisons()
        ]
        return ComparisonList(comparisons=items)

    @router.get(
        "/comparisons/{comparison_id}",
        response_model=Comparison,
        responses=_NOT_FOUND,
        summary="A comparison: KPIs, differences and summary",
    )
    def get_comparison(comparison_id: str) -> Comparison | JSONResponse:
        try:
            return store.comparison(comparison_id)
        except _NotPublished as exc:
            return problem(404, "Not Found", exc.detail)

    @router.get(
        "/comparisons/{comparison_id}/manifest",
        responses=_NOT_FOUND,
        summary="The run manifest: data versions, scenario hashes, seeds, software",
    )
    def get_manifest(comparison_id: str) -> Response:
        try:
            path = store.part(comparison_id, MANIFEST_FILE)
            manifest = json.loads(path.read_bytes())
        except _NotPublished as exc:
            return problem(404, "Not Found", exc.detail)
        except (OSError, ValueError):
            return problem(404, "Not Found", f"comparison '{comparison_id}' has no readable {MANIFEST_FILE}")
        return JSONResponse(manifest)

    @router.get(
        "/comparisons/{comparison_id}/kpis",
        response_model=KpiTable,
        responses=_NOT_FOUND,
        summary="KPI table with 95% confidence intervals",
    )
    def get_kpis(comparison_id: str) -> KpiTable | JSONResponse:
        try:
            c = store.comparison(comparison_id)
        except _NotPublished as exc:
            return problem(404, "Not Found", exc.detail)
        return KpiTable(id=c.id, baseline=c.baseline, plans=c.plans, kpis=c.kpis, differences=c.differences)

    @router.get(
        "/comparisons/{comparison_id}/edges/{plan}",
        responses={
            **_NOT_FOUND,
            200: {"content": {GEOJSON_MEDIA_TYPE: {}}, "description": "GeoJSON FeatureCollection"},
        },
        summary="Edge-level differences of a plan against the baseline (GeoJSON, WGS84)",
    )
    def get_edges(comparison_id: str, plan: str) -> Response:
        try:
            frame = store.edge_differences(comparison_id, plan)
        except _NotPublished as exc:
            return problem(404, "Not Found", exc.detail)
        return Response(_feature_collection(frame), media_type=GEOJSON_MEDIA_TYPE)

    @router.get(
        "/comparisons/{comparison_id}/report",
        responses={**_NOT_FOUND, 200: {"content": {"text/html": {}}, "description": "The HTML report"}},
        summary="The self-contained HTML report",
    )
    def get_report(comparison_id: str) -> Response:
        try:
            path = store.part(comparison_id, REPORT_FILE)
        except _NotPublished as exc:
            return problem(404, "Not Found", exc.detail)
        return FileResponse(path, media_type="text/html; charset=utf-8")

    return router
