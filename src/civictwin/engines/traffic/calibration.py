"""Calibrating a twin's traffic demand to its counts (see docs/methods-calibration.md)."""

from __future__ import annotations

import math
from pathlib import Path

from civictwin.config import load_config
from civictwin.engines.traffic.inputs import load_twin
from civictwin.engines.traffic.params import TrafficParams, load_params
from civictwin.engines.traffic.sites import CountSites, load_count_sites


def twin_count_sites(twin_dir: Path, params: TrafficParams | None = None) -> CountSites:
    """The count sites of the twin in ``twin_dir``, checked against its network and its
    ``[calibration]`` settings (``traffic.toml``), over the simulated demand window."""
    params = params or load_params(twin_dir)
    config = load_config(twin_dir)
    inputs = load_twin(twin_dir)
    return load_count_sites(
        config.store_path, inputs.edges, params.calibration, window_hours=window_hours(params)
    )


def window_hours(params: TrafficParams) -> int:
    """Whole clock hours the demand window covers (a count is compared per hour)."""
    return max(1, math.ceil(params.demand_window_s / 3600.0 - 1e-9))
