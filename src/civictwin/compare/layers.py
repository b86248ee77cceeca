"""Shapes for an engine's tables: each table's key joined to the twin layer it declares, or the
table's own geometry, in WGS84 for maps, the API and the viewer.

Which layer and which key come from the engine's :class:`~civictwin.engines.base.TableSpec`; nothing
here knows an engine.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import geopandas as gpd
import pandas as pd
import shapely

from civictwin.engines.base import TableSpec, TwinContext
from civictwin.geometry import WGS84
from civictwin.store.personal import read_published


@dataclass(frozen=True)
class TwinLayers:
    """The twin layers tables map onto (each with its key columns and geometry), in the twin's CRS."""

    crs: str | None
    frames: Mapping[str, gpd.GeoDataFrame] = field(default_factory=dict)


def read_layers(twin: TwinContext, layers: Collection[str]) -> TwinLayers:
    """The named layers of the twin's store (those it has), read in one visit to the store.

    A twin held only in memory (no ``twin.toml``) has none: its tables are then written without shapes.
    """
    if twin.config is None:
        return TwinLayers(crs=None)
    with twin.open_store() as store:  # without personal columns: comparisons are published too
        read = {name: read_published(store, name) for name in sorted(set(layers)) if store.has_table(name)}
        frames = {name: frame for name, frame in read.items() if isinstance(frame, gpd.GeoDataFrame)}
        return TwinLayers(crs=store.crs, frames=frames)


def with_geometry(
    frame: pd.DataFrame, spec: TableSpec, layers: TwinLayers, own: pd.DataFrame | None = None
) -> gpd.GeoDataFrame | pd.DataFrame:
    """``frame`` (key columns + values) with the shapes of its keys in WGS84, when there are any.

    For a table mapped onto a twin layer the shapes (and the layer's ``name``, when it has one) are that
    layer's; for a table with its own
    geometry, ``own`` holds the key columns and a ``geometry`` column (WKB or shapes, twin CRS). Keys
    without a shape keep an empty geometry; a table with no shapes at all is returned as it is.
    """
    key = list(spec.key)
    shapes = _shapes(spec, layers, own)
    if shapes is None or layers.crs is None:
        return frame
    aligned = [frame[k].astype(shapes[k].dtype) if k in shapes else frame[k] for k in key]
    joined = frame.assign(**dict(zip(key, aligned, strict=True))).merge(shapes, on=key, how="left")
    return gpd.GeoDataFrame(joined, geometry="geometry", crs=layers.crs).to_crs(WGS84)


def _shapes(spec: TableSpec, layers: TwinLayers, own: pd.DataFrame | None) -> pd.DataFrame | None:
    key = list(spec.key)
    if spec.layer is None:
        if own is None or "geometry" not in own:
            return None
        geometry = own["geometry"]
        values = geometry.to_numpy()
        if len(values) and isinstance(values[0], bytes | bytearray | memoryview):
            values = shapely.from_wkb(values)
        return pd.DataFrame({**{k: own[k].to_numpy() for k in key}, "geometry": values}).drop_duplicates(key)
    layer = layers.frames.get(spec.layer)
    if layer is None or any(k not in layer for k in key):
        return None
    taken = {*key, *(column for column, _ in spec.values)}
    named = ["name"] if "name" in layer and "name" not in taken else []  # for people reading the map
    return pd.DataFrame(layer[[*key, *named, "geometry"]]).drop_duplicates(key)
