"""Terrain: heights for buildings and network nodes, and gradient-aware walking and cycling times.

Heights are sampled bilinearly from the stored DEM (``sources/dem.py``). A building's base
elevation is the lowest terrain under its footprint (sampled at every footprint vertex and at a
point inside it), so no building floats above a slope. Each edge's walking and cycling time adds
up its segments between vertices, each at the flat speed times a grade factor:

- walking: Tobler's hiking function, ``6 e^(-3.5 |s + 0.05|)`` km/h, taken relative to its value on
  the flat (Tobler 1993, "Three presentations on geographical analysis and modeling", NCGIA
  Technical Report 93-1), so the flat speed stays the configured one;
- cycling: the grade speed factors of Valhalla's bicycle costing (``src/sif/bicyclecost.cc``,
  ``kGradeBasedSpeedFactor``: 2.2 at −10 % … 1.0 flat … 0.3 at +15 %), interpolated linearly between
  its grades and held at its ends.

Method and sources: docs/methods-terrain.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely

from civictwin.config import TerrainSection

BIKE_GRADES = np.array([-10, -8, -6.5, -5, -3, -1.5, 0, 1.5, 3, 5, 6.5, 8, 10, 11.5, 13, 15]) / 100.0
BIKE_FACTORS = np.array(
    [2.2, 2.0, 1.9, 1.7, 1.4, 1.2, 1.0, 0.95, 0.85, 0.75, 0.65, 0.55, 0.5, 0.45, 0.4, 0.3]
)
"""Valhalla's bicycle speed factor per grade (rise ÷ run), src/sif/bicyclecost.cc."""


@dataclass(frozen=True)
class Terrain:
    """A height grid in the twin's CRS: row 0 at ``y_max``, column 0 at ``x_min``, square cells."""

    heights: npt.NDArray[np.float64]
    x_min: float
    y_max: float
    cell: float

    @classmethod
    def from_blocks(cls, blocks: pd.DataFrame) -> Terrain:
        """Reassemble the blocks a ``dem`` source stored."""
        cell = float(blocks["cell_size_m"].iloc[0])
        x_min, y_max = float(blocks["x_min"].min()), float(blocks["y_max"].max())
        rows = round((y_max - (blocks["y_max"] - blocks["height"] * cell).min()) / cell)
        cols = round(((blocks["x_min"] + blocks["width"] * cell).max() - x_min) / cell)
        heights = np.full((rows, cols), np.nan)
        for block in blocks.to_dict("records"):
            r, c = (
                round((y_max - float(block["y_max"])) / cell),
                round((float(block["x_min"]) - x_min) / cell),
            )
            data = np.frombuffer(block["heights"], dtype="<f4").reshape(
                int(block["height"]), int(block["width"])
            )
            heights[r : r + data.shape[0], c : c + data.shape[1]] = data
        return cls(heights=heights, x_min=x_min, y_max=y_max, cell=cell)

    def sample(self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Bilinear heights at points (cell values sit at cell centres); NaN outside or on no data."""
        col = (np.asarray(x, float) - self.x_min) / self.cell - 0.5
        row = (self.y_max - np.asarray(y, float)) / self.cell - 0.5
        rows, cols = self.heights.shape
        c0 = np.clip(np.floor(col).astype(int), 0, max(cols - 2, 0))
        r0 = np.clip(np.floor(row).astype(int), 0, max(rows - 2, 0))
        fc = np.clip(col - c0, 0.0, 1.0)
        fr = np.clip(row - r0, 0.0, 1.0)
        c1, r1 = np.minimum(c0 + 1, cols - 1), np.minimum(r0 + 1, rows - 1)
        h = self.heights
        top = h[r0, c0] * (1 - fc) + h[r0, c1] * fc
        bottom = h[r1, c0] * (1 - fc) + h[r1, c1] * fc
        value = top * (1 - fr) + bottom * fr
        outside = (col < -0.5) | (row < -0.5) | (col > cols - 0.5) | (row > rows - 0.5)
        result: npt.NDArray[np.float64] = np.where(outside, np.nan, value)
        return result


def building_bases(buildings: gpd.GeoDataFrame, terrain: Terrain) -> pd.Series:
    """Each building's base elevation: the lowest terrain at its footprint's vertices and inside it (m)."""
    geometry = buildings.geometry.to_numpy()
    coords, owner = shapely.get_coordinates(geometry, return_index=True)
    inner = shapely.get_coordinates(shapely.point_on_surface(geometry))
    xs = np.concatenate([coords[:, 0], inner[:, 0]])
    ys = np.concatenate([coords[:, 1], inner[:, 1]])
    owners = np.concatenate([owner, np.arange(len(geometry))])
    heights = terrain.sample(xs, ys)
    base = np.full(len(geometry), np.nan)
    np.fmin.at(base, owners, heights)
    return pd.Series(np.round(base, 2), index=buildings.index)


def node_heights(nodes: gpd.GeoDataFrame, terrain: Terrain) -> pd.Series:
    """Terrain height at each network node (m)."""
    xy = shapely.get_coordinates(nodes.geometry.to_numpy())
    return pd.Series(np.round(terrain.sample(xy[:, 0], xy[:, 1]), 2), index=nodes.index)


def tobler_factor(grade: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Walking speed on ``grade`` (rise ÷ run) relative to the flat, by Tobler's hiking function."""
    factor: npt.NDArray[np.float64] = np.exp(-3.5 * np.abs(grade + 0.05)) / np.exp(-3.5 * 0.05)
    return factor


def bike_factor(grade: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Cycling speed on ``grade`` relative to the flat, by Valhalla's factors (linear between grades)."""
    factor: npt.NDArray[np.float64] = np.interp(grade, BIKE_GRADES, BIKE_FACTORS)
    return factor


def edge_slopes(edges: gpd.GeoDataFrame, terrain: Terrain, settings: TerrainSection) -> pd.DataFrame:
    """Per edge: net ``grade``, ``climb_m`` and walking/cycling times (s) over its segments' slopes.

    Segments whose ends have no terrain height count as flat; ``grade`` is null for such edges.
    """
    coords, owner = shapely.get_coordinates(edges.geometry.to_numpy(), return_index=True)
    z = terrain.sample(coords[:, 0], coords[:, 1])
    same = owner[1:] == owner[:-1]
    run = np.hypot(np.diff(coords[:, 0]), np.diff(coords[:, 1]))[same]
    rise = np.diff(z)[same]
    seg_owner = owner[1:][same]
    with np.errstate(invalid="ignore", divide="ignore"):
        grade = np.where(run > 0, rise / run, 0.0)
    grade = np.nan_to_num(grade, nan=0.0)
    walk_ms = settings.walk_speed_kmh / 3.6
    bike_ms = settings.bike_speed_kmh / 3.6
    n = len(edges)
    walk = np.bincount(seg_owner, weights=run / (walk_ms * tobler_factor(grade)), minlength=n)
    bike = np.bincount(seg_owner, weights=run / (bike_ms * bike_factor(grade)), minlength=n)
    climb = np.bincount(seg_owner, weights=np.clip(np.nan_to_num(rise), 0, None), minlength=n)
    first = np.searchsorted(owner, np.arange(n))
    last = np.searchsorted(owner, np.arange(n), side="right") - 1
    length = shapely.length(edges.geometry.to_numpy())
    with np.errstate(invalid="ignore", divide="ignore"):
        net = (z[last] - z[first]) / length
    return pd.DataFrame({
        "grade": np.round(net, 4), "climb_m": np.round(climb, 2),
        "walk_time_s": np.round(walk, 1), "bike_time_s": np.round(bike, 1),
    }, index=edges.index)  # fmt: skip
