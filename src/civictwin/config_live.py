"""The live part of ``twin.toml``: the MQTT broker to listen to, the rules that raise alerts, and the
webhooks that receive them. Validated here, once, like the rest of the configuration (``config.py``
includes these sections); errors name the key and what was expected.

```toml
[live]
broker = "127.0.0.1:1883"
username = "civictwin"
password_file = "mqtt.password"       # one line; or password_env = "CIVICTWIN_MQTT_PASSWORD"
topics = ["city/v1.1/Datastreams(+)/Observations"]

[[rules]]
name = "no2_hourly_limit"
kind = "exceedances"                  # hourly means above 200 µg/m³ more than 18 times a year
observed_property = "NO2"
window = "hour"
above = 200.0
allowed = 18

[[webhooks]]
name = "control_room"
url = "https://hooks.example.org/civictwin"
secret_env = "CIVICTWIN_WEBHOOK_SECRET"
```
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
_TOPIC_FORBIDDEN = re.compile(r"[\x00]")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _secret(value: str | None, env: str | None, path: Path | None, what: str) -> str | None:
    """A secret from an environment variable or the first line of a file (None when neither is set)."""
    if env:
        found = os.environ.get(env)
        if found is None:
            raise ValueError(f"{what}: environment variable {env} is not set")
        return found
    if path is not None:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ValueError(f"{what}: cannot read {path}: {exc.strerror}") from None
        if not lines or not lines[0].strip():
            raise ValueError(f"{what}: {path} is empty")
        return lines[0].strip()
    return value


class LiveSection(_Strict):
    """Where live observations come from: one MQTT broker and the topics to subscribe to (QoS 1)."""

    broker: str = Field(description="host:port of the MQTT broker")
    username: str = Field(min_length=1)
    password_env: str | None = Field(default=None, description="Environment variable holding the password")
    password_file: str | None = Field(default=None, description="File whose first line is the password")
    topics: Annotated[list[str], Field(min_length=1)]
    client_id: str | None = Field(
        default=None,
        description="MQTT client id; default civictwin-<twin slug>. Keep it stable: it names the session",
    )
    session_expiry_s: Annotated[int, Field(ge=60)] = 7 * 24 * 3600
    """How long the broker keeps the consumer's session (and queues its messages) while it is away."""
    max_future_s: Annotated[float, Field(ge=0)] = 300.0
    """Observations timed further than this ahead of their arrival are dead-lettered as far-future."""
    batch_size: Annotated[int, Field(ge=1, le=50_000)] = 2_000
    """Most messages written (and then acknowledged) in one transaction."""
    batch_wait_ms: Annotated[int, Field(ge=1, le=10_000)] = 50
    """Longest a received message waits for its batch to fill before it is written."""
    queue_limit: Annotated[int, Field(ge=100)] = 50_000
    """Messages held in memory before the consumer stops reading from the broker (back-pressure)."""
    silence_check_s: Annotated[float, Field(gt=0)] = 10.0
    """How often sensor-silence rules are checked."""

    @field_validator("broker")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port, got {value!r}")
        return value

    @field_validator("topics")
    @classmethod
    def _topics_valid(cls, topics: list[str]) -> list[str]:
        for topic in topics:
            if not topic or _TOPIC_FORBIDDEN.search(topic) or _bad_wildcards(topic):
                raise ValueError(f"{topic!r} is not a valid MQTT topic filter")
        return topics

    @model_validator(mode="after")
    def _one_password_source(self) -> LiveSection:
        if (self.password_env is None) == (self.password_file is None):
            raise ValueError("give exactly one of password_env or password_file")
        return self

    @property
    def host(self) -> str:
        return self.broker.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.broker.rpartition(":")[2])

    def password(self, base_dir: Path) -> str:
        """The broker password, read now (so a rotated file is honoured by the next start)."""
        path = (base_dir / self.password_file) if self.password_file else None
        found = _secret(None, self.password_env, path, "live.password")
        assert found is not None  # one source is required by the validator
        return found


def _bad_wildcards(topic: str) -> bool:
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return True
        if "+" in level and level != "+":
            return True
    return False


class RuleKind(StrEnum):
    """What a rule watches."""

    THRESHOLD = "threshold"
    RATE_OF_CHANGE = "rate_of_change"
    EXCEEDANCES = "exceedances"
    PERIOD_MEAN = "period_mean"
    SILENCE = "silence"
    SCENARIO_DIFFERENCE = "scenario_difference"
    SCENARIO_TARGET = "scenario_target"


OBSERVATION_KINDS = frozenset(
    {
        RuleKind.THRESHOLD,
        RuleKind.RATE_OF_CHANGE,
        RuleKind.EXCEEDANCES,
        RuleKind.PERIOD_MEAN,
        RuleKind.SILENCE,
    }
)
SCENARIO_KINDS = frozenset({RuleKind.SCENARIO_DIFFERENCE, RuleKind.SCENARIO_TARGET})

# Which options each kind takes (besides name, kind, severity, description); the rest must be absent.
_REQUIRED: dict[RuleKind, set[str]] = {
    RuleKind.THRESHOLD: set(),
    RuleKind.RATE_OF_CHANGE: {"per_hour"},
    RuleKind.EXCEEDANCES: {"window", "above", "allowed"},
    RuleKind.PERIOD_MEAN: {"period", "above"},
    RuleKind.SILENCE: {"minutes"},
    RuleKind.SCENARIO_DIFFERENCE: {"kpis", "by_more_than"},
    RuleKind.SCENARIO_TARGET: {"kpis"},
}
_ALLOWED: dict[RuleKind, set[str]] = {
    RuleKind.THRESHOLD: {"above", "below"},
    RuleKind.RATE_OF_CHANGE: {"per_hour"},
    RuleKind.EXCEEDANCES: {"window", "above", "allowed", "period", "min_values", "timezone"},
    RuleKind.PERIOD_MEAN: {"period", "above", "min_values", "timezone"},
    RuleKind.SILENCE: {"minutes"},
    RuleKind.SCENARIO_DIFFERENCE: {"kpis", "by_more_than", "scenarios", "confident"},
    RuleKind.SCENARIO_TARGET: {"kpis", "above", "below", "scenarios", "confident"},
}
_TARGETED = {"datastreams", "observed_property"}
_OPTIONS = {
    "above", "below", "per_hour", "window", "allowed", "period", "min_values", "timezone", "minutes",
    "kpis", "by_more_than", "scenarios", "confident", *_TARGETED,
}  # fmt: skip


class RuleConfig(_Strict):
    """One rule: what it watches, the condition that fires it, and how loud it is.

    Observation rules pick their datastreams by id (``datastreams``) or by observed property name
    (``observed_property``); with neither they watch every datastream. Scenario rules pick KPIs
    (``kpis``) and optionally scenarios (``scenarios``; default: every plan of a comparison).
    """

    name: Annotated[str, Field(pattern=_NAME_PATTERN)]
    kind: RuleKind
    severity: Literal["info", "warning", "critical"] = "warning"
    description: str = ""
    datastreams: list[str] | None = None
    observed_property: str | None = None
    above: float | None = None
    """Fires when the watched value is above this (threshold, window means, scenario targets)."""
    below: float | None = None
    """Fires when the watched value is below this (threshold and scenario targets)."""
    per_hour: Annotated[float, Field(gt=0)] | None = None
    """rate_of_change: fires when |Δvalue| / Δtime between consecutive observations exceeds this per hour."""
    window: Literal["hour", "day"] | None = None
    """exceedances: the calendar window whose mean is compared with ``above``."""
    allowed: Annotated[int, Field(ge=0)] | None = None
    """exceedances: how many windows above ``above`` a period may hold before the rule fires."""
    period: Literal["day", "month", "year"] | None = None
    """exceedances (default year) and period_mean: the calendar period counted or averaged."""
    min_values: Annotated[int, Field(ge=1)] | None = None
    """Observations a window (exceedances) or period (period_mean) needs before its mean counts (default 1)."""
    timezone: str | None = None
    """Time zone of the calendar windows and periods (default UTC)."""
    minutes: Annotated[float, Field(gt=0)] | None = None
    """silence: fires when a datastream's newest observation is older than this."""
    kpis: list[str] | None = None
    scenarios: list[str] | None = None
    by_more_than: float | None = None
    """scenario_difference: fires when plan − baseline exceeds this (in the KPI's unit)."""
    confident: bool = True
    """Scenario rules: require the whole 95% interval beyond the limit (not just the mean)."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _options_fit_kind(self) -> RuleConfig:
        given = {k for k in _OPTIONS if k in self.model_fields_set and getattr(self, k) is not None}
        allowed = _ALLOWED[self.kind] | (_TARGETED if self.kind in OBSERVATION_KINDS else set())
        misplaced = sorted(given - allowed)
        if misplaced:
            raise ValueError(f"option(s) {', '.join(misplaced)} do not apply to kind '{self.kind}'")
        missing = sorted(_REQUIRED[self.kind] - given)
        if missing:
            raise ValueError(f"kind '{self.kind}' needs {', '.join(missing)}")
        if self.kind in (RuleKind.THRESHOLD, RuleKind.SCENARIO_TARGET) and (self.above is None) == (
            self.below is None
        ):
            raise ValueError(f"kind '{self.kind}' needs exactly one of above or below")
        if self.kind is RuleKind.EXCEEDANCES and self.window == "day" and self.period == "day":
            raise ValueError("an exceedance count of daily means needs a period longer than a day")
        if self.datastreams is not None and self.observed_property is not None:
            raise ValueError("give datastreams or observed_property, not both")
        return self

    @property
    def watches_observations(self) -> bool:
        return self.kind in OBSERVATION_KINDS

    @property
    def zone(self) -> ZoneInfo:
        """The time zone of calendar windows and periods."""
        return ZoneInfo(self.timezone or "UTC")


class WebhookConfig(_Strict):
    """An HTTP endpoint that receives alerts as signed JSON POSTs."""

    name: Annotated[str, Field(pattern=_NAME_PATTERN)]
    url: str
    secret_env: str | None = Field(
        default=None, description="Environment variable holding the signing secret"
    )
    secret_file: str | None = Field(default=None, description="File whose first line is the signing secret")
    rules: list[str] | None = Field(
        default=None, description="Rules whose alerts this webhook gets (default all)"
    )
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    max_attempts: Annotated[int, Field(ge=1, le=50)] = 8
    backoff_s: Annotated[float, Field(gt=0, le=3600)] = 2.0
    """Wait before the first retry; doubled after each failure, at most ``max_backoff_s``."""
    max_backoff_s: Annotated[float, Field(gt=0, le=86_400)] = 600.0

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value

    @model_validator(mode="after")
    def _one_secret_source(self) -> WebhookConfig:
        if (self.secret_env is None) == (self.secret_file is None):
            raise ValueError("give exactly one of secret_env or secret_file")
        return self

    def secret(self, base_dir: Path) -> str:
        """The signing secret, read now."""
        path = (base_dir / self.secret_file) if self.secret_file else None
        found = _secret(None, self.secret_env, path, f"webhooks.{self.name}.secret")
        assert found is not None
        return found

    def wants(self, rule: str) -> bool:
        """Whether alerts of ``rule`` go to this webhook."""
        return self.rules is None or rule in self.rules


def check_unique(rules: list[RuleConfig], webhooks: list[WebhookConfig]) -> None:
    """Rule and webhook names are unique, and webhooks name only existing rules."""
    for label, names in (("rule", [r.name for r in rules]), ("webhook", [w.name for w in webhooks])):
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate {label} name(s): {', '.join(dupes)}")
    known = {r.name for r in rules}
    for hook in webhooks:
        unknown = sorted(set(hook.rules or ()) - known)
        if unknown:
            raise ValueError(f"webhook '{hook.name}' names unknown rule(s): {', '.join(unknown)}")
