"""Citizen proposals on a consultation (docs/consultation.md#citizen-proposals).

* ``GET /consultations/{c}/proposals/menu``: the interventions a proposal may use, from the installed
  engines, and the street tiles to click;
* ``POST /consultations/{c}/proposals/validate``: every problem of a draft, field by field (nothing stored);
* ``POST /consultations/{c}/proposals``: submit (the same validation; consent required), answered with
  the proposal's id and pseudonym;
* ``POST /consultations/{c}/proposals/delete``: the author deletes a proposal with its deletion code;
* ``GET /consultations/{c}/proposals``: approved proposals with their state and, once run, their KPIs
  with their own 95% intervals beside the official scenarios (public, pseudonyms only);
* ``GET /consultations/{c}/proposals/review`` and ``POST …/proposals/{id}/decision`` and
  ``…/proposals/{id}/cancel`` (moderator, analyst or admin): every proposal with its decision and
  run, approve (which queues the run) or reject with a reason, cancel a queued or running run.

Writes are protected as contributions are (:mod:`civictwin.api.contributions`): JSON only, cross-site
requests refused, bodies over 8 KiB refused, the consultation's ``proposals_per_hour`` submissions per source
(counted under a keyed hash of its address, in memory). No name, e-mail or address is asked or kept;
after the consultation's retention period proposals are anonymised (those never published deleted).

The menu, validation, submission and deletion read the page's language (``?lang=``, its cookie, its
Accept-Language, as the consultation page): the menu's words, the problems and the refusals the panel
shows are in it (docs/consultation.md#languages).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from civictwin.api.consultations import Lang, page_language
from civictwin.api.context import get_twin
from civictwin.api.contributions import (
    DeletionIn,
    Now,
    closed,
    consultation_of,
    json_body,
    json_body_doc,
    json_same_origin,
    require_role,
    validated,
)
from civictwin.api.floodguard import FloodGuard
from civictwin.api.limits import retry_after
from civictwin.api.problems import ProblemError, not_found
from civictwin.api.proposal_queue import ProposalQueue, remove_files
from civictwin.api.query import check_params
from civictwin.api.scenarios import ComparisonId, readable
from civictwin.api.security import current_principal
from civictwin.compare.consultation import kpi_entries
from civictwin.compare.participation import code_hash, deletion_code, pseudonym
from civictwin.config import CONFIG_FILENAME, load_config
from civictwin.config_consult import ProposalsSection
from civictwin.engines.registry import intervention_catalog, load_engines
from civictwin.errors import ScenarioError
from civictwin.governance.tokens import Role
from civictwin.i18n import Language
from civictwin.scenarios.proposal import STREET_KEYS, Checked, Network, check_draft, menu
from civictwin.scenarios.spec import InterventionCatalog, StreetSelection
from civictwin.store.proposals import (
    PUBLIC_STATES,
    NewProposal,
    Proposal,
    ProposalStore,
    State,
    TransitionError,
    open_proposal_store,
)

STAFF = (Role.MODERATOR, Role.ANALYST, Role.ADMIN)
"""Who approves, rejects and cancels proposals: moderators (is it fit to publish?), analysts (is it
worth the compute?) and admins."""
STREETS = "network_edges"
_ANONYMISE_EVERY_S = 60.0
_EDGE_COLUMNS = ["edge_id", "osm_id", "name", "car", "geometry"]

router = APIRouter(tags=["Consultations"])
ProposalId = Annotated[int, PathParam(ge=1, le=2**63 - 1)]
_lock = threading.Lock()


@cache
def installed_catalog() -> InterventionCatalog:
    """The intervention types of the installed engines (loaded once per process)."""
    return intervention_catalog(load_engines())


@dataclass
class _Proposals:
    """One served twin's proposal store, run queue, flood limits and street network, opened once per app."""

    store: ProposalStore
    queue: ProposalQueue
    floods: FloodGuard
    """Each source's hourly allowance of submissions (shared by the server's workers or replicas)."""
    network: tuple[str, Network] | None = None
    anonymised_at: datetime | None = None
    """When proposals were last anonymised up to their retention period (at most once a minute)."""


def open_proposals(app: FastAPI, twin_dir: Path, store_path: Path) -> _Proposals:
    """The twin's proposals (opened on first use; the queue uses ``app.state.proposal_command`` when a
    test set one)."""
    opened: dict[Path, _Proposals] = app.state.__dict__.setdefault("proposals", {})
    with _lock:
        found = opened.get(store_path)
        if found is None:
            location = app.state.twin_holder.current().location
            store = open_proposal_store(location)
            queue = ProposalQueue(store, twin_dir)
            command = getattr(app.state, "proposal_command", None)
            if command is not None:
                queue.command = command
            floods = FloodGuard.for_server(app.state.settings, store_path, location, kind="proposals")
            found = opened[store_path] = _Proposals(store, queue, floods)
        return found


def install(app: FastAPI, twin_dir: Path, store_path: Path) -> None:
    """Run the queue while the app runs, when a consultation of the twin takes proposals: started with
    the app, stopped (its runs re-queued) when the app stops."""
    config_file = twin_dir / CONFIG_FILENAME
    if not config_file.is_file() or not any(c.proposals for c in load_config(twin_dir).consultations):
        return
    app.router.on_startup.append(lambda: open_proposals(app, twin_dir, store_path).queue.start())
    app.router.on_shutdown.append(lambda: open_proposals(app, twin_dir, store_path).queue.stop())


def _proposals(request: Request) -> _Proposals:
    twin = get_twin(request)
    return open_proposals(request.app, twin.twin_dir, twin.store_path)


def _settings(request: Request) -> ProposalsSection:
    return load_config(get_twin(request).twin_dir).proposals


def _taking(request: Request, comparison_id: str, now: datetime, *, params: tuple[str, ...] = ()) -> Any:
    """The consultation, when it takes proposals (404 otherwise); proposals older than its retention
    period anonymised first (at most once a minute). ``params``: the query parameters the route takes."""
    found = consultation_of(request, comparison_id, now, params=params)
    if not found.config.proposals:
        raise not_found(f"consultation '{comparison_id}' takes no proposals (proposals = true in its block)")
    part = _proposals(request)
    if part.anonymised_at is None or abs((now - part.anonymised_at).total_seconds()) >= _ANONYMISE_EVERY_S:
        older = now - timedelta(days=found.config.retention_days)
        for gone in part.store.anonymise(comparison_id, older_than=older):
            remove_files(get_twin(request).twin_dir, gone)
        part.anonymised_at = now
    return found


def _offered(request: Request) -> list[str]:
    """The types on the menu: ``[proposals] types``, else every type placed on a map."""
    chosen = _settings(request).types
    return [entry["type"] for entry in menu(installed_catalog(), offered=chosen)]


def _network(request: Request, lang: Language) -> Network:
    """The twin's street edges, read once per store version. Only for callers who may read them:
    the problems name streets, so they would tell others which streets the twin holds."""
    twin = get_twin(request)
    part = _proposals(request)
    if STREETS not in twin.features.layers or not twin.policy.allows(current_principal(request), STREETS):
        raise ProblemError(
            409, lang.gettext("no street network you may read here, so proposals cannot be checked")
        )
    if part.network is None or part.network[0] != twin.version:
        edges = twin.store.read_table(STREETS, columns=_EDGE_COLUMNS)
        part.network = (twin.version, Network(edges=edges, crs=twin.store.crs))
    return part.network[1]


class ProposalIn(BaseModel):
    """A proposal as the page sends it (checked field by field by
    :func:`civictwin.scenarios.proposal.check_draft`; ``consent`` needed to submit)."""

    title: str = Field(description="3 to 120 characters")
    description: str = Field(default="", description="At most 1000 characters")
    interventions: list[dict[str, Any]] = Field(description="Scenario interventions, each with its type")
    consent: bool = Field(default=False, description="The consent text was accepted (submit only)")


@router.get("/consultations/{comparison_id}/proposals/menu", summary="What a proposal may contain")
def proposal_menu(request: Request, comparison_id: ComparisonId, now: Now, lang: Lang = None) -> JSONResponse:
    """The intervention types residents may propose, with how each is placed on the map (clicked
    streets or a drawn area) and its settings, and the street tiles to click (when public). Labels,
    help and setting names are in the page's language (``lang``, else its cookie, else
    Accept-Language) for civictwin's own types."""
    check_params(request, ("lang",))
    reader = page_language(request, lang)
    _taking(request, comparison_id, now, params=("lang",))
    twin = get_twin(request)
    settings = _settings(request)
    streets = twin.policy.allows(current_principal(request), STREETS) and STREETS in twin.tiles.layers()
    return JSONResponse({
        "consultation": comparison_id,
        "interventions": menu(installed_catalog(), offered=settings.types, lang=reader),
        "max_interventions": settings.max_interventions,
        "streets": str(request.url_for("tilejson", layer=STREETS)) if streets else None,
        "streets_layer": STREETS,
    })  # fmt: skip


@router.post(
    "/consultations/{comparison_id}/proposals/validate",
    summary="Check a draft proposal (nothing is stored)",
    openapi_extra=json_body_doc(ProposalIn),
)
async def validate_proposal(
    request: Request, comparison_id: ComparisonId, now: Now, lang: Lang = None
) -> JSONResponse:
    """Every problem of the draft, each naming its field; ``valid`` when there is none. The messages
    are in the page's language (``lang``, else its cookie, else Accept-Language)."""
    check_params(request, ("lang",))
    reader = page_language(request, lang)
    json_same_origin(request)
    body = await json_body(request)
    _taking(request, comparison_id, now, params=("lang",))
    draft = {k: v for k, v in body.items() if k != "consent"} if isinstance(body, dict) else body
    checked = _checked(request, draft, reader)
    return JSONResponse({"valid": not checked.problems, "problems": [p.as_dict() for p in checked.problems]})


@router.post(
    "/consultations/{comparison_id}/proposals",
    status_code=202,
    summary="Submit a proposal",
    openapi_extra=json_body_doc(ProposalIn),
)
async def submit_proposal(
    request: Request, comparison_id: ComparisonId, now: Now, lang: Lang = None
) -> JSONResponse:
    """Store a valid proposal for staff to approve; 400 with every problem otherwise (in the page's
    language, as validation)."""
    check_params(request, ("lang",))
    reader = page_language(request, lang)
    json_same_origin(request)
    body = await json_body(request)
    found = _taking(request, comparison_id, now, params=("lang",))
    if not found.config.is_open(now):
        raise closed(found.config, now, lang=reader)
    _charge_source(request, comparison_id, per_hour=found.config.proposals_per_hour, lang=reader)
    if not isinstance(body, dict) or body.get("consent") is not True:
        raise ProblemError(400, "consent: " + reader.gettext("the consent text must be accepted to propose"))
    draft = {k: v for k, v in body.items() if k != "consent"}
    checked = _checked(request, draft, reader)
    if checked.problems:
        first = checked.problems[0]
        return JSONResponse(
            {"type": "about:blank", "title": "Bad Request", "status": 400,
             "detail": f"{first.field}: {first.message}", "problems": [p.as_dict() for p in checked.problems]},
            status_code=400, media_type="application/problem+json",
        )  # fmt: skip
    code = deletion_code()
    new = NewProposal(consultation=comparison_id, pseudonym=pseudonym(), title=checked.title,
                      description=checked.description, interventions=checked.interventions,
                      deletion_sha256=code_hash(code))  # fmt: skip
    stored = _proposals(request).store.add(new, now=now)
    return JSONResponse(
        {"id": stored.id, "pseudonym": stored.pseudonym, "state": str(stored.state), "deletion_code": code},
        status_code=202,
        headers={"Cache-Control": "no-store"},
    )


@router.post(
    "/consultations/{comparison_id}/proposals/delete",
    status_code=204,
    summary="Delete a proposal with its deletion code",
    openapi_extra=json_body_doc(DeletionIn),
)
async def delete_proposal(
    request: Request, comparison_id: ComparisonId, now: Now, lang: Lang = None
) -> Response:
    """Delete the proposal (and its run's files) whose deletion code is sent; 404 for a code that
    matches none, 409 while it is being simulated (the refusals in the page's language)."""
    check_params(request, ("lang",))
    reader = page_language(request, lang)
    json_same_origin(request)
    sent = validated(DeletionIn, await json_body(request))
    found = _taking(request, comparison_id, now, params=("lang",))
    _charge_source(request, comparison_id, per_hour=found.config.proposals_per_hour, lang=reader)
    try:
        deleted = _proposals(request).store.delete(comparison_id, code_hash(sent.code))
    except TransitionError as exc:
        raise ProblemError(409, str(exc)) from None
    if deleted is None:
        raise not_found(reader.gettext("no proposal has this deletion code (deleted already, or anonymised)"))
    remove_files(get_twin(request).twin_dir, deleted)
    return Response(status_code=204)


@router.get("/consultations/{comparison_id}/proposals", summary="Approved proposals and their results")
def public_proposals(request: Request, comparison_id: ComparisonId, now: Now) -> JSONResponse:
    """Proposals staff approved, with pseudonym, state and, once run, their KPIs with 95% intervals."""
    check_params(request, ())
    _taking(request, comparison_id, now)
    listed = _proposals(request).store.proposals(comparison_id, states=sorted(PUBLIC_STATES))
    return JSONResponse({"consultation": comparison_id,
                         "proposals": [_public(request, p) for p in listed]})  # fmt: skip


@router.get("/consultations/{comparison_id}/proposals/review", summary="Every proposal (staff)")
def review_proposals(request: Request, comparison_id: ComparisonId, now: Now) -> JSONResponse:
    """Every proposal, submitted ones first in line, with decisions, reasons and how runs ended."""
    check_params(request, ())
    require_role(current_principal(request), STAFF, "moderator, analyst or admin")
    _taking(request, comparison_id, now)
    part = _proposals(request)
    listed = part.store.proposals(comparison_id)
    settings = _settings(request)
    return JSONResponse(
        {
            "consultation": comparison_id,
            "limits": {"concurrent_runs": settings.concurrent_runs, "runs_per_day": settings.runs_per_day},
            "proposals": [_staff(request, p) for p in listed],
        },
        headers={"Cache-Control": "no-store"},
    )


class DecisionIn(BaseModel):
    """A staff decision on a submitted proposal and its reason (recorded, shown to staff only)."""

    model_config = ConfigDict(extra="forbid")

    decision: Annotated[str, Field(pattern="^(approve|reject)$")]
    reason: str = Field(min_length=1, max_length=500)


class CancelIn(BaseModel):
    """Why a queued or running proposal is cancelled."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)


@router.post(
    "/consultations/{comparison_id}/proposals/{proposal_id}/decision",
    summary="Approve (queue its run) or reject a proposal (staff)",
    openapi_extra=json_body_doc(DecisionIn),
)
async def decide_proposal(
    request: Request, comparison_id: ComparisonId, proposal_id: ProposalId, now: Now
) -> JSONResponse:
    """Approve a submitted proposal, which queues its run, or reject it; 409 when it is not submitted."""
    check_params(request, ())
    principal = current_principal(request)
    require_role(principal, STAFF, "moderator, analyst or admin")
    json_same_origin(request)
    sent = validated(DecisionIn, await json_body(request))
    _taking(request, comparison_id, now)
    store = _proposals(request).store
    _owned(store, comparison_id, proposal_id)
    try:
        decided = store.decide(proposal_id, approve=sent.decision == "approve", reason=sent.reason.strip(),
                               by=principal.id, role=str(principal.role), now=now)  # fmt: skip
    except TransitionError as exc:
        raise ProblemError(409, str(exc)) from None
    return JSONResponse(_staff(request, decided))


@router.post(
    "/consultations/{comparison_id}/proposals/{proposal_id}/cancel",
    summary="Cancel a queued or running proposal (staff)",
    openapi_extra=json_body_doc(CancelIn),
)
async def cancel_proposal(
    request: Request, comparison_id: ComparisonId, proposal_id: ProposalId, now: Now
) -> JSONResponse:
    """A queued proposal is cancelled at once; a running one is ``cancelling`` until its run has
    stopped (within seconds: the queue interrupts it). 409 for any other state."""
    check_params(request, ())
    principal = current_principal(request)
    require_role(principal, STAFF, "moderator, analyst or admin")
    json_same_origin(request)
    sent = validated(CancelIn, await json_body(request))
    _taking(request, comparison_id, now)
    store = _proposals(request).store
    _owned(store, comparison_id, proposal_id)
    try:
        cancelled = store.cancel(proposal_id, reason=sent.reason.strip(), by=principal.id,
                                 role=str(principal.role), now=now)  # fmt: skip
    except TransitionError as exc:
        raise ProblemError(409, str(exc)) from None
    return JSONResponse(_staff(request, cancelled))


def _owned(store: ProposalStore, consultation: str, proposal_id: int) -> Proposal:
    found = store.proposal(proposal_id)
    if found is None or found.consultation != consultation:
        raise not_found(f"consultation '{consultation}' has no proposal {proposal_id}")
    return found


def _described(proposal: Proposal) -> list[str]:
    """Each intervention in words (``speed_limit: streets …; speed kmh 30``)."""
    catalog = installed_catalog()
    out = []
    for index, item in enumerate(proposal.interventions):
        try:
            parsed = catalog.parse(item, index=index, origin="proposal")
        except ScenarioError:
            out.append(str(item.get("type", "")))
            continue
        words = [parsed.describe()]
        if isinstance(parsed, StreetSelection):  # its description names the streets only
            settings = parsed.model_dump(exclude={"type", *STREET_KEYS}, exclude_defaults=True)
            words += [f"{key.replace('_', ' ')} {value}" for key, value in settings.items()]
        out.append(f"{parsed.type.replace('_', ' ')}: {'; '.join(words)}")
    return out


def _public(request: Request, proposal: Proposal) -> dict[str, Any]:
    """What anyone sees of an approved proposal: no reasons, no staff, no run details."""
    return {
        "id": proposal.id,
        "pseudonym": proposal.pseudonym,
        "title": proposal.title,
        "description": proposal.description,
        "interventions": _described(proposal),
        "state": str(proposal.state),
        "date": proposal.created.date().isoformat(),
        "result": _result(request, proposal) if proposal.state is State.DONE else None,
    }


def _staff(request: Request, proposal: Proposal) -> dict[str, Any]:
    """What staff see: the public view, the intervention data, the decision and the run."""

    def stamp(value: Any) -> str | None:
        return None if value is None else value.isoformat()

    return {
        **_public(request, proposal),
        "spec": proposal.interventions,
        "created": stamp(proposal.created),
        "decided_at": stamp(proposal.decided_at),
        "decided_by": proposal.decided_by,
        "decided_role": proposal.decided_role,
        "reason": proposal.reason,
        "started": stamp(proposal.started),
        "finished": stamp(proposal.finished),
        "attempts": proposal.attempts,
        "comparison": proposal.comparison,
        "outcome": proposal.outcome,
    }


def _result(request: Request, proposal: Proposal) -> dict[str, Any] | None:
    """The run's KPIs for the proposal, each with its 95% interval and its change against the
    consultation's baseline (None when the caller may not read the run's comparison); for a proposal
    whose simulation failed the quality check (it gridlocks the network), no KPIs but that finding in
    words (``not_evaluated``) and the report to read it in."""
    if proposal.comparison is None:
        return None
    try:
        _, record = readable(request, proposal.comparison)
    except ProblemError:
        return None
    if not record.plans:
        finding = record.not_evaluated[0]
        return {
            "comparison": record.id,
            "baseline": record.baseline,
            "plan": finding.scenario,
            "page": str(request.url_for("comparison_report", comparison_id=record.id)),
            "kpis": [],
            "not_evaluated": finding.statement,
        }
    plan = record.plans[0]
    kpis = []
    for entry in kpi_entries(record):
        value = next((v for v in entry["values"] if v["scenario"] == plan), None)
        base = next((v for v in entry["values"] if v["scenario"] == record.baseline), None)
        change = next((c for c in entry["changes"] if c["plan"] == plan), None)
        kpis.append({"kpi": entry["kpi"], "label": entry["label"], "unit": entry["unit"],
                     "baseline": base, "value": value, "change": change})  # fmt: skip
    return {
        "comparison": record.id,
        "baseline": record.baseline,
        "plan": plan,
        "page": str(request.url_for("consultation_page", comparison_id=record.id)),
        "kpis": kpis,
    }


def _checked(request: Request, draft: object, reader: Language) -> Checked:
    """A draft checked against the installed engines, the twin's streets and the ``[proposals]``
    settings, its problems in the reader's language (the validation and submission routes alike)."""
    return check_draft(draft, installed_catalog(), _network(request, reader), offered=_offered(request),
                       max_interventions=_settings(request).max_interventions, lang=reader)  # fmt: skip


def _charge_source(request: Request, consultation: str, *, per_hour: int, lang: Language) -> None:
    """Count one submission from the request's source: ``per_hour`` a burst, refilled evenly over the
    hour, over all the server's workers (:mod:`civictwin.api.floodguard`); 429 beyond. The source is a
    keyed hash of its address."""
    client = request.client.host if request.client else "unknown"
    charge = _proposals(request).floods.charge(consultation, client, per_hour=per_hour)
    if charge.wait_s > 0:
        wait = retry_after(charge.wait_s)
        message = lang.gettext("too many proposals from your connection; retry in {seconds} s")
        raise ProblemError(429, message.format(seconds=wait), headers={"Retry-After": wait})
