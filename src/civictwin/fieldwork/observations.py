"""One observation from the field, checked: its place, its category and its text.

Shared by the survey import (every answer of an ODK or KoboToolbox export) and any form that takes
observations from people (the viewer's survey form): :func:`parse_geopoint` reads an ODK geopoint
(``"lat lon [altitude [accuracy]]"``), :func:`check_coordinate` a latitude or longitude, and
:func:`validate_observation` a whole observation. Text is kept as text: control characters go,
nothing is HTML-escaped here, because escaping belongs to whatever renders it (the API's HTML pages
autoescape; JSON is not HTML).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from civictwin.errors import UploadError

MAX_TEXT_CHARS = 2000
"""Longest free-text answer kept (characters)."""

Axis = Literal["latitude", "longitude"]
_LIMITS: dict[Axis, float] = {"latitude": 90.0, "longitude": 180.0}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class GeoPoint:
    """A place in WGS84: degrees, and the altitude (m) and horizontal accuracy (m) when given."""

    lat: float
    lon: float
    altitude_m: float | None = None
    accuracy_m: float | None = None


@dataclass(frozen=True)
class Observation:
    """A checked observation: category, clean text, WGS84 place."""

    category: str
    text: str
    place: GeoPoint


def check_coordinate(value: str | float, *, axis: Axis, label: str) -> float:
    """``value`` as a finite latitude (−90..90) or longitude (−180..180) in degrees, else one-line error."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    limit = _LIMITS[axis]
    if not (math.isfinite(number) and -limit <= number <= limit):
        raise UploadError(f"{str(value)!r} is not a {axis} (−{limit:g} to {limit:g} degrees)", path=label)
    return number


def optional_metres(value: str | float | None, *, what: str, label: str) -> float | None:
    """An altitude or accuracy in metres, None when empty; a non-number is an error."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise UploadError(f"{str(value)!r} is not {what} in metres", path=label)
    return number


def parse_geopoint(text: str, *, label: str) -> GeoPoint | None:
    """An ODK geopoint answer (``"60.1699 24.9384 12.5 4.0"``: lat, lon, altitude, accuracy); None if empty."""
    parts = text.split()
    if not parts:
        return None
    if len(parts) not in (2, 3, 4):
        raise UploadError(f"{text!r} is not a geopoint ('lat lon [altitude [accuracy]]')", path=label)
    lat = check_coordinate(parts[0], axis="latitude", label=label)
    lon = check_coordinate(parts[1], axis="longitude", label=label)
    altitude = optional_metres(parts[2] if len(parts) > 2 else None, what="an altitude", label=label)
    accuracy = optional_metres(parts[3] if len(parts) > 3 else None, what="an accuracy", label=label)
    return GeoPoint(lat, lon, altitude, accuracy)


def clean_text(text: str, *, label: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    """Free text normalised (Unicode NFC), control and bidi-override characters removed, length checked.

    Markup is left as typed: ``<script>`` stays the text ``<script>``, shown escaped by every renderer.
    """
    cleaned = _CONTROL.sub("", unicodedata.normalize("NFC", text)).strip()
    if len(cleaned) > max_chars:
        raise UploadError(f"{len(cleaned)} characters; at most {max_chars} are kept", path=label)
    return cleaned


def validate_observation(
    *,
    category: str,
    text: str,
    lat: str | float,
    lon: str | float,
    categories: Collection[str],
    area_wgs84: BaseGeometry | None = None,
    label: str = "observation",
) -> Observation:
    """An observation from a form, checked: a known category, clean text, a place inside the area.

    ``area_wgs84`` is the twin's area of interest (WGS84); a place outside it is refused. Raises
    :class:`UploadError` naming the field.
    """
    if category not in categories:
        known = ", ".join(sorted(categories)) or "(none configured)"
        raise UploadError(
            f"unknown category {category!r}; expected one of {known}", path=label, field="category"
        )
    place = GeoPoint(
        lat=check_coordinate(lat, axis="latitude", label=f"{label}: lat"),
        lon=check_coordinate(lon, axis="longitude", label=f"{label}: lon"),
    )
    if area_wgs84 is not None and not area_wgs84.intersects(Point(place.lon, place.lat)):
        raise UploadError(
            f"({place.lat}, {place.lon}) lies outside the twin's area", path=label, field="place"
        )
    return Observation(category=category, text=clean_text(text, label=f"{label}: text"), place=place)
