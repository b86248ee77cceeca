"""Sources read from a city's data platform: OGC API – Features, WFS 2.0 and SensorThings, page by page.

Each kind is read with explicit HTTP paging (:mod:`civictwin.sources.remote`) rather than GDAL's OAPIF
and WFS drivers: only then does every page's ``ETag``/``Last-Modified`` reach lineage (for
conditional refreshes), a failure name the page it happened on, and nothing be kept of a read that
failed half-way. Per kind:

- ``ogcapi_features``: ``{url}/collections/{collection}/items?limit={page_size}``, then each page's
  link with ``rel = "next"``; features in CRS84 (OGC API – Features Part 1's default).
- ``wfs``: ``GetFeature`` of WFS 2.0.0 with ``TYPENAMES``, ``COUNT`` and ``STARTINDEX``, following the
  response's ``next`` attribute (or, when a server gives none, the next ``STARTINDEX`` while pages come
  back full). GML 3.2 responses are read with GDAL's GML driver from memory (no schema download, no
  ``.gfs`` file); a server answering GeoJSON is read as such. An ``ows:ExceptionReport`` is an error.
- ``sensorthings``: the Things of a SensorThings API v1.1 service with their Locations
  (``Things?$expand=Locations``), following ``@iot.nextLink``: one point per Thing (its first point
  Location) with ``thing_id``, ``name``, ``description``, ``location_name`` and ``properties`` (JSON).

All pages are read before anything is written. The features then become one **snapshot**: a
GeoParquet file ``snapshots/<source>/<sha256 prefix>.parquet`` beside ``twin.toml``, named by its
own SHA-256 (identical data gives the identical file, so a refresh can tell "unchanged" by checksum
when a server sends no validators). The snapshot is what the build reads, like a vector file, and
what lineage records, with the retrieval time, each page's URL and validators, and the checksum.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import geopandas as gpd
import httpx
import pandas as pd
import pyarrow as pa
import pyogrio
import shapely
from lxml import etree

from civictwin.config import REMOTE_KINDS, SourceConfig, SourceKind, TwinConfig
from civictwin.errors import SourceError
from civictwin.geometry import WGS84
from civictwin.sources.base import BuildContext, IngestResult
from civictwin.sources.observations.sensorthings import point_location
from civictwin.sources.remote import PAGE_SIZE, Page, Snapshot, follow_pages, open_client, where
from civictwin.sources.vector import read_layer, select_columns, store_layer

SNAPSHOTS = "snapshots"
"""Folder beside ``twin.toml`` holding each remote source's snapshots."""
_GML_BOUNDS = ("lowerCorner", "upperCorner")
"""Fields GDAL makes of each GML feature's ``boundedBy`` envelope when it has no schema: not data."""


def ingest(source: SourceConfig, ctx: BuildContext) -> IngestResult:
    """Read the remote source (or take the snapshot a refresh already fetched) into table ``source.name``."""
    snapshot = ctx.snapshots.get(source.name) or fetch_snapshot(source, ctx.config)
    raw = read_layer(source, snapshot.path)
    layer = store_layer(source, ctx, raw, select_columns(source, raw.attributes, snapshot.path))
    layer.notes.append(f"snapshot of {snapshot.features} feature(s) retrieved {snapshot.retrieved_at}")
    return IngestResult(
        source=source, path=snapshot.path, layers=[layer], lineage={"remote": snapshot.lineage()}
    )


def fetch_snapshots(config: TwinConfig, *, have: dict[str, Snapshot]) -> dict[str, Snapshot]:
    """``have`` plus a fresh snapshot of every other remote source of the twin, fetched in config order."""
    fetched = dict(have)
    for source in config.sources:
        if source.kind in REMOTE_KINDS and source.name not in fetched:
            fetched[source.name] = fetch_snapshot(source, config)
    return fetched


def fetch_snapshot(source: SourceConfig, config: TwinConfig) -> Snapshot:
    """Read every page of the source, then store the features as one snapshot file (nothing before)."""
    retrieved_at = datetime.now(UTC).isoformat(timespec="seconds")
    reader = _READERS[source.kind]
    frames: list[gpd.GeoDataFrame] = []
    pages: list[dict[str, str | None]] = []
    matched: int | None = None
    with open_client(source, accept=reader.accept) as client:
        for page in follow_pages(
            client, reader.first_url(source), reader.next_url(source), label=where(source)
        ):
            frames.append(reader.features(page, where(source)))
            pages.append(page.validators())
            matched = reader.matched(page) if page.number == 1 else matched
    frame = _combine(frames, source)
    if matched is not None and matched != len(frame):
        raise SourceError(
            f"the server announced {matched} feature(s) on page 1 but its {len(pages)} page(s) held {len(frame)}: "
            "the data changed while it was read, or the server pages inconsistently; nothing was stored",
            path=where(source),
        )
    path, checksum = _write_snapshot(frame, config.resolve(SNAPSHOTS) / source.name, label=where(source))
    return Snapshot(
        source=source.name, path=path, url=str(source.url), retrieved_at=retrieved_at, sha256=checksum,
        features=len(frame), pages=pages,
    )  # fmt: skip


def _combine(frames: list[gpd.GeoDataFrame], source: SourceConfig) -> gpd.GeoDataFrame:
    crs = {str(f.crs) for f in frames if f.crs is not None and len(f)}
    if len(crs) > 1:
        raise SourceError(f"pages in different CRSs ({', '.join(sorted(crs))})", path=where(source))
    kept = [f for f in frames if len(f)]
    if not kept:
        raise SourceError("no features", path=where(source))
    combined = pd.concat(kept, ignore_index=True)
    return _plain_values(gpd.GeoDataFrame(combined, geometry="geometry", crs=kept[0].crs))


def _plain_values(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Attribute columns a table can hold: nested JSON values as JSON text, mixed-type columns as text.

    GeoJSON properties may be objects or lists, and a property may be a number on one page and text
    on another (or GDAL may guess a GML field's type differently per page); such a column is kept as
    text rather than refused.
    """
    for column in frame.columns:
        if column == frame.geometry.name or frame[column].dtype != object:
            continue
        values = frame[column].map(
            lambda v: json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v
        )
        if len({type(v) for v in values.dropna()}) > 1:
            values = values.map(lambda v: None if v is None or v is pd.NA else str(v))
        frame[column] = values
    return frame


def _write_snapshot(frame: gpd.GeoDataFrame, folder: Path, *, label: str) -> tuple[Path, str]:
    """Write GeoParquet into ``folder`` under its own SHA-256 prefix (temp file, then rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, suffix=".parquet.part")
    os.close(handle)
    try:
        try:
            frame.to_parquet(temporary, index=False)
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise SourceError(
                f"the features cannot be stored as GeoParquet: {exc}", path=str(folder)
            ) from None
        checksum = hashlib.sha256(Path(temporary).read_bytes()).hexdigest()
        path = folder / f"{checksum[:16]}.parquet"
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return path, checksum


@dataclass(frozen=True)
class _Reader:
    accept: str
    first_url: Callable[[SourceConfig], str]
    next_url: Callable[[SourceConfig], Callable[[Page], str | None]]
    features: Callable[[Page, str], gpd.GeoDataFrame]
    matched: Callable[[Page], int | None] = lambda _page: None
    """How many features the server says the whole collection has (from the first page), if it says."""


def _page_size(source: SourceConfig) -> int:
    return source.page_size or PAGE_SIZE


def _json(page: Page, label: str) -> Any:
    try:
        return json.loads(page.body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"page {page.number} ({page.url}): not valid JSON: {exc}", path=label) from None


# OGC API – Features


def _oapif_first(source: SourceConfig) -> str:
    return f"{str(source.url).rstrip('/')}/collections/{quote(str(source.collection), safe='')}/items?limit={_page_size(source)}"


def _oapif_next(_source: SourceConfig) -> Callable[[Page], str | None]:
    def next_url(page: Page) -> str | None:
        links = _json(page, "").get("links") or []
        found = [link.get("href") for link in links if isinstance(link, dict) and link.get("rel") == "next"]
        return urljoin(page.url, str(found[0])) if found and found[0] else None

    return next_url


def _oapif_matched(page: Page) -> int | None:
    matched = _json(page, "").get("numberMatched")
    return matched if isinstance(matched, int) and not isinstance(matched, bool) else None


def _geojson_features(page: Page, label: str) -> gpd.GeoDataFrame:
    """The features of a GeoJSON FeatureCollection page; a malformed feature is named by its position."""
    document = _json(page, label)
    features = document.get("features") if isinstance(document, dict) else None
    if not isinstance(features, list):
        raise SourceError(f"page {page.number} ({page.url}): not a GeoJSON FeatureCollection", path=label)
    rows, geometries = [], []
    for position, feature in enumerate(features, start=1):
        if not isinstance(feature, dict) or feature.get("type") != "Feature" or "geometry" not in feature:
            raise SourceError(
                f"page {page.number} ({page.url}), feature {position}: not a GeoJSON Feature", path=label
            )
        try:
            geometries.append(shapely.geometry.shape(feature["geometry"]) if feature["geometry"] else None)
        except (AttributeError, TypeError, ValueError, KeyError, shapely.errors.GEOSException) as exc:
            raise SourceError(f"page {page.number} ({page.url}), feature {position}: bad geometry: {exc}",
                              path=label) from None  # fmt: skip
        properties = dict(feature.get("properties") or {})
        if "id" in feature and "id" not in properties:
            properties["id"] = feature["id"]
        rows.append(properties)
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry=geometries, crs=WGS84)


# WFS 2.0


def _wfs_first(source: SourceConfig) -> str:
    return _wfs_url(source, start=0)


def _wfs_url(source: SourceConfig, *, start: int) -> str:
    params = {"SERVICE": "WFS", "VERSION": "2.0.0", "REQUEST": "GetFeature", "TYPENAMES": str(source.typename),
              "COUNT": str(_page_size(source)), "STARTINDEX": str(start)}  # fmt: skip
    return str(httpx.URL(str(source.url)).copy_merge_params(params))


def _wfs_next(source: SourceConfig) -> Callable[[Page], str | None]:
    def next_url(page: Page) -> str | None:
        if _is_json(page):
            returned = len(_json(page, "").get("features") or [])
            attribute = None
        else:
            root = etree.fromstring(page.body)
            returned = int(root.get("numberReturned") or 0)
            attribute = root.get("next")
        if attribute:
            return str(attribute)
        if returned < _page_size(source):
            return None
        start = int(httpx.URL(page.url).params.get("STARTINDEX") or 0)
        return _wfs_url(source, start=start + returned)

    return next_url


def _wfs_matched(page: Page) -> int | None:
    if _is_json(page):
        return _oapif_matched(page)
    matched = etree.fromstring(page.body).get("numberMatched") or ""
    return int(matched) if matched.isdigit() else None  # "unknown" is allowed by WFS 2.0


def _is_json(page: Page) -> bool:
    return "json" in page.content_type.lower()


def _wfs_features(page: Page, label: str) -> gpd.GeoDataFrame:
    if _is_json(page):
        return _geojson_features(page, label)
    try:
        root = etree.fromstring(page.body)
    except etree.XMLSyntaxError as exc:
        raise SourceError(f"page {page.number} ({page.url}): not valid XML: {exc}", path=label) from None
    name = etree.QName(root).localname
    if name == "ExceptionReport":
        text = " ".join(" ".join(root.itertext()).split())[:300]
        raise SourceError(
            f"page {page.number} ({page.url}): the server reports an exception: {text}", path=label
        )
    if name != "FeatureCollection":
        raise SourceError(
            f"page {page.number} ({page.url}): expected a wfs:FeatureCollection, got {name}", path=label
        )
    if int(root.get("numberReturned") or 0) == 0:
        return gpd.GeoDataFrame(geometry=[], crs=WGS84)
    try:
        frame = pyogrio.read_dataframe(io.BytesIO(page.body), DOWNLOAD_SCHEMA="NO", WRITE_GFS="NO")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise SourceError(f"page {page.number} ({page.url}): unreadable GML: {exc}", path=label) from None
    return frame.drop(columns=[c for c in _GML_BOUNDS if c in frame.columns])


# SensorThings


def _sta_first(source: SourceConfig) -> str:
    return f"{str(source.url).rstrip('/')}/Things?$expand=Locations&$top={_page_size(source)}"


def _sta_next(_source: SourceConfig) -> Callable[[Page], str | None]:
    def next_url(page: Page) -> str | None:
        link = _json(page, "").get("@iot.nextLink")
        return str(link) if link else None

    return next_url


def _sta_things(page: Page, label: str) -> gpd.GeoDataFrame:
    document = _json(page, label)
    things = document.get("value") if isinstance(document, dict) else None
    if not isinstance(things, list):
        raise SourceError(f"page {page.number} ({page.url}): not a SensorThings collection", path=label)
    rows, geometries = [], []
    for position, thing in enumerate(things, start=1):
        location = point_location(thing.get("Locations") or []) if isinstance(thing, dict) else None
        if location is None:
            raise SourceError(
                f"page {page.number} ({page.url}), Thing {position}: no point Location", path=label
            )
        geometries.append(shapely.Point(location[0], location[1]))
        rows.append({"thing_id": str(thing.get("@iot.id")), "name": str(thing.get("name") or ""),
                     "description": str(thing.get("description") or ""), "location_name": location[2],
                     "properties": json.dumps(thing.get("properties") or {}, sort_keys=True)})  # fmt: skip
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry=geometries, crs=WGS84)


_READERS = {
    SourceKind.OGCAPI_FEATURES: _Reader(
        "application/geo+json, application/json;q=0.9",
        _oapif_first,
        _oapif_next,
        _geojson_features,
        _oapif_matched,
    ),
    SourceKind.WFS: _Reader(
        "application/gml+xml, text/xml;q=0.9, */*;q=0.1", _wfs_first, _wfs_next, _wfs_features, _wfs_matched
    ),
    SourceKind.SENSORTHINGS: _Reader("application/json", _sta_first, _sta_next, _sta_things),
}
