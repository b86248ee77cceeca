"""A real local HTTP receiver for webhook tests: records each POST, checks its signature, and can be
told to answer 500 or to hang (accept the request and never answer) for a number of requests."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from civictwin.live.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, verify_signature


@dataclass
class Received:
    """One POST as the receiver saw it."""

    body: dict[str, Any]
    delivery: str
    signature_ok: bool
    at: float


@dataclass
class Receiver:
    """Serves on a free loopback port; ``fail`` requests answer 500, ``hang`` requests never answer."""

    secret: str
    fail: int = 0
    hang: int = 0
    hang_s: float = 30.0
    received: list[Received] = field(default_factory=list)
    attempts: int = 0

    def __post_init__(self) -> None:
        receiver = self
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.attempts += 1
                    if receiver.hang > 0:
                        receiver.hang -= 1
                        action = "hang"
                    elif receiver.fail > 0:
                        receiver.fail -= 1
                        action = "fail"
                    else:
                        action = "ok"
                if action == "hang":
                    time.sleep(receiver.hang_s)
                    return
                if action == "fail":
                    self.send_response(500)
                    self.end_headers()
                    return
                ok = verify_signature(
                    receiver.secret, self.headers.get(SIGNATURE_HEADER, ""), raw, now=time.time()
                )
                with receiver._lock:
                    receiver.received.append(
                        Received(json.loads(raw), self.headers.get(DELIVERY_HEADER, ""), ok, time.time())
                    )
                self.send_response(204 if ok else 401)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def wait_for(self, count: int, *, timeout_s: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} deliveries, got {len(self.received)}")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
