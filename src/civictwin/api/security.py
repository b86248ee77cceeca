"""The gate every request passes: size limits, token check, rate limit, the audit line and the metrics.

One pure ASGI middleware, in this order: refuse over-long URLs (414) and declared over-size bodies
(413); resolve the bearer token to a :class:`~civictwin.governance.tokens.Principal`; charge the
client's rate bucket (keyed by token id, or by IP address for anonymous callers and invalid tokens,
so a flood of bad tokens is throttled too; 429); refuse an invalid token (401, with
``error_description="The access token expired"`` for an expired one); answer 503 to token-bearing
requests while the token file (or the token schema of the twin's database) cannot be read (fail
closed: one logged error, not one per request);
then run the app. Whatever happens, one audit line records who asked, what, and the status they got,
and the request is counted in the Prometheus metrics under its route template. Bursts of failed
authentications from one client go to the security log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from civictwin.api.limits import (
    BodyTooLarge,
    RateLimiter,
    counting_receive,
    declared_body_too_large,
    retry_after,
    url_too_long,
)
from civictwin.api.metrics import Metrics
from civictwin.api.problems import problem_response
from civictwin.api.settings import ServerSettings
from civictwin.governance.audit import AuditLog
from civictwin.governance.security import FailureBursts, SecurityLog
from civictwin.governance.tokens import ANONYMOUS, Principal, TokenError, TokenExpired, TokenRegistry
from civictwin.store.postgis_tokens import TOKEN_SCHEMA

_INVALID = "invalid-token"
_MAX_AUDIT_QUERY = 512

logger = logging.getLogger(__name__)


def current_principal(request: Request) -> Principal:
    """Dependency: who is asking (set by :class:`GateMiddleware`; anonymous outside it)."""
    principal = getattr(request.state, "principal", None)
    return principal if isinstance(principal, Principal) else ANONYMOUS


class GateMiddleware:
    """Access control, limits and audit for every HTTP request of the app it wraps."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        registry: TokenRegistry,
        limiter: RateLimiter,
        audit: AuditLog,
        security: SecurityLog,
        metrics: Metrics,
        settings: ServerSettings,
        bursts: FailureBursts | None = None,
    ) -> None:
        self.app = app
        self.registry = registry
        self.limiter = limiter
        self.audit = audit
        self.security = security
        self.metrics = metrics
        self.settings = settings
        self.bursts = bursts or FailureBursts()
        self._token_failure: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        outcome: dict[str, Any] = {"status": 500, "sent": False, "who": "anonymous"}

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome["status"] = message["status"]
                outcome["sent"] = True
                # Audit before the response leaves, so no caller can see a reply the log lacks.
                self._record(scope, str(outcome["who"]), int(outcome["status"]), started)
            await send(message)

        try:
            await self._handle(scope, receive, tracking_send, outcome)
        except BodyTooLarge as exc:
            if outcome["sent"]:
                raise
            await problem_response(413, str(exc.detail))(scope, receive, tracking_send)
        finally:
            if not outcome["sent"]:
                self._record(scope, str(outcome["who"]), int(outcome["status"]), started)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, outcome: dict[str, Any]) -> None:
        """Run the checks and the app, noting the caller's audit name in ``outcome``."""
        client = _client(scope)
        if url_too_long(scope, self.settings.max_url_bytes):
            await _refuse(414, f"URL longer than {self.settings.max_url_bytes} bytes", scope, receive, send)
            return
        if declared_body_too_large(scope.get("headers", []), self.settings.max_body_bytes):
            await _refuse(
                413, f"request body exceeds {self.settings.max_body_bytes} bytes", scope, receive, send
            )
            return
        try:
            principal, presented = self._principal(scope)
        except TokenExpired as exc:
            outcome["who"] = exc.record.id
            self._failed_authentication(client)
            headers = {
                "WWW-Authenticate": 'Bearer error="invalid_token", error_description="The access token expired"'
            }
            await _refuse(401, exc.message, scope, receive, send, headers=headers)
            return
        except TokenError as exc:
            outcome["who"] = "unverifiable-token"
            self._tokens_unreadable(exc)
            detail = f"tokens cannot be checked right now ({self._unreadable_place()})"
            await _refuse(503, detail, scope, receive, send, headers={"Retry-After": "60"})
            return
        outcome["who"] = principal.id if principal.token else (_INVALID if presented else "anonymous")
        wait = self.limiter.acquire(principal.id if principal.token else f"ip:{client}")
        if wait > 0:
            detail = f"too many requests; retry in {retry_after(wait)} s"
            headers = {"Retry-After": retry_after(wait)}
            await _refuse(429, detail, scope, receive, send, headers=headers)
            return
        if presented and principal.token is None:
            self._failed_authentication(client)
            headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            await _refuse(401, "invalid, unknown or revoked token", scope, receive, send, headers=headers)
            return
        self._token_failure = None
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, counting_receive(receive, self.settings.max_body_bytes), send)

    def _principal(self, scope: Scope) -> tuple[Principal, bool]:
        """The caller and whether they presented credentials at all."""
        header = _header(scope, b"authorization")
        if header is None:
            return ANONYMOUS, False
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return ANONYMOUS, True
        return Principal.of(self.registry.verify(token.strip())), True

    def _failed_authentication(self, client: str) -> None:
        """Count a failed authentication; a burst from one client goes to the security log."""
        burst = self.bursts.failed(client)
        if burst is not None:
            self.security.event(
                "failed authentications",
                client=self.audit.pseudonymise(client),
                count=burst,
                window_s=self.bursts.window_s,
            )

    def _tokens_in_database(self) -> bool:
        """Whether the tokens are in the twin's database (``[server] tokens = "database"``), not a file."""
        return not isinstance(self.registry.path, Path)

    def _unreadable_place(self) -> str:
        """What the 503 says cannot be read: the token file, or the token schema of the twin's database
        (named by the schema alone: the database's URI, its host and user, stay in the server's log)."""
        if self._tokens_in_database():
            return f"the token schema {TOKEN_SCHEMA} of the twin's database is unreadable"
        return "the server's token file is unreadable"

    def _tokens_unreadable(self, exc: TokenError) -> None:
        """Log unreadable tokens once (until the failure changes), not once per request."""
        message = exc.user_message()
        if message == self._token_failure:
            return
        self._token_failure = message
        logger.error("token-bearing requests are refused (503): %s", message)
        event = "token database unreadable" if self._tokens_in_database() else "token file unreadable"
        self.security.event(event, detail=message)

    def _record(self, scope: Scope, who: str, status: int, started: float) -> None:
        seconds = time.perf_counter() - started
        query = scope.get("query_string", b"").decode("latin-1")[:_MAX_AUDIT_QUERY]
        method = str(scope.get("method", ""))
        self.audit.record(
            who=who,
            client=_client(scope),
            method=method,
            path=str(scope.get("path", "")),
            query=query,
            status=status,
            duration_ms=seconds * 1000,
        )
        route = scope.get("route")
        self.metrics.observe(str(getattr(route, "path", "unmatched")), method, status, seconds)


async def _refuse(
    status: int,
    detail: str,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    headers: dict[str, str] | None = None,
) -> None:
    await problem_response(status, detail, instance=str(scope.get("path", "")), headers=headers)(
        scope, receive, send
    )


def _header(scope: MutableMapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _client(scope: MutableMapping[str, Any]) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
