"""A citizen's proposal as a scenario: the menu of interventions drawn on a map, field-level
validation against the installed engines and the twin's street network, and the scenario file a
proposal runs as (docs/consultation.md#citizen-proposals).

The menu is built from the engines' intervention models, never listed by hand: a type is offered when
it is placed on the map by a street selection (click streets; :class:`StreetSelection`) or by a
polygon (draw an area), and its other settings are plain numbers, yes/no or a choice of words, which
a form can ask for. Validation collects every problem, each with the field it concerns
(``interventions[1].speed_kmh``), so the page can show them all at once beside the right input.
Both speak the page's language (docs/consultation.md#languages): the menu's words come from
:mod:`civictwin.scenarios.proposal_words`, the problems from gettext, the fields stay keys.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from shapely.errors import GEOSException

from civictwin.errors import ScenarioError
from civictwin.i18n import DEFAULT, N_, Language, language
from civictwin.scenarios.proposal_words import WORDS
from civictwin.scenarios.selection import select_edges
from civictwin.scenarios.spec import BASELINE, InterventionCatalog, StreetSelection, error_key

TITLE_CHARS = (3, 120)
"""Shortest and longest title (characters)."""
DESCRIPTION_CHARS = 1000
"""Longest description (characters)."""
STREET_KEYS = ("streets", "osm_ids", "edge_ids", "polygon")
"""What a street selection is made of (the map sets them; the form never asks for them)."""
AREA_KEY = "polygon"
CAR_TYPES = frozenset({"close_streets", "one_way", "reverse", "speed_limit", "bus_lane", "pedestrianise",
                       "works_closure"})  # fmt: skip
"""Intervention types that change how cars use a street: their streets must carry cars (``car``)."""
CAR_MODES = frozenset({"all", "car", "bus"})
_KEY = re.compile(r"^[A-Za-z_][\w.\[\]]*$")
_SIMPLE = {"number", "integer", "boolean", "string"}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a draft: the field (``title``, ``interventions[0].speed_kmh``) and why."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        """As the API answers it."""
        return {"field": self.field, "message": self.message}


@dataclass(frozen=True)
class Network:
    """What validation needs of the twin: its street edges (``edge_id``, ``osm_id``, ``name``, ``car``
    and line geometry) in the store's metric ``crs``."""

    edges: gpd.GeoDataFrame
    crs: str


@dataclass(frozen=True)
class Checked:
    """A validated draft: its title, description and interventions as scenario data, or its problems."""

    title: str
    description: str
    interventions: list[dict[str, Any]]
    problems: list[Problem]


# ---- the menu ---------------------------------------------------------------------------------------


def menu(
    catalog: InterventionCatalog, *, offered: Collection[str] | None = None, lang: Language | None = None
) -> list[dict[str, Any]]:
    """The intervention types a proposal may use, each with its engine, what it does, how it is placed
    (``streets`` or ``area``) and its settings as JSON-schema properties (with ``required``).

    ``label``, ``help``, ``setting_labels`` (by setting) and ``choice_labels`` (by choice) are in
    ``lang`` (English by default) for civictwin's own types (:mod:`civictwin.scenarios.proposal_words`);
    a third-party engine's type reads its type with spaces, its docstring and its field names, in English."""
    reader = lang or language(DEFAULT)
    entries = []
    for kind in sorted(catalog.types):
        if offered is not None and kind not in offered:
            continue
        entry = _menu_entry(kind, catalog.types[kind], catalog.owners[kind])
        if entry is not None:
            entries.append(_worded(entry, catalog.types[kind], reader))
    return entries


def _worded(entry: dict[str, Any], model: type[BaseModel], lang: Language) -> dict[str, Any]:
    """``entry`` with its label, help, setting names and choice names in ``lang``."""
    words = WORDS.get(entry["type"])
    if words is None:
        doc = (model.__doc__ or entry["type"]).strip().split("\n\n")[0]
        label, help_text = entry["type"].replace("_", " "), " ".join(doc.replace("``", "").split())
        names: Mapping[str, str] = {}
        choices: Mapping[str, str] = {}
    else:
        label, help_text = lang.gettext(words.label), lang.gettext(words.help)
        names = {name: lang.gettext(text) for name, text in words.settings.items()}
        choices = {value: lang.gettext(text) for value, text in words.choices.items()}
    values = {str(v) for setting in entry["settings"].values() for v in setting.get("enum", [])}
    return {
        **entry,
        "label": label,
        "help": help_text,
        "setting_labels": {name: names.get(name, name.replace("_", " ")) for name in entry["settings"]},
        "choice_labels": {value: choices.get(value, value) for value in sorted(values)},
    }


def _menu_entry(kind: str, model: type[BaseModel], engine: str) -> dict[str, Any] | None:
    """A menu entry without its words, or None when the type is not placed on a map or has a setting
    a form cannot ask."""
    schema = model.model_json_schema()
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    if issubclass(model, StreetSelection):
        placed, skipped = "streets", set(STREET_KEYS)
    elif AREA_KEY in required:
        placed, skipped = "area", {AREA_KEY}
    else:
        return None
    settings: dict[str, Any] = {}
    for name, prop in properties.items():
        if name == "type" or name in skipped:
            continue
        simple = _simple(prop, schema)
        if simple is None:
            if name in required:
                return None
            continue
        settings[name] = simple
    return {
        "type": kind,
        "engine": engine,
        "placed": placed,
        "settings": settings,
        "required": sorted(required & set(settings)),
    }


def _simple(prop: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """A setting's schema reduced to what a form input needs (type, bounds, choices, default), or
    None when it is not one number, yes/no or word (lists and nested objects are not asked for)."""
    options = prop.get("anyOf", [prop])
    kinds = [o for o in options if o.get("type") != "null"]
    if len(kinds) != 1:
        return None
    only = dict(kinds[0])
    if "$ref" in only:
        return None
    if only.get("type") not in _SIMPLE:
        return None
    keep = ("type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum", "maxLength")
    out = {k: only[k] for k in keep if k in only}
    if "const" in only:
        out["enum"] = [only["const"]]
    if "default" in prop:
        out["default"] = prop["default"]
    out["optional"] = len(options) > 1
    return out


# ---- validation ---------------------------------------------------------------------------------------


def check_draft(
    draft: object,
    catalog: InterventionCatalog,
    network: Network,
    *,
    offered: Collection[str],
    max_interventions: int,
    lang: Language | None = None,
) -> Checked:
    """Every problem of ``draft`` (``{"title", "description", "interventions": [...]}``): the text
    fields, the shape of each intervention (``offered`` types only, as their engine's model validates
    them), and each against the twin (its streets exist, carry cars where the type changes car traffic,
    and its polygon has an area inside the twin).

    Messages are in ``lang`` (English by default), fields never (they name the draft's keys); a
    message pydantic or an engine's own validator writes that civictwin does not know stays English."""
    reader = lang or language(DEFAULT)
    problems: list[Problem] = []
    if not isinstance(draft, Mapping):
        return Checked(
            "", "", [], [Problem("body", reader.gettext("expected an object with title and interventions"))]
        )
    unknown = sorted(set(draft) - {"title", "description", "interventions"})
    problems += [Problem(key, reader.gettext("unknown key")) for key in unknown]
    title = _text(draft.get("title"), "title", problems, low=TITLE_CHARS[0], high=TITLE_CHARS[1], lang=reader)
    description = _text(
        draft.get("description", ""), "description", problems, low=0, high=DESCRIPTION_CHARS, lang=reader
    )
    items = draft.get("interventions")
    if not isinstance(items, list) or not items:
        problems.append(Problem("interventions", reader.gettext("add at least one intervention")))
        items = []
    elif len(items) > max_interventions:
        most = reader.ngettext("at most {count} intervention per proposal",
                               "at most {count} interventions per proposal", max_interventions)  # fmt: skip
        problems.append(Problem("interventions", most.format(count=max_interventions)))
        items = []
    interventions = []
    for index, item in enumerate(items):
        found = _check_item(item, index, catalog, network, offered, reader)
        problems += found[1]
        if found[0] is not None:
            interventions.append(found[0])
    return Checked(title, description, interventions, problems)


def _text(value: object, field: str, problems: list[Problem], *, low: int, high: int, lang: Language) -> str:
    if not isinstance(value, str):
        problems.append(Problem(field, lang.gettext("expected text")))
        return ""
    text = value.strip()
    if any(not ch.isprintable() and ch not in "\n\t" for ch in text):
        problems.append(Problem(field, lang.gettext("control characters are not allowed")))
    elif len(text) < low:
        least = lang.ngettext("at least {count} character", "at least {count} characters", low)
        problems.append(Problem(field, least.format(count=low)))
    elif len(text) > high:
        most = lang.ngettext("at most {count} character", "at most {count} characters", high)
        problems.append(Problem(field, most.format(count=high)))
    return text


def _check_item(
    item: object,
    index: int,
    catalog: InterventionCatalog,
    network: Network,
    offered: Collection[str],
    lang: Language,
) -> tuple[dict[str, Any] | None, list[Problem]]:
    """One intervention as scenario data, or its problems."""
    where = f"interventions[{index}]"
    if not isinstance(item, Mapping):
        return None, [Problem(where, lang.gettext("expected an object with a type"))]
    kind = item.get("type")
    if not isinstance(kind, str):
        known = ", ".join(sorted(catalog.types)) or lang.gettext("none installed")
        return None, [
            Problem(
                f"{where}.type",
                lang.gettext("intervention needs a `type`: one of {known}").format(known=known),
            )
        ]
    if kind not in catalog.types:
        engines = ", ".join(catalog.engines) or lang.gettext("none")
        message = lang.gettext(
            "no installed engine knows the intervention type '{kind}' (installed engines: {engines})"
        )
        return None, [Problem(f"{where}.type", message.format(kind=kind, engines=engines))]
    if kind not in offered:
        message = lang.gettext("'{kind}' cannot be proposed here (offered: {offered})")
        listed = ", ".join(sorted(offered)) or lang.gettext("none")
        return None, [Problem(f"{where}.type", message.format(kind=kind, offered=listed))]
    try:
        parsed = catalog.parse(dict(item), index=index, origin="proposal")
    except ScenarioError as exc:
        return None, [_shape_problem(exc, dict(item), catalog.types[kind], where, lang)]
    problems = _against_twin(parsed, where, network, lang)
    return (None if problems else parsed.model_dump(mode="json", exclude_none=True)), problems


def _shape_problem(
    exc: ScenarioError, item: dict[str, Any], model: type[BaseModel], where: str, lang: Language
) -> Problem:
    """The problem of an intervention its model refuses: the first pydantic error, its key in the
    field and its message in ``lang`` where :func:`pydantic_message` knows its kind."""
    try:
        model.model_validate(item)
    except ValidationError as error:
        first = error.errors()[0]
        key = error_key(first["loc"], str(item.get("type")))
        return Problem(f"{where}.{key}" if key else where, pydantic_message(first, lang))
    key, _, message = exc.message.partition(": ")
    if message and _KEY.match(key):
        return Problem(f"{where}.{key}", message)
    return Problem(where, exc.message)


def pydantic_message(error: ErrorDetails, lang: Language) -> str:
    """A pydantic validation error in ``lang``: missing and unknown keys, bounds, numbers, yes/no,
    short text, and a model's own check whose message is marked with ``N_``; any other kind in
    pydantic's English. English is pydantic's own wording, unchanged."""
    kind, context = error["type"], error.get("ctx") or {}
    if kind == "extra_forbidden":
        return lang.gettext("unknown key")
    if kind == "missing":
        return lang.gettext("required key is missing")
    english = error["msg"].removeprefix("Value error, ")
    if lang.code == DEFAULT:
        return english
    if kind == "value_error":  # a model's own check: translated where its message is marked with N_
        return lang.gettext(english)
    if kind == "string_too_short":
        count = int(context.get("min_length", 1))
        text = lang.ngettext("String should have at least {min_length} character",
                             "String should have at least {min_length} characters", count)  # fmt: skip
        return text.format(min_length=count)
    message = _PYDANTIC.get(kind)
    if message is None:
        return english
    numbers = {name: _number(value, lang) for name, value in context.items() if name in _BOUNDS}
    return lang.gettext(message).format(**numbers)


_BOUNDS = ("gt", "ge", "lt", "le")
_PYDANTIC = {
    "greater_than": N_("Input should be greater than {gt}"),
    "greater_than_equal": N_("Input should be greater than or equal to {ge}"),
    "less_than": N_("Input should be less than {lt}"),
    "less_than_equal": N_("Input should be less than or equal to {le}"),
    "int_parsing": N_("Input should be a valid integer, unable to parse string as an integer"),
    "int_type": N_("Input should be a valid integer"),
    "int_from_float": N_("Input should be a valid integer, got a number with a fractional part"),
    "float_parsing": N_("Input should be a valid number, unable to parse string as a number"),
    "float_type": N_("Input should be a valid number"),
    "bool_parsing": N_("Input should be a valid boolean, unable to interpret input"),
    "bool_type": N_("Input should be a valid boolean"),
    "string_type": N_("Input should be a valid string"),
}
"""The pydantic error kinds translated, each with pydantic's English message as its message id."""


def _number(value: object, lang: Language) -> str:
    """A bound in the locale's decimals (``0.5`` → ``0,5``), as many as its shortest form has."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    decimals = len(repr(float(value)).partition(".")[2].rstrip("0"))
    return lang.decimal(float(value), decimals=decimals, grouped=False)


def _against_twin(intervention: BaseModel, where: str, network: Network, lang: Language) -> list[Problem]:
    """Whether the intervention's streets and polygon exist in the twin."""
    polygon = getattr(intervention, AREA_KEY, None)
    if isinstance(polygon, str):
        problem = _polygon_problem(polygon, network)
        if problem is not None:
            return [Problem(f"{where}.polygon", lang.gettext(problem))]
    if not isinstance(intervention, StreetSelection):
        return []
    try:
        ids = select_edges(
            network.edges, intervention, crs=network.crs, base_dir=Path(), lang=lang
        )  # polygons are WKT here
    except ScenarioError as exc:
        return [Problem(f"{where}.{exc.field or 'streets'}", exc.message)]
    kind = getattr(intervention, "type", "")
    modes = set(getattr(intervention, "modes", None) or CAR_MODES)
    if kind in CAR_TYPES and modes & CAR_MODES:
        chosen = network.edges[network.edges["edge_id"].astype(str).isin(ids)]
        if not chosen["car"].fillna(False).astype(bool).any():
            key = next((k for k in STREET_KEYS if getattr(intervention, k, None)), "streets")
            return [Problem(f"{where}.{key}", lang.gettext("the selected street carries no cars (not drivable): "
                                                           "choose a street cars use"))]  # fmt: skip
    return []


def _polygon_problem(text: str, network: Network) -> str | None:
    """Why a WKT polygon (WGS84) cannot be used (a message id), or None: not WKT, empty, no area,
    outside the twin."""
    value = text.strip()
    if not value.upper().startswith(("POLYGON", "MULTIPOLYGON")):
        return N_("expected a polygon as WKT, e.g. POLYGON ((lon lat, ...))")
    try:
        geom = shapely.from_wkt(value)
    except GEOSException:
        return N_("not valid WKT")
    if geom is None or geom.is_empty:
        return N_("the polygon is empty")
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    if not math.isfinite(geom.area) or geom.area <= 0:
        return N_("the polygon has no area (draw at least three distinct corners)")
    extent = shapely.box(*network.edges.to_crs("EPSG:4326").total_bounds)
    if not geom.intersects(extent):
        return N_("the polygon lies outside the twin's area")
    return None


# ---- the scenario file ---------------------------------------------------------------------------------


def scenario_toml(name: str, description: str, interventions: Sequence[Mapping[str, Any]]) -> str:
    """The scenario file of a proposal (built on the twin as built), as ``civictwin compare`` reads it."""
    lines = [f"name = {_toml(name)}", f"description = {_toml(description)}", f"baseline = {_toml(BASELINE)}"]
    for item in interventions:
        lines += ["", "[[interventions]]"]
        lines += [f"{key} = {_toml(value)}" for key, value in item.items() if value is not None]
    return "\n".join(lines) + "\n"


def toml_value(value: object) -> str:
    """``value`` (text, number, yes/no, list or table) in TOML's inline syntax."""
    return _toml(value)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("TOML has no place for NaN or infinity here")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise ValueError(f"cannot write {type(value).__name__} as TOML")
