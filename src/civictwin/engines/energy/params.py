"""Fixed parameters of the energy engine and the uncertain ones each seed samples.

Every value's source is in docs/methods-energy.md. Uncertain parameters are drawn once per seed for
the whole city (a systematic error of the archetypes, the users or the PV systems moves every
building the same way, so it does not average out over buildings) with ``numpy.random.default_rng``.
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


# Ranges (uniform, low–high) the seeds draw from; docs/methods-energy.md says why each.
RANGES = {
    "u_value_factor": (0.85, 1.15),
    "setpoint_offset_k": (-1.0, 1.0),
    "gains_factor": (0.7, 1.3),
    "air_change_factor": (0.7, 1.3),
    "cop_factor": (0.9, 1.1),
    "pv_losses_percent": (10.0, 18.0),
    "pv_module_efficiency": (0.18, 0.22),
}


def sample(seed: int) -> Uncertain:
    """The uncertain parameters for ``seed`` (the same seed always gives the same draw)."""
    rng = np.random.default_rng(seed)
    draw = {name: float(rng.uniform(low, high)) for name, (low, high) in RANGES.items()}
    return Uncertain(
        u_value_factor=draw["u_value_factor"],
        setpoint_offset_k=draw["setpoint_offset_k"],
        gains_factor=draw["gains_factor"],
        air_change_factor=draw["air_change_factor"],
        cop_factor=draw["cop_factor"],
        pv=PvSystem(module_efficiency=draw["pv_module_efficiency"], losses_percent=draw["pv_losses_percent"]),
    )


def heat_pump_cop(temp_air: np.ndarray, *, factor: float = 1.0) -> np.ndarray:
    """Hourly COP of an air-source heat pump: Staffell et al. (2012) regression on the lift ΔT (K),
    ``6.81 − 0.121 ΔT + 0.000630 ΔT²``, with ΔT kept in its fitted range of 15–60 K."""
    lift = np.clip(HEAT_PUMP_SINK_C - temp_air, 15.0, 60.0)
    cop: np.ndarray = (6.81 - 0.121 * lift + 0.000630 * lift**2) * factor
    return cop
