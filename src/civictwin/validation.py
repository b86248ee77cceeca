"""Check a twin's estimated population against an observed population grid, cell by cell.

Only grid cells lying wholly inside the twin's area are compared: a cell cut by the area boundary
would be compared with only part of its buildings.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd

from civictwin.store.base import Store

FULLY_INSIDE = 0.99


@dataclass(frozen=True)
class GridComparison:
    """Estimated vs observed residents in the grid cells fully inside the area."""

    cells: int
    observed_total: float
    estimated_total: float
    mean_absolute_error: float
    median_absolute_error: float
    correlation: float
    per_cell: pd.DataFrame

    @property
    def total_error_share(self) -> float:
        """(estimated − observed) / observed over all compared cells."""
        return (self.estimated_total - self.observed_total) / self.observed_total


def compare_with_grid(store: Store, grid: gpd.GeoDataFrame, column: str) -> GridComparison:
    """Compare ``buildings_3d.population_est`` with an observed grid (any CRS)."""
    area = gpd.GeoSeries.from_wkt([store.records("meta")["twin"]["area_wgs84"]], crs="EPSG:4326")
    area_metric = area.to_crs(store.crs).iloc[0]
    cells = grid.to_crs(store.crs)
    cells = cells[cells.intersects(area_metric)]
    inside = cells[(cells.intersection(area_metric).area / cells.area) >= FULLY_INSIDE]
    buildings = store.read_frame("buildings_3d", columns=["population_est", "geometry"])
    points = gpd.GeoDataFrame(
        {"estimate": buildings["population_est"].to_numpy()},
        geometry=buildings.geometry.centroid.to_numpy(),
        crs=store.crs,
    )
    joined = gpd.sjoin(points, inside[[column, "geometry"]], predicate="within")
    estimate = joined.groupby("index_right")["estimate"].sum().reindex(inside.index, fill_value=0.0)
    observed = inside[column].astype(float)
    errors = (estimate - observed).abs()
    per_cell = pd.DataFrame(
        {"observed": observed, "estimated": estimate.round(1), "error": (estimate - observed)}
    )
    correlation = float(np.corrcoef(estimate, observed)[0, 1]) if len(inside) > 1 else float("nan")
    return GridComparison(
        cells=len(inside),
        observed_total=float(observed.sum()),
        estimated_total=round(float(estimate.sum()), 1),
        mean_absolute_error=round(float(errors.mean()), 1),
        median_absolute_error=round(float(errors.median()), 1),
        correlation=round(correlation, 3),
        per_cell=per_cell,
    )
