"""Public consultation pages: one per published comparison (docs/consultation.md).

``GET /consultations/{comparison}`` is a plain HTML page, rendered on the server (Jinja2,
autoescaped) so it reads, prints and works without scripts: the question in plain words, the
scenarios, the KPIs with their 95% intervals, what is within noise, shares in percentage points, the
validation status, a map of where it changes, and "what changes near me" for an address (a form)
or a point (``?lon=&lat=``). The viewer bundle's ``consult.js`` adds the map and answers clicks and
the address form in place, keeping the URL shareable. ``GET /consultations/{comparison}/data`` is
the same content as JSON; ``GET /consultations/{comparison}/near`` the near-me answer.

Access is the comparisons' rule (:mod:`civictwin.api.scenarios`): a comparison derived from a layer
the caller may not read does not exist for them (404), so the public (no token) only ever sees
consultations built from public layers; addresses come from the ``addresses`` layer only when the
caller may read it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import urlencode

import shapely
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment

from civictwin.api.context import get_twin
from civictwin.api.contributions import Now, published, takes_contributions
from civictwin.api.problems import ProblemError, bad_request, not_found
from civictwin.api.query import check_params
from civictwin.api.scenarios import GEOJSON_MEDIA_TYPE, ComparisonId, ComparisonStore, readable
from civictwin.api.security import current_principal
from civictwin.api.viewer import CONTENT_SECURITY_POLICY, STATIC_DIR, viewer_built
from civictwin.compare.consultation import (
    MAX_RADIUS_M,
    NEAR_RADIUS_M,
    changes_near,
    kpi_entries,
    split_address,
    validation_status,
    within_noise,
)
from civictwin.model.names import fold
from civictwin.runs import ComparisonRecord, table_diff_file
from civictwin.store.features import FeatureQuery

ADDRESSES = "addresses"
_PARAMS = ("plan", "table", "address", "lon", "lat", "radius")
_MAX_ADDRESS = 120
_ADDRESS_PAGE = 1000

router = APIRouter(tags=["Consultations"])

Plan = Annotated[
    str | None,
    Query(description="The plan shown (its map and near-me); the first by default", max_length=128),
]
TableParam = Annotated[
    str | None, Query(description="The table mapped, <engine>.<table>; the first by default", max_length=128)
]
Address = Annotated[
    str | None, Query(description="An address of the twin, e.g. 'Mannerheimintie 5'", max_length=_MAX_ADDRESS)
]
Lon = Annotated[float | None, Query(ge=-180, le=180, description="Longitude of the point (WGS84)")]
Lat = Annotated[float | None, Query(ge=-90, le=90, description="Latitude of the point (WGS84)")]
Radius = Annotated[float, Query(gt=0, le=MAX_RADIUS_M, description="How far around the point to look (m)")]


@dataclass(frozen=True)
class Place:
    """Where near-me looks: a point and what to call it."""

    lon: float
    lat: float
    label: str


def consultation(
    request: Request, comparison_id: str, *, plan: str | None, table: str | None
) -> dict[str, Any]:
    """The page's content as plain data (the JSON endpoint and the HTML page render the same)."""
    store, record = readable(request, comparison_id, params=_PARAMS)
    chosen = _plan(record, plan)
    maps = _mapped(store, record, chosen)
    if table is not None and table not in maps:
        raise not_found(f"comparison '{record.id}' has no map '{table[:80]}'")
    kpis = kpi_entries(record)
    return {
        "id": record.id,
        "question": record.question,
        "created": record.created,
        "baseline": record.baseline,
        "plans": record.plans,
        "plan": chosen,
        "scenarios": _scenarios(store, record),
        "summary": record.summary,
        "kpis": kpis,
        "within_noise": within_noise(record, kpis),
        "validation": validation_status(_manifest(store, record.id)),
        "maps": _map_entries(request, record, chosen, maps),
        "map": table or next(iter(maps), None),
        "addresses": ADDRESSES in _readable_layers(request),
        "context": _context(request),
        "links": {
            "report": str(request.url_for("comparison_report", comparison_id=record.id)),
            "kpis": str(request.url_for("comparison_kpis", comparison_id=record.id)),
            "manifest": str(request.url_for("comparison_manifest", comparison_id=record.id)),
        },
    }


def _map_entries(
    request: Request, record: ComparisonRecord, plan: str, maps: dict[str, MapData]
) -> list[dict[str, Any]]:
    """Each mappable table of the plan: what it shows, its full GeoJSON, the page's compact map."""
    page_map = request.url_for("consultation_map", comparison_id=record.id)
    return [
        {
            "table": t.id,
            "label": t.label or t.name,
            "column": t.values[0].column,
            "unit": t.values[0].unit,
            "url": str(request.url_for("comparison_table", comparison_id=record.id, table=t.id, plan=plan)),
            "map": f"{page_map}?{urlencode({'plan': plan, 'table': t.id})}",
            "bounds": list(maps[t.id].bounds),
            "kind": maps[t.id].kind,
        }
        for t in record.tables
        if t.id in maps
    ]


def near(
    request: Request,
    comparison_id: str,
    *,
    plan: str | None,
    place: Place,
    radius_m: float,
) -> dict[str, Any]:
    """What changes within ``radius_m`` of ``place`` in every mapped table of the plan."""
    store, record = readable(request, comparison_id, params=_PARAMS)
    chosen = _plan(record, plan)
    tables = []
    for table in record.tables:
        try:
            frame = store.table_differences(record.id, table.id, chosen)
        except ProblemError:
            continue  # a table without results for this plan says nothing here
        if "geometry" in frame:
            tables.append(
                changes_near(frame, table, plan=chosen, lon=place.lon, lat=place.lat, radius_m=radius_m)
            )
    return {
        "comparison": record.id,
        "plan": chosen,
        "place": {"lon": place.lon, "lat": place.lat, "label": place.label},
        "radius_m": radius_m,
        "tables": tables,
    }


def find_address(request: Request, text: str) -> Place:
    """The point of an address of the twin's ``addresses`` layer (street and house number, case and
    accents ignored); 404 when the twin has none the caller may read, or none matches."""
    parts = split_address(text)
    if parts is None:
        raise bad_request("give a street and a house number, e.g. 'Mannerheimintie 5'")
    if ADDRESSES not in _readable_layers(request):
        raise not_found("this twin has no addresses to search")
    street, number = parts
    candidates = _with_number(request, number)
    wanted = fold(street)
    for exact in (True, False):
        for feature in candidates:
            props, geometry = feature["properties"], feature.get("geometry")
            found = fold(str(props.get("street") or ""))
            if geometry and (found == wanted if exact else found.startswith(wanted)):
                lon, lat = geometry["coordinates"][:2]
                return Place(
                    lon=float(lon), lat=float(lat), label=f"{props['street']} {props['housenumber']}"
                )
    raise not_found(f"no address '{text[:_MAX_ADDRESS]}' in this twin")


def _with_number(request: Request, number: str) -> list[dict[str, Any]]:
    """Every address of the twin with this house number (GeoJSON features), read page by page."""
    reader = get_twin(request).features
    found: list[dict[str, Any]] = []
    while True:
        query = FeatureQuery(limit=_ADDRESS_PAGE, offset=len(found), properties={"housenumber": number})
        page = reader.page(ADDRESSES, query)
        found += [json.loads(feature) for feature in page.features]
        if not page.features or len(found) >= page.matched:
            return found


def _place(request: Request, address: str | None, lon: float | None, lat: float | None) -> Place | None:
    if address:
        return find_address(request, address)
    if lon is None and lat is None:
        return None
    if lon is None or lat is None:
        raise bad_request("give both lon and lat")
    return Place(lon=lon, lat=lat, label=f"the point {lat:.5f}, {lon:.5f}")


def _plan(record: ComparisonRecord, plan: str | None) -> str:
    if plan is None:
        return record.plans[0]
    if plan not in record.plans:
        raise not_found(f"comparison '{record.id}' has no plan '{plan[:80]}'")
    return plan


def _manifest(store: ComparisonStore, comparison_id: str) -> dict[str, Any]:
    try:
        manifest = store.manifest(comparison_id)
    except ProblemError:
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _scenarios(store: ComparisonStore, record: ComparisonRecord) -> list[dict[str, Any]]:
    """Baseline and plans, each with its description (its scenario file) and its interventions in words
    (as the manifest recorded what was run)."""
    manifest = _manifest(store, record.id)
    ran = {s.get("name"): s for s in manifest.get("scenarios", []) if isinstance(s, dict)}
    files = {f.name: f for f in store.scenarios([record])}
    out = []
    for name in (record.baseline, *record.plans):
        entry = ran.get(name, {})
        file = files.get(name)
        interventions = [str(i.get("label") or i.get("type", "")) for i in entry.get("interventions", [])]
        out.append(
            {
                "name": name,
                "role": "baseline" if name == record.baseline else "plan",
                "description": file.description if file is not None else "",
                "interventions": interventions,
            }
        )
    return out


def _context(request: Request) -> list[dict[str, str]]:
    """The twin's layers the map draws faintly under the changes (green areas, buildings), as TileJSON
    URLs of the vector tiles the viewer uses: only those the caller may read."""
    drawable = set(get_twin(request).tiles.layers()) & _readable_layers(request)
    candidates = {"green": ("green",), "buildings": ("buildings_3d", "buildings")}
    return [
        {"key": key, "layer": layer, "url": str(request.url_for("tilejson", layer=layer))}
        for key, names in candidates.items()
        if (layer := next((name for name in names if name in drawable), None)) is not None
    ]


def _readable_layers(request: Request) -> set[str]:
    twin = get_twin(request)
    principal = current_principal(request)
    return {name for name in twin.features.layers if twin.policy.allows(principal, name)}


# ---- endpoints ----------------------------------------------------------------------------------


@router.get("/consultations/{comparison_id}/data", summary="A consultation page's content as JSON")
def consultation_data(
    request: Request, comparison_id: ComparisonId, plan: Plan = None, table: TableParam = None
) -> JSONResponse:
    """The question, scenarios, KPIs with intervals and change words, what is within noise, the
    validation status and the maps of one comparison."""
    check_params(request, ("plan", "table"))
    return JSONResponse(consultation(request, comparison_id, plan=plan, table=table))


@router.get(
    "/consultations/{comparison_id}/map",
    name="consultation_map",
    response_class=Response,
    responses={200: {"content": {GEOJSON_MEDIA_TYPE: {}}, "description": "FeatureCollection"}},
    summary="The page's map data: per key only its change and whether it is beyond noise, in GeoJSON",
)
def consultation_map(
    request: Request, comparison_id: ComparisonId, plan: Plan = None, table: TableParam = None
) -> Response:
    """The plan's changes in one table (the first mapped by default), each key with the first value's
    ``<col>_diff`` and ``<col>_real`` only and coordinates to 5 decimals (about 1 m): a fraction of
    the full table's GeoJSON, so the page draws fast. Cached per file version."""
    store, record = readable(request, comparison_id, params=("plan", "table"))
    chosen = _plan(record, plan)
    maps = _mapped(store, record, chosen)
    wanted = table or next(iter(maps), "")
    if wanted not in maps:
        raise not_found(f"comparison '{record.id}' has no map '{wanted[:80]}'")
    return Response(maps[wanted].body, media_type=GEOJSON_MEDIA_TYPE)


@dataclass(frozen=True)
class MapData:
    """One table's changes for the page's map: compact GeoJSON, its WGS84 bounds, its geometry kind."""

    body: bytes
    bounds: tuple[float, float, float, float]
    kind: str
    """How MapLibre draws it: ``line``, ``fill`` or ``circle``."""


def _mapped(store: ComparisonStore, record: ComparisonRecord, plan: str) -> dict[str, MapData]:
    """The tables of ``record`` that can be mapped for ``plan``, by id, in the record's order."""
    found = {}
    for table in record.tables:
        path = table_diff_file(store.run_dir(record.id), table.id, plan)
        try:
            version = path.stat().st_mtime_ns
        except OSError:
            continue
        data = _map_data(store, record.id, table.id, plan, table.values[0].column, version)
        if data is not None:
            found[table.id] = data
    return found


@lru_cache(maxsize=16)
def _map_data(
    store: ComparisonStore, comparison_id: str, table: str, plan: str, column: str, version: int
) -> MapData | None:
    """The map of one table's changes (``version``: the file's mtime, so a rewrite is read again);
    None when it has no shapes."""
    try:
        frame = store.table_differences(comparison_id, table, plan)
    except ProblemError:
        return None
    if "geometry" not in frame:
        return None
    shapes = shapely.set_precision(frame.geometry.to_numpy(), 1e-5)
    present = ~(shapely.is_missing(shapes) | shapely.is_empty(shapes))
    if not present.any():
        return None
    keep = [c for c in (f"{column}_diff", f"{column}_real") if c in frame]
    values = frame.loc[present, keep]
    rows = values.astype(object).where(values.notna(), None)
    features = [
        '{"type":"Feature","geometry":' + geometry + ',"properties":'
        + json.dumps(dict(zip(keep, row, strict=True)), allow_nan=False) + "}"
        for geometry, row in zip(shapely.to_geojson(shapes[present]), rows.itertuples(index=False, name=None), strict=True)
    ]  # fmt: skip
    west, south, east, north = (float(v) for v in shapely.total_bounds(shapes[present]))
    kind = shapely.get_type_id(shapes[present][0])
    return MapData(
        body=('{"type":"FeatureCollection","features":[' + ",".join(features) + "]}").encode(),
        bounds=(west, south, east, north),
        kind="circle" if kind in (0, 4) else "line" if kind in (1, 2, 5) else "fill",
    )


@router.get(
    "/consultations/{comparison_id}/near",
    name="consultation_near",
    summary="What changes near an address or a point",
)
def consultation_near(
    request: Request,
    comparison_id: ComparisonId,
    plan: Plan = None,
    address: Address = None,
    lon: Lon = None,
    lat: Lat = None,
    radius: Radius = NEAR_RADIUS_M,
) -> JSONResponse:
    """Per mapped table of the plan: what lies within ``radius`` m of the address or point, what of it
    changes beyond run-to-run noise, and a sentence saying so."""
    check_params(request, ("plan", "address", "lon", "lat", "radius"))
    readable(
        request, comparison_id, params=_PARAMS
    )  # an unknown or hidden comparison is a 404 before anything else
    place = _place(request, address, lon, lat)
    if place is None:
        raise bad_request("give an address, or lon and lat")
    return JSONResponse(near(request, comparison_id, plan=plan, place=place, radius_m=radius))


@router.get(
    "/consultations/{comparison_id}", name="consultation_page", summary="The public consultation page"
)
def consultation_page(
    request: Request,
    comparison_id: ComparisonId,
    plan: Plan = None,
    table: TableParam = None,
    address: Address = None,
    lon: Lon = None,
    lat: Lat = None,
    radius: Radius = NEAR_RADIUS_M,
    *,
    now: Now,
) -> HTMLResponse:
    """The page: every number on it is the comparison's own; near-me is answered in the page when the
    URL names an address or a point, so a link shares exactly what its sender saw. A consultation
    taking contributions also shows the approved ones and the vote counts (docs/consultation.md)."""
    check_params(request, _PARAMS)
    content = consultation(request, comparison_id, plan=plan, table=table)
    say = (
        published(request, content["id"], now, params=_PARAMS)
        if takes_contributions(request, content["id"])
        else None
    )
    answer: dict[str, Any] | None = None
    problem = ""
    try:
        place = _place(request, address, lon, lat)
        if place is not None:
            answer = near(request, comparison_id, plan=plan, place=place, radius_m=radius)
    except ProblemError as exc:
        problem = exc.detail
    html = _TEMPLATE.render(
        c=content,
        near=answer,
        problem=problem,
        address=address or "",
        radius=radius,
        script=viewer_built() and (STATIC_DIR / "consult.js").is_file(),
        page_url=str(request.url_for("consultation_page", comparison_id=content["id"])),
        near_url=str(request.url_for("consultation_near", comparison_id=content["id"])),
        contributions_url=str(request.url_for("public_contributions", comparison_id=content["id"])),
        say=say,
    )
    return HTMLResponse(
        html,
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Referrer-Policy": "no-referrer"},
    )


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ c.question or ('Consultation: ' ~ c.id) }} · civictwin</title>
<link rel="icon" href="data:,">
{% if script %}<link rel="stylesheet" href="../viewer/consult.css">
<script type="module" src="../viewer/consult.js"></script>{% endif %}
<style>
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 62rem; padding: 0 1rem 2rem; color: #1a1a1a; line-height: 1.45; }
a { color: #0050a0; }
.skip { position: absolute; left: -999px; } .skip:focus { left: 1rem; top: .5rem; background: #fff; padding: .3rem; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #bbb; padding: .35rem .5rem; text-align: left; vertical-align: top; }
thead th { background: #eee; }
.table-wrap { overflow-x: auto; }
.noise { color: #555; font-style: italic; }
.map { height: 22rem; border: 1px solid #bbb; background: #eceff1; }
nav ul, .plans { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .4rem 1rem; }
form.near { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; }
form.near input { font-size: 1rem; padding: .4rem; min-width: 14rem; }
form.near button { font-size: 1rem; padding: .4rem .8rem; }
#near-result { border-left: 4px solid #0050a0; padding: .2rem .8rem; margin-top: .8rem; }
.print-only { display: none; }
@media (max-width: 40rem) {
  .kpis thead { position: absolute; left: -999px; }
  .kpis tr, .kpis td, .kpis th { display: block; border: 0; }
  .kpis tr { border: 1px solid #bbb; margin-bottom: .6rem; padding: .3rem; }
  .kpis td::before { content: attr(data-label) ": "; font-weight: 600; }
  .map { height: 16rem; }
}
@media print {
  nav, form.near, .map, .screen-only, .skip { display: none !important; }
  .print-only { display: block; }
  body { max-width: none; font-size: 11pt; }
  a[href^="http"]::after { content: " (" attr(href) ")"; font-size: 9pt; }
  section { break-inside: avoid-page; }
}
</style>
</head>
<body data-consult-state="loading" data-comparison="{{ c.id }}" data-plan="{{ c.plan }}" data-near-url="{{ near_url }}"
{%- for m in c.maps if m.table == c.map %} data-table="{{ m.table }}" data-geojson="{{ m.map }}" data-column="{{ m.column }}" data-kind="{{ m.kind }}" data-bounds='{{ m.bounds | tojson }}' data-context='{{ c.context | tojson }}'{% endfor %}
{%- if near %} data-lon="{{ near.place.lon }}" data-lat="{{ near.place.lat }}"{% endif %}>
<a class="skip" href="#main">Skip to content</a>
<header>
<p>Public consultation · comparison <code>{{ c.id }}</code> of {{ c.created[:10] }}</p>
<nav aria-label="Sections"><ul>
<li><a href="#scenarios">Scenarios</a></li><li><a href="#indicators">Indicators</a></li>
<li><a href="#noise">Within noise</a></li><li><a href="#validation">Validation</a></li>
<li><a href="#where">Where it changes</a></li><li><a href="#near">Near me</a></li>
</ul></nav>
</header>
<main id="main">
<h1>{{ c.question or ('What changes with ' ~ c.plans | join(', ') ~ ' compared with ' ~ c.baseline ~ '?') }}</h1>
<section aria-labelledby="words-h"><h2 id="words-h">In plain words</h2>
<ul>{% for s in c.summary %}<li>{{ s }}</li>{% endfor %}</ul></section>

<section id="scenarios" aria-labelledby="scenarios-h"><h2 id="scenarios-h">The scenarios</h2>
<dl>{% for s in c.scenarios %}<dt><strong>{{ s.name }}</strong> ({{ 'today, the baseline' if s.role == 'baseline' else 'a plan' }})</dt>
<dd>{% if s.description %}{{ s.description }}{% endif %}{% if s.interventions %}<ul>{% for i in s.interventions %}<li>{{ i }}</li>{% endfor %}</ul>{% elif not s.description %}{{ 'As the city is today.' if s.role == 'baseline' else 'No description was given.' }}{% endif %}</dd>
{% endfor %}</dl></section>

<section id="indicators" aria-labelledby="kpi-h"><h2 id="kpi-h">Indicators</h2>
<p>Each scenario was simulated several times with different random seeds; a number is the mean of those runs and the range in brackets its 95% confidence interval. A change is called within run-to-run noise when its interval includes no change.</p>
<div class="table-wrap"><table class="kpis">
<caption>Indicators per scenario, with 95% intervals, and the change of each plan</caption>
<thead><tr><th scope="col">Indicator</th>{% for v in c.kpis[0]['values'] if c.kpis %}<th scope="col">{{ v.scenario }}</th>{% endfor %}{% for p in c.plans %}<th scope="col">Change with {{ p }}</th>{% endfor %}</tr></thead>
<tbody>{% for k in c.kpis %}<tr data-kpi="{{ k.kpi }}"><th scope="row">{{ k.label }}{% if k.unit and not k.share %} ({{ k.unit }}){% endif %}</th>
{% for v in k['values'] %}<td data-label="{{ v.scenario }}">{{ v.text }}</td>{% endfor %}
{% for p in c.plans %}{% set ch = k.changes | selectattr('plan', 'equalto', p) | first %}<td data-label="Change with {{ p }}"{% if ch and ch.within_noise %} class="noise"{% endif %}>{{ ch.words if ch else '–' }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table></div></section>

<section id="noise" aria-labelledby="noise-h"><h2 id="noise-h">What is within noise</h2>
{% if c.within_noise %}<ul>{% for s in c.within_noise %}<li>{{ s }}</li>{% endfor %}</ul>{% else %}<p>Every change shown stands out from run-to-run noise.</p>{% endif %}</section>

<section id="validation" aria-labelledby="validation-h"><h2 id="validation-h">How far the model can be trusted</h2>
{% if c.validation %}<p>{{ c.validation.statement }}</p>
<p><strong>{{ 'Meets' if c.validation.meets_dmrb else 'Does not meet' }}</strong> the usual criterion for traffic models (DMRB / TAG M3.1: GEH below 5 at 85% of count sites) after calibration ({{ c.validation.id }}).{% if c.validation.held_back_note %} {{ c.validation.held_back_note }}{% endif %}</p>
{% else %}<p>No validation against observations was recorded for these runs: treat the numbers as the model's estimate, not as measurements.</p>{% endif %}</section>

<section id="where" aria-labelledby="where-h"><h2 id="where-h">Where it changes</h2>
{% if c.plans | length > 1 %}<p>Plan shown:</p><ul class="plans">{% for p in c.plans %}<li>{% if p == c.plan %}<strong aria-current="true">{{ p }}</strong>{% else %}<a href="?plan={{ p | urlencode }}">{{ p }}</a>{% endif %}</li>{% endfor %}</ul>{% endif %}
{% for m in c.maps %}{% if m.table == c.map %}<figure>
<div id="map" class="map" role="region" aria-label="Map of the change in {{ m.label | lower }} ({{ m.column }}, {{ m.unit }}) with {{ c.plan }} against {{ c.baseline }}; click a place to hear what changes near it, or use the form below"></div>
<figcaption>Change in {{ m.column }} ({{ m.unit }}) per {{ m.label | lower }}, {{ c.plan }} minus {{ c.baseline }}: orange more, purple less, grey within noise. <span class="print-only">The interactive map is at {{ page_url }}.</span> <a href="{{ m.url }}">The numbers behind the map (GeoJSON)</a>.</figcaption>
</figure>
<p id="map-status" role="status"></p>{% endif %}{% endfor %}
{% if c.maps | length > 1 %}<p>Other maps:</p><ul class="plans">{% for m in c.maps %}{% if m.table != c.map %}<li><a href="?plan={{ c.plan | urlencode }}&amp;table={{ m.table | urlencode }}">{{ m.label }}</a></li>{% endif %}{% endfor %}</ul>{% endif %}
</section>

<section id="near" aria-labelledby="near-h"><h2 id="near-h">What changes near me</h2>
<form class="near" method="get" action="{{ page_url }}">
<input type="hidden" name="plan" value="{{ c.plan }}">
{% if c.addresses %}<div><label for="address">Your address (street and number)</label><br>
<input id="address" name="address" type="text" autocomplete="street-address" value="{{ address }}" placeholder="e.g. Mannerheimintie 5"></div>
<button type="submit">Show changes near this address</button>{% else %}<p>This twin has no addresses to search; click the map instead.</p>{% endif %}
</form>
<p class="screen-only">Or click the map{% if script and c.map %}, or <button type="button" id="near-centre">describe the map's centre</button>{% endif %}. Changes within {{ radius | round | int }} m are described.</p>
<div id="near-result" role="region" aria-live="polite" aria-label="What changes near the chosen place">
{% if problem %}<p>{{ problem }}</p>{% elif near %}<p><strong>Near {{ near.place.label }}</strong> (plan {{ near.plan }}):</p>
<ul>{% for t in near.tables %}<li>{{ t.label }}: {{ t.sentence }}</li>{% else %}<li>Nothing of this comparison can be placed on the map.</li>{% endfor %}</ul>
{% else %}<p>Choose a place to see what changes there.</p>{% endif %}</div>
</section>

{% if say %}<section id="say" aria-labelledby="say-h" data-contributions-url="{{ contributions_url }}">
<h2 id="say-h">Have your say</h2>
<p>{% if say.phase == 'open' %}Open for comments and votes until {{ say.closes[:10] }}.{% elif say.phase == 'before' %}Comments and votes open on {{ say.opens[:10] }}.{% else %}This consultation closed on {{ say.closes[:10] }}; comments are no longer taken.{% endif %}</p>
<div id="say-published"><h3>Votes so far (approved)</h3>
<ul class="say-counts">{% for s, n in say.counts.items() %}<li>{{ s }}: {{ n['for'] }} for, {{ n['against'] }} against, {{ n['comments'] }} comment{{ '' if n['comments'] == 1 else 's' }}</li>{% endfor %}</ul>
<h3>Comments (approved by a moderator)</h3>
{% if say.contributions %}<ol class="say-comments">{% for x in say.contributions %}<li><strong>{{ x.pseudonym }} on {{ x.scenario }} ({{ x.theme }}){% if x.vote %}, {{ x.vote }}{% endif %} · {{ x.date }}</strong>{% if x.text %}<p>{{ x.text }}</p>{% endif %}</li>{% endfor %}</ol>{% else %}<p>No approved comments yet.</p>{% endif %}</div>
{% if say.phase == 'open' %}<noscript><p>Sending a comment or a vote needs JavaScript (the page's protection against bots runs in the browser).</p></noscript>{% endif %}
</section>{% endif %}

<p><a href="{{ c.links.report }}">Full technical report</a> · <a href="{{ c.links.kpis }}">Indicators as data (JSON)</a> · <a href="{{ c.links.manifest }}">How to reproduce it (run manifest)</a></p>
</main>
</body>
</html>
"""

_TEMPLATE = Environment(autoescape=True).from_string(_PAGE)
