"""Comments and votes on a consultation page: the public contribution route, moderation, the council's
export, and deletion on request (docs/consultation.md#comments-and-votes).

* ``GET /consultations/{c}/contributions``: open or not, themes, consent text, approved contributions
  (a page of them: ``limit``, ``offset``, ``links``) and the vote counts per scenario (public,
  pseudonyms only);
* ``GET /consultations/{c}/challenge``: a proof-of-work challenge; ``POST /consultations/{c}/contributions``:
  a comment and/or vote (JSON, consent required), queued for moderation; the answer carries the
  deletion code, shown once; ``POST /consultations/{c}/contributions/delete``: delete by that code;
* ``GET /consultations/{c}/moderation`` and ``POST /consultations/{c}/moderation/{id}`` (moderator or
  admin): the queue (paged; comments, votes and the survey form's observations, :mod:`.surveys`) and
  decisions with their reasons;
* ``GET /consultations/{c}/export/contributions.csv|.geojson``, ``/export/counts.csv`` (moderator,
  analyst, steward, admin): approved contributions and counts per scenario and theme.

Protection: cross-site requests are refused (JSON only, ``Origin`` and ``Sec-Fetch-Site`` checked);
each source may contribute ``contributions_per_hour`` times per consultation, counted in memory under
a keyed hash of its address that no file ever holds; bodies over 8 KiB are refused; each
contribution needs a fresh proof of work. No client address, name or e-mail is stored, and no route
puts contribution text in a URL, so the audit log never holds it.
"""

from __future__ import annotations

import asyncio
import json
import queue
import secrets
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from civictwin.api.context import get_twin
from civictwin.api.floodguard import FloodGuard
from civictwin.api.limits import retry_after
from civictwin.api.problems import ProblemError, bad_request, not_found
from civictwin.api.query import check_params
from civictwin.api.scenarios import ComparisonId, readable
from civictwin.api.security import current_principal
from civictwin.compare.participation import (
    COUNT_COLUMNS,
    EXPORT_COLUMNS,
    check_proof,
    code_hash,
    counts,
    deletion_code,
    export_row,
    issue_challenge,
    pseudonym,
    to_csv,
    to_geojson,
    votes_per_scenario,
)
from civictwin.config import CONFIG_FILENAME, load_config
from civictwin.config_consult import ConsultationConfig
from civictwin.governance.tokens import Principal, Role
from civictwin.i18n import DEFAULT, Language, language
from civictwin.store.contributions import (
    Contribution,
    ContributionStore,
    Decision,
    Kind,
    NewContribution,
    Queued,
    Status,
    open_contribution_store,
)

MAX_BODY_BYTES = 8_192
MAX_TEXT_CHARS = 2_000
_ANONYMISE_EVERY_S = 60.0
MODERATORS = (Role.MODERATOR, Role.ADMIN)
_STAFF = (Role.MODERATOR, Role.ANALYST, Role.STEWARD, Role.ADMIN)
_CSV = "text/csv; charset=utf-8"
PAGE_SIZE = 100
"""Contributions per page of the moderation queue and the survey layer unless ``limit`` says otherwise."""
MAX_PAGE_SIZE = 1000
"""The largest page, and the public list's default: the consultation page shows that many approved
comments at once (its script does not page), the API's other clients page with the links."""

router = APIRouter(tags=["Consultations"])
_Model = TypeVar("_Model", bound=BaseModel)


def json_body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads its JSON itself (to bound its size first)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


def now_utc() -> datetime:
    """Dependency: the current time (tests override it to move through opening, closing and retention)."""
    return datetime.now(UTC)


Now = Annotated[datetime, Depends(now_utc)]


class GroupWriter:
    """Stores contributions from one thread in group commits: while one transaction is synced to disk,
    the contributions arriving meanwhile gather and go together into the next, so a request waits
    for at most two disk syncs however many arrive at once, and nothing is acknowledged before it is
    on disk. The thread (a daemon) starts with the first contribution."""

    _BATCH = 500

    def __init__(self, store: ContributionStore) -> None:
        self.store = store
        self._queue: queue.SimpleQueue[tuple[Queued, Future[Contribution | None]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    def submit(self, item: Queued) -> Future[Contribution | None]:
        """Queue ``item``; the future holds the stored contribution, or None for a replayed challenge."""
        with self._start:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="contributions-writer", daemon=True)
                self._thread.start()
        done: Future[Contribution | None] = Future()
        self._queue.put((item, done))
        return done

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self._BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                stored = self.store.add_many([item for item, _ in batch])
            except Exception as exc:  # every waiting request hears of it (a 500 each)
                for _, done in batch:
                    done.set_exception(exc)
                continue
            for (_, done), result in zip(batch, stored, strict=True):
                done.set_result(result)


@dataclass
class _Participation:
    """One served twin's contribution store and in-memory flood protection, opened once per app."""

    store: ContributionStore
    proof_key: bytes
    writer: GroupWriter
    floods: FloodGuard
    """Each source's hourly allowance (shared by the server's workers) and its refusals."""
    anonymised_at: datetime | None = None
    """When every consultation was last anonymised up to its retention period (at most once a minute)."""


_lock = threading.Lock()


def _participation(request: Request) -> _Participation:
    twin = get_twin(request)
    opened: dict[Path, _Participation] = request.app.state.__dict__.setdefault("participation", {})
    with _lock:
        found = opened.get(twin.store_path)
        if found is None:
            store = open_contribution_store(twin.location, store_path=twin.store_path)
            key = store.secret("proof", secrets.token_bytes(32))
            floods = FloodGuard.for_server(request.app.state.settings, twin.store_path, twin.location)
            found = opened[twin.store_path] = _Participation(store, key, GroupWriter(store), floods)
        return found


def _configs(request: Request) -> dict[str, ConsultationConfig]:
    """The ``[[consultations]]`` blocks by comparison, read again when ``twin.toml`` changes. Opens no
    database: a page of a twin without consultations creates nothing."""
    path = get_twin(request).twin_dir / CONFIG_FILENAME
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = 0.0
    cached: tuple[float, dict[str, ConsultationConfig]] | None = getattr(
        request.app.state, "consultations", None
    )
    if cached is None or cached[0] != mtime:
        blocks = load_config(path.parent).consultations if mtime else []
        cached = (mtime, {c.comparison: c for c in blocks})
        request.app.state.consultations = cached
    return cached[1]


def _configured(request: Request, consultation: str) -> ConsultationConfig:
    """The comparison's ``[[consultations]]`` block; 404 when it takes no contributions."""
    config = _configs(request).get(consultation)
    if config is None:
        raise not_found(f"comparison '{consultation}' takes no contributions (no [[consultations]] block)")
    return config


@dataclass(frozen=True)
class Consultation:
    config: ConsultationConfig
    scenarios: list[str]
    part: _Participation


def consultation_of(
    request: Request, comparison_id: str, now: datetime, *, params: tuple[str, ...] = ()
) -> Consultation:
    """A readable, configured consultation (``params``: the query parameters the route takes); every
    consultation's contributions anonymised up to its retention period first."""
    _, record = readable(request, comparison_id, params=params)
    config = _configured(request, record.id)
    part = _participation(request)
    if part.anonymised_at is None or abs((now - part.anonymised_at).total_seconds()) >= _ANONYMISE_EVERY_S:
        for name, each in _configs(request).items():  # every consultation, not only the one asked about
            if part.store.anonymise(name, older_than=now - timedelta(days=each.retention_days)):
                part.store.forget_unused_photos(name)
        part.anonymised_at = now
    return Consultation(config, [record.baseline, *record.plans], part)


def require_role(principal: Principal, roles: tuple[Role, ...], what: str) -> None:
    if principal.role in roles:
        return
    if principal.token is None:
        raise ProblemError(401, f"this needs a {what} token", headers={"WWW-Authenticate": "Bearer"})
    raise ProblemError(403, f"this needs the {what} role")


def _public(c: Contribution) -> dict[str, Any]:
    """An approved contribution as anyone sees it: pseudonym, day, no moderation details."""
    return {"id": c.id, "pseudonym": c.pseudonym, "scenario": c.scenario, "theme": c.theme, "vote": c.vote,
            "text": c.text, "lon": c.lon, "lat": c.lat, "date": c.created.date().isoformat()}  # fmt: skip


Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Contributions per page")]
Offset = Annotated[int, Query(ge=0, le=2**62, description="Contributions skipped (the page's start)")]


@router.get("/consultations/{comparison_id}/contributions", summary="Approved comments and vote counts")
def public_contributions(
    request: Request, comparison_id: ComparisonId, now: Now, limit: Limit = MAX_PAGE_SIZE, offset: Offset = 0
) -> JSONResponse:
    """Whether the consultation is open, its themes and consent text, the vote counts, and one page of
    what moderators approved (``links`` to the next and previous pages)."""
    check_params(request, ("limit", "offset"))
    body = published(request, comparison_id, now, params=("limit", "offset"), limit=limit, offset=offset)
    return JSONResponse(body)


def page_links(request: Request, *, total: int, limit: int, offset: int) -> list[dict[str, str]]:
    """``next`` and ``prev`` links of a paged list (this URL with another ``offset``), where there is one."""
    links = []
    if offset + limit < total:
        links.append({"rel": "next", "href": str(request.url.include_query_params(offset=offset + limit))})
    if offset > 0:
        before = max(0, min(offset, total) - limit)
        links.append({"rel": "prev", "href": str(request.url.include_query_params(offset=before))})
    return links


def published(
    request: Request,
    comparison_id: str,
    now: datetime,
    *,
    params: tuple[str, ...] = (),
    limit: int = MAX_PAGE_SIZE,
    offset: int = 0,
) -> dict[str, Any]:
    """What anyone may see of a consultation's comments and votes (the JSON route and the page render
    the same): ``phase`` (before, open, closed), dates, scenarios, themes, consent text, counts per
    scenario (over every approved one), and a page of the approved contributions with pseudonym and
    day only (``total``, ``limit``, ``offset``, ``links``)."""
    found = consultation_of(request, comparison_id, now, params=params)
    approved = found.part.store.contributions(
        comparison_id, status=Status.APPROVED, kind=Kind.COMMENT, limit=1_000_000
    )
    config = found.config
    phase = "open" if config.is_open(now) else "before" if now < config.opens else "closed"
    return {
        "consultation": comparison_id,
        "open": phase == "open",
        "phase": phase,
        "opens": config.opens.isoformat(),
        "closes": config.closes.isoformat(),
        "scenarios": found.scenarios,
        "themes": config.themes,
        "consent": config.consent,
        "retention_days": config.retention_days,
        "counts": votes_per_scenario(approved, found.scenarios),
        "total": len(approved),
        "limit": limit,
        "offset": offset,
        "links": page_links(request, total=len(approved), limit=limit, offset=offset),
        "contributions": [_public(c) for c in approved[offset : offset + limit]],
    }


def takes_contributions(request: Request, comparison_id: str) -> bool:
    """Whether a ``[[consultations]]`` block names the comparison (the page shows its section then)."""
    try:
        _configured(request, comparison_id)
    except ProblemError:
        return False
    return True


@router.get(
    "/consultations/{comparison_id}/challenge", summary="A proof-of-work challenge for one contribution"
)
def challenge(request: Request, comparison_id: ComparisonId, now: Now) -> JSONResponse:
    """A challenge to solve before contributing (see :mod:`civictwin.compare.participation`)."""
    check_params(request, ())
    found = consultation_of(request, comparison_id, now)
    if not found.config.is_open(now):
        raise closed(found.config, now)
    issued = issue_challenge(
        found.part.proof_key, comparison_id, bits=found.config.proof_of_work_bits, now=now
    )
    return JSONResponse({"challenge": issued.text, "bits": issued.bits, "expires": issued.expires},
                        headers={"Cache-Control": "no-store"})  # fmt: skip


class ContributionIn(BaseModel):
    """What the page's form sends."""

    model_config = ConfigDict(extra="forbid")

    consent: bool
    scenario: str = Field(max_length=128)
    theme: str = Field(max_length=32)
    text: str = Field(default="", max_length=MAX_TEXT_CHARS)
    vote: Literal["for", "against"] | None = None
    lon: float | None = Field(default=None, ge=-180, le=180)
    lat: float | None = Field(default=None, ge=-90, le=90)
    challenge: str = Field(max_length=300)
    nonce: str = Field(max_length=32)


@router.post(
    "/consultations/{comparison_id}/contributions",
    status_code=202,
    summary="Send a comment and/or a vote",
    openapi_extra=json_body_doc(ContributionIn),
)
async def contribute(request: Request, comparison_id: ComparisonId, now: Now) -> JSONResponse:
    """Queue a contribution for moderation; the answer's ``deletion_code`` is shown only this once."""
    check_params(request, ())
    json_same_origin(request)
    body = await json_body(request)
    found = consultation_of(request, comparison_id, now)
    if not found.config.is_open(now):
        raise closed(found.config, now)
    charge_source(request, found, comparison_id)
    sent = validated(ContributionIn, body)
    new = _checked(sent, comparison_id, found)
    try:
        proof = check_proof(found.part.proof_key, comparison_id, sent.challenge, sent.nonce,
                            bits=found.config.proof_of_work_bits, now=now)  # fmt: skip
    except ValueError as exc:
        raise ProblemError(403, str(exc)) from None
    code = deletion_code()
    queued = Queued(contribution=new, pseudonym=pseudonym(), deletion_sha256=code_hash(code),
                    challenge=proof.text, challenge_expires=proof.expires, received=now)  # fmt: skip
    stored = await asyncio.wrap_future(found.part.writer.submit(queued))
    if stored is None:
        raise ProblemError(403, "this proof-of-work challenge was used already; ask for a new one")
    return JSONResponse(
        {"id": stored.id, "pseudonym": stored.pseudonym, "status": str(stored.status), "deletion_code": code},
        status_code=202,
        headers={"Cache-Control": "no-store"},
    )


def _checked(sent: ContributionIn, consultation: str, found: Consultation) -> NewContribution:
    """The contribution to store, or 400 naming the field that is wrong."""
    if not sent.consent:
        raise bad_request("consent: the consent text must be accepted to contribute")
    if sent.scenario not in found.scenarios:
        raise bad_request(f"scenario: expected one of {', '.join(found.scenarios)}")
    if sent.theme not in found.config.themes:
        raise bad_request(f"theme: expected one of {', '.join(found.config.themes)}")
    text = sent.text.strip()
    if any(not ch.isprintable() and ch not in "\n\t" for ch in text):
        raise bad_request("text: control characters are not allowed")
    if not text and sent.vote is None:
        raise bad_request("give a comment (text), a vote, or both")
    if (sent.lon is None) != (sent.lat is None):
        raise bad_request("lon and lat: give both or neither")
    return NewContribution(consultation=consultation, scenario=sent.scenario, theme=sent.theme, text=text,
                           vote=sent.vote, lon=sent.lon, lat=sent.lat)  # fmt: skip


class DeletionIn(BaseModel):
    """A deletion request: the code given at submission."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=100)


@router.post(
    "/consultations/{comparison_id}/contributions/delete",
    status_code=204,
    summary="Delete a contribution with its deletion code",
    openapi_extra=json_body_doc(DeletionIn),
)
async def delete_contribution(request: Request, comparison_id: ComparisonId, now: Now) -> Response:
    """Delete the contribution whose deletion code is sent (in the body, so it is never logged); 404
    for a code that matches none (unknown, already deleted, or past the retention period)."""
    check_params(request, ())
    json_same_origin(request)
    sent = validated(DeletionIn, await json_body(request))
    found = consultation_of(request, comparison_id, now)
    charge_source(request, found, comparison_id)
    if not found.part.store.delete(comparison_id, code_hash(sent.code)):
        raise not_found("no contribution has this deletion code (deleted already, or anonymised)")
    found.part.store.forget_unused_photos(comparison_id)
    return Response(status_code=204)


@router.get("/consultations/{comparison_id}/moderation", summary="The moderation queue (moderator)")
def moderation_queue(
    request: Request,
    comparison_id: ComparisonId,
    now: Now,
    status: Annotated[Status, Query(description="pending, approved or rejected")] = Status.PENDING,
    kind: Annotated[Kind | None, Query(description="comment or observation (default: both)")] = None,
    limit: Limit = PAGE_SIZE,
    offset: Offset = 0,
) -> JSONResponse:
    """A page of the contributions of one status (and kind), oldest first, with the decisions and
    their reasons; a survey observation's photo is linked (moderators may see it before approval)."""
    params = ("status", "kind", "limit", "offset")
    check_params(request, params)
    require_role(current_principal(request), MODERATORS, "moderator")
    found = consultation_of(request, comparison_id, now, params=params)
    store = found.part.store
    listed = store.contributions(comparison_id, status=status, kind=kind, limit=limit, offset=offset)
    total = store.count(comparison_id, status=status, kind=kind)
    return JSONResponse(
        {
            "consultation": comparison_id,
            "open": found.config.is_open(now),
            "moderation_until": _moderation_end(found.config).isoformat(),
            "total": total,
            "limit": limit,
            "offset": offset,
            "links": page_links(request, total=total, limit=limit, offset=offset),
            "contributions": [
                {
                    **_public(c),
                    "kind": str(c.kind),
                    "photo": photo_url(request, comparison_id, c.photo),
                    "status": str(c.status),
                    "created": c.created.isoformat(),
                    "moderated_by": c.moderated_by,
                    "reason": c.reason,
                }
                for c in listed
            ],
        },
        headers={"Cache-Control": "no-store"},
    )


def photo_url(request: Request, consultation: str, photo: str | None) -> str | None:
    """The address of a survey observation's clean photo (None without one)."""
    if photo is None:
        return None
    return str(request.url_for("survey_photo", comparison_id=consultation, name=photo))


class DecisionIn(BaseModel):
    """A moderator's decision and its reason (recorded, shown to moderators only)."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    reason: str = Field(min_length=1, max_length=500)


@router.post(
    "/consultations/{comparison_id}/moderation/{contribution_id}",
    summary="Approve or reject (moderator)",
    openapi_extra=json_body_doc(DecisionIn),
)
async def moderate(
    request: Request,
    comparison_id: ComparisonId,
    contribution_id: Annotated[int, PathParam(ge=1, le=2**63 - 1)],
    now: Now,
) -> JSONResponse:
    """Approve or reject a pending contribution with a reason. Moderation runs until ``closes`` plus
    the consultation's moderation period; after it, 409 (the results are final)."""
    check_params(request, ())
    principal = current_principal(request)
    require_role(principal, MODERATORS, "moderator")
    json_same_origin(request)
    sent = validated(DecisionIn, await json_body(request))
    found = consultation_of(request, comparison_id, now)
    end = _moderation_end(found.config)
    if now >= end:
        raise ProblemError(
            409, f"consultation '{comparison_id}' closed; moderation ended at {end.isoformat()}"
        )
    status = Status.APPROVED if sent.decision == "approve" else Status.REJECTED
    decision = Decision(status=status, reason=sent.reason.strip(), moderator=principal.id)
    if not found.part.store.decide(comparison_id, contribution_id, decision, now=now):
        current = found.part.store.contribution(comparison_id, contribution_id)
        if current is None:
            raise not_found(f"consultation '{comparison_id}' has no contribution {contribution_id}")
        raise ProblemError(409, f"contribution {contribution_id} is {current.status} already")
    return JSONResponse({"id": contribution_id, "status": str(status), "reason": decision.reason})


@router.get(
    "/consultations/{comparison_id}/export/contributions.csv", summary="Approved contributions, CSV (staff)"
)
def export_csv(request: Request, comparison_id: ComparisonId, now: Now) -> Response:
    """One row per approved contribution: scenario, theme, vote, text, point, day; no pseudonym."""
    approved, _ = _export(request, comparison_id, now)
    return _download(
        to_csv([export_row(c) for c in approved], EXPORT_COLUMNS), _CSV, f"{comparison_id}-contributions.csv"
    )


@router.get(
    "/consultations/{comparison_id}/export/counts.csv", summary="Counts per scenario and theme, CSV (staff)"
)
def export_counts(request: Request, comparison_id: ComparisonId, now: Now) -> Response:
    """Approved contributions, comments and votes for and against, per scenario and theme."""
    _, tally = _export(request, comparison_id, now)
    return _download(to_csv(tally, COUNT_COLUMNS), _CSV, f"{comparison_id}-counts.csv")


@router.get(
    "/consultations/{comparison_id}/export/contributions.geojson",
    summary="Approved contributions with the counts, GeoJSON (staff)",
)
def export_geojson(request: Request, comparison_id: ComparisonId, now: Now) -> Response:
    """Approved contributions as features (null geometry when no point was given), counts as ``counts``."""
    approved, tally = _export(request, comparison_id, now)
    body = to_geojson(approved, tally, comparison_id)
    return _download(body, "application/geo+json", f"{comparison_id}-contributions.geojson")


def _export(
    request: Request, comparison_id: str, now: datetime
) -> tuple[list[Contribution], list[dict[str, object]]]:
    check_params(request, ())
    require_role(current_principal(request), _STAFF, "moderator or staff")
    found = consultation_of(request, comparison_id, now)
    approved = found.part.store.contributions(
        comparison_id, status=Status.APPROVED, kind=Kind.COMMENT, limit=1_000_000
    )
    return approved, counts(approved, scenarios=found.scenarios, themes=found.config.themes)


def _download(body: str, media_type: str, filename: str) -> Response:
    return Response(body, media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})  # fmt: skip


def _moderation_end(config: ConsultationConfig) -> datetime:
    return config.closes + timedelta(days=config.moderation_days)


def closed(config: ConsultationConfig, now: datetime, *, lang: Language | None = None) -> ProblemError:
    """409: the consultation is not open at ``now`` (in ``lang``, English by default)."""
    reader = lang or language(DEFAULT)
    if now < config.opens:
        message = reader.gettext("this consultation opens at {moment}")
        return ProblemError(409, message.format(moment=config.opens.isoformat()))
    message = reader.gettext("this consultation closed at {moment}")
    return ProblemError(409, message.format(moment=config.closes.isoformat()))


def json_same_origin(request: Request) -> None:
    """Refuse cross-site writes (CSRF): a browser names the page's origin in ``Origin`` and says
    ``Sec-Fetch-Site``; either naming another site is refused (403), and only JSON is accepted
    (415), which no plain HTML form can send."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise ProblemError(415, "send the contribution as application/json")
    same_site(request)


def same_site(request: Request) -> None:
    """Refuse a request another site's page sent (403): by ``Sec-Fetch-Site``, or an ``Origin`` that
    is not this server's."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise ProblemError(403, "cross-site requests are refused")
    origin = request.headers.get("origin")
    if origin is not None and origin != _own_origin(request):
        raise ProblemError(403, "cross-site requests are refused (Origin is not this server)")


def _own_origin(request: Request) -> str:
    """This server's origin: from the configured public URL, else from the request."""
    public = get_twin(request).settings.public_url
    if public is not None:
        scheme, _, rest = public.partition("://")
        return f"{scheme}://{rest.split('/')[0]}"
    return f"{request.url.scheme}://{request.url.netloc}"


async def json_body(request: Request) -> Any:
    """The request's JSON body, at most :data:`MAX_BODY_BYTES` (413) and valid JSON (400)."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise ProblemError(413, f"request body exceeds {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("the body is not valid JSON") from None


def validated(model: type[_Model], body: Any) -> _Model:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "body"
        raise bad_request(f"{where}: {error['msg']}") from None


def charge_source(request: Request, found: Consultation, consultation: str) -> None:
    """Count one write from the request's source (429 beyond the hourly allowance: a burst of
    ``contributions_per_hour``, refilled evenly over the hour, counted over all the server's
    workers). The source is known only as a keyed hash of its address (:mod:`civictwin.api.floodguard`);
    ten refusals within a minute are one ``contribution flood`` event in the security log, naming the
    hash, never the address."""
    client = request.client.host if request.client else "unknown"
    charge = found.part.floods.charge(consultation, client, per_hour=found.config.contributions_per_hour)
    if charge.wait_s > 0:
        if charge.burst is not None:
            request.app.state.security.event(
                "contribution flood",
                consultation=consultation,
                source=charge.source[:12],
                refused=charge.burst,
            )
        wait = retry_after(charge.wait_s)
        raise ProblemError(429, f"too many contributions from your connection; retry in {wait} s",
                           headers={"Retry-After": wait})  # fmt: skip
