"""LoD1 buildings: a height for every footprint, a use class, and floor areas.

Height comes from the ``height`` tag, else ``building:levels`` × storey height, else a documented
default number of storeys per building type (docs/methods-population.md). Every building records
which of the three it used, so the quality report can say how much of the 3D city is estimated.
"""

from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pandas as pd

from civictwin.config import BuildingsSection

# Default storeys per OSM building value where no height or levels are tagged. Chosen from common
# European urban stock: detached houses 2, apartment blocks 5, sheds and garages 1.
DEFAULT_LEVELS: dict[str, int] = {
    "apartments": 5, "residential": 4, "dormitory": 4, "house": 2, "detached": 2,
    "semidetached_house": 2, "terrace": 2, "bungalow": 1, "cabin": 1, "farm": 2,
    "commercial": 3, "retail": 2, "office": 5, "hotel": 5, "supermarket": 1, "kiosk": 1,
    "industrial": 2, "warehouse": 1, "manufacture": 2, "service": 1, "garage": 1, "garages": 1,
    "carport": 1, "parking": 3, "shed": 1, "hut": 1, "roof": 1, "greenhouse": 1,
    "church": 3, "cathedral": 4, "chapel": 1, "mosque": 2, "synagogue": 2, "temple": 2,
    "school": 3, "university": 4, "college": 4, "kindergarten": 2, "hospital": 5,
    "public": 4, "civic": 4, "government": 4, "train_station": 2, "transportation": 2,
    "stadium": 3, "sports_hall": 2, "museum": 4, "theatre": 4, "library": 3, "fire_station": 2,
    "barn": 1, "stable": 1, "farm_auxiliary": 1, "construction": 3, "yes": 4,
}  # fmt: skip
FALLBACK_LEVELS = 3

USE_CLASSES: dict[str, tuple[str, ...]] = {
    "residential": ("apartments", "residential", "house", "detached", "semidetached_house", "terrace",
                    "dormitory", "bungalow", "cabin", "farm", "houseboat", "static_caravan"),
    "commercial": ("commercial", "retail", "office", "hotel", "supermarket", "kiosk"),
    "industrial": ("industrial", "warehouse", "manufacture", "factory"),
    "public": ("public", "civic", "government", "school", "university", "college", "kindergarten",
               "hospital", "museum", "theatre", "library", "fire_station", "stadium", "sports_hall",
               "townhall", "police"),
    "religious": ("church", "cathedral", "chapel", "mosque", "synagogue", "temple", "shrine", "religious"),
    "transport": ("train_station", "transportation", "parking", "hangar"),
    "ancillary": ("garage", "garages", "carport", "shed", "hut", "roof", "greenhouse", "service"),
    "agricultural": ("barn", "stable", "farm_auxiliary", "cowshed", "sty"),
}  # fmt: skip
_USE_OF = {value: use for use, values in USE_CLASSES.items() for value in values}

_NUMBER = re.compile(r"^\s*(\d+(?:[.,]\d+)?)\s*(m|meters?|metres?|ft|feet|')?\s*$", re.IGNORECASE)
_FEET = 0.3048


def parse_height(value: object) -> float | None:
    """Metres from an OSM ``height`` value ("12", "12.5 m", "40 ft"); None when unusable."""
    if not isinstance(value, str):
        return None
    match = _NUMBER.match(value)
    if not match:
        return None
    number = float(match.group(1).replace(",", "."))
    unit = (match.group(2) or "m").lower()
    metres = number * _FEET if unit in ("ft", "feet", "'") else number
    return metres if 0 < metres < 1000 else None


def parse_levels(value: object) -> float | None:
    """Storeys from an OSM ``building:levels`` value ("5", "3.5"); None when unusable."""
    if not isinstance(value, str):
        return None
    try:
        levels = float(value.strip().replace(",", "."))
    except ValueError:
        return None
    return levels if 0 < levels < 200 else None


def use_class(building: str | None) -> str:
    """The use class of an OSM ``building`` value (``unknown`` for ``yes`` and unlisted values)."""
    return _USE_OF.get(building or "", "unknown")


def lod1_buildings(buildings: gpd.GeoDataFrame, settings: BuildingsSection) -> gpd.GeoDataFrame:
    """Buildings with ``use``, ``levels``, ``height_m``, ``height_source`` and ``floor_area_m2``."""
    defaults = {**DEFAULT_LEVELS, **settings.default_levels}
    storey = settings.storey_height_m
    tagged_height = buildings["height_tag"].map(parse_height).astype("float64")
    tagged_levels = buildings["levels_tag"].map(parse_levels).astype("float64")
    default_levels = buildings["building"].map(lambda b: defaults.get(b, FALLBACK_LEVELS)).astype("float64")

    height_source = np.select(
        [tagged_height.notna().to_numpy(), tagged_levels.notna().to_numpy()], ["height", "levels"], "default"
    )
    levels = tagged_levels.fillna((tagged_height / storey).round().clip(lower=1)).fillna(default_levels)
    height = tagged_height.fillna(levels * storey)

    out = buildings.drop(columns=["height_tag", "levels_tag"]).copy()
    out["use"] = buildings["building"].map(use_class)
    out["levels"] = levels
    out["height_m"] = height.round(2)
    out["height_source"] = pd.Series(height_source, index=buildings.index)
    out["footprint_m2"] = out.geometry.area.round(2)
    out["floor_area_m2"] = (out["footprint_m2"] * levels).round(2)
    return out
