"""The viewer's survey form: geolocated observations with a category, text and an optional photo,
moderated like comments (docs/methods-surveys.md#the-viewers-survey-form).

* ``POST /consultations/{c}/observations``: one observation as ``multipart/form-data`` (fields
  ``consent``, ``category``, ``text``, ``lon``, ``lat``, ``challenge``, ``nonce`` and an optional file
  ``photo``), queued for moderation in the consultation's contribution store; the answer carries the
  deletion code, shown once (delete with ``POST /consultations/{c}/contributions/delete``);
* ``GET /consultations/{c}/observations``: the approved observations as a GeoJSON layer (paged:
  ``limit``, ``offset``, ``links``) with the form's categories and consent text;
* ``GET /consultations/{c}/observations/photos/{sha256}.jpg``: an observation's clean photo, public
  once its observation is approved, to moderators before.

An observation is a contribution of kind ``observation`` (:mod:`civictwin.store.contributions`): the
same queue, moderation (``/moderation``), per-source limit, proof of work, deletion by code and
retention as comments, through the same code. The photo is checked and re-encoded from its pixels
by :func:`~civictwin.fieldwork.photos.sanitise_photo` (no EXIF, XMP or ICC survives: no place, no
device) before anything is stored, and is named by its content hash. The body is refused (413) by
its ``Content-Length`` before it is read, and while it is read once it passes the limit. Cross-site
requests are refused: multipart is a type a plain HTML form can send, so beside the ``Origin`` and
``Sec-Fetch-Site`` checks the form must send the header ``X-Civictwin-Form: survey``, which another
site's page cannot send without a CORS preflight this server never grants.
"""

from __future__ import annotations

import asyncio
import functools
import os
from datetime import datetime
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser
from email.policy import HTTP
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse
from shapely import wkt
from shapely.geometry.base import BaseGeometry

from civictwin.api.context import get_twin
from civictwin.api.contributions import (
    MODERATORS,
    PAGE_SIZE,
    Consultation,
    Limit,
    Now,
    Offset,
    charge_source,
    closed,
    consultation_of,
    page_links,
    photo_url,
    same_site,
)
from civictwin.api.problems import ProblemError, bad_request, not_found
from civictwin.api.query import check_params
from civictwin.api.scenarios import GEOJSON_MEDIA_TYPE, ComparisonId
from civictwin.api.security import current_principal
from civictwin.compare.participation import check_proof, code_hash, deletion_code, pseudonym
from civictwin.errors import UploadError
from civictwin.fieldwork.observations import Observation, validate_observation
from civictwin.fieldwork.photos import PHOTO_NAME, CleanPhoto, sanitise_photo, store_photo
from civictwin.store.contributions import Kind, NewContribution, Queued, Status

FORM_HEADER = "x-civictwin-form"
"""The header the survey form sends (value ``survey``): a cross-site HTML form cannot."""
FORM_OVERHEAD_BYTES = 64 * 1024
"""What a form may hold beside its photo (bytes): the text fields and the multipart framing."""
MAX_FIELD_BYTES = 8_192
"""Largest text field of the form (bytes; the text itself is at most 2 000 characters)."""
_FIELDS = frozenset({"consent", "category", "text", "lon", "lat", "challenge", "nonce", "photo"})
_YES = frozenset({"true", "on", "yes", "1"})

router = APIRouter(tags=["Consultations"])


def _survey(
    request: Request, comparison_id: str, now: datetime, *, params: tuple[str, ...] = ()
) -> Consultation:
    """A consultation whose block configures survey categories (404 otherwise: no form)."""
    found = consultation_of(request, comparison_id, now, params=params)
    if not found.config.survey_categories:
        raise not_found(f"consultation '{comparison_id}' takes no survey observations (no survey_categories)")
    return found


@router.post(
    "/consultations/{comparison_id}/observations",
    status_code=202,
    summary="Send a survey observation (place, category, text, photo)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["consent", "category", "lon", "lat", "challenge", "nonce"],
                        "properties": {
                            **{k: {"type": "string"} for k in sorted(_FIELDS - {"photo"})},
                            "photo": {"type": "string", "format": "binary"},
                        },
                    }
                }
            },
        }
    },
)
async def observe(request: Request, comparison_id: ComparisonId, now: Now) -> JSONResponse:
    """Queue an observation for moderation; the answer's ``deletion_code`` is shown only this once."""
    check_params(request, ())
    _same_site_form(request)
    found = _survey(request, comparison_id, now)
    config = found.config
    if not config.is_open(now):
        raise closed(config, now)
    photo_limit = photo_max_bytes(request, found)
    limit = photo_limit + FORM_OVERHEAD_BYTES
    _refuse_declared_size(request, limit)
    charge_source(request, found, comparison_id)
    parts = _form_parts(request.headers["content-type"], await _limited_body(request, limit))
    observation = _observation(parts, categories=config.survey_categories, area=_twin_area(request))
    challenge, nonce = _field(parts, "challenge"), _field(parts, "nonce")
    try:
        proof = check_proof(found.part.proof_key, comparison_id, challenge, nonce,
                            bits=config.proof_of_work_bits, now=now)  # fmt: skip
    except ValueError as exc:
        raise ProblemError(403, str(exc)) from None
    photo = await asyncio.to_thread(_clean_photo, parts.get("photo"), max_bytes=photo_limit)
    if photo is not None:
        _keep(photo, found, comparison_id)
    code = deletion_code()
    new = NewContribution(consultation=comparison_id, scenario="", theme=observation.category,
                          text=observation.text, vote=None, lon=observation.place.lon,
                          lat=observation.place.lat, kind=Kind.OBSERVATION,
                          photo=None if photo is None else photo.file_name)  # fmt: skip
    queued = Queued(contribution=new, pseudonym=pseudonym(), deletion_sha256=code_hash(code),
                    challenge=proof.text, challenge_expires=proof.expires, received=now)  # fmt: skip
    stored = await asyncio.wrap_future(found.part.writer.submit(queued))
    if stored is None:
        raise ProblemError(403, "this proof-of-work challenge was used already; ask for a new one")
    return JSONResponse(
        {"id": stored.id, "pseudonym": stored.pseudonym, "status": str(stored.status),
         "deletion_code": code, "photo": None if photo is None else {"width": photo.width, "height": photo.height}},
        status_code=202,
        headers={"Cache-Control": "no-store"},
    )  # fmt: skip


def photo_max_bytes(request: Request, found: Consultation) -> int:
    """The largest photo accepted (bytes): the consultation's ``survey_photo_max_bytes``, within the
    server's ``max_body_bytes`` less the form's other fields (the viewer shrinks a larger photo)."""
    server = get_twin(request).settings.max_body_bytes - FORM_OVERHEAD_BYTES
    return max(0, min(found.config.survey_photo_max_bytes, server))


def _same_site_form(request: Request) -> None:
    """Only the survey form's own requests (415 for another body type, 403 for another site's)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "multipart/form-data":
        raise ProblemError(415, "send the observation as multipart/form-data")
    same_site(request)
    if request.headers.get(FORM_HEADER) != "survey":
        raise ProblemError(403, f"cross-site requests are refused (the form sends {FORM_HEADER}: survey)")


def _refuse_declared_size(request: Request, limit: int) -> None:
    """413 for a body whose declared ``Content-Length`` is over ``limit`` bytes, before reading any of it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ProblemError(413, f"request body of {declared} bytes exceeds {limit} bytes (photo too large)")


async def _limited_body(request: Request, limit: int) -> bytes:
    """The body, read until it passes ``limit`` bytes (413 then: the rest is never read)."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise ProblemError(413, f"request body exceeds {limit} bytes (photo too large)")
    return bytes(raw)


def _form_parts(content_type: str, raw: bytes) -> dict[str, MIMEPart]:
    """The parts of a ``multipart/form-data`` body by field name (400 for a malformed form, an
    unknown or repeated field)."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", errors="replace")
    message = BytesParser(_class=EmailMessage, policy=HTTP).parsebytes(head + raw)
    if not message.is_multipart() or message.defects:
        raise bad_request("the body is not a well-formed multipart/form-data form")
    parts: dict[str, MIMEPart] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or name not in _FIELDS:
            raise bad_request(
                f"{str(name)[:40]}: not a field of the survey form ({', '.join(sorted(_FIELDS))})"
            )
        if name in parts:
            raise bad_request(f"{name}: given more than once")
        parts[name] = part
    return parts


def _bytes(part: MIMEPart) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _field(parts: dict[str, MIMEPart], name: str, *, required: bool = True) -> str:
    """A text field's value (400 when a required one is missing, too long or not UTF-8)."""
    part = parts.get(name)
    if part is None:
        if required:
            raise bad_request(f"{name}: missing")
        return ""
    data = _bytes(part)
    if len(data) > MAX_FIELD_BYTES:
        raise bad_request(f"{name}: longer than {MAX_FIELD_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request(f"{name}: not UTF-8 text") from None


def _twin_area(request: Request) -> BaseGeometry | None:
    """The twin's area of interest (WGS84) as its build recorded it; None for a store without one."""
    recorded = get_twin(request).store.records("meta").get("twin", {}).get("area_wgs84")
    return _area(str(recorded)) if recorded else None


@functools.lru_cache(maxsize=8)
def _area(text: str) -> BaseGeometry:
    """A WKT area, parsed once per distinct text (a twin's area changes only with a rebuild)."""
    return wkt.loads(text)


def _observation(
    parts: dict[str, MIMEPart], *, categories: list[str], area: BaseGeometry | None
) -> Observation:
    """The checked observation (400 naming the field: consent, category, lon, lat, text, a place
    outside the twin's ``area``)."""
    if _field(parts, "consent").strip().lower() not in _YES:
        raise bad_request("consent: the consent text must be accepted to send an observation")
    try:
        return validate_observation(
            category=_field(parts, "category"),
            text=_field(parts, "text", required=False),
            lat=_field(parts, "lat"),
            lon=_field(parts, "lon"),
            categories=categories,
            area_wgs84=area,
        )
    except UploadError as exc:
        raise bad_request(exc.user_message()) from None


def _clean_photo(part: MIMEPart | None, *, max_bytes: int) -> CleanPhoto | None:
    """The uploaded photo re-encoded without metadata (None when none was sent; 413 over
    ``max_bytes``, 400 for anything that is not a sound JPEG, PNG or WebP image)."""
    if part is None:
        return None
    data = _bytes(part)
    if not data:
        return None
    if len(data) > max_bytes:
        raise ProblemError(413, f"photo: {len(data)} bytes; at most {max_bytes} are accepted")
    try:
        return sanitise_photo(data, label="photo", max_bytes=max_bytes)
    except UploadError as exc:
        raise bad_request(exc.user_message()) from None


def _keep(photo: CleanPhoto, found: Consultation, consultation: str) -> None:
    """Store the clean photo (its mtime renewed when it exists, so no sweep of unused photos takes it
    before the observation naming it is committed)."""
    stored = store_photo(photo, found.part.store.photo_folder(consultation))
    os.utime(stored)


@router.get(
    "/consultations/{comparison_id}/observations",
    summary="Approved survey observations (GeoJSON)",
    response_class=JSONResponse,
    responses={200: {"content": {GEOJSON_MEDIA_TYPE: {}}}},
)
def observations(
    request: Request, comparison_id: ComparisonId, now: Now, limit: Limit = PAGE_SIZE, offset: Offset = 0
) -> JSONResponse:
    """A page of the approved observations as GeoJSON points (category, text, day, photo address; no
    pseudonym), with the form's ``categories``, ``consent`` text and whether it is ``open``."""
    params = ("limit", "offset")
    check_params(request, params)
    found = _survey(request, comparison_id, now, params=params)
    store, config = found.part.store, found.config
    listed = store.contributions(comparison_id, status=Status.APPROVED, kind=Kind.OBSERVATION,
                                 limit=limit, offset=offset)  # fmt: skip
    total = store.count(comparison_id, status=Status.APPROVED, kind=Kind.OBSERVATION)
    features = [
        {
            "type": "Feature",
            "id": c.id,
            "geometry": {"type": "Point", "coordinates": [c.lon, c.lat]},
            "properties": {
                "category": c.theme,
                "text": c.text,
                "date": c.created.date().isoformat(),
                "photo": photo_url(request, comparison_id, c.photo),
            },
        }
        for c in listed
    ]
    body = {
        "type": "FeatureCollection",
        "consultation": comparison_id,
        "open": config.is_open(now),
        "categories": config.survey_categories,
        "consent": config.survey_consent,
        "photo_max_bytes": photo_max_bytes(request, found),
        "numberMatched": total,
        "numberReturned": len(features),
        "links": page_links(request, total=total, limit=limit, offset=offset),
        "features": features,
    }
    return JSONResponse(body, media_type=GEOJSON_MEDIA_TYPE, headers={"Cache-Control": "no-cache"})


@router.get(
    "/consultations/{comparison_id}/observations/photos/{name}",
    name="survey_photo",
    summary="A survey observation's photo (metadata stripped)",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def survey_photo(
    request: Request,
    comparison_id: ComparisonId,
    name: Annotated[
        str, PathParam(description="The photo's file name (its SHA-256 and .jpg)", max_length=80)
    ],
    now: Now,
) -> FileResponse:
    """A clean photo: anyone's once an approved observation shows it; before, a moderator's only (404
    for others, as for a photo that does not exist)."""
    check_params(request, ())
    found = _survey(request, comparison_id, now)
    missing = not_found(f"no photo named '{name[:80]}' in consultation '{comparison_id}'")
    if not PHOTO_NAME.fullmatch(name):
        raise missing
    shown = found.part.store.photo_status(comparison_id, name)
    public = Status.APPROVED in shown
    if not public and not (shown and current_principal(request).role in MODERATORS):
        raise missing
    file = found.part.store.photo_folder(comparison_id) / name
    if not file.is_file():
        raise missing
    cache = "no-cache" if public else "no-store"
    return FileResponse(file, media_type="image/jpeg", headers={"Cache-Control": cache})
