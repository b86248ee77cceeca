"""Count sites for calibration: each counted direction on its directed edge, its hours, and what is wrong.

The observation store holds the counts as datastreams, one per point, direction and vehicle class,
each carrying where it was matched on the network (:mod:`civictwin.model.counts`: ``edge_ids``,
``match_distance_m``, ``heading``, ``ambiguous``, ``match_notes``). Here each point and direction
becomes one *site*: the chosen vehicle classes summed hour by hour, on one day (the most completely
counted, latest day that is not a copy of the day before, unless a day is configured), with every
reason it cannot be trusted named:

- **no edge** (nothing drivable or no street of its name within reach, or a one-way street's
  missing direction), or **two edges** (a count without a direction cannot be compared with one
  directed edge);
- **ambiguous match** (the direction or the street is in doubt; used only with ``use_ambiguous``);
- **above capacity** (its busiest hour above ``capacity_factor`` × the edge's ``capacity_vph``);
- **missing hours** within the compared window, or a counter that **counted nothing at all**.

A site is ``used`` when nothing excludes it. The functions are pure except :func:`load_count_sites`,
which reads the observation store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from civictwin.config import TwinConfig
from civictwin.store.observations import DatastreamInfo, open_observations

HOURS = 24
SITE_COLUMNS = [
    "site",
    "point",
    "direction",
    "edge_id",
    "street",
    "heading",
    "distance_m",
    "day",
    "peak_vph",
    "capacity_vph",
    "missing_hours",
    "status",
    "reasons",
]
"""Columns of :attr:`CountSites.sites`; ``status`` is ``used`` or ``excluded``, ``reasons`` joined by ``; ``."""
HOURLY_COLUMNS = ["site", "edge_id", "hour", "observed"]
"""Columns of :attr:`CountSites.hourly`: vehicles per local clock hour (0–23), NaN where missing."""


class CalibrationSettings(BaseModel):
    """``[calibration]`` of ``traffic.toml``: which counts to use and how to calibrate to them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    classes: tuple[str, ...] = ("ha",)
    """Vehicle classes summed into a site's count (Helsinki codes; ``ha`` = passenger cars, what the
    simulation moves). Datastreams without a class are used as they are."""
    timezone: str = "UTC"
    """IANA zone of the counts' clock hours (``Europe/Helsinki`` for the Helsinki counts)."""
    start_hour: Annotated[int, Field(ge=0, le=23)] = 8
    """Clock hour at which the simulated demand window starts (its hour 0)."""
    day: date | None = None
    """Local day of the counts to use; none: the day with the most hours counted, the latest of those
    that does not repeat the day before it (Helsinki's counts: one nominal day per year)."""
    capacity_factor: Annotated[float, Field(gt=0)] = 1.0
    """A site whose busiest hour exceeds this × the edge's ``capacity_vph`` is excluded."""
    use_ambiguous: bool = False
    """Use sites whose match is ambiguous (they are still flagged)."""
    folds: Annotated[int, Field(ge=2, le=20)] = 5
    """k of the k-fold hold-out of sites."""
    seed: int = 1
    """Seed of the k-fold split and of the calibration's simulations."""
    max_iterations: Annotated[int, Field(ge=1, le=20)] = 4
    """Simulations of the calibration loop (each followed by one least-squares update)."""
    prior_weight: Annotated[float, Field(ge=0)] = 1.0
    """Weight of the prior matrix against the counts in the least-squares update (see the methods page)."""
    gateway_prior_weight: Annotated[float, Field(ge=0)] = 0.1
    """Weight of the prior gateway flows against the counts (with ``[gateways]`` enabled): lower than
    ``prior_weight`` because stated defaults are assumptions without a source (see the methods page)."""
    max_demand_growth: Annotated[float, Field(gt=0, le=2)] = 0.5
    """Trust region of one update: the factors' step is shortened along its direction until the
    car trips it adds are at most this share of the last simulation's car trips (0.5 = +50 %; an
    assumption, see docs/methods-calibration.md section 3), so no single step can gridlock the
    network by loading it all at once. Reductions are not limited."""
    step_retries: Annotated[int, Field(ge=0, le=5)] = 2
    """When a simulation of a step fails the engine's quality check (gridlock: too many teleports or
    trips not arrived), the step is halved and simulated again, at most this many times; then the
    calibration keeps its last good factors and says that it stopped."""
    split_tolerance: Annotated[float, Field(gt=0, le=0.1)] = 0.01
    """With a ``[modal_split]`` in ``twin.toml``: the mode-choice constants are calibrated until every
    mode's modelled share is within this of the observed one (0.01: one percentage point, an
    assumption, see docs/methods-calibration.md, section 6)."""
    split_max_runs: Annotated[int, Field(ge=1, le=20)] = 4
    """Most simulations of the mode-split calibration; when none came within ``split_tolerance`` the
    record says it did not converge."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{value}'") from None
        return value


@dataclass(frozen=True)
class CountSites:
    """The count sites of a twin (:data:`SITE_COLUMNS`) and their hourly counts (:data:`HOURLY_COLUMNS`)."""

    sites: pd.DataFrame
    hourly: pd.DataFrame

    @property
    def used(self) -> list[str]:
        """Sites a calibration may use, sorted."""
        return sorted(self.sites.loc[self.sites["status"] == "used", "site"])

    def window(self, settings: CalibrationSettings, hours: int) -> pd.DataFrame:
        """Observed counts of the used sites in the simulated window: ``site``, ``edge_id``, ``hour``
        (from the start of the run), ``observed``; hours without a count left out."""
        clock = [(settings.start_hour + h) % HOURS for h in range(hours)]
        frame = self.hourly[self.hourly["site"].isin(self.used) & self.hourly["hour"].isin(clock)].copy()
        frame["hour"] = (frame["hour"] - settings.start_hour) % HOURS
        return frame.dropna(subset=["observed"]).sort_values(["site", "hour"], ignore_index=True)


def no_site() -> CountSites:
    """No count site at all (a twin without an observation store)."""
    return CountSites(sites=pd.DataFrame(columns=SITE_COLUMNS), hourly=pd.DataFrame(columns=HOURLY_COLUMNS))


def count_sites(
    datastreams: Sequence[DatastreamInfo],
    observations: Mapping[int, pd.DataFrame],
    edges: pd.DataFrame,
    settings: CalibrationSettings,
    *,
    window_hours: int = 1,
) -> CountSites:
    """Sites from the count ``datastreams`` (those with ``point`` and ``direction`` properties) and their
    ``observations`` (by datastream id, the store's columns), checked against ``edges`` (``edge_id``,
    ``capacity_vph``); missing hours are judged within ``window_hours`` from ``start_hour``."""
    groups: dict[tuple[str, str, str], list[DatastreamInfo]] = {}
    for info in datastreams:
        props = info.properties
        if "point" in props and "direction" in props:
            source = info.key.split("/", 1)[0]
            groups.setdefault((source, str(props["point"]), str(props["direction"])), []).append(info)
    capacity = dict(zip(edges["edge_id"].astype(str), edges["capacity_vph"].astype(float), strict=True))
    zone = ZoneInfo(settings.timezone)
    window = {(settings.start_hour + h) % HOURS for h in range(window_hours)}
    rows, hourly = [], []
    for (source, point, direction), infos in sorted(groups.items()):
        site = f"{source}/{point}/{direction}"
        counts, day, notes = _typical_day(_chosen(infos, settings.classes), observations, zone, settings.day)
        row = _site_row(site, point, direction, infos[0].properties, counts, day, capacity, settings, window)
        row["reasons"] = "; ".join([*row["reasons"], *notes])
        rows.append(row)
        edge = row["edge_id"]
        hourly.append(pd.DataFrame({"site": site, "edge_id": edge, "hour": range(HOURS), "observed": counts}))
    sites = pd.DataFrame(rows, columns=SITE_COLUMNS)
    frame = pd.concat(hourly, ignore_index=True) if hourly else pd.DataFrame(columns=HOURLY_COLUMNS)
    return CountSites(sites=sites, hourly=frame[HOURLY_COLUMNS])


def load_count_sites(
    store_path: Path | TwinConfig,
    edges: pd.DataFrame,
    settings: CalibrationSettings,
    *,
    window_hours: int = 1,
) -> CountSites:
    """:func:`count_sites` over the twin's observation store (read only; given the twin's
    configuration, also a PostGIS twin's)."""
    with open_observations(store_path, read_only=True) as store:
        streams = [s for s in store.datastreams() if "point" in s.properties and "direction" in s.properties]
        observations = {s.id: store.observations(s.id) for s in streams}
    return count_sites(streams, observations, edges, settings, window_hours=window_hours)


def _chosen(infos: list[DatastreamInfo], classes: Sequence[str]) -> list[DatastreamInfo]:
    """The datastreams of the chosen classes; all of them when none carries a class."""
    classed = [i for i in infos if "vehicle_class" in i.properties]
    if not classed:
        return infos
    return [i for i in classed if i.properties["vehicle_class"] in classes]


def _typical_day(
    infos: list[DatastreamInfo], observations: Mapping[int, pd.DataFrame], zone: ZoneInfo, day: date | None
) -> tuple[np.ndarray, date | None, list[str]]:
    """24 hourly counts (NaN: missing) of the chosen local day, that day, and notes on skipped days.

    Without ``day``: the day with the most hours counted, the latest of those, skipping a day that
    repeats the day before it hour by hour (a copied year).
    """
    if not infos:
        return np.full(HOURS, np.nan), None, ["no datastream of the chosen vehicle classes"]
    per_stream = []
    for info in infos:
        frame = observations.get(info.id, pd.DataFrame(columns=["phenomenon_time", "result"]))
        local = pd.to_datetime(frame["phenomenon_time"].astype("int64"), unit="ms", utc=True).dt.tz_convert(
            zone
        )
        per_stream.append(
            pd.DataFrame(
                {"day": local.dt.date, "hour": local.dt.hour, "result": frame["result"].astype(float)}
            )
            .groupby(["day", "hour"])["result"]
            .sum(min_count=1)
        )
    # a class missing in an hour makes the hour missing (never a partial sum)
    table = pd.concat(per_stream, axis=1).sum(axis=1, min_count=len(per_stream)).unstack("hour")
    table = table.reindex(columns=range(HOURS))
    days = sorted(table.index)
    if not days:
        return np.full(HOURS, np.nan), None, ["no observations"]
    if day is not None:
        if day not in table.index:
            return np.full(HOURS, np.nan), None, [f"no counts on {day.isoformat()}"]
        return table.loc[day].to_numpy(dtype=float), day, []
    copies = [
        later
        for earlier, later in pairwise(days)
        if (table.loc[later].fillna(0) != 0).any() and table.loc[later].equals(table.loc[earlier])
    ]
    notes = [f"{d.isoformat()} repeats the day before it hour by hour: not used" for d in copies]
    candidates = [d for d in days if d not in copies] or days
    counted = table.notna().sum(axis=1)
    chosen = max(candidates, key=lambda d: (int(counted[d]), d))
    return table.loc[chosen].to_numpy(dtype=float), chosen, notes


def _site_row(
    site: str,
    point: str,
    direction: str,
    props: Mapping[str, Any],
    counts: np.ndarray,
    day: date | None,
    capacity: Mapping[str, float],
    settings: CalibrationSettings,
    window: set[int],
) -> dict[str, Any]:
    edge_ids = [str(e) for e in props.get("edge_ids") or []]
    excluded: list[str] = []
    warnings: list[str] = []
    notes = [str(n) for n in props.get("match_notes") or []]
    if not edge_ids:
        excluded.append("no edge: " + ("; ".join(notes) or "not matched"))
    elif len(edge_ids) > 1:
        excluded.append("a count without a direction spans two edges: not comparable with one directed edge")
    edge = edge_ids[0] if len(edge_ids) == 1 else None
    if edge is not None and edge not in capacity:
        excluded.append(f"edge {edge} is not in the network")
    if props.get("ambiguous") and edge is not None:
        (warnings if settings.use_ambiguous else excluded).append("ambiguous match: " + "; ".join(notes))
    peak = float(np.nanmax(counts)) if np.isfinite(counts).any() else float("nan")
    limit = capacity.get(edge or "", float("nan"))
    if np.isfinite(peak) and np.isfinite(limit) and peak > settings.capacity_factor * limit:
        excluded.append(f"busiest hour {peak:.0f} veh/h above the edge's capacity {limit:.0f} veh/h")
    missing = sorted(h for h in window if not np.isfinite(counts[h]))
    if missing:
        excluded.append("missing hours " + ", ".join(f"{h:02d}:00" for h in missing))
    if np.isfinite(counts).any() and np.nansum(counts) == 0:
        excluded.append("counted no vehicle at all (a silent counter)")
    return {
        "site": site,
        "point": point,
        "direction": direction,
        "edge_id": edge,
        "street": props.get("matched_street"),
        "heading": props.get("heading"),
        "distance_m": props.get("match_distance_m"),
        "day": None if day is None else day.isoformat(),
        "peak_vph": peak,
        "capacity_vph": limit,
        "missing_hours": int((~np.isfinite(counts)).sum()),
        "status": "excluded" if excluded else "used",
        "reasons": [*excluded, *warnings],
    }
