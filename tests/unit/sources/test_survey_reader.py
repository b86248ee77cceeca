"""Street survey exports (ODK Central, KoboToolbox CSV, GeoJSON) read into the twin: hand-made exports.

Places in UTM 35N (EPSG:32635) were computed once with PROJ: (60.1699 N, 24.9384 E) is
(385611.32, 6672118.38); (60.1710 N, 24.9410 E) is (385759.37, 6672236.35); (60.1650 N, 24.9300 E)
is (385128.24, 6671587.43). (60.2000 N, 24.9500 E) lies outside the test area (north of 60.18 N).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import ExifTags, Image
from shapely.geometry import box

from civictwin.config import SourceKind, parse_config
from civictwin.errors import SourceError
from civictwin.fieldwork.photos import MEDIA_SUFFIX, metadata_left
from civictwin.geometry import WGS84, reproject
from civictwin.sources import reader_for
from civictwin.sources.base import BuildContext
from civictwin.sources.survey import ingest, read_export
from civictwin.store.duckdb import DuckDBStore

CRS = "EPSG:32635"
BBOX = (24.90, 60.150, 24.97, 60.180)  # central Helsinki, as the other reader tests

KOBO_HEADER = (
    "start;end;category;comment;photo;photo_URL;location;_location_latitude;_location_longitude;"
    "_location_altitude;_location_precision;deviceid;username;_id;_uuid;_submission_time;"
    "_validation_status;_notes;_status;_submitted_by;__version__;_tags;_index"
)
KOBO_ROWS = [
    "2024-05-01T10:00:00.000+03:00;2024-05-01T10:05:00.000+03:00;pothole;Deep hole by the tram stop;"
    "1714547000123.jpg;https://kf.kobotoolbox.org/media/original?media_file=alice%2Fattachments%2F1714547000123.jpg;"
    "60.1699 24.9384 12.5 4.0;60.1699;24.9384;12.5;4.0;collect:AbC123;alice;101;u-1;2024-05-01T07:06:00;;[];"
    "submitted_via_web;alice;vXyZ;[];1",
    "2024-05-01T11:00:00.000+03:00;2024-05-01T11:02:00.000+03:00;bench;<script>alert('x')</script> broken;"
    ";;60.171 24.941 10 3;60.171;24.941;10;3;collect:AbC123;alice;102;u-2;2024-05-01T08:03:00;;[];"
    "submitted_via_web;alice;vXyZ;[];2",
    "2024-05-02T09:00:00.000+03:00;2024-05-02T09:01:00.000+03:00;tree;outside the area;;;"
    "60.2 24.95 0 5;60.2;24.95;0;5;collect:Zz9;bob;103;u-3;2024-05-02T06:02:00;;[];submitted_via_web;bob;vXyZ;[];3",
    "2024-05-02T09:10:00.000+03:00;2024-05-02T09:11:00.000+03:00;tree;no place given;;;;;;;;collect:Zz9;bob;"
    "104;u-4;2024-05-02T06:12:00;;[];submitted_via_web;bob;vXyZ;[];4",
]
ODK_HEADER = (
    "SubmissionDate,start,end,report-category,report-comment,report-photo,report-location-Latitude,"
    "report-location-Longitude,report-location-Altitude,report-location-Accuracy,deviceid,phonenumber,"
    "meta-instanceID,KEY,SubmitterID,SubmitterName,AttachmentsPresent,AttachmentsExpected,Status,"
    "ReviewState,DeviceID,Edits,FormVersion"
)
ODK_ROW = (
    '"2024-05-03T08:00:00.000Z",2024-05-03T10:58:00.000+03:00,2024-05-03T10:59:00.000+03:00,lighting,'
    "Lamp out,1714723100000.jpg,60.165,24.93,20.1,4.5,collect:Qq7,+358401234567,uuid:aa-1,uuid:aa-1,5,"
    "Maija Meikäläinen,1,1,,approved,collect:Qq7,0,2024050101"
)


def _photo(*, orientation: int = 1) -> bytes:
    """A 40 × 20 px JPEG carrying EXIF GPS, make, model, serial number and an XMP packet."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneMaker"
    exif[ExifTags.Base.Model] = "Model X"
    exif[ExifTags.Base.Orientation] = orientation
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.BodySerialNumber] = "SN-0042"
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(
        {1: "N", 2: (60.0, 10.0, 11.64), 3: "E", 4: (24.0, 56.0, 18.24)}
    )
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>'
    out = io.BytesIO()
    Image.new("RGB", (40, 20), (200, 30, 30)).save(out, format="JPEG", exif=exif, xmp=xmp)
    return out.getvalue()


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _kobo(tmp_path: Path, rows: list[str] | None = None) -> Path:
    photo = tmp_path / "export" / "media" / "alice" / "attachments" / "u-1" / "1714547000123.jpg"
    photo.parent.mkdir(parents=True, exist_ok=True)
    photo.write_bytes(_photo())
    return _write(tmp_path / "export" / "street.csv", "\n".join([KOBO_HEADER, *(rows or KOBO_ROWS)]) + "\n")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBStore]:
    """One store for the module (opening DuckDB is the slow part); each reader run replaces its table."""
    opened = DuckDBStore.create(tmp_path_factory.mktemp("surveys") / "t.duckdb", crs=CRS)
    yield opened
    opened.close()


def _context(
    store: DuckDBStore, source_entry: Any, path: Path, *, store_file: Path | None = None, **options: Any
) -> BuildContext:
    config = parse_config(
        {"twin": {"name": "Test twin", "crs": CRS, **({"store": str(store_file)} if store_file else {})}, "area": {"bbox": list(BBOX)},
         "sources": [source_entry("street", "survey", path, **options)]},
        base_dir=path.parent,
    )  # fmt: skip
    area = reproject(np.array([box(*BBOX)], dtype=object), WGS84, CRS)[0]
    return BuildContext(config=config, store=store, area_wgs84=box(*BBOX), area=area, crs=CRS)


def _run(store: DuckDBStore, source_entry: Any, path: Path, **options: Any) -> tuple[Any, BuildContext]:
    ctx = _context(store, source_entry, path, **options)
    return reader_for(SourceKind.SURVEY)(ctx.config.sources[0], ctx), ctx


def test_kobo_csv_becomes_points_in_the_twin_crs_without_personal_columns(
    store: DuckDBStore, source_entry: Any, tmp_path: Path
) -> None:
    repeated = KOBO_ROWS[0]  # the first submission exported twice (same _uuid u-1)
    result, ctx = _run(store, source_entry, _kobo(tmp_path, [*KOBO_ROWS, repeated]), photos=["photo"])
    frame = ctx.store.read_frame("street")
    layer = result.layers[0]
    assert layer.rows == 2  # 5 rows: one outside the area, one without a place, one repeated
    assert layer.quality["outside_area"] == 1 and layer.quality["without_place"] == 1
    assert layer.quality["duplicates"] == 1
    assert layer.quality["completeness"]["photo"] == 0.5 and layer.quality["completeness"]["category"] == 1.0
    assert [round(c, 2) for c in frame.geometry.iloc[0].coords[0]] == [385611.32, 6672118.38]
    assert [round(c, 2) for c in frame.geometry.iloc[1].coords[0]] == [385759.37, 6672236.35]
    assert frame["altitude_m"].tolist() == [12.5, 10.0] and frame["accuracy_m"].tolist() == [4.0, 3.0]
    assert frame["submitted_at"].iloc[0] == pd.Timestamp("2024-05-01T07:06:00", tz="UTC")
    assert frame["category"].tolist() == ["pothole", "bench"]
    for gone in (
        "deviceid",
        "username",
        "_submitted_by",
        "_id",
        "_uuid",
        "photo_URL",
        "location",
        "_location_latitude",
    ):
        assert gone not in frame.columns
    assert layer.quality["dropped_columns"]["_submitted_by"].startswith("personal data")
    assert layer.quality["dropped_columns"]["deviceid"].startswith("personal data")
    assert layer.quality["dropped_columns"]["photo_URL"].endswith("(an attachment URL naming the account)")
    assert set(frame.columns) == {
        "submitted_at", "start", "end", "category", "comment", "photo", "altitude_m", "accuracy_m", "geometry"
    }  # fmt: skip
    assert frame["comment"].iloc[1] == "<script>alert('x')</script> broken"  # stored as typed, as text


def test_kobo_photo_is_copied_without_metadata_under_its_content_hash(
    store: DuckDBStore, source_entry: Any, tmp_path: Path
) -> None:
    rows = [
        *KOBO_ROWS[:2],
        KOBO_ROWS[2].replace("outside the area;;;", "outside the area;far.jpg;;"),
        KOBO_ROWS[3],
    ]
    path = _kobo(tmp_path, rows)
    (path.parent / "media" / "far.jpg").write_bytes(_photo(orientation=3))  # a submission outside the area
    result, ctx = _run(store, source_entry, path, photos=["photo"])
    frame = ctx.store.read_frame("street")
    stored = frame["photo"].iloc[0]
    assert pd.isna(frame["photo"].iloc[1])
    media = ctx.config.store_path.parent / f"{ctx.config.store_path.name}{MEDIA_SUFFIX}" / "street"
    data = (media / stored).read_bytes()
    original = (
        tmp_path / "export" / "media" / "alice" / "attachments" / "u-1" / "1714547000123.jpg"
    ).read_bytes()
    assert len(metadata_left(original)) >= 2  # the input did carry EXIF and XMP
    assert metadata_left(data) == []
    assert b"SN-0042" not in data and b"PhoneMaker" not in data
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (40, 20) and not image.getexif()
    assert result.layers[0].quality["photos"]["copied"] == 1
    assert [f.name for f in media.iterdir()] == [stored]  # the photo of a submission not stored is not copied


def test_odk_central_csv_with_groups(store: DuckDBStore, source_entry: Any, tmp_path: Path) -> None:
    path = _write(tmp_path / "odk.csv", ODK_HEADER + "\n" + ODK_ROW + "\n")
    result, ctx = _run(store, source_entry, path)
    frame = ctx.store.read_frame("street")
    assert len(frame) == 1 and result.layers[0].quality["format"] == "odk"
    assert [round(c, 2) for c in frame.geometry.iloc[0].coords[0]] == [385128.24, 6671587.43]
    assert frame["report_category"].tolist() == ["lighting"]
    assert frame["submitted_at"].iloc[0] == pd.Timestamp("2024-05-03T08:00:00", tz="UTC")
    assert (frame["altitude_m"].iloc[0], frame["accuracy_m"].iloc[0]) == (20.1, 4.5)
    for gone in (
        "SubmitterName",
        "SubmitterID",
        "DeviceID",
        "deviceid",
        "phonenumber",
        "KEY",
        "meta_instanceID",
    ):
        assert gone not in frame.columns
    assert "Meikäläinen" not in frame.astype(str).to_string()
    assert result.layers[0].quality["photos"]["copied"] == 0  # no photo column configured: name kept as text


def test_geojson_export(store: DuckDBStore, source_entry: Any, tmp_path: Path) -> None:
    features = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [24.9384, 60.1699, 12.5]},
         "properties": {"category": "pothole", "_submission_time": "2024-05-01T07:06:00", "_submitted_by": "alice"}},
        {"type": "Feature", "geometry": None,
         "properties": {"category": "tree", "_submission_time": "2024-05-01T07:07:00", "_submitted_by": "bob"}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [24.9410, 60.1710]},
         "properties": {"__id": "uuid:1", "SubmissionDate": "2024-05-01T07:08:00Z", "report": {"category": "bench"},
                        "__system": {"submitterName": "Maija", "deviceId": "collect:Qq7", "reviewState": None}}},
    ]  # fmt: skip
    path = _write(tmp_path / "kobo.geojson", json.dumps({"type": "FeatureCollection", "features": features}))
    result, ctx = _run(store, source_entry, path)
    frame = ctx.store.read_frame("street")
    assert len(frame) == 2 and "_submitted_by" not in frame.columns
    assert [round(c, 2) for c in frame.geometry.iloc[0].coords[0]] == [385611.32, 6672118.38]
    assert frame["report_category"].iloc[1] == "bench"  # nested groups flattened
    assert not any(c.startswith(("__system", "__id", "system")) for c in frame.columns)
    assert "Maija" not in frame.astype(str).to_string() and "Qq7" not in frame.astype(str).to_string()
    assert result.layers[0].quality["without_place"] == 1


@pytest.mark.parametrize(
    ("row_change", "message"),
    [
        (("60.1699;24.9384;12.5;4.0", "60.1699;224.9384;12.5;4.0"),
         "street.csv: row 2, column _location_longitude: '224.9384' is not a longitude (−180 to 180 degrees)"),
        (("60.1699;24.9384;12.5;4.0", "north;24.9384;12.5;4.0"),
         "street.csv: row 2, column _location_latitude: 'north' is not a latitude (−90 to 90 degrees)"),
        (("2024-05-01T07:06:00", "yesterday"), "street.csv: row 2, column _submission_time: 'yesterday' is not a time"),
    ],
)  # fmt: skip
def test_bad_rows_are_named_by_row_and_column(
    tmp_path: Path, row_change: tuple[str, str], message: str
) -> None:
    rows = [KOBO_ROWS[0].replace(*row_change), *KOBO_ROWS[1:]]
    with pytest.raises(SourceError) as caught:
        read_export(_kobo(tmp_path, rows), geopoint=None)
    assert caught.value.user_message().endswith(message)


def test_missing_columns_and_files_are_one_line_errors(
    store: DuckDBStore, source_entry: Any, tmp_path: Path
) -> None:
    path = _write(
        tmp_path / "odk.csv", ODK_HEADER.replace("SubmissionDate", "Submitted") + "\n" + ODK_ROW + "\n"
    )
    with pytest.raises(SourceError, match=r"odk\.csv: missing column SubmissionDate"):
        read_export(path, geopoint=None)
    with pytest.raises(SourceError, match=r"missing photo column\(s\) picture; answer columns: start, end"):
        _run(store, source_entry, _kobo(tmp_path), photos=["picture"])
    plain = _write(tmp_path / "plain.csv", "a,b\n1,2\n")
    with pytest.raises(SourceError, match="not an ODK Central or KoboToolbox export"):
        read_export(plain, geopoint=None)
    with pytest.raises(
        SourceError, match=r"no single geopoint question 'where' \(geopoints found: location\)"
    ):
        read_export(_kobo(tmp_path), geopoint="where")


def test_a_photo_that_is_not_an_image_names_row_and_column(
    store: DuckDBStore, source_entry: Any, tmp_path: Path
) -> None:
    path = _kobo(tmp_path)
    fake = tmp_path / "export" / "media" / "alice" / "attachments" / "u-1" / "1714547000123.jpg"
    fake.write_text("<html><script>alert(1)</script></html>")
    with pytest.raises(SourceError) as caught:
        _run(store, source_entry, path, photos=["photo"])
    assert caught.value.user_message().endswith(
        "street.csv: row 2, column photo: not an image (expected a JPEG, PNG or WebP photo)"
    )


def test_served_survey_escapes_script_and_serves_clean_photos_by_access(
    source_entry: Any, tmp_path: Path
) -> None:
    """The HTML page escapes a script answer; photos are served clean, only for layers the caller may read."""
    import shutil

    from fastapi.testclient import TestClient

    from civictwin.api.app import create_app
    from civictwin.api.settings import ServerSettings

    twin = tmp_path / "served"
    twin.mkdir()
    served = DuckDBStore.create(twin / "survey.duckdb", crs=CRS)
    try:
        ctx = _context(
            served, source_entry, _kobo(tmp_path), store_file=twin / "survey.duckdb", photos=["photo"]
        )
        ingest(ctx.config.sources[0], ctx)
        served.write_table("street_private", served.read_frame("street"))
        for table, access in (("street", "public"), ("street_private", "restricted")):
            served.put_record("catalog", table, {"title": table, "access": access, "licence": "CC-BY-4.0"})
        name = served.read_frame("street")["photo"].iloc[0]
    finally:
        served.close()
    media = twin / f"survey.duckdb{MEDIA_SUFFIX}"
    shutil.copytree(media / "street", media / "street_private")
    with TestClient(create_app(twin / "survey.duckdb", settings=ServerSettings())) as client:
        page = client.get("/collections/street/items?f=html")
        items = client.get("/collections/street/items")
        photo = client.get(f"/collections/street/photos/{name}")
        statuses = [
            client.get(url).status_code
            for url in (f"/collections/street_private/photos/{name}", f"/collections/street/photos/{'0' * 64}.jpg",
                        "/collections/street/photos/..%2F..%2Fsurvey.duckdb", f"/collections/nowhere/photos/{name}")
        ]  # fmt: skip
    assert page.status_code == 200
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; broken" in page.text
    assert "<script>" not in page.text
    comments = [f["properties"]["comment"] for f in items.json()["features"]]
    assert "<script>alert('x')</script> broken" in comments  # JSON carries the text as typed
    assert (photo.status_code, photo.headers["content-type"]) == (200, "image/jpeg")
    assert metadata_left(photo.content) == [] and b"SN-0042" not in photo.content
    assert statuses == [404, 404, 404, 404]


def test_odk_central_zip_with_media(store: DuckDBStore, source_entry: Any, tmp_path: Path) -> None:
    path = tmp_path / "street_audit.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("street_audit.csv", ODK_HEADER + "\n" + ODK_ROW + "\n")
        zipped.writestr("street_audit-trees.csv", "species,PARENT_KEY,KEY\n")
        zipped.writestr("media/1714723100000.jpg", _photo())
    result, ctx = _run(store, source_entry, path, photos=["report-photo"])
    frame = ctx.store.read_frame("street")
    assert len(frame) == 1 and result.layers[0].quality["photos"]["copied"] == 1
    media = ctx.config.store_path.parent / f"{ctx.config.store_path.name}{MEDIA_SUFFIX}" / "street"
    assert metadata_left((media / frame["report_photo"].iloc[0]).read_bytes()) == []


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"street.csv": "SubmissionDate\n", "media/bomb.jpg": bytes(20 * 2**20)},
         "member 'media/bomb.jpg' inflates 1,0"),
        ({"../escape.csv": "SubmissionDate\n"}, "member '../escape.csv' would be written outside the folder"),
        ({"a.csv": "x\n", "b.csv": "y\n"}, "expected one survey table at the top of the archive, found: a.csv, b.csv"),
    ],
)  # fmt: skip
def test_unsafe_zip_exports_are_refused(
    store: DuckDBStore, source_entry: Any, tmp_path: Path, members: dict[str, Any], message: str
) -> None:
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        for name, data in members.items():
            zipped.writestr(name, data)
    with pytest.raises(SourceError) as caught:
        _run(store, source_entry, path)
    assert f"export.zip: {message}" in caught.value.user_message()
    assert not (tmp_path / "escape.csv").exists()


def test_an_error_inside_a_zip_names_the_archive_and_member(
    store: DuckDBStore, source_entry: Any, tmp_path: Path
) -> None:
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as zipped:
        zipped.writestr(
            "street.csv", ODK_HEADER + "\n" + ODK_ROW.replace("60.165,24.93,", "60.165,east,") + "\n"
        )
    with pytest.raises(SourceError) as caught:
        _run(store, source_entry, path)
    assert caught.value.user_message() == (
        f"{path}:street.csv: row 2, column report-location-Longitude: 'east' is not a longitude (−180 to 180 degrees)"
    )


def test_kobo_with_labels_and_a_chosen_group_separator(tmp_path: Path) -> None:
    """Kobo exported with labels as headers and groups joined by '.': the geopoint is still found."""
    header = "What did you see?;Where.Where is it?;Where._Where is it?_latitude;Where._Where is it?_longitude;_submission_time"
    row = "pothole;60.1699 24.9384;60.1699;24.9384;2024-05-01T07:06:00"
    export = read_export(_write(tmp_path / "labels.csv", f"{header}\n{row}\n"), geopoint=None)
    assert export.flavour == "kobo" and export.places[0] is not None
    assert (export.places[0].lat, export.places[0].lon) == (60.1699, 24.9384)
    assert list(export.answers.columns) == ["What did you see?"]


def test_declared_personal_answers_are_withheld_and_typos_refused(
    store: DuckDBStore, source_entry: Any, tmp_path: Path
) -> None:
    """A free-text answer the steward declares personal is withheld; a misspelt one fails the build."""
    from datetime import UTC, datetime

    from civictwin.catalog.metadata import record_source
    from civictwin.catalog.personal import mark_personal
    from civictwin.errors import ConfigError
    from civictwin.store.personal import read_published

    gdpr = {"legal_basis": "GDPR Art. 6(1)(e): public task, street audits", "retention_days": 365}
    result, ctx = _run(store, source_entry, _kobo(tmp_path), personal=["comment"], **gdpr)
    record_source(store, result, ingested_at=datetime.now(UTC))
    mark_personal(store, ctx.config)
    assert store.records("catalog")["street"]["personal_data"]["fields"] == ["comment"]
    assert "comment" not in read_published(store, "street").columns
    result, ctx = _run(store, source_entry, _kobo(tmp_path), personal=["coment"], **gdpr)
    record_source(store, result, ingested_at=datetime.now(UTC))
    with pytest.raises(ConfigError, match=r"sources\.street\.personal: names column\(s\) coment"):
        mark_personal(store, ctx.config)
