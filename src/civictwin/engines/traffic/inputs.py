"""The twin's tables the traffic engine reads (network, zones, transit), loaded once per process.

Loading is cached per store version: opening the store alone (DuckDB plus its spatial extension)
takes 0.1–0.3 s, a real share of a single-seed run.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import geopandas as gpd
import pandas as pd

from civictwin.config import TwinConfig, load_config
from civictwin.engines.traffic.demand import DemandError
from civictwin.engines.traffic.interventions import TransitFrequency
from civictwin.engines.traffic.region import FIELD as REGION_FIELD
from civictwin.engines.traffic.region import RegionTables
from civictwin.engines.traffic.transit import GtfsSchedule
from civictwin.errors import CivicTwinError, StoreError
from civictwin.scenarios.spec import Scenario
from civictwin.store.base import Store
from civictwin.store.opening import StoreLocation, open_store, store_location, store_version

FrameT = TypeVar("FrameT", bound=pd.DataFrame)

READS = (
    "network_edges",
    "network_nodes",
    "zones",
    "transit_stops",
    "transit_stop_frequency",
    "mobility_od",
    "mobility_presence",
    "transit_stop_times",
    "transit_trips",
    "transit_routes",
    "transit_calendar",
    "transit_frequencies",
)
"""The twin layers every traffic run reads (the GTFS timetable ones whenever the twin has them: its
buses are simulated from them).

``mobility_od`` and ``mobility_presence`` (phone-based OD and presence, loaded whenever the twin has
them) are listed so that a comparison's access follows the operator's data: who may not read them
sees no comparison derived from them."""


@dataclass(frozen=True)
class TwinInputs:
    """The tables of a twin the traffic engine reads, loaded once (the store is closed afterwards)."""

    twin_dir: Path
    crs: str
    edges: gpd.GeoDataFrame
    nodes: gpd.GeoDataFrame
    zones: gpd.GeoDataFrame
    stops: gpd.GeoDataFrame | None
    stop_frequency: pd.DataFrame | None
    stop_routes: pd.DataFrame | None
    """feed, stop_id, route_id, route_short_name, trips: how often each route serves each stop."""
    catalog: dict[str, dict[str, Any]]
    mobility_od: pd.DataFrame | None = None
    """origin, destination, hour, trips: the phone-based OD matrix on the twin's zones, if the twin has one."""
    mobility_presence: pd.DataFrame | None = None
    """zone_id, hour, count: phone-based presence on the twin's zones, if the twin has it."""
    schedule: GtfsSchedule | None = None
    """The GTFS timetable tables buses are simulated from, when the twin has them."""


def needs_routes(scenarios: Collection[Scenario]) -> bool:
    """Whether any scenario changes a transit route's frequency (which needs the GTFS trip tables)."""
    return any(isinstance(i, TransitFrequency) for s in scenarios for i in s.interventions)


def load_twin(twin: Path | Store, *, twin_dir: Path | None = None, need_routes: bool = False) -> TwinInputs:
    """Read network, zones and transit tables from a twin directory (``twin.toml``) or an open store.

    A twin directory's tables are kept in memory for the next call in this process (two twins at most).
    The cache is keyed by the store's version marker, which every write replaces, so a rebuilt twin
    or any write to the store is read afresh. Each call gets its own shallow copies of the frames (copy-on-write), so a caller
    changing a frame never changes the cached one.
    """
    if isinstance(twin, Store):
        return _read_inputs(twin, twin_dir or Path.cwd(), need_routes)
    return _shallow_copy(_current(load_config(twin), need_routes)[1])


def _current(config: TwinConfig, need_routes: bool) -> tuple[str, TwinInputs]:
    """The version marker of the twin's store now, and its tables (kept for the next call)."""
    location = store_location(config)
    version = store_version(location)
    return version, _load_cached(location, config.base_dir, version, need_routes)


@functools.lru_cache(maxsize=2)
def _load_cached(location: StoreLocation, twin_dir: Path, version: str, need_routes: bool) -> TwinInputs:
    """The tables of one version (the store's version marker) of a store; see :func:`load_twin`."""
    with open_store(location) as store:
        return _read_inputs(store, twin_dir, need_routes)


def _shallow_copy(inputs: TwinInputs) -> TwinInputs:
    return dataclasses.replace(
        inputs,
        edges=inputs.edges.copy(deep=False),
        nodes=inputs.nodes.copy(deep=False),
        zones=inputs.zones.copy(deep=False),
        stops=_copy_or_none(inputs.stops),
        stop_frequency=_copy_or_none(inputs.stop_frequency),
        stop_routes=_copy_or_none(inputs.stop_routes),
        mobility_od=_copy_or_none(inputs.mobility_od),
        mobility_presence=_copy_or_none(inputs.mobility_presence),
        catalog=copy.deepcopy(inputs.catalog),
    )


def _copy_or_none(frame: FrameT | None) -> FrameT | None:
    return None if frame is None else frame.copy(deep=False)


def _read_inputs(store: Store, twin_dir: Path, need_routes: bool) -> TwinInputs:
    for table in ("network_edges", "network_nodes", "zones"):
        if not store.has_table(table):
            raise StoreError(f"the twin has no '{table}' table; build the twin first (civictwin build)")
    has_transit = store.has_table("transit_stops") and store.has_table("transit_stop_frequency")
    stops = store.read_frame("transit_stops") if has_transit else None
    frequency = store.read_table("transit_stop_frequency") if has_transit else None
    return TwinInputs(
        twin_dir=twin_dir,
        crs=store.crs,
        edges=store.read_frame("network_edges"),
        nodes=store.read_frame("network_nodes"),
        zones=store.read_frame("zones"),
        stops=stops,
        stop_frequency=frequency,
        stop_routes=_stop_routes(store) if need_routes and has_transit else None,
        catalog=store.records("catalog"),
        mobility_od=store.read_table("mobility_od") if store.has_table("mobility_od") else None,
        mobility_presence=(
            store.read_table("mobility_presence") if store.has_table("mobility_presence") else None
        ),
        schedule=read_schedule(store, stops),
    )


SCHEDULE_TABLES = ("transit_stop_times", "transit_trips", "transit_routes", "transit_calendar")


def read_schedule(store: Store, stops: gpd.GeoDataFrame | None) -> GtfsSchedule | None:
    """The GTFS tables a bus simulation reads (``transit_frequencies`` when the build stored one)."""
    if stops is None or not all(store.has_table(t) for t in SCHEDULE_TABLES):
        return None
    return GtfsSchedule(
        stops=stops,
        stop_times=store.read_table(
            "transit_stop_times",
            columns=["feed", "trip_id", "stop_id", "stop_sequence", "arrival_s", "departure_s"],
        ),
        trips=store.read_table("transit_trips", columns=["feed", "trip_id", "route_id", "service_id"]),
        routes=store.read_table(
            "transit_routes", columns=["feed", "route_id", "route_short_name", "route_type"]
        ),
        calendar=store.read_table("transit_calendar"),
        frequencies=store.read_table("transit_frequencies")
        if store.has_table("transit_frequencies")
        else None,
    )


def _stop_routes(store: Store) -> pd.DataFrame | None:
    needed = ("transit_stop_times", "transit_trips", "transit_routes")
    if not all(store.has_table(t) for t in needed):
        return None
    times = store.read_table("transit_stop_times", columns=["feed", "trip_id", "stop_id"])
    trips = store.read_table("transit_trips", columns=["feed", "trip_id", "route_id"])
    routes = store.read_table("transit_routes", columns=["feed", "route_id", "route_short_name"])
    joined = times.merge(trips, on=["feed", "trip_id"]).merge(routes, on=["feed", "route_id"])
    counted = joined.groupby(["feed", "stop_id", "route_id", "route_short_name"], dropna=False).size()
    return counted.rename("trips").reset_index()


def load_region(twin_dir: Path, region: str) -> RegionTables:
    """The roads and zones of the region twin at ``region`` (``[gateways] region``, relative to
    ``twin_dir``), kept in memory like the twin's own (:func:`load_twin`, one look at its store's
    version for both); its label names it, its path and that version. Raises :class:`DemandError` naming ``gateways.region`` when there is
    no built twin there."""
    path = (twin_dir / region).resolve()
    if not (path / "twin.toml").is_file():
        raise DemandError(f"no twin at {path} (no twin.toml there)", field=REGION_FIELD)
    try:
        config = load_config(path)
        version, tables = _current(config, need_routes=False)
    except CivicTwinError as exc:
        raise DemandError(f"the region twin at {path}: {exc.user_message()}", field=REGION_FIELD) from None
    return RegionTables(
        label=f"twin '{config.twin.name}' at {region}, version {version}",
        edges=tables.edges.copy(deep=False),
        zones=tables.zones.copy(deep=False),
    )
