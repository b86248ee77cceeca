"""Fixtures for the live tests: a real Mosquitto (password file and ACL) on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mqtt_harness import CONSUMER, OUTSIDER, SENSOR

from civictwin.live.broker import Mosquitto, mosquitto_available


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One broker per test module, stopped at its end."""
    if not mosquitto_available():
        pytest.skip("Eclipse Mosquitto is not installed (apt-get install mosquitto)")
    mosquitto = Mosquitto(tmp_path_factory.mktemp("mosquitto"), accounts=[CONSUMER, SENSOR, OUTSIDER])
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()
