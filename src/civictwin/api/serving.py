"""Running the app under uvicorn the way a city's IT runs a service: TLS, graceful stop, log reopening.

:func:`run_server` starts uvicorn with the audited edge protocol (:mod:`civictwin.api.edge`), native
TLS when a certificate and key are configured, no ``Server`` header, and forwarded headers ignored
(the app believes them only from configured proxies). On SIGTERM or SIGINT uvicorn stops accepting
connections, closes idle ones and lets requests in flight finish, for at most the configured
shutdown timeout; SIGHUP makes the audit and security logs reopen their files (after logrotate).

:func:`run_workers` serves one twin from several processes (``civictwin serve --workers N``): the
supervisor binds the listening socket once and starts N spawned workers that each open the twin and
accept from that socket (the kernel hands each connection to one of them). It forwards SIGHUP to
every worker, drains them all on SIGTERM or SIGINT, and starts a worker again if one dies after it
had started; a worker that fails at start stops the server with one line. What the workers must
agree on is shared outside their memory (see ``docs/api.md``, several workers): tokens, the audit
and security logs and the rate buckets through files beside the twin, the tile caches through the
store's version marker.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from multiprocessing.process import BaseProcess
from multiprocessing.queues import SimpleQueue
from pathlib import Path
from types import FrameType
from typing import Literal

import uvicorn
from fastapi import FastAPI
from prometheus_client.multiprocess import mark_process_dead

from civictwin.api.edge import edge_protocol
from civictwin.api.metrics import MULTIPROCESS_ENV
from civictwin.api.settings import ServerSettings
from civictwin.api.shared_state import limits_path, reset_shared_state
from civictwin.errors import CivicTwinError, ConfigError


class _Terminated(Exception):
    """SIGTERM arrived (raised once uvicorn has drained and re-raised the signal)."""


logger = logging.getLogger(__name__)

_STARTED_AFTER_S = 10.0
"""A worker that dies sooner than this after its start failed to start: the server stops."""


class _Server(uvicorn.Server):
    """uvicorn's server, telling ``on_started`` when it accepts requests."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self._on_started is not None and self.started:
            self._on_started()


def run_server(
    app: FastAPI,
    settings: ServerSettings,
    *,
    sockets: list[socket.socket] | None = None,
    on_started: Callable[[], None] | None = None,
) -> Literal["SIGTERM"] | None:
    """Serve ``app`` until stopped; "SIGTERM" when a SIGTERM stopped it after draining.

    A Ctrl+C (SIGINT) drains the same way and then surfaces as :class:`KeyboardInterrupt`. With
    ``sockets`` (a worker of :func:`run_workers`) it accepts from those instead of binding its own;
    ``on_started`` is called once it accepts requests.
    """
    _check_tls(settings)
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
    server = _Server(config, on_started)
    with _signals(app):
        try:
            server.run(sockets=sockets)
        except _Terminated:
            return "SIGTERM"
    return None


def _check_tls(settings: ServerSettings) -> None:
    for path in (settings.tls_certificate, settings.tls_private_key):
        if path is not None and not path.is_file():
            raise ConfigError("TLS file not found", path=path, field="server")


def run_workers(
    twin_dir: Path, settings: ServerSettings, *, on_ready: Callable[[int], None] | None = None
) -> Literal["SIGTERM"] | None:
    """Serve the twin in ``twin_dir`` from ``settings.workers`` processes until stopped.

    ``on_ready`` is called once with the number of workers when every one of them accepts requests.
    Returns "SIGTERM" when a SIGTERM stopped it after every worker drained; a Ctrl+C (SIGINT) drains
    the same way and surfaces as :class:`KeyboardInterrupt`. Raises :class:`ConfigError` (one line)
    when the address is taken or a worker fails at start.
    """
    from civictwin.api.app import resolve_store

    _check_tls(settings)
    store_path, _ = resolve_store(twin_dir)
    reset_shared_state(limits_path(store_path))
    settings = replace(settings, limits_key=secrets.token_bytes(32))
    listener = _listening_socket(settings.host, settings.port)
    with _counted_together():
        return _supervise(twin_dir, settings, listener, on_ready=on_ready)


@contextmanager
def _counted_together() -> Iterator[None]:
    """A new folder where the workers keep their Prometheus counters (prometheus_client's multiprocess
    mode, handed to them through the environment they are spawned with); removed at the end."""
    folder = Path(tempfile.mkdtemp(prefix="civictwin-metrics-"))
    before = os.environ.get(MULTIPROCESS_ENV)
    os.environ[MULTIPROCESS_ENV] = str(folder)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(MULTIPROCESS_ENV, None)
        else:
            os.environ[MULTIPROCESS_ENV] = before
        shutil.rmtree(folder, ignore_errors=True)


def _supervise(
    twin_dir: Path,
    settings: ServerSettings,
    listener: socket.socket,
    *,
    on_ready: Callable[[int], None] | None,
) -> Literal["SIGTERM"] | None:
    """Start the workers on ``listener``, replace any that dies, and drain them all when signalled."""
    started: SimpleQueue[int] = multiprocessing.get_context("spawn").SimpleQueue()
    ready: set[int] = set()
    stop: list[int] = []
    workers: list[tuple[BaseProcess, float]] = []

    def stopping(signum: int, frame: FrameType | None) -> None:
        stop.append(signum)

    def hangup(signum: int, frame: FrameType | None) -> None:
        for process, _ in workers:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signum)

    handlers = {signal.SIGTERM: stopping, signal.SIGINT: stopping}
    sighup = getattr(signal, "SIGHUP", None)  # not on Windows
    if sighup is not None:
        handlers[sighup] = hangup
    previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
    try:
        workers.extend(_start_worker(twin_dir, settings, listener, started) for _ in range(settings.workers))
        while not stop:
            time.sleep(0.2)
            if stop:  # a signal to the whole process group may have stopped the workers already
                break
            workers[:] = [_kept_alive(entry, twin_dir, settings, listener, started) for entry in workers]
            _note_started(started, ready, workers, on_ready)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _drain(workers, settings.shutdown_timeout_s)
        listener.close()
    if stop[0] == signal.SIGINT:
        raise KeyboardInterrupt
    return "SIGTERM"


def _listening_socket(host: str, port: int) -> socket.socket:
    """The one socket every worker accepts from (bound before any worker starts)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # with proto 0 every small response waited out the client's 40 ms delayed ACK (Nagle).
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror})", field="--port") from None
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener


def _start_worker(
    twin_dir: Path, settings: ServerSettings, listener: socket.socket, started: SimpleQueue[int]
) -> tuple[BaseProcess, float]:
    """A spawned worker process serving the twin from ``listener``, and when it started."""
    process = multiprocessing.get_context("spawn").Process(
        target=_worker, args=(twin_dir, settings, listener, started), daemon=False
    )
    process.start()
    return process, time.monotonic()


def _kept_alive(
    entry: tuple[BaseProcess, float],
    twin_dir: Path,
    settings: ServerSettings,
    listener: socket.socket,
    started: SimpleQueue[int],
) -> tuple[BaseProcess, float]:
    """The worker, or a new one in place of a worker that died after it had started."""
    process, since = entry
    if process.is_alive():
        return entry
    if time.monotonic() - since < _STARTED_AFTER_S:
        raise ConfigError(
            f"a server worker failed to start (exit code {process.exitcode}); see its log above"
        )
    logger.warning("server worker %s died (exit code %s); starting another", process.pid, process.exitcode)
    if process.pid is not None:  # its counters stay counted; its gauges (tile cache bytes) go
        mark_process_dead(process.pid)
    return _start_worker(twin_dir, settings, listener, started)


def _note_started(
    started: SimpleQueue[int],
    ready: set[int],
    workers: list[tuple[BaseProcess, float]],
    on_ready: Callable[[int], None] | None,
) -> None:
    """Collect the workers that accept requests; call ``on_ready`` once, when all of them first do."""
    before = len(ready)
    while not started.empty():
        ready.add(started.get())
    if on_ready is not None and before < len(workers) <= len(ready):
        on_ready(len(workers))


def _drain(workers: list[tuple[BaseProcess, float]], timeout_s: float) -> None:
    """SIGTERM every worker (each lets its requests in flight finish), then wait; kill stragglers."""
    for process, _ in workers:
        if process.pid is not None and process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s + 5.0
    for process, _ in workers:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def _worker(
    twin_dir: Path, settings: ServerSettings, listener: socket.socket, started: SimpleQueue[int]
) -> None:
    """One worker process: open the twin and serve it from the supervisor's socket until stopped.

    A twin it cannot open (the database went down since the supervisor checked it) is one line on
    stderr and exit code 1, which the supervisor reports.
    """
    from civictwin.api.app import create_app

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl+C while starting: the supervisor stops us
    try:
        app = create_app(twin_dir, settings=settings)
    except CivicTwinError as exc:
        print(f"error: server worker {os.getpid()}: {exc.user_message()}", file=sys.stderr)
        sys.exit(1)
    with suppress(KeyboardInterrupt):
        run_server(app, settings, sockets=[listener], on_started=lambda: started.put(os.getpid()))


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
