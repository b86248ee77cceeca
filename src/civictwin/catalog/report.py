"""The catalogue and the quality report as DCAT-AP JSON-LD and as self-contained HTML pages.

JSON-LD mapping (DCAT-AP 3 with GeoDCAT-AP and PROV-O):

- the twin is a ``dcat:Catalog``; each table a ``dcat:Dataset`` with ``dct:title``,
  ``dct:description``, ``dct:publisher`` (a ``foaf:Agent``), ``dcat:contactPoint`` (a vCard for the
  steward), ``dct:license``, ``dct:accessRights`` (EU access-right authority: PUBLIC, RESTRICTED for
  internal, NON_PUBLIC for restricted), ``dct:issued``, ``dct:spatial`` with ``dcat:bbox`` and
  ``locn:geometry`` as WKT literals (lon/lat, CRS84), ``dct:conformsTo`` the storage CRS;
- provenance: ``prov:wasDerivedFrom`` input datasets or source files (``spdx:File`` with an
  ``spdx:checksum`` in SHA-256), ``prov:wasGeneratedBy`` the step as a ``prov:Activity`` with its
  parameters and tool versions as JSON literals;
- personal data (GDPR, W3C DPV): ``ct:containsPersonalData`` on every dataset; where true,
  ``dpv:hasPersonalData`` (each personal column as a ``dpv:PersonalData``), ``dpv:hasLegalBasis``,
  ``dpv:hasStorageCondition`` (a ``dpv:StorageDuration`` in days as an ``xsd:duration``) and
  ``ct:exactHomeLocations``;
- quality: ``dqv:QualityMeasurement`` per number, of ``dqv:Metric`` s defined in the same graph, and
  the notes as ``dqv:QualityAnnotation`` s.

Identifiers are URNs under ``urn:civictwin:<twin>:``, because a local twin has no web address.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from civictwin.catalog.lineage import LINEAGE
from civictwin.catalog.metadata import CATALOG, combine, source_files
from civictwin.catalog.quality import HEIGHT_SOURCE, QUALITY, percent, quality_highlights
from civictwin.config import slug
from civictwin.store.base import RecordReader
from civictwin.store.personal import PERSONAL_DATA

CONTEXT: dict[str, Any] = {
    "@version": 1.1,
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "spdx": "http://spdx.org/rdf/terms#",
    "prov": "http://www.w3.org/ns/prov#",
    "dqv": "http://www.w3.org/ns/dqv#",
    "locn": "http://www.w3.org/ns/locn#",
    "adms": "http://www.w3.org/ns/adms#",
    "gsp": "http://www.opengis.net/ont/geosparql#",
    "oa": "http://www.w3.org/ns/oa#",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "ldqd": "http://www.w3.org/2016/05/ldqd#",
    "owl": "http://www.w3.org/2002/07/owl#",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "dpv": "https://w3id.org/dpv#",
    "ct": "urn:civictwin:terms:",
}

ACCESS_RIGHTS = {
    "public": "http://publications.europa.eu/resource/authority/access-right/PUBLIC",
    "internal": "http://publications.europa.eu/resource/authority/access-right/RESTRICTED",
    "restricted": "http://publications.europa.eu/resource/authority/access-right/NON_PUBLIC",
}


@dataclass(frozen=True)
class _Metric:
    """A quality metric: what it counts and which dimension (W3C LDQD) it belongs to."""

    definition: str
    dimension: str
    datatype: str = "xsd:integer"


METRICS: dict[str, _Metric] = {
    "received": _Metric("Features read from the source.", "ldqd:completeness"),
    "missing_geometry": _Metric("Features without a geometry (dropped).", "ldqd:completeness"),
    "invalid_geometry": _Metric("Features with an invalid geometry.", "ldqd:consistency"),
    "repaired_geometry": _Metric("Invalid geometries repaired (make_valid).", "ldqd:consistency"),
    "dropped_unrepairable": _Metric(
        "Invalid geometries that could not be repaired (dropped).", "ldqd:consistency"
    ),
    "outside_area": _Metric("Features outside the twin's area (left out).", "ldqd:completeness"),
    "kept": _Metric("Features kept in the twin.", "ldqd:completeness"),
    "duplicates": _Metric("Duplicate features found.", "ldqd:consistency"),
    "ways_with_missing_nodes": _Metric(
        "Ways with nodes missing from the extract or without a valid location (usually cut at its edge; "
        "kept with the nodes present).",
        "ldqd:completeness",
    ),
    "completeness": _Metric(
        "Share of rows with a value for the attribute named by ct:attribute.",
        "ldqd:completeness",
        "xsd:double",
    ),
    "height_source_share": _Metric(
        "Share of buildings whose height comes from the source named by ct:category "
        "(height tag, levels tag, or a default per building type).",
        "ldqd:semanticAccuracy",
        "xsd:double",
    ),
}


# ---------------------------------------------------------------- JSON-LD


def catalog_jsonld(store: RecordReader) -> dict[str, Any]:
    """The twin's catalogue as a DCAT-AP ``dcat:Catalog`` JSON-LD document."""
    twin = _twin_name(store)
    catalogue = store.records(CATALOG)
    lineage = store.records(LINEAGE)
    datasets = [_dataset(twin, record, lineage.get(table)) for table, record in catalogue.items()]
    issued = [r["issued"] for r in catalogue.values() if r.get("issued")]
    document: dict[str, Any] = {
        "@context": CONTEXT,
        "@id": f"urn:civictwin:{slug(twin)}:catalog",
        "@type": "dcat:Catalog",
        "dct:title": f"{twin}: data catalogue",
        "dct:description": f"The datasets of the civictwin twin '{twin}', with provenance and licences.",
        "dct:publisher": _agent(combine(r["publisher"] for r in catalogue.values()) or "civictwin"),
        "dcat:dataset": datasets,
    }
    if issued:
        document["dct:modified"] = _datetime(max(issued))
    return document


def quality_jsonld(store: RecordReader) -> dict[str, Any]:
    """The quality records as DQV: measurements and annotations per dataset, plus the metrics used."""
    twin = _twin_name(store)
    nodes: list[dict[str, Any]] = []
    used: set[str] = set()
    for table, record in store.records(QUALITY).items():
        iri = dataset_iri(twin, table)
        measurements = list(_source_measurements(iri, record))
        used.update(m["dqv:isMeasurementOf"]["@id"].removeprefix("ct:metric/") for m in measurements)
        node: dict[str, Any] = {
            "@id": iri,
            "@type": "dcat:Dataset",
            "dct:identifier": table,
            "dqv:hasQualityMeasurement": measurements,
        }
        notes = [_annotation(iri, note) for note in record.get("notes", [])]
        if notes:
            node["dqv:hasQualityAnnotation"] = notes
        nodes.append(node)
    metrics = [_metric_node(name) for name in METRICS if name in used]
    return {"@context": CONTEXT, "@graph": nodes + metrics}


def dataset_iri(twin: str, table: str) -> str:
    """The identifier of a table of a twin."""
    return f"urn:civictwin:{slug(twin)}:dataset:{table}"


def _twin_name(store: RecordReader) -> str:
    meta = store.records("meta").get("twin", {})
    return str(meta.get("name") or "twin")


def _dataset(twin: str, record: Mapping[str, Any], lineage: Mapping[str, Any] | None) -> dict[str, Any]:
    table = record["table"]
    iri = dataset_iri(twin, table)
    node: dict[str, Any] = {
        "@id": iri,
        "@type": "dcat:Dataset",
        "dct:identifier": table,
        "dct:title": record["title"],
        "dct:description": record.get("description") or record["title"],
        "dct:publisher": _agent(record["publisher"]),
        "dcat:contactPoint": {"@type": "vcard:Kind", "vcard:fn": record["steward"]},
        "dct:license": _licence(record["licence"]),
        "dct:accessRights": {"@id": ACCESS_RIGHTS[record["access"]], "@type": "dct:RightsStatement"},
        "dct:issued": _datetime(record["issued"]),
        "dct:conformsTo": {"@id": _crs_iri(record["crs"]), "@type": "dct:Standard"},
        "ct:rowCount": {"@value": int(record["rows"]), "@type": "xsd:integer"},
        "ct:kind": record["kind"],
    }
    node.update(_personal_data(record.get(PERSONAL_DATA)))
    bbox = record.get("bbox_wgs84")
    if bbox:
        wkt = {"@value": bbox_wkt(bbox), "@type": "gsp:wktLiteral"}
        node["dct:spatial"] = {"@type": "dct:Location", "dcat:bbox": wkt, "locn:geometry": wkt}
    inputs = _inputs(twin, record, lineage)
    if inputs:
        node["prov:wasDerivedFrom"] = inputs
    if lineage is not None:
        node["prov:wasGeneratedBy"] = _activity(iri, record, lineage, inputs)
    return node


def _personal_data(part: Mapping[str, Any] | None) -> dict[str, Any]:
    """The GDPR facts of a dataset in DPV terms: which columns are personal, legal basis, retention."""
    if not part:
        return {"ct:containsPersonalData": False}
    node: dict[str, Any] = {
        "ct:containsPersonalData": True,
        "ct:exactHomeLocations": bool(part.get("locations")),
        "dpv:hasPersonalData": [{"@type": "dpv:PersonalData", "rdfs:label": f} for f in part["fields"]],
        "dpv:hasLegalBasis": {
            "@type": "dpv:LegalBasis",
            "rdfs:label": part.get("legal_basis") or "not declared",
        },
    }
    if part.get("retention_days") is not None:
        duration = {"@value": f"P{int(part['retention_days'])}D", "@type": "xsd:duration"}
        node["dpv:hasStorageCondition"] = {"@type": "dpv:StorageDuration", "rdf:value": duration}
    return node


def _personal_facts(part: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The HTML lines saying whether a dataset holds personal data, and on what terms."""
    if not part:
        return [("Personal data", "none")]
    fields = ", ".join(f"<code>{escape(f)}</code>" for f in part["fields"]) or "none in its columns"
    retention = part.get("retention_days")
    return [
        ("Personal data", f"{fields} (never published)"),
        (
            "Exact home locations",
            "yes: restricted, published only aggregated" if part.get("locations") else "no",
        ),
        ("Legal basis", escape(part.get("legal_basis") or "not declared")),
        ("Retention", f"{int(retention):,} days" if retention is not None else "not declared"),
    ]


def _inputs(twin: str, record: Mapping[str, Any], lineage: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Input datasets and files: from lineage when recorded, else from the catalogue record."""
    if lineage is not None:
        entries: Iterable[Mapping[str, Any]] = lineage["inputs"]
    elif source_files(record):
        entries = [{"type": "file", **source} for source in source_files(record)]
    else:
        entries = [{"type": "table", "table": name} for name in record.get("inputs", [])]
    return [
        {"@id": dataset_iri(twin, e["table"])} if e["type"] == "table" else _file(e["path"], e["sha256"])
        for e in entries
    ]


def _file(path: str, sha256: str) -> dict[str, Any]:
    return {
        "@id": Path(path).absolute().as_uri(),
        "@type": ["prov:Entity", "spdx:File"],
        "spdx:fileName": path,
        "spdx:checksum": {
            "@type": "spdx:Checksum",
            "spdx:algorithm": {"@id": "spdx:checksumAlgorithm_sha256"},
            "spdx:checksumValue": {"@value": sha256, "@type": "xsd:hexBinary"},
        },
    }


def _activity(
    iri: str, record: Mapping[str, Any], lineage: Mapping[str, Any], inputs: list[dict[str, Any]]
) -> dict[str, Any]:
    tools = lineage.get("tools", {})
    return {
        "@id": f"{iri}:activity",
        "@type": "prov:Activity",
        "rdfs:label": lineage["step"],
        "prov:endedAtTime": _datetime(record["issued"]),
        "prov:used": [{"@id": i["@id"]} for i in inputs],
        "prov:wasAssociatedWith": {
            "@type": "prov:SoftwareAgent",
            "foaf:name": "civictwin",
            "owl:versionInfo": str(tools.get("civictwin", "")),
        },
        "ct:parameters": {"@value": lineage.get("parameters", {}), "@type": "@json"},
        "ct:toolVersions": {"@value": tools, "@type": "@json"},
    }


def _source_measurements(iri: str, record: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    """A record's measurements; for a table of several sources each one's, marked ``ct:source``."""
    if not record.get("by_source"):
        yield from _measurements(iri, record)
        return
    for source, own in record["by_source"].items():
        for measurement in _measurements(iri, own):
            yield {**measurement, "ct:source": source}


def _measurements(iri: str, record: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    for name, value in (record.get("geometry") or {}).items():
        if name in METRICS:
            yield _measurement(iri, name, value)
    for name in ("duplicates", "ways_with_missing_nodes"):
        if record.get(name) is not None:
            yield _measurement(iri, name, record[name])
    for attribute, share in (record.get("completeness") or {}).items():
        yield {**_measurement(iri, "completeness", share), "ct:attribute": attribute}
    counts: Mapping[str, int] = record.get(HEIGHT_SOURCE) or {}
    total = sum(counts.values())
    for category, count in counts.items():
        yield {**_measurement(iri, "height_source_share", count / total), "ct:category": category}


def _measurement(iri: str, metric: str, value: float) -> dict[str, Any]:
    datatype = METRICS[metric].datatype
    typed = int(value) if datatype == "xsd:integer" else float(value)
    return {
        "@type": "dqv:QualityMeasurement",
        "dqv:computedOn": {"@id": iri},
        "dqv:isMeasurementOf": {"@id": f"ct:metric/{metric}"},
        "dqv:value": {"@value": typed, "@type": datatype},
    }


def _metric_node(name: str) -> dict[str, Any]:
    metric = METRICS[name]
    return {
        "@id": f"ct:metric/{name}",
        "@type": "dqv:Metric",
        "skos:prefLabel": name.replace("_", " "),
        "skos:definition": metric.definition,
        "dqv:expectedDataType": {"@id": metric.datatype},
        "dqv:inDimension": {"@id": metric.dimension},
    }


def _annotation(iri: str, note: str) -> dict[str, Any]:
    return {
        "@type": "dqv:QualityAnnotation",
        "oa:hasTarget": {"@id": iri},
        "oa:hasBody": {"@type": "oa:TextualBody", "rdf:value": note, "dct:format": "text/plain"},
        "oa:motivatedBy": {"@id": "dqv:qualityAssessment"},
    }


def _agent(name: str) -> dict[str, Any]:
    return {"@type": "foaf:Agent", "foaf:name": name}


def _licence(licence: str) -> dict[str, Any]:
    """A licence document: its IRI when the licence is a URL, else labelled by its identifier."""
    if licence.startswith(("http://", "https://")):
        return {"@id": licence, "@type": "dct:LicenseDocument"}
    return {"@type": "dct:LicenseDocument", "dct:identifier": licence, "rdfs:label": licence}


def _datetime(value: str) -> dict[str, str]:
    return {"@value": value, "@type": "xsd:dateTime"}


def _crs_iri(crs: str) -> str:
    """The OGC IRI of an ``AUTHORITY:CODE`` CRS (e.g. ``http://www.opengis.net/def/crs/EPSG/0/32635``)."""
    authority, _, code = crs.partition(":")
    return f"http://www.opengis.net/def/crs/{authority.upper()}/0/{code}"


def bbox_wkt(bbox: Iterable[float]) -> str:
    """A lon/lat bounding box ``[minx, miny, maxx, maxy]`` as a closed WKT polygon."""
    x0, y0, x1, y1 = bbox
    return f"POLYGON(({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))"


# ---------------------------------------------------------------- HTML

_CSS = """
:root { color-scheme: light; }
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1b1b;
       background: #ffffff; margin: 0 auto; max-width: 75rem; padding: 1.5rem; }
h1 { font-size: 1.75rem; margin: 0 0 .25rem; }
h2 { font-size: 1.3rem; margin: 2rem 0 .5rem; border-bottom: 2px solid #1f3a5f; padding-bottom: .2rem; }
h3 { font-size: 1.1rem; margin: 1.25rem 0 .4rem; }
p.lead { color: #3d3d3d; margin-top: 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: .5rem 0 1rem; min-width: 50%; }
caption { text-align: left; font-weight: 600; padding: .25rem 0; }
th, td { border: 1px solid #b8c2cc; padding: .35rem .6rem; text-align: left; vertical-align: top; }
thead th { background: #1f3a5f; color: #ffffff; }
tbody th { background: #e8eef5; font-weight: 600; }
tbody tr:nth-child(even) td { background: #f5f7fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em; }
code.hash { word-break: break-all; }
pre { background: #f5f7fa; border: 1px solid #b8c2cc; padding: .5rem; overflow-x: auto; margin: 0; }
.access { display: inline-block; padding: 0 .45rem; border-radius: .3rem; font-weight: 600; }
.access-public { background: #e3f1e7; color: #0b5323; }
.access-internal { background: #fdf0d8; color: #6b3f00; }
.access-restricted { background: #fbe3e1; color: #8a1111; }
ul.highlights li { margin: .25rem 0; }
footer { margin-top: 2.5rem; color: #3d3d3d; font-size: .9rem; }
"""


def catalog_html(store: RecordReader) -> str:
    """The catalogue as one self-contained, accessible HTML page (inline CSS, no scripts)."""
    twin = _twin_name(store)
    catalogue = store.records(CATALOG)
    lineage = store.records(LINEAGE)
    rows = [
        [
            f'<th scope="row"><a href="#{escape(t)}">{escape(t)}</a></th>',
            _td(r["title"]),
            _td(r["kind"]),
            _td(f"{int(r['rows']):,}", num=True),
            f"<td>{_access_badge(r['access'])}</td>",
            _td(r["licence"]),
            _td(r["publisher"]),
        ]
        for t, r in catalogue.items()
    ]
    summary = _table(
        "Datasets", ["Table", "Title", "Kind", "Rows", "Access", "Licence", "Publisher"], rows, "summary"
    )
    details = "".join(_dataset_section(r, lineage.get(t)) for t, r in catalogue.items())
    body = (
        f"<h1>{escape(twin)}: data catalogue</h1>"
        f'<p class="lead">{len(catalogue)} datasets, each with its licence, steward, access level and '
        "provenance. Machine-readable version: DCAT-AP JSON-LD "
        "(<code>civictwin catalog --json-ld</code>).</p>"
        f"{summary}{details}"
    )
    return _page(f"{twin}: data catalogue", body)


def _dataset_section(record: Mapping[str, Any], lineage: Mapping[str, Any] | None) -> str:
    table = record["table"]
    facts: list[tuple[str, str]] = [
        ("Title", escape(record["title"])),
        ("Description", escape(record.get("description") or "—")),
        ("Kind", escape(record["kind"])),
        ("Publisher", escape(record["publisher"])),
        ("Steward", escape(record["steward"])),
        ("Licence", escape(record["licence"])),
        ("Access", _access_badge(record["access"])),
        ("Rows", f"{int(record['rows']):,}"),
        ("Issued", escape(record["issued"])),
        ("Storage CRS", escape(record["crs"])),
        ("Extent (WGS84)", escape(_bbox_text(record.get("bbox_wgs84")))),
    ]
    for credit in record.get("sources") or []:
        count = int(credit["rows"])
        facts.append(("Source", escape(f"{credit['name']}: {credit['publisher']}, {credit['licence']}, "
                                       f"{count:,} {'row' if count == 1 else 'rows'}")))  # fmt: skip
    for source in source_files(record):
        facts.append(("Source file", f"<code>{escape(source['path'])}</code>"))
        facts.append(("SHA-256", f'<code class="hash">{escape(source["sha256"])}</code>'))
    facts.extend(_personal_facts(record.get(PERSONAL_DATA)))
    if record.get("inputs"):
        facts.append(("Derived from", ", ".join(_link(name) for name in record["inputs"])))
    if lineage is not None:
        facts.extend(_lineage_facts(lineage))
    rows = [[f'<th scope="row">{label}</th>', f"<td>{value}</td>"] for label, value in facts]
    return f'<section id="{escape(table)}"><h2>{escape(table)}</h2>{_table(None, [], rows, None)}</section>'


def _lineage_facts(lineage: Mapping[str, Any]) -> list[tuple[str, str]]:
    inputs = [
        _link(i["table"]) if i["type"] == "table" else f"<code>{escape(i['path'])}</code>"
        for i in lineage["inputs"]
    ]
    tools = ", ".join(f"{escape(k)} {escape(str(v))}" for k, v in lineage.get("tools", {}).items())
    return [
        ("Produced by step", f"<code>{escape(lineage['step'])}</code>"),
        ("Inputs", ", ".join(inputs) or "—"),
        ("Parameters", _pre(lineage.get("parameters", {}))),
        ("Tool versions", tools),
    ]


def quality_html(store: RecordReader) -> str:
    """The quality report as one self-contained, accessible HTML page (inline CSS, no scripts)."""
    twin = _twin_name(store)
    highlights = quality_highlights(store)
    items = (
        "".join(f"<li>{escape(line)}</li>" for line in highlights) or "<li>No quality issues recorded.</li>"
    )
    sections = "".join(_quality_section(t, r) for t, r in store.records(QUALITY).items())
    body = (
        f"<h1>{escape(twin)}: data quality</h1>"
        '<p class="lead">What was repaired, dropped, estimated or is missing in each dataset. '
        "Machine-readable version: DQV JSON-LD (<code>civictwin quality --json-ld</code>).</p>"
        f'<h2 id="highlights">Highlights</h2><ul class="highlights">{items}</ul>{sections}'
    )
    return _page(f"{twin}: data quality", body)


def _quality_section(table: str, record: Mapping[str, Any]) -> str:
    """One table's section; a table of several sources gets one sub-section per source."""
    parts = [f'<section id="{escape(table)}"><h2>{escape(table)}</h2>']
    if record.get("by_source"):
        for source, own in record["by_source"].items():
            parts.append(f"<h3>{escape(source)}</h3>")
            parts += _quality_body(own)
    else:
        parts += _quality_body(record)
    parts.append("</section>")
    return "".join(parts)


def _quality_body(record: Mapping[str, Any]) -> list[str]:
    """The numbers and notes of one quality record as HTML fragments."""
    parts: list[str] = []
    geometry = record.get("geometry") or {}
    if geometry:
        rows = [
            [f'<th scope="row">{escape(k.replace("_", " "))}</th>', _td(f"{int(v):,}", num=True)]
            for k, v in geometry.items()
        ]
        parts.append(_table("Geometry", ["Check", "Features"], rows, None))
    if record.get("duplicates") is not None:
        parts.append(f"<p>Duplicate features: {int(record['duplicates']):,}</p>")
    if record.get("ways_with_missing_nodes") is not None:
        parts.append(
            "<p>Ways with nodes missing from the extract or without a valid location: "
            f"{int(record['ways_with_missing_nodes']):,}</p>"
        )
    completeness = record.get("completeness") or {}
    if completeness:
        rows = [
            [f'<th scope="row">{escape(k)}</th>', _td(percent(float(v)), num=True)]
            for k, v in completeness.items()
        ]
        parts.append(_table("Completeness", ["Attribute", "Rows with a value"], rows, None))
    heights: Mapping[str, int] = record.get(HEIGHT_SOURCE) or {}
    if heights:
        total = sum(heights.values())
        rows = [
            [f'<th scope="row">{escape(k)}</th>', _td(f"{n:,}", num=True), _td(percent(n / total), num=True)]
            for k, n in heights.items()
        ]
        parts.append(_table("Building heights by source", ["Source", "Buildings", "Share"], rows, None))
    notes = record.get("notes") or []
    if notes:
        parts.append("<h3>Notes</h3><ul>" + "".join(f"<li>{escape(str(n))}</li>" for n in notes) + "</ul>")
    return parts


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
        f"<body><main>{body}</main><footer>Generated by civictwin.</footer></body></html>\n"
    )


def _table(caption: str | None, headers: list[str], rows: list[list[str]], label: str | None) -> str:
    head = "<thead><tr>" + "".join(f'<th scope="col">{escape(h)}</th>' for h in headers) + "</tr></thead>"
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    body = "<tbody>" + "".join("<tr>" + "".join(r) + "</tr>" for r in rows) + "</tbody>"
    ident = f' id="{label}"' if label else ""
    return f'<div class="scroll"><table{ident}>{cap}{head if headers else ""}{body}</table></div>'


def _td(text: str, *, num: bool = False) -> str:
    return f'<td class="num">{escape(text)}</td>' if num else f"<td>{escape(text)}</td>"


def _access_badge(level: str) -> str:
    return f'<span class="access access-{escape(level)}">{escape(level)}</span>'


def _link(table: str) -> str:
    return f'<a href="#{escape(table)}">{escape(table)}</a>'


def _pre(value: Mapping[str, Any]) -> str:
    return f"<pre>{escape(json.dumps(value, indent=2, sort_keys=True, default=str))}</pre>"


def _bbox_text(bbox: list[float] | None) -> str:
    if not bbox:
        return "—"
    return f"lon {bbox[0]:.5f} to {bbox[2]:.5f}, lat {bbox[1]:.5f} to {bbox[3]:.5f}"
