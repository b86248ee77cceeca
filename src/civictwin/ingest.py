"""Import the ``[[sensors]]`` of ``twin.toml`` into the twin's observation store.

For each source: read the file (or server) into a feed, match traffic counting points to the twin's
directed network edges, register its dataset and datastreams, append the observations (idempotently:
a second import of the same file stores nothing twice), and record catalogue, lineage and quality per
datastream. The twin's own store is only read (for the network and the area); it may be served or
rebuilt meanwhile, and observations live on through every rebuild.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from civictwin.area import resolve_area
from civictwin.catalog.metadata import sha256_of
from civictwin.catalog.observations import record_datastreams
from civictwin.config import CONFIG_FILENAME, SensorSourceConfig, TwinConfig, load_config
from civictwin.errors import ConfigError, SourceError, StoreError
from civictwin.geometry import WGS84
from civictwin.model.counts import EdgeMatch, match_count_sites
from civictwin.sources.observations import ObservationFeed, reader_for
from civictwin.store.observations import (
    DatasetSpec,
    DatastreamSpec,
    FeatureSpec,
    ObservationBatch,
    ObservationStore,
    open_observations,
)
from civictwin.store.opening import open_store

CHUNK = 250_000
"""Observations per append (one transaction each): bounded memory, progress a reader can see."""
ProgressCallback = Callable[[str], None]


@dataclass
class ImportSummary:
    """What importing one ``[[sensors]]`` source did."""

    source: str
    origin: str
    datastreams: int
    stored: int
    duplicates: int
    rejected: dict[str, int]
    notes: list[str] = field(default_factory=list)
    matched_edges: int = 0
    ambiguous_matches: int = 0
    unmatched: int = 0


def import_sensors(
    config: TwinConfig,
    *,
    names: Sequence[str] | None = None,
    on_step: ProgressCallback | None = None,
) -> list[ImportSummary]:
    """Import the configured sensor sources (all, or those in ``names``) into the observation store."""
    sources = _selected(config, names)
    area = resolve_area(config) if any(s.clip for s in sources) else None
    summaries = []
    with open_observations(config) as store:
        for source in sources:
            if on_step:
                on_step(f"importing {source.name} ({source.format.value})")
            summaries.append(import_source(config, source, store, area=area if source.clip else None))
    return summaries


def add_sensor_source(twin_dir: Path, *, marker: str, section: str, source: str) -> TwinConfig:
    """Append ``section`` (holding a ``[[sensors]]`` source named ``source``) to the ``twin.toml`` of
    ``twin_dir`` unless the file already has ``marker``, and import ``source`` unless the observation
    store already has its datastreams: each once, since the store outlives rebuilds. The demos add
    their counts so; returns the twin's configuration as it is afterwards."""
    path = twin_dir / CONFIG_FILENAME
    text = path.read_text(encoding="utf-8")
    if marker not in text:
        path.write_text(text.rstrip("\n") + "\n" + section, encoding="utf-8")
    config = load_config(twin_dir)
    with open_observations(config) as store:
        imported = any(info.dataset == source for info in store.datastreams())
    if not imported:
        import_sensors(config, names=[source])
    return config


def _selected(config: TwinConfig, names: Sequence[str] | None) -> list[SensorSourceConfig]:
    if not config.sensors:
        raise ConfigError("no [[sensors]] sources configured", field="sensors")
    if not names:
        return list(config.sensors)
    known = {s.name: s for s in config.sensors}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"no [[sensors]] source named {', '.join(map(repr, unknown))}", field="sensors")
    return [known[n] for n in names]


def import_source(
    config: TwinConfig, source: SensorSourceConfig, store: ObservationStore, *, area: BaseGeometry | None
) -> ImportSummary:
    """Import one source into ``store`` (see the module docstring)."""
    origin: Path | str = source.url if source.url else config.resolve(source.path or "")
    feed = reader_for(source.format)(source, origin, area)
    matches = _attach_edges(config, source, feed) if feed.count_sites else []
    dataset = DatasetSpec(
        name=source.name,
        title=source.display_title,
        publisher=source.publisher,
        steward=source.steward,
        licence=source.licence,
        access=source.access.value,
        description=source.description,
    )
    store.ensure_dataset(dataset)
    ids = {spec.key: store.ensure_datastream(spec) for spec in feed.datastreams}
    stored, duplicates, rejected = _append(store, feed, ids, origin=str(origin))
    infos = [info for info in store.datastreams() if info.key in ids]
    reader_rejections = feed.rejected
    checksum = sha256_of(Path(origin)) if isinstance(origin, Path) else str(feed_digest(feed))
    record_datastreams(
        store,
        dataset,
        infos,
        source={"source": source.name, "path": str(origin), "sha256": checksum},
        step=f"ingest.import_source ({source.format.value})",
        parameters=source.model_dump(mode="json", exclude={"licence", "publisher", "steward", "access"}),
        import_rejections=reader_rejections,
        expected=feed.expected,
        notes=feed.notes,
        imported_at=datetime.now(UTC),
        bboxes=_bboxes(feed.datastreams),
    )
    for reasons in reader_rejections.values():
        for reason, count in reasons.items():
            rejected[reason] = rejected.get(reason, 0) + count
    return ImportSummary(
        source=source.name,
        origin=str(origin),
        datastreams=len(ids),
        stored=stored,
        duplicates=duplicates,
        rejected=rejected,
        notes=feed.notes,
        matched_edges=sum(1 for m in matches if m.edge_ids),
        ambiguous_matches=sum(1 for m in matches if m.ambiguous),
        unmatched=sum(1 for m in matches if not m.edge_ids),
    )


def _append(
    store: ObservationStore, feed: ObservationFeed, ids: dict[str, int], *, origin: str
) -> tuple[int, int, dict[str, int]]:
    frame = feed.observations
    stored = duplicates = 0
    rejected: dict[str, int] = {}
    for start in range(0, len(frame), CHUNK):
        chunk = frame.iloc[start : start + CHUNK]
        batch = ObservationBatch.of(
            datastream_id=chunk["datastream"].map(ids).to_numpy(np.int64),
            phenomenon_time=chunk["phenomenon_time"].to_numpy(np.int64),
            phenomenon_end=chunk["phenomenon_end"].to_numpy(np.int64),
            result=chunk["result"].to_numpy(np.float64),
            quality=chunk["quality"].to_numpy(np.int8),
        )
        result = store.append(batch, origin=origin)
        stored += result.stored
        duplicates += result.duplicates
        for reason, count in result.rejected_by_reason.items():
            rejected[reason] = rejected.get(reason, 0) + count
    return stored, duplicates, rejected


def feed_digest(feed: ObservationFeed) -> str:
    """A SHA-256 of a feed's observations, the checksum of a source read from a server."""
    import hashlib

    hashed = pd.util.hash_pandas_object(feed.observations, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


def _bboxes(specs: list[DatastreamSpec]) -> dict[str, list[float]]:
    """Each datastream's WGS84 extent: its feature of interest's, or its location's."""
    boxes = {}
    for spec in specs:
        if spec.feature is not None:
            bounds = shapely.geometry.shape(dict(spec.feature.geometry)).bounds
            boxes[spec.key] = [round(v, 7) for v in bounds]
        else:
            location = spec.thing.location
            boxes[spec.key] = [round(location.lon, 7), round(location.lat, 7)] * 2
    return boxes


def _attach_edges(config: TwinConfig, source: SensorSourceConfig, feed: ObservationFeed) -> list[EdgeMatch]:
    """Match the feed's counting points to the twin's directed edges and put the matches into its
    datastreams: the edge as feature of interest, edge id, heading, distance and doubts as properties."""
    edges, crs = _network(config)
    assert source.centre is not None  # required by the config for count formats
    points = gpd.GeoSeries([shapely.Point(s.lon, s.lat) for s in feed.count_sites], crs=WGS84).to_crs(crs)
    centre = gpd.GeoSeries([shapely.Point(*source.centre)], crs=WGS84).to_crs(crs).iloc[0]
    matches = match_count_sites(
        feed.count_sites, points, edges, centre=centre, max_distance_m=source.max_distance_m
    )
    by_direction = {(m.site, m.direction): m for m in matches}
    lines = edges.set_index("edge_id").geometry.to_crs(WGS84)
    specs = []
    for spec in feed.datastreams:
        match = by_direction[(spec.properties["point"], spec.properties["direction"])]
        specs.append(_with_match(spec, match, lines))
    feed.datastreams = specs
    ambiguous = sum(1 for m in matches if m.ambiguous)
    unmatched = sum(1 for m in matches if not m.edge_ids)
    feed.notes.append(
        f"{len(matches)} point-directions: {len(matches) - unmatched} matched to directed edges "
        f"({ambiguous} flagged ambiguous), {unmatched} without an edge"
    )
    return matches


def _with_match(spec: DatastreamSpec, match: EdgeMatch, lines: gpd.GeoSeries) -> DatastreamSpec:
    properties = {**spec.properties, **match.as_properties}
    if not match.edge_ids:
        return dataclasses.replace(spec, properties=properties)
    geometry = shapely.geometry.mapping(
        lines.loc[match.edge_ids[0]]
        if len(match.edge_ids) == 1
        else shapely.MultiLineString([lines.loc[e] for e in match.edge_ids])
    )
    feature = FeatureSpec(
        key=f"{spec.dataset}/edge/{'+'.join(match.edge_ids)}",
        name=f"{match.street or 'edge'} ({', '.join(match.edge_ids)})",
        description="Directed network edge of the twin the count was matched to",
        geometry=_plain(geometry),
        properties={"edge_ids": list(match.edge_ids), "heading": match.heading},
    )
    return dataclasses.replace(spec, feature=feature, properties=properties)


def _plain(value: Any) -> Any:
    """GeoJSON from shapely's mapping (tuples) as plain lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _network(config: TwinConfig) -> tuple[gpd.GeoDataFrame, str]:
    """The twin's directed network edges (and its CRS); counts need a built twin."""
    try:
        store = open_store(config)
    except StoreError as exc:
        raise SourceError(f"traffic counts are matched to the twin's network: {exc.message}") from None
    with store:
        if not store.has_table("network_edges"):
            raise SourceError("traffic counts are matched to the network, but the twin has no network_edges")
        return store.read_frame("network_edges", columns=["edge_id", "name", "car", "geometry"]), store.crs
