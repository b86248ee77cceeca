"""Traffic KPIs of one SUMO run: network-wide numbers and per-edge frames for difference maps.

Definitions (also in docs/traffic-engine.md): travel times, delay and vehicle-km count trips that
arrived (an unfinished trip has no travel time yet; its share is reported separately); emissions are
the edge totals, i.e. everything emitted within the simulated period; road noise is the energy average
of SUMO's Harmonoise edge levels over edges that carried traffic.
"""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

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

EDGE_KPI_COLUMNS = [
    "vehicles",
    "vehicle_km",
    "speed_kmh",
    "traveltime_s",
    "density",
    "co2_kg",
    "nox_kg",
    "pmx_kg",
    "noise_db",
]


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


def energy_average_db(levels: Sequence[float] | pd.Series) -> float:
    """The energy (logarithmic) mean of sound levels: ``10·log10(mean(10^(L/10)))``; NaNs ignored."""
    values = np.asarray(levels, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan")
    return float(10 * np.log10(np.mean(np.power(10.0, values / 10))))


def edge_kpis(result: SimResult) -> pd.DataFrame:
    """Per-edge KPIs of one run, for maps: ``edge_id`` plus :data:`EDGE_KPI_COLUMNS`."""
    edges = result.edges
    return pd.DataFrame(
        {
            "edge_id": edges["edge_id"],
            "vehicles": edges["vehicles"].astype(float),
            "vehicle_km": edges["distance_m"] / 1000,
            "speed_kmh": edges["speed_ms"] * 3.6,
            "traveltime_s": edges["traveltime_s"],
            "density": edges["density"],
            "co2_kg": edges["CO2_g"] / 1000,
            "nox_kg": edges["NOx_g"] / 1000,
            "pmx_kg": edges["PMx_g"] / 1000,
            "noise_db": edges["noise_dB"],
        }
    )


def mean_edge_kpis(results: Sequence[SimResult]) -> pd.DataFrame:
    """Per-edge KPIs averaged over seeds (noise energy-averaged; NaN where no seed had traffic)."""
    if not results:
        raise ValueError("no results to average")
    stacked = pd.concat([edge_kpis(r) for r in results], ignore_index=True)
    grouped = stacked.groupby("edge_id", sort=True)
    mean = grouped[[c for c in EDGE_KPI_COLUMNS if c != "noise_db"]].mean()
    mean["noise_db"] = grouped["noise_db"].agg(energy_average_db)
    return mean[EDGE_KPI_COLUMNS].reset_index()


def edge_differences(base: pd.DataFrame, plan: pd.DataFrame) -> pd.DataFrame:
    """Plan − base per edge: every KPI as ``<kpi>_base``, ``<kpi>_plan`` and ``<kpi>_diff``.

    Edges present in only one network get NaN on the other side.
    """
    merged = base.merge(plan, on="edge_id", how="outer", suffixes=("_base", "_plan"))
    for column in EDGE_KPI_COLUMNS:
        merged[f"{column}_diff"] = merged[f"{column}_plan"] - merged[f"{column}_base"]
    return merged.sort_values("edge_id", ignore_index=True)


ZONE_KPI_COLUMNS = ["zone_id", "vehicle_km", "co2_kg", "nox_kg", "pmx_kg", "noise_db"]


def zone_kpis(edge_frame: pd.DataFrame, edges: gpd.GeoDataFrame, zones: gpd.GeoDataFrame) -> pd.DataFrame:
    """Per-zone totals of per-edge KPIs (from :func:`edge_kpis` or :func:`mean_edge_kpis`).

    An edge belongs to the zone holding its midpoint (``edges``: the twin's ``network_edges``, ``zones``:
    ``zone_id`` + polygon, same CRS). Vehicle-km and emissions are summed; noise is the energy average
    over the zone's edges with traffic. Zones without edges get zeros and NaN noise.
    """
    mid = gpd.GeoDataFrame(
        {"edge_id": edges["edge_id"].astype(str)},
        geometry=shapely.line_interpolate_point(edges.geometry.to_numpy(), 0.5, normalized=True),
        crs=edges.crs,
    )
    placed = gpd.sjoin(mid, zones[["zone_id", "geometry"]], predicate="within")[["edge_id", "zone_id"]]
    joined = placed.merge(edge_frame, on="edge_id", how="inner")
    grouped = joined.groupby("zone_id")
    totals = grouped[["vehicle_km", "co2_kg", "nox_kg", "pmx_kg"]].sum()
    used = joined[joined["vehicles"] > 0]
    totals["noise_db"] = used.groupby("zone_id")["noise_db"].agg(energy_average_db)
    out = totals.reindex(zones["zone_id"]).rename_axis("zone_id").reset_index()
    out[["vehicle_km", "co2_kg", "nox_kg", "pmx_kg"]] = out[
        ["vehicle_km", "co2_kg", "nox_kg", "pmx_kg"]
    ].fillna(0.0)
    result: pd.DataFrame = out[ZONE_KPI_COLUMNS]
    return result
