"""One seed's results as KPIs and tables: per building, per zone and in total.

KPI names start with ``buildings_`` so they stay unique beside other engines' (traffic's ``co2_kg``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from civictwin.engines.base import Kpi
from civictwin.engines.energy.model import CityResult

HEADLINE = frozenset(
    {"buildings_heating_need_kwh_m2", "buildings_co2_t", "buildings_pv_mwh", "buildings_netzero_gap_t"}
)
"""The KPIs a comparison's summary speaks about."""

BUILDING_VALUES: tuple[tuple[str, str], ...] = (
    ("heating_need_kwh", "kWh"), ("heating_need_kwh_m2", "kWh/m²"), ("cooling_need_kwh", "kWh"),
    ("hot_water_need_kwh", "kWh"), ("peak_heating_kw", "kW"), ("final_energy_kwh", "kWh"),
    ("final_electricity_kwh", "kWh"), ("final_district_heating_kwh", "kWh"), ("final_gas_kwh", "kWh"),
    ("final_oil_kwh", "kWh"), ("pv_kwp", "kWp"), ("pv_kwh", "kWh"), ("pv_self_consumed_kwh", "kWh"),
    ("grid_electricity_kwh", "kWh"), ("co2_kg", "kg"), ("co2_after_export_credit_kg", "kg"),
)  # fmt: skip
ZONE_VALUES: tuple[tuple[str, str], ...] = (
    ("floor_area_m2", "m²"), ("heating_need_mwh", "MWh"), ("heating_need_kwh_m2", "kWh/m²"),
    ("final_energy_mwh", "MWh"), ("co2_t", "t"), ("peak_heating_mw", "MW"), ("pv_mwh", "MWh"),
    ("self_sufficiency_pct", "%"),
)  # fmt: skip


def building_table(result: CityResult) -> pd.DataFrame:
    """Per building: the key, descriptive columns and :data:`BUILDING_VALUES`."""
    keep = ["osm_type", "osm_id", "zone_id", "use", "size_class", "year", "year_source", "variant", "system"]
    return result.buildings[keep + [c for c, _ in BUILDING_VALUES]].reset_index(drop=True)


def zone_table(result: CityResult) -> pd.DataFrame:
    """Per zone: sums, the heating need per heated m², peak (sum of building peaks) and self-sufficiency."""
    b = result.buildings.assign(heated_area=lambda f: f["floor_area_m2"].where(f["heated"], 0.0))
    sums = b.groupby("zone_id").agg(
        floor_area_m2=("heated_area", "sum"), heating=("heating_need_kwh", "sum"),
        final=("final_energy_kwh", "sum"), co2=("co2_kg", "sum"), peak=("peak_heating_kw", "sum"),
        pv=("pv_kwh", "sum"), self_used=("pv_self_consumed_kwh", "sum"), elec=("final_electricity_kwh", "sum"),
    )  # fmt: skip
    out = pd.DataFrame({
        "zone_id": sums.index.astype(str),
        "floor_area_m2": sums["floor_area_m2"].to_numpy(),
        "heating_need_mwh": sums["heating"].to_numpy() / 1000,
        "heating_need_kwh_m2": _ratio(sums["heating"], sums["floor_area_m2"]),
        "final_energy_mwh": sums["final"].to_numpy() / 1000,
        "co2_t": sums["co2"].to_numpy() / 1000,
        "peak_heating_mw": sums["peak"].to_numpy() / 1000,
        "pv_mwh": sums["pv"].to_numpy() / 1000,
        "self_sufficiency_pct": 100 * _ratio(sums["self_used"], sums["elec"]),
    })  # fmt: skip
    return out.reset_index(drop=True)


def _ratio(numerator: pd.Series, denominator: pd.Series) -> np.ndarray:
    num, den = numerator.to_numpy(dtype=float), denominator.to_numpy(dtype=float)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def city_kpis(result: CityResult) -> tuple[Kpi, ...]:
    """The city totals: need, final energy by carrier, CO2, coincident peak, PV, NetZero gap."""
    b = result.buildings
    heated_area = float(b.loc[b["heated"], "floor_area_m2"].sum())
    heating = float(b["heating_need_kwh"].sum())
    elec = float(b["final_electricity_kwh"].sum())
    self_used = float(b["pv_self_consumed_kwh"].sum())
    mwh = 1000.0
    kpis = [
        Kpi("buildings_heating_need_mwh", "MWh", heating / mwh, "Space heating need of buildings", "lower"),
        Kpi("buildings_heating_need_kwh_m2", "kWh/m²", heating / heated_area if heated_area else 0.0,
                 "Space heating need per m² of heated floor area", "lower"),
        Kpi("buildings_cooling_need_mwh", "MWh", float(b["cooling_need_kwh"].sum()) / mwh,
                 "Cooling need of buildings (above 26 °C)", "lower"),
        Kpi("buildings_hot_water_need_mwh", "MWh", float(b["hot_water_need_kwh"].sum()) / mwh,
                 "Hot water need of buildings"),
        Kpi("buildings_final_energy_mwh", "MWh", float(b["final_energy_kwh"].sum()) / mwh,
                 "Final energy of buildings, all carriers", "lower"),
    ]  # fmt: skip
    for carrier, words in (("electricity", "electricity"), ("district_heating", "district heat"),
                           ("gas", "gas"), ("oil", "heating oil")):  # fmt: skip
        kpis.append(Kpi(f"buildings_final_{carrier}_mwh", "MWh", float(b[f"final_{carrier}_kwh"].sum()) / mwh,
                             f"Final energy of buildings: {words}", "lower"))  # fmt: skip
    kpis += [
        Kpi("buildings_co2_t", "t", float(b["co2_kg"].sum()) / 1000, "CO2 emissions of buildings", "lower"),
        Kpi("buildings_peak_heating_mw", "MW", float(result.hourly["heating_w"].max()) / 1e6,
                 "Peak space heating load of all buildings at once", "lower"),
        Kpi("buildings_pv_mwh", "MWh", float(b["pv_kwh"].sum()) / mwh, "Rooftop PV generation", "higher"),
        Kpi("buildings_pv_self_sufficiency_pct", "%", 100 * self_used / elec if elec else 0.0,
                 "Share of buildings' electricity covered by their own PV", "higher"),
        Kpi("buildings_netzero_gap_t", "t", float(b["co2_after_export_credit_kg"].sum()) / 1000,
                 "NetZero gap: CO2 left after the scenario, exported PV credited", "lower"),
    ]  # fmt: skip
    return tuple(replace(k, headline=k.name in HEADLINE) for k in kpis)
