"""The server edge: requests uvicorn's HTTP parser refuses before the application ever sees them.

A malformed request line, a ``Content-Length: abc`` or raw non-ASCII bytes in the path are answered
by the HTTP protocol itself, not by the app, so the app's problem documents and audit never saw
them. :func:`edge_protocol` makes a subclass of uvicorn's h11 protocol whose refusals are problem
documents like every other error (``400 application/problem+json``) and are reported to a callback
(the audit log and the metrics), so every request leaves its one audit record.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from civictwin.api.problems import PROBLEM_MEDIA_TYPE, problem_body

EdgeCallback = Callable[[str, str], None]
"""Called as (client address, why) for each request refused at the edge."""

_DETAIL = "malformed HTTP request (refused by the HTTP parser)"
_NOT_ASCII = "malformed HTTP request: the request target is not ASCII"


def edge_protocol(on_refused: EdgeCallback) -> type[H11Protocol]:
    """An h11 protocol class that answers parser refusals as problem+json and reports them."""

    class EdgeProtocol(H11Protocol):
        """uvicorn's h11 protocol with audited, problem+json refusals."""

        def handle_events(self) -> None:
            try:
                super().handle_events()
            except UnicodeDecodeError:  # uvicorn decodes the target as ASCII without checking
                self.send_400_response(_NOT_ASCII)

        def send_400_response(self, msg: str) -> None:
            detail = _NOT_ASCII if msg == _NOT_ASCII else _DETAIL
            body = json.dumps(problem_body(400, detail)).encode()
            headers = [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"x-content-type-options", b"nosniff"),
                (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
                (b"connection", b"close"),
            ]
            for event in (
                h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                h11.Data(data=body),
                h11.EndOfMessage(),
            ):
                self.transport.write(self.conn.send(event) or b"")
            self.transport.close()
            on_refused(self.client[0] if self.client else "unknown", detail)

    return EdgeProtocol
