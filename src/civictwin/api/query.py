"""Query-string rules shared by the routers: unknown or repeated parameters, bbox, datetime, format.

OGC API – Features asks for 400 on unknown parameters (/req/core/query-param-unknown) and on
malformed values (/req/core/query-param-invalid); every parser here raises a 400 problem naming the
parameter and what was wrong.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from fastapi import Request

from civictwin.api.problems import bad_request
from civictwin.store.base import Bounds
from civictwin.store.features import TimeInterval

_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class Format(StrEnum):
    """Encodings offered through ``f``."""

    JSON = "json"
    HTML = "html"


def check_params(request: Request, allowed: Collection[str]) -> None:
    """400 when the query holds a parameter not in ``allowed``, or one parameter twice."""
    seen: set[str] = set()
    for key, _ in request.query_params.multi_items():
        if key not in allowed:
            names = ", ".join(sorted(allowed)) or "none"
            raise bad_request(f"unknown query parameter '{key}' (allowed here: {names})")
        if key in seen:
            raise bad_request(f"query parameter '{key}' given more than once")
        seen.add(key)


def wants_html(request: Request, f: Format | None) -> bool:
    """Whether to answer in HTML: ``f`` decides; otherwise the Accept header, JSON by default."""
    if f is not None:
        return f is Format.HTML
    accept = request.headers.get("accept", "").lower()
    html = _position(accept, ("text/html",))
    json = _position(accept, ("application/json", "application/geo+json", "application/problem+json"))
    return html is not None and (json is None or html < json)


def _position(accept: str, types: tuple[str, ...]) -> int | None:
    found = [accept.find(t) for t in types if t in accept]
    return min(found) if found else None


def parse_bbox(raw: str) -> Bounds:
    """A WGS84 bbox from ``minLon,minLat,maxLon,maxLat`` (or 6 numbers with heights, ignored)."""
    parts = raw.split(",")
    if len(parts) not in (4, 6):
        raise bad_request(f"bbox: expected 4 or 6 comma-separated numbers, got {len(parts)}")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise bad_request(f"bbox: not a list of numbers: {raw!r}") from None
    if not all(math.isfinite(n) for n in numbers):
        raise bad_request("bbox: numbers must be finite")
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    min_lon, min_lat, max_lon, max_lat = numbers
    if not all(-180 <= lon <= 180 for lon in (min_lon, max_lon)):
        raise bad_request("bbox: longitudes must lie within [-180, 180]")
    if not all(-90 <= lat <= 90 for lat in (min_lat, max_lat)):
        raise bad_request("bbox: latitudes must lie within [-90, 90]")
    if min_lat > max_lat:
        raise bad_request("bbox: the southern latitude is greater than the northern one")
    return (min_lon, min_lat, max_lon, max_lat)


def parse_projected_bbox(raw: str) -> Bounds:
    """A bbox in a projected CRS, ``minX,minY,maxX,maxY`` (or 6 numbers with heights, ignored)."""
    parts = raw.split(",")
    if len(parts) not in (4, 6):
        raise bad_request(f"bbox: expected 4 or 6 comma-separated numbers, got {len(parts)}")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise bad_request(f"bbox: not a list of numbers: {raw!r}") from None
    if not all(math.isfinite(n) for n in numbers):
        raise bad_request("bbox: numbers must be finite")
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    min_x, min_y, max_x, max_y = numbers
    if min_x > max_x or min_y > max_y:
        raise bad_request("bbox: a minimum is greater than its maximum")
    return (min_x, min_y, max_x, max_y)


def parse_datetime(raw: str) -> TimeInterval:
    """An instant, a date, or an interval ``start/end`` with ``..`` or empty for an open end.

    A date stands for the whole day. Instants are RFC 3339 date-times; times are compared in UTC.
    """
    if "/" not in raw:
        return TimeInterval(*_bounds(raw, "datetime"))
    if raw.count("/") != 1:
        raise bad_request(f"datetime: an interval has exactly one '/': {raw!r}")
    first, second = raw.split("/")
    start: datetime | None
    end: datetime | None
    start = None if first in ("", "..") else _bounds(first, "datetime start")[0]
    end = None if second in ("", "..") else _bounds(second, "datetime end")[1]
    if start is not None and end is not None and start > end:
        raise bad_request("datetime: the interval ends before it starts")
    return TimeInterval(start, end)


def _bounds(text: str, what: str) -> tuple[datetime, datetime]:
    """The first and last instant (naive UTC) that ``text`` denotes."""
    try:
        if _DATE.match(text):
            day = date.fromisoformat(text)
            first = datetime.combine(day, time.min)
            return first, first + timedelta(days=1) - timedelta(microseconds=1)
        if _DATE_TIME.match(text):
            instant = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
            naive = instant.astimezone(UTC).replace(tzinfo=None)
            return naive, naive
    except (ValueError, OverflowError):
        pass
    raise bad_request(f"{what}: not an RFC 3339 date-time or date: {text!r}")
