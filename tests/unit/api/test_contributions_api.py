"""Comments and votes on a consultation: contribution, moderation, export, deletion, retention, the
route × role matrix, and every refusal (docs/consultation.md#comments-and-votes).

The twin is the API tests' small twin with the consultation tests' comparison ``consult-public``
(scenarios ``baseline`` and ``zone30``), open from 2026-12-01 to 2026-12-31 with themes ``safety`` and
``noise``, 30 days' retention and 7 days' moderation after closing; ``consult-flood`` is the same
comparison allowing 3 contributions per source and hour (30 days' retention too). The clock is the app's ``now_utc``
dependency, moved by the tests; proof of work needs 4 zero bits (16 hashes on average).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from apitwin import build_twin
from fastapi.testclient import TestClient
from test_consultations_api import COMPARISON, _write

from civictwin.api.app import create_app
from civictwin.api.contributions import now_utc
from civictwin.api.settings import ServerSettings
from civictwin.compare.participation import solve
from civictwin.governance.audit import audit_path
from civictwin.governance.security import security_path
from civictwin.governance.tokens import Role, create_token, tokens_path

CONSULTATION = "/consultations/consult-public"
OPEN_TIME = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
TOML = """[twin]
name = "Contributions test"
store = "test-twin.duckdb"

[area]
bbox = [24.93, 60.16, 24.95, 60.18]

[[sources]]
name = "osm"
kind = "osm"
path = "city.osm.pbf"
licence = "ODbL-1.0"
publisher = "OpenStreetMap contributors"
steward = "City GIS team"

[[consultations]]
comparison = "consult-public"
opens = 2026-12-01T00:00:00Z
closes = 2026-12-31T00:00:00Z
themes = ["safety", "noise"]
retention_days = 30
moderation_days = 7
contributions_per_hour = 100
proof_of_work_bits = 4

[[consultations]]
comparison = "consult-flood"
opens = 2026-12-01
closes = 2026-12-31
contributions_per_hour = 3
retention_days = 30
proof_of_work_bits = 4
"""
SCRIPT_TEXT = "<script>alert(1)</script> more buses please"


class Clock:
    """The time the app sees."""

    def __init__(self) -> None:
        self.now = OPEN_TIME

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("contrib-twin")
    build_twin(folder)
    (folder / "twin.toml").write_text(TOML, encoding="utf-8")
    (folder / "city.osm.pbf").write_bytes(b"unused")
    _write(folder / "runs", COMPARISON)
    _write(folder / "runs", {**COMPARISON, "id": "consult-flood"})
    _write(folder / "runs", {**COMPARISON, "id": "consult-quiet"})
    return folder


@pytest.fixture(scope="module")
def tokens(twin: Path) -> dict[str, str]:
    path = tokens_path(twin / "test-twin.duckdb")
    issued = {
        role.value: create_token(path, role=role, name=str(role)).token
        for role in Role
        if role is not Role.STEWARD
    }
    issued["steward"] = create_token(path, role=Role.STEWARD, datasets=["zones"]).token
    return issued


@pytest.fixture(scope="module")
def client(twin: Path, clock: Clock, tokens: dict[str, str]) -> Iterator[TestClient]:
    app = create_app(twin, settings=ServerSettings(rate_per_second=10_000, rate_burst=100_000))
    app.dependency_overrides[now_utc] = clock
    with TestClient(app) as c:
        yield c


def _as(tokens: dict[str, str], role: str) -> dict[str, str]:
    return {} if role == "anonymous" else {"Authorization": f"Bearer {tokens[role]}"}


def _send(client: TestClient, body: dict[str, Any], *, consultation: str = CONSULTATION) -> Any:
    """Solve a fresh challenge and send ``body`` with it (consent given unless the body says not)."""
    issued = client.get(f"{consultation}/challenge").json()
    proof = {"challenge": issued["challenge"], "nonce": solve(issued["challenge"], issued["bits"])}
    return client.post(f"{consultation}/contributions", json={"consent": True, **proof, **body})


def _decide(client: TestClient, tokens: dict[str, str], cid: int, decision: str, reason: str) -> Any:
    return client.post(f"{CONSULTATION}/moderation/{cid}", headers=_as(tokens, "moderator"),
                       json={"decision": decision, "reason": reason})  # fmt: skip


@pytest.fixture(scope="module")
def flow(client: TestClient, tokens: dict[str, str]) -> dict[str, Any]:
    """Six contributions, four approved, one rejected, one left pending."""
    sent = [
        {"scenario": "zone30", "theme": "safety", "vote": "for", "text": "Safer for children", "lon": 24.9412, "lat": 60.1712},
        {"scenario": "zone30", "theme": "noise", "vote": "against"},
        {"scenario": "zone30", "theme": "safety", "vote": "for"},
        {"scenario": "baseline", "theme": "noise", "vote": "for", "text": "Keep it as it is"},
        {"scenario": "zone30", "theme": "noise", "text": SCRIPT_TEXT},
        {"scenario": "zone30", "theme": "safety", "vote": "against", "text": "Still pending"},
    ]  # fmt: skip
    answers = [_send(client, body) for body in sent]
    assert [a.status_code for a in answers] == [202] * 6
    ids = [a.json()["id"] for a in answers]
    public_before = client.get(f"{CONSULTATION}/contributions").json()
    decisions = [(0, "approve"), (1, "approve"), (2, "approve"), (3, "reject"), (4, "approve")]
    for index, decision in decisions:
        assert _decide(client, tokens, ids[index], decision, f"checked {index}").status_code == 200
    return {"ids": ids, "answers": [a.json() for a in answers], "public_before": public_before}


def test_nothing_is_public_before_moderation(flow: dict[str, Any]) -> None:
    before = flow["public_before"]
    assert before["contributions"] == []
    assert before["counts"] == {"baseline": {"for": 0, "against": 0, "comments": 0},
                                "zone30": {"for": 0, "against": 0, "comments": 0}}  # fmt: skip
    first = flow["answers"][0]
    assert first["status"] == "pending"
    assert first["pseudonym"].startswith("Resident ") and len(first["pseudonym"]) == 15
    assert first["deletion_code"].startswith("del_") and len(first["deletion_code"]) == 47


def test_approved_contributions_and_counts_are_public(client: TestClient, flow: dict[str, Any]) -> None:
    body = client.get(f"{CONSULTATION}/contributions").json()
    # approved: #1 zone30 for (text), #2 zone30 against, #3 zone30 for, #5 zone30 text only
    assert body["counts"] == {"baseline": {"for": 0, "against": 0, "comments": 0},
                              "zone30": {"for": 2, "against": 1, "comments": 2}}  # fmt: skip
    ids = flow["ids"]
    assert [c["id"] for c in body["contributions"]] == [ids[0], ids[1], ids[2], ids[4]]
    first = body["contributions"][0]
    assert first == {"id": ids[0], "pseudonym": flow["answers"][0]["pseudonym"], "scenario": "zone30",
                     "theme": "safety", "vote": "for", "text": "Safer for children", "lon": 24.9412,
                     "lat": 60.1712, "date": "2026-12-10"}  # fmt: skip
    assert body["open"] is True and body["themes"] == ["safety", "noise"]
    assert "consent" in body and body["retention_days"] == 30
    text = json.dumps(body)
    assert "Still pending" not in text and "Keep it as it is" not in text and "del_" not in text
    assert "checked" not in text  # moderation reasons are for moderators


def test_the_moderation_queue_and_reasons(
    client: TestClient, tokens: dict[str, str], flow: dict[str, Any]
) -> None:
    queue = client.get(f"{CONSULTATION}/moderation", headers=_as(tokens, "moderator")).json()
    assert [c["id"] for c in queue["contributions"]] == [flow["ids"][5]]
    rejected = client.get(f"{CONSULTATION}/moderation?status=rejected", headers=_as(tokens, "admin")).json()
    (only,) = rejected["contributions"]
    assert (only["id"], only["reason"], only["text"]) == (flow["ids"][3], "checked 3", "Keep it as it is")
    assert only["moderated_by"] == tokens["moderator"].split("_")[1]
    again = _decide(client, tokens, flow["ids"][3], "approve", "changed my mind")
    assert (
        again.status_code == 409
        and again.json()["detail"] == f"contribution {flow['ids'][3]} is rejected already"
    )
    assert _decide(client, tokens, 999_999, "approve", "x").status_code == 404
    assert client.post(f"{CONSULTATION}/moderation/{flow['ids'][5]}", headers=_as(tokens, "moderator"),
                       json={"decision": "approve", "reason": ""}).status_code == 400  # fmt: skip


def test_exports_for_the_council(client: TestClient, tokens: dict[str, str], flow: dict[str, Any]) -> None:
    headers = _as(tokens, "analyst")
    counts = client.get(f"{CONSULTATION}/export/counts.csv", headers=headers)
    assert counts.headers["content-type"] == "text/csv; charset=utf-8"
    assert list(csv.reader(io.StringIO(counts.text))) == [
        ["scenario", "theme", "contributions", "comments", "votes_for", "votes_against"],
        ["baseline", "safety", "0", "0", "0", "0"],
        ["baseline", "noise", "0", "0", "0", "0"],
        ["zone30", "safety", "2", "1", "2", "0"],
        ["zone30", "noise", "2", "1", "0", "1"],
    ]
    rows = list(
        csv.DictReader(
            io.StringIO(client.get(f"{CONSULTATION}/export/contributions.csv", headers=headers).text)
        )
    )
    assert [r["id"] for r in rows] == [str(flow["ids"][i]) for i in (0, 1, 2, 4)]
    assert rows[0] == {"id": str(flow["ids"][0]), "scenario": "zone30", "theme": "safety", "vote": "for",
                       "text": "Safer for children", "lon": "24.9412", "lat": "60.1712", "date": "2026-12-10"}  # fmt: skip
    geo = client.get(f"{CONSULTATION}/export/contributions.geojson", headers=_as(tokens, "moderator")).json()
    assert geo["type"] == "FeatureCollection" and len(geo["features"]) == 4
    assert geo["features"][0]["geometry"] == {"type": "Point", "coordinates": [24.9412, 60.1712]}
    assert geo["features"][1]["geometry"] is None
    assert geo["counts"][2] == {"scenario": "zone30", "theme": "safety", "contributions": 2, "comments": 1,
                                "votes_for": 2, "votes_against": 0}  # fmt: skip
    everything = counts.text + json.dumps(geo) + json.dumps(rows)
    assert "Resident" not in everything and "del_" not in everything and "checked" not in everything


def test_the_page_shows_approved_comments_and_counts_escaped(
    client: TestClient, flow: dict[str, Any]
) -> None:
    body = client.get(f"{CONSULTATION}/contributions").json()
    assert body["contributions"][3]["text"] == SCRIPT_TEXT  # stored as typed
    page = client.get(CONSULTATION).text
    assert "<script>alert(1)</script>" not in page
    assert "<p>&lt;script&gt;alert(1)&lt;/script&gt; more buses please</p>" in page
    assert 'data-contributions-url="http://testserver/consultations/consult-public/contributions"' in page
    assert "<li>zone30: 2 for, 1 against, 2 comments</li>" in page
    assert "<li>baseline: 0 for, 0 against, 0 comments</li>" in page
    assert "Open for comments and votes until 31 December 2026." in page
    assert "Still pending" not in page and "Keep it as it is" not in page
    assert 'id="say"' not in client.get("/consultations/consult-quiet").text  # takes no contributions


ROUTES = [
    ("GET", "/moderation", {"anonymous": 401, "viewer": 403, "analyst": 403, "steward": 403, "moderator": 200, "admin": 200}),
    ("POST", "/moderation/999999", {"anonymous": 401, "viewer": 403, "analyst": 403, "steward": 403, "moderator": 404, "admin": 404}),
    ("GET", "/export/contributions.csv", {"anonymous": 401, "viewer": 403, "analyst": 200, "steward": 200, "moderator": 200, "admin": 200}),
    ("GET", "/export/counts.csv", {"anonymous": 401, "viewer": 403, "analyst": 200, "steward": 200, "moderator": 200, "admin": 200}),
    ("GET", "/export/contributions.geojson", {"anonymous": 401, "viewer": 403, "analyst": 200, "steward": 200, "moderator": 200, "admin": 200}),
    ("GET", "/contributions", dict.fromkeys(("anonymous", "viewer", "analyst", "steward", "moderator", "admin"), 200)),
    ("GET", "/challenge", dict.fromkeys(("anonymous", "viewer", "analyst", "steward", "moderator", "admin"), 200)),
]  # fmt: skip


@pytest.mark.parametrize(("method", "route", "expected"), ROUTES)
def test_route_role_matrix(
    client: TestClient, tokens: dict[str, str], method: str, route: str, expected: dict[str, int]
) -> None:
    for role, status in expected.items():
        body = {"decision": "approve", "reason": "ok"} if method == "POST" else None
        answer = client.request(method, CONSULTATION + route, headers=_as(tokens, role), json=body)
        assert answer.status_code == status, f"{role} {method} {route}: {answer.text}"


def test_bad_input_each_named(client: TestClient) -> None:
    good = {"scenario": "zone30", "theme": "safety", "vote": "for"}
    cases = [
        ({**good, "consent": False}, 400, "consent: the consent text must be accepted to contribute"),
        ({**good, "scenario": "other"}, 400, "scenario: expected one of baseline, zone30"),
        ({**good, "theme": "parking"}, 400, "theme: expected one of safety, noise"),
        ({"scenario": "zone30", "theme": "safety"}, 400, "give a comment (text), a vote, or both"),
        ({**good, "lon": 24.9}, 400, "lon and lat: give both or neither"),
        ({**good, "text": "a\x00b"}, 400, "text: control characters are not allowed"),
        ({**good, "text": "x" * 2001}, 400, "text: String should have at most 2000 characters"),
        ({**good, "email": "a@b.c"}, 400, "email: Extra inputs are not permitted"),
    ]
    for body, status, detail in cases:
        answer = _send(client, body)
        assert (answer.status_code, answer.json()["detail"]) == (status, detail)
    issued = client.get(f"{CONSULTATION}/challenge").json()
    proof = {"challenge": issued["challenge"], "nonce": solve(issued["challenge"], issued["bits"])}
    url = f"{CONSULTATION}/contributions"
    first = client.post(url, json={"consent": True, **good, **proof})
    replay = client.post(url, json={"consent": True, **good, **proof})
    assert first.status_code == 202
    assert (replay.status_code, replay.json()["detail"]) == (
        403,
        "this proof-of-work challenge was used already; ask for a new one",
    )
    forged = client.post(
        url, json={"consent": True, **good, "challenge": issued["challenge"][:-1] + "0", "nonce": "1"}
    )
    assert forged.status_code == 403
    as_form = client.post(url, data={"consent": "true", **good})
    assert as_form.status_code == 415
    cross = client.post(url, json={**good}, headers={"Origin": "https://evil.example"})
    assert (cross.status_code, cross.json()["detail"]) == (
        403,
        "cross-site requests are refused (Origin is not this server)",
    )
    fetch = client.post(url, json={**good}, headers={"Sec-Fetch-Site": "cross-site"})
    assert fetch.status_code == 403
    big = client.post(
        url, content=b'{"text": "' + b"x" * 9000 + b'"}', headers={"Content-Type": "application/json"}
    )
    assert big.status_code == 413
    unconfigured = client.get("/consultations/consult-quiet/challenge")
    assert unconfigured.status_code == 404 and "takes no contributions" in unconfigured.json()["detail"]


def test_a_flood_from_one_source_is_refused(client: TestClient, twin: Path) -> None:
    statuses = [_send(client, {"scenario": "zone30", "theme": "general", "vote": "for"},
                      consultation="/consultations/consult-flood").status_code for _ in range(4)]  # fmt: skip
    assert statuses == [202, 202, 202, 429]
    for _ in range(9):  # ten refusals in a minute: one security event, naming no address
        assert _send(client, {"scenario": "zone30", "theme": "general", "vote": "for"},
                     consultation="/consultations/consult-flood").status_code == 429  # fmt: skip
    events = [json.loads(line) for line in security_path(twin / "test-twin.duckdb").read_text().splitlines()]
    (flood,) = [e for e in events if e.get("event") == "contribution flood"]
    assert (flood["consultation"], flood["refused"], len(flood["source"])) == ("consult-flood", 10, 12)
    assert "testclient" not in json.dumps(flood)


def test_deletion_on_request(client: TestClient, tokens: dict[str, str]) -> None:
    answer = _send(client, {"scenario": "baseline", "theme": "noise", "text": "Delete me later"}).json()
    delete = f"{CONSULTATION}/contributions/delete"
    assert client.post(delete, json={"code": answer["deletion_code"]}).status_code == 204
    queue = client.get(f"{CONSULTATION}/moderation", headers=_as(tokens, "moderator")).json()
    assert answer["id"] not in [c["id"] for c in queue["contributions"]]
    again = client.post(delete, json={"code": answer["deletion_code"]})
    assert (again.status_code, again.json()["detail"]) == (
        404,
        "no contribution has this deletion code (deleted already, or anonymised)",
    )
    assert client.post(delete, json={"code": "del_unknown"}).status_code == 404


def test_the_audit_log_holds_no_text_and_no_code(twin: Path, flow: dict[str, Any]) -> None:
    log = audit_path(twin / "test-twin.duckdb").read_text(encoding="utf-8")
    assert "/consultations/consult-public/contributions" in log
    for secret in ("Safer for children", "alert(1)", "Delete me later", flow["answers"][0]["deletion_code"]):
        assert secret not in log


def test_closing_and_moderation_period(
    client: TestClient, clock: Clock, tokens: dict[str, str], flow: dict[str, Any]
) -> None:
    """Runs after the tests above: it moves the clock past closing and then past retention."""
    pending = flow["ids"][5]
    clock.now = datetime(2026, 11, 30, tzinfo=UTC)
    early = _send_closed(client)
    assert (early.status_code, early.json()["detail"]) == (
        409,
        "this consultation opens at 2026-12-01T00:00:00+00:00",
    )
    clock.now = datetime(2027, 1, 2, tzinfo=UTC)
    late = _send_closed(client)
    assert (late.status_code, late.json()["detail"]) == (
        409,
        "this consultation closed at 2026-12-31T00:00:00+00:00",
    )
    assert client.get(f"{CONSULTATION}/contributions").json()["open"] is False
    clock.now = datetime(2027, 1, 6, 23, 59, tzinfo=UTC)  # within the 7 days after closing
    assert _decide(client, tokens, pending, "reject", "personal data in text").status_code == 200
    clock.now = datetime(2027, 1, 7, 0, 1, tzinfo=UTC)
    refused = _decide(client, tokens, pending, "approve", "too late")
    assert (refused.status_code, refused.json()["detail"]) == (
        409,
        "consultation 'consult-public' closed; moderation ended at 2027-01-07T00:00:00+00:00",
    )


def _send_closed(client: TestClient) -> Any:
    return client.post(f"{CONSULTATION}/contributions", json={"consent": True, "scenario": "zone30", "theme": "safety",
                                                              "vote": "for", "challenge": "x", "nonce": "1"})  # fmt: skip


def test_retention_anonymises(
    client: TestClient, clock: Clock, tokens: dict[str, str], flow: dict[str, Any]
) -> None:
    """30 days after 2026-12-10 12:00 every contribution of the flow is anonymised."""
    clock.now = datetime(2027, 1, 9, 12, 1, tzinfo=UTC)
    body = client.get(f"{CONSULTATION}/contributions").json()
    first = body["contributions"][0]
    assert (first["pseudonym"], first["lon"], first["lat"], first["date"]) == (
        "anonymised",
        24.94,
        60.17,
        "2026-12-10",
    )
    assert body["counts"]["zone30"] == {"for": 2, "against": 1, "comments": 2}  # published results kept
    rejected = client.get(f"{CONSULTATION}/moderation?status=rejected", headers=_as(tokens, "admin")).json()
    assert rejected["contributions"] == []  # never published: deleted
    gone = client.post(
        f"{CONSULTATION}/contributions/delete", json={"code": flow["answers"][0]["deletion_code"]}
    )
    assert gone.status_code == 404
    flood = client.get("/consultations/consult-flood/moderation", headers=_as(tokens, "moderator")).json()
    assert flood["contributions"] == []  # swept with the others: its pending ones were older than 30 days


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ('opens = 2026-12-31\ncloses = 2026-12-01', "consultations[0] (c1): closes must be after opens"),
        ('opens = 2026-12-01\ncloses = 2026-12-31\nthemes = ["Noise!"]',
         "consultations[0] (c1).themes: theme(s) 'Noise!': expected lower-case words like 'noise'"),
        ('opens = 2026-12-01\ncloses = 2026-12-31\nretention_days = 0',
         "consultations[0] (c1).retention_days: Input should be greater than or equal to 1"),
        ("closes = 2026-12-31", "consultations[0] (c1).opens: required key is missing"),
    ],
)  # fmt: skip
def test_consultation_config_errors_name_the_key(tmp_path: Path, block: str, message: str) -> None:
    from civictwin.config import load_config
    from civictwin.errors import ConfigError

    base = TOML.split("[[consultations]]")[0]
    (tmp_path / "twin.toml").write_text(
        f'{base}[[consultations]]\ncomparison = "c1"\n{block}\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert str(caught.value).endswith(f"twin.toml: {message}")


def test_a_comparison_configured_twice_is_refused(tmp_path: Path) -> None:
    from civictwin.config import load_config
    from civictwin.errors import ConfigError

    block = '[[consultations]]\ncomparison = "c1"\nopens = 2026-12-01\ncloses = 2026-12-31\n'
    (tmp_path / "twin.toml").write_text(
        TOML.split("[[consultations]]")[0] + block + "\n" + block, encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="consultations: comparison\\(s\\) configured twice: c1"):
        load_config(tmp_path)
