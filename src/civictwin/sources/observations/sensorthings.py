"""Observations from an OGC SensorThings API v1.1 server, or from one document such a server returned.

With ``url`` (the service root, e.g. ``https://example.org/FROST-Server/v1.1``) the reader asks for
``Datastreams?$expand=Thing($expand=Locations),Sensor,ObservedProperty`` and then each datastream's
``Observations`` ordered by phenomenon time, following ``@iot.nextLink`` page after page until the
server has no more, with the credentials named by ``token_env`` or ``username_env``/``password_env``
(taken from the environment, :mod:`civictwin.sources.remote`). With ``path`` it reads one saved document of that shape (Datastreams with their
Thing, Locations, Sensor, ObservedProperty and inline Observations); a saved page that still has an
``@iot.nextLink`` is refused, since following it needs the server.

Units: the datastream's ``unitOfMeasurement`` must name a UCUM code, as ``definition = "ucum:<code>"``
(what civictwin's own API serves), as a symbol that is a UCUM code, or as one of a few common
symbols mapped here (``°C`` → ``Cel``, ``µg/m³`` → ``ug/m3``); a datastream with another unit is
skipped and named in the notes rather than stored with a unit nobody can convert.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from civictwin.config import SensorSourceConfig
from civictwin.errors import SourceError, StoreError
from civictwin.sources.observations.feed import FEED_COLUMNS, ObservationFeed
from civictwin.sources.remote import Page, follow_pages, open_client
from civictwin.store.observations import (
    OM_MEASUREMENT,
    DatastreamSpec,
    LocationSpec,
    ObservedPropertySpec,
    Quality,
    SensorSpec,
    ThingSpec,
    Unit,
    check_ucum,
    to_ms,
)

PAGE_SIZE = 1000
_SYMBOLS = {"°C": "Cel", "µg/m³": "ug/m3", "μg/m³": "ug/m3", "mg/m³": "mg/m3", "W/m²": "W/m2", "ppm": "[ppm]"}
_QUALITY = {"missing": Quality.MISSING, "suspect": Quality.SUSPECT}
_DATASTREAMS = "Datastreams?$expand=Thing($expand=Locations),Sensor,ObservedProperty&$top=100"
_OBSERVATIONS = "Observations?$orderby=phenomenonTime%20asc&$top=" + str(PAGE_SIZE)


def read_sensorthings(
    source: SensorSourceConfig, origin: Path | str, area: BaseGeometry | None
) -> ObservationFeed:
    """Read every datastream (with its observations) of a server or a saved document."""
    feed = ObservationFeed(source=source, origin=origin, datastreams=[], observations=pd.DataFrame())
    frames = []
    for datastream, observations in _documents(source, origin):
        spec = _datastream(source, datastream, feed)
        if spec is None:
            continue
        location = spec.thing.location
        if area is not None and not area.intersects(shapely.Point(location.lon, location.lat)):
            continue
        feed.datastreams.append(spec)
        frames.append(_rows(spec.key, observations, feed))
    feed.observations = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=FEED_COLUMNS)
    return feed


def _documents(
    source: SensorSourceConfig, origin: Path | str
) -> Iterator[tuple[Mapping[str, Any], Iterator[Mapping[str, Any]]]]:
    """(datastream, its observations) from the server or the saved document."""
    if isinstance(origin, Path):
        document = _load(origin)
        for datastream in _values(document, origin):
            if "Observations@iot.nextLink" in datastream or "@iot.nextLink" in document:
                raise SourceError(
                    "a paged response (it has an @iot.nextLink): import it from the server with `url` instead",
                    path=origin,
                )
            yield datastream, iter(datastream.get("Observations", []))
        return
    root = origin.rstrip("/")
    with open_client(source, accept="application/json") as client:
        for datastream in list(_pages(client, f"{root}/{_DATASTREAMS}")):
            link = datastream.get("@iot.selfLink") or f"{root}/Datastreams({datastream.get('@iot.id')})"
            yield datastream, _pages(client, f"{link}/{_OBSERVATIONS}")


def _pages(client: httpx.Client, url: str) -> Iterator[Mapping[str, Any]]:
    """The entities of a collection, page after page along ``@iot.nextLink``."""
    documents: dict[int, Any] = {}

    def next_link(page: Page) -> str | None:
        link = documents.pop(page.number).get("@iot.nextLink")
        return str(link) if link else None

    for page in follow_pages(client, url, next_link, label="SensorThings server"):
        try:
            documents[page.number] = json.loads(page.body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SourceError(
                f"SensorThings server: page {page.number}: not valid JSON: {exc}", path=page.url
            ) from None
        yield from _values(documents[page.number], page.url)


def _load(path: Path) -> Mapping[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SourceError("file not found", path=path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"not a SensorThings JSON document: {exc}", path=path) from None
    if not isinstance(document, dict):
        raise SourceError("expected a SensorThings collection object with a 'value' list", path=path)
    return document


def _values(page: Any, where: Path | str) -> list[Mapping[str, Any]]:
    values = page.get("value") if isinstance(page, dict) else None
    if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
        raise SourceError("expected a SensorThings collection with a 'value' list of entities", path=where)
    return values


def _datastream(
    source: SensorSourceConfig, raw: Mapping[str, Any], feed: ObservationFeed
) -> DatastreamSpec | None:
    name = str(raw.get("name") or raw.get("@iot.id"))
    unit = _unit(raw.get("unitOfMeasurement") or {})
    thing = raw.get("Thing") or {}
    location = point_location(thing.get("Locations") or [])
    sensor, prop = raw.get("Sensor") or {}, raw.get("ObservedProperty") or {}
    problem = (
        "its unit is not a UCUM code"
        if unit is None
        else "its Thing has no point Location"
        if location is None
        else "it lacks its Sensor or ObservedProperty"
        if not sensor or not prop
        else None
    )
    if problem or unit is None or location is None:
        feed.notes.append(f"datastream {name!r} skipped: {problem}")
        return None
    prefix = source.name
    thing_key = f"{prefix}/thing/{thing.get('@iot.id', name)}"
    return DatastreamSpec(
        key=f"{prefix}/datastream/{raw.get('@iot.id', name)}",
        name=name,
        description=str(raw.get("description") or ""),
        dataset=source.name,
        thing=ThingSpec(
            key=thing_key,
            name=str(thing.get("name") or thing_key),
            description=str(thing.get("description") or ""),
            location=LocationSpec(
                key=f"{thing_key}/location", name=location[2], lon=location[0], lat=location[1]
            ),
            properties=thing.get("properties") or {},
        ),
        sensor=SensorSpec(
            key=f"{prefix}/sensor/{sensor.get('@iot.id', sensor.get('name'))}",
            name=str(sensor.get("name")),
            description=str(sensor.get("description") or ""),
            encoding_type=str(sensor.get("encodingType") or "text/plain"),
            metadata=str(sensor.get("metadata") or ""),
        ),
        observed_property=ObservedPropertySpec(
            key=f"{prefix}/property/{prop.get('@iot.id', prop.get('name'))}",
            name=str(prop.get("name")),
            definition=str(prop.get("definition") or prop.get("name")),
            description=str(prop.get("description") or ""),
        ),
        unit=unit,
        observation_type=str(raw.get("observationType") or OM_MEASUREMENT),
        properties={"server_id": raw.get("@iot.id"), **(raw.get("properties") or {})},
    )


def _unit(raw: Mapping[str, Any]) -> Unit | None:
    definition, symbol = str(raw.get("definition") or ""), str(raw.get("symbol") or "")
    candidates = [definition.removeprefix("ucum:")] if definition.startswith("ucum:") else []
    candidates += [symbol, _SYMBOLS.get(symbol, "")]
    for code in candidates:
        try:
            return Unit(code=check_ucum(code), name=str(raw.get("name") or code), symbol=symbol or code)
        except StoreError:
            continue
    return None


def point_location(locations: list[Any]) -> tuple[float, float, str] | None:
    """(lon, lat, name) of the first point Location (GeoJSON geometry or Feature)."""
    for entry in locations:
        if not isinstance(entry, dict):
            continue
        geometry = entry.get("location") or {}
        if isinstance(geometry, dict) and geometry.get("type") == "Feature":
            geometry = geometry.get("geometry") or {}
        coordinates = geometry.get("coordinates") if isinstance(geometry, dict) else None
        if geometry.get("type") == "Point" and isinstance(coordinates, list) and len(coordinates) >= 2:
            return float(coordinates[0]), float(coordinates[1]), str(entry.get("name") or "")
    return None


def _rows(key: str, observations: Iterator[Mapping[str, Any]], feed: ObservationFeed) -> pd.DataFrame:
    starts, ends, results, flags = [], [], [], []
    for raw in observations:
        times = _interval(raw.get("phenomenonTime"))
        value = raw.get("result")
        if times is None:
            feed.reject(key, "unparseable phenomenonTime")
            continue
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            feed.reject(key, "result is not a number")
            continue
        starts.append(times[0])
        ends.append(times[1])
        results.append(np.nan if value is None else float(value))
        flag = _QUALITY.get(str(raw.get("resultQuality") or "").lower(), Quality.GOOD)
        flags.append(Quality.MISSING if value is None else flag)
    return pd.DataFrame(
        {
            "datastream": key,
            "phenomenon_time": np.array(starts, np.int64),
            "phenomenon_end": np.array(ends, np.int64),
            "result": np.array(results, np.float64),
            "quality": np.array(flags, np.int8),
        }
    )


def _interval(value: Any) -> tuple[int, int] | None:
    """(start, end) in ms of an ISO 8601 instant (end -1) or ``start/end`` interval; None if unreadable."""
    if not isinstance(value, str):
        return None
    try:
        if "/" in value:
            start, end = value.split("/", 1)
            return to_ms(start), to_ms(end)
        return to_ms(value), -1
    except (ValueError, StoreError):
        return None
