"""``GET /comparisons/{id}/equity``: a comparison's equity view, as ``civictwin compare`` wrote it.

The view (:mod:`civictwin.compare.equity`) breaks each zone value's change down by income or age
class of zones, with 95% intervals over the seeds; it exists when the twin has
``[sociodemographics] equity_by``. Access follows the comparison's: a caller who may not read it gets
404, as for its other parts.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from civictwin.api.problems import not_found
from civictwin.api.scenarios import ComparisonId, readable
from civictwin.compare.equity import EQUITY_FILE

router = APIRouter(tags=["scenarios"])


@router.get(
    "/comparisons/{comparison_id}/equity",
    name="comparison_equity",
    summary="KPI changes by income or age group of zones, with 95% intervals",
    responses={404: {"description": "No such comparison, or it has no equity view"}},
)
def get_equity(request: Request, comparison_id: ComparisonId) -> JSONResponse:
    """Per grouping, class and plan: each zone value's baseline and plan means, the change and its
    interval; ``not_broken_down`` names the network-wide KPIs that have no value per zone, and why."""
    store, _ = readable(request, comparison_id)
    path = store.part(comparison_id, EQUITY_FILE)
    try:
        return JSONResponse(json.loads(path.read_bytes()))
    except (OSError, ValueError):
        raise not_found(f"comparison '{comparison_id}' has no readable {EQUITY_FILE}") from None
