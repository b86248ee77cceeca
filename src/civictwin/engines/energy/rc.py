"""The ISO 13790 (Annex C) simple hourly method: a 5R1C resistance–capacitance network per building,
stepped hour by hour for all buildings at once.

Nodes: indoor air (θ_air), a central "star" node mixing air and surface temperatures (θ_s) and the
thermal mass (θ_m, capacity C_m). Conductances: ventilation H_ve (air–outdoor), H_tr,is (air–star),
windows H_tr,w (star–outdoor), H_tr,ms (star–mass) and H_tr,em (mass–outdoor), with
1/H_tr,op = 1/H_tr,ms + 1/H_tr,em. The mass is integrated with the standard's Crank–Nicolson step
(C.4). Heating or cooling power Φ_HC enters the air node; every temperature of a step is linear in
Φ_HC, so the power that holds the air at its set-point is found in closed form for all buildings at
once (the standard's procedure C.4.2 with unlimited power). The same equations are used by the City
Energy Analyst (``cea/demand/rc_model_crank_nicholson_procedure.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

H_MS = (
    9.1  # W/(m²·K), heat transfer between mass and star node per m² of effective mass area (ISO 13790 12.2.2)
)
H_IS = (
    3.45  # W/(m²·K), heat transfer between air and star node per m² of internal surface (ISO 13790 7.2.2.2)
)
LAMBDA_AT = 4.5  # internal surface area per m² of floor area (ISO 13790 7.2.2.2)
# ISO 13790 Table 12: internal heat capacity classes (J/(m²·K) of floor area) and effective mass area factors.
CAPACITY_CLASSES_J_M2K = np.array([80_000.0, 110_000.0, 165_000.0, 260_000.0, 370_000.0])
MASS_AREA_FACTORS = np.array([2.5, 2.5, 2.5, 3.0, 3.5])
AIR_HEAT_CAPACITY_J_M3K = 1200.0  # ρ_a·c_a, ISO 13790 eq. (21)


def mass_area_factor(capacity_j_m2k: np.ndarray) -> np.ndarray:
    """A_m / A_f from the heat capacity per floor area, interpolated between ISO 13790 Table 12 classes."""
    factor: np.ndarray = np.interp(capacity_j_m2k, CAPACITY_CLASSES_J_M2K, MASS_AREA_FACTORS)
    return factor


@dataclass(frozen=True)
class Network:
    """The 5R1C network of n buildings (arrays of length n; conductances W/K, capacity J/K)."""

    floor_area_m2: np.ndarray
    h_ve: np.ndarray  # ventilation and infiltration
    h_tr_w: np.ndarray  # windows (no thermal mass)
    h_tr_op: np.ndarray  # opaque elements (walls, roof, floor)
    c_m: np.ndarray  # J/K
    a_m: np.ndarray  # m², effective mass area

    @property
    def a_t(self) -> np.ndarray:
        """Area of all surfaces facing the zone (m²)."""
        area: np.ndarray = LAMBDA_AT * self.floor_area_m2
        return area

    @property
    def h_tr_is(self) -> np.ndarray:
        """Air–star coupling (W/K)."""
        value: np.ndarray = H_IS * self.a_t
        return value

    @property
    def h_tr_ms(self) -> np.ndarray:
        """Star–mass coupling (W/K)."""
        value: np.ndarray = H_MS * self.a_m
        return value

    @property
    def h_tr_em(self) -> np.ndarray:
        """Mass–outdoor coupling (W/K) so that H_tr,ms and H_tr,em in series give H_tr,op."""
        value: np.ndarray = 1.0 / (1.0 / self.h_tr_op - 1.0 / self.h_tr_ms)
        return value


def split_gains(
    network: Network, internal_w: np.ndarray, solar_w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ISO 13790 C.2: internal and solar gains (W) to the air, star and mass nodes (Φ_ia, Φ_st, Φ_m)."""
    to_surfaces = 0.5 * internal_w + solar_w
    mass_share = network.a_m / network.a_t
    star_share = 1.0 - mass_share - network.h_tr_w / (H_MS * network.a_t)
    return 0.5 * internal_w, star_share * to_surfaces, mass_share * to_surfaces


@dataclass(frozen=True)
class Loads:
    """Hourly results of n buildings over T hours (arrays T × n): load (W, heating > 0, cooling < 0)
    and air temperature (°C); and the mass temperature at the end (°C, n)."""

    load_w: np.ndarray
    theta_air: np.ndarray
    theta_m_end: np.ndarray


def simulate(
    network: Network,
    *,
    theta_e: np.ndarray,
    phi_ia: np.ndarray,
    phi_st: np.ndarray,
    phi_m: np.ndarray,
    heating_setpoint: np.ndarray,
    cooling_setpoint: np.ndarray,
    theta_m0: np.ndarray,
) -> Loads:
    """Step the network through T hours; the load keeps the air inside [heating, cooling] set-point.

    ``theta_e`` (T) is the outdoor and supply air temperature, °C; gains (T × n, W) come from
    :func:`split_gains`; set-points are T × n (°C; −inf: no heating, +inf: no cooling).

    Every quantity that does not depend on the state is computed for all hours at once; the hourly
    loop is left with the recursion of the mass temperature, where the free-floating air
    temperature is affine in it (θ_air,0 = a·θ_m,t−1 + b_t) and the load is the step back to the
    nearest set-point, (θ_set − θ_air,0) / (dθ_air/dΦ_HC).
    """
    h_ve, h_w, h_is = network.h_ve, network.h_tr_w, network.h_tr_is
    h_ms, h_em = network.h_tr_ms, network.h_tr_em
    h_1 = 1.0 / (1.0 / h_ve + 1.0 / h_is)
    h_2 = h_1 + h_w
    h_3 = 1.0 / (1.0 / h_2 + 1.0 / h_ms)
    capacity = network.c_m / 3600.0
    half = 0.5 * (h_3 + h_em)
    keep = (capacity - half) / (capacity + half)
    inject = 1.0 / (capacity + half)
    star_den = h_ms + h_w + h_1
    air_den = h_is + h_ve
    theta = theta_e[:, None]
    supply = theta + phi_ia / h_ve  # θ_sup + Φ_ia/H_ve, ISO 13790 (C.5) and (C.10)
    phi_mtot = phi_m + h_em * theta + h_3 * (phi_st + h_w * theta + h_1 * supply) / h_2
    mass_next_free = phi_mtot * inject  # + keep·θ_m,t−1
    star_free = (h_ms * 0.5 * mass_next_free + phi_st + h_w * theta + h_1 * supply) / star_den
    air_free_b = (h_is * star_free + h_ve * theta + phi_ia) / air_den  # + air_a·θ_m,t−1
    air_a = h_is * h_ms * 0.5 * (keep + 1.0) / (star_den * air_den)
    # responses to Φ_HC (linear): of θ_m,t and of θ_air
    d_mass_next = inject * h_3 * h_1 / (h_2 * h_ve)
    d_star = (h_ms * 0.5 * d_mass_next + h_1 / h_ve) / star_den
    per_watt = 1.0 / ((h_is * d_star + 1.0) / air_den)
    load = np.empty_like(air_free_b)
    air = np.empty_like(air_free_b)
    mass = np.array(theta_m0, dtype=float)
    free = np.empty_like(mass)
    for t in range(len(theta_e)):  # in-place ufuncs: this loop is the engine's hot path
        np.multiply(air_a, mass, out=free)
        free += air_free_b[t]
        target, step = air[t], load[t]
        np.maximum(free, heating_setpoint[t], out=target)
        np.minimum(target, cooling_setpoint[t], out=target)
        np.subtract(target, free, out=step)
        step *= per_watt
        mass *= keep
        mass += mass_next_free[t]
        mass += d_mass_next * step
    return Loads(load_w=load, theta_air=air, theta_m_end=mass)
