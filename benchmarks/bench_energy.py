"""Benchmark the NetZero buildings engine: one seed over a year, against a per-building loop.

The peer is the same 5R1C model written the straightforward way, one building at a time with a
Python loop over the hours (scalar arithmetic), run on a sample of the same buildings side by side in
the same process; its time is scaled to all heated buildings.

    .venv/bin/python benchmarks/bench_energy.py TWIN_DIR [--seeds 3] [--loop-sample 20]

TWIN_DIR needs `[energy]` in its twin.toml (docs/methods-energy.md).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from civictwin.engines.base import TwinContext
from civictwin.engines.energy.engine import EnergyEngine
from civictwin.engines.energy.model import CHUNK_BUILDINGS, _Thermal, simulate_city
from civictwin.engines.energy.params import sample
from civictwin.scenarios.spec import Scenario


def loop_one_building(
    h_ve: float, h_w: float, h_op: float, c_m: float, a_m: float, area: float,
    theta_e: np.ndarray, phi_int: np.ndarray, phi_sol: np.ndarray, heat_set: np.ndarray, cool_set: float,
) -> float:  # fmt: skip
    """ISO 13790 C.4 for one building, hour by hour with scalars; returns the heating need (Wh)."""
    a_t = 4.5 * area
    h_is, h_ms = 3.45 * a_t, 9.1 * a_m
    h_em = 1 / (1 / h_op - 1 / h_ms)
    h_1 = 1 / (1 / h_ve + 1 / h_is)
    h_2 = h_1 + h_w
    h_3 = 1 / (1 / h_2 + 1 / h_ms)
    theta_m = 20.0
    total = 0.0
    for t in range(len(theta_e)):
        te = float(theta_e[t])
        surfaces = 0.5 * float(phi_int[t]) + float(phi_sol[t])
        phi_ia = 0.5 * float(phi_int[t])
        phi_m = a_m / a_t * surfaces
        phi_st = (1 - a_m / a_t - h_w / (9.1 * a_t)) * surfaces

        def air(
            load: float, theta_m: float = theta_m, te: float = te, phi_ia: float = phi_ia,
            phi_m: float = phi_m, phi_st: float = phi_st,
        ) -> tuple[float, float]:  # fmt: skip
            supply = te + (phi_ia + load) / h_ve
            phi_mtot = phi_m + h_em * te + h_3 * (phi_st + h_w * te + h_1 * supply) / h_2
            cap = c_m / 3600
            nxt = (theta_m * (cap - 0.5 * (h_3 + h_em)) + phi_mtot) / (cap + 0.5 * (h_3 + h_em))
            mean = 0.5 * (nxt + theta_m)
            star = (h_ms * mean + phi_st + h_w * te + h_1 * supply) / (h_ms + h_w + h_1)
            return (h_is * star + h_ve * te + phi_ia + load) / (h_is + h_ve), nxt

        free, nxt = air(0.0)
        load = 0.0
        if free < heat_set[t] or free > cool_set:
            ten, _ = air(10 * area)
            target = heat_set[t] if free < heat_set[t] else cool_set
            load = 10 * area * (target - free) / (ten - free)
            _, nxt = air(load)
        total += max(load, 0.0)
        theta_m = nxt
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("twin", type=Path)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--loop-sample", type=int, default=20)
    args = parser.parse_args()
    engine = EnergyEngine()
    twin = TwinContext.load(args.twin)
    start = time.perf_counter()
    inputs = engine.prepare(twin, Scenario.baseline_scenario(), workdir=Path("."))
    prepare_s = time.perf_counter() - start
    runs = []
    for seed in range(1, args.seeds + 1):
        start = time.perf_counter()
        result = simulate_city(inputs, seed=seed)
        runs.append(time.perf_counter() - start)
    heated = np.flatnonzero(inputs.buildings["use_condition"].notna().to_numpy())
    thermal = _Thermal(inputs, sample(1), heated)
    net, weather = thermal.network, inputs.weather
    rng = np.random.default_rng(0)
    picks = rng.choice(len(heated), size=min(args.loop_sample, len(heated)), replace=False)
    hours = np.arange(len(weather.temp_air))
    solar_all = np.maximum(inputs.irradiance.T @ thermal.solar.T - thermal.sky_loss_w, 0.0)
    first = simulate_city(inputs, seed=1).buildings["heating_need_kwh"].to_numpy()[heated]
    start = time.perf_counter()
    looped = []
    for i in picks:
        looped.append(loop_one_building(
            float(net.h_ve[i]), float(net.h_tr_w[i]), float(net.h_tr_op[i]), float(net.c_m[i]), float(net.a_m[i]),
            float(net.floor_area_m2[i]), weather.temp_air, thermal.internal_by_hour[weather.hour_of_day[hours], i],
            solar_all[:, i], thermal.heating_by_hour[weather.hour_of_day[hours], i], 26.0,
        ) / 1000)  # fmt: skip
    loop_per_building = (time.perf_counter() - start) / len(picks)
    median = float(np.median(runs))
    print(f"buildings {len(inputs.buildings)} (heated {len(heated)}), chunk {CHUNK_BUILDINGS}")
    print(f"prepare (read twin, geometry, weather, typology): {prepare_s:.2f} s")
    print(
        f"one seed, vectorised engine: median {median:.2f} s of {args.seeds} ({', '.join(f'{r:.2f}' for r in runs)})"
    )
    print(f"per-building loop: {loop_per_building * 1000:.0f} ms per building on {len(picks)} buildings, "
          f"{loop_per_building * len(heated):.1f} s scaled to all heated buildings")  # fmt: skip
    deviation = np.max(np.abs(np.array(looped) - first[picks]) / np.maximum(first[picks], 1.0))
    print(
        f"loop vs engine, heating need of the sampled buildings: largest relative difference {deviation:.2e}"
    )
    print(f"speed-up: {loop_per_building * len(heated) / median:.1f}x")
    print(f"heating need seed {args.seeds}: {result.buildings['heating_need_kwh'].sum() / 1e3:.0f} MWh")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')} load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
