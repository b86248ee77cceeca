"""Traffic KPIs of one seed: network-wide numbers, per-edge and per-zone tables, and what each KPI is.

Definitions (also in docs/traffic-engine.md): travel times, delay and vehicle-km count trips that
arrived (an unfinished trip has no travel time yet; its share is reported separately); emissions are
the edge totals, i.e. everything emitted within the simulated period; road noise is the energy average
of SUMO's Harmonoise edge levels over edges that carried traffic. Demand KPIs (person trips, mode
shares) come from the mode choice of the last round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from civictwin.engines.base import Better, Kpi
from civictwin.engines.traffic.modechoice import MODES
from civictwin.engines.traffic.outputs import SimResult

KPI_UNITS: dict[str, str] = {
    "trips": "trips",
    "finished_share": "share",
    "mean_travel_time_s": "s",
    "total_travel_time_h": "h",
    "total_delay_h": "h",
    "vehicle_km": "km",
    "mean_speed_kmh": "km/h",
    "co2_kg": "kg",
    "nox_kg": "kg",
    "pmx_kg": "kg",
    "mean_noise_db": "dB(A)",
    "teleports": "vehicles",
    "unfinished": "trips",
}
"""Every KPI :func:`run_kpis` returns, with its unit."""

BUS_KPI_UNITS: dict[str, str] = {
    "bus_runs": "vehicles",
    "bus_finished_share": "share",
    "bus_mean_travel_time_s": "s",
    "bus_mean_delay_s": "s",
    "bus_mean_speed_kmh": "km/h",
}
"""The transit KPIs of a run with simulated buses (:func:`bus_kpis`), with their units."""

BIKE_KPI_UNITS: dict[str, str] = {
    "bike_trips": "trips",
    "bike_finished_share": "share",
    "bike_mean_travel_time_s": "s",
    "bike_mean_speed_kmh": "km/h",
}
"""The cycling KPIs of a run with simulated bikes (:func:`bike_kpis`), with their units."""

DEMAND_KPI_UNITS: dict[str, str] = {
    "person_trips": "person trips",
    **{f"share_{mode}": "share" for mode in MODES},
}
"""The demand KPIs of a seed (person trips and the share of each mode), with their units."""

FOCUS_KPI_UNITS: dict[str, str] = {
    "focus_trips": "vehicles",
    "focus_unfinished": "vehicles",
    "focus_mean_travel_time_s": "s",
    "focus_total_delay_h": "h",
    "focus_vehicle_km": "km",
}
"""The focus area's KPIs (``focus_zones``: a microscopic run inside a mesoscopic one, see
:mod:`~civictwin.engines.traffic.focus`), with their units."""


@dataclass(frozen=True)
class KpiMeaning:
    """How a KPI is read: plain words, which direction is better, and whether the summary names it."""

    label: str
    better: Better = "neither"
    headline: bool = False


MEANINGS: Mapping[str, KpiMeaning] = {
    "trips": KpiMeaning("Car trips"),
    "finished_share": KpiMeaning("Share of car trips finished", "higher"),
    "mean_travel_time_s": KpiMeaning("Mean car travel time", "lower", headline=True),
    "total_travel_time_h": KpiMeaning("Total car travel time", "lower"),
    "total_delay_h": KpiMeaning("Total car delay", "lower", headline=True),
    "vehicle_km": KpiMeaning("Vehicle-kilometres", "lower", headline=True),
    "mean_speed_kmh": KpiMeaning("Mean car speed"),
    "co2_kg": KpiMeaning("CO2 emissions", "lower", headline=True),
    "nox_kg": KpiMeaning("NOx emissions", "lower"),
    "pmx_kg": KpiMeaning("Particulate emissions", "lower"),
    "mean_noise_db": KpiMeaning("Road noise (mean level on used streets)", "lower", headline=True),
    "teleports": KpiMeaning("Teleported vehicles", "lower"),
    "unfinished": KpiMeaning("Unfinished car trips", "lower"),
    "bus_runs": KpiMeaning("Simulated bus and tram runs"),
    "bus_finished_share": KpiMeaning("Share of bus runs finished", "higher"),
    "bus_mean_travel_time_s": KpiMeaning("Mean bus travel time, first to last stop", "lower"),
    "bus_mean_delay_s": KpiMeaning("Mean bus delay (time lost to traffic, dwell excluded)", "lower"),
    "bus_mean_speed_kmh": KpiMeaning("Mean bus speed, stops included", "higher"),
    "bike_trips": KpiMeaning("Simulated bike trips"),
    "bike_finished_share": KpiMeaning("Share of bike trips finished", "higher"),
    "bike_mean_travel_time_s": KpiMeaning("Mean simulated bike travel time", "lower"),
    "bike_mean_speed_kmh": KpiMeaning("Mean simulated bike speed", "higher"),
    "person_trips": KpiMeaning("Person trips (all modes)"),
    "share_car": KpiMeaning("Car share of trips", "lower", headline=True),
    "share_pt": KpiMeaning("Public transport share of trips", "higher"),
    "share_bike": KpiMeaning("Bike share of trips", "higher"),
    "share_walk": KpiMeaning("Walking share of trips", "higher"),
    "focus_trips": KpiMeaning("Focus area (microscopic): cars entering it"),
    "focus_unfinished": KpiMeaning("Focus area (microscopic): cars still inside at the end", "lower"),
    "focus_mean_travel_time_s": KpiMeaning("Focus area (microscopic): mean time to cross it", "lower"),
    "focus_total_delay_h": KpiMeaning("Focus area (microscopic): total car delay inside it", "lower"),
    "focus_vehicle_km": KpiMeaning("Focus area (microscopic): vehicle-kilometres inside it"),
}
"""Every traffic KPI's label, better direction and headline flag, in the order reports list them."""

HEADLINE_ORDER = ("mean_travel_time_s", "total_delay_h", "vehicle_km", "share_car", "co2_kg", "mean_noise_db")
"""The order the summary speaks about the headline KPIs in."""


def as_kpis(values: Mapping[str, float]) -> tuple[Kpi, ...]:
    """A seed's KPI values as :class:`~civictwin.engines.base.Kpi`\\ s, in :data:`MEANINGS` order."""
    units = {**KPI_UNITS, **BUS_KPI_UNITS, **BIKE_KPI_UNITS, **DEMAND_KPI_UNITS, **FOCUS_KPI_UNITS}
    return tuple(
        Kpi(
            name=name,
            unit=units[name],
            value=float(values[name]),
            label=meaning.label,
            better=meaning.better,
            headline=meaning.headline,
        )
        for name, meaning in MEANINGS.items()
        if name in values
    )


def run_kpis(result: SimResult) -> dict[str, float]:
    """Network-wide KPIs of one run (keys and units in :data:`KPI_UNITS`)."""
    trips = result.trips
    done = trips[trips["arrived"]]
    hours = float(done["duration_s"].sum()) / 3600
    km = float(done["route_length_m"].sum()) / 1000
    edges = result.edges
    return {
        "trips": float(len(trips)),
        "finished_share": float(len(done)) / len(trips) if len(trips) else float("nan"),
        "mean_travel_time_s": float(done["duration_s"].mean()) if len(done) else float("nan"),
        "total_travel_time_h": hours,
        "total_delay_h": float(done["time_loss_s"].sum()) / 3600,
        "vehicle_km": km,
        "mean_speed_kmh": km / hours if hours > 0 else float("nan"),
        "co2_kg": float(edges["CO2_g"].sum()) / 1000,
        "nox_kg": float(edges["NOx_g"].sum()) / 1000,
        "pmx_kg": float(edges["PMx_g"].sum()) / 1000,
        "mean_noise_db": energy_average_db(edges.loc[edges["vehicles"] > 0, "noise_dB"]),
        "teleports": float(result.teleports),
        "unfinished": float(result.unfinished),
    }


def bus_kpis(bus_trips: pd.DataFrame) -> dict[str, float]:
    """Transit KPIs over the runs that arrived (keys and units in :data:`BUS_KPI_UNITS`); none
    without simulated runs. Times count from the scheduled departure; delay is SUMO's ``timeLoss``
    (time lost driving below the ideal speed, the dwell at stops not counted) plus any wait to enter
    the network when due."""
    if bus_trips.empty:
        return {}
    done = bus_trips[bus_trips["arrived"].astype(bool)]
    speed = bus_speed_kmh(bus_trips)
    return {
        "bus_runs": float(len(bus_trips)),
        "bus_finished_share": float(len(done)) / len(bus_trips),
        "bus_mean_travel_time_s": float(done["duration_s"].mean()) if len(done) else float("nan"),
        "bus_mean_delay_s": float(done["time_loss_s"].mean()) if len(done) else float("nan"),
        "bus_mean_speed_kmh": speed if speed is not None else float("nan"),
    }


def bike_kpis(bike_trips: pd.DataFrame) -> dict[str, float]:
    """Cycling KPIs over the bike trips that arrived (keys and units in :data:`BIKE_KPI_UNITS`); none
    without simulated bikes."""
    if bike_trips.empty:
        return {}
    done = bike_trips[bike_trips["arrived"].astype(bool)]
    seconds = float(done["duration_s"].sum())
    return {
        "bike_trips": float(len(bike_trips)),
        "bike_finished_share": float(len(done)) / len(bike_trips),
        "bike_mean_travel_time_s": float(done["duration_s"].mean()) if len(done) else float("nan"),
        "bike_mean_speed_kmh": float(done["route_length_m"].sum()) / seconds * 3.6
        if seconds > 0
        else float("nan"),
    }


def bus_speed_kmh(bus_trips: pd.DataFrame | None, *, prefix: str = "") -> float | None:
    """The runs' commercial speed (km/h): distance over time of the arrived runs (those whose id
    starts with ``prefix``), dwell included; None when no such run arrived."""
    if bus_trips is None or bus_trips.empty:
        return None
    done = bus_trips[
        bus_trips["arrived"].astype(bool) & bus_trips["trip_id"].astype(str).str.startswith(prefix)
    ]
    seconds = float(done["duration_s"].sum())
    if seconds <= 0:
        return None
    return float(done["route_length_m"].sum()) / seconds * 3.6


BUS_LINE_COLUMNS = ["line", "runs", "travel_time_s", "delay_s", "geometry"]


def bus_line_table(bus_trips: pd.DataFrame | None, lines: Mapping[str, bytes]) -> pd.DataFrame:
    """Per line (:data:`BUS_LINE_COLUMNS`): runs simulated, mean travel time and mean delay (s) of
    those that arrived, and ``geometry`` (WKB, the line through its stops: ``lines``)."""
    if bus_trips is None or bus_trips.empty:
        return pd.DataFrame(
            {c: pd.Series(dtype=object if c in ("line", "geometry") else float) for c in BUS_LINE_COLUMNS}
        )
    done = bus_trips[bus_trips["arrived"].astype(bool)]
    table = pd.DataFrame({"runs": bus_trips.groupby("line").size().astype(float)})
    table["travel_time_s"] = done.groupby("line")["duration_s"].mean()
    table["delay_s"] = done.groupby("line")["time_loss_s"].mean()
    out = table.rename_axis("line").reset_index()
    out["line"] = out["line"].astype(str)
    out["geometry"] = out["line"].map(lines)
    result: pd.DataFrame = out[BUS_LINE_COLUMNS]
    return result


def energy_average_db(levels: Sequence[float] | pd.Series) -> float:
    """The energy (logarithmic) mean of sound levels: ``10·log10(mean(10^(L/10)))``; NaNs ignored."""
    values = np.asarray(levels, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan")
    return float(10 * np.log10(np.mean(np.power(10.0, values / 10))))


def edge_table(result: SimResult) -> pd.DataFrame:
    """Per simulated edge: ``edge_id``, ``flow`` (vehicles that used it), ``speed_ms``, ``co2_g``, ``noise_db``."""
    edges = result.edges
    return pd.DataFrame(
        {
            "edge_id": edges["edge_id"].astype(str),
            "flow": edges["vehicles"].fillna(0.0).astype(float),
            "speed_ms": edges["speed_ms"].astype(float),
            "co2_g": edges["CO2_g"].fillna(0.0).astype(float),
            "noise_db": edges["noise_dB"].astype(float),
        }
    )


ZONE_KPI_COLUMNS = ["zone_id", "vehicle_km", "co2_kg", "noise_db"]


def edge_zones(edges: gpd.GeoDataFrame, zones: gpd.GeoDataFrame) -> pd.DataFrame:
    """``edge_id``, ``zone_id`` and ``length_m`` of every edge whose midpoint lies in a zone.

    ``edges``: the twin's ``network_edges`` (with ``length_m``); ``zones``: ``zone_id`` + polygon, in
    the same CRS. An edge belongs to the zone holding its midpoint.
    """
    mid = gpd.GeoDataFrame(
        {"edge_id": edges["edge_id"].astype(str), "length_m": edges["length_m"].to_numpy()},
        geometry=shapely.line_interpolate_point(edges.geometry.to_numpy(), 0.5, normalized=True),
        crs=edges.crs,
    )
    placed = gpd.sjoin(mid, zones[["zone_id", "geometry"]], predicate="within")
    return pd.DataFrame(placed[["edge_id", "zone_id", "length_m"]]).reset_index(drop=True)


def zone_totals(edge_values: pd.DataFrame, placement: pd.DataFrame, zone_ids: pd.Series) -> pd.DataFrame:
    """Per zone of ``zone_ids``: vehicle-km (flow × length) and CO2 summed over its edges (``placement``
    from :func:`edge_zones`), noise as the energy average over its edges with traffic. Zones without
    traffic get zeros and NaN noise."""
    joined = placement.merge(edge_values, on="edge_id", how="inner")
    joined["vehicle_km"] = joined["flow"] * joined["length_m"] / 1000
    joined["co2_kg"] = joined["co2_g"] / 1000
    totals = joined.groupby("zone_id")[["vehicle_km", "co2_kg"]].sum()
    totals["noise_db"] = joined[joined["flow"] > 0].groupby("zone_id")["noise_db"].agg(energy_average_db)
    out = totals.reindex(zone_ids).rename_axis("zone_id").reset_index()
    out[["vehicle_km", "co2_kg"]] = out[["vehicle_km", "co2_kg"]].fillna(0.0)
    result: pd.DataFrame = out[ZONE_KPI_COLUMNS]
    return result
