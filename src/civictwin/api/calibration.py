"""Calibration endpoints: the twin's calibration records of its traffic demand, with the count sites as
GeoJSON points coloured by their fit in the viewer.

A record is ``<twin dir>/calibration/calibration-NNN.json`` as ``civictwin calibrate run`` writes it
(:mod:`civictwin.engines.traffic.calibration`). ``GET /calibration`` lists them, newest first;
``GET /calibration/{version}`` serves one: the statement in words, whether it meets the DMRB / TAG
M3.1 criterion, the fit before and after on the sites used and on the held-back sites, and every site
as a point at its edge's midpoint (halfway along the edge, in WGS84) with its worst GEH.

Access follows the comparisons' rule (:mod:`civictwin.api.scenarios`): a record derives from the
layers a traffic run reads, so only callers who may read all of those see it; for everyone else it
does not exist (empty listing, 404).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from shapely.geometry import mapping, shape

from civictwin.api.context import get_twin
from civictwin.api.problems import not_found
from civictwin.api.query import check_params
from civictwin.api.scenarios import GEOJSON_MEDIA_TYPE
from civictwin.api.security import current_principal
from civictwin.engines.traffic.calibration import RECORDS_DIR
from civictwin.engines.traffic.fitreport import site_fits, split_summary
from civictwin.engines.traffic.inputs import READS
from civictwin.store.features import FeatureQuery

_RECORD = re.compile(r"calibration-(\d{3,})\.json")
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such record you may read"}}

Version = Annotated[int, PathParam(description="The record's version (NNN of calibration-NNN)", ge=1)]

router = APIRouter(tags=["Calibration"])


def _folder(request: Request) -> Path:
    twin = get_twin(request)
    base = twin.twin_dir if twin.twin_dir.is_dir() else twin.store_path.parent
    return base / RECORDS_DIR


def _may_read(request: Request) -> bool:
    """Whether the caller may read every layer a traffic run (and so a calibration) derives from."""
    twin = get_twin(request)
    principal = current_principal(request)
    return all(twin.policy.allows(principal, name) for name in READS if name in twin.features.layers)


def _versions(request: Request) -> dict[int, Path]:
    folder = _folder(request)
    if not folder.is_dir():
        return {}
    return {int(m.group(1)): p for p in folder.iterdir() if (m := _RECORD.fullmatch(p.name))}


def _record(path: Path) -> dict[str, Any] | None:
    try:
        record: dict[str, Any] = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _readable(request: Request, version: int) -> dict[str, Any]:
    """Record ``version`` once the caller may read it (404 when absent, unreadable or not allowed)."""
    check_params(request, ())
    path = _versions(request).get(version) if _may_read(request) else None
    record = _record(path) if path is not None else None
    if record is None:
        raise not_found(f"no calibration record {version}")
    return record


def _headline(request: Request, version: int, record: dict[str, Any]) -> dict[str, Any]:
    after = record.get("fit_after", {})
    return {
        "id": record.get("id", f"calibration-{version:03d}"),
        "version": version,
        "created": record.get("created"),
        "statement": record.get("statement", ""),
        "meets_dmrb": bool(after.get("meets_dmrb", False)),
        "converged": bool(record.get("converged", False)),
        "links": {"self": str(request.url_for("calibration_record", version=version))},
    }


def site_points(request: Request, record: dict[str, Any]) -> dict[str, Any]:
    """The record's sites as a GeoJSON FeatureCollection of points at their edges' midpoints (WGS84);
    a site whose edge the twin lacks has a null geometry."""
    reader = get_twin(request).features
    has_edges = "network_edges" in reader.layers
    out = []
    for fit in site_fits(record):
        geometry = None
        if has_edges and fit["edge_id"]:
            page = reader.page("network_edges", FeatureQuery(limit=1, properties={"edge_id": fit["edge_id"]}))
            if page.features:
                line = shape(json.loads(page.features[0])["geometry"])
                geometry = mapping(line.interpolate(0.5, normalized=True))
        out.append({"type": "Feature", "id": fit["site"], "geometry": geometry, "properties": fit})
    return {"type": "FeatureCollection", "features": out, "numberReturned": len(out)}


@router.get("/calibration", responses=_NOT_FOUND, summary="Calibration records of the traffic demand")
def list_calibrations(request: Request) -> JSONResponse:
    """Every readable calibration record you may read, newest first, with its verdict in words."""
    check_params(request, ())
    items = []
    if _may_read(request):
        for version, path in sorted(_versions(request).items(), reverse=True):
            record = _record(path)
            if record is not None:
                items.append(_headline(request, version, record))
    return JSONResponse({"calibrations": items})


@router.get(
    "/calibration/{version}",
    name="calibration_record",
    responses=_NOT_FOUND,
    summary="One calibration record: the fit in words and figures, its sites as GeoJSON points",
)
def get_calibration(request: Request, version: Version) -> JSONResponse:
    """The record's verdict, fit before and after (sites used and held back), the observed vs modelled
    modal split where the constants were calibrated to one, and its count sites."""
    record = _readable(request, version)
    kfold = record.get("kfold", {})
    return JSONResponse(
        {
            **_headline(request, version, record),
            "method": record.get("method", ""),
            "fit_before": record.get("fit_before"),
            "fit_after": record.get("fit_after"),
            "held_back_before": kfold.get("held_back_before"),
            "held_back_after": kfold.get("held_back_after"),
            "held_back_note": kfold.get("note", ""),
            "modal_split": split_summary(record.get("mode_choice")),
            "sites": site_points(request, record),
        }
    )


@router.get(
    "/calibration/{version}/sites",
    response_class=Response,
    responses={**_NOT_FOUND, 200: {"content": {GEOJSON_MEDIA_TYPE: {}}, "description": "FeatureCollection"}},
    summary="A calibration record's count sites as GeoJSON points with their GEH",
)
def get_calibration_sites(request: Request, version: Version) -> Response:
    """The sites alone, as ``application/geo+json`` (for maps)."""
    record = _readable(request, version)
    return Response(json.dumps(site_points(request, record), allow_nan=False), media_type=GEOJSON_MEDIA_TYPE)
