"""The routable network: splitting at shared nodes, directions, permissions, speeds and capacity."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import shapely

from civictwin.build_network import partitioned_network
from civictwin.errors import StoreError
from civictwin.memory import NETWORK_BYTES_PER_ROAD, BuildMemory, grid_cells
from civictwin.model.network import (
    build_network,
    line_lengths,
    network_arrays,
    network_of,
    network_part,
    parse_maxspeed,
    usable_ways,
    ways_of_rows,
)
from civictwin.store.duckdb import DuckDBStore

ROAD_COLUMNS = ("lanes", "maxspeed", "oneway", "oneway_bicycle", "junction", "access", "vehicle",
                "motor_vehicle", "motorcar", "bicycle", "foot", "busway")  # fmt: skip


def roads(*ways: tuple[int, str, list[int], list[tuple[float, float]], dict[str, str]]) -> gpd.GeoDataFrame:
    """A roads layer from (osm_id, highway, node refs, vertex coordinates, extra tags)."""
    rows = []
    for osm_id, highway, refs, coords, tags in ways:
        row = {"osm_id": osm_id, "highway": highway, "name": f"way {osm_id}", "node_refs": refs,
               "geometry": shapely.LineString(coords)}  # fmt: skip
        row.update({column: tags.get(column) for column in ROAD_COLUMNS})
        rows.append(row)
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry="geometry", crs="EPSG:32635")


def crossing() -> gpd.GeoDataFrame:
    """A two-way residential street (1-2-3) crossed at node 2 by a one-way primary (4-2-5)."""
    return roads(
        (10, "residential", [1, 2, 3], [(0, 0), (100, 0), (300, 0)], {}),
        (20, "primary", [4, 2, 5], [(100, -50), (100, 0), (100, 150)], {"oneway": "yes", "lanes": "2"}),
    )


def test_ways_split_at_shared_nodes_into_directed_edges() -> None:
    network = build_network(crossing())
    edges = network.edges.set_index("edge_id")
    assert sorted(edges.index) == sorted(["10_1", "10_2", "-10_1", "-10_2", "20_1", "20_2", "-20_1", "-20_2"])
    assert edges.loc["10_1", ["from_node", "to_node"]].tolist() == [1, 2]
    assert edges.loc["-10_2", ["from_node", "to_node"]].tolist() == [3, 2]
    assert edges.loc["10_2", "length_m"] == 200.0
    assert edges.loc["20_2", "length_m"] == 150.0
    assert list(edges.loc["-10_2"].geometry.coords) == [(300, 0), (100, 0)]
    nodes = network.nodes.set_index("node_id")
    assert sorted(nodes.index) == [1, 2, 3, 4, 5]
    assert nodes.loc[2, "degree"] == 8
    assert nodes.loc[2].geometry.coords[0] == (100, 0)


def test_line_lengths_are_summed_vertex_by_vertex_as_geos_sums_them() -> None:
    """3-4-5 then 6 metres north: 11 m; the diagonal of a unit square: √2; a line of odd numbers the
    same to the bit as :func:`shapely.length` of it."""
    lines: list[list[tuple[float, float]]] = [
        [(0, 0), (3, 4), (3, 10)],
        [(0, 0), (1, 1)],
        [(0.1, 0.7), (385_000.3, 6_672_000.9), (0.3, 1e-9), (7, 7)],
    ]
    coords = np.array([xy for line in lines for xy in line], dtype=np.float64)
    lengths = line_lengths(coords, np.array([0, 3, 5, 9], dtype=np.int64))
    assert lengths[:2].tolist() == [11.0, math.sqrt(2)]
    assert (
        lengths.tolist()
        == shapely.length(shapely.linestrings(coords, indices=[0, 0, 0, 1, 1, 2, 2, 2, 2])).tolist()
    )


def test_the_network_as_arrays_is_the_network() -> None:
    """The edges and nodes kept as arrays give the network's own columns, lines (the same WKB, written
    from the vertices), car edges and nodes; the vertices of the edges give their extent."""
    ways = usable_ways(crossing())
    arrays, network = network_arrays(ways), network_of(ways)
    assert arrays.edges.equals(pd.DataFrame(network.edges.drop(columns="geometry")))
    wkb = list(shapely.to_wkb(network.edges.geometry.to_numpy()))
    assert arrays.lines.wkb().to_pylist() == wkb
    car = arrays.car_edges()
    assert car["edge_id"].tolist() == network.edges.loc[network.edges["car"], "edge_id"].tolist()
    assert list(shapely.to_wkb(car.geometry.to_numpy())) == [
        w for w, c in zip(wkb, network.edges["car"], strict=True) if c
    ]
    assert "-20_1" not in set(car["edge_id"])  # the one-way primary against its direction
    assert arrays.nodes[["node_id", "degree"]].equals(pd.DataFrame(network.nodes.drop(columns="geometry")))
    assert (
        arrays.nodes[["x", "y"]].to_numpy().tolist()
        == shapely.get_coordinates(network.nodes.geometry).tolist()
    )
    assert sorted(map(tuple, arrays.lines.vertices().tolist())) == [
        (0, 0),
        (100, -50),
        (100, 0),
        (100, 0),
        (100, 0),
        (100, 0),
        (100, 150),
        (300, 0),
    ]


def test_no_usable_way_gives_an_empty_network() -> None:
    """A way whose references and vertices disagree (three references, two vertices) is left out; with
    no other way there are no edges, nodes or vertices (it raised an IndexError before)."""
    ways = usable_ways(roads((30, "service", [6, 7, 8], [(0, 10), (50, 10)], {})))
    arrays = network_arrays(ways)
    assert (len(arrays.edges), len(arrays.nodes), len(arrays.lines.wkb())) == (0, 0, 0)
    assert arrays.lines.vertices().shape == (0, 2) and arrays.car_edges().empty
    assert arrays.quality == {"car_edges": 0, "car_largest_component_share": 0.0, "car_components": 0}
    assert build_network(roads((30, "service", [6, 7, 8], [(0, 10), (50, 10)], {}))).edges.empty


def test_oneway_closes_cars_and_bikes_against_the_flow_but_not_pedestrians() -> None:
    edges = build_network(crossing()).edges.set_index("edge_id")
    assert edges.loc["20_1", ["car", "bike", "walk"]].tolist() == [True, True, True]
    assert edges.loc["-20_1", ["car", "bike", "walk"]].tolist() == [False, False, True]
    assert edges.loc["-10_1", ["car", "bike", "walk"]].tolist() == [True, True, True]


def test_speed_and_capacity_from_tags_and_defaults() -> None:
    edges = build_network(crossing()).edges.set_index("edge_id")
    # primary, one-way with 2 lanes: 2 × 1500 veh/h; untagged urban primary: 50 km/h
    assert edges.loc["20_1", ["lanes", "capacity_vph", "speed_kmh"]].tolist() == [2, 3000, 50.0]
    assert pd.isna(edges.loc["20_1", "maxspeed_kmh"])
    # residential, two-way, no lanes tag: 1 lane per direction × 600 veh/h; 30 km/h default
    assert edges.loc["10_1", ["lanes", "capacity_vph", "speed_kmh"]].tolist() == [1, 600, 30.0]


def test_access_tags_override_defaults() -> None:
    network = build_network(roads(
        (1, "footway", [1, 2], [(0, 0), (10, 0)], {"bicycle": "yes"}),
        (2, "residential", [3, 4], [(0, 10), (10, 10)], {"motor_vehicle": "no"}),
        (3, "service", [5, 6], [(0, 20), (10, 20)], {"access": "private", "foot": "yes"}),
        (4, "cycleway", [7, 8], [(0, 30), (10, 30)], {"foot": "no"}),
    ))  # fmt: skip
    edges = network.edges.set_index("edge_id")
    assert edges.loc["1_1", ["car", "bike", "walk"]].tolist() == [False, True, True]
    assert edges.loc["2_1", ["car", "bike", "walk"]].tolist() == [False, True, True]
    assert edges.loc["3_1", ["car", "bike", "walk"]].tolist() == [False, False, True]
    assert edges.loc["4_1", ["car", "bike", "walk"]].tolist() == [False, True, False]


def test_closed_loop_is_split_so_no_edge_starts_where_it_ends() -> None:
    loop = roads((7, "residential", [1, 2, 3, 4, 1], [(0, 0), (50, 0), (50, 50), (0, 50), (0, 0)],
                  {"junction": "roundabout"}))  # fmt: skip
    edges = build_network(loop).edges
    assert (edges["from_node"] != edges["to_node"]).all()
    assert sorted(edges["edge_id"]) == ["-7_1", "-7_2", "7_1", "7_2"]
    forward = edges[edges["edge_id"].str.startswith("7")]
    assert forward["car"].all() and not edges[edges["edge_id"].str.startswith("-")]["car"].any()
    assert forward["length_m"].sum() == 200.0


def test_connectivity_share_counts_the_largest_strong_component() -> None:
    network = build_network(roads(
        (1, "residential", [1, 2, 3], [(0, 0), (10, 0), (20, 0)], {}),
        (2, "residential", [8, 9], [(100, 0), (110, 0)], {"oneway": "yes"}),
    ))  # fmt: skip
    # way 1 has no shared node, so it is one segment: 2 directed car edges forming one strong
    # component; the lone one-way edge is a component of its own.
    assert network.quality["car_edges"] == 3
    assert network.quality["car_largest_component_share"] == 0.6667


@pytest.mark.parametrize(
    ("tag", "kmh"),
    [("50", 50.0), ("30 mph", 48.28), ("FI:urban", 50.0), ("DE:living_street", 20.0), ("walk", 7.0),
     ("none", 130.0), ("fast", None), ("0", None), ("40;50", 40.0), (None, None)],
)  # fmt: skip
def test_parse_maxspeed(tag: str | None, kmh: float | None) -> None:
    result = parse_maxspeed(tag)
    assert (result if result is None else round(result, 2)) == kmh


def crossed_in_two_cells() -> gpd.GeoDataFrame:
    """Two roads crossing at node 2 whose boxes' lower left corners, (0, 100) and (100, -50), fall in
    different cells of a 2 × 2 grid over them, typed as the reader stores them."""
    crossed = roads(
        (10, "residential", [1, 2, 3], [(0, 100), (100, 100), (300, 100)], {}),
        (20, "primary", [4, 2, 5], [(100, -50), (100, 100), (100, 150)], {"oneway": "yes", "lanes": "2"}),
    )
    return crossed.astype({column: "string" for column in ROAD_COLUMNS})


def _crossed_store(tmp_path: Path) -> DuckDBStore:
    """:func:`crossed_in_two_cells` as the ``roads`` of a store of their own."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = DuckDBStore.create(tmp_path / "t.duckdb", crs="EPSG:32635")
    store.write_table("roads", crossed_in_two_cells())
    return store


def test_partitioned_network_splits_where_roads_of_other_partitions_meet(tmp_path: Path) -> None:
    """Two roads crossing at node 2, each in its own partition (the lower left corners of their boxes,
    (0, 100) and (100, -50), fall in different cells of the 2 × 2 grid split at x = 150, y = 50): each
    is still split at node 2, exactly as when the network is built in one piece."""
    crossed = crossed_in_two_cells()
    store = _crossed_store(tmp_path)
    written = partitioned_network(store, partitions=4, spill_to=tmp_path)
    assert written.partitions == 4 and written.edges == 8 and len(written.nodes) == 5
    assert not (tmp_path / "network_edges.arrows").exists()
    stored = store.read_frame("network_edges").sort_values("edge_id").reset_index(drop=True)
    whole = build_network(crossed)
    expected = whole.edges.sort_values("edge_id").reset_index(drop=True)
    assert stored["edge_id"].tolist() == ["-10_1", "-10_2", "-20_1", "-20_2", "10_1", "10_2", "20_1", "20_2"]
    pd.testing.assert_frame_equal(pd.DataFrame(stored.drop(columns="geometry")),
                                  pd.DataFrame(expected.drop(columns="geometry")), check_dtype=False)  # fmt: skip
    assert shapely.equals_exact(stored.geometry.to_numpy(), expected.geometry.to_numpy(), tolerance=0).all()
    nodes = written.nodes  # stored by the build, once flagged
    assert dict(zip(nodes["node_id"], nodes["degree"], strict=True)) == {1: 2, 2: 8, 3: 2, 4: 2, 5: 2}
    assert written.quality == whole.quality


def test_grid_cells_give_every_point_exactly_one_cell() -> None:
    cells = grid_cells((0.0, 0.0, 4.0, 1.0), 4)  # 4 × 1 as wide as it is high: four columns, one row
    assert [(c[0], c[2]) for c in cells] == [(-math.inf, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, math.inf)]
    assert all(c[1] == -math.inf and c[3] == math.inf for c in cells)
    for x in (-5.0, 0.0, 1.0, 2.5, 4.0, 9.0):  # borders belong to the cell on their right
        assert sum(c[0] <= x < c[2] for c in cells) == 1


def test_network_partitions_follow_the_memory_budget() -> None:
    memory = BuildMemory(budget_mb=4096, temp_dir=Path("/unused"))
    per_partition = 1024 * 1024 * 1024 // NETWORK_BYTES_PER_ROAD  # a quarter of the budget, bytes per road
    assert memory.network_partitions(per_partition) == 1
    assert memory.network_partitions(per_partition + 1) == 2
    assert memory.network_partitions(10 * per_partition) == 10
    assert BuildMemory(budget_mb=64, temp_dir=Path("/unused")).share_mb(0.25) == 32  # DuckDB's floor


def _as_written(frame: gpd.GeoDataFrame) -> pa.Table:
    """A roads frame as the OSM reader writes and hands it over: Arrow rows, the geometry as WKB."""
    table = pa.Table.from_pandas(pd.DataFrame(frame.drop(columns="geometry")), preserve_index=False)
    return table.append_column(
        "geometry", pa.array(shapely.to_wkb(frame.geometry.to_numpy()), type=pa.binary())
    )


def test_the_ways_the_reader_wrote_are_read_from_their_arrow_columns() -> None:
    """The build reads the usable ways of the roads handed over from their Arrow columns (node
    references from the lists, vertices from the WKB bytes): the same ways and the same network as from
    a frame; a way whose references and vertices disagree (30: three references, two vertices) is left
    out either way, and a row whose line is not a plain line (repaired into a multi-line) leaves the
    rows to the frame's path, with the same result."""
    frame = pd.concat(
        [crossing(), roads((30, "service", [6, 7, 8], [(0, 10), (50, 10)], {}))], ignore_index=True
    )
    ways = ways_of_rows(_as_written(gpd.GeoDataFrame(frame, geometry="geometry", crs="EPSG:32635")))
    assert ways.refs.tolist() == [1, 2, 3, 4, 2, 5] and ways.offsets.tolist() == [0, 3, 6]
    assert ways.coords.tolist() == [[0, 0], [100, 0], [300, 0], [100, -50], [100, 0], [100, 150]]
    assert ways.roads["osm_id"].tolist() == [10, 20] and "node_refs" not in ways.roads
    from_frame, from_arrays = build_network(frame), network_of(ways)
    assert from_arrays.edges.drop(columns="geometry").equals(from_frame.edges.drop(columns="geometry"))
    assert list(shapely.to_wkb(from_arrays.edges.geometry.to_numpy())) == list(
        shapely.to_wkb(from_frame.edges.geometry.to_numpy())
    )
    assert from_arrays.nodes.drop(columns="geometry").equals(from_frame.nodes.drop(columns="geometry"))
    assert from_arrays.quality == from_frame.quality
    repaired = crossing()
    repaired.loc[1, "geometry"] = shapely.MultiLineString([[(100, -50), (100, 0)], [(100, 10), (100, 150)]])
    through_frame = ways_of_rows(_as_written(repaired))  # 20 repaired: no longer one reference a vertex
    assert through_frame.roads["osm_id"].tolist() == [10] and through_frame.refs.tolist() == [1, 2, 3]
    assert (
        network_of(through_frame)
        .edges.drop(columns="geometry")
        .equals(build_network(repaired).edges.drop(columns="geometry"))
    )


def test_edge_boxes_come_from_the_segments_vertices() -> None:
    """The crossing's edges: 10_1 runs (0, 0)–(100, 0), 20_2 (100, 0)–(100, 150); a reversed edge has
    its forward twin's box; no edges, no boxes."""
    part = network_part(usable_ways(crossing()), shared=np.array([2], dtype=np.int64))
    ids = part.edges["edge_id"].tolist()
    boxes = part.lines.bounds(np.arange(len(ids)))
    by_id = dict(zip(ids, boxes.tolist(), strict=True))
    assert by_id["10_1"] == by_id["-10_1"] == [0.0, 0.0, 100.0, 0.0]
    assert by_id["10_2"] == [100.0, 0.0, 300.0, 0.0]
    assert by_id["20_1"] == [100.0, -50.0, 100.0, 0.0]
    assert by_id["20_2"] == [100.0, 0.0, 100.0, 150.0]
    assert by_id["-20_2"] == by_id["20_2"]  # one-way for cars, walked both ways
    assert part.lines.bounds(np.empty(0, dtype=np.int64)).shape == (0, 4)


def _tables(store: DuckDBStore) -> list[str]:
    """Every table in the database, hidden staging tables included."""
    return sorted(row[0] for row in store._con.execute("SELECT table_name FROM duckdb_tables()").fetchall())


def test_partitions_streamed_and_spilled_store_the_same_edges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The edges go to the store on its second connection as they are made; a store without one gets
    them through a spill file: the same rows in the same order either way."""
    streamed = _crossed_store(tmp_path / "a")
    assert partitioned_network(streamed, partitions=4, spill_to=tmp_path).edges == 8
    monkeypatch.setattr(DuckDBStore, "thread_writer", lambda self: None)
    spilled = _crossed_store(tmp_path / "b")
    assert partitioned_network(spilled, partitions=4, spill_to=tmp_path).edges == 8
    assert list(tmp_path.glob("*.arrows")) == []
    a, b = streamed.read_frame("network_edges"), spilled.read_frame("network_edges")
    # partition order: way 20's box starts in the lower row of cells, way 10's in the upper one
    assert a["edge_id"].tolist() == b["edge_id"].tolist() == ["20_1", "20_2", "-20_1", "-20_2", "10_1", "10_2",
                                                              "-10_1", "-10_2"]  # fmt: skip
    assert shapely.equals_exact(a.geometry.to_numpy(), b.geometry.to_numpy(), tolerance=0).all()


def test_a_failed_partition_leaves_no_edges_and_stops_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partition that fails after the first was written: the error comes through, the writer's
    thread ends, and neither ``network_edges`` nor its staging table is left in the store."""
    store = _crossed_store(tmp_path)
    made = network_part
    calls = iter(range(10))

    def failing(*args: object, **kwargs: object) -> object:
        if next(calls) == 1:
            raise OSError("No space left on device")
        return made(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("civictwin.build_network.network_part", failing)
    with pytest.raises(OSError, match="No space left"):
        partitioned_network(store, partitions=4, spill_to=tmp_path)
    assert not any(t.name.startswith("network-write") for t in threading.enumerate())
    assert not [t for t in _tables(store) if "network_edges" in t]


def test_a_failed_write_of_the_edges_is_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's second connection fails while writing (a full disk): the build gets that error,
    not a hang, and no edges table is left."""
    store = _crossed_store(tmp_path)

    def full(self: DuckDBStore, name: str, table: pa.RecordBatchReader) -> int:
        next(iter(table))  # the first batch arrives, then the disk is full
        raise StoreError("No space left on device", path=tmp_path / "t.duckdb")

    writer = store.thread_writer()
    monkeypatch.setattr(DuckDBStore, "thread_writer", lambda self: writer)
    monkeypatch.setattr(writer, "write_table", full.__get__(writer))
    with pytest.raises(StoreError, match="No space left"):
        partitioned_network(store, partitions=4, spill_to=tmp_path)
    assert not [t for t in _tables(store) if "network_edges" in t]
