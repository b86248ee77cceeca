"""OSM PBF reader: roads, buildings, POIs, green areas, trees, land use, water and addresses, in one pass.

DuckDB's C++ PBF reader (``ST_ReadOSM``) decodes the file on all cores. Node coordinates are
projected to the twin's metric CRS once (pyproj, one array call), so every geometry is assembled
directly in that CRS: ways from their node references, multipolygon relations from their member ways with GEOS
``ST_BuildArea`` (``ST_ReadOSM`` alone does no polygon assembly). The in-memory DuckDB used here is
a compute engine, not the twin's store: results go to the store as Arrow tables through
``Store.write_table``. Roads keep their OSM node references so the model can split them into a
routable network with real topology. The rules (which tags make which layer) are documented in
docs/methods-network.md.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import shapely

from civictwin.config import SourceConfig
from civictwin.errors import SourceError
from civictwin.geometry import WGS84, project_in_place
from civictwin.memory import READER_SHARE, BuildMemory
from civictwin.sources.base import BuildContext, IngestedLayer, IngestResult
from civictwin.store.duckdb import limit_memory, out_of_room

# Highway values that are not travelled ways (areas, features, or not yet built).
NON_ROAD_HIGHWAYS = (
    "proposed", "construction", "abandoned", "disused", "platform", "bus_stop", "elevator",
    "rest_area", "services", "razed", "no", "emergency_bay", "traffic_island",
)  # fmt: skip
GREEN_LEISURE = ("park", "garden", "playground", "nature_reserve", "dog_park", "common")
GREEN_LANDUSE = (
    "grass", "forest", "meadow", "recreation_ground", "cemetery", "village_green", "allotments", "flowerbed",
)  # fmt: skip
GREEN_NATURAL = ("wood", "scrub", "grassland", "heath", "wetland")
POI_KEYS = ("amenity", "shop", "tourism", "office", "healthcare", "leisure")

_AREA_TAGS = "building", "landuse", "leisure", "natural", "water", "waterway", *POI_KEYS


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _any_tag(keys: tuple[str, ...]) -> str:
    return "(" + " OR ".join(f"tags['{k}'] IS NOT NULL" for k in keys) + ")"


_IS_GREEN = (
    f"(tags['leisure'] IN {_in(GREEN_LEISURE)} OR tags['landuse'] IN {_in(GREEN_LANDUSE)}"
    f" OR tags['natural'] IN {_in(GREEN_NATURAL)})"
)
_IS_WATER = (
    "(tags['natural'] = 'water' OR tags['waterway'] = 'riverbank' OR tags['water'] IS NOT NULL"
    " OR tags['landuse'] IN ('reservoir', 'basin'))"
)
_IS_POI = (
    "("
    + " OR ".join(f"tags['{k}'] IS NOT NULL" for k in POI_KEYS if k != "leisure")
    + f" OR (tags['leisure'] IS NOT NULL AND tags['leisure'] NOT IN {_in(GREEN_LEISURE)}))"
)
_HAS_ADDRESS = "tags['addr:housenumber'] IS NOT NULL"
# Traffic signals (OSM wiki, Tag:highway=traffic_signals): signals for vehicles, and signalised
# pedestrian crossings mapped as their own crossing node; methods-network.md says how they are used.
_IS_SIGNAL = (
    "(tags['highway'] = 'traffic_signals'"
    " OR (tags['highway'] = 'crossing' AND tags['crossing'] = 'traffic_signals'))"
)
_IS_NODE_FEATURE = f"({_IS_POI} OR tags['natural'] = 'tree' OR {_HAS_ADDRESS} OR {_IS_SIGNAL})"
_POI_CATEGORY = "CASE " + " ".join(f"WHEN tags['{k}'] IS NOT NULL THEN '{k}'" for k in POI_KEYS) + " END"
_POI_VALUE = "coalesce(" + ", ".join(f"tags['{k}']" for k in POI_KEYS) + ")"


@dataclass(frozen=True)
class _Layer:
    table: str
    title: str
    sql: str
    polygonal: bool


def ingest(source: SourceConfig, ctx: BuildContext) -> IngestResult:
    """Read an OSM PBF into the twin's OSM layers, clipped to the area and in the twin's CRS."""
    path = ctx.path_of(source)
    _check_file(path)
    memory = BuildMemory.of(ctx.config)
    with memory.spill_folder() as spill_to:
        con = ctx.compute_connection()
        try:
            limit_memory(
                con, memory_mb=memory.share_mb(READER_SHARE), spill_to=spill_to, spill_mb=memory.spill_mb
            )
            ctx.report("decoding the PBF")
            _decode(con, path)
            ctx.report("assembling geometries")
            _assemble(con, ctx.crs)
            con.execute(
                "CREATE TEMP TABLE area AS SELECT ST_GeomFromWKB(?) AS geom", [shapely.to_wkb(ctx.area)]
            )
            layers = [_write_layer(con, layer, ctx) for layer in _layers()]
        finally:
            con.close()
    if sum(layer.rows for layer in layers) == 0:
        raise SourceError("no OSM features inside the area of interest", path=path)
    return IngestResult(source=source, path=path, layers=layers)


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise SourceError("file not found", path=path)
    if path.stat().st_size == 0:
        raise SourceError("file is empty", path=path)
    if not path.name.endswith(".pbf"):
        raise SourceError("expected an OSM PBF file (*.osm.pbf)", path=path)


def _decode(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Decode the PBF into ``raw``, with the nodes' longitudes and latitudes (projected afterwards, by
    :func:`_node_coordinates`).

    Node tags are kept only for the nodes that become features (POIs, trees, addresses, traffic
    signals): most tagged nodes are crossings, stops and the like, and keeping their tag maps would cost time and memory
    for nothing.
    """
    try:
        con.execute(
            f"""CREATE TEMP TABLE raw AS
            SELECT kind, id, CASE WHEN kind <> 'node' OR {_IS_NODE_FEATURE} THEN tags END AS tags, refs,
                   ref_types, lon, lat
            FROM ST_ReadOSM(?)""",
            [str(path)],
        )
    except duckdb.Error as exc:
        if out_of_room(exc) is not None:
            raise  # not the file's fault: the build reports it (store.opening.build_store)
        message = str(exc).strip().splitlines()[0]
        raise SourceError(f"not a readable OSM PBF file ({message})", path=path) from None
    row = con.execute("SELECT count(*) FROM raw").fetchone()
    if row is None or row[0] == 0:
        raise SourceError("the PBF file holds no OSM data", path=path)


def _assemble(con: duckdb.DuckDBPyConnection, crs: str) -> None:
    """Build geometries from the nodes projected to ``crs``: ways (lines or closed rings), then
    multipolygon relations; and ``nodes``, the nodes that can become features, with their coordinates.

    A relation's member lines go to ``ST_BuildArea`` in the order of their way ids, the order the join
    gave them in most runs: collected as the join happened to produce them, a polygon's rings came out
    in an order that varied from run to run (the same polygon, its area differing in the last bit).
    """
    node_ids, x, y = _node_coordinates(con, crs)
    _feature_nodes(con, node_ids, x, y)
    con.execute(
        f"""CREATE TEMP TABLE relations AS
        SELECT id, tags, refs, ref_types FROM raw
        WHERE kind = 'relation' AND tags['type'] = 'multipolygon' AND {_any_tag(_AREA_TAGS)}"""
    )
    con.execute(
        """CREATE TEMP TABLE member_ways AS
        SELECT DISTINCT unnest(refs) AS id, unnest(ref_types) AS kind FROM relations"""
    )
    _way_geoms(con, node_ids, x, y)
    del node_ids, x, y
    con.execute(
        """CREATE TEMP TABLE relation_geoms AS
        SELECT r.id, r.tags, ST_BuildArea(ST_Collect(list(w.line ORDER BY w.id))) AS geom,
               count(w.id) AS n_found, max(len(r.refs)) AS n_members
        FROM (SELECT id, tags, refs, unnest(refs) AS ref, unnest(ref_types) AS kind FROM relations) r
        JOIN way_geoms w ON w.id = r.ref
        WHERE r.kind = 'way'
        GROUP BY r.id, r.tags"""
    )
    # Polygonal features: closed ways with area tags, plus assembled relations.
    con.execute(
        f"""CREATE TEMP TABLE areas AS
        SELECT id AS osm_id, 'way' AS osm_type, tags, ST_MakePolygon(line) AS geom FROM way_geoms
        WHERE closed AND {_any_tag(_AREA_TAGS)} AND coalesce(tags['area'], 'yes') <> 'no'
          AND NOT (tags['highway'] IS NOT NULL AND tags['area'] IS NULL)
        UNION ALL
        SELECT id, 'relation', tags, geom FROM relation_geoms WHERE NOT ST_IsEmpty(geom)"""
    )


WAY_VERTICES_PER_PART = 4_000_000
"""Way vertices (node references) whose coordinates are looked up at once (issue 14): the arrays
made per vertex (positions, matches, coordinates and their Arrow lists: about 80 bytes per vertex,
counted from the arrays, not measured) then hold about 320 MB whatever the size of the extract.
What is still read whole: the nodes' ids and coordinates (24 bytes per node) and the ways' node
references (8 bytes each)."""


def _node_coordinates(
    con: duckdb.DuckDBPyConnection, crs: str
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Every node that has coordinates in ``crs``: ids (sorted) and x, y (metres), projected by pyproj
    in place, in two slices at once (24 bytes a node).

    pyproj's array transform and DuckDB's ``ST_Transform`` call the same PROJ operation and agree to
    the bit on all 1.55 M nodes of the 8×8 extract; pyproj takes about a third of the CPU time. A node
    whose location is not a valid longitude/latitude, or does not project to finite coordinates (a
    whole-planet file in a UTM zone reaches points 90° from its meridian), gets no coordinates: ways
    treat it as missing from the extract and a POI or tree on it counts as having no geometry.
    """
    nodes = con.execute(
        "SELECT id, lon, lat FROM raw WHERE kind = 'node' AND lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180"
    ).fetchnumpy()
    node_ids = np.asarray(nodes.pop("id"), dtype=np.int64)
    x, y = (np.asarray(nodes.pop(c), dtype=np.float64) for c in ("lon", "lat"))
    project_in_place(x, y, source=WGS84, target=crs)
    finite = np.isfinite(x) & np.isfinite(y)
    if not finite.all():
        node_ids, x, y = node_ids[finite], x[finite], y[finite]
    if not np.all(node_ids[1:] > node_ids[:-1]):
        order = np.argsort(node_ids, kind="stable")
        node_ids, x, y = node_ids[order], x[order], y[order]
    return node_ids, x, y


def _feature_nodes(
    con: duckdb.DuckDBPyConnection,
    node_ids: npt.NDArray[np.int64],
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
) -> None:
    """``nodes``: the nodes with tags (those that can become features) and their coordinates (NULL
    for none), looked up among the projected nodes (``node_ids`` sorted) by id: ``node_xy`` holds
    only their ids and coordinates, the tags stay in ``raw``."""
    ids = np.asarray(
        con.execute("SELECT id FROM raw WHERE kind = 'node' AND tags IS NOT NULL").fetchnumpy()["id"],
        dtype=np.int64,
    )
    at = np.searchsorted(node_ids, ids)
    found = at < len(node_ids)
    found[found] = node_ids[at[found]] == ids[found]
    columns: dict[str, pa.Array] = {"id": pa.array(ids)}
    for name, values in (("x", x), ("y", y)):
        column = np.full(len(ids), np.nan)
        column[found] = values[at[found]]
        columns[name] = pa.array(column, mask=~found)
    coordinates = pa.table(columns)
    con.register("node_xy_arrow", coordinates)
    con.execute("CREATE TEMP TABLE node_xy AS SELECT * FROM node_xy_arrow")
    con.unregister("node_xy_arrow")
    con.execute(
        """CREATE TEMP VIEW nodes AS
        SELECT r.id, r.tags, c.x, c.y FROM raw r JOIN node_xy c ON c.id = r.id
        WHERE r.kind = 'node' AND r.tags IS NOT NULL"""
    )


def _way_geoms(
    con: duckdb.DuckDBPyConnection,
    node_ids: npt.NDArray[np.int64],
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
) -> None:
    """``way_geoms``: the line of each way that can make a feature (a highway, area tags, or a member of
    a multipolygon relation), from the vertices found in the extract, built in parts of about
    :data:`WAY_VERTICES_PER_PART` vertices (consecutive ways), with whether it is closed.

    The ways are picked as their node references are fetched, and their tags taken from ``raw`` as
    the lines are made: the tag maps are copied once, into ``way_geoms``, not first into a table of
    the picked ways (about 0.3 CPU s on the 8×8 extract's 329 k ways).
    """
    ways = con.execute(
        f"""SELECT id, refs FROM raw
        WHERE kind = 'way' AND (tags['highway'] IS NOT NULL OR {_any_tag(_AREA_TAGS)}
              OR id IN (SELECT id FROM member_ways WHERE kind = 'way'))"""
    ).to_arrow_table()
    statement = "CREATE TEMP TABLE way_geoms AS"
    for part in _way_parts(ways):
        ids = part["id"].to_numpy()
        con.register("way_vertex_lists", _vertex_lists(part, node_ids, x, y))
        con.execute(
            f"""{statement}
            SELECT w.id, w.tags, g.refs, ST_MakeLine(list_transform(g.coords, p -> ST_Point(p.x, p.y))) AS line,
                   len(w.refs) AS n_refs, len(g.refs) AS n_found,
                   len(g.refs) >= 4 AND w.refs[1] = w.refs[-1] AND len(g.refs) = len(w.refs) AS closed
            FROM raw w JOIN way_vertex_lists g ON g.id = w.id
            WHERE w.kind = 'way' AND len(g.refs) >= 2 AND w.id BETWEEN ? AND ?""",
            [int(ids.min()), int(ids.max())] if len(ids) else [0, -1],
        )
        con.unregister("way_vertex_lists")
        statement = "INSERT INTO way_geoms"


def _way_parts(ways: pa.Table) -> list[pa.Table]:
    """``ways`` (id, refs) cut into runs of consecutive ways of about :data:`WAY_VERTICES_PER_PART`
    vertices each (at least one part, at least one way per part); slices, not copies."""
    refs = ways["refs"].combine_chunks()
    lengths = np.diff(refs.offsets.to_numpy())
    ends = np.searchsorted(np.cumsum(lengths), np.arange(1, 1 + int(lengths.sum()) // WAY_VERTICES_PER_PART)
                           * WAY_VERTICES_PER_PART) + 1  # fmt: skip
    cuts = [0, *sorted({int(e) for e in ends if 0 < e < len(ways)}), len(ways)]
    return [ways.slice(start, stop - start) for start, stop in itertools.pairwise(cuts)] or [ways]


def _vertex_lists(ways: pa.Table, node_ids: np.ndarray, x: np.ndarray, y: np.ndarray) -> pa.Table:
    """Per way of ``ways``: ``id``, and the node ``refs`` and ``coords`` (x, y) of its vertices found
    among the nodes (``node_ids`` sorted, with their coordinates ``x``, ``y``).

    A vectorised lookup of every way's node references in the sorted node ids; the Arrow list
    columns let DuckDB build all lines at once, several times faster than aggregating ordered points
    per way in SQL.
    """
    ref_lists = ways["refs"].combine_chunks()
    refs = ref_lists.flatten().to_numpy()
    way_offsets = ref_lists.offsets.to_numpy() - ref_lists.offsets[0].as_py()
    position = np.minimum(np.searchsorted(node_ids, refs), max(len(node_ids) - 1, 0))
    found = node_ids[position] == refs if len(node_ids) else np.zeros(len(refs), dtype=bool)
    offsets = pa.array(np.r_[0, np.cumsum(found)][way_offsets].astype(np.int64))
    vertex = position[found]
    coords = pa.StructArray.from_arrays([pa.array(x[vertex]), pa.array(y[vertex])], names=["x", "y"])
    return pa.table({
        "id": ways["id"],
        "refs": pa.LargeListArray.from_arrays(offsets, pa.array(refs[found])),
        "coords": pa.LargeListArray.from_arrays(offsets, coords),
    })  # fmt: skip


def _layers() -> list[_Layer]:
    building_outer_ways = "(SELECT unnest(r.refs) FROM relations r WHERE r.tags['building'] IS NOT NULL)"
    return [
        _Layer(
            "buildings",
            "Buildings",
            f"""SELECT osm_id, osm_type, tags['building'] AS building, tags['name'] AS name,
                tags['height'] AS height_tag, tags['building:levels'] AS levels_tag,
                tags['start_date'] AS start_date, geom
            FROM areas WHERE tags['building'] IS NOT NULL AND tags['building'] <> 'no'
              AND NOT (osm_type = 'way' AND osm_id IN {building_outer_ways})""",
            polygonal=True,
        ),
        _Layer(
            "roads",
            "Roads and paths",
            f"""SELECT id AS osm_id, tags['highway'] AS highway, tags['name'] AS name,
                tags['lanes'] AS lanes, tags['maxspeed'] AS maxspeed, tags['oneway'] AS oneway,
                tags['oneway:bicycle'] AS oneway_bicycle, tags['junction'] AS junction,
                tags['surface'] AS surface, tags['access'] AS access,
                tags['motor_vehicle'] AS motor_vehicle, tags['motorcar'] AS motorcar,
                tags['vehicle'] AS vehicle, tags['bicycle'] AS bicycle, tags['foot'] AS foot,
                tags['service'] AS service, tags['busway'] AS busway, refs AS node_refs,
                n_refs - n_found AS missing_nodes, line AS geom
            FROM way_geoms WHERE tags['highway'] IS NOT NULL
              AND tags['highway'] NOT IN {_in(NON_ROAD_HIGHWAYS)} AND coalesce(tags['area'], 'no') <> 'yes'""",
            polygonal=False,
        ),
        _Layer(
            "pois",
            "Points of interest and amenities",
            f"""SELECT id AS osm_id, 'node' AS osm_type, {_POI_CATEGORY} AS category,
                {_POI_VALUE} AS subcategory, tags['name'] AS name, ST_Point(x, y) AS geom
            FROM nodes WHERE {_IS_POI}
            UNION ALL
            SELECT osm_id, osm_type, {_POI_CATEGORY}, {_POI_VALUE}, tags['name'], ST_PointOnSurface(geom)
            FROM areas WHERE {_IS_POI}""",
            polygonal=False,
        ),
        _Layer(
            "green",
            "Green areas",
            f"""SELECT osm_id, osm_type,
                coalesce(tags['leisure'], tags['landuse'], tags['natural']) AS kind, tags['name'] AS name, geom
            FROM areas WHERE {_IS_GREEN}""",
            polygonal=True,
        ),
        _Layer(
            "trees",
            "Trees",
            """SELECT id AS osm_id, tags['species'] AS species, tags['genus'] AS genus, ST_Point(x, y) AS geom
            FROM nodes WHERE tags['natural'] = 'tree'""",
            polygonal=False,
        ),
        _Layer(
            "traffic_signals",
            "Traffic signals",
            f"""SELECT id AS osm_id, tags['highway'] AS highway, tags['crossing'] AS crossing,
                tags['traffic_signals:direction'] AS direction, tags['traffic_signals'] AS signal_type,
                ST_Point(x, y) AS geom
            FROM nodes WHERE {_IS_SIGNAL}""",
            polygonal=False,
        ),
        _Layer(
            "landuse",
            "Land use",
            """SELECT osm_id, osm_type, tags['landuse'] AS landuse, tags['name'] AS name, geom
            FROM areas WHERE tags['landuse'] IS NOT NULL""",
            polygonal=True,
        ),
        _Layer(
            "water",
            "Water",
            f"""SELECT osm_id, osm_type, coalesce(tags['water'], tags['natural'], tags['waterway'], tags['landuse'])
                AS kind, tags['name'] AS name, geom
            FROM areas WHERE {_IS_WATER}""",
            polygonal=True,
        ),
        _Layer(
            "addresses",
            "Addresses",
            f"""SELECT id AS osm_id, 'node' AS osm_type, {_ADDRESS_COLUMNS}, ST_Point(x, y) AS geom
            FROM nodes WHERE {_HAS_ADDRESS}
            UNION ALL
            SELECT osm_id, osm_type, {_ADDRESS_COLUMNS}, ST_PointOnSurface(geom)
            FROM areas WHERE {_HAS_ADDRESS}""",
            polygonal=False,
        ),
    ]


# An address: its street (or, without one, the place it belongs to), house number, postcode and city.
_ADDRESS_COLUMNS = (
    "coalesce(tags['addr:street'], tags['addr:place']) AS street, tags['addr:housenumber'] AS housenumber, "
    "tags['addr:postcode'] AS postcode, tags['addr:city'] AS city"
)


def _write_layer(con: duckdb.DuckDBPyConnection, layer: _Layer, ctx: BuildContext) -> IngestedLayer:
    """Repair, clip and count one layer, then store it."""
    repaired = "ST_CollectionExtract(ST_MakeValid(geom), 3)" if layer.polygonal else "ST_MakeValid(geom)"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE staged AS
        WITH checked AS (SELECT *, NOT ST_IsValid(geom) AS was_invalid FROM ({layer.sql})),
        repaired AS (SELECT * REPLACE (CASE WHEN was_invalid THEN {repaired} ELSE geom END AS geom) FROM checked)
        SELECT *, geom IS NOT NULL AND NOT ST_IsEmpty(geom) AS has_geom,
               has_geom AND ST_Intersects(geom, (SELECT geom FROM area)) AS kept
        FROM repaired"""
    )
    columns = [c for c in _columns(con) if c not in ("geom", "was_invalid", "has_geom", "kept")]
    extra = ", ST_Area(geom) AS footprint_m2" if layer.table == "buildings" else ""
    extra += ", ST_Area(geom) AS area_m2" if layer.table in ("green", "landuse", "water") else ""
    extra += ", ST_Length(geom) AS length_m" if layer.table == "roads" else ""
    table: pa.Table = con.execute(
        f"""SELECT {", ".join(columns)}{extra}, ST_AsWKB(geom) AS geometry FROM staged WHERE kept
        ORDER BY osm_id"""
    ).to_arrow_table()
    rows = ctx.store.write_table(layer.table, table)
    ctx.layer_written(layer.table, table)
    return IngestedLayer(
        table=layer.table, rows=rows, title=layer.title, quality=_quality(con, layer.table, rows)
    )


def _columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("SELECT column_name FROM (DESCRIBE staged)").fetchall()]


_COMPLETENESS = {
    "buildings": {"height": "height_tag IS NOT NULL", "levels": "levels_tag IS NOT NULL",
                  "height_or_levels": "height_tag IS NOT NULL OR levels_tag IS NOT NULL",
                  "name": "name IS NOT NULL"},
    "roads": {"maxspeed": "maxspeed IS NOT NULL", "name": "name IS NOT NULL", "lanes": "lanes IS NOT NULL",
              "surface": "surface IS NOT NULL"},
    "pois": {"name": "name IS NOT NULL"},
    "green": {"name": "name IS NOT NULL"},
    "trees": {"species": "species IS NOT NULL"},
    "traffic_signals": {"direction": "direction IS NOT NULL"},
    "landuse": {"name": "name IS NOT NULL"},
    "water": {"name": "name IS NOT NULL"},
    "addresses": {"street": "street IS NOT NULL", "postcode": "postcode IS NOT NULL"},
}  # fmt: skip


def _quality(con: duckdb.DuckDBPyConnection, table: str, kept: int) -> dict[str, Any]:
    """The staged layer's quality record, from one pass over it.

    Geometry counts (received, without a geometry, repaired, dropped, outside the area); completeness: the share of kept
    features with each attribute that matters for this layer; duplicates: features whose geometry
    exactly repeats another's; for roads, ways that reference nodes missing from the extract.
    """
    checks = _COMPLETENESS[table]
    completeness = [f"avg(CASE WHEN {cond} THEN 1.0 ELSE 0.0 END) FILTER (kept)" for cond in checks.values()]
    missing_nodes = "count(*) FILTER (missing_nodes > 0)" if table == "roads" else "NULL"
    row = con.execute(
        f"""SELECT count(*), count(*) FILTER (geom IS NULL), count(*) FILTER (was_invalid),
                  count(*) FILTER (was_invalid AND NOT has_geom), count(*) FILTER (has_geom AND NOT kept),
                  count(geom) - count(DISTINCT ST_AsWKB(geom)), {missing_nodes}, {", ".join(completeness)}
           FROM staged"""
    ).fetchone()
    assert row is not None
    received, missing, invalid, unrepairable, outside, duplicates = (int(v) for v in row[:6])
    quality: dict[str, Any] = {
        "geometry": {
            "received": received,
            "missing_geometry": missing,
            "invalid_geometry": invalid,
            "repaired_geometry": invalid - unrepairable,
            "dropped_unrepairable": unrepairable,
            "outside_area": outside,
            "kept": kept,
        },
        "completeness": {
            name: round(float(v), 4) if v is not None else 0.0
            for name, v in zip(checks, row[7:], strict=True)
        },
        "duplicates": duplicates,
    }
    if table == "roads":
        quality["ways_with_missing_nodes"] = int(row[6])
    return quality
