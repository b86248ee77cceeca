"""The grid reader: numeric columns, totals over the area, the real Helsinki grid, and bad input.

The hand-made grid has four 0.01° × 0.005° cells in central Helsinki; the fourth lies outside the area.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import h3
import pytest

from civictwin.config import SourceKind
from civictwin.errors import SourceError
from civictwin.sources import reader_for
from civictwin.sources.base import BuildContext, IngestResult
from civictwin.sources.grid import ingest

Run = Callable[..., tuple[IngestResult, BuildContext]]

CELLS = [  # (lon, lat) of the south-west corner, population, jobs, label
    (24.93, 60.160, "100", "5.5", "north"),
    (24.94, 60.160, "250", "", "east"),
    (24.93, 60.165, "40", "1.25", "west"),
    (25.20, 60.300, "999", "7", "outside"),
]


def _cell_wkt(lon: float, lat: float) -> str:
    x2, y2 = round(lon + 0.01, 3), round(lat + 0.005, 3)
    return f"POLYGON (({lon} {lat}, {x2} {lat}, {x2} {y2}, {lon} {y2}, {lon} {lat}))"


def _grid_csv(tmp_path: Path, cells: list[tuple[float, float, str, str, str]] = CELLS) -> Path:
    path = tmp_path / "grid.csv"
    lines = ["wkt,population,jobs,label"]
    lines += [f'"{_cell_wkt(lon, lat)}",{pop},{jobs},{label}' for lon, lat, pop, jobs, label in cells]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def run(make_context: Any, source_entry: Any) -> Run:
    """Ingest a file as grid source ``pop`` (options as in twin.toml) into a fresh context."""

    def ingest_path(
        path: Path, bbox: tuple[float, ...] | None = None, **options: Any
    ) -> tuple[IngestResult, BuildContext]:
        extra = {"bbox": bbox} if bbox is not None else {}
        ctx = make_context([source_entry("pop", "grid", path, **options)], **extra)
        return ingest(ctx.config.sources[0], ctx), ctx

    return ingest_path


def test_reader_for_dispatches_grid() -> None:
    assert reader_for(SourceKind.GRID) is ingest


def test_default_columns_are_the_numeric_ones(tmp_path: Path, run: Run) -> None:
    result, ctx = run(_grid_csv(tmp_path), wkt="wkt", crs="EPSG:4326")
    layer = result.layers[0]
    assert layer.table == "pop"
    assert layer.rows == 3
    assert layer.quality["totals"] == {"population": 390.0, "jobs": 6.75}
    assert layer.quality["completeness"] == {"population": 1.0, "jobs": pytest.approx(2 / 3)}
    assert layer.quality["geometry"]["outside_area"] == 1
    assert layer.notes == [
        "population: total 390 over the 3 cells intersecting the area",
        "jobs: total 6.75 over the 3 cells intersecting the area",
    ]
    stored = ctx.store.read_frame("pop")
    assert list(stored.columns) == ["population", "jobs", "geometry"]
    assert sorted(stored["population"]) == [40, 100, 250]
    # a 0.01° × 0.005° cell at 60.16°N: about 555 m × 556 m
    assert stored.geometry.area.iloc[0] == pytest.approx(0.309e6, rel=0.02)


def test_chosen_columns(tmp_path: Path, run: Run) -> None:
    result, ctx = run(_grid_csv(tmp_path), wkt="wkt", crs="EPSG:4326", columns=["jobs"])
    assert result.layers[0].quality["totals"] == {"jobs": 6.75}
    assert list(ctx.store.read_table("pop").columns) == ["jobs", "geometry"]


def test_numbers_written_as_text_are_converted(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "grid.geojson"
    path.write_text(
        '{"type": "FeatureCollection", "features": ['
        '{"type": "Feature", "properties": {"pop": "12"}, "geometry": {"type": "Point", "coordinates": [24.93, 60.16]}},'
        '{"type": "Feature", "properties": {"pop": "30.5"}, "geometry": {"type": "Point", "coordinates": [24.94, 60.16]}}'
        "]}"
    )
    result, ctx = run(path, columns=["pop"], cell_size_m=100)
    assert result.layers[0].quality["totals"] == {"pop": 42.5}
    assert sorted(ctx.store.read_table("pop")["pop"]) == [12.0, 30.5]


def test_non_numeric_column_is_an_error(tmp_path: Path, run: Run) -> None:
    path = _grid_csv(tmp_path)
    message = _error(run, path, wkt="wkt", crs="EPSG:4326", columns=["population", "label"])
    assert message == f"{path}: column 'label' is not numeric (row 2: 'north')"
    cells = list(CELLS)
    cells[2] = (24.93, 60.165, "many", "1", "west")
    path = _grid_csv(tmp_path, cells)
    message = _error(run, path, wkt="wkt", crs="EPSG:4326", columns=["population"])
    assert message == f"{path}: column 'population' is not numeric (row 4: 'many')"


def test_missing_values_lower_completeness(tmp_path: Path, run: Run) -> None:
    cells = list(CELLS)
    cells[2] = (24.93, 60.165, "n/a", "1", "west")  # pandas reads n/a as missing
    result, _ctx = run(_grid_csv(tmp_path, cells), wkt="wkt", crs="EPSG:4326", columns=["population"])
    assert result.layers[0].quality["completeness"] == {"population": pytest.approx(2 / 3)}
    assert result.layers[0].quality["totals"] == {"population": 350.0}


def test_unknown_column_and_no_numeric_column(tmp_path: Path, run: Run) -> None:
    path = _grid_csv(tmp_path)
    message = _error(run, path, wkt="wkt", crs="EPSG:4326", columns=["people"])
    assert message == f"{path}: columns: unknown column(s) people; available: population, jobs, label"
    text_only = tmp_path / "labels.csv"
    text_only.write_text('wkt,label\n"POINT (24.93 60.16)",a\n', encoding="utf-8")
    message = _error(run, text_only, wkt="wkt", crs="EPSG:4326")
    assert message == f"{text_only}: columns: no numeric columns; available: label"


def test_truncated_and_empty_grid(tmp_path: Path, run: Run) -> None:
    path = _grid_csv(tmp_path)
    text = path.read_text()
    path.write_text(text[: text.index("POLYGON ((24.94") + 20])  # cut inside the second cell's WKT
    message = _error(run, path, wkt="wkt", crs="EPSG:4326")
    assert (
        message
        == f"{path}: not readable CSV: Error tokenizing data. C error: EOF inside string starting at row 2"
    )
    path.write_text("")
    assert _error(run, path, wkt="wkt", crs="EPSG:4326") == f"{path}: file is empty"


def _error(run: Run, path: Path, **options: Any) -> str:
    with pytest.raises(SourceError) as caught:
        run(path, **options)
    return caught.value.user_message()


def test_helsinki_population_grid(shared_file: Any, run: Run) -> None:
    path = shared_file("helsinki/helsinki_population_grid_2020.gpkg")
    result, ctx = run(path, columns=["population"], clip=False)
    layer = result.layers[0]
    assert layer.rows == 92
    assert layer.quality["totals"] == {"population": 71724.0}
    assert layer.quality["completeness"] == {"population": 1.0}
    assert layer.quality["duplicates"] == 0
    # 250 m cells: areas in the metric CRS close to 62,500 m²
    areas = ctx.store.read_frame("pop").geometry.area
    assert areas.min() > 0.95 * 62_500
    assert areas.max() < 1.05 * 62_500


def test_helsinki_population_grid_in_a_bbox(shared_file: Any, run: Run) -> None:
    path = shared_file("helsinki/helsinki_population_grid_2020.gpkg")
    result, _ctx = run(path, bbox=(24.92, 60.16, 24.94, 60.17))
    layer = result.layers[0]
    # measured: 27 cells intersect the bbox, 26,134 residents (cells counted whole)
    assert layer.rows == 27
    assert layer.quality["geometry"]["outside_area"] == 92 - 27
    assert layer.quality["totals"]["population"] == 26134.0
    assert set(layer.quality["totals"]) == {"id", "population"}  # default: every numeric column


def test_cell_centre_points_become_squares_of_cell_size(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "points.csv"
    path.write_text("lon,lat,population,jobs\n24.935,60.165,100,3\n24.945,60.165,50,4\n", encoding="utf-8")
    with pytest.raises(SourceError, match="the cells are points; set `cell_size_m`"):
        run(path, x="lon", y="lat")
    result, ctx = run(path, x="lon", y="lat", cell_size_m=250)
    assert result.layers[0].quality["totals"] == {"population": 150.0, "jobs": 7.0}
    stored = ctx.store.read_frame("pop")
    # degrees in the file: the squares are drawn in the twin's CRS, exactly 250 m × 250 m
    assert stored.geometry.area.tolist() == pytest.approx([62_500.0, 62_500.0])
    assert stored.geometry.iloc[0].centroid.distance(stored.geometry.iloc[0].representative_point()) < 125


def test_h3_cell_ids_become_their_cells(tmp_path: Path, run: Run) -> None:
    cells = [h3.latlng_to_cell(60.165, 24.935, 8), h3.latlng_to_cell(60.165, 24.955, 8)]
    path = tmp_path / "h3.csv"
    # the second id as its 64-bit integer, as some tools write them
    path.write_text(
        f"cell,population,schools\n{cells[0]},120,1\n{h3.str_to_int(cells[1])},80,0\n", encoding="utf-8"
    )
    result, ctx = run(path, h3_column="cell")
    assert result.layers[0].quality["totals"] == {"population": 200.0, "schools": 1.0}
    stored = ctx.store.read_frame("pop")
    assert stored.geometry.area.tolist() == pytest.approx([h3.cell_area(c, "m^2") for c in cells], rel=0.01)
    path.write_text("cell,population\nnot-a-cell,1\n", encoding="utf-8")
    with pytest.raises(SourceError, match="row 2: 'not-a-cell' is not an H3 cell id"):
        run(path, h3_column="cell")
