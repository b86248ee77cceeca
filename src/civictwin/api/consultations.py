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
from jinja2 import Environment, PackageLoader, Template

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
    summary_words,
    validation_status,
    within_noise,
)
from civictwin.i18n import COOKIE, DEFAULT, LANGUAGES, Language, choose, language
from civictwin.model.names import fold
from civictwin.runs import ComparisonRecord, table_diff_file
from civictwin.store.features import FeatureQuery

ADDRESSES = "addresses"
_PARAMS = ("plan", "table", "address", "lon", "lat", "radius", "lang")
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
Lang = Annotated[
    str | None,
    Query(
        description="The page's language (en, sk, it); else its cookie, else Accept-Language", max_length=16
    ),
]


@dataclass(frozen=True)
class Place:
    """Where near-me looks: a point and what to call it."""

    lon: float
    lat: float
    label: str


def consultation(
    request: Request, comparison_id: str, *, plan: str | None, table: str | None, lang: Language | None = None
) -> dict[str, Any]:
    """The page's content as plain data (the JSON endpoint and the HTML page render the same), its
    words and numbers in ``lang`` (English by default)."""
    store, record = readable(request, comparison_id, params=_PARAMS)
    chosen = _plan(record, plan)
    maps = _mapped(store, record, chosen)
    if table is not None and table not in maps:
        raise not_found(f"comparison '{record.id}' has no map '{table[:80]}'")
    kpis = kpi_entries(record, lang=lang)
    return {
        "id": record.id,
        "question": record.question,
        "created": record.created,
        "baseline": record.baseline,
        "plans": record.plans,
        "plan": chosen,
        "scenarios": _scenarios(store, record),
        "summary": summary_words(record, kpis, lang=lang),
        "kpis": kpis,
        "within_noise": within_noise(record, kpis, lang=lang),
        "validation": validation_status(_manifest(store, record.id)),
        "maps": _map_entries(request, record, chosen, maps, lang=lang or language(DEFAULT)),
        "map": table or next(iter(maps), None),
        "addresses": ADDRESSES in _readable_layers(request),
        "context": _context(request),
        "links": {
            "report": _report_link(request, record.id, lang),
            "kpis": str(request.url_for("comparison_kpis", comparison_id=record.id)),
            "manifest": str(request.url_for("comparison_manifest", comparison_id=record.id)),
        },
    }


def _report_link(request: Request, comparison_id: str, lang: Language | None) -> str:
    """The comparison's report, in the page's language when the page has one (the report route reads
    no cookie of the consultation pages: theirs is kept to ``/consultations``)."""
    url = request.url_for("comparison_report", comparison_id=comparison_id)
    return str(url.include_query_params(lang=lang.code) if lang is not None else url)


def _map_entries(
    request: Request, record: ComparisonRecord, plan: str, maps: dict[str, MapData], *, lang: Language
) -> list[dict[str, Any]]:
    """Each mappable table of the plan: what it shows (in ``lang``), its full GeoJSON, the page's
    compact map."""
    page_map = request.url_for("consultation_map", comparison_id=record.id)
    return [
        {
            "table": t.id,
            "label": lang.gettext(t.label) if t.label else t.name,
            "column": t.values[0].column,
            "unit": lang.gettext(t.values[0].unit) if t.values[0].unit else "",
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
    lang: Language | None = None,
) -> dict[str, Any]:
    """What changes within ``radius_m`` of ``place`` in every mapped table of the plan (in ``lang``)."""
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
                changes_near(
                    frame, table, plan=chosen, lon=place.lon, lat=place.lat, radius_m=radius_m, lang=lang
                )
            )
    return {
        "comparison": record.id,
        "plan": chosen,
        "place": {"lon": place.lon, "lat": place.lat, "label": place.label},
        "radius_m": radius_m,
        "tables": tables,
    }


def find_address(request: Request, text: str, *, lang: Language) -> Place:
    """The point of an address of the twin's ``addresses`` layer (street and house number, case and
    accents ignored); 404 when the twin has none the caller may read, or none matches (said in
    ``lang``: the page shows it to the resident who typed the address)."""
    parts = split_address(text)
    if parts is None:
        raise bad_request(lang.gettext("give a street and a house number, e.g. 'Mannerheimintie 5'"))
    if ADDRESSES not in _readable_layers(request):
        raise not_found(lang.gettext("this twin has no addresses to search"))
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
    raise not_found(lang.gettext("no address '{address}' in this twin").format(address=text[:_MAX_ADDRESS]))


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


def _place(
    request: Request, address: str | None, lon: float | None, lat: float | None, lang: Language
) -> Place | None:
    if address:
        return find_address(request, address, lang=lang)
    if lon is None and lat is None:
        return None
    if lon is None or lat is None:
        raise bad_request(lang.gettext("give both lon and lat"))
    point = lang.gettext("the point {lat}, {lon}").format(
        lat=lang.decimal(lat, decimals=5, grouped=False), lon=lang.decimal(lon, decimals=5, grouped=False)
    )
    return Place(lon=lon, lat=lat, label=point)


def _plan(record: ComparisonRecord, plan: str | None) -> str:
    """The plan the page shows: ``plan``, or the first; a 404 when the comparison has no plan evaluated
    (each failed the simulation's quality check: its finding is in the comparison's summary)."""
    if not record.plans:
        failed = ", ".join(f"'{f.scenario}'" for f in record.not_evaluated)
        raise not_found(
            f"comparison '{record.id}' has no plan to consult: {failed} failed the simulation's quality check"
        )
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
    request: Request,
    comparison_id: ComparisonId,
    plan: Plan = None,
    table: TableParam = None,
    lang: Lang = None,
) -> JSONResponse:
    """The question, scenarios, KPIs with intervals and change words, what is within noise, the
    validation status and the maps of one comparison."""
    check_params(request, ("plan", "table", "lang"))
    reader = page_language(request, lang)
    return JSONResponse(consultation(request, comparison_id, plan=plan, table=table, lang=reader))


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
    lang: Lang = None,
) -> JSONResponse:
    """Per mapped table of the plan: what lies within ``radius`` m of the address or point, what of it
    changes beyond run-to-run noise, and a sentence saying so."""
    check_params(request, ("plan", "address", "lon", "lat", "radius", "lang"))
    readable(
        request, comparison_id, params=_PARAMS
    )  # an unknown or hidden comparison is a 404 before anything else
    reader = page_language(request, lang)
    place = _place(request, address, lon, lat, reader)
    if place is None:
        raise bad_request("give an address, or lon and lat")
    return JSONResponse(near(request, comparison_id, plan=plan, place=place, radius_m=radius, lang=reader))


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
    lang: Lang = None,
    *,
    now: Now,
) -> HTMLResponse:
    """The page: every number on it is the comparison's own; near-me is answered in the page when the
    URL names an address or a point, so a link shares exactly what its sender saw. A consultation
    taking contributions also shows the approved ones and the vote counts (docs/consultation.md)."""
    check_params(request, _PARAMS)
    reader = page_language(request, lang)
    content = consultation(request, comparison_id, plan=plan, table=table, lang=reader)
    say = (
        published(request, content["id"], now, params=_PARAMS)
        if takes_contributions(request, content["id"])
        else None
    )
    answer: dict[str, Any] | None = None
    problem = ""
    try:
        place = _place(request, address, lon, lat, reader)
        if place is not None:
            answer = near(request, comparison_id, plan=plan, place=place, radius_m=radius, lang=reader)
    except ProblemError as exc:
        problem = exc.detail
    html = _template(reader.code).render(
        c=content,
        lang=reader,
        languages=LANGUAGES,
        lang_query=lambda code: urlencode(
            [(k, v) for k, v in request.query_params.multi_items() if k != "lang"] + [("lang", code)]
        ),
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
    response = HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Referrer-Policy": "no-referrer",
            "Content-Language": reader.code,
            "Vary": "Accept-Language, Cookie",
        },
    )
    if request.query_params.get("lang") == reader.code:
        # The switcher's choice is remembered for the consultation pages only (a preference, not
        # tracking: no identifier, nothing sent anywhere else).
        response.set_cookie(COOKIE, reader.code, max_age=365 * 86400, path="/consultations", samesite="lax")
    return response


@lru_cache(maxsize=len(LANGUAGES))
def _template(code: str) -> Template:
    """The page's template with ``code``'s catalogue installed (``_``, ``ngettext``; Jinja's i18n
    extension, new-style: placeholders are keyword arguments, and translations are autoescaped)."""
    environment = Environment(
        loader=PackageLoader("civictwin.api", "templates"), autoescape=True, extensions=["jinja2.ext.i18n"]
    )
    environment.install_gettext_translations(language(code).translations, newstyle=True)  # type: ignore[attr-defined]
    return environment.get_template("consultation.html")


def page_language(request: Request, lang: str | None) -> Language:
    """The reader's language: ``lang`` (the page's switcher), then its cookie, then Accept-Language."""
    return language(
        choose(
            override=lang,
            cookie=request.cookies.get(COOKIE),
            accept_language=request.headers.get("accept-language"),
        )
    )
