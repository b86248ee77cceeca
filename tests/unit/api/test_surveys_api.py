"""The viewer's survey form route: an observation with a photo, moderated like a comment, on the public
layer without metadata or personal data; every refusal; paging (docs/methods-surveys.md).

The twin is the contribution tests' (test_contributions_api.py) with ``survey_categories`` added to
``consult-public`` and a 200 000-byte photo limit; ``consult-flood`` has no survey categories. The
clock is the app's ``now_utc`` dependency, moved by the last test.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from apitwin import build_twin
from fastapi.testclient import TestClient
from PIL import ExifTags, Image
from shapely.geometry import box
from test_consultations_api import COMPARISON, _write
from test_contributions_api import OPEN_TIME, SCRIPT_TEXT, TOML, Clock

from civictwin.api.app import create_app
from civictwin.api.contributions import now_utc
from civictwin.api.settings import ServerSettings
from civictwin.compare.participation import solve
from civictwin.fieldwork.photos import metadata_left
from civictwin.governance.audit import audit_path
from civictwin.governance.tokens import Role, create_token, tokens_path
from civictwin.store.contributions import ContributionStore, contributions_path
from civictwin.store.duckdb import DuckDBStore

CONSULTATION = "/consultations/consult-public"
SURVEY_TOML = TOML.replace(
    "proof_of_work_bits = 4\n",
    'proof_of_work_bits = 4\nsurvey_categories = ["pothole", "lighting"]\nsurvey_photo_max_bytes = 200000\n',
    1,
)
FORM = {"X-Civictwin-Form": "survey"}
PLACE = {"lon": "24.9412", "lat": "60.1712"}


def phone_photo(colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A 64 × 48 px JPEG of one ``colour`` as a phone writes it: EXIF GPS (60° 10′ 11.64″ N,
    24° 56′ 28.3″ E), make, model and serial number."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneMaker"
    exif[ExifTags.Base.Model] = "Model X200"
    exif[ExifTags.Base.BodySerialNumber] = "SN-0042"
    exif.get_ifd(ExifTags.IFD.GPSInfo).update({1: "N", 2: (60.0, 10.0, 11.64), 3: "E", 4: (24.0, 56.0, 28.3)})
    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, format="JPEG", exif=exif)
    return out.getvalue()


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("survey-twin")
    with DuckDBStore.open(build_twin(folder), read_only=False) as store:  # the area a build records: the bbox
        recorded = store.records("meta")["twin"]
        store.put_record("meta", "twin", {**recorded, "area_wgs84": box(24.93, 60.16, 24.95, 60.18).wkt})
    (folder / "twin.toml").write_text(SURVEY_TOML, encoding="utf-8")
    (folder / "city.osm.pbf").write_bytes(b"unused")
    _write(folder / "runs", COMPARISON)
    _write(folder / "runs", {**COMPARISON, "id": "consult-flood"})
    return folder


@pytest.fixture(scope="module")
def tokens(twin: Path) -> dict[str, str]:
    path = tokens_path(twin / "test-twin.duckdb")
    return {
        role.value: create_token(path, role=role, name=str(role)).token
        for role in Role
        if role is not Role.STEWARD
    }


@pytest.fixture(scope="module")
def client(twin: Path, clock: Clock) -> Iterator[TestClient]:
    app = create_app(twin, settings=ServerSettings(rate_per_second=10_000, rate_burst=100_000))
    app.dependency_overrides[now_utc] = clock
    with TestClient(app) as c:
        yield c


def _as(tokens: dict[str, str], role: str) -> dict[str, str]:
    return {} if role == "anonymous" else {"Authorization": f"Bearer {tokens[role]}"}


def _proof(client: TestClient, consultation: str = CONSULTATION) -> dict[str, str]:
    issued = client.get(f"{consultation}/challenge").json()
    return {"challenge": issued["challenge"], "nonce": solve(issued["challenge"], issued["bits"])}


def _observe(
    client: TestClient,
    fields: dict[str, str],
    *,
    photo: bytes | None = None,
    headers: dict[str, str] | None = None,
    consultation: str = CONSULTATION,
    solved: bool = True,
) -> Any:
    """Send the form as the viewer does: a fresh proof of work (a made-up one unless ``solved``),
    consent given unless ``fields`` say not."""
    proof = _proof(client, consultation) if solved else {"challenge": "x", "nonce": "1"}
    data = {"consent": "true", **proof, **fields}
    files: dict[str, Any] = (  # a form without a file is still multipart, as the browser's FormData is
        {"text": (None, data.pop("text", "").encode(), None)}
        if photo is None
        else {"photo": ("IMG_0001.jpg", photo, "image/jpeg")}
    )
    return client.post(
        f"{consultation}/observations", data=data, files=files, headers=FORM if headers is None else headers
    )


def _decide(client: TestClient, tokens: dict[str, str], cid: int, decision: str, reason: str) -> Any:
    return client.post(f"{CONSULTATION}/moderation/{cid}", headers=_as(tokens, "moderator"),
                       json={"decision": decision, "reason": reason})  # fmt: skip


@pytest.fixture(scope="module")
def flow(client: TestClient, tokens: dict[str, str]) -> dict[str, Any]:
    """Three observations: one with the phone photo (approved), one with script in its text
    (approved), one left pending with a photo."""
    sent = _observe(
        client, {"category": "pothole", "text": "Deep hole by the crossing", **PLACE}, photo=phone_photo()
    )
    script = _observe(client, {"category": "lighting", "text": SCRIPT_TEXT, "lon": "24.945", "lat": "60.175"})
    pending = _observe(
        client,
        {"category": "pothole", "text": "Not yet seen", **PLACE},
        photo=phone_photo((30, 30, 200)),
    )
    assert [a.status_code for a in (sent, script, pending)] == [202, 202, 202], pending.text
    public_before = client.get(f"{CONSULTATION}/observations").json()
    queue = client.get(f"{CONSULTATION}/moderation?kind=observation", headers=_as(tokens, "moderator")).json()
    for answer in (sent, script):
        assert _decide(client, tokens, answer.json()["id"], "approve", "seen on site").status_code == 200
    return {"sent": sent.json(), "script": script.json(), "pending": pending.json(),
            "public_before": public_before, "queue": queue}  # fmt: skip


def test_an_observation_is_queued_with_a_deletion_code(flow: dict[str, Any]) -> None:
    sent = flow["sent"]
    assert sent["status"] == "pending" and sent["photo"] == {"width": 64, "height": 48}
    assert sent["pseudonym"].startswith("Resident ") and sent["deletion_code"].startswith("del_")
    assert flow["public_before"]["features"] == [] and flow["public_before"]["numberMatched"] == 0
    assert flow["public_before"]["categories"] == ["pothole", "lighting"]
    queued = flow["queue"]["contributions"]
    assert [c["id"] for c in queued] == [flow["sent"]["id"], flow["script"]["id"], flow["pending"]["id"]]
    first = queued[0]
    assert (first["kind"], first["theme"], first["scenario"], first["text"], first["lon"], first["lat"]) == (
        "observation", "pothole", "", "Deep hole by the crossing", 24.9412, 60.1712)  # fmt: skip
    assert first["photo"].endswith(f"{CONSULTATION}/observations/photos/{first['photo'].rsplit('/', 1)[1]}")


def test_the_public_layer_and_its_clean_photo(client: TestClient, flow: dict[str, Any]) -> None:
    answer = client.get(f"{CONSULTATION}/observations")
    assert answer.headers["content-type"] == "application/geo+json"
    layer = answer.json()
    assert layer["numberMatched"] == 2 and layer["numberReturned"] == 2 and layer["links"] == []
    first, second = layer["features"]
    assert first["id"] == flow["sent"]["id"]
    assert first["geometry"] == {"type": "Point", "coordinates": [24.9412, 60.1712]}
    assert {k: v for k, v in first["properties"].items() if k != "photo"} == {
        "category": "pothole", "text": "Deep hole by the crossing", "date": "2026-12-10"}  # fmt: skip
    assert second["properties"]["photo"] is None and second["properties"]["text"] == SCRIPT_TEXT
    text = json.dumps(layer)
    for private in ("Resident", "del_", "seen on site", "Not yet seen", "moderated"):
        assert private not in text
    photo = client.get(first["properties"]["photo"])
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(photo.content)) as image:
        assert image.size == (64, 48)
        assert dict(image.getexif()) == {} and image.getexif().get_ifd(ExifTags.IFD.GPSInfo) == {}
    assert metadata_left(photo.content) == []
    for leak in (b"PhoneMaker", b"Model X200", b"SN-0042"):
        assert leak not in photo.content


def test_a_pending_photo_is_for_moderators_only(
    client: TestClient, tokens: dict[str, str], flow: dict[str, Any]
) -> None:
    queue = client.get(f"{CONSULTATION}/moderation", headers=_as(tokens, "moderator")).json()
    (pending,) = [c for c in queue["contributions"] if c["id"] == flow["pending"]["id"]]
    assert client.get(pending["photo"]).status_code == 404
    assert client.get(pending["photo"], headers=_as(tokens, "viewer")).status_code == 404
    seen = client.get(pending["photo"], headers=_as(tokens, "moderator"))
    assert seen.status_code == 200 and seen.headers["cache-control"] == "no-store"
    assert metadata_left(seen.content) == []
    assert client.get(f"{CONSULTATION}/observations/photos/{'0' * 64}.jpg").status_code == 404
    assert client.get(f"{CONSULTATION}/observations/photos/..%2Ftwin.toml").status_code == 404


def test_script_in_text_stays_inert(client: TestClient, tokens: dict[str, str], flow: dict[str, Any]) -> None:
    """The text is kept as typed and only ever sent as JSON data, under a CSP that runs nothing."""
    answers = [
        client.get(f"{CONSULTATION}/observations"),
        client.get(f"{CONSULTATION}/moderation?status=approved", headers=_as(tokens, "moderator")),
    ]
    for answer in answers:
        body = answer.json()
        rows = [f["properties"] for f in body["features"]] if "features" in body else body["contributions"]
        assert SCRIPT_TEXT in [row["text"] for row in rows]
        assert answer.headers["content-type"].startswith(("application/json", "application/geo+json"))
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")
        assert answer.headers["x-content-type-options"] == "nosniff"
    page = client.get(CONSULTATION, headers={"Accept": "text/html"}).text
    assert "<script>alert(1)" not in page


def test_bad_input_each_named(client: TestClient) -> None:
    good = {"category": "pothole", "text": "ok", **PLACE}
    cases = [
        ({**good, "consent": "false"}, None, 400, "consent: the consent text must be accepted to send an observation"),
        ({**good, "category": "graffiti"}, None, 400, "observation: category: unknown category 'graffiti'; expected one of lighting, pothole"),
        ({**good, "lat": "95"}, None, 400, "observation: lat: '95' is not a latitude (−90 to 90 degrees)"),
        ({**good, "lat": "48.2"}, None, 400, "observation: place: (48.2, 24.9412) lies outside the twin's area"),
        ({"category": "pothole", "lon": "24.9"}, None, 400, "lat: missing"),
        ({**good, "email": "a@b.c"}, None, 400, "email: not a field of the survey form (category, challenge, consent, lat, lon, nonce, photo, text)"),
        ({**good, "text": "x" * 2001}, None, 400, "observation: text: 2001 characters; at most 2000 are kept"),
        (good, b"<?php system($_GET['c']); ?>", 400, "photo: not an image (expected a JPEG, PNG or WebP photo)"),
        (good, b"\xff\xd8\xff" + b"\x00" * 100, 400, "photo: not an image (expected a JPEG, PNG or WebP photo)"),
        (good, b"\xff" * 210_000, 413, "photo: 210000 bytes; at most 200000 are accepted"),
    ]  # fmt: skip
    for fields, photo, status, detail in cases:
        answer = _observe(client, fields, photo=photo)
        assert (answer.status_code, answer.json()["detail"]) == (status, detail), fields
    url = f"{CONSULTATION}/observations"
    as_json = client.post(url, json={"consent": True, **good}, headers=FORM)
    assert (as_json.status_code, as_json.json()["detail"]) == (
        415,
        "send the observation as multipart/form-data",
    )
    torn = client.post(url, content=b"--x\r\nContent-Disposition: form-data; name=category\r\n\r\npothole",
                       headers={**FORM, "Content-Type": "multipart/form-data; boundary=x"})  # fmt: skip
    assert (torn.status_code, torn.json()["detail"]) == (
        400,
        "the body is not a well-formed multipart/form-data form",
    )
    unconfigured = _observe(client, good, consultation="/consultations/consult-flood")
    assert unconfigured.status_code == 404 and "takes no survey observations" in unconfigured.json()["detail"]


def test_an_oversized_upload_is_refused_before_it_is_read(client: TestClient) -> None:
    """By its declared length before any of it is read, and, sent in chunks without a length, as soon
    as it passes the limit: the rest of the body is never read."""
    url = f"{CONSULTATION}/observations"
    headers = {**FORM, "Content-Type": "multipart/form-data; boundary=x"}
    declared = client.post(url, content=b"", headers={**headers, "Content-Length": "300000"})
    assert (declared.status_code, declared.json()["detail"]) == (
        413, "request body of 300000 bytes exceeds 265536 bytes (photo too large)")  # fmt: skip
    beyond_server = client.post(url, content=b"", headers={**headers, "Content-Length": "999999999"})
    assert (beyond_server.status_code, beyond_server.json()["detail"]) == (
        413, "request body exceeds 1048576 bytes")  # fmt: skip
    pulled = asyncio.run(_stream_to(client, url, chunk_bytes=65_536, chunks=1000))  # 64 MiB offered
    assert pulled == 5  # 5 × 65 536 bytes pass the 265 536-byte limit: the other 995 chunks stay unread


async def _stream_to(client: TestClient, path: str, *, chunk_bytes: int, chunks: int) -> int:
    """Send the app a multipart body in chunks without a ``Content-Length`` (as a chunked upload
    arrives) straight over ASGI; the number of chunks it pulled before answering 413."""
    pulled = 0
    answer: list[dict[str, Any]] = []
    headers = [(b"host", b"testserver"), (b"content-type", b"multipart/form-data; boundary=x"),
               (b"x-civictwin-form", b"survey")]  # fmt: skip
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": headers, "client": ("127.0.0.2", 50000), "server": ("testserver", 80)}  # fmt: skip

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"\xff" * chunk_bytes, "more_body": pulled < chunks}

    async def send(message: Any) -> None:
        answer.append(message)

    await client.app(scope, receive, send)
    assert answer[0]["status"] == 413
    assert json.loads(answer[1]["body"])["detail"] == "request body exceeds 265536 bytes (photo too large)"
    return pulled


def test_cross_site_forms_are_refused(client: TestClient) -> None:
    """CSRF: multipart is what a plain HTML form sends, so the form's own header is required too."""
    good = {"category": "pothole", "text": "ok", **PLACE}
    for headers, detail in (
        ({}, "cross-site requests are refused (the form sends x-civictwin-form: survey)"),
        ({**FORM, "Origin": "https://evil.example"}, "cross-site requests are refused (Origin is not this server)"),
        ({**FORM, "Sec-Fetch-Site": "cross-site"}, "cross-site requests are refused"),
    ):  # fmt: skip
        answer = _observe(client, good, headers=headers)
        assert (answer.status_code, answer.json()["detail"]) == (403, detail)


def test_paging_with_links(client: TestClient, tokens: dict[str, str], flow: dict[str, Any]) -> None:
    page = client.get(f"{CONSULTATION}/observations?limit=1").json()
    assert [f["id"] for f in page["features"]] == [flow["sent"]["id"]]
    (after,) = page["links"]
    assert after["rel"] == "next" and after["href"].endswith("/observations?limit=1&offset=1")
    second = client.get(after["href"]).json()
    assert [f["id"] for f in second["features"]] == [flow["script"]["id"]]
    assert [link["rel"] for link in second["links"]] == ["prev"]
    assert second["links"][0]["href"].endswith("?limit=1&offset=0")
    moderation = client.get(f"{CONSULTATION}/moderation?status=approved&limit=1&offset=1",
                            headers=_as(tokens, "moderator")).json()  # fmt: skip
    assert (moderation["total"], len(moderation["contributions"])) == (2, 1)
    assert [link["rel"] for link in moderation["links"]] == ["prev"]
    assert client.get(f"{CONSULTATION}/observations?limit=0").status_code == 400


def test_deletion_on_request_takes_the_photo(client: TestClient, twin: Path, tokens: dict[str, str]) -> None:
    image = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 200, 10)).save(image, format="PNG")
    answer = _observe(
        client, {"category": "lighting", "text": "Delete me", **PLACE}, photo=image.getvalue()
    ).json()
    store = ContributionStore(contributions_path(twin / "test-twin.duckdb"))
    (name,) = {c.photo for c in store.contributions("consult-public", status=None) if c.id == answer["id"]}
    folder = store.photo_folder("consult-public")
    assert (folder / str(name)).is_file()
    delete = f"{CONSULTATION}/contributions/delete"
    assert client.post(delete, json={"code": answer["deletion_code"]}).status_code == 204
    assert store.contribution("consult-public", answer["id"]) is None
    assert store.forget_unused_photos("consult-public", grace_s=0.0) == 1  # the route kept it: it was new
    assert not (folder / str(name)).exists()
    unknown = client.post(delete, json={"code": "del_unknown"})
    assert (unknown.status_code, unknown.json()["detail"]) == (
        404, "no contribution has this deletion code (deleted already, or anonymised)")  # fmt: skip
    store.close()


def test_the_audit_log_holds_no_text_no_code_no_photo_name(twin: Path, flow: dict[str, Any]) -> None:
    log = audit_path(twin / "test-twin.duckdb").read_text(encoding="utf-8")
    assert "/consultations/consult-public/observations" in log
    for secret in ("Deep hole", "alert(1)", flow["sent"]["deletion_code"], "PhoneMaker"):
        assert secret not in log


def test_a_moderator_on_a_closed_consultation(
    client: TestClient, clock: Clock, tokens: dict[str, str], flow: dict[str, Any]
) -> None:
    """The clock goes past closing (no observations) and past moderation's end (409), and back."""
    clock.now = datetime(2027, 1, 2, tzinfo=UTC)
    late = _observe(client, {"category": "pothole", "text": "late", **PLACE}, solved=False)
    assert (late.status_code, late.json()["detail"]) == (
        409,
        "this consultation closed at 2026-12-31T00:00:00+00:00",
    )
    assert client.get(f"{CONSULTATION}/observations").json()["open"] is False
    clock.now = datetime(2027, 1, 8, tzinfo=UTC)
    refused = _decide(client, tokens, flow["pending"]["id"], "approve", "too late")
    assert (refused.status_code, refused.json()["detail"]) == (
        409, "consultation 'consult-public' closed; moderation ended at 2027-01-07T00:00:00+00:00")  # fmt: skip
    clock.now = OPEN_TIME


EVERYONE = ("anonymous", "viewer", "analyst", "moderator", "admin")


def test_route_role_matrix(client: TestClient, tokens: dict[str, str], flow: dict[str, Any]) -> None:
    """Who may read what of the survey: the layer and approved photos anyone; the queue and a pending
    photo moderators and admins (a pending photo answers 404 to others, as a missing one)."""
    queue = client.get(f"{CONSULTATION}/moderation?kind=observation", headers=_as(tokens, "admin")).json()
    pending_photo = next(c["photo"] for c in queue["contributions"] if c["id"] == flow["pending"]["id"])
    layer = client.get(f"{CONSULTATION}/observations").json()
    approved_photo = layer["features"][0]["properties"]["photo"]
    expected = {
        f"{CONSULTATION}/observations": dict.fromkeys(EVERYONE, 200),
        approved_photo: dict.fromkeys(EVERYONE, 200),
        pending_photo: {"anonymous": 404, "viewer": 404, "analyst": 404, "moderator": 200, "admin": 200},
        f"{CONSULTATION}/moderation?kind=observation": {"anonymous": 401, "viewer": 403, "analyst": 403,
                                                        "moderator": 200, "admin": 200},
    }  # fmt: skip
    for url, statuses in expected.items():
        for role, status in statuses.items():
            assert client.get(url, headers=_as(tokens, role)).status_code == status, f"{role} {url}"


def test_the_public_comments_page_through(
    client: TestClient, tokens: dict[str, str], flow: dict[str, Any]
) -> None:
    """Three approved comments, two a page: counts over all three, observations never among them."""
    ids = []
    for text in ("one", "two", "three"):
        proof = _proof(client)
        sent = client.post(f"{CONSULTATION}/contributions", json={"consent": True, **proof, "scenario": "zone30",
                                                                   "theme": "safety", "vote": "for", "text": text})  # fmt: skip
        ids.append(sent.json()["id"])
        assert _decide(client, tokens, ids[-1], "approve", "fine").status_code == 200
    whole = client.get(f"{CONSULTATION}/contributions").json()  # the page's own request: up to 1000
    assert (whole["limit"], whole["total"], len(whole["contributions"]), whole["links"]) == (1000, 3, 3, [])
    first = client.get(f"{CONSULTATION}/contributions?limit=2").json()
    assert [c["text"] for c in first["contributions"]] == ["one", "two"]
    assert (first["total"], first["limit"], first["offset"]) == (3, 2, 0)
    assert first["counts"]["zone30"] == {"for": 3, "against": 0, "comments": 3}
    (after,) = first["links"]
    assert after == {"rel": "next", "href": f"http://testserver{CONSULTATION}/contributions?limit=2&offset=2"}
    second = client.get(after["href"]).json()
    assert [c["id"] for c in second["contributions"]] == [ids[2]]
    assert second["links"] == [
        {"rel": "prev", "href": f"http://testserver{CONSULTATION}/contributions?limit=2&offset=0"}
    ]
    unknown = client.get(f"{CONSULTATION}/contributions?page=2")
    assert (unknown.status_code, unknown.json()["detail"]) == (
        400, "unknown query parameter 'page' (allowed here: limit, offset)")  # fmt: skip


def test_retention_anonymises_observations_and_sweeps_unpublished_photos(
    client: TestClient, clock: Clock, twin: Path, tokens: dict[str, str], flow: dict[str, Any]
) -> None:
    """Runs last: 30 days after 2026-12-10 12:00 the approved observation keeps its
    photo with its point rounded to 0.01°; the never-approved one is deleted, and its photo file with it
    (files older than the sweep's grace period: their mtime is set back here)."""
    folder = ContributionStore(contributions_path(twin / "test-twin.duckdb")).photo_folder("consult-public")
    for file in folder.iterdir():
        os.utime(file, (0, 0))
    before = {file.name for file in folder.iterdir()}
    clock.now = datetime(2027, 1, 9, 12, 1, tzinfo=UTC)
    layer = client.get(f"{CONSULTATION}/observations").json()
    first = layer["features"][0]
    assert (first["id"], first["geometry"]["coordinates"]) == (flow["sent"]["id"], [24.94, 60.17])
    kept = first["properties"]["photo"].rsplit("/", 1)[1]
    assert client.get(first["properties"]["photo"]).status_code == 200
    assert {file.name for file in folder.iterdir()} == {kept} and len(before) == 2
    queue = client.get(f"{CONSULTATION}/moderation?kind=observation", headers=_as(tokens, "moderator")).json()
    assert queue["contributions"] == []  # the pending one: deleted, never published
    clock.now = OPEN_TIME
