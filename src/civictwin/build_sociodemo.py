"""The build's socio-demographic step: the ``[sociodemographics]`` source's numeric columns on the zones.

Each column becomes the zones' column ``<source>_<column>`` (counts split, averages and rates
weight-averaged: :mod:`civictwin.model.sociodemo`), with ``<source>_coverage`` (share of the zone's
area the source covers) and, when ``car_availability`` names a column, ``car_availability`` (share of
residents with a car, 0–1) that the traffic mode choice reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import pandas as pd

from civictwin.config import SociodemographicsSection
from civictwin.errors import SourceError
from civictwin.model.sociodemo import COVERAGE, interpolate
from civictwin.store.base import Store

CAR_AVAILABILITY = "car_availability"
"""Zones' column: share (0–1) of residents with a car available (from ``car_availability``)."""


@dataclass(frozen=True)
class ZoneSociodemographics:
    """The zones with the source's columns added, and what the zones' records should say about them."""

    zones: gpd.GeoDataFrame
    inputs: list[str]
    quality: dict[str, object]
    notes: list[str]


def sociodemographics_on_zones(
    store: Store, section: SociodemographicsSection, zones: gpd.GeoDataFrame
) -> ZoneSociodemographics:
    """``zones`` with the columns of ``section.source`` interpolated onto them (see the module docstring)."""
    source = store.read_frame(section.source)
    numeric = [
        str(c) for c in source.columns
        if c != source.geometry.name and pd.api.types.is_numeric_dtype(source[c])
        and not pd.api.types.is_bool_dtype(source[c])
    ]  # fmt: skip
    counts = [c for c in numeric if c not in section.intensive]
    for field, names in (("equity_by", section.equity_by), ("intensive", section.intensive)):
        unknown = [n for n in names if n not in numeric]
        if unknown:
            raise SourceError(f"{field} names '{unknown[0]}', which is not a numeric column of the source; "
                              f"numeric columns: {', '.join(numeric) or '(none)'}", path=section.source,
                              field=f"sociodemographics.{field}")  # fmt: skip
    residents = None
    inputs = [section.source]
    if section.weighting == "residents" and store.has_table("buildings_3d"):
        residents = store.read_frame("buildings_3d", columns=["population_est", "geometry"])
        inputs.append("buildings_3d")
    result = interpolate(
        zones, source, counts=counts, intensive=section.intensive, weighting=section.weighting,
        residents=residents, name=section.source,
    )  # fmt: skip
    out = zones.copy()
    for column in [*counts, *section.intensive, COVERAGE]:
        out[f"{section.source}_{column}"] = result.values[column].round(4).to_numpy()
    if section.car_availability is not None:
        out[CAR_AVAILABILITY] = result.values[section.car_availability].clip(0.0, 1.0).to_numpy()
    return ZoneSociodemographics(zones=out, inputs=inputs, quality=result.quality(), notes=result.notes())
