"""Serving safely behind a city's infrastructure: trusted hosts, a public base URL, security headers, HEAD.

Three small ASGI middlewares, each with one job:

- :class:`HostMiddleware` refuses a ``Host`` header that is not one of the configured trusted hosts
  (400), and when a public base URL is configured rewrites the request's scheme, host and path
  prefix to it, so every absolute link (OGC API links, TileJSON tile URLs, comparison links) is built
  from configuration, never from what a client or a shared proxy sent.
- :class:`SecurityHeadersMiddleware` adds ``X-Content-Type-Options: nosniff``, a referrer policy, a
  content security policy (strict for data, HTML pages get inline styles only; a route's own policy,
  the viewer's, is kept and given the configured ``frame-ancestors``) and, over HTTPS, HSTS.
- :class:`HeadMiddleware` answers ``HEAD`` on every ``GET`` route: the GET's status and headers,
  no body.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from civictwin.api.problems import problem_response

_DATA_POLICY = "default-src 'none'"
_HTML_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'"
)


class HostMiddleware:
    """Trusted ``Host`` headers only; with a public URL, links are built from it alone."""

    def __init__(self, app: ASGIApp, *, trusted_hosts: Sequence[str], public_url: str | None) -> None:
        self.app = app
        self.public = urlsplit(public_url) if public_url else None
        hosts = {h.lower().strip("[]") for h in trusted_hosts}
        if self.public is not None and self.public.hostname:
            hosts.add(self.public.hostname.lower())
        self.any_host = "*" in hosts
        self.trusted = frozenset(hosts - {"*"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = _host_name(_header(scope, b"host"))
        if not self.any_host and host not in self.trusted:
            shown = (host or "(none)")[:100]
            detail = f"the Host header '{shown}' is not a trusted host of this server"
            await problem_response(400, detail)(scope, receive, send)
            return
        if self.public is None:
            await self.app(scope, receive, send)
            return
        inner = _rebased(scope, self.public.scheme, self.public.netloc, self.public.path.rstrip("/"))
        await self.app(inner, receive, _route_noting(send, scope, inner))


def _rebased(scope: Scope, scheme: str, netloc: str, prefix: str) -> Scope:
    """``scope`` as if it had been addressed to ``scheme://netloc<prefix>``."""
    headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"host"]
    rebased = dict(scope, scheme=scheme, headers=[(b"host", netloc.encode("latin-1")), *headers])
    if prefix:
        rebased["root_path"] = prefix
        rebased["path"] = prefix + scope["path"]
        rebased["raw_path"] = prefix.encode() + (scope.get("raw_path") or scope["path"].encode())
    return rebased


def _host_name(value: str | None) -> str | None:
    """The host of a ``Host`` header, lower case, without port or IPv6 brackets."""
    if not value:
        return None
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class SecurityHeadersMiddleware:
    """Security headers on every response (those a route set itself are kept)."""

    def __init__(self, app: ASGIApp, *, frame_ancestors: Sequence[str], hsts_max_age_s: int) -> None:
        self.app = app
        self.frame_ancestors = "frame-ancestors " + " ".join(frame_ancestors or ["'none'"])
        self.hsts = f"max-age={hsts_max_age_s}" if hsts_max_age_s > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._add(MutableHeaders(scope=message), https=https)
            await send(message)

        await self.app(scope, receive, with_headers)

    def _add(self, headers: MutableHeaders, *, https: bool) -> None:
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        policy = headers.get("Content-Security-Policy")
        if policy is None:
            html = headers.get("Content-Type", "").startswith("text/html")
            policy = _HTML_POLICY if html else _DATA_POLICY
        if "frame-ancestors" not in policy:
            policy = f"{policy}; {self.frame_ancestors}"
        headers["Content-Security-Policy"] = policy
        if https and self.hsts:
            headers.setdefault("Strict-Transport-Security", self.hsts)


class HeadMiddleware:
    """``HEAD`` runs the route as ``GET`` and sends its status and headers without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        inner = dict(scope, method="GET")
        noting = _route_noting(send, scope, inner)

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await noting(message)

        await self.app(inner, receive, headers_only)


def _route_noting(send: Send, outer: Scope, inner: Scope) -> Send:
    """``send`` that copies the matched route from a rewritten scope back to the original one.

    The router notes the route it matched in the scope it was given; the gate outside (metrics by
    route template) reads it from the original scope when the response starts.
    """

    async def noting(message: Message) -> None:
        if message["type"] == "http.response.start" and "route" in inner:
            outer["route"] = inner["route"]
        await send(message)

    return noting


def _header(scope: MutableMapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None
