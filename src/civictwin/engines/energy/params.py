"""Fixed parameters of the energy engine and the uncertain ones each seed may sample.

Every value's source is in docs/methods-energy.md. Uncertain parameters are drawn once per seed for
the whole city (a systematic error of the archetypes, the users or the PV systems moves every
building the same way, so it does not average out over buildings) with ``numpy.random.default_rng``.
Only ranges with a published source are sampled by default; ranges that are assumptions are sampled
only when a twin asks for it (``sample_assumed_ranges``), and otherwise held at their central value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from civictwin.engines.energy.pv import PvSystem

# Solar gains and sky radiation of opaque elements, ISO 13790 11.3–11.4 as the City Energy Analyst uses them.
SOLAR_ABSORPTANCE = 0.6  # opaque external surfaces, a mid-coloured façade or roof
EXTERNAL_SURFACE_RESISTANCE = 0.04  # m²·K/W, R_se of ISO 6946
SKY_RADIATION_COEFFICIENT = 4.5  # W/(m²·K), h_r = 5·ε with ε = 0.9
SKY_TEMPERATURE_DIFFERENCE = 11.0  # K, Δθ_er, mean difference between air and sky temperature
SKY_VIEW_WALL = 0.5  # F_r of vertical walls
SKY_VIEW_ROOF = 1.0  # F_r of a flat roof

ROOM_HEIGHT_M = 2.5  # TABULA's standard room height for the ventilated volume (column h_room)
PV_SETBACK_M = 1.0  # strip kept free along every edge of a flat roof

# Generation efficiencies (final energy per useful heat) of the systems that are not heat pumps.
SYSTEM_EFFICIENCY = {"district_heating": 1.0, "gas_boiler": 0.9, "oil_boiler": 0.85, "electric": 1.0}
SYSTEM_CARRIER = {
    "district_heating": "district_heating", "gas_boiler": "gas", "oil_boiler": "oil",
    "electric": "electricity", "heat_pump": "electricity",
}  # fmt: skip
HEAT_PUMP_SINK_C = (
    55.0  # °C, radiator and hot-water supply of an existing building (PyPSA-Eur's default sink)
)
COOLING_SETPOINT_C = 26.0  # °C, upper limit of category II (EN 16798-1) used for the cooling need

# Helsinki's energy company Helen, specific CO2 emissions of energy sold in 2021 (kg/kWh); gas and oil
# from the IPCC 2006 default combustion factors (56.1 and 74.1 t CO2/TJ).
DEFAULT_EMISSION_FACTORS = {"electricity": 0.074, "district_heating": 0.182, "gas": 0.202, "oil": 0.267}
DEFAULT_EMISSION_SOURCE = (
    "Helen Ltd, specific emissions of energy sold in 2021 (electricity 74, heat 182 g/kWh); "
    "IPCC 2006 Guidelines vol. 2 table 2.2 (natural gas 56.1, gas oil 74.1 t CO2/TJ)"
)


@dataclass(frozen=True)
class Uncertain:
    """One seed's draw of the uncertain parameters (multipliers are 1 and offsets 0 at the centre)."""

    u_value_factor: float = 1.0  # all U-values, thermal bridges included
    setpoint_offset_k: float = 0.0  # heating set-points
    gains_factor: float = 1.0  # people, appliances and lighting (gains and electricity)
    air_change_factor: float = 1.0  # infiltration and ventilation
    cop_factor: float = 1.0  # heat pump COP around the Staffell et al. regression
    pv: PvSystem = field(default_factory=PvSystem)


@dataclass(frozen=True)
class Range:
    """The uniform range one uncertain parameter is drawn from, its central value and its source.

    ``published`` says whether the range itself (not only the central value) comes from a published
    source; ranges that are the engine's assumptions are sampled only on request.
    """

    low: float
    high: float
    central: float
    published: bool
    source: str


NAN = float("nan")
# docs/methods-energy.md ("Uncertainty") says why each, and what the search for published ranges found:
# spreads between single dwellings or systems and single studies' means, no interval for the city-wide
# value drawn here. So none is published, and by default every seed uses the central values.
RANGES: dict[str, Range] = {
    "u_value_factor": Range(0.85, 1.15, 1.0, False, "assumption: archetype U-values stand for a whole period (in-situ studies found, no interval for a stock's mean)"),
    "setpoint_offset_k": Range(-1.0, 1.0, 0.0, False, "assumption: measured spreads are between dwellings (9 K in Swedish homes, Teli et al.), not of a city's mean"),
    "gains_factor": Range(0.7, 1.3, 1.0, False, "assumption: occupancy and equipment vary between users"),
    "air_change_factor": Range(0.7, 1.3, 1.0, False, "assumption: tracer-gas studies give single means (0.47 /h in old Swedish flats), no interval"),
    "cop_factor": Range(0.9, 1.1, 1.0, False, "assumption: field COPs scatter around Staffell et al. (2012); field trials give fleet means only"),
    "pv_losses_percent": Range(10.0, 18.0, NAN, False, "central (NaN): pvlib's PVWatts v5 default losses, 14.08% (Dobos 2014); range assumed (fleet PRs 0.73-0.81 also hold climate-dependent temperature losses)"),
    "pv_module_efficiency": Range(0.18, 0.22, 0.20, False, "assumption: current crystalline modules"),
}  # fmt: skip


def sample(seed: int, *, assumed: bool = False) -> Uncertain:
    """The uncertain parameters for ``seed`` (the same seed always gives the same draw).

    Every range is drawn in a fixed order so a seed's draw does not depend on which are used; a range
    that is not published takes its central value unless ``assumed`` is true.
    """
    rng = np.random.default_rng(seed)
    drawn = {name: float(rng.uniform(r.low, r.high)) for name, r in RANGES.items()}
    value = {name: drawn[name] if (r.published or assumed) else r.central for name, r in RANGES.items()}
    return Uncertain(
        u_value_factor=value["u_value_factor"],
        setpoint_offset_k=value["setpoint_offset_k"],
        gains_factor=value["gains_factor"],
        air_change_factor=value["air_change_factor"],
        cop_factor=value["cop_factor"],
        pv=PvSystem(
            module_efficiency=value["pv_module_efficiency"], losses_percent=value["pv_losses_percent"]
        ),
    )


def sampled(*, assumed: bool) -> list[str]:
    """The names of the parameters a seed draws (the others stay at their central values)."""
    return [name for name, r in RANGES.items() if r.published or assumed]


def heat_pump_cop(temp_air: np.ndarray, *, factor: float = 1.0) -> np.ndarray:
    """Hourly COP of an air-source heat pump: Staffell et al. (2012) regression on the lift ΔT (K),
    ``6.81 − 0.121 ΔT + 0.000630 ΔT²``, with ΔT kept in its fitted range of 15–60 K."""
    lift = np.clip(HEAT_PUMP_SINK_C - temp_air, 15.0, 60.0)
    cop: np.ndarray = (6.81 - 0.121 * lift + 0.000630 * lift**2) * factor
    return cop
