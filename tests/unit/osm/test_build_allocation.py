"""A build's process settings (``civictwin.allocation``): set for the build, as they were after.

Checked in this process through the kernel's own answer (``prctl(PR_GET_THP_DISABLE)``) and Python's
collector thresholds, during a real build of a hand-made extract and around overlapping blocks.
"""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from typing import Any

import pytest
from osm_fixtures import write_street_twin

import civictwin.build as build_module
from civictwin.allocation import FIRST_GENERATION_THRESHOLD, huge_pages_disabled, tuned_for_build
from civictwin.build import build_twin
from civictwin.config import load_config

linux = pytest.mark.skipif(huge_pages_disabled() is None, reason="transparent huge pages are a Linux setting")


@linux
def test_a_build_runs_without_huge_pages_and_a_lazier_collector_then_both_are_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = gc.get_threshold(), huge_pages_disabled()
    seen: dict[str, Any] = {}
    buildings = build_module._buildings

    def recorded_buildings(*args: Any) -> None:
        seen["threshold"], seen["disabled"] = gc.get_threshold(), huge_pages_disabled()
        buildings(*args)

    monkeypatch.setattr(build_module, "_buildings", recorded_buildings)
    summary = build_twin(load_config(write_street_twin(tmp_path)))
    assert summary.tables["buildings_3d"] == 1
    assert seen == {"threshold": (100_000, *before[0][1:]), "disabled": True}
    assert (gc.get_threshold(), huge_pages_disabled()) == before


@linux
def test_overlapping_builds_share_the_settings_until_the_last_ends() -> None:
    default, pages = gc.get_threshold(), huge_pages_disabled()  # as the process was started
    first_in, second_out, first_out = threading.Event(), threading.Event(), threading.Event()
    during: list[tuple[tuple[int, ...], bool | None]] = []

    def first() -> None:
        with tuned_for_build():
            first_in.set()
            second_out.wait(10)
            during.append((gc.get_threshold(), huge_pages_disabled()))  # the second has ended
        first_out.set()

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(10)
    with tuned_for_build():
        during.append((gc.get_threshold(), huge_pages_disabled()))
    second_out.set()
    thread.join(10)
    assert during == [((FIRST_GENERATION_THRESHOLD, *default[1:]), True)] * 2
    assert (gc.get_threshold(), huge_pages_disabled()) == (default, pages)


def test_a_higher_threshold_already_set_is_kept() -> None:
    default = gc.get_threshold()
    gc.set_threshold(250_000, *default[1:])
    try:
        with tuned_for_build():
            assert gc.get_threshold()[0] == 250_000
        assert gc.get_threshold()[0] == 250_000
    finally:
        gc.set_threshold(*default)
