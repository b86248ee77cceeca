"""OGC SensorThings API v1.1 (read side) over the twin's observations, under ``/sensorthings/v1.1``.

Resources: the service root; ``Things``, ``Locations``, ``Sensors``, ``ObservedProperties``,
``Datastreams``, ``Observations``, ``FeaturesOfInterest``; an entity ``Set(id)``; its navigation
properties ``Set(id)/Nav`` and properties ``Set(id)/name`` (``/$value`` for the bare value). Query
options ``$filter``, ``$orderby``, ``$top`` (default 100, at most 10,000), ``$skip``, ``$count``,
``$select``, ``$expand``; a page that is not the last has an ``@iot.nextLink``. The queries run in the
store (:mod:`civictwin.store.sensorthings`); this module parses the URL and writes the JSON.

Extension (not part of the standard): windowed aggregates, ``Datastreams(id)/Aggregates`` and
``Datastreams/Aggregates`` (every visible datastream, or ``ids=1,2``) with ``window`` (``hour`` or
``day``), ``statistics`` (``mean``, ``min``, ``max``, ``sum``, ``count``, percentiles ``p0``..``p100``;
default ``mean``), ``timezone`` (IANA, aligns days to local midnight; default ``UTC``) and ``start``/
``end`` (ISO 8601; default: the datastreams' whole extent).

Access: datastreams (and every entity) of a dataset the caller may not read do not exist: absent
from listings, expansions and counts, 404 when asked for by id, exactly as for the OGC API
collections. Every request is audited by the gate middleware.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Request, Response

from civictwin.api.context import get_twin
from civictwin.api.problems import bad_request, not_found
from civictwin.api.security import current_principal
from civictwin.errors import CivicTwinError
from civictwin.governance.access import access_levels, can_read
from civictwin.store.observations import (
    AggregateQuery,
    ObservationStore,
    Window,
    iso,
    open_observations,
    to_ms,
)
from civictwin.store.sensorthings import (
    ENTITY_SETS,
    Entity,
    Page,
    QueryError,
    QueryOptions,
    SensorThingsReader,
    parse_options,
)
from civictwin.store.sql_observations import SQLObservationStore

PREFIX = "/sensorthings/v1.1"
DEFAULT_TOP = 100
MAX_TOP = 10_000
MAX_AGGREGATE_ROWS = 200_000
QUERY_OPTIONS = frozenset({"$filter", "$orderby", "$top", "$skip", "$count", "$select", "$expand"})
AGGREGATE_OPTIONS = frozenset({"window", "statistics", "timezone", "start", "end", "ids"})
CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
]
_PATH = re.compile(r"^(?P<set>[A-Za-z]+)(?:\((?P<id>\d{1,18})\))?(?:/(?P<rest>.+))?$")
_lock = threading.Lock()

router = APIRouter(tags=["SensorThings API"])


@router.get(PREFIX, summary="SensorThings service root", response_model=None)
def service_root(request: Request) -> Response:
    """The entity sets and the conformance classes this service implements."""
    base = _base(request)
    body = {
        "value": [{"name": name, "url": f"{base}/{name}"} for name in ENTITY_SETS],
        "serverSettings": {"conformance": CONFORMANCE},
    }
    return _json(body)


ResourcePath = Annotated[
    str,
    Path(
        description="An entity set, `Set(id)`, `Set(id)/Navigation`, `Set(id)/property[/$value]`, or "
        "`Datastreams[(id)]/Aggregates`",
        pattern=r"^[A-Za-z]+(\(\d{1,18}\))?(/[A-Za-z$]+){0,2}/?$",
        max_length=200,
    ),
]


@router.get(PREFIX + "/{path:path}", summary="SensorThings resources", response_model=None)
def resource(request: Request, path: ResourcePath) -> Response:
    """Collections, entities, navigation, properties, and the aggregates extension."""
    match = _PATH.match(path.rstrip("/"))
    if match is None or match.group("set") not in ENTITY_SETS:
        raise not_found(f"no SensorThings resource {path!r}")
    set_name, raw_id, rest = match.group("set"), match.group("id"), match.group("rest")
    if rest == "Aggregates" and set_name == "Datastreams":
        return _aggregates(request, None if raw_id is None else int(raw_id))
    _check(request, QUERY_OPTIONS)
    reader = _reader(request)
    try:
        options = parse_options(dict(request.query_params), default_top=DEFAULT_TOP, max_top=MAX_TOP)
        if raw_id is None:
            if rest is not None:
                raise not_found(f"no SensorThings resource {path!r}")
            return _json(_collection(request, reader.collection(set_name, options), options))
        return _entity_resource(request, reader, set_name, int(raw_id), rest, options)
    except QueryError as exc:
        raise bad_request(exc.message) from None


def _entity_resource(
    request: Request, reader: SensorThingsReader, set_name: str, entity_id: int, rest: str | None,
    options: QueryOptions,
) -> Response:  # fmt: skip
    entity_set = ENTITY_SETS[set_name]
    if rest is None:
        entity = reader.entity(set_name, entity_id, options)
        if entity is None:
            raise not_found(f"no {entity_set.singular} {entity_id}")
        return _json(_render(request, entity, options))
    name, _, tail = rest.partition("/")
    if name in entity_set.navigation and not tail:
        related = reader.related(set_name, entity_id, name, options)
        if related is None:
            raise not_found(f"no {entity_set.singular} {entity_id}, or it has no {name}")
        if isinstance(related, Page):
            return _json(_collection(request, related, options))
        return _json(_render(request, related, options))
    entity = reader.entity(set_name, entity_id, QueryOptions(top=1))
    if entity is None or name not in entity.properties or tail not in ("", "$value"):
        raise not_found(f"no resource {rest!r} of {entity_set.singular} {entity_id}")
    value = entity.properties[name]
    if tail == "$value":
        return Response(
            content=value if isinstance(value, str) else json.dumps(value), media_type="text/plain"
        )
    return _json({name: value})


# ---------------------------------------------------------------- JSON


def _collection(request: Request, page: Page, options: QueryOptions) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if page.count is not None:
        body["@iot.count"] = page.count
    body["value"] = [_render(request, entity, options) for entity in page.entities]
    if page.more:
        query = dict(request.query_params)
        query.update({"$top": str(page.top), "$skip": str(page.skip + page.top)})
        body["@iot.nextLink"] = f"{_base(request)}/{request.path_params['path']}?{urlencode(query)}"
    return body


def _render(request: Request, entity: Entity, options: QueryOptions) -> dict[str, Any]:
    base = _base(request)
    self_link = f"{base}/{entity.set_name}({entity.id})"
    selected = set(options.select) if options.select is not None else None
    out: dict[str, Any] = {}
    if selected is None or selected & {"id", "@iot.id"}:
        out["@iot.id"] = entity.id
    if selected is None:
        out["@iot.selfLink"] = self_link
    for name, value in entity.properties.items():
        if selected is None or name in selected:
            out[name] = value
    expansions = {item.name: item.options for item in options.expand}
    for nav in ENTITY_SETS[entity.set_name].navigation:
        if nav in expansions:
            _expanded(request, out, nav, entity.expanded.get(nav), expansions[nav], self_link)
        elif selected is None or nav in selected:
            out[f"{nav}@iot.navigationLink"] = f"{self_link}/{nav}"
    return out


def _expanded(
    request: Request, out: dict[str, Any], nav: str, value: Page | Entity | None, options: QueryOptions,
    self_link: str,
) -> None:  # fmt: skip
    if isinstance(value, Page):
        if value.count is not None:
            out[f"{nav}@iot.count"] = value.count
        out[nav] = [_render(request, child, options) for child in value.entities]
        if value.more:
            query = {"$top": str(value.top), "$skip": str(value.skip + value.top)}
            for key, given in (("$filter", options.filter), ("$orderby", options.orderby)):
                if given:
                    query[key] = given
            out[f"{nav}@iot.nextLink"] = f"{self_link}/{nav}?{urlencode(query)}"
    else:
        out[nav] = None if value is None else _render(request, value, options)


def _json(body: dict[str, Any]) -> Response:
    return Response(
        content=json.dumps(body, ensure_ascii=False, separators=(",", ":")), media_type="application/json"
    )


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


def _check(request: Request, allowed: frozenset[str]) -> None:
    seen: set[str] = set()
    for key, _ in request.query_params.multi_items():
        if key not in allowed:
            raise bad_request(f"unknown query option '{key}' (allowed here: {', '.join(sorted(allowed))})")
        if key in seen:
            raise bad_request(f"query option '{key}' given more than once")
        seen.add(key)


# ---------------------------------------------------------------- store and access


def _store(request: Request) -> ObservationStore:
    """The twin's observation store, opened read-only once per server process."""
    location = get_twin(request).location
    with _lock:
        stores: dict[str, ObservationStore] | None = getattr(request.app.state, "observation_stores", None)
        if stores is None:
            stores = request.app.state.observation_stores = {}
        store = stores.get(location.describe())
        if store is None:
            store = stores[location.describe()] = open_observations(location, read_only=True)
    return store


def _reader(request: Request) -> SensorThingsReader:
    store = _store(request)
    assert isinstance(store, SQLObservationStore)
    datasets = store.datasets()
    levels = access_levels({name: {"access": spec.access} for name, spec in datasets.items()}, datasets)
    principal = current_principal(request)
    readable = [name for name, level in levels.items() if can_read(principal, name, level)]
    return SensorThingsReader(store, readable)


# ---------------------------------------------------------------- the aggregates extension


def _aggregates(request: Request, datastream_id: int | None) -> Response:
    _check(request, AGGREGATE_OPTIONS)
    params = request.query_params
    reader = _reader(request)
    wanted = [datastream_id] if datastream_id is not None else _ids(params.get("ids"))
    ids = reader.datastream_ids(wanted)
    if datastream_id is not None and not ids:
        raise not_found(f"no Datastream {datastream_id}")
    store = _store(request)
    try:
        window = Window(params.get("window", "day"))
    except ValueError:
        raise bad_request("window must be 'hour' or 'day'") from None
    statistics = tuple(s.strip() for s in params.get("statistics", "mean").split(",") if s.strip())
    timezone = params.get("timezone", "UTC")
    try:
        start, end = _extent(store, ids, params.get("start"), params.get("end"))
        rows = _count_windows(start, end, window) * len(ids)
        if rows > MAX_AGGREGATE_ROWS:
            raise bad_request(
                f"{rows:,} windows asked for (at most {MAX_AGGREGATE_ROWS:,}): narrow start/end or ids"
            )
        frame = (
            store.aggregate(AggregateQuery(tuple(ids), window, start, end, statistics, timezone))
            if ids
            else None
        )
    except CivicTwinError as exc:
        raise bad_request(exc.message) from None
    value = []
    if frame is not None:
        names = [s for s in statistics if s != "count"]
        for row in frame.to_dict("records"):
            item: dict[str, Any] = {
                "Datastream@iot.id": int(row["datastream_id"]),
                "windowStart": iso(int(row["window_start"])),
                "windowEnd": iso(int(row["window_end"])),
                "count": int(row["count"]),
            }
            item.update({name: _number(row[name]) for name in names})
            value.append(item)
    body = {"window": window.value, "timezone": timezone, "statistics": list(statistics), "value": value}
    return _json(body)


def _ids(raw: str | None) -> list[int] | None:
    if raw is None:
        return None
    if not re.fullmatch(r"\d+(,\d+)*", raw):
        raise bad_request("ids must be datastream ids separated by commas, e.g. ids=1,2")
    return [int(i) for i in raw.split(",")]


def _extent(store: ObservationStore, ids: list[int], start: str | None, end: str | None) -> tuple[int, int]:
    """The asked time range in ms, defaulting to the datastreams' first and last observations."""
    first = last = None
    if start is None or end is None:
        latest = store.latest(ids)
        last = int(latest["phenomenon_time"].max()) + 1 if len(latest) else None
        firsts = [store.observations(i, limit=1) for i in ids]
        times = [int(f["phenomenon_time"].iloc[0]) for f in firsts if len(f)]
        first = min(times) if times else None
    try:
        low = to_ms(start) if start is not None else first
        high = to_ms(end) if end is not None else last
    except ValueError:
        raise bad_request(
            "start and end must be ISO 8601 times with an offset, e.g. 2014-01-01T00:00:00Z"
        ) from None
    if low is None or high is None:
        return 0, 1
    return low, high


def _count_windows(start: int, end: int, window: Window) -> int:
    width = 3_600_000 if window is Window.HOUR else 86_400_000
    return max((end - start) // width + 2, 1)


def _number(value: Any) -> float | None:
    number = float(value)
    return None if number != number else number
