"""OGC API – Features – Part 1: Core (OGC 17-069r4) and Part 2: CRS by reference (OGC 18-058r1) over
the twin's layers, in GeoJSON and HTML.

Resources: landing page ``/``, ``/conformance``, ``/collections``, ``/collections/{id}``,
``/collections/{id}/items`` (``bbox``, ``bbox-crs``, ``crs``, ``datetime``, ``limit``, ``offset``,
property equality filters such as ``?highway=primary``) and ``/collections/{id}/items/{featureId}``
(``crs``). Geometries are in WGS84 longitude/latitude (CRS84) unless ``crs`` asks for the twin's
storage CRS (a city's national CRS); the answer names its CRS in ``Content-Crs``. A ``limit`` above
the maximum is capped, as the standard requires; a malformed or unknown parameter is a 400 problem.
Layers the caller may not read are absent.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pyproj import CRS

from civictwin.api import html
from civictwin.api.context import PublishedTwin, get_twin, visible_layer, visible_layers
from civictwin.api.openapi30 import OPENAPI_30_MEDIA_TYPE, downgrade
from civictwin.api.problems import bad_request, not_found
from civictwin.api.query import (
    Format,
    check_params,
    parse_bbox,
    parse_datetime,
    parse_projected_bbox,
    wants_html,
)
from civictwin.store.features import FeatureQuery, LayerInfo, coerce_value

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
GREGORIAN = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"
GEOJSON = "application/geo+json"
OPENAPI_JSON = "application/vnd.oai.openapi+json;version=3.1"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
]
ITEM_PARAMS = frozenset({"f", "limit", "offset", "bbox", "bbox-crs", "crs", "datetime"})
"""Query parameters of the items resource besides property filters."""

router = APIRouter(tags=["OGC API – Features"])

FormatParam = Annotated[
    Format | None,
    Query(description="Encoding: `json` or `html` (default: from the Accept header, else JSON)"),
]
CollectionId = Annotated[str, Path(description="A layer of the twin", max_length=63)]


@router.get("/", summary="Landing page", response_model=None)
def landing(request: Request, f: FormatParam = None) -> Response:
    """The API's landing page: links to its definition, conformance and collections."""
    check_params(request, {"f"})
    twin = get_twin(request)
    links = [
        *_self_links(request, "this document", json_type="application/json"),
        _link(request, "/openapi.json", "service-desc", OPENAPI_JSON, "the API definition"),
        _link(
            request,
            "/openapi-3.0.json",
            "service-desc",
            OPENAPI_30_MEDIA_TYPE,
            "the API definition in OpenAPI 3.0",
        ),
        _link(request, "/conformance", "conformance", "application/json", "conformance classes"),
        _link(request, "/collections", "data", "application/json", "collections"),
        _link(request, "/tiles", "tiles", "application/json", "vector tile sets"),
    ]
    description = "Layers of the urban digital twin as OGC API – Features and vector tiles."
    body = {"title": twin.title, "description": description, "links": links}
    if wants_html(request, f):
        return html.page(twin.title, description=description, links=links)
    return JSONResponse(body)


@router.get("/openapi-3.0.json", include_in_schema=False)
def openapi_30(request: Request) -> JSONResponse:
    """The API definition in OpenAPI 3.0.3 (the same document as ``/openapi.json``, in 3.0's dialect)."""
    check_params(request, ())
    return JSONResponse(downgrade(request.app.openapi()), media_type=OPENAPI_30_MEDIA_TYPE)


@router.get("/conformance", summary="Conformance classes", response_model=None)
def conformance(request: Request, f: FormatParam = None) -> Response:
    """The OGC conformance classes this API implements."""
    check_params(request, {"f"})
    if wants_html(request, f):
        return html.page(
            "Conformance", headers=["conformance class"], rows=[[html.cell(c, c)] for c in CONFORMANCE]
        )
    return JSONResponse({"conformsTo": CONFORMANCE})


@router.get("/collections", summary="Collections (the layers you may read)", response_model=None)
def collections(request: Request, f: FormatParam = None) -> Response:
    """Every layer the caller may read."""
    check_params(request, {"f"})
    twin = get_twin(request)
    items = [_collection(request, twin, info) for info in visible_layers(request).values()]
    links = _self_links(request, "collections", json_type="application/json")
    if wants_html(request, f):
        rows = [
            [html.cell(c["id"], _url(request, f"/collections/{c['id']}?f=html")), html.cell(c["title"])]
            for c in items
        ]
        return html.page("Collections", headers=["id", "title"], rows=rows, links=links)
    return JSONResponse({"links": links, "collections": items})


@router.get("/collections/{collection_id}", summary="One collection", response_model=None)
def collection(request: Request, collection_id: CollectionId, f: FormatParam = None) -> Response:
    """The description of one layer: extent, CRS and links to its items."""
    check_params(request, {"f"})
    info = visible_layer(request, collection_id)
    body = _collection(request, get_twin(request), info)
    if wants_html(request, f):
        rows = [[html.cell(k), html.cell(json.dumps(v))] for k, v in body.items() if k != "links"]
        return html.page(body["title"], description=body["description"], rows=rows, links=body["links"])
    return JSONResponse(body)


@router.get(
    "/collections/{collection_id}/items",
    summary="Features of a collection",
    response_model=None,
    responses={200: {"content": {GEOJSON: {}}}},
)
def items(
    request: Request,
    collection_id: CollectionId,
    f: FormatParam = None,
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            description="Features per page (default 10); values above the maximum (10 000) are capped.",
        ),
    ] = None,
    offset: Annotated[int, Query(ge=0, le=2**62, description="Features to skip (paging)")] = 0,
    bbox: Annotated[
        str | None,
        Query(
            description="minLon,minLat,maxLon,maxLat in WGS84 (CRS84), or 6 numbers with heights; in the "
            "storage CRS (minX,minY,maxX,maxY) when bbox-crs names it"
        ),
    ] = None,
    bbox_crs: Annotated[
        str | None,
        Query(alias="bbox-crs", description="The CRS of bbox (a URI of the collection's crs list)"),
    ] = None,
    crs: Annotated[
        str | None,
        Query(description="The CRS of the geometries returned (CRS84, the default, or the storage CRS)"),
    ] = None,
    datetime_: Annotated[
        str | None,
        Query(
            alias="datetime",
            description="RFC 3339 instant, date, or interval `start/end` (`..` or empty: open)",
        ),
    ] = None,
) -> Response:
    """A page of features; other query parameters filter by property equality (``?highway=primary``)."""
    info = visible_layer(request, collection_id)
    check_params(request, ITEM_PARAMS | set(info.properties))
    twin = get_twin(request)
    bbox_native = _chosen_crs(twin, bbox_crs, parameter="bbox-crs")
    native = _chosen_crs(twin, crs, parameter="crs")
    parse = parse_projected_bbox if bbox_native else parse_bbox
    query = FeatureQuery(
        limit=min(limit or twin.settings.default_limit, twin.settings.max_limit),
        offset=offset,
        bbox=parse(bbox) if bbox is not None else None,
        interval=parse_datetime(datetime_) if datetime_ is not None else None,
        properties=_property_filters(request, info),
        bbox_in_store_crs=bbox_native,
        in_store_crs=native,
    )
    page = twin.features.page(collection_id, query)
    links = _page_links(request, query, returned=len(page.features), matched=page.matched)
    stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    if wants_html(request, f):
        return _items_html(request, info, page.features, page.matched, links)
    content = (
        '{"type":"FeatureCollection","features":['
        + ",".join(page.features)
        + f'],"numberMatched":{page.matched},"numberReturned":{len(page.features)},'
        + f'"timeStamp":"{stamp}","links":{json.dumps(links)}}}'
    )
    return Response(content, media_type=GEOJSON, headers=_content_crs(twin, native))


@router.get(
    "/collections/{collection_id}/items/{feature_id}",
    summary="One feature",
    response_model=None,
    responses={200: {"content": {GEOJSON: {}}}},
)
def feature(
    request: Request,
    collection_id: CollectionId,
    feature_id: Annotated[str, Path(description="The feature's id (as in its collection's items)")],
    f: FormatParam = None,
    crs: Annotated[
        str | None,
        Query(description="The CRS of the geometry returned (CRS84, the default, or the storage CRS)"),
    ] = None,
) -> Response:
    """One feature by id."""
    check_params(request, {"f", "crs"})
    visible_layer(request, collection_id)
    twin = get_twin(request)
    native = _chosen_crs(twin, crs, parameter="crs")
    missing = not_found(f"no feature '{feature_id}' in collection '{collection_id}'")
    if not feature_id.isdigit() or len(feature_id) > 18:
        raise missing
    text = twin.features.feature(collection_id, int(feature_id), in_store_crs=native)
    if text is None:
        raise missing
    links = [
        *_self_links(request, f"feature {feature_id}", json_type=GEOJSON),
        _link(request, f"/collections/{collection_id}", "collection", "application/json", "the collection"),
    ]
    if wants_html(request, f):
        data = json.loads(text)
        rows = [[html.cell(k), html.cell(v)] for k, v in data["properties"].items()]
        return html.page(
            f"{collection_id} {feature_id}",
            headers=["property", "value"],
            rows=rows,
            links=links,
            pre=json.dumps(data["geometry"]),
        )
    return Response(
        text[:-1] + f',"links":{json.dumps(links)}}}', media_type=GEOJSON, headers=_content_crs(twin, native)
    )


def _content_crs(twin: PublishedTwin, native: bool) -> dict[str, str]:
    """The ``Content-Crs`` header (Part 2): the CRS of the geometries in the answer, in angle brackets."""
    return {"Content-Crs": f"<{storage_crs_uri(twin.store.crs) if native else CRS84}>"}


@cache
def storage_crs_uri(crs: str) -> str:
    """The OGC URI of the twin's storage CRS (``EPSG:3067`` → ``http://www.opengis.net/def/crs/EPSG/0/3067``).

    Remembered per CRS (a twin has one; parsing it with PROJ took a tenth of a filtered page's CPU).
    """
    authority = CRS.from_user_input(crs).to_authority()
    if authority is None:
        return crs
    return f"http://www.opengis.net/def/crs/{authority[0]}/0/{authority[1]}"


def _chosen_crs(twin: PublishedTwin, raw: str | None, *, parameter: str) -> bool:
    """Whether ``raw`` (a ``crs`` or ``bbox-crs`` value) asks for the storage CRS; CRS84 when absent.

    Any other CRS is a 400 naming the ones offered.
    """
    storage = storage_crs_uri(twin.store.crs)
    if raw is None or raw == CRS84:
        return False
    if raw == storage:
        return True
    raise bad_request(f"{parameter}: {raw[:100]!r} is not offered; use {CRS84} or {storage}")


def _property_filters(request: Request, info: LayerInfo) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    for key, raw in request.query_params.items():
        if key in ITEM_PARAMS:
            continue
        try:
            filters[key] = coerce_value(info.properties[key], raw)
        except ValueError as exc:
            raise bad_request(f"{key}: {exc}") from None
    return filters


def _collection(request: Request, twin: PublishedTwin, info: LayerInfo) -> dict[str, Any]:
    meta = twin.metadata(info.name)
    base = f"/collections/{info.name}"
    links = [
        _link(request, base, "self", "application/json", "this collection"),
        _link(request, f"{base}?f=html", "alternate", "text/html", "this collection as HTML"),
        _link(request, f"{base}/items", "items", GEOJSON, "features"),
        _link(request, f"{base}/items?f=html", "items", "text/html", "features as HTML"),
    ]
    if info.has_geometry:
        links.append(_link(request, f"/tiles/{info.name}.json", "tiles", "application/json", "vector tiles"))
    extent: dict[str, Any] = {}
    if info.bbox_wgs84 is not None:
        extent["spatial"] = {"bbox": [list(info.bbox_wgs84)], "crs": CRS84}
    if info.time_extent is not None:
        extent["temporal"] = {"interval": [list(info.time_extent)], "trs": GREGORIAN}
    body: dict[str, Any] = {
        "id": info.name,
        "title": str(meta.get("title") or info.name.replace("_", " ").capitalize()),
        "description": str(meta.get("description") or ""),
        "itemType": "feature",
        "crs": [CRS84, storage_crs_uri(twin.store.crs)] if info.has_geometry else [CRS84],
        "links": links,
    }
    if info.has_geometry:
        body["storageCrs"] = storage_crs_uri(twin.store.crs)
    if extent:
        body["extent"] = extent
    return body


def _page_links(
    request: Request, query: FeatureQuery, *, returned: int, matched: int
) -> list[dict[str, Any]]:
    """self, alternate, and next/prev links that keep every other parameter of the request."""
    plain = request.url.remove_query_params("f")

    def link(params: dict[str, Any], rel: str, media: str, title: str) -> dict[str, Any]:
        return {"href": str(plain.include_query_params(**params)), "rel": rel, "type": media, "title": title}

    links = [
        link({"limit": query.limit, "offset": query.offset}, "self", GEOJSON, "this page"),
        link({"limit": query.limit, "offset": query.offset, "f": "html"}, "alternate", "text/html", "HTML"),
    ]
    if query.offset + returned < matched:
        links.append(link({"limit": query.limit, "offset": query.offset + returned}, "next", GEOJSON, "next"))
    if query.offset > 0:
        previous = max(0, query.offset - query.limit)
        links.append(link({"limit": query.limit, "offset": previous}, "prev", GEOJSON, "previous"))
    return links


def _items_html(
    request: Request, info: LayerInfo, features: list[str], matched: int, links: list[dict[str, Any]]
) -> Response:
    parsed = [json.loads(text) for text in features]
    headers = ["id", *info.properties]
    rows = [
        [
            html.cell(item["id"], _url(request, f"/collections/{info.name}/items/{item['id']}?f=html")),
            *(html.cell(item["properties"].get(p)) for p in info.properties),
        ]
        for item in parsed
    ]
    description = f"{len(parsed)} of {matched} matching features"
    return html.page(info.name, description=description, headers=headers, rows=rows, links=links)


def _self_links(request: Request, title: str, *, json_type: str) -> list[dict[str, Any]]:
    plain = request.url.remove_query_params("f")
    return [
        {"href": str(plain), "rel": "self", "type": json_type, "title": title},
        {
            "href": str(plain.include_query_params(f="html")),
            "rel": "alternate",
            "type": "text/html",
            "title": title,
        },
    ]


def _link(request: Request, path: str, rel: str, media: str, title: str) -> dict[str, Any]:
    return {"href": _url(request, path), "rel": rel, "type": media, "title": title}


def _url(request: Request, path: str) -> str:
    """An absolute URL for a path of this API (honours a root path set by a proxy)."""
    return str(request.base_url).rstrip("/") + path
