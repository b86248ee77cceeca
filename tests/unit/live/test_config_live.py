"""The [live], [[rules]] and [[webhooks]] sections: one line naming the key and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from civictwin.config import parse_config
from civictwin.errors import ConfigError

BASE: dict[str, Any] = {
    "twin": {"name": "t"},
    "area": {"bbox": [0, 0, 1, 1]},
    "sources": [
        {"name": "osm", "kind": "osm", "path": "x", "licence": "l", "publisher": "p", "steward": "s"}
    ],
}
LIVE = {"broker": "localhost:1883", "username": "u", "password_env": "P", "topics": ["a/#"]}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"rules": [{"name": "a", "kind": "threshold", "above": 1, "per_hour": 3}]},
         "rules[0] (a): option(s) per_hour do not apply to kind 'threshold'"),
        ({"rules": [{"name": "a", "kind": "threshold"}]}, "rules[0] (a): kind 'threshold' needs exactly one of above or below"),
        ({"rules": [{"name": "a", "kind": "exceedances", "window": "hour", "above": 200}]},
         "rules[0] (a): kind 'exceedances' needs allowed"),
        ({"rules": [{"name": "a", "kind": "exceedances", "window": "day", "above": 1, "allowed": 2, "period": "day"}]},
         "rules[0] (a): an exceedance count of daily means needs a period longer than a day"),
        ({"rules": [{"name": "a", "kind": "silence", "minutes": 5, "datastreams": ["1"], "observed_property": "NO2"}]},
         "rules[0] (a): give datastreams or observed_property, not both"),
        ({"rules": [{"name": "a", "kind": "silence", "minutes": 5}, {"name": "a", "kind": "silence", "minutes": 1}]},
         "duplicate rule name(s): a"),
        ({"rules": [{"name": "a", "kind": "period_mean", "period": "year", "above": 40, "timezone": "Mars/Olympus"}]},
         "rules[0] (a).timezone: unknown time zone 'Mars/Olympus'"),
        ({"rules": [{"name": "a", "kind": "scenario_target", "kpis": ["share_car"], "above": 0.3, "observed_property": "x"}]},
         "rules[0] (a): option(s) observed_property do not apply to kind 'scenario_target'"),
        ({"webhooks": [{"name": "h", "url": "ftp://x", "secret_env": "X"}]},
         "webhooks[0] (h).url: expected an http(s) URL, got 'ftp://x'"),
        ({"webhooks": [{"name": "h", "url": "http://x", "secret_env": "X", "rules": ["nope"]}]},
         "webhook 'h' names unknown rule(s): nope"),
        ({"webhooks": [{"name": "h", "url": "http://x"}]}, "webhooks[0] (h): give exactly one of secret_env or secret_file"),
        ({"live": {**LIVE, "broker": "localhost"}}, "live.broker: expected host:port, got 'localhost'"),
        ({"live": {**LIVE, "topics": ["a/#/b"]}}, "live.topics: 'a/#/b' is not a valid MQTT topic filter"),
        ({"live": {**LIVE, "password_file": "p.txt"}}, "live: give exactly one of password_env or password_file"),
        ({"live": {**LIVE, "batch_size": 0}}, "live.batch_size: Input should be greater than or equal to 1"),
    ],
)  # fmt: skip
def test_bad_live_configuration_is_one_line(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({**BASE, **extra}, base_dir=Path("."))
    assert caught.value.user_message() == f"twin.toml: {message}"


def test_secrets_are_read_when_needed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("broker-secret\nignored\n")
    config = parse_config(
        {**BASE, "live": {**LIVE, "password_env": None, "password_file": "pw"},
         "webhooks": [{"name": "h", "url": "https://x.test/", "secret_env": "HOOK_SECRET"}]},
        base_dir=tmp_path,
    )  # fmt: skip
    assert config.live is not None and config.live.password(tmp_path) == "broker-secret"
    assert (config.live.host, config.live.port) == ("localhost", 1883)
    with pytest.raises(ValueError, match="environment variable HOOK_SECRET is not set"):
        config.webhooks[0].secret(tmp_path)
    monkeypatch.setenv("HOOK_SECRET", "s")
    assert config.webhooks[0].secret(tmp_path) == "s"
