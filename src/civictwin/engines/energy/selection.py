"""Selections of buildings for the energy interventions: by zone, polygon, use class and period.

The same fields and rules as the shared building selection the engine seam adds to ``scenarios/``
(engineer "seam", not yet merged): every criterion given must hold, at least one is needed, buildings
without a known construction year never match a period, and a selection that matches no building is
an error, never a silent no-op. When the seam lands this module gives way to the shared one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import geopandas as gpd
import numpy as np
import shapely
from pydantic import BaseModel, ConfigDict, Field, model_validator

from civictwin.errors import ScenarioError
from civictwin.scenarios.selection import load_polygon


class BuildingSelection(BaseModel):
    """Which buildings an intervention touches (all criteria given must hold).

    ``zones``: analysis zone ids; ``polygon``: WKT in WGS84 or a vector file relative to the scenario
    (a building is inside when its footprint's representative point is); ``uses``: use classes
    (``residential``, ``commercial``, ...); ``built_from``/``built_to``: construction years, inclusive.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    zones: list[Annotated[str, Field(min_length=1)]] | None = None
    polygon: Annotated[str, Field(min_length=1)] | None = None
    uses: list[Annotated[str, Field(min_length=1)]] | None = None
    built_from: Annotated[int, Field(ge=0, le=2200)] | None = None
    built_to: Annotated[int, Field(ge=0, le=2200)] | None = None

    @model_validator(mode="after")
    def _period_in_order(self) -> BuildingSelection:
        criteria = (self.zones, self.polygon, self.uses, self.built_from, self.built_to)
        if all(c is None or c == [] for c in criteria):
            raise ValueError(
                "select buildings with at least one of zones, polygon, uses, built_from or built_to"
            )
        if self.built_from is not None and self.built_to is not None and self.built_to < self.built_from:
            raise ValueError("built_to must not be before built_from")
        return self

    def describe(self) -> str:
        """A short human description, e.g. ``zones 89112...; uses residential; built 1900–1960``."""
        parts = []
        if self.zones:
            parts.append("zones " + ", ".join(self.zones))
        if self.polygon:
            parts.append("inside a polygon")
        if self.uses:
            parts.append("uses " + ", ".join(self.uses))
        if self.built_from is not None or self.built_to is not None:
            low = "" if self.built_from is None else str(self.built_from)
            high = "" if self.built_to is None else str(self.built_to)
            parts.append(f"built {low}–{high}")
        return "; ".join(parts)


def select_buildings(
    buildings: gpd.GeoDataFrame, selection: BuildingSelection, *, crs: str, base_dir: Path
) -> np.ndarray:
    """A boolean mask over ``buildings`` (columns ``zone_id``, ``use``, ``construction_year`` (NaN when
    unknown) and footprints).

    Raises :class:`ScenarioError` (``field`` = the key) for zone ids or use classes the twin does not
    have, and when the selection as a whole matches no building.
    """
    mask = np.ones(len(buildings), dtype=bool)
    if selection.zones:
        mask &= _match(buildings["zone_id"].astype(str).to_numpy(), selection.zones, key="zones", what="zone")
    if selection.uses:
        mask &= _match(buildings["use"].astype(str).to_numpy(), selection.uses, key="uses", what="use class")
    years = buildings["construction_year"].to_numpy(dtype=float)
    if selection.built_from is not None:
        mask &= years >= selection.built_from
    if selection.built_to is not None:
        mask &= years <= selection.built_to
    if selection.polygon:
        area = load_polygon(selection.polygon, crs=crs, base_dir=base_dir)
        shapely.prepare(area)
        points = shapely.point_on_surface(buildings.geometry.to_numpy())
        mask &= shapely.contains(area, points) | shapely.touches(area, points)
    if not mask.any():
        raise ScenarioError(f"selects no building ({selection.describe()})")
    return mask


def _match(values: np.ndarray, wanted: list[str], *, key: str, what: str) -> np.ndarray:
    present = set(values.tolist())
    missing = [w for w in wanted if w not in present]
    if missing:
        raise ScenarioError(f"no {what} {', '.join(map(repr, missing))} among the buildings", field=key)
    matched: np.ndarray = np.isin(values, wanted)
    return matched
