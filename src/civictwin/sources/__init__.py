"""Readers for each source kind; :func:`reader_for` picks one by kind."""

from __future__ import annotations

from collections.abc import Callable

from civictwin.config import REMOTE_KINDS, SourceConfig, SourceKind
from civictwin.sources.base import BuildContext, IngestResult

Reader = Callable[[SourceConfig, BuildContext], IngestResult]


def reader_for(kind: SourceKind) -> Reader:
    """The ingest function for a source kind."""
    if kind is SourceKind.OSM:
        from civictwin.sources.osm import ingest as osm_ingest

        return osm_ingest
    if kind is SourceKind.GTFS:
        from civictwin.sources.gtfs import ingest as gtfs_ingest

        return gtfs_ingest
    if kind is SourceKind.CITYJSON:
        from civictwin.sources.cityjson import ingest as cityjson_ingest

        return cityjson_ingest
    if kind is SourceKind.CITYGML:
        from civictwin.sources.citygml import ingest as citygml_ingest

        return citygml_ingest
    if kind is SourceKind.DEM:
        from civictwin.sources.dem import ingest as dem_ingest

        return dem_ingest
    if kind is SourceKind.MOBILITY:
        from civictwin.sources.mobility import ingest as mobility_ingest

        return mobility_ingest
    if kind is SourceKind.SURVEY:
        from civictwin.sources.survey import ingest as survey_ingest

        return survey_ingest
    if kind is SourceKind.DRONE:
        from civictwin.sources.drone import ingest as drone_ingest

        return drone_ingest
    if kind in REMOTE_KINDS:
        from civictwin.sources.platform import ingest as platform_ingest

        return platform_ingest
    if kind is SourceKind.GRID:
        from civictwin.sources.grid import ingest as grid_ingest

        return grid_ingest
    from civictwin.sources.vector import ingest as vector_ingest

    return vector_ingest
