"""The catalogue and quality reports: DCAT-AP / DQV JSON-LD (checked as RDF with rdflib) and HTML pages."""

from __future__ import annotations

import hashlib
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from catalog_twin import BUILT
from shapely.geometry import Point

from civictwin.catalog.lineage import record_lineage
from civictwin.catalog.metadata import record_derived
from civictwin.catalog.quality import record_quality
from civictwin.catalog.report import (
    ACCESS_RIGHTS,
    bbox_wkt,
    catalog_html,
    catalog_jsonld,
    quality_html,
    quality_jsonld,
)
from civictwin.store.duckdb import DuckDBStore

TWIN = "urn:civictwin:helsinki-centre:dataset:"


@pytest.fixture
def governed(populated: DuckDBStore) -> DuckDBStore:
    """Four source tables, one derived table, lineage for two tables and quality for three."""
    populated.write_table(
        "zones",
        gpd.GeoDataFrame(
            {"zone_id": ["a"]}, geometry=[Point(385_000, 6_672_000).buffer(50)], crs="EPSG:32635"
        ),
    )
    record_derived(
        populated,
        "zones",
        title="Zones",
        description="H3 cells",
        inputs=["buildings", "transit_stops"],
        built_at=BUILT,
    )
    record_lineage(populated, "roads", inputs=["helsinki_osm"], step="sources.osm", parameters={"clip": True})
    record_lineage(
        populated,
        "zones",
        inputs=["buildings", "transit_stops"],
        step="model.zones",
        parameters={"resolution": 9},
    )
    geometry = {
        "received": 6,
        "invalid_geometry": 1,
        "repaired_geometry": 1,
        "dropped_unrepairable": 0,
        "outside_area": 1,
        "kept": 4,
    }
    numbers = {
        "geometry": geometry,
        "completeness": {"name": 0.5},
        "duplicates": 2,
        "ways_with_missing_nodes": 3,
    }
    record_quality(populated, "roads", numbers, [])
    record_quality(populated, "buildings", {}, ["heights estimated <where> missing"])
    record_quality(populated, "zones", {}, [])
    return populated


def _by_table(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["dct:identifier"]: d for d in document["dcat:dataset"]}


def test_catalog_jsonld_is_a_dcat_catalog_of_every_dataset(governed: DuckDBStore) -> None:
    document = json.loads(json.dumps(catalog_jsonld(governed)))
    assert document["@type"] == "dcat:Catalog"
    assert {"dcat", "dct", "foaf", "vcard", "spdx", "prov", "dqv", "locn", "adms"} <= set(
        document["@context"]
    )
    datasets = _by_table(document)
    assert sorted(datasets) == ["buildings", "roads", "transit_stops", "transit_trips", "zones"]
    assert {d["@type"] for d in datasets.values()} == {"dcat:Dataset"}
    roads = datasets["roads"]
    assert roads["dct:publisher"] == {"@type": "foaf:Agent", "foaf:name": "OpenStreetMap contributors"}
    assert roads["dcat:contactPoint"] == {"@type": "vcard:Kind", "vcard:fn": "City GIS unit"}
    assert roads["dct:license"]["dct:identifier"] == "ODbL-1.0"
    assert roads["dct:accessRights"]["@id"].endswith("/access-right/PUBLIC")
    assert roads["dct:conformsTo"]["@id"] == "http://www.opengis.net/def/crs/EPSG/0/32635"
    assert roads["dct:spatial"]["dcat:bbox"]["@type"] == "gsp:wktLiteral"
    assert roads["dct:spatial"]["dcat:bbox"]["@value"].startswith("POLYGON((24.")
    assert roads["ct:rowCount"] == {"@value": 1, "@type": "xsd:integer"}
    assert "dct:spatial" not in datasets["transit_trips"]
    assert datasets["transit_stops"]["dct:accessRights"]["@id"] == ACCESS_RIGHTS["internal"]
    assert datasets["transit_stops"]["dct:license"] == {
        "@id": "https://creativecommons.org/licenses/by/4.0/",
        "@type": "dct:LicenseDocument",
    }


def test_catalog_jsonld_carries_checksums_and_provenance(governed: DuckDBStore, osm_file: Path) -> None:
    datasets = _by_table(catalog_jsonld(governed))
    (source,) = datasets["roads"]["prov:wasDerivedFrom"]
    assert source["@type"] == ["prov:Entity", "spdx:File"]
    assert source["spdx:checksum"]["spdx:algorithm"] == {"@id": "spdx:checksumAlgorithm_sha256"}
    assert (
        source["spdx:checksum"]["spdx:checksumValue"]["@value"]
        == hashlib.sha256(osm_file.read_bytes()).hexdigest()
    )
    activity = datasets["roads"]["prov:wasGeneratedBy"]
    assert activity["@type"] == "prov:Activity"
    assert activity["rdfs:label"] == "sources.osm"
    assert activity["ct:parameters"] == {"@value": {"clip": True}, "@type": "@json"}
    zones = datasets["zones"]
    assert zones["prov:wasDerivedFrom"] == [{"@id": TWIN + "buildings"}, {"@id": TWIN + "transit_stops"}]
    assert zones["dct:accessRights"]["@id"] == ACCESS_RIGHTS["internal"]
    # without a lineage record, provenance still comes from the catalogue: the source file
    (gtfs,) = datasets["transit_trips"]["prov:wasDerivedFrom"]
    assert gtfs["@id"].startswith("file:///") and gtfs["@id"].endswith("/gtfs")
    assert "prov:wasGeneratedBy" not in datasets["transit_trips"]


def test_quality_jsonld_has_one_measurement_per_number(governed: DuckDBStore) -> None:
    document = json.loads(json.dumps(quality_jsonld(governed)))
    nodes = {n["@id"]: n for n in document["@graph"]}
    roads = nodes[TWIN + "roads"]
    measures = {
        (m["dqv:isMeasurementOf"]["@id"], m.get("ct:attribute")): m["dqv:value"]["@value"]
        for m in roads["dqv:hasQualityMeasurement"]
    }
    assert measures == {
        ("ct:metric/received", None): 6,
        ("ct:metric/invalid_geometry", None): 1,
        ("ct:metric/repaired_geometry", None): 1,
        ("ct:metric/dropped_unrepairable", None): 0,
        ("ct:metric/outside_area", None): 1,
        ("ct:metric/kept", None): 4,
        ("ct:metric/duplicates", None): 2,
        ("ct:metric/ways_with_missing_nodes", None): 3,
        ("ct:metric/completeness", "name"): 0.5,
    }
    buildings = nodes[TWIN + "buildings"]
    shares = {m["ct:category"]: m["dqv:value"]["@value"] for m in buildings["dqv:hasQualityMeasurement"]}
    assert shares == pytest.approx({"default": 2 / 3, "height": 1 / 3})
    (note,) = buildings["dqv:hasQualityAnnotation"]
    assert note["oa:hasBody"]["rdf:value"] == "heights estimated <where> missing"
    metrics = sorted(i for i, n in nodes.items() if n["@type"] == "dqv:Metric")
    assert len(metrics) == 10  # 6 geometry + duplicates + ways cut at the edge + completeness + height shares
    assert nodes[TWIN + "zones"]["dqv:hasQualityMeasurement"] == []


def test_jsonld_documents_parse_as_rdf_with_the_right_types(governed: DuckDBStore) -> None:
    rdflib = pytest.importorskip("rdflib", reason="rdflib checks the JSON-LD as RDF")
    ns = {p: rdflib.Namespace(i) for p, i in catalog_jsonld(governed)["@context"].items() if p != "@version"}
    catalog = rdflib.Graph().parse(data=json.dumps(catalog_jsonld(governed)), format="json-ld")
    rdf_type = rdflib.RDF.type
    assert len(list(catalog.subjects(rdf_type, ns["dcat"].Catalog))) == 1
    assert len(list(catalog.subjects(rdf_type, ns["dcat"].Dataset))) == 5
    assert len(list(catalog.objects(None, ns["dcat"].dataset))) == 5
    assert len(list(catalog.subjects(rdf_type, ns["spdx"].Checksum))) == 4  # one per source-table reference
    roads = rdflib.URIRef(TWIN + "roads")
    assert catalog.value(roads, ns["dct"].accessRights) == rdflib.URIRef(ACCESS_RIGHTS["public"])
    bbox = catalog.value(catalog.value(roads, ns["dct"].spatial), ns["dcat"].bbox)
    assert bbox.datatype == rdflib.URIRef("http://www.opengis.net/ont/geosparql#wktLiteral")
    quality = rdflib.Graph().parse(data=json.dumps(quality_jsonld(governed)), format="json-ld")
    assert len(list(quality.subjects(rdf_type, ns["dqv"].QualityMeasurement))) == 11  # 9 roads + 2 buildings
    assert len(list(quality.subjects(rdf_type, ns["dqv"].QualityAnnotation))) == 1
    assert len(list(quality.subjects(rdf_type, ns["dqv"].Metric))) == 10


def test_bbox_wkt_is_a_closed_lon_lat_polygon() -> None:
    assert (
        bbox_wkt([24.9, 60.1, 25.0, 60.2])
        == "POLYGON((24.9 60.1, 25.0 60.1, 25.0 60.2, 24.9 60.2, 24.9 60.1))"
    )


class _Page(HTMLParser):
    """Collects what matters for a self-contained, accessible page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.external: list[str] = []
        self.open: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag not in {"meta", "br", "img", "link", "input"}:
            self.open.append(tag)
        for name, value in attrs:
            if name in {"src", "href"} and value and not value.startswith("#"):
                self.external.append(value)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    assert page.open == []  # every element closed, properly nested
    return page


def test_catalog_html_is_self_contained_and_semantic(governed: DuckDBStore) -> None:
    html = catalog_html(governed)
    page = _parse(html)
    assert html.startswith("<!DOCTYPE html>") and '<html lang="en">' in html
    assert "script" not in page.tags and page.external == []
    assert page.tags.count("section") == 5
    assert html.count('<th scope="col">') == 7
    assert 'href="#zones"' in html  # summary rows link to the details
    text = "".join(page.text)
    assert hashlib.sha256(b"not really a pbf, but real bytes to checksum\x00\x01\x02").hexdigest() in text
    assert "OpenStreetMap contributors; Helsinki Region Transport" in text  # zones: publishers combined
    assert "model.zones" in text and '"resolution": 9' in text


def test_quality_html_lists_highlights_and_escapes_text(governed: DuckDBStore) -> None:
    html = quality_html(governed)
    page = _parse(html)
    assert "script" not in page.tags and page.external == []
    assert "heights estimated &lt;where&gt; missing" in html
    items = html.split('<ul class="highlights">')[1].split("</ul>")[0]
    assert items.count("<li>") == 5
    assert "roads: 1 invalid geometry (1 repaired, 0 dropped)" in items
    assert (
        "roads: 3 ways have nodes missing from the extract or without a valid location (usually cut at its "
        "edge); kept with the nodes present" in items
    )
    assert "<p>Ways with nodes missing from the extract or without a valid location: 3</p>" in html
    assert page.tags.count("caption") == 3  # roads geometry + completeness, buildings heights
