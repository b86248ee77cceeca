"""The OSM reader: layers, multipolygon assembly, clipping, quality numbers and bad files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from osm_fixtures import LAT0, LON0, square, write_pbf
from pyproj import Geod

from civictwin.errors import SourceError
from civictwin.sources import osm
from civictwin.sources.base import BuildContext
from civictwin.sources.osm import ingest
from civictwin.store.duckdb import DuckDBStore

Context = Callable[[Path], BuildContext]
GEOD = Geod(ellps="WGS84")


def _layers(ctx: BuildContext) -> dict[str, int]:
    result = ingest(ctx.config.sources[0], ctx)
    return {layer.table: layer.rows for layer in result.layers}


def test_multipolygon_with_hole_is_assembled_once(tmp_path: Path, osm_context: Context) -> None:
    nodes = {**square(1, LON0, LAT0, 0.002), **square(11, LON0 + 0.0005, LAT0 + 0.0005, 0.001)}
    ways = {100: ([1, 2, 3, 4, 1], {}), 101: ([11, 12, 13, 14, 11], {})}
    relations = {
        500: ([("w", 100, "outer"), ("w", 101, "inner")], {"type": "multipolygon", "building": "yes"})
    }
    ctx = osm_context(write_pbf(tmp_path / "mp.osm.pbf", nodes, ways, relations))
    assert _layers(ctx)["buildings"] == 1
    building = ctx.store.read_frame("buildings").iloc[0]
    assert (building["osm_id"], building["osm_type"]) == (500, "relation")
    outer = abs(GEOD.geometry_area_perimeter(_ring(LON0, LAT0, 0.002))[0])
    inner = abs(GEOD.geometry_area_perimeter(_ring(LON0 + 0.0005, LAT0 + 0.0005, 0.001))[0])
    assert building.geometry.area == pytest.approx(outer - inner, rel=0.003)
    assert len(building.geometry.interiors) == 1


def _ring(lon: float, lat: float, size: float):  # type: ignore[no-untyped-def]
    import shapely

    return shapely.box(lon, lat, lon + size, lat + size)


def test_old_style_building_outer_way_is_not_counted_twice(tmp_path: Path, osm_context: Context) -> None:
    nodes = square(1, LON0, LAT0, 0.001)
    ways = {100: ([1, 2, 3, 4, 1], {"building": "yes"})}
    relations = {500: ([("w", 100, "outer")], {"type": "multipolygon", "building": "yes"})}
    ctx = osm_context(write_pbf(tmp_path / "dup.osm.pbf", nodes, ways, relations))
    assert _layers(ctx)["buildings"] == 1


def test_layers_classify_tags(tmp_path: Path, osm_context: Context) -> None:
    nodes = {
        **square(1, LON0, LAT0, 0.001),  # building
        **square(11, LON0 + 0.002, LAT0, 0.001),  # park
        **square(21, LON0 + 0.004, LAT0, 0.001),  # residential land use with a shop polygon
        31: (LON0, LAT0 + 0.003, {"amenity": "cafe", "name": "Café"}),
        32: (LON0 + 0.0005, LAT0 + 0.003, {"natural": "tree", "species": "Tilia"}),
        33: (LON0 + 0.001, LAT0 + 0.003, {"shop": "bakery"}),
        34: (
            LON0 + 0.0015,
            LAT0 + 0.003,
            {"addr:street": "Testikatu", "addr:housenumber": "5", "addr:postcode": "00100"},
        ),
        41: (LON0, LAT0 + 0.005, {}),
        42: (LON0 + 0.002, LAT0 + 0.005, {}),
    }
    ways = {
        100: (
            [1, 2, 3, 4, 1],
            {
                "building": "apartments",
                "building:levels": "5",
                "shop": "kiosk",
                "addr:place": "Testikylä",
                "addr:housenumber": "7b",
            },
        ),
        101: ([11, 12, 13, 14, 11], {"leisure": "park", "name": "Esplanadi"}),
        102: ([21, 22, 23, 24, 21], {"landuse": "residential"}),
        103: ([41, 42], {"highway": "residential", "name": "Testikatu", "maxspeed": "30"}),
        104: ([41, 42], {"highway": "proposed"}),
    }
    ctx = osm_context(write_pbf(tmp_path / "mix.osm.pbf", nodes, ways))
    layers = _layers(ctx)
    assert layers == {
        "buildings": 1, "roads": 1, "pois": 3, "green": 1, "trees": 1, "traffic_signals": 0, "landuse": 1,
        "water": 0, "addresses": 2,
    }  # fmt: skip
    addresses = ctx.store.read_table("addresses").sort_values("osm_id")
    assert list(addresses["osm_type"]) == ["node", "way"]
    assert list(addresses["street"]) == ["Testikatu", "Testikylä"]  # addr:place without addr:street
    assert list(addresses["housenumber"]) == ["5", "7b"]
    assert list(addresses["postcode"].fillna("")) == ["00100", ""]
    pois = ctx.store.read_table("pois").sort_values("subcategory")
    assert list(pois["subcategory"]) == ["bakery", "cafe", "kiosk"]
    assert list(pois["category"]) == ["shop", "amenity", "shop"]
    road = ctx.store.read_table("roads").iloc[0]
    assert (road["name"], road["maxspeed"], list(road["node_refs"])) == ("Testikatu", "30", [41, 42])
    expected = GEOD.line_length([LON0, LON0 + 0.002], [LAT0 + 0.005, LAT0 + 0.005])
    assert road["length_m"] == pytest.approx(expected, rel=0.003)


@pytest.mark.parametrize("sort_nodes", [True, False])
def test_ways_keep_the_vertices_present_in_the_extract(
    tmp_path: Path, osm_context: Context, sort_nodes: bool
) -> None:
    # Node 99 is outside the extract (cut off at its border); way 201 keeps a single vertex.
    nodes = {3: (LON0 + 0.002, LAT0, {}), 1: (LON0, LAT0, {}), 2: (LON0 + 0.001, LAT0, {})}
    ways = {200: ([1, 2, 99, 3], {"highway": "residential"}), 201: ([3, 98], {"highway": "service"})}
    ctx = osm_context(write_pbf(tmp_path / "cut.osm.pbf", nodes, ways, sort_nodes=sort_nodes))
    result = ingest(ctx.config.sources[0], ctx)
    roads = next(layer for layer in result.layers if layer.table == "roads")
    assert (roads.rows, roads.quality["geometry"]["received"], roads.quality["ways_with_missing_nodes"]) == (
        1,
        1,
        1,
    )
    road = ctx.store.read_frame("roads").iloc[0]
    assert (road["osm_id"], list(road["node_refs"]), road["missing_nodes"]) == (200, [1, 2, 3], 1)
    assert len(road.geometry.coords) == 3
    expected = GEOD.line_length([LON0, LON0 + 0.002], [LAT0, LAT0])
    assert road["length_m"] == pytest.approx(expected, rel=0.003)


def test_nodes_that_cannot_be_placed_are_missing_not_fatal(tmp_path: Path, osm_context: Context) -> None:
    # Node 2 has latitude 95°; node 5 lies 90° of longitude from the UTM zone's meridian, where the
    # projection has no finite coordinates. Neither may stop the build or leak NaN into a geometry.
    nodes = {
        1: (LON0, LAT0, {}),
        2: (LON0 + 0.001, 95.0, {}),
        3: (LON0 + 0.002, LAT0, {}),
        4: (LON0, LAT0 + 0.002, {"amenity": "cafe"}),
        5: (117.0, 0.0, {"amenity": "bar"}),
    }
    ways = {200: ([1, 2, 3], {"highway": "residential"})}
    ctx = osm_context(write_pbf(tmp_path / "unplaced.osm.pbf", nodes, ways))
    result = {layer.table: layer for layer in ingest(ctx.config.sources[0], ctx).layers}
    assert result["roads"].rows == 1 and result["roads"].quality["ways_with_missing_nodes"] == 1
    assert list(ctx.store.read_frame("roads").iloc[0]["node_refs"]) == [1, 3]
    pois = result["pois"].quality["geometry"]
    assert (pois["received"], pois["missing_geometry"], pois["kept"]) == (2, 1, 1)
    assert ctx.store.read_frame("pois")["osm_id"].tolist() == [4]


def test_features_outside_the_area_are_counted_not_kept(tmp_path: Path, osm_context: Context) -> None:
    nodes = {**square(1, LON0, LAT0, 0.001), **square(11, 25.5, 61.0, 0.001)}
    ways = {100: ([1, 2, 3, 4, 1], {"building": "yes"}), 101: ([11, 12, 13, 14, 11], {"building": "yes"})}
    ctx = osm_context(write_pbf(tmp_path / "out.osm.pbf", nodes, ways))
    result = ingest(ctx.config.sources[0], ctx)
    buildings = next(layer for layer in result.layers if layer.table == "buildings")
    assert buildings.rows == 1
    assert buildings.quality["geometry"]["outside_area"] == 1
    assert buildings.quality["geometry"]["received"] == 2


def test_self_intersecting_building_is_repaired_and_counted(tmp_path: Path, osm_context: Context) -> None:
    bowtie = {1: (LON0, LAT0, {}), 2: (LON0 + 0.001, LAT0 + 0.001, {}), 3: (LON0 + 0.001, LAT0, {}),
              4: (LON0, LAT0 + 0.001, {})}  # fmt: skip
    ways = {100: ([1, 2, 3, 4, 1], {"building": "yes"})}
    ctx = osm_context(write_pbf(tmp_path / "bow.osm.pbf", bowtie, ways))
    result = ingest(ctx.config.sources[0], ctx)
    report = next(layer for layer in result.layers if layer.table == "buildings").quality["geometry"]
    assert (report["invalid_geometry"], report["repaired_geometry"], report["kept"]) == (1, 1, 1)
    geometry = ctx.store.read_frame("buildings").geometry.iloc[0]
    assert geometry.is_valid and geometry.geom_type == "MultiPolygon"


def test_completeness_shares(tmp_path: Path, osm_context: Context) -> None:
    nodes = {**square(1, LON0, LAT0, 0.001), **square(11, LON0 + 0.002, LAT0, 0.001),
             **square(21, LON0 + 0.004, LAT0, 0.001), **square(31, LON0 + 0.006, LAT0, 0.001)}  # fmt: skip
    ways = {
        100: ([1, 2, 3, 4, 1], {"building": "yes", "height": "12"}),
        101: ([11, 12, 13, 14, 11], {"building": "yes", "building:levels": "3"}),
        102: ([21, 22, 23, 24, 21], {"building": "yes"}),
        103: ([31, 32, 33, 34, 31], {"building": "yes"}),
    }
    ctx = osm_context(write_pbf(tmp_path / "c.osm.pbf", nodes, ways))
    result = ingest(ctx.config.sources[0], ctx)
    quality = next(layer for layer in result.layers if layer.table == "buildings").quality
    assert quality["completeness"]["height"] == 0.25
    assert quality["completeness"]["height_or_levels"] == 0.5


def test_huge_attribute_values_are_kept_intact(tmp_path: Path, osm_context: Context) -> None:
    # OSM caps a tag value at 255 characters; the extreme case is the cap plus thousands of tags.
    long_name = "x" * 255
    many_tags = {f"note:{i}": "y" * 255 for i in range(3000)}
    nodes = {1: (LON0, LAT0, {}), 2: (LON0 + 0.001, LAT0, {})}
    ways = {100: ([1, 2], {"highway": "service", "name": long_name, **many_tags})}
    ctx = osm_context(write_pbf(tmp_path / "huge.osm.pbf", nodes, ways))
    assert _layers(ctx)["roads"] == 1
    assert ctx.store.read_table("roads")["name"].iloc[0] == long_name


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"", "empty.osm.pbf", "file is empty"),
        (b"this is not a protocol buffer at all", "text.osm.pbf", "not a readable OSM PBF file"),
        (None, "truncated.osm.pbf", "not a readable OSM PBF file"),
        (b"<osm></osm>", "plain.osm", "expected an OSM PBF file"),
    ],
)
def test_bad_files_give_one_clear_line(
    tmp_path: Path, osm_context: Context, content: bytes | None, name: str, message: str
) -> None:
    path = tmp_path / name
    if content is None:
        from civictwin.demo import demo_pbf

        content = demo_pbf().read_bytes()[:5000]
    path.write_bytes(content)
    ctx = osm_context(path)
    with pytest.raises(SourceError) as info:
        ingest(ctx.config.sources[0], ctx)
    line = info.value.user_message()
    assert str(path) in line and message in line and "\n" not in line


def test_missing_file(tmp_path: Path, osm_context: Context) -> None:
    ctx = osm_context(tmp_path / "nowhere.osm.pbf")
    with pytest.raises(SourceError, match="file not found"):
        ingest(ctx.config.sources[0], ctx)


def test_no_feature_in_area_is_an_error(tmp_path: Path, osm_context: Context) -> None:
    nodes = square(1, 25.5, 61.0, 0.001)
    ways = {100: ([1, 2, 3, 4, 1], {"building": "yes"})}
    ctx = osm_context(write_pbf(tmp_path / "far.osm.pbf", nodes, ways))
    with pytest.raises(SourceError, match="no OSM features inside the area"):
        ingest(ctx.config.sources[0], ctx)


def test_way_parts_cut_runs_of_consecutive_ways_by_vertices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(osm, "WAY_VERTICES_PER_PART", 4)
    ways = pa.table(
        {"id": [10, 11, 12, 13, 14], "refs": [[1, 2], [3, 4, 5], [6, 7], [8, 9, 10, 11, 12], [1]]}
    )
    # cumulative vertices 2, 5, 7, 12, 13: cuts after the way reaching 4 (11) and 8 (13); the rest a part
    parts = osm._way_parts(ways)
    assert [part["id"].to_pylist() for part in parts] == [[10, 11], [12, 13], [14]]
    assert [part["id"].to_pylist() for part in osm._way_parts(ways.slice(0, 0))] == [[]]


def test_ways_looked_up_in_parts_give_the_layers_of_one_part(
    tmp_path: Path, osm_context: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    nodes = {**square(1, LON0, LAT0, 0.002), **square(11, LON0 + 0.0005, LAT0 + 0.0005, 0.001),
             **square(21, LON0 + 0.004, LAT0, 0.001)}  # fmt: skip
    ways = {100: ([1, 2, 3, 4, 1], {}), 101: ([11, 12, 13, 14, 11], {}),
            102: ([21, 22, 23, 24, 21], {"building": "house"}),
            103: ([1, 21, 2, 99, 22], {"highway": "residential", "name": "Osakatu"}),
            104: ([3, 23], {"highway": "service"})}  # fmt: skip
    relations = {
        500: ([("w", 100, "outer"), ("w", 101, "inner")], {"type": "multipolygon", "building": "yes"})
    }
    base = osm_context(write_pbf(tmp_path / "parts.osm.pbf", nodes, ways, relations))

    def layers(folder: str) -> dict[str, list[str]]:
        (tmp_path / folder).mkdir()
        ctx = base
        ctx = BuildContext(config=ctx.config, store=DuckDBStore.create(tmp_path / folder / "t.duckdb", crs=ctx.crs),
                           area_wgs84=ctx.area_wgs84, area=ctx.area, crs=ctx.crs)  # fmt: skip
        ingest(ctx.config.sources[0], ctx)
        return {t.name: sorted(map(str, ctx.store.read_table(t.name).itertuples(index=False)))
                for t in ctx.store.tables()}  # fmt: skip

    whole = layers("whole")
    monkeypatch.setattr(osm, "WAY_VERTICES_PER_PART", 3)  # five parts: one or two ways each
    assert layers("parts") == whole
    assert len(whole["buildings"]) == 2 and len(whole["roads"]) == 2
