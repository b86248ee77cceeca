"""One twin's live service wired together: ``civictwin live`` runs it, and a finished comparison calls
:func:`raise_comparison_alerts` with its rows.

The rules are the twin's (``[[rules]]`` in ``twin.toml``) plus those an admin added through the API
(kept in the alert store, picked up by a running consumer within a second). The consumer's counters
are written every second as the ``live`` record of the observation store, beside the datastreams'
quality records, with totals carried across restarts.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from civictwin.config import TwinConfig, slug
from civictwin.config_live import RuleConfig, WebhookConfig
from civictwin.errors import ConfigError
from civictwin.live.alerts import step
from civictwin.live.consumer import BatchReport, Counters, LiveConsumer
from civictwin.live.engine import RuleEngine, webhook_targets
from civictwin.live.triggers import check_comparison
from civictwin.live.webhooks import Deliverer
from civictwin.store.alerts import Alert, AlertEvent, AlertStore, open_alert_store
from civictwin.store.observations import ObservationStore, open_observations

logger = logging.getLogger(__name__)

LIVE_RECORD = "live"
"""Kind of the observation-store record holding the consumer's counters."""


def client_id(config: TwinConfig) -> str:
    """The MQTT client id (and so the persistent session) of a twin's consumer."""
    assert config.live is not None
    return config.live.client_id or f"civictwin-{slug(config.twin.name)}"


def all_rules(config: TwinConfig, alerts: AlertStore) -> list[RuleConfig]:
    """The twin's rules: ``twin.toml`` first, then those added through the API."""
    return [*config.rules, *(stored.rule for stored in alerts.api_rules())]


def webhook_secrets(config: TwinConfig) -> dict[str, str]:
    """Each webhook's signing secret, read now (a missing one is a configuration error)."""
    secrets = {}
    for hook in config.webhooks:
        try:
            secrets[hook.name] = hook.secret(config.base_dir)
        except ValueError as exc:
            raise ConfigError(str(exc), path=config.base_dir / "twin.toml") from None
    return secrets


def _password(config: TwinConfig) -> str:
    assert config.live is not None
    try:
        return config.live.password(config.base_dir)
    except ValueError as exc:
        raise ConfigError(str(exc), path=config.base_dir / "twin.toml") from None


class _Totals:
    """The consumer's counters added to those of its earlier runs, written as a store record."""

    def __init__(self, observations: ObservationStore, key: str) -> None:
        self.observations = observations
        self.key = key
        self.started = _now()
        self.before = observations.records(LIVE_RECORD).get(key, {}).get("total", {})

    def write(self, counters: Counters, *, connected: bool) -> None:
        run = counters.as_json()
        total = {
            name: (
                _merge(self.before.get(name, {}), value)
                if isinstance(value, dict)
                else int(self.before.get(name, 0)) + value
            )
            for name, value in run.items()
        }
        record = {
            "started": self.started,
            "updated": _now(),
            "connected": connected,
            "run": run,
            "total": total,
        }
        self.observations.put_record(LIVE_RECORD, self.key, record)


def _merge(before: Mapping[str, int], now: Mapping[str, int]) -> dict[str, int]:
    keys = sorted(set(before) | set(now))
    return {key: int(before.get(key, 0)) + int(now.get(key, 0)) for key in keys}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@contextmanager
def live_consumer(
    config: TwinConfig, *, on_batch: Callable[[BatchReport], None] | None = None
) -> Iterator[LiveConsumer]:
    """A consumer for the twin with its stores, rule engine and webhook deliverer, all closed at the end."""
    if config.live is None:
        raise ConfigError(
            "no [live] section: say which broker and topics to listen to", path=config.base_dir / "twin.toml"
        )
    password = _password(config)
    secrets = webhook_secrets(config)
    observations = open_observations(config)
    alerts = open_alert_store(config)
    deliverer = Deliverer(alerts, config.webhooks, secrets)
    try:
        engine = RuleEngine(
            all_rules(config, alerts),
            datastreams=observations.datastreams(),
            observations=observations,
            alerts=alerts,
            webhooks=config.webhooks,
        )
        totals = _Totals(observations, client_id(config))
        version = [alerts.rules_version()]

        def on_tick(consumer: LiveConsumer) -> None:
            now = alerts.rules_version()
            if now != version[0]:
                version[0] = now
                consumer.engine.set_rules(all_rules(config, alerts))
                logger.info(
                    "rules changed through the API: now %d observation rules", len(consumer.engine.rules)
                )
            totals.write(consumer.counters, connected=True)

        consumer = LiveConsumer(
            config.live,
            password=password,
            client_id=client_id(config),
            observations=observations,
            engine=engine,
            on_batch=on_batch,
            on_alerts=deliverer.wake,
            on_tick=on_tick,
        )
        deliverer.start()
        try:
            yield consumer
        finally:
            engine.judge_windows()
            totals.write(consumer.counters, connected=False)
    finally:
        deliverer.stop()
        alerts.close()
        observations.close()


def run_live(config: TwinConfig, *, on_batch: Callable[[BatchReport], None] | None = None) -> Counters:
    """Run the twin's consumer until SIGINT or SIGTERM; returns its counters."""
    with live_consumer(config, on_batch=on_batch) as consumer:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: consumer.stop())
        consumer.run()
        return consumer.counters


def raise_comparison_alerts(
    config: TwinConfig, comparison: Mapping[str, Any], *, deliver: bool = True
) -> list[tuple[Alert, AlertEvent]]:
    """Judge the twin's scenario rules on a finished comparison (its ``comparison.json`` document).

    Opens an alert per plan and KPI that breaks a rule, closes those a newer comparison clears, and
    (with ``deliver``) makes one delivery attempt to the webhooks at once; what fails stays queued
    for ``civictwin live`` or ``civictwin alerts deliver`` to retry. Returns the events.
    """
    with open_alert_store(config) as alerts:
        rules = [rule for rule in all_rules(config, alerts) if not rule.watches_observations]
        findings = check_comparison(rules, comparison)
        severity = {rule.name: rule.severity for rule in rules}
        open_alerts = alerts.open_alerts(subject_prefix="scenario:")
        changes: list[tuple[Alert, AlertEvent | None]] = []
        for finding in findings:
            transition = step(
                open_alerts.get((finding.rule, finding.subject)), finding, severity=severity[finding.rule]
            )
            if transition.alert is not None:
                changes.append((transition.alert, transition.event))
        saved = alerts.save(changes, targets=webhook_targets(rules, config.webhooks)) if changes else []
        events = [
            (alert, event) for alert, (_, event) in zip(saved, changes, strict=True) if event is not None
        ]
        if deliver and events and config.webhooks:
            deliver_pending(alerts, config.webhooks, webhook_secrets(config))
    for alert, event in events:
        logger.warning("alert %s %s: %s on %s: %s", alert.id, event, alert.rule, alert.subject, alert.message)
    return events


def deliver_pending(alerts: AlertStore, webhooks: list[WebhookConfig], secrets: Mapping[str, str]) -> int:
    """One delivery pass over what is due now (each attempt bounded by its webhook's timeout)."""
    deliverer = Deliverer(alerts, webhooks, secrets)
    try:
        return deliverer.deliver_due()
    finally:
        deliverer.stop()
