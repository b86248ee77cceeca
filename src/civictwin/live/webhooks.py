"""Webhook delivery: signed JSON POSTs with timeouts, retries with exponential backoff, never in the way.

Each alert event is queued in the alert store (:meth:`~civictwin.store.alerts.AlertStore.save`) in
the same transaction that records the alert, so a crash never loses a delivery; :class:`Deliverer`
sends what is due from its own threads, so a receiver that hangs (cut off after ``timeout_s``) or
answers 500 (retried later) never holds up ingestion. Delivery is at least once: a receiver may see
an event twice and can tell by the ``X-Civictwin-Delivery`` id.

Signature (so a receiver knows the POST is ours and fresh)::

    X-Civictwin-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

A receiver recomputes the HMAC over the timestamp, a dot and the raw body with the shared secret,
compares in constant time, and refuses timestamps older than a few minutes (replays):
:func:`verify_signature` does exactly that.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from civictwin.config_live import WebhookConfig
from civictwin.store.alerts import AlertStore, Delivery

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Civictwin-Signature"
DELIVERY_HEADER = "X-Civictwin-Delivery"
EVENT_HEADER = "X-Civictwin-Event"
_USER_AGENT = "civictwin-webhooks/1"


def sign(secret: str, body: bytes, *, timestamp: int) -> str:
    """The signature header value for ``body`` sent at ``timestamp`` (UNIX seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    secret: str, header: str, body: bytes, *, now: float, tolerance_s: float = 300.0
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` and its timestamp is within ``tolerance_s`` of ``now``."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    stamp, given = parts.get("t", ""), parts.get("v1", "")
    if not stamp.isdigit() or not given or abs(now - int(stamp)) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp=int(stamp)).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)


def backoff(attempts: int, hook: WebhookConfig) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: ``backoff_s`` doubled each time, capped."""
    return float(min(hook.backoff_s * 2 ** (attempts - 1), hook.max_backoff_s))


@dataclass(frozen=True)
class Attempt:
    """The outcome of one POST: None error means the receiver answered 2xx."""

    error: str | None
    status: int | None = None


def post(url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float) -> Attempt:
    """POST ``body`` once; any answer but 2xx, a timeout or a connection error is a failed attempt."""
    request = urllib.request.Request(url, data=body, method="POST", headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return Attempt(f"HTTP {exc.code}", exc.code)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Attempt(f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__)
    return Attempt(None, status) if 200 <= status < 300 else Attempt(f"HTTP {status}", status)


class Deliverer:
    """Sends due deliveries from background threads until stopped.

    ``secrets`` maps webhook names to their signing secrets (read once at start). Targets are served
    side by side (up to ``workers`` at once), each in the order its events happened, so one slow
    receiver delays no other; deliveries to a webhook no longer configured fail at once with that
    reason.
    """

    def __init__(
        self,
        store: AlertStore,
        webhooks: list[WebhookConfig],
        secrets: Mapping[str, str],
        *,
        workers: int = 4,
        poll_s: float = 1.0,
    ) -> None:
        self.store = store
        self.webhooks = {hook.name: hook for hook in webhooks}
        self.secrets = dict(secrets)
        self.poll_s = poll_s
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="civictwin-webhook")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="civictwin-deliverer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Look for due deliveries now (called after new alerts were saved)."""
        self._wake.set()

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Stop after the attempts under way (each bounded by its webhook's timeout)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_due()
            except Exception:  # a broken pass is logged and retried; it never ends the consumer
                logger.exception("webhook delivery pass failed")
            self._wake.wait(self._sleep())
            self._wake.clear()

    def _sleep(self) -> float:
        due = self.store.next_due()
        return self.poll_s if due is None else max(0.0, min(self.poll_s, due - time.time()))

    def deliver_due(self) -> int:
        """Attempt every delivery due now, each target's in order; returns how many were attempted."""
        attempted = 0
        while due := self.store.due_deliveries(datetime.now(UTC)):
            by_target: dict[str, list[Delivery]] = {}
            for delivery in due:
                by_target.setdefault(delivery.target, []).append(delivery)
            for future in [self._pool.submit(self._in_order, batch) for batch in by_target.values()]:
                attempted += future.result()
        return attempted

    def _in_order(self, deliveries: list[Delivery]) -> int:
        """Send one target's deliveries one after the other, stopping at its first failure."""
        for count, delivery in enumerate(deliveries, start=1):
            if self.attempt(delivery).error is not None:
                return count
        return len(deliveries)

    def attempt(self, delivery: Delivery) -> Attempt:
        """Send one delivery and record the outcome (delivered, retry later, or given up)."""
        hook = self.webhooks.get(delivery.target)
        if hook is None:
            outcome = Attempt(f"webhook '{delivery.target}' is no longer configured")
            self.store.record_attempt(delivery.id, error=outcome.error, retry_at=None)
            return outcome
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": _USER_AGENT,
            SIGNATURE_HEADER: sign(self.secrets[hook.name], delivery.payload, timestamp=stamp),
            DELIVERY_HEADER: str(delivery.id),
            EVENT_HEADER: str(delivery.event),
        }
        outcome = post(hook.url, delivery.payload, headers, timeout_s=hook.timeout_s)
        attempts = delivery.attempts + 1
        retry_at = None
        if outcome.error is not None and attempts < hook.max_attempts:
            retry_at = datetime.now(UTC) + timedelta(seconds=backoff(attempts, hook))
        self.store.record_attempt(delivery.id, error=outcome.error, retry_at=retry_at)
        if outcome.error is not None:
            verdict = f"retry at {retry_at:%H:%M:%S}" if retry_at else f"given up after {attempts} attempts"
            logger.warning(
                "webhook %s: delivery %d failed (%s); %s", hook.name, delivery.id, outcome.error, verdict
            )
        return outcome
