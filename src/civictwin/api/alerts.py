"""Alerts, rules and live sensors for the viewer and other systems.

* ``GET /alerts``, ``GET /alerts/{id}``: alerts, newest first, with the evidence that opened them;
* ``GET /alerts/rules``; ``POST /alerts/rules`` and ``DELETE /alerts/rules/{name}`` (admin role): the
  twin's rules, from ``twin.toml`` (read-only here) and added through the API;
* ``GET /live/sensors``: every datastream as a GeoJSON point with its latest value, its rules' limits
  and its status (alert, beyond a limit, ok, no data), which the viewer colours;
* ``GET /live/sensors/{id}``: a datastream's recent observations with its limits and alerts, for a chart.

Access follows the datasets: a datastream (and its alerts) is visible to those who may read its
dataset (public, internal, restricted, as for every layer); a scenario alert to those who may read
comparisons. What a caller may not see does not exist for them (404, absent from listings).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from civictwin.api.context import PublishedTwin, get_twin
from civictwin.api.problems import ProblemError, bad_request, not_found
from civictwin.api.query import check_params
from civictwin.api.scenarios import readable_comparison_ids
from civictwin.api.security import current_principal
from civictwin.config import CONFIG_FILENAME, AccessLevel, load_config
from civictwin.config_live import RuleConfig
from civictwin.errors import StoreError
from civictwin.governance.access import can_read
from civictwin.governance.tokens import Principal, Role
from civictwin.live.status import limits_for, sensor_status
from civictwin.store.alerts import Alert, AlertStatus, AlertStore, open_alert_store
from civictwin.store.observations import (
    DatastreamInfo,
    ObservationStore,
    has_observations,
    iso,
    open_observations,
)
from civictwin.store.sensor_map import datastream_positions

GEOJSON_MEDIA_TYPE = "application/geo+json"
MAX_HOURS = 24 * 31
MAX_POINTS = 10_000
_SCAN_LIMIT = 100_000
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such resource (or not visible to you)"}
}

router = APIRouter(tags=["Alerts and live sensors"])


# ---- the twin's live stores and rules ------------------------------------------------------------------


OBSERVATIONS_RECHECK_S = 5.0
"""How long (s) a worker serving a PostGIS twin without observations trusts its last look for them:
each look opens a new database connection, so it is not made on every request, and a first import
is served within this time. A DuckDB twin's look (one ``stat`` of a file) is made on every request."""


@dataclass
class _Live:
    """The alert and observation stores of one served twin, opened once per app."""

    alerts: AlertStore
    observations: ObservationStore | None
    looked_at: float
    """When the observation store was last looked for (``time.monotonic()``, s)."""


_lock = threading.Lock()


def _live(request: Request) -> _Live:
    """The twin's live stores (the observation store once it exists: serving never creates it)."""
    twin = get_twin(request)
    opened: dict[Path, _Live] = request.app.state.__dict__.setdefault("live_stores", {})
    with _lock:
        live = opened.get(twin.store_path)
        if live is not None and (live.observations is not None or _looked_lately(twin, live)):
            return live
        looked_at = time.monotonic()
        exists = has_observations(twin.location)
        if live is not None and not exists:
            live.looked_at = looked_at
            return live
        observations = open_observations(twin.location, read_only=True) if exists else None
        alerts = live.alerts if live is not None else open_alert_store(twin.location)
        live = opened[twin.store_path] = _Live(alerts, observations, looked_at)
        return live


def _looked_lately(twin: PublishedTwin, live: _Live) -> bool:
    """Whether a PostGIS twin's observations were looked for less than
    :data:`OBSERVATIONS_RECHECK_S` ago (a DuckDB twin's are looked for every time)."""
    return twin.location.dsn is not None and time.monotonic() - live.looked_at < OBSERVATIONS_RECHECK_S


def _config_rules(twin: PublishedTwin) -> list[RuleConfig]:
    """The rules of ``twin.toml`` (none when the twin is served from a bare store file)."""
    if not (twin.twin_dir / CONFIG_FILENAME).is_file():
        return []
    return list(load_config(twin.twin_dir).rules)


def _rules(request: Request) -> list[RuleConfig]:
    return [*_config_rules(get_twin(request)), *(stored.rule for stored in _live(request).alerts.api_rules())]


def _datasets_access(observations: ObservationStore) -> dict[str, AccessLevel]:
    levels = {}
    for name, spec in observations.datasets().items():
        try:
            levels[name] = AccessLevel(spec.access)
        except ValueError:
            levels[name] = AccessLevel.RESTRICTED  # fails closed, as for layers
    return levels


def _visible_datastreams(request: Request) -> dict[int, DatastreamInfo]:
    observations = _live(request).observations
    if observations is None:
        return {}
    principal = current_principal(request)
    levels = _datasets_access(observations)
    return {
        info.id: info
        for info in observations.datastreams()
        if can_read(principal, info.dataset, levels.get(info.dataset, AccessLevel.RESTRICTED))
    }


def _may_see(
    request: Request, alert: Alert, visible: dict[int, DatastreamInfo], comparisons: set[str]
) -> bool:
    kind, _, rest = alert.subject.partition(":")
    if kind == "datastream":
        return rest.isdigit() and int(rest) in visible
    if current_principal(request).role is Role.ADMIN:
        return True
    if kind == "scenario":  # seen by those who may read the comparison that fired it (and the latest one)
        fired_by = {alert.evidence.get("comparison"), alert.last_evidence.get("comparison")}
        return fired_by <= comparisons
    return False


def _require_admin(principal: Principal) -> None:
    if principal.role is Role.ADMIN:
        return
    if principal.token is None:
        raise ProblemError(401, "this needs an admin token", headers={"WWW-Authenticate": "Bearer"})
    raise ProblemError(403, "this needs the admin role")


# ---- alerts ------------------------------------------------------------------------------------------


@router.get("/alerts", summary="Alerts, newest first")
def list_alerts(
    request: Request,
    status: Annotated[AlertStatus | None, Query(description="open or closed")] = None,
    rule: Annotated[str | None, Query(max_length=63)] = None,
    subject: Annotated[
        str | None, Query(max_length=300, description="datastream:<id> or scenario:<plan>:<kpi>")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JSONResponse:
    """Alerts you may see, newest opened first: rule, subject, status, times, message and evidence."""
    check_params(request, ("status", "rule", "subject", "limit", "offset"))
    visible = _visible_datastreams(request)
    comparisons = readable_comparison_ids(request)
    found = _live(request).alerts.alerts(status=status, rule=rule, subject=subject, limit=_SCAN_LIMIT)
    shown = [a for a in found if _may_see(request, a, visible, comparisons)]
    page = shown[offset : offset + limit]
    return JSONResponse(
        {
            "alerts": [_alert_json(a, visible) for a in page],
            "numberMatched": len(shown),
            "numberReturned": len(page),
        }
    )


def _alert_json(alert: Alert, visible: dict[int, DatastreamInfo]) -> dict[str, Any]:
    body = alert.as_json()
    kind, _, rest = alert.subject.partition(":")
    if kind == "datastream" and rest.isdigit() and int(rest) in visible:
        info = visible[int(rest)]
        body["datastream"] = {"id": info.id, "key": info.key, "name": info.name, "unit": info.unit.code}
    return body


@router.get("/alerts/rules", summary="The twin's rules")
def list_rules(request: Request) -> JSONResponse:
    """Every rule: those of ``twin.toml`` (``source: twin.toml``) and those added through the API."""
    check_params(request, ())
    twin = get_twin(request)
    rules = [
        {**r.model_dump(mode="json", exclude_none=True), "source": CONFIG_FILENAME}
        for r in _config_rules(twin)
    ]
    for stored in _live(request).alerts.api_rules():
        rules.append(
            {
                **stored.rule.model_dump(mode="json", exclude_none=True),
                "source": "api",
                "created_at": stored.created_at,
                "created_by": stored.created_by,
            }
        )
    return JSONResponse({"rules": rules})


@router.post("/alerts/rules", status_code=201, summary="Add a rule (admin)")
def add_rule(request: Request, definition: Annotated[dict[str, Any], Body()]) -> JSONResponse:
    """Add a rule, written as in ``[[rules]]`` of ``twin.toml``; a running ``civictwin live`` uses it
    within a second."""
    check_params(request, ())
    principal = current_principal(request)
    _require_admin(principal)
    try:
        rule = RuleConfig.model_validate(definition)
    except ValidationError as exc:
        raise bad_request(_first_error(exc)) from None
    twin = get_twin(request)
    if rule.name in {r.name for r in _config_rules(twin)}:
        raise ProblemError(409, f"a rule named '{rule.name}' is defined in {CONFIG_FILENAME}")
    try:
        stored = _live(request).alerts.add_rule(rule, created_by=principal.id)
    except StoreError as exc:
        raise ProblemError(409, exc.message) from None
    body = {
        **rule.model_dump(mode="json", exclude_none=True),
        "source": "api",
        "created_at": stored.created_at,
    }
    return JSONResponse(body, status_code=201)


@router.delete("/alerts/rules/{name}", status_code=204, responses=_NOT_FOUND, summary="Delete a rule (admin)")
def delete_rule(request: Request, name: Annotated[str, PathParam(max_length=63)]) -> Response:
    """Delete a rule added through the API (those of ``twin.toml`` are edited there)."""
    check_params(request, ())
    _require_admin(current_principal(request))
    twin = get_twin(request)
    if name in {r.name for r in _config_rules(twin)}:
        raise ProblemError(409, f"rule '{name}' is defined in {CONFIG_FILENAME}; edit it there")
    if not _live(request).alerts.delete_rule(name):
        raise not_found(f"no rule named '{name}' added through the API")
    return Response(status_code=204)


@router.get("/alerts/{alert_id}", responses=_NOT_FOUND, summary="One alert with its evidence")
def get_alert(request: Request, alert_id: Annotated[int, PathParam(ge=1, le=2**63 - 1)]) -> JSONResponse:
    """One alert; admins also see its webhook deliveries (target, event, status, attempts, last error)."""
    check_params(request, ())
    live = _live(request)
    alert = live.alerts.alert(alert_id)
    visible = _visible_datastreams(request)
    if alert is None or not _may_see(request, alert, visible, readable_comparison_ids(request)):
        raise not_found(f"no alert {alert_id}")
    body = _alert_json(alert, visible)
    if current_principal(request).role is Role.ADMIN:
        body["deliveries"] = live.alerts.deliveries(alert_id)
    return JSONResponse(body)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required key is missing"
    return f"{where}: {message}" if where else message


# ---- live sensors ------------------------------------------------------------------------------------


@router.get("/live/sensors", summary="Sensors with their latest value, limits and status (GeoJSON)")
def list_sensors(request: Request) -> Response:
    """Every datastream you may read, as a GeoJSON point at its Thing's location."""
    check_params(request, ())
    live = _live(request)
    features: list[dict[str, Any]] = []
    visible = _visible_datastreams(request)
    if live.observations is not None and visible:
        rules = _rules(request)
        positions = datastream_positions(live.observations)
        latest = _latest(live.observations, sorted(visible))
        open_counts = _open_counts(live.alerts)
        for ds, info in visible.items():
            if ds not in positions:
                continue
            features.append(
                _sensor_feature(info, positions[ds], latest.get(ds), rules, open_counts.get(ds, 0))
            )
    body = {"type": "FeatureCollection", "features": features, "numberReturned": len(features)}
    return Response(json.dumps(body, allow_nan=False), media_type=GEOJSON_MEDIA_TYPE)


def _latest(observations: ObservationStore, ids: Sequence[int]) -> dict[int, tuple[int, float | None]]:
    frame = observations.latest(ids)
    return {
        int(ds): (int(ms), None if math.isnan(value) else float(value))
        for ds, ms, value in zip(
            frame["datastream_id"].tolist(),
            frame["phenomenon_time"].tolist(),
            frame["result"].tolist(),
            strict=True,
        )
    }


def _open_counts(alerts: AlertStore) -> dict[int, int]:
    counts: dict[int, int] = {}
    for _, subject in alerts.open_alerts(subject_prefix="datastream:"):
        ds = subject.partition(":")[2]
        if ds.isdigit():
            counts[int(ds)] = counts.get(int(ds), 0) + 1
    return counts


def _sensor_feature(
    info: DatastreamInfo,
    position: tuple[float, float],
    latest: tuple[int, float | None] | None,
    rules: Sequence[RuleConfig],
    open_alerts: int,
) -> dict[str, Any]:
    limits = limits_for(rules, info)
    value = latest[1] if latest else None
    return {
        "type": "Feature",
        "id": info.id,
        "geometry": {"type": "Point", "coordinates": [position[0], position[1]]},
        "properties": {
            "id": info.id,
            "key": info.key,
            "name": info.name,
            "observed_property": info.observed_property,
            "unit": info.unit.code,
            "unit_symbol": info.unit.symbol,
            "dataset": info.dataset,
            "latest_time": iso(latest[0]) if latest else None,
            "latest_result": value,
            "limits": [limit.as_json() for limit in limits],
            "open_alerts": open_alerts,
            "status": str(sensor_status(value, limits, open_alerts=open_alerts)),
        },
    }


@router.get("/live/sensors/{datastream_id}", responses=_NOT_FOUND, summary="A sensor's recent observations")
def sensor_series(
    request: Request,
    datastream_id: Annotated[int, PathParam(ge=1)],
    hours: Annotated[
        float, Query(gt=0, le=MAX_HOURS, description="How far back from its newest observation")
    ] = 48,
) -> Response:
    """The datastream's observations of the ``hours`` before its newest one (at most 10,000), with its
    rules' limits and the alerts on it that overlap that time."""
    check_params(request, ("hours",))
    live = _live(request)
    info = _visible_datastreams(request).get(datastream_id)
    if info is None or live.observations is None:
        raise not_found(f"no sensor {datastream_id}")
    newest = _latest(live.observations, [datastream_id]).get(datastream_id)
    points: list[list[Any]] = []
    start = end = None
    if newest is not None:
        end = newest[0] + 1
        start = end - 1 - round(hours * 3_600_000)
        frame = live.observations.observations(
            datastream_id, start=start, end=end, limit=MAX_POINTS, descending=True
        )
        points = [
            [int(ms), None if math.isnan(v) else float(v)]
            for ms, v in zip(
                frame["phenomenon_time"].tolist()[::-1], frame["result"].tolist()[::-1], strict=True
            )
        ]
    alerts = [
        a.as_json()
        for a in live.alerts.alerts(subject=f"datastream:{datastream_id}", limit=1000)
        if start is None or a.closed_at is None or a.closed_at.timestamp() * 1000 >= start
    ]
    body = {
        "datastream": {"id": info.id, "key": info.key, "name": info.name, "unit": info.unit.code,
                       "unit_symbol": info.unit.symbol, "observed_property": info.observed_property},
        "start": iso(start) if start is not None else None,
        "end": iso(end - 1) if end is not None else None,
        "observations": points,
        "limits": [limit.as_json() for limit in limits_for(_rules(request), info)],
        "alerts": alerts,
    }  # fmt: skip
    return Response(json.dumps(body, allow_nan=False), media_type="application/json")
