"""Running the app under uvicorn the way a city's IT runs a service: TLS, graceful stop, log reopening.

:func:`run_server` starts uvicorn with the audited edge protocol (:mod:`civictwin.api.edge`), native
TLS when a certificate and key are configured, no ``Server`` header, and forwarded headers ignored
(the app believes them only from configured proxies). On SIGTERM or SIGINT uvicorn stops accepting
connections, closes idle ones and lets requests in flight finish, for at most the configured
shutdown timeout; SIGHUP makes the audit and security logs reopen their files (after logrotate).
"""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Literal

import uvicorn
from fastapi import FastAPI

from civictwin.api.edge import edge_protocol
from civictwin.api.settings import ServerSettings
from civictwin.errors import ConfigError


class _Terminated(Exception):
    """SIGTERM arrived (raised once uvicorn has drained and re-raised the signal)."""


def run_server(app: FastAPI, settings: ServerSettings) -> Literal["SIGTERM"] | None:
    """Serve ``app`` until stopped; "SIGTERM" when a SIGTERM stopped it after draining.

    A Ctrl+C (SIGINT) drains the same way and then surfaces as :class:`KeyboardInterrupt`.
    """
    for path in (settings.tls_certificate, settings.tls_private_key):
        if path is not None and not path.is_file():
            raise ConfigError("TLS file not found", path=path, field="server")
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        server_header=False,
        proxy_headers=False,
        http=edge_protocol(app.state.edge_refused),
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_s),
        ssl_certfile=str(settings.tls_certificate) if settings.tls_certificate else None,
        ssl_keyfile=str(settings.tls_private_key) if settings.tls_private_key else None,
    )
    server = uvicorn.Server(config)
    with _signals(app):
        try:
            server.run()
        except _Terminated:
            return "SIGTERM"
    return None


@contextmanager
def _signals(app: FastAPI) -> Iterator[None]:
    """SIGHUP reopens the logs; SIGTERM (re-raised by uvicorn after draining) ends the run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def reopen(signum: int, frame: FrameType | None) -> None:
        app.state.audit.request_reopen()
        app.state.security.request_reopen()

    def terminated(signum: int, frame: FrameType | None) -> None:
        raise _Terminated

    hangup = getattr(signal, "SIGHUP", None)  # not on Windows
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, terminated)}
    if hangup is not None:
        previous[hangup] = signal.signal(hangup, reopen)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
