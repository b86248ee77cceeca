"""``GET /readiness/{use_case}``: the use-case readiness report (docs/readiness.md) as JSON, or as
Markdown with ``?format=markdown``; ``GET /readiness``: the use cases there are templates for.

It says what the twin holds and lacks, with stewards and licences, so it is for staff: any valid
token (viewer excepted) may ask; anonymous callers get 401, viewers 403. Layers and datastreams the
caller may not read are absent from the report, as from every other answer of the API.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import PlainTextResponse, Response

from civictwin.api.context import get_twin
from civictwin.api.problems import ProblemError, not_found
from civictwin.api.security import current_principal
from civictwin.config import CONFIG_FILENAME, AccessLevel, TwinConfig, load_config
from civictwin.errors import ConfigError, EngineError
from civictwin.governance.access import can_read
from civictwin.governance.tokens import Principal, Role
from civictwin.i18n import choose, language
from civictwin.readiness import record_kinds, template_folders
from civictwin.readiness.assess import assess
from civictwin.readiness.holdings import DatastreamHolding, gather, only_readable
from civictwin.readiness.render import as_json, as_markdown
from civictwin.readiness.templates import NAME_PATTERN, find_template, load_template, template_files

router = APIRouter(tags=["readiness"])
logger = logging.getLogger(__name__)


@router.get("/readiness", summary="The use cases readiness can be judged for")
def use_cases(request: Request) -> Response:
    """Every use-case template (built-in and the city's own): name, title and objective."""
    _require_staff(current_principal(request))
    config = _config(get_twin(request).twin_dir)
    try:
        templates = [load_template(path) for path in template_files(template_folders(config)).values()]
    except ConfigError as exc:
        raise _broken(exc) from None
    body = [{"name": t.name, "title": t.title, "objective": t.objective} for t in templates]
    return Response(json.dumps({"use_cases": body}, ensure_ascii=False), media_type="application/json")


@router.get("/readiness/{use_case}", summary="Is the twin ready for this use case?")
def readiness(
    request: Request,
    use_case: Annotated[str, PathParam(pattern=NAME_PATTERN)],
    format: Annotated[Literal["json", "markdown"], Query(description="json or markdown")] = "json",
    lang: Annotated[
        str | None,
        Query(description="The Markdown's language (en, sk, it); else Accept-Language", max_length=16),
    ] = None,
) -> Response:
    """The walk-back of one use case: its KPIs, the data each needs, what the twin holds of it, what
    is missing and how to get it, and the maturity level."""
    principal = current_principal(request)
    _require_staff(principal)
    twin = get_twin(request)
    config = _config(twin.twin_dir)
    try:
        template = find_template(use_case, template_folders(config))
    except ConfigError as exc:
        raise not_found(f"no use case '{use_case}'") if exc.field == "--use-case" else _broken(exc) from None
    try:
        held = gather(config, twin.store, record_kinds=record_kinds(template))
    except ConfigError as exc:  # heat.toml
        raise _broken(exc) from None
    except EngineError as exc:  # the latest calibration record
        raise _broken_record(exc, twin_dir=config.base_dir) from None
    holdings = only_readable(
        held,
        layers=twin.policy.readable(principal),
        datastreams=lambda stream: _may_read(principal, stream),
    )
    report = assess(template, holdings, now=datetime.now(UTC))
    if format == "markdown":
        reader = language(
            choose(override=lang, cookie=None, accept_language=request.headers.get("accept-language"))
        )
        return PlainTextResponse(
            as_markdown(report, lang=reader),
            media_type="text/markdown; charset=utf-8",
            headers={"Content-Language": reader.code, "Vary": "Accept-Language"},
        )
    return Response(as_json(report), media_type="application/json")


def _require_staff(principal: Principal) -> None:
    if principal.role in (Role.ANALYST, Role.STEWARD, Role.ADMIN):
        return
    if principal.token is None:
        raise ProblemError(401, "this needs a token", headers={"WWW-Authenticate": "Bearer"})
    raise ProblemError(403, "this needs the analyst, steward or admin role")


def _may_read(principal: Principal, stream: DatastreamHolding) -> bool:
    """Whether ``principal`` may read the datastream's dataset (unknown levels: restricted)."""
    catalog = stream.catalog
    level = catalog.get("access")
    access = AccessLevel(level) if level in {a.value for a in AccessLevel} else AccessLevel.RESTRICTED
    return can_read(principal, str(catalog.get("dataset", "")), access)


def _config(twin_dir: Path) -> TwinConfig:
    if not (twin_dir / CONFIG_FILENAME).is_file():  # a store file served alone: no templates to judge by
        raise not_found(f"readiness needs the twin's configuration ({CONFIG_FILENAME}); this server has none")
    try:
        return load_config(twin_dir / CONFIG_FILENAME)
    except ConfigError as exc:
        raise _broken(exc) from None


def _broken(exc: ConfigError) -> ProblemError:
    """A twin whose configuration or templates cannot be read: the server's problem (logged), not the
    caller's; the answer names no file of the server."""
    logger.warning("readiness unavailable: %s", exc.user_message())
    return ProblemError(
        500, "readiness is unavailable: the twin's configuration or a use-case template is invalid"
    )


def _broken_record(exc: EngineError, *, twin_dir: Path) -> ProblemError:
    """A calibration record that cannot be read: the server's problem too (500, logged), whose detail
    names the record by its place in the twin (``calibration/calibration-NNN.json``, never the server's
    own path) and the problem, so that staff can have it mended."""
    logger.warning("readiness unavailable: %s", exc.user_message())
    record = _in_twin(exc.path, twin_dir)
    problem = exc.message.replace(exc.path, record) if exc.path else exc.message
    return ProblemError(500, f"readiness is unavailable: {record}: {problem}")


def _in_twin(path: str | None, twin_dir: Path) -> str:
    """``path`` relative to the twin's folder (its file name alone when outside it)."""
    if path is None:
        return "the latest calibration record"
    try:
        return Path(path).relative_to(twin_dir).as_posix()
    except ValueError:
        return Path(path).name
