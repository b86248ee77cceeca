"""Phone-based mobility re-aggregated from the provider's zoning onto the twin's analysis zones.

Areal weighting: a provider zone ``a`` gives twin zone ``i`` the share ``w_ai = area(a ∩ i) / area(a)``
of its counts. An OD cell ``T_ab`` becomes ``T_ab · w_ai · w_bj`` for every twin pair ``(i, j)``; a
presence count ``P_a`` becomes ``P_a · w_ai``. The share of a provider zone outside every twin zone
(``1 - Σ_i w_ai``) is the pseudo-zone :data:`OUTSIDE` for OD trips (trips with one end outside the
area are kept as such; trips with both ends outside are left out); presence outside is left out. The
method and its assumption (trips spread evenly over a provider zone's area) are in
docs/methods-mobility.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import pandas as pd

OUTSIDE = "outside"
"""The pseudo-zone of OD trips with one end beyond the twin's zones."""


@dataclass(frozen=True)
class Reaggregated:
    """Counts on the twin's zones, with the share of the input that reached them."""

    frame: pd.DataFrame
    value_in: float
    value_out: float
    """Counts with every end in a twin zone."""
    value_one_end_outside: float = 0.0
    """OD trips with one end in the pseudo-zone :data:`OUTSIDE`."""

    @property
    def share_kept(self) -> float:
        """Share (0..1) of the provider's counts that lie within the twin's zones."""
        return self.value_out / self.value_in if self.value_in > 0 else 1.0


def areal_weights(provider: gpd.GeoDataFrame, zones: gpd.GeoDataFrame) -> pd.DataFrame:
    """``provider``, ``zone_id``, ``weight``: the share of each provider zone's area in each twin zone.

    Both frames carry ``zone_id`` and polygons in the same metric CRS; provider zones of no area get
    no weight.
    """
    pieces = gpd.overlay(
        provider[["zone_id", "geometry"]].rename(columns={"zone_id": "provider"}),
        zones[["zone_id", "geometry"]],
        how="intersection",
        keep_geom_type=True,
    )
    whole = provider.set_index("zone_id").geometry.area
    weight = pieces.geometry.area.to_numpy() / whole.reindex(pieces["provider"]).to_numpy()
    frame = pd.DataFrame(
        {
            "provider": pieces["provider"].astype(str),
            "zone_id": pieces["zone_id"].astype(str),
            "weight": weight,
        }
    )
    return frame[frame["weight"] > 0].reset_index(drop=True)


def reaggregate_od(od: pd.DataFrame, weights: pd.DataFrame) -> Reaggregated:
    """``origin``, ``destination``, ``hour``, ``trips`` on the twin's zones (see the module docstring)."""
    weights = with_outside(weights, pd.concat([od["origin"], od["destination"]]).astype(str).unique())
    origins = weights.rename(columns={"provider": "origin", "zone_id": "o", "weight": "wo"})
    destinations = weights.rename(columns={"provider": "destination", "zone_id": "d", "weight": "wd"})
    spread = od.merge(origins, on="origin").merge(destinations, on="destination")
    spread["trips"] = spread["trips"] * spread["wo"] * spread["wd"]
    frame = (
        spread.groupby(["o", "d", "hour"], dropna=False)["trips"]
        .sum()
        .reset_index()
        .rename(columns={"o": "origin", "d": "destination"})
    )
    frame = frame[(frame["origin"] != OUTSIDE) | (frame["destination"] != OUTSIDE)].reset_index(drop=True)
    one_end = (frame["origin"] == OUTSIDE) | (frame["destination"] == OUTSIDE)
    within = float(frame.loc[~one_end, "trips"].sum())
    return Reaggregated(frame, float(od["trips"].sum()), within, float(frame.loc[one_end, "trips"].sum()))


def with_outside(weights: pd.DataFrame, providers: Sequence[str]) -> pd.DataFrame:
    """``weights`` plus, per provider zone, the share of its area outside the twin as :data:`OUTSIDE`."""
    covered = weights.groupby("provider")["weight"].sum().reindex(list(providers), fill_value=0.0)
    remainder = (1.0 - covered).clip(lower=0.0)
    remainder = remainder[remainder > 1e-9]
    outside = pd.DataFrame({"provider": remainder.index, "zone_id": OUTSIDE, "weight": remainder.to_numpy()})
    return pd.concat([weights, outside], ignore_index=True)


def reaggregate_presence(presence: pd.DataFrame, weights: pd.DataFrame) -> Reaggregated:
    """``zone_id``, ``hour``, ``count`` on the twin's zones (see the module docstring)."""
    spread = presence.rename(columns={"zone_id": "provider"}).merge(weights, on="provider")
    spread["count"] = spread["count"] * spread["weight"]
    frame = spread.groupby(["zone_id", "hour"], dropna=False)["count"].sum().reset_index()
    return Reaggregated(frame, float(presence["count"].sum()), float(frame["count"].sum()))


@dataclass(frozen=True)
class Presence:
    """The most people the phone presence counts in all of the twin's zones together in one of the
    asked clock hours, and that hour (None: a count without hours)."""

    people: float
    hour: int | None


def peak_presence(presence: pd.DataFrame | None, clock_hours: Sequence[int]) -> Presence | None:
    """The largest sum over the zones of ``presence`` (``zone_id``, ``hour``, ``count``) among
    ``clock_hours``; a table without hours gives its whole sum. None when the table is absent or
    empty, or has hours but none of ``clock_hours`` (no statement about those hours)."""
    if presence is None or presence.empty:
        return None
    hours = pd.to_numeric(presence["hour"], errors="coerce")
    if hours.isna().all():
        return Presence(float(presence["count"].sum()), None)
    by_hour = presence.groupby(hours)["count"].sum()
    wanted = by_hour[by_hour.index.isin(list(clock_hours))]
    if wanted.empty:
        return None
    busiest = wanted.index[int(wanted.to_numpy().argmax())]
    return Presence(float(wanted.loc[busiest]), int(busiest))
