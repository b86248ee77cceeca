"""The city's buildings as energy model inputs, and one seed's hourly simulation of a typical year.

:func:`building_inputs` turns the twin's LoD1 buildings into plain per-building data (archetype,
construction year and its source, heating system, envelope geometry, roof planes for PV);
:func:`simulate_city` samples the seed's uncertain parameters, builds each heated building's 5R1C
network, steps all of them through the 8,760 hours together and accumulates, per building, the
heating, cooling and hot-water need, final energy by carrier, CO2, the peak heating load, PV
generation and its self-consumption against the building's own hourly electricity use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from civictwin.engines.energy import params
from civictwin.engines.energy.archetypes import SIZE_CLASSES, UseProfile, use_condition_name
from civictwin.engines.energy.geometry import EnvelopeGeometry
from civictwin.engines.energy.pv import RoofPlanes, yield_per_kwp
from civictwin.engines.energy.rc import (
    AIR_HEAT_CAPACITY_J_M3K,
    H_MS,
    Loads,
    Network,
    mass_area_factor,
    simulate,
    split_gains,
)
from civictwin.engines.energy.weather import Weather

WARM_UP_HOURS = 168
"""The last week of the year is simulated first so the thermal mass starts the year in a settled state."""

_SFH = ("house", "detached", "bungalow", "cabin", "farm")
_TH = ("terrace", "semidetached_house")
_PREFERENCE = {
    "SFH": ("SFH", "TH", "MFH", "AB"), "TH": ("TH", "SFH", "MFH", "AB"),
    "MFH": ("MFH", "AB", "TH", "SFH"), "AB": ("AB", "MFH", "TH", "SFH"),
}  # fmt: skip
_YEAR = re.compile(r"(?<!\d)(\d{4})(s?)(?!\d)")


def construction_year(value: object) -> float:
    """A construction year from an OSM ``start_date`` ("1908", "1890s", "after 1905..1908", "2012?"):
    the mean of the years it names (a decade counts as its middle), NaN when it names none."""
    if not isinstance(value, str):
        return float("nan")
    years = [int(y) + (5 if decade else 0) for y, decade in _YEAR.findall(value)]
    years = [y for y in years if 1000 <= y <= 2100]
    return float(np.mean(years)) if years else float("nan")


def size_class(building: pd.Series, levels: pd.Series, available: set[str]) -> np.ndarray:
    """TABULA size class per building: SFH for houses, TH for terraces, AB from 5 storeys, else MFH;
    the nearest class the typology has where it lacks that one."""
    wanted = np.where(
        building.isin(_SFH), "SFH", np.where(building.isin(_TH), "TH", np.where(levels >= 5, "AB", "MFH"))
    )
    chosen = {w: next(c for c in _PREFERENCE[w] if c in available) for w in SIZE_CLASSES}
    return np.array([chosen[w] for w in wanted], dtype=object)


def archetype_rows(
    typology: pd.DataFrame, classes: np.ndarray, years: np.ndarray, variants: np.ndarray
) -> np.ndarray:
    """Row positions in ``typology`` of each building's class, construction period and variant.

    Years before the first period take the first, after the last the last.
    """
    rows = np.full(len(classes), -1, dtype=int)
    for (cls, variant), group in typology.groupby(["size_class", "variant"], sort=False):
        group = group.sort_values("year_from")
        mine = (classes == cls) & (variants == variant)
        if not mine.any():
            continue
        slot = np.searchsorted(group["year_from"].to_numpy(), years[mine], side="right") - 1
        rows[mine] = group.index.to_numpy()[np.clip(slot, 0, len(group) - 1)]
    if (rows < 0).any():
        missing = sorted(
            {f"{c} variant {v}" for c, v in zip(classes[rows < 0], variants[rows < 0], strict=True)}
        )
        raise ValueError(f"typology lacks {', '.join(missing)}")
    return rows


@dataclass(frozen=True)
class EnergyInputs:
    """Everything one seed needs, as plain picklable data."""

    buildings: pd.DataFrame  # one row per building, see building_inputs
    facade_m2: np.ndarray  # n × 4 exposed wall area facing N, E, S, W
    roof_planes: RoofPlanes  # module area at full uptake
    typology: pd.DataFrame
    use_profiles: dict[str, UseProfile]
    weather: Weather
    irradiance: np.ndarray  # 5 × 8760: walls N, E, S, W and horizontal, W/m²
    emission_factors: dict[str, float]  # kg CO2 per kWh of final energy
    notes: tuple[str, ...] = ()
    sample_assumed_ranges: bool = True  # draw the assumed (unpublished) ranges too, see params.sample


def building_inputs(
    frame: pd.DataFrame,
    geometry: EnvelopeGeometry,
    *,
    typology: pd.DataFrame,
    fallback_year: int,
    system: str,
) -> pd.DataFrame:
    """Per-building model data from ``buildings_3d`` rows (with ``zone_id``) and their envelope geometry.

    Columns: the key (``osm_type``, ``osm_id``), ``zone_id``, ``use``, ``use_condition`` (None:
    unheated), ``size_class``, ``construction_year`` (from the tag, NaN when unknown), ``year`` (the
    one the archetype uses) and ``year_source`` (``tag`` or ``fallback``), ``variant`` (1 as
    built), ``system``, ``pv_share`` (0: no PV yet), ``floor_area_m2`` and the geometry areas.
    """
    tagged = (
        frame["start_date"].map(construction_year)
        if "start_date" in frame
        else pd.Series(np.nan, index=frame.index)
    )
    out = pd.DataFrame({
        "osm_type": frame["osm_type"].to_numpy(),
        "osm_id": frame["osm_id"].to_numpy(),
        "zone_id": frame["zone_id"].to_numpy(),
        "use": frame["use"].to_numpy(),
        "use_condition": [use_condition_name(b, u) for b, u in zip(frame["building"], frame["use"], strict=True)],
        "size_class": size_class(frame["building"], frame["levels"], set(typology["size_class"])),
        "construction_year": tagged.round().to_numpy(),
        "year": tagged.fillna(fallback_year).round().astype(int).to_numpy(),
        "year_source": np.where(tagged.notna(), "tag", "fallback"),
        "variant": 1,
        "system": system,
        "pv_share": 0.0,
        "floor_area_m2": frame["floor_area_m2"].to_numpy(dtype=float),
        "shared_wall_m2": geometry.shared_wall_m2,
        "roof_m2": geometry.roof_m2,
        "ground_m2": geometry.ground_m2,
    })  # fmt: skip
    return out


@dataclass(frozen=True)
class CityResult:
    """One seed's results: per-building annual figures and the city's hourly totals (8,760 rows)."""

    buildings: pd.DataFrame
    hourly: pd.DataFrame  # heating_w, electricity_w, pv_w summed over buildings


class _Thermal:
    """The 5R1C networks, gains and set-points of the heated buildings for one seed."""

    def __init__(self, inputs: EnergyInputs, draw: params.Uncertain, heated: np.ndarray) -> None:
        b = inputs.buildings.iloc[heated]
        arch = inputs.typology.loc[b["archetype_row"].to_numpy()]
        facade = inputs.facade_m2[heated]
        wwr = arch["window_wall_ratio"].to_numpy()[:, None]
        windows, walls = facade * wwr, facade * (1 - wwr)
        u = {k: arch[f"u_{k}"].to_numpy() * draw.u_value_factor for k in ("wall", "roof", "floor", "window")}
        roof = b["roof_m2"].to_numpy()
        ground = b["ground_m2"].to_numpy()
        envelope = facade.sum(axis=1) + roof + ground
        bridging = arch["delta_u_bridging"].to_numpy() * draw.u_value_factor * envelope
        h_op = (u["wall"] * walls.sum(axis=1) + u["roof"] * arch["b_roof"].to_numpy() * roof
                + u["floor"] * arch["b_floor"].to_numpy() * ground + bridging)  # fmt: skip
        area = b["floor_area_m2"].to_numpy()
        capacity = arch["c_m_wh_m2k"].to_numpy() * 3600.0
        a_m = mass_area_factor(capacity) * area
        air_changes = (arch["n_infiltration"].to_numpy() + arch["n_use"].to_numpy()) * draw.air_change_factor
        h_ve = AIR_HEAT_CAPACITY_J_M3K / 3600.0 * air_changes * area * params.ROOM_HEIGHT_M
        # keep the opaque conductance below the star–mass coupling so H_tr,em stays positive
        h_op = np.minimum(h_op, 0.95 * H_MS * a_m)
        self.network = Network(floor_area_m2=area, h_ve=h_ve, h_tr_w=u["window"] * windows.sum(axis=1),
                               h_tr_op=h_op, c_m=capacity * area, a_m=a_m)  # fmt: skip
        window_gain = (arch["g_window"] * (1 - arch["frame_fraction"]) * arch["shading_factor"]
                       * arch["angle_factor"]).to_numpy()[:, None] * windows  # fmt: skip
        opaque = params.SOLAR_ABSORPTANCE * params.EXTERNAL_SURFACE_RESISTANCE
        self.solar = np.column_stack(
            [window_gain + opaque * u["wall"][:, None] * walls, opaque * u["roof"] * roof]
        )
        sky = (
            params.EXTERNAL_SURFACE_RESISTANCE
            * params.SKY_RADIATION_COEFFICIENT
            * params.SKY_TEMPERATURE_DIFFERENCE
        )
        self.sky_loss_w = sky * (
            params.SKY_VIEW_WALL * u["wall"] * walls.sum(axis=1) + params.SKY_VIEW_ROOF * u["roof"] * roof
        )
        names = sorted(inputs.use_profiles)
        use = np.searchsorted(names, b["use_condition"].to_numpy())
        gains = np.vstack([inputs.use_profiles[n].internal_gains for n in names])
        heating = np.vstack([inputs.use_profiles[n].heating_setpoint for n in names])
        self.internal_by_hour = (gains[use] * area[:, None]).T * draw.gains_factor  # 24 × n, W
        self.heating_by_hour = heating[use].T + draw.setpoint_offset_k  # 24 × n, °C
        self.cooling = np.full(len(heated), params.COOLING_SETPOINT_C)
        self.dhw_w = arch["dhw_kwh_m2"].to_numpy() * area * 1000.0 / 8760.0

    def loads(
        self, weather: Weather, irradiance: np.ndarray, chunk: slice, theta_m0: np.ndarray, hours: np.ndarray
    ) -> Loads:
        """The hourly loads of the buildings in ``chunk`` (positions among the heated) over ``hours``."""
        network = Network(**{f: getattr(self.network, f)[chunk] for f in _NETWORK_FIELDS})
        hour_of_day = weather.hour_of_day[hours]
        solar = np.maximum(irradiance[:, hours].T @ self.solar[chunk].T - self.sky_loss_w[chunk], 0.0)
        phi_ia, phi_st, phi_m = split_gains(network, self.internal_by_hour[hour_of_day][:, chunk], solar)
        heating = self.heating_by_hour[hour_of_day][:, chunk]
        cooling = np.full_like(heating, params.COOLING_SETPOINT_C)
        return simulate(
            network, theta_e=weather.temp_air[hours], phi_ia=phi_ia, phi_st=phi_st, phi_m=phi_m,
            heating_setpoint=heating, cooling_setpoint=cooling, theta_m0=theta_m0,
        )  # fmt: skip


_NETWORK_FIELDS = ("floor_area_m2", "h_ve", "h_tr_w", "h_tr_op", "c_m", "a_m")
CHUNK_BUILDINGS = 4096
"""Buildings simulated together (one ufunc call of the hourly recursion covers them all)."""
BLOCK_HOURS = 168
"""Hours whose gains, set-points and loads are held at once: 168 × 4,096 × 8 bytes = 5.5 MB per array,
so the temporaries stay in the allocator's reused heap and near the cache instead of being mapped,
zeroed and unmapped as whole-year arrays were (143 MB each: half the 8×8 twin's CPU time was the
kernel's)."""


def simulate_city(inputs: EnergyInputs, *, seed: int) -> CityResult:
    """One seed: the year hour by hour for every building; see the module docstring.

    Buildings are simulated in chunks of :data:`CHUNK_BUILDINGS` and each chunk's year in blocks of
    :data:`BLOCK_HOURS` (the mass temperature carried from block to block), so memory stays bounded;
    every block's hourly loads are folded at once into annual sums, peaks, electricity and PV
    self-consumption.
    """
    draw = params.sample(seed, assumed=inputs.sample_assumed_ranges)
    weather = inputs.weather
    b = inputs.buildings
    n, hours = len(b), len(weather.temp_air)
    heated = np.flatnonzero(b["use_condition"].notna().to_numpy() & (b["floor_area_m2"].to_numpy() > 0))
    thermal = _Thermal(inputs, draw, heated)
    pv_kwp = _pv_kwp(inputs.roof_planes, b["pv_share"].to_numpy(), n, draw.pv.module_efficiency)
    orientations, _ = inputs.roof_planes.orientations()
    pv_yield = np.zeros((len(orientations), hours))
    for row, (tilt, azimuth) in enumerate(orientations):
        pv_yield[row] = yield_per_kwp(weather, tilt_deg=tilt, azimuth_deg=azimuth, system=draw.pv)
    year = _Year(
        base_elec=_base_electricity(inputs, draw, n),
        cop=params.heat_pump_cop(weather.temp_air, factor=draw.cop_factor),
        pv_yield=pv_yield,
        pv_kwp=pv_kwp,
        system=b["system"].to_numpy(),
    )
    acc = {k: np.zeros(n) for k in ("heat", "cool", "peak", "elec", "pv", "self")}
    hourly = np.zeros((hours, 3))
    warm = np.arange(hours - WARM_UP_HOURS, hours)
    for start in range(0, n, CHUNK_BUILDINGS):
        members = np.arange(start, min(start + CHUNK_BUILDINGS, n))
        local = np.flatnonzero((heated >= members[0]) & (heated <= members[-1]))  # positions among the heated
        chunk = slice(int(local[0]), int(local[-1]) + 1) if len(local) else slice(0, 0)
        mass = thermal.loads(weather, inputs.irradiance, chunk, np.full(len(local), 20.0), warm).theta_m_end
        for first in range(0, hours, BLOCK_HOURS):
            block = np.arange(first, min(first + BLOCK_HOURS, hours))
            loads = thermal.loads(weather, inputs.irradiance, chunk, mass, block)
            mass = loads.theta_m_end
            hourly[block] += year.fold(
                loads.load_w, block=block, members=members, ids=heated[chunk], chunk=chunk,
                thermal=thermal, weather=weather, acc=acc,
            )  # fmt: skip
    frame = _annual(inputs, heated, thermal, acc, pv_kwp)
    return CityResult(
        buildings=frame, hourly=pd.DataFrame(hourly, columns=["heating_w", "electricity_w", "pv_w"])
    )


@dataclass(frozen=True)
class _Year:
    """What a seed's year needs besides the thermal loads: electricity use, heat-pump COP and PV."""

    base_elec: np.ndarray  # 24 × n, W: appliances and lighting
    cop: np.ndarray  # hours: heat pumps' coefficient of performance
    pv_yield: np.ndarray  # orientations × hours, W per W peak
    pv_kwp: np.ndarray  # n × orientations
    system: np.ndarray  # n: heating system names

    def fold(
        self,
        load_w: np.ndarray,
        *,
        block: np.ndarray,
        members: np.ndarray,
        ids: np.ndarray,
        chunk: slice,
        thermal: _Thermal,
        weather: Weather,
        acc: dict[str, np.ndarray],
    ) -> np.ndarray:
        """Add one block's loads (hours × heated members, W) to the per-building annual sums in ``acc``
        (Wh; the peak in W) and return the block's city totals per hour (heating, electricity, PV; W).
        ``members`` are the chunk's buildings, ``ids`` its heated ones (both positions in the twin)."""
        heat = np.maximum(load_w, 0.0)
        acc["heat"][ids] += heat.sum(axis=0)
        acc["cool"][ids] -= np.minimum(load_w, 0.0).sum(axis=0)
        acc["peak"][ids] = np.maximum(acc["peak"][ids], heat.max(axis=0, initial=0.0))
        elec = self.base_elec[weather.hour_of_day[block]][:, members]
        system = self.system[ids]
        electric = np.isin(system, ("heat_pump", "electric"))
        divisor = np.where(system == "heat_pump", self.cop[block, None], 1.0)
        elec[:, ids - members[0]] += np.where(electric, (heat + thermal.dhw_w[chunk]) / divisor, 0.0)
        pv = self.pv_yield[:, block].T @ self.pv_kwp[members].T * 1000.0
        acc["elec"][members] += elec.sum(axis=0)
        acc["pv"][members] += pv.sum(axis=0)
        acc["self"][members] += np.minimum(pv, elec).sum(axis=0)
        return np.column_stack([heat.sum(axis=1), elec.sum(axis=1), pv.sum(axis=1)])


def _pv_kwp(planes: RoofPlanes, share: np.ndarray, n: int, efficiency: float) -> np.ndarray:
    """n × orientations matrix of installed kWp (module area × uptake share × efficiency)."""
    orientations, which = planes.orientations()
    kwp = np.zeros((n, len(orientations)))
    np.add.at(kwp, (planes.building, which), planes.module_m2 * share[planes.building] * efficiency)
    return kwp


def _base_electricity(inputs: EnergyInputs, draw: params.Uncertain, n: int) -> np.ndarray:
    """Appliances and lighting of every building, W, as 24 × n (unheated buildings use none)."""
    b = inputs.buildings
    names = sorted(inputs.use_profiles)
    profiles = np.vstack([inputs.use_profiles[name].electricity for name in names] + [np.zeros(24)])
    condition = b["use_condition"].to_numpy()
    index = np.where(pd.isna(condition), len(names), np.searchsorted(names, condition.astype(str)))
    watts: np.ndarray = (profiles[index] * b["floor_area_m2"].to_numpy()[:, None]).T * draw.gains_factor
    return watts


def _annual(
    inputs: EnergyInputs,
    heated: np.ndarray,
    thermal: _Thermal,
    acc: dict[str, np.ndarray],
    pv_kwp: np.ndarray,
) -> pd.DataFrame:
    """Per-building annual results in kWh (and kW for the peak), with final energy and CO2."""
    b = inputs.buildings
    n = len(b)
    dhw = np.zeros(n)
    dhw[heated] = thermal.dhw_w * 8760.0
    heat_kwh, dhw_kwh = acc["heat"] / 1000.0, dhw / 1000.0
    system = b["system"].to_numpy()
    final = {c: np.zeros(n) for c in ("electricity", "district_heating", "gas", "oil")}
    for name, efficiency in params.SYSTEM_EFFICIENCY.items():
        mine = system == name
        carrier = params.SYSTEM_CARRIER[name]
        if carrier != "electricity":
            final[carrier][mine] += (heat_kwh[mine] + dhw_kwh[mine]) / efficiency
    final["electricity"] += acc["elec"] / 1000.0  # appliances, lighting and electric heating
    grid = np.maximum(final["electricity"] - acc["self"] / 1000.0, 0.0)
    exported = (acc["pv"] - acc["self"]) / 1000.0
    factors = inputs.emission_factors
    co2_kg = grid * factors["electricity"] + sum(
        final[c] * factors[c] for c in ("district_heating", "gas", "oil")
    )
    area = b["floor_area_m2"].to_numpy()
    out = b[
        ["osm_type", "osm_id", "zone_id", "use", "size_class", "year", "year_source", "variant", "system"]
    ].copy()
    out["floor_area_m2"] = area
    out["heated"] = b["use_condition"].notna().to_numpy()
    out["heating_need_kwh"] = heat_kwh
    out["heating_need_kwh_m2"] = np.where(area > 0, heat_kwh / np.maximum(area, 1e-9), 0.0)
    out["cooling_need_kwh"] = acc["cool"] / 1000.0
    out["hot_water_need_kwh"] = dhw_kwh
    out["peak_heating_kw"] = acc["peak"] / 1000.0
    for carrier, values in final.items():
        out[f"final_{carrier}_kwh"] = values
    out["final_energy_kwh"] = sum(final.values())
    out["pv_kwp"] = pv_kwp.sum(axis=1)
    out["pv_kwh"] = acc["pv"] / 1000.0
    out["pv_self_consumed_kwh"] = acc["self"] / 1000.0
    out["pv_exported_kwh"] = exported
    out["grid_electricity_kwh"] = grid
    out["co2_kg"] = co2_kg
    out["co2_after_export_credit_kg"] = np.maximum(co2_kg - exported * factors["electricity"], 0.0)
    return out
