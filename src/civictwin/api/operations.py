"""Endpoints for the people who run the server: liveness, readiness and Prometheus metrics.

``/health/live`` answers 200 while the process serves at all (restart it when this fails);
``/health/ready`` answers 200 while the twin's store can be served and 503 while it cannot (take the
instance out of the load balancer); ``/metrics`` is the Prometheus exposition, for admin tokens (or
anyone, with ``[server] metrics_public = true``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from civictwin.api.context import TwinHolder, get_twin
from civictwin.api.metrics import Metrics
from civictwin.api.problems import not_found
from civictwin.api.query import check_params
from civictwin.api.security import current_principal
from civictwin.governance.tokens import Role

router = APIRouter(tags=["Operations"])


@router.get("/health/live", summary="Liveness: the process answers")
def live(request: Request) -> JSONResponse:
    """Always 200 while the server runs."""
    check_params(request, ())
    return JSONResponse({"status": "live"}, headers={"Cache-Control": "no-store"})


@router.get(
    "/health/ready",
    summary="Readiness: the twin's store can be served",
    responses={503: {"description": "The store is missing or cannot be opened"}},
)
def ready(request: Request) -> JSONResponse:
    """200 with the store's version while it can be served; 503 with the reason while it cannot."""
    check_params(request, ())
    holder: TwinHolder = request.app.state.twin_holder
    is_ready, detail = holder.readiness()
    body = {
        "status": "ready" if is_ready else "not ready",
        "detail": detail,
        "store_version": get_twin(request).version,
    }
    return JSONResponse(body, status_code=200 if is_ready else 503, headers={"Cache-Control": "no-store"})


@router.get(
    "/metrics",
    summary="Prometheus metrics (admin token unless configured public)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, 404: {"description": "Not for this caller"}},
)
def metrics(request: Request) -> Response:
    """The text exposition format of every metric (looks absent to callers who may not read it)."""
    check_params(request, ())
    if not request.app.state.settings.metrics_public and current_principal(request).role is not Role.ADMIN:
        raise not_found("no resource at /metrics")
    registry: Metrics = request.app.state.metrics
    return Response(registry.exposition(), media_type=CONTENT_TYPE_LATEST)
