"""Errors as RFC 9457 problem documents: every 4xx and 5xx answer is ``application/problem+json``.

Handlers turn routing errors (unknown path, wrong method), parameter validation errors and
:class:`ProblemError` into problem documents with one readable ``detail`` line. Anything unexpected
becomes a 500 problem without a stack trace (the trace goes to the server log only).
"""

from __future__ import annotations

import logging
import math
import time
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from civictwin.errors import StoreUnavailable

PROBLEM_MEDIA_TYPE = "application/problem+json"

logger = logging.getLogger(__name__)


class ProblemError(Exception):
    """Raise in an endpoint to answer with a problem document."""

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def bad_request(detail: str) -> ProblemError:
    """A 400 problem: the request's parameters are malformed or unknown."""
    return ProblemError(400, detail)


def not_found(detail: str) -> ProblemError:
    """A 404 problem: no such resource (or none this client may see, which looks the same)."""
    return ProblemError(404, detail)


MAX_DETAIL = 512
"""Longest ``detail`` of a problem document (characters): an error never echoes an unbounded request."""
MAX_INSTANCE = 256
"""Longest ``instance`` (the request path) of a problem document (characters)."""


def problem_body(status: int, detail: str, *, instance: str | None = None) -> dict[str, Any]:
    """The JSON members of a problem document (``type`` is ``about:blank``, title the status phrase).

    ``detail`` and ``instance`` are cut to :data:`MAX_DETAIL` and :data:`MAX_INSTANCE` characters
    (ending in "…" when cut), so a 70 KB path gets a small 414, not a 70 KB one.
    """
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _phrase(status),
        "status": status,
        "detail": _bounded(detail, MAX_DETAIL),
    }
    if instance is not None:
        body["instance"] = _bounded(instance, MAX_INSTANCE)
    return body


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def problem_response(
    status: int, detail: str, *, instance: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A complete problem+json response."""
    return JSONResponse(
        problem_body(status, detail, instance=instance),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def install_problem_handlers(app: FastAPI) -> None:
    """Register the handlers that make every error a problem document."""
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StoreUnavailable, _on_store_unavailable)
    app.add_exception_handler(Exception, _on_unexpected)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(exc.status, exc.detail, instance=request.url.path, headers=exc.headers)


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else _phrase(exc.status_code)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no resource at {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(exc.status_code, detail, instance=request.url.path, headers=headers)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problem_response(400, describe_validation_error(exc), instance=request.url.path)


def describe_validation_error(exc: RequestValidationError) -> str:
    """The first validation error as one line: ``query parameter 'limit': <problem>``."""
    errors = list(exc.errors())
    if not errors:
        return "invalid request"
    first = errors[0]
    loc = [str(part) for part in first.get("loc", ())]
    where = f"{loc[0]} parameter '{'.'.join(loc[1:])}'" if len(loc) > 1 else "request"
    return f"{where}: {first.get('msg', 'invalid value')}"


STORE_RETRY_AFTER_S = 5
"""What a 503 asks a client to wait while the store's database is unreachable (seconds)."""


class _Throttle:
    """True at most once per ``every_s`` seconds: one log line per minute of an outage, not per request."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._last = -math.inf

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return False
        self._last = now
        return True


_outage_log = _Throttle(60.0)


async def _on_store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 with ``Retry-After`` (the twin is fine; its database is not answering now), logged once a minute."""
    if _outage_log.due():
        logger.warning("answering 503: %s", exc)
    return problem_response(
        503,
        "the twin's database is not answering now; retry shortly",
        instance=request.url.path,
        headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
    )


class UnexpectedErrorMiddleware:
    """Innermost: an unexpected error in a route becomes the 500 problem here, inside the other
    middlewares, so that it carries the security headers like every other answer (Starlette answers
    it outermost, past them). An error after the response has started is re-raised (the server can
    only cut the connection)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:
                raise
            response = await _on_unexpected(Request(scope), exc)
            await response(scope, receive, send)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "internal server error", instance=request.url.path)
