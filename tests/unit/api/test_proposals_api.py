"""Citizen proposals through the API: menu, immediate validation, submission, staff approval, the run
queue (one at a time, cancellation that really stops a run, failure, restart), results beside the
official scenarios, the route × role matrix, CSRF and floods (docs/consultation.md#citizen-proposals).

Titles steer the stand-in run: "fail" fails it, "hang" keeps it running.

The twin is the API tests' small twin plus a public ``network_edges`` layer (``Mannerheimintie``,
OSM way 201, and ``Kaivokatu``, 202, carry cars; the footway ``Esplanadi path``, 203, does not) and the
consultation tests' comparison ``consult-public``. Runs are a stand-in command (a real child process,
``RUNNER`` below) instead of ``civictwin compare``: by the proposal's title it writes a finished
comparison (exit 0), fails with a one-line error, or runs until interrupted, noting the SIGINT.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from apitwin import X0, Y0, build_twin
from fastapi.testclient import TestClient
from shapely.geometry import LineString
from test_consultations_api import COMPARISON, _write

from civictwin.api.app import create_app
from civictwin.api.contributions import now_utc
from civictwin.api.proposal_queue import ProposalQueue, compare_command
from civictwin.api.proposals import open_proposals
from civictwin.api.settings import ServerSettings
from civictwin.config import load_config
from civictwin.governance.audit import audit_path
from civictwin.governance.tokens import Role, create_token, tokens_path
from civictwin.store.duckdb import DuckDBStore
from civictwin.store.proposals import Proposal, ProposalStore, State, proposals_path

BASE = "/consultations/consult-public/proposals"
OPEN_TIME = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
TOML = """[twin]
name = "Proposals test"
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
proposals = true
proposals_per_hour = 100

[[consultations]]
comparison = "consult-flood"
opens = 2026-12-01
closes = 2026-12-31
proposals = true
proposals_per_hour = 2

[[consultations]]
comparison = "consult-quiet"
opens = 2026-12-01
closes = 2026-12-31

[proposals]
max_seeds = 2
runs_per_day = 50
settings = {traffic = {iterations = 2, demand = {scale = 0.25}}}
"""
RUNNER = r"""
import json, pathlib, signal, sys, time
twin, comparison, title = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
if "fail" in title:
    print("preparing the scenario")
    print("error: engine 'traffic', scenario 'proposal', seed 1: SUMO stopped")
    sys.exit(1)
if "hang" in title:
    def stop(signum, frame):
        (twin / f"{comparison}.interrupted").write_text("SIGINT")
        sys.exit(130)
    signal.signal(signal.SIGINT, stop)
    (twin / f"{comparison}.started").write_text("")
    time.sleep(120)
    sys.exit(0)
plan = "proposal-" + comparison.split("-")[1]
folder = twin / "runs" / comparison
folder.mkdir(parents=True)
def kpi(scenario, mean, low, high):
    return {"engine": "traffic", "kpi": "mean_travel_time_s", "unit": "s", "label": "Mean car travel time",
            "scenario": scenario, "mean": mean, "ci_low": low, "ci_high": high, "n": 2, "headline": True}
record = {"id": comparison, "created": "2026-12-10T12:05:00Z", "baseline": "baseline", "plans": [plan],
    "engines": [{"name": "traffic", "version": "0.1.0"}], "sources": ["buildings"], "tables": [],
    "kpis": [kpi("baseline", 348.0, 320.7, 375.3), kpi(plan, 371.0, 352.0, 390.0)],
    "differences": [{"engine": "traffic", "kpi": "mean_travel_time_s", "plan": plan, "mean": 23.0,
        "ci_low": 4.0, "ci_high": 42.0, "distinguishable": True, "words": "Mean car travel time rises by 7%."}],
    "summary": ["Mean car travel time rises by 7%."], "question": title}
if "gridlock" in title:  # the plan's simulation failed the quality check: a finding, no numbers
    statement = f"'{plan}' could not be evaluated: the simulation failed the quality check in 2 of 2 runs"
    record.update(plans=[], kpis=record["kpis"][:1], differences=[], summary=[statement],
        not_evaluated=[{"scenario": plan, "runs": 2, "statement": statement,
            "failures": [{"engine": "traffic", "seed": 1, "reason": "403 teleports for 5,390 trips"}]}])
(folder / "comparison.json").write_text(json.dumps(record))
(folder / "manifest.json").write_text(json.dumps({"seeds": [1, 2]}))
(folder / "report.html").write_text("<!doctype html><title>report</title>")
(folder / "complete").write_text("")
"""


class Clock:
    def __init__(self) -> None:
        self.now = OPEN_TIME

    def __call__(self) -> datetime:
        return self.now


def _network() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"edge_id": ["201_0", "202_0", "203_0"], "osm_id": [201, 202, 203],
         "name": ["Mannerheimintie", "Kaivokatu", "Esplanadi path"], "car": [True, True, False]},
        geometry=[LineString([(X0, Y0 + 100 * i), (X0 + 200, Y0 + 100 * i)]) for i in range(3)],
        crs="EPSG:32635",
    )  # fmt: skip


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("proposal-twin")
    store_path = build_twin(folder)
    with DuckDBStore.open(store_path, read_only=False) as store:
        store.write_table("network_edges", _network())
        store.put_record("catalog", "network_edges", {"title": "Streets", "access": "public"})
    (folder / "twin.toml").write_text(TOML, encoding="utf-8")
    (folder / "city.osm.pbf").write_bytes(b"unused")
    for name in ("consult-public", "consult-flood", "consult-quiet"):
        _write(folder / "runs", {**COMPARISON, "id": name})
    (folder / "runner.py").write_text(RUNNER, encoding="utf-8")
    return folder


def stand_in(proposal: Proposal, twin_dir: Path, settings: Any) -> list[str]:
    return [
        sys.executable,
        str(twin_dir / "runner.py"),
        str(twin_dir),
        str(proposal.comparison),
        proposal.title,
    ]


@pytest.fixture(scope="module")
def tokens(twin: Path) -> dict[str, str]:
    path = tokens_path(twin / "test-twin.duckdb")
    return {
        role.value: create_token(
            path, role=role, name=str(role), datasets=["zones"] * (role is Role.STEWARD)
        ).token
        for role in Role
    }


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def client(twin: Path, tokens: dict[str, str], clock: Clock) -> Iterator[TestClient]:
    """The app without its lifespan: the queue's thread does not run, the tests tick it."""
    app = create_app(twin, settings=ServerSettings(rate_per_second=10_000, rate_burst=100_000))
    app.dependency_overrides[now_utc] = clock
    app.state.proposal_command = stand_in
    yield TestClient(app)


def queue_of(client: TestClient, twin: Path) -> ProposalQueue:
    return open_proposals(client.app, twin, twin / "test-twin.duckdb").queue  # type: ignore[arg-type]


def _as(tokens: dict[str, str], role: str) -> dict[str, str]:
    return {} if role == "anonymous" else {"Authorization": f"Bearer {tokens[role]}"}


def _submit(client: TestClient, title: str, *, base: str = BASE, osm_id: int = 202) -> Any:
    body = {"consent": True, "title": title,
            "interventions": [{"type": "speed_limit", "osm_ids": [osm_id], "speed_kmh": 30}]}  # fmt: skip
    return client.post(base, json=body)


def _decide(
    client: TestClient, tokens: dict[str, str], pid: int, decision: str, role: str = "moderator"
) -> Any:
    return client.post(f"{BASE}/{pid}/decision", json={"decision": decision, "reason": f"{decision}d by staff"},
                       headers=_as(tokens, role))  # fmt: skip


def _state(twin: Path, pid: int) -> State:
    with ProposalStore(proposals_path(twin / "test-twin.duckdb")) as store:
        found = store.proposal(pid)
    assert found is not None
    return found.state


def _tick_until(queue: ProposalQueue, twin: Path, pid: int, state: State, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        queue.tick()
        if _state(twin, pid) is state:
            return
        time.sleep(0.1)
    raise AssertionError(f"proposal {pid} is {_state(twin, pid)}, not {state}, after {timeout_s} s")


def _wait_for(path: Path, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_the_menu_comes_from_the_engines_and_names_the_street_tiles(client: TestClient) -> None:
    menu = client.get(f"{BASE}/menu").json()
    types = [e["type"] for e in menu["interventions"]]
    assert "speed_limit" in types and "plant_trees_in_area" in types and "pv_uptake" not in types
    assert menu["streets"] == "http://testserver/tiles/network_edges.json"
    assert menu["max_interventions"] == 10
    quiet = client.get("/consultations/consult-quiet/proposals/menu")
    assert quiet.status_code == 404 and "takes no proposals" in quiet.json()["detail"]


def test_the_menu_and_the_problems_read_in_the_pages_language(client: TestClient) -> None:
    """``?lang=`` first, then the cookie, then Accept-Language (as the consultation page); the fields
    and types stay keys."""
    got = client.get(f"{BASE}/menu", params={"lang": "sk"}).json()
    slovak = {e["type"]: e for e in got["interventions"]}
    assert (slovak["speed_limit"]["label"], slovak["plant_trees_in_area"]["label"]) == (
        "rýchlostný limit",
        "výsadba stromov v oblasti",
    )
    assert slovak["speed_limit"]["setting_labels"]["only_lower"] == "len znížiť rýchlosť"
    italian = client.get(f"{BASE}/menu", headers={"Accept-Language": "it-IT,it;q=0.9,en;q=0.5"}).json()
    labels = {e["type"]: e["label"] for e in italian["interventions"]}
    assert (labels["speed_limit"], labels["plant_trees_in_area"]) == (
        "limite di velocità",
        "alberi in un'area",
    )
    english = client.get(f"{BASE}/menu", params={"lang": "en"}, cookies={"lang": "sk"}).json()
    assert {e["type"]: e["label"] for e in english["interventions"]}["speed_limit"] == "speed limit"
    draft = {"title": "No", "interventions": [{"type": "speed_limit", "osm_ids": [999], "speed_kmh": 30}]}
    answer = client.post(f"{BASE}/validate", params={"lang": "it"}, json=draft).json()
    assert answer["problems"] == [
        {"field": "title", "message": "almeno 3 caratteri"},
        {"field": "interventions[0].osm_ids", "message": "nessuna via OSM 999 nella rete"},
    ]
    refused = client.post(BASE, params={"lang": "sk"}, json={"title": "Thirty", "interventions": []})
    assert (refused.status_code, refused.json()["detail"]) == (
        400,
        "consent: na podanie návrhu treba prijať text súhlasu",
    )
    unknown = client.post(f"{BASE}/delete", params={"lang": "it"}, json={"code": "del_not-a-code"})
    assert unknown.json()["detail"] == (
        "nessuna proposta ha questo codice di cancellazione (già cancellata o anonimizzata)"
    )


def test_validation_answers_every_problem_at_once(client: TestClient) -> None:
    draft = {"title": "No", "interventions": [
        {"type": "speed_limit", "streets": ["Esplanadi path"], "speed_kmh": 30},
        {"type": "speed_limit", "osm_ids": [999], "speed_kmh": 0},
        {"type": "close_streets", "streets": ["Kaivokatu"]},
    ]}  # fmt: skip
    answer = client.post(f"{BASE}/validate", json=draft)
    assert answer.status_code == 200
    assert answer.json() == {"valid": False, "problems": [
        {"field": "title", "message": "at least 3 characters"},
        {"field": "interventions[0].streets", "message": "the selected street carries no cars (not drivable): choose a street cars use"},
        {"field": "interventions[1].speed_kmh", "message": "Input should be greater than 0"},
    ]}  # fmt: skip
    good = client.post(
        f"{BASE}/validate",
        json={**draft, "title": "Close Kaivokatu", "interventions": draft["interventions"][2:]},
    )
    assert good.json() == {"valid": True, "problems": []}


def test_write_routes_refuse_cross_site_requests_and_forms(
    client: TestClient, tokens: dict[str, str]
) -> None:
    writes = [f"{BASE}/validate", BASE, f"{BASE}/delete", f"{BASE}/1/decision", f"{BASE}/1/cancel"]
    for url in writes:
        headers = _as(tokens, "admin")
        evil = client.post(url, json={}, headers={**headers, "Origin": "https://evil.example"})
        assert (evil.status_code, evil.json()["detail"]) == (
            403,
            "cross-site requests are refused (Origin is not this server)",
        )
        fetch = client.post(url, json={}, headers={**headers, "Sec-Fetch-Site": "cross-site"})
        assert fetch.status_code == 403
        form = client.post(url, data={"title": "x"}, headers=headers)
        assert form.status_code == 415


def test_submission_needs_consent_and_a_valid_draft(client: TestClient) -> None:
    no_consent = client.post(BASE, json={"title": "Thirty", "interventions": []})
    assert (no_consent.status_code, no_consent.json()["detail"]) == (
        400,
        "consent: the consent text must be accepted to propose",
    )
    bad = _submit(client, "Thirty on a footway", osm_id=203)
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    assert (
        bad.json()["detail"]
        == "interventions[0].osm_ids: the selected street carries no cars (not drivable): choose a street cars use"
    )
    assert bad.json()["problems"] == [
        {
            "field": "interventions[0].osm_ids",
            "message": "the selected street carries no cars (not drivable): choose a street cars use",
        }
    ]
    big = client.post(
        BASE, content=b'{"title": "' + b"x" * 9000 + b'"}', headers={"Content-Type": "application/json"}
    )
    assert big.status_code == 413


def test_approved_run_and_shown_beside_the_official_scenarios(
    client: TestClient, tokens: dict[str, str], twin: Path
) -> None:
    sent = _submit(client, "Thirty on Kaivokatu")
    assert sent.status_code == 202
    pid, name = sent.json()["id"], sent.json()["pseudonym"]
    assert sent.json()["state"] == "submitted" and name.startswith("Resident ") and len(name) == 15
    assert sent.json()["deletion_code"].startswith("del_") and len(sent.json()["deletion_code"]) == 47
    assert pid not in [p["id"] for p in client.get(BASE).json()["proposals"]]  # not public before approval
    review = client.get(f"{BASE}/review", headers=_as(tokens, "analyst")).json()
    assert [p["state"] for p in review["proposals"] if p["id"] == pid] == ["submitted"]
    approved = _decide(client, tokens, pid, "approve", role="analyst")
    assert approved.status_code == 200 and approved.json()["state"] == "queued"
    assert (approved.json()["decided_role"], approved.json()["reason"]) == ("analyst", "approved by staff")
    queue = queue_of(client, twin)
    _tick_until(queue, twin, pid, State.DONE)
    public = next(p for p in client.get(BASE).json()["proposals"] if p["id"] == pid)
    assert public["interventions"] == ["speed limit: OSM ways 202; speed kmh 30.0"]
    result = public["result"]
    assert (result["comparison"], result["plan"], result["baseline"]) == (
        f"proposal-{pid}-consult-public",
        f"proposal-{pid}",
        "baseline",
    )
    assert result["page"] == f"http://testserver/consultations/proposal-{pid}-consult-public"
    (kpi,) = result["kpis"]
    assert (kpi["label"], kpi["value"]["mean"], kpi["value"]["ci_low"], kpi["value"]["ci_high"]) == (
        "Mean car travel time", 371.0, 352.0, 390.0)  # fmt: skip
    assert (kpi["baseline"]["mean"], kpi["change"]["mean"], kpi["change"]["within_noise"]) == (
        348.0,
        23.0,
        False,
    )
    assert kpi["change"]["words"] == "Mean car travel time rises by 7%."
    text = json.dumps(client.get(BASE).json())
    for private in (
        "approved by staff",
        "decided_by",
        "testclient",
        tokens["analyst"].split("_")[1],
        "outcome",
    ):
        assert private not in text


def test_a_proposal_that_gridlocks_shows_the_finding_instead_of_numbers(
    client: TestClient, tokens: dict[str, str], twin: Path
) -> None:
    pid = _submit(client, "Close everything (gridlock)").json()["id"]
    assert _decide(client, tokens, pid, "approve", role="analyst").status_code == 200
    _tick_until(queue_of(client, twin), twin, pid, State.DONE)
    public = next(p for p in client.get(BASE).json()["proposals"] if p["id"] == pid)
    comparison = f"proposal-{pid}-consult-public"
    assert public["result"] == {
        "comparison": comparison,
        "baseline": "baseline",
        "plan": f"proposal-{pid}",
        "page": f"http://testserver/comparisons/{comparison}/report",
        "kpis": [],
        "not_evaluated": f"'proposal-{pid}' could not be evaluated: the simulation failed the quality check in "
        "2 of 2 runs",
    }


def test_one_run_at_a_time_and_cancellation_really_stops_the_run(
    client: TestClient, tokens: dict[str, str], twin: Path
) -> None:
    first = _submit(client, "Long hang run").json()["id"]
    second = _submit(client, "Second in line").json()["id"]
    for pid in (first, second):
        assert _decide(client, tokens, pid, "approve").status_code == 200
    queue = queue_of(client, twin)
    _tick_until(queue, twin, first, State.RUNNING)
    queue.tick()
    assert _state(twin, second) is State.QUEUED  # one at a time
    comparison = f"proposal-{first}-consult-public"
    _wait_for(twin / f"{comparison}.started")
    cancel = client.post(
        f"{BASE}/{first}/cancel", json={"reason": "too costly"}, headers=_as(tokens, "admin")
    )
    assert cancel.status_code == 200 and cancel.json()["state"] == "cancelling"
    _tick_until(queue, twin, first, State.CANCELLED)
    assert (twin / f"{comparison}.interrupted").read_text() == "SIGINT"
    _tick_until(queue, twin, second, State.DONE)
    again = client.post(f"{BASE}/{first}/cancel", json={"reason": "again"}, headers=_as(tokens, "admin"))
    assert (again.status_code, again.json()["detail"]) == (
        409,
        f"proposal {first} is cancelled; it cannot become cancelling",
    )
    queued = _submit(client, "Queued then cancelled").json()["id"]
    _decide(client, tokens, queued, "approve")
    gone = client.post(
        f"{BASE}/{queued}/cancel", json={"reason": "withdrawn"}, headers=_as(tokens, "moderator")
    )
    assert gone.json()["state"] == "cancelled" and gone.json()["outcome"].endswith(": withdrawn")


def test_a_failed_run_says_why_to_staff_only(client: TestClient, tokens: dict[str, str], twin: Path) -> None:
    pid = _submit(client, "This will fail").json()["id"]
    _decide(client, tokens, pid, "approve")
    _tick_until(queue_of(client, twin), twin, pid, State.FAILED)
    staff = next(
        p
        for p in client.get(f"{BASE}/review", headers=_as(tokens, "admin")).json()["proposals"]
        if p["id"] == pid
    )
    assert staff["outcome"] == "error: engine 'traffic', scenario 'proposal', seed 1: SUMO stopped"
    public = next(p for p in client.get(BASE).json()["proposals"] if p["id"] == pid)
    assert public["state"] == "failed" and public["result"] is None and "outcome" not in public


def test_rejection_is_recorded_and_final(client: TestClient, tokens: dict[str, str]) -> None:
    pid = _submit(client, "Not this one").json()["id"]
    rejected = _decide(client, tokens, pid, "reject")
    assert rejected.json()["state"] == "rejected" and rejected.json()["reason"] == "rejectd by staff"
    assert _decide(client, tokens, pid, "approve").status_code == 409
    assert pid not in [p["id"] for p in client.get(BASE).json()["proposals"]]
    assert _decide(client, tokens, 999_999, "approve").status_code == 404


def test_a_run_going_at_shutdown_is_requeued_and_resumed_by_the_next_server(
    client: TestClient, tokens: dict[str, str], twin: Path
) -> None:
    pid = _submit(client, "A hang until the restart").json()["id"]
    _decide(client, tokens, pid, "approve")
    queue = queue_of(client, twin)
    _tick_until(queue, twin, pid, State.RUNNING)
    comparison = f"proposal-{pid}-consult-public"
    _wait_for(twin / f"{comparison}.started")
    queue.stop()
    assert _state(twin, pid) is State.QUEUED
    assert (twin / f"{comparison}.interrupted").read_text() == "SIGINT"
    with ProposalStore(proposals_path(twin / "test-twin.duckdb")) as store:
        restarted = ProposalQueue(store, twin, command=stand_in)
        _tick_until(restarted, twin, pid, State.RUNNING)
        again = store.proposal(pid)
        assert again is not None and (again.attempts, again.comparison) == (2, comparison)
        store.cancel(pid, reason="end of test", by="t", role="admin", now=OPEN_TIME)
        _tick_until(restarted, twin, pid, State.CANCELLED)


def test_the_queue_runs_with_the_app(twin: Path) -> None:
    app = create_app(twin)
    app.state.proposal_command = stand_in
    with TestClient(app):
        queue = open_proposals(app, twin, twin / "test-twin.duckdb").queue
        assert queue.ticking()
    assert not queue.ticking()


def test_a_flood_of_proposals_from_one_source_is_refused(client: TestClient) -> None:
    base = "/consultations/consult-flood/proposals"
    statuses = [_submit(client, f"Flood {n}", base=base).status_code for n in range(3)]
    assert statuses == [202, 202, 429]


def test_the_run_command_is_civictwin_compare_with_the_consultations_seeds(twin: Path) -> None:
    proposal = Proposal(
        id=42, consultation="consult-public", pseudonym="Resident ABCDEF", title="Thirty", description="",
        interventions=[{"type": "speed_limit", "osm_ids": [202], "speed_kmh": 30.0}], created=OPEN_TIME,
        state=State.RUNNING, decided_at=None, decided_by=None, decided_role=None, reason=None, started=None,
        heartbeat=None, finished=None, attempts=1, comparison="proposal-42-consult-public", outcome=None,
    )  # fmt: skip
    argv = compare_command(proposal, twin, load_config(twin).proposals)
    scenario = twin / "proposals" / "proposal-42.toml"
    assert argv[3:] == [
        "compare", "baseline", str(scenario), "--twin", str(twin), "--id", "proposal-42-consult-public",
        "--seeds", "2", "--workers", "2", "--seed-timeout", "3600.0", "--question", "Thirty",
        '--set=traffic.demand={"scale" = 0.25}', "--set=traffic.iterations=2",
    ]  # fmt: skip
    assert "osm_ids = [202]" in scenario.read_text() and 'name = "proposal-42"' in scenario.read_text()


ROUTES = [
    ("GET", "/menu", dict.fromkeys(("anonymous", "viewer", "analyst", "steward", "moderator", "admin"), 200)),
    ("GET", "", dict.fromkeys(("anonymous", "viewer", "analyst", "steward", "moderator", "admin"), 200)),
    ("POST", "/validate", dict.fromkeys(("anonymous", "viewer", "analyst", "steward", "moderator", "admin"), 200)),
    ("GET", "/review", {"anonymous": 401, "viewer": 403, "analyst": 200, "steward": 403, "moderator": 200, "admin": 200}),
    ("POST", "/999999/decision", {"anonymous": 401, "viewer": 403, "analyst": 404, "steward": 403, "moderator": 404, "admin": 404}),
    ("POST", "/999999/cancel", {"anonymous": 401, "viewer": 403, "analyst": 404, "steward": 403, "moderator": 404, "admin": 404}),
]  # fmt: skip


@pytest.mark.parametrize(("method", "route", "expected"), ROUTES)
def test_route_role_matrix(
    client: TestClient, tokens: dict[str, str], method: str, route: str, expected: dict[str, int]
) -> None:
    bodies = {"/validate": {"title": "Fine", "interventions": []}, "/999999/cancel": {"reason": "x"},
              "/999999/decision": {"decision": "approve", "reason": "ok"}}  # fmt: skip
    for role, status in expected.items():
        answer = client.request(method, BASE + route, headers=_as(tokens, role), json=bodies.get(route))
        assert answer.status_code == status, f"{role} {method} {route}: {answer.text}"


def test_the_author_deletes_a_proposal_and_its_run_with_the_deletion_code(
    client: TestClient, tokens: dict[str, str], twin: Path
) -> None:
    sent = _submit(client, "Delete me after the run").json()
    pid, code = sent["id"], sent["deletion_code"]
    _decide(client, tokens, pid, "approve")
    _tick_until(queue_of(client, twin), twin, pid, State.DONE)
    comparison = twin / "runs" / f"proposal-{pid}-consult-public"
    assert (comparison / "complete").is_file() and (twin / "proposals" / f"proposal-{pid}.log").is_file()
    unknown = client.post(f"{BASE}/delete", json={"code": "del_not-a-code"})
    assert (unknown.status_code, unknown.json()["detail"]) == (
        404, "no proposal has this deletion code (deleted already, or anonymised)",
    )  # fmt: skip
    assert client.post(f"{BASE}/delete", json={"code": code}).status_code == 204
    assert not comparison.exists() and not (twin / "proposals" / f"proposal-{pid}.log").exists()
    assert pid not in [p["id"] for p in client.get(BASE).json()["proposals"]]
    assert client.post(f"{BASE}/delete", json={"code": code}).status_code == 404
    running = _submit(client, "A hang while deleted").json()
    _decide(client, tokens, running["id"], "approve")
    _tick_until(queue_of(client, twin), twin, running["id"], State.RUNNING)
    refused = client.post(f"{BASE}/delete", json={"code": running["deletion_code"]})
    assert refused.status_code == 409 and "is being simulated" in refused.json()["detail"]
    client.post(f"{BASE}/{running['id']}/cancel", json={"reason": "end"}, headers=_as(tokens, "admin"))
    _tick_until(queue_of(client, twin), twin, running["id"], State.CANCELLED)
    assert client.post(f"{BASE}/delete", json={"code": running["deletion_code"]}).status_code == 204
    audit = audit_path(twin / "test-twin.duckdb").read_text(encoding="utf-8")
    assert "/proposals/delete" in audit  # the requests are there, never their bodies
    for private in (code, running["deletion_code"], "Delete me after the run", sent["pseudonym"]):
        assert private not in audit


def test_after_the_retention_period_proposals_are_anonymised(
    client: TestClient, tokens: dict[str, str], clock: Clock
) -> None:
    """181 days on (the default retention is 180 days): undecided and rejected proposals are gone, a
    decided one stays with its author's pseudonym and its time of day removed. The test makes its own
    proposals and puts the module's clock back, so it holds wherever it runs in the file."""
    pending = _submit(client, "Never decided").json()["id"]
    rejected = _submit(client, "Rejected").json()["id"]
    approved = _submit(client, "Approved").json()["id"]
    assert _decide(client, tokens, rejected, "reject").status_code == 200
    assert _decide(client, tokens, approved, "approve").status_code == 200
    before = {p["id"] for p in client.get(f"{BASE}/review", headers=_as(tokens, "admin")).json()["proposals"]}
    assert {pending, rejected, approved} <= before
    clock.now = OPEN_TIME + timedelta(days=181)
    try:
        after = client.get(f"{BASE}/review", headers=_as(tokens, "admin")).json()["proposals"]
    finally:
        clock.now = OPEN_TIME
    kept = {p["id"]: p for p in after}
    assert pending not in kept and rejected not in kept and approved in kept
    assert all(p["state"] not in ("submitted", "rejected") for p in after)
    assert {p["pseudonym"] for p in after} == {"anonymised"}
    assert {p["created"] for p in after} == {"2026-12-10T00:00:00+00:00"}
