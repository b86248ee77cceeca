"""OGC SensorThings API v1.1 queries over the observation store, in SQL: the API only formats answers.

Entity sets: Things, Locations, Sensors, ObservedProperties, Datastreams, Observations,
FeaturesOfInterest, with their navigation properties. Query options: ``$filter`` (comparisons,
``and``/``or``/``not``, ``null``, ISO 8601 times, one step along a navigation property such as
``Datastream/id eq 3``, ``contains``/``startswith``/``endswith``/``substringof`` on text and
``geo.intersects``/``st_intersects`` with a WKT ``geography'…'`` literal), ``$orderby``, ``$top``,
``$skip``, ``$count``, ``$select`` and ``$expand`` (nested options separated by ``;``). The filter
grammar is parsed by the ``odata-query`` library; its syntax tree is compiled here to SQL that SQLite
and PostgreSQL both run (the store names the few spellings that differ).

Access: every query carries the caller's readable datasets; an entity of any other dataset does not
exist for that caller, in listings, expansions, navigation and counts alike.

Observation ids are (datastream id × 10¹³ + phenomenon time in ms): unique, stable, and ordered as
the primary key (datastream, time), so paging in id order is a range scan.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import shapely
from odata_query import ast as odata
from odata_query.exceptions import ODataException
from odata_query.grammar import ODataLexer, ODataParser
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from civictwin.errors import CivicTwinError, StoreError
from civictwin.store.observations import Quality, iso, to_ms
from civictwin.store.sql_observations import SQLObservationStore

OBSERVATION_ID_BASE = 10**13
"""An observation's id is its datastream id times this, plus its phenomenon time (ms)."""
_QUALITY_LABEL = "CASE o.quality WHEN 0 THEN 'good' WHEN 1 THEN 'missing' ELSE 'suspect' END"


class QueryError(CivicTwinError):
    """A SensorThings request the store cannot answer as asked (a 400 for the API)."""


@dataclass(frozen=True)
class Nav:
    """A navigation property: its target set, whether it is a collection, and how rows relate.

    The child rows of a parent are those where ``child_side = <parent's key column>``; a filter
    through the property keeps parents whose ``parent_side`` is in the matching children's
    ``child_side``.
    """

    target: str
    many: bool
    key: str
    child_side: str
    parent_side: str


@dataclass(frozen=True)
class EntitySet:
    """One entity set: its table, columns, filterable properties and navigation properties."""

    name: str
    singular: str
    table: str
    alias: str
    id_sql: str
    columns: Mapping[str, str]
    properties: Mapping[str, str]
    navigation: Mapping[str, Nav]
    visible: str
    geometry: str | None = None
    """The geometry property ``geo.intersects`` applies to (``location``, ``feature`` ...)."""
    order: str = ""


_GOVERNANCE = ("publisher", "steward", "licence", "access")
"""A datastream's governance, from its dataset, among its properties."""
_DATASETS_OF = "{readable}"
"""Placeholder for the caller's readable datasets, filled in per query as a list of SQL literals."""
_VISIBLE_DS = f"(SELECT id FROM datastreams WHERE dataset IN {_DATASETS_OF})"

ENTITY_SETS: dict[str, EntitySet] = {
    "Things": EntitySet(
        name="Things", singular="Thing", table="things", alias="t", id_sql="t.id",
        columns={"name": "t.name", "description": "t.description", "properties": "t.properties",
                 "location_id": "t.location_id"},
        properties={"name": "t.name", "description": "t.description"},
        navigation={
            "Locations": Nav("Locations", True, "location_id", "l.id", "t.location_id"),
            "Datastreams": Nav("Datastreams", True, "id", "d.thing_id", "t.id"),
        },
        visible=f"t.dataset IN {_DATASETS_OF}", geometry="Locations/location",
    ),
    "Locations": EntitySet(
        name="Locations", singular="Location", table="locations", alias="l", id_sql="l.id",
        columns={"name": "l.name", "description": "l.description", "lon": "l.lon", "lat": "l.lat"},
        properties={"name": "l.name", "description": "l.description", "encodingType": "'application/geo+json'"},
        navigation={"Things": Nav("Things", True, "id", "t.location_id", "l.id")},
        visible=f"l.dataset IN {_DATASETS_OF}", geometry="location",
    ),
    "Sensors": EntitySet(
        name="Sensors", singular="Sensor", table="sensors", alias="s", id_sql="s.id",
        columns={"name": "s.name", "description": "s.description", "encodingType": "s.encoding_type",
                 "metadata": "s.metadata"},
        properties={"name": "s.name", "description": "s.description", "encodingType": "s.encoding_type",
                    "metadata": "s.metadata"},
        navigation={"Datastreams": Nav("Datastreams", True, "id", "d.sensor_id", "s.id")},
        visible=f"s.dataset IN {_DATASETS_OF}",
    ),
    "ObservedProperties": EntitySet(
        name="ObservedProperties", singular="ObservedProperty", table="observed_properties", alias="p",
        id_sql="p.id",
        columns={"name": "p.name", "definition": "p.definition", "description": "p.description"},
        properties={"name": "p.name", "definition": "p.definition", "description": "p.description"},
        navigation={"Datastreams": Nav("Datastreams", True, "id", "d.observed_property_id", "p.id")},
        visible=f"p.dataset IN {_DATASETS_OF}",
    ),
    "Datastreams": EntitySet(
        name="Datastreams", singular="Datastream", table="datastreams", alias="d", id_sql="d.id",
        columns={
            "name": "d.name", "description": "d.description", "unit_code": "d.unit_code",
            "unit_name": "d.unit_name", "unit_symbol": "d.unit_symbol", "observationType": "d.observation_type",
            "properties": "d.properties", "thing_id": "d.thing_id", "sensor_id": "d.sensor_id",
            "observed_property_id": "d.observed_property_id", "feature_id": "d.feature_id",
            "area": "(SELECT geometry FROM features WHERE id = d.feature_id)",
            "first": "(SELECT min(phenomenon_time) FROM observations WHERE datastream_id = d.id)",
            "last": "(SELECT coalesce(phenomenon_end, phenomenon_time) FROM observations "
                    "WHERE datastream_id = d.id ORDER BY phenomenon_time DESC LIMIT 1)",
            "dataset": "d.dataset",
            **{f"governance_{name}": f"(SELECT {name} FROM datasets WHERE name = d.dataset)"
               for name in _GOVERNANCE},
        },
        properties={
            "name": "d.name", "description": "d.description", "observationType": "d.observation_type",
            "unitOfMeasurement/name": "d.unit_name", "unitOfMeasurement/symbol": "d.unit_symbol",
            "unitOfMeasurement/definition": "('ucum:' || d.unit_code)", "properties/dataset": "d.dataset",
            "properties/access": "(SELECT access FROM datasets WHERE name = d.dataset)",
            "properties/steward": "(SELECT steward FROM datasets WHERE name = d.dataset)",
        },
        navigation={
            "Thing": Nav("Things", False, "thing_id", "t.id", "d.thing_id"),
            "Sensor": Nav("Sensors", False, "sensor_id", "s.id", "d.sensor_id"),
            "ObservedProperty": Nav("ObservedProperties", False, "observed_property_id", "p.id",
                                    "d.observed_property_id"),
            "Observations": Nav("Observations", True, "id", "o.datastream_id", "d.id"),
        },
        visible=f"d.dataset IN {_DATASETS_OF}", geometry="observedArea",
    ),
    "Observations": EntitySet(
        name="Observations", singular="Observation", table="observations", alias="o",
        id_sql=f"(o.datastream_id * {OBSERVATION_ID_BASE} + o.phenomenon_time)",
        columns={"phenomenon_time": "o.phenomenon_time", "phenomenon_end": "o.phenomenon_end",
                 "result_time": "o.result_time", "result": "o.result", "quality": "o.quality",
                 "datastream_id": "o.datastream_id"},
        properties={"result": "o.result", "phenomenonTime": "o.phenomenon_time", "resultTime": "o.result_time",
                    "resultQuality": _QUALITY_LABEL},
        navigation={
            "Datastream": Nav("Datastreams", False, "datastream_id", "d.id", "o.datastream_id"),
            "FeatureOfInterest": Nav("FeaturesOfInterest", False, "datastream_id",
                                     "f.id", "(SELECT feature_id FROM datastreams WHERE id = o.datastream_id)"),
        },
        visible=f"o.datastream_id IN {_VISIBLE_DS}", geometry="FeatureOfInterest/feature",
        order="o.datastream_id, o.phenomenon_time",
    ),
    "FeaturesOfInterest": EntitySet(
        name="FeaturesOfInterest", singular="FeatureOfInterest", table="features", alias="f", id_sql="f.id",
        columns={"name": "f.name", "description": "f.description", "geometry": "f.geometry",
                 "properties": "f.properties"},
        properties={"name": "f.name", "description": "f.description", "encodingType": "'application/geo+json'"},
        navigation={"Observations": Nav("Observations", True, "id",
                                        "(SELECT feature_id FROM datastreams WHERE id = o.datastream_id)", "f.id")},
        visible=f"f.dataset IN {_DATASETS_OF}", geometry="feature",
    ),
}  # fmt: skip

# FeaturesOfInterest/Observations: the child condition goes through the datastreams of the feature.
_FEATURE_OBSERVATIONS = "o.datastream_id IN (SELECT id FROM datastreams WHERE feature_id = ?)"
_OBSERVATION_FEATURE = "f.id = (SELECT feature_id FROM datastreams WHERE id = ?)"


@dataclass(frozen=True)
class QueryOptions:
    """The query options of one collection (or expansion)."""

    filter: str | None = None
    orderby: str | None = None
    top: int | None = None
    skip: int = 0
    count: bool = False
    select: tuple[str, ...] | None = None
    expand: tuple[ExpandItem, ...] = ()


@dataclass(frozen=True)
class ExpandItem:
    """``$expand`` of one navigation property with its own options."""

    name: str
    options: QueryOptions


@dataclass
class Entity:
    """One entity as read: its set, id, SensorThings properties and expanded navigation properties."""

    set_name: str
    id: int
    properties: dict[str, Any]
    row: dict[str, Any] = field(default_factory=dict, repr=False)
    """The stored columns (keys of related entities) the properties came from."""
    expanded: dict[str, Page | Entity | None] = field(default_factory=dict)


@dataclass
class Page:
    """A page of a collection: the entities, whether more follow, and the total when asked."""

    entities: list[Entity]
    more: bool
    count: int | None
    top: int
    skip: int


def parse_options(params: Mapping[str, str], *, default_top: int, max_top: int) -> QueryOptions:
    """Query options from ``$``-parameters (already URL-decoded); errors are :class:`QueryError`."""
    top = _integer(params.get("$top"), "$top", default_top)
    if top > max_top:
        top = max_top
    skip = _integer(params.get("$skip"), "$skip", 0)
    count = params.get("$count", "false").lower()
    if count not in ("true", "false"):
        raise QueryError("$count must be true or false")
    select = params.get("$select")
    expand = params.get("$expand")
    return QueryOptions(
        filter=params.get("$filter") or None,
        orderby=params.get("$orderby") or None,
        top=top,
        skip=skip,
        count=count == "true",
        select=tuple(s.strip() for s in select.split(",") if s.strip()) if select else None,
        expand=parse_expand(expand, default_top=default_top, max_top=max_top) if expand else (),
    )


def _integer(raw: str | None, name: str, default: int) -> int:
    if raw is None:
        return default
    if not re.fullmatch(r"\d{1,9}", raw.strip()):
        raise QueryError(f"{name} must be a non-negative integer, got {raw!r}")
    return int(raw)


def parse_expand(text: str, *, default_top: int, max_top: int) -> tuple[ExpandItem, ...]:
    """``Datastreams($select=name;$top=2),Thing/Locations`` as expand items (paths nest)."""
    items = []
    for part in _split(text, ","):
        match = re.fullmatch(r"\s*([A-Za-z/]+)\s*(?:\((.*)\))?\s*", part, flags=re.DOTALL)
        if not match:
            raise QueryError(f"cannot read $expand item {part!r}")
        path, inner = match.group(1).split("/"), match.group(2)
        options = QueryOptions(top=default_top)
        if inner:
            pairs = {}
            for option in _split(inner, ";"):
                key, _, value = option.partition("=")
                pairs[key.strip()] = value.strip()
            options = parse_options(pairs, default_top=default_top, max_top=max_top)
        for name in reversed(path[1:]):
            options = QueryOptions(top=default_top, expand=(ExpandItem(name, options),))
        items.append(ExpandItem(path[0], options))
    return _merged(items)


def _merged(items: list[ExpandItem]) -> tuple[ExpandItem, ...]:
    """Items naming the same property once (``Datastreams/Sensor,Datastreams/Thing`` expand both)."""
    merged: dict[str, ExpandItem] = {}
    for item in items:
        known = merged.get(item.name)
        if known is None:
            merged[item.name] = item
        else:
            nested = _merged([*known.options.expand, *item.options.expand])
            merged[item.name] = ExpandItem(item.name, replace(known.options, expand=nested))
    return tuple(merged.values())


def _split(text: str, separator: str) -> list[str]:
    """``text`` split at ``separator`` outside parentheses and quotes."""
    parts: list[str] = []
    current: list[str] = []
    depth, quoted = 0, False
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        if char == separator and depth == 0 and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


class SensorThingsReader:
    """Answers SensorThings queries for one caller: only the datasets in ``readable`` exist."""

    def __init__(self, store: SQLObservationStore, readable: Sequence[str]) -> None:
        self._store = store
        self._con = store.connection
        literals = ",".join("'" + name.replace("'", "''") + "'" for name in sorted(readable))
        self._readable = f"({literals or 'NULL'})"

    @property
    def like(self) -> str:
        """The store's operator for the text functions."""
        return self._store.like

    def json_property(self, column: str, key: str) -> str:
        """SQL for ``key`` of the JSON text ``column``, in the store's dialect."""
        return self._store.json_property(column, key)

    def json_value(self, value: Any) -> Any:
        """``value`` as a parameter compared with :meth:`json_property`."""
        return self._store.json_value(value)

    def _sql(self, template: str) -> str:
        """``template`` with the readable datasets filled in."""
        return template.replace(_DATASETS_OF, self._readable)

    # ------------------------------------------------------------ entry points

    def collection(self, set_name: str, options: QueryOptions) -> Page:
        """A page of an entity set."""
        return self._page(ENTITY_SETS[set_name], options, link=None)

    def entity(self, set_name: str, entity_id: int, options: QueryOptions) -> Entity | None:
        """One entity by id (None when it does not exist for this caller)."""
        entity_set = ENTITY_SETS[set_name]
        condition = (f"{entity_set.id_sql} = ?", [entity_id])
        if set_name == "Observations":
            datastream, time = divmod(entity_id, OBSERVATION_ID_BASE)
            condition = ("o.datastream_id = ? AND o.phenomenon_time = ?", [datastream, time])
        page = self._page(entity_set, QueryOptions(select=options.select, expand=options.expand, top=1),
                          link=condition)  # fmt: skip
        return page.entities[0] if page.entities else None

    def related(
        self, set_name: str, entity_id: int, nav_name: str, options: QueryOptions
    ) -> Page | Entity | None:
        """``Set(id)/Nav``: the related collection, or the related entity (None when absent)."""
        parent = self.entity(set_name, entity_id, QueryOptions(top=1))
        if parent is None:
            return None
        nav = ENTITY_SETS[set_name].navigation[nav_name]
        return self._navigate(ENTITY_SETS[set_name], parent, nav_name, nav, options)

    def datastream_ids(self, ids: Sequence[int] | None) -> list[int]:
        """The visible datastreams among ``ids`` (all visible ones when None), in id order."""
        rows = self._con.execute(
            self._sql(f"SELECT id FROM datastreams WHERE dataset IN {_DATASETS_OF} ORDER BY id")
        ).fetchall()
        visible = [int(r[0]) for r in rows]
        return visible if ids is None else [i for i in visible if i in set(ids)]

    # ------------------------------------------------------------ queries

    def _page(
        self, entity_set: EntitySet, options: QueryOptions, *, link: tuple[str, list[Any]] | None
    ) -> Page:
        where, params = [entity_set.visible], []
        if link is not None:
            where.append(link[0])
            params.extend(link[1])
        if options.filter:
            clause, clause_params = self._compile_filter(entity_set, options.filter)
            where.append(clause)
            params.extend(clause_params)
        a = entity_set.alias
        base = f"FROM {entity_set.table} {a} WHERE " + " AND ".join(f"({w})" for w in where)
        top = options.top if options.top is not None else 100
        order = self._order(entity_set, options.orderby)
        columns = ", ".join(f'{sql} AS "{name}"' for name, sql in entity_set.columns.items())
        sql = f"SELECT {entity_set.id_sql} AS _id, {columns} {base} ORDER BY {order} LIMIT ? OFFSET ?"
        try:
            cursor = self._con.execute(self._sql(sql), [*params, top + 1, options.skip])
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            count = None
            if options.count:
                count = int(self._con.execute(self._sql(f"SELECT count(*) {base}"), params).fetchone()[0])
        except self._store.query_errors as exc:
            raise QueryError(f"cannot run the query: {exc}") from None
        more = len(rows) > top
        entities = [self._entity(entity_set, row, options) for row in rows[:top]]
        return Page(entities=entities, more=more, count=count, top=top, skip=options.skip)

    def _entity(self, entity_set: EntitySet, row: dict[str, Any], options: QueryOptions) -> Entity:
        entity = Entity(entity_set.name, int(row["_id"]), _properties(entity_set.name, row), row)
        if options.select is not None:
            unknown = [s for s in options.select if s not in entity.properties and s not in entity_set.navigation
                       and s not in ("id", "@iot.id")]  # fmt: skip
            if unknown:
                raise QueryError(
                    f"$select: {entity_set.name} have no property {', '.join(map(repr, unknown))}"
                )
        for item in options.expand:
            nav = entity_set.navigation.get(item.name)
            if nav is None:
                raise QueryError(f"$expand: {entity_set.name} have no navigation property {item.name!r}")
            entity.expanded[item.name] = self._navigate(entity_set, entity, item.name, nav, item.options)
        return entity

    def _navigate(
        self, parent_set: EntitySet, parent: Entity, nav_name: str, nav: Nav, options: QueryOptions
    ) -> Page | Entity | None:
        target = ENTITY_SETS[nav.target]
        value = parent.row[nav.key] if nav.key != "id" else parent.id
        condition = f"{nav.child_side} = ?"
        if parent_set.name == "FeaturesOfInterest":
            condition = _FEATURE_OBSERVATIONS
        elif parent_set.name == "Observations" and nav_name == "FeatureOfInterest":
            condition = _OBSERVATION_FEATURE
        page = self._page(target, options, link=(condition, [value]))
        if nav.many:
            return page
        return page.entities[0] if page.entities else None

    def _order(self, entity_set: EntitySet, orderby: str | None) -> str:
        tail = entity_set.order or entity_set.id_sql
        if not orderby:
            return tail
        terms = []
        for part in _split(orderby, ","):
            words = part.split()
            if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
                raise QueryError(f"cannot read $orderby term {part.strip()!r}")
            name = words[0]
            sql = entity_set.id_sql if name in ("id", "@iot.id") else entity_set.properties.get(name)
            if sql is None:
                raise QueryError(f"$orderby: {entity_set.name} cannot be ordered by {name!r}")
            terms.append(f"{sql} {words[1].upper() if len(words) == 2 else 'ASC'}")
        return ", ".join([*terms, tail])

    # ------------------------------------------------------------ $filter

    def _compile_filter(self, entity_set: EntitySet, text: str) -> tuple[str, list[Any]]:
        try:
            tree = ODataParser().parse(ODataLexer().tokenize(text))
        except ODataException as exc:
            raise QueryError(f"cannot read $filter: {exc}") from None
        except Exception as exc:  # the lexer raises plain errors on stray characters
            raise QueryError(f"cannot read $filter: {exc}") from None
        return _FilterCompiler(self, entity_set).compile(tree)

    def geometry_ids(self, entity_set: EntitySet, shape_wkt: BaseGeometry) -> tuple[str, list[int]]:
        """A condition on ``entity_set`` true for entities whose geometry intersects ``shape_wkt``."""
        if entity_set.geometry is None:
            raise QueryError(f"geo.intersects: {entity_set.name} have no geometry")
        if entity_set.name in ("Locations", "Things"):
            rows = self._con.execute(
                self._sql(f"SELECT id, lon, lat FROM locations WHERE dataset IN {_DATASETS_OF}")
            )
            ids = [int(i) for i, lon, lat in rows if shape_wkt.intersects(shapely.Point(lon, lat))]
            return _members("l.id" if entity_set.name == "Locations" else "t.location_id", ids)
        rows = self._con.execute(
            self._sql(f"SELECT id, geometry FROM features WHERE dataset IN {_DATASETS_OF}")
        )
        ids = [int(i) for i, geometry in rows if shape_wkt.intersects(shape(json.loads(geometry)))]
        if entity_set.name == "Observations":  # through their datastreams' features
            condition, params = _members("feature_id", ids)
            return f"o.datastream_id IN (SELECT id FROM datastreams WHERE {condition})", params
        return _members("f.id" if entity_set.name == "FeaturesOfInterest" else "d.feature_id", ids)


def _members(column: str, ids: list[int]) -> tuple[str, list[int]]:
    if not ids:
        return "FALSE", []
    return f"{column} IN ({','.join('?' * len(ids))})", ids


_COMPARATORS: dict[type, str] = {
    odata.Eq: "=", odata.NotEq: "!=", odata.Lt: "<", odata.LtE: "<=", odata.Gt: ">", odata.GtE: ">=",
}  # fmt: skip
_TIME_PROPERTIES = {"phenomenonTime", "resultTime"}


class _FilterCompiler:
    """An ``odata-query`` syntax tree as a SQLite condition with parameters, for one entity set."""

    def __init__(self, reader: SensorThingsReader, entity_set: EntitySet) -> None:
        self.reader = reader
        self.entity_set = entity_set

    def compile(self, node: odata._Node) -> tuple[str, list[Any]]:
        if isinstance(node, odata.BoolOp):
            left, left_params = self.compile(node.left)
            right, right_params = self.compile(node.right)
            joiner = "AND" if isinstance(node.op, odata.And) else "OR"
            return f"({left}) {joiner} ({right})", [*left_params, *right_params]
        if isinstance(node, odata.UnaryOp) and isinstance(node.op, odata.Not):
            inner, params = self.compile(node.operand)
            return f"NOT ({inner})", params
        if isinstance(node, odata.Compare):
            return self._compare(node)
        if isinstance(node, odata.Call):
            return self._call(node)
        raise QueryError(f"$filter: unsupported expression {type(node).__name__}")

    def _compare(self, node: odata.Compare) -> tuple[str, list[Any]]:
        operator = _COMPARATORS.get(type(node.comparator))
        if operator is None:
            raise QueryError(f"$filter: unsupported comparison {type(node.comparator).__name__}")
        left, right = node.left, node.right
        if _is_literal(left) and not _is_literal(right):
            left, right = right, left
            operator = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(operator, operator)
        if not _is_literal(right):
            raise QueryError("$filter: compare a property with a value")
        navigation = self._navigation(left)
        if navigation is not None:
            nav, inner = navigation
            target = ENTITY_SETS[nav.target]
            condition, params = _FilterCompiler(self.reader, target).compile(
                odata.Compare(node.comparator, inner, right)
            )
            return f"{nav.parent_side} IN (SELECT {nav.child_side} FROM {target.table} {target.alias} "\
                   f"WHERE {target.visible} AND ({condition}))", params  # fmt: skip
        name, sql = self._property(left)
        value = self._value(name, right)
        if value is None:
            if operator not in ("=", "!="):
                raise QueryError("$filter: only eq and ne compare with null")
            return f"{sql} IS {'NOT ' if operator == '!=' else ''}NULL", []
        if _is_json_property(self.entity_set, name):
            value = self.reader.json_value(value)
        return f"{sql} {operator} ?", [value]

    def _navigation(self, node: odata._Node) -> tuple[Nav, odata._Node] | None:
        """``Nav/property`` as (navigation property, the property on its target), else None."""
        if not isinstance(node, odata.Attribute):
            return None
        chain = _chain(node)
        nav = self.entity_set.navigation.get(chain[0])
        if nav is None:
            return None
        inner: odata._Node = odata.Identifier(chain[1])
        for attr in chain[2:]:
            inner = odata.Attribute(inner, attr)
        return nav, inner

    def _property(self, node: odata._Node) -> tuple[str, str]:
        if isinstance(node, odata.Identifier):
            name = node.full_name()
        elif isinstance(node, odata.Attribute):
            name = "/".join(_chain(node))
        else:
            raise QueryError("$filter: compare a property with a value")
        if name == "id":
            return name, self.entity_set.id_sql
        sql = self.entity_set.properties.get(name)
        if (
            sql is None
            and name.startswith("properties/")
            and self.entity_set.name in ("Things", "Datastreams")
        ):
            key = name.split("/", 1)[1]
            if not re.fullmatch(r"\w+", key):
                raise QueryError(f"$filter: cannot read property path {name!r}")
            sql = self.reader.json_property(f"{self.entity_set.alias}.properties", key)
        if sql is None:
            raise QueryError(f"$filter: {self.entity_set.name} have no property {name!r}")
        return name, sql

    def _value(self, name: str, node: odata._Node) -> Any:
        if isinstance(node, odata.Null):
            return None
        if isinstance(node, odata.DateTime | odata.Date):
            return to_ms(node.val if isinstance(node, odata.DateTime) else f"{node.val}T00:00:00Z")
        if name in _TIME_PROPERTIES:
            if isinstance(node, odata.String):
                try:
                    return to_ms(node.val)
                except (ValueError, StoreError):
                    raise QueryError(
                        f"$filter: {name} compares with an ISO 8601 time, not {node.val!r}"
                    ) from None
            raise QueryError(f"$filter: {name} compares with an ISO 8601 time")
        if isinstance(node, odata.Integer | odata.Float | odata.Boolean | odata.String):
            return node.py_val
        raise QueryError(f"$filter: unsupported value {type(node).__name__}")

    def _call(self, node: odata.Call) -> tuple[str, list[Any]]:
        name = node.func.full_name().lower()
        args = node.args
        if name in ("geo.intersects", "st_intersects"):
            literal = next((a for a in args if isinstance(a, odata.Geography)), None)
            if literal is None or len(args) != 2:
                raise QueryError(f"$filter: {name}(geometry property, geography'WKT')")
            return self.reader.geometry_ids(self.entity_set, _wkt(literal.val))
        if name in ("contains", "startswith", "endswith", "substringof"):
            if name == "substringof":
                args = list(reversed(args))
            if len(args) != 2 or not isinstance(args[1], odata.String):
                raise QueryError(f"$filter: {name}(property, 'text')")
            _, sql = self._property(args[0])
            text = args[1].val.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = {"contains": f"%{text}%", "substringof": f"%{text}%", "startswith": f"{text}%",
                       "endswith": f"%{text}"}[name]  # fmt: skip
            return f"{sql} {self.reader.like} ? ESCAPE '\\'", [pattern]
        raise QueryError(f"$filter: unsupported function {name}()")


def _is_json_property(entity_set: EntitySet, name: str) -> bool:
    """Whether ``name`` is a key inside a Thing's or Datastream's ``properties`` (a JSON value)."""
    return name.startswith("properties/") and name not in entity_set.properties


def _chain(node: odata._Node) -> list[str]:
    if isinstance(node, odata.Identifier):
        return [node.full_name()]
    if isinstance(node, odata.Attribute):
        return [*_chain(node.owner), node.attr]
    raise QueryError("$filter: cannot read a property path")


def _is_literal(node: odata._Node) -> bool:
    return isinstance(node, odata._Literal)


def _wkt(text: str) -> BaseGeometry:
    body = re.sub(r"^\s*SRID=\d+;", "", text, flags=re.IGNORECASE)
    try:
        return shapely.from_wkt(body)
    except shapely.errors.GEOSException:
        raise QueryError(f"geo.intersects: not a WKT geometry: {body[:80]!r}") from None


# ---------------------------------------------------------------- rows to SensorThings properties


def _properties(set_name: str, row: Mapping[str, Any]) -> dict[str, Any]:
    if set_name == "Observations":
        return _observation(row)
    if set_name == "Datastreams":
        return _datastream(row)
    if set_name == "Things":
        return {
            "name": row["name"],
            "description": row["description"],
            "properties": json.loads(row["properties"]),
        }
    if set_name == "Locations":
        return {"name": row["name"], "description": row["description"], "encodingType": "application/geo+json",
                "location": {"type": "Point", "coordinates": [row["lon"], row["lat"]]}}  # fmt: skip
    if set_name == "FeaturesOfInterest":
        return {"name": row["name"], "description": row["description"], "encodingType": "application/geo+json",
                "feature": json.loads(row["geometry"]), "properties": json.loads(row["properties"])}  # fmt: skip
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _observation(row: Mapping[str, Any]) -> dict[str, Any]:
    start, end, result = row["phenomenon_time"], row["phenomenon_end"], row["result"]
    return {
        "phenomenonTime": iso(start) if end is None else f"{iso(start)}/{iso(end)}",
        "resultTime": None if row["result_time"] is None else iso(row["result_time"]),
        "result": None if result is None else (int(result) if float(result).is_integer() else result),
        "resultQuality": Quality(row["quality"]).label,
    }


def _datastream(row: Mapping[str, Any]) -> dict[str, Any]:
    governance = {name: row[f"governance_{name}"] for name in _GOVERNANCE}
    first, last = row["first"], row["last"]
    return {
        "name": row["name"],
        "description": row["description"],
        "unitOfMeasurement": {
            "name": row["unit_name"],
            "symbol": row["unit_symbol"],
            "definition": f"ucum:{row['unit_code']}",
        },
        "observationType": row["observationType"],
        "observedArea": json.loads(row["area"]) if row["area"] else None,
        "phenomenonTime": None if first is None else f"{iso(first)}/{iso(last)}",
        "resultTime": None,
        "properties": {"dataset": row["dataset"], **governance, **json.loads(row["properties"])},
    }
