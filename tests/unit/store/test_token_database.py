"""API tokens in a PostGIS twin's database (``[server] tokens = "database"``, schema
``civictwin_tokens``) behave as the token file does: the same create, rotate, revoke and list, a
registry that sees every change from its next verification, last uses merged with the later time
winning; a database that does not answer refuses every token; and two ``civictwin serve`` replicas
(each with its own twin directory, as on two hosts) honour a token created, then revoked, on either."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi.testclient import TestClient
from pgtwin import PASSWORD, PostGIS, build_layers, serve_replicas, twin_toml

from civictwin.api.app import create_app
from civictwin.api.settings import ServerSettings
from civictwin.cli import main
from civictwin.errors import ConfigError
from civictwin.governance.tokens import (
    Role,
    TokenError,
    TokenRegistry,
    create_token,
    list_tokens,
    revoke_token,
    rotate_token,
    token_place,
    token_uses,
    tokens_path,
)
from civictwin.store.opening import StoreLocation
from civictwin.store.postgis_tokens import TOKEN_SCHEMA, TokenDatabase

if TYPE_CHECKING:
    from civictwin.governance.tokens import TokenPlace


@pytest.fixture(params=["file", "database"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TokenPlace]:
    """Where a twin's tokens are: its token file, or the schema of a fresh PostGIS database."""
    if request.param == "file":
        yield token_place(tokens="file", location=StoreLocation.of_file(tmp_path / "twin.duckdb"),
                          store_path=tmp_path / "twin.duckdb")  # fmt: skip
        return
    location = StoreLocation(kind="postgis", dsn=request.getfixturevalue("postgis_url"))
    found = token_place(tokens="database", location=location, store_path=tmp_path / "twin.duckdb")
    assert isinstance(found, TokenDatabase)
    with found:
        yield found


def test_tokens_are_created_rotated_revoked_and_seen_by_a_running_registry(place: TokenPlace) -> None:
    registry = TokenRegistry(place, clock=lambda: 1_000.0)
    assert list_tokens(place) == [] and registry.verify("ct_00000000_" + "a" * 43) is None
    admin = create_token(place, role=Role.ADMIN, name="ops")
    steward = create_token(place, role=Role.STEWARD, datasets=["air", "air", "noise"])
    assert registry.verify(admin.token) == admin.record  # a change seen at the next verification
    assert [(r.id, r.role, r.datasets) for r in list_tokens(place)] == [
        (admin.record.id, Role.ADMIN, ()),
        (steward.record.id, Role.STEWARD, ("air", "noise")),
    ]
    successor = rotate_token(place, admin.record.id, grace=timedelta(0), lifetime=None)
    assert (successor.record.role, successor.record.name) == (Role.ADMIN, "ops")
    assert registry.verify(successor.token) == successor.record
    revoke_token(place, steward.record.id)
    assert registry.verify(steward.token) is None
    with pytest.raises(TokenError, match="already revoked"):
        revoke_token(place, steward.record.id)
    with pytest.raises(TokenError, match="no token with id 'ffffffff'"):
        revoke_token(place, "ffffffff")
    assert len(list_tokens(place)) == 3  # a refused change wrote nothing
    # the first accepted token noted its use at once (the clock is past a minute), the time of 1,000 s
    assert token_uses(place) == {admin.record.id: "1970-01-01T00:16:40+00:00"}


def test_tokens_in_a_database_need_a_postgis_twin(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='tokens = "database" needs a twin stored in PostGIS'):
        token_place(tokens="database", location=StoreLocation.of_file(tmp_path / "t.duckdb"),
                    store_path=tmp_path / "t.duckdb")  # fmt: skip
    file = token_place(tokens="file", location=StoreLocation(kind="postgis", dsn="postgresql://u@h/d"),
                       store_path=tmp_path / "t.duckdb")  # fmt: skip
    assert file == tokens_path(tmp_path / "t.duckdb")


def test_a_document_that_does_not_parse_refuses_every_token_until_it_changes(
    postgis: PostGIS, postgis_url: str
) -> None:
    with TokenDatabase(postgis_url) as database:
        issued = create_token(database, role=Role.VIEWER)
        registry = TokenRegistry(database)
        name = postgis_url.rsplit("/", 1)[1]
        postgis.sql(
            name, f"UPDATE {TOKEN_SCHEMA}.book SET document = '{{\"tokens\": 7}}', version = version + 1"
        )
        for _ in range(2):
            with pytest.raises(TokenError, match="unreadable token file"):
                registry.verify(issued.token)
        postgis.sql(
            name, f"UPDATE {TOKEN_SCHEMA}.book SET document = '{{\"tokens\": []}}', version = version + 1"
        )
        assert registry.verify(issued.token) is None  # readable again: the token is unknown now


def test_a_database_that_does_not_answer_refuses_every_token(postgis: PostGIS, postgis_url: str) -> None:
    database = TokenDatabase(postgis_url)
    issued = create_token(database, role=Role.VIEWER)
    registry = TokenRegistry(database)
    assert registry.verify(issued.token) == issued.record
    postgis.sql("postgres", f"DROP DATABASE {postgis_url.rsplit('/', 1)[1]} WITH (FORCE)")
    # its connection ended, then no new one: refused each time, never accepted, in one line each
    for reason in ("the token database did not answer: terminating connection", 'database "t'):
        with pytest.raises(TokenError) as refused:
            registry.verify(issued.token)
        line = refused.value.user_message()
        assert line.startswith(postgis_url + ": ") and reason in line and PASSWORD not in line


def test_the_503_of_an_unreadable_token_database_names_its_schema_and_no_uri(
    postgis: PostGIS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    url = postgis.new_database()
    build_layers(StoreLocation(kind="postgis", dsn=url), 2)
    (tmp_path / "twin.toml").write_text(twin_toml(name="Db tokens", url=url))
    with TokenDatabase(url) as database:
        issued = create_token(database, role=Role.VIEWER)
    name = url.rsplit("/", 1)[1]
    postgis.sql(name, f"UPDATE {TOKEN_SCHEMA}.book SET document = '{{\"tokens\": 7}}', version = version + 1")
    with TestClient(create_app(tmp_path, settings=ServerSettings(tokens="database"))) as client:
        for _ in range(2):
            refused = client.get("/collections", headers={"Authorization": f"Bearer {issued.token}"})
            assert (refused.status_code, refused.headers["retry-after"]) == (503, "60")
            assert refused.json()["detail"] == (
                "tokens cannot be checked right now "
                "(the token schema civictwin_tokens of the twin's database is unreadable)"
            )
            assert PASSWORD not in refused.text and url not in refused.text and name not in refused.text
        assert client.get("/collections").status_code == 200  # anonymous requests go on
    events = [json.loads(line) for line in (tmp_path / "db-tokens.security.jsonl").read_text().splitlines()]
    refusals = [e for e in events if e["event"] == "token database unreadable"]
    assert len(refusals) == 1 and refusals[0]["detail"].startswith(url + ": unreadable token")
    assert not any(PASSWORD in json.dumps(e) for e in events)


def test_two_replicas_of_serve_honour_a_token_created_and_revoked_on_either(
    postgis: PostGIS, postgis_twin: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = postgis_twin
    with serve_replicas(tmp_path, url=url, server='tokens = "database"', env=os.environ) as replicas:
        bases, twins = [replica.base for replica in replicas], [replica.twin for replica in replicas]
        main(["token", "create", str(twins[0]), "--role", "admin"])
        token = capsys.readouterr().out.split()[-1]
        bearer = {"Authorization": f"Bearer {token}"}
        assert [httpx.get(base + "/metrics", headers=bearer, timeout=30).status_code for base in bases] == [
            200,
            200,
        ]
        token_id = token.split("_")[1]
        main(["token", "revoke", token_id, str(twins[1])])
        assert [httpx.get(base + "/metrics", headers=bearer, timeout=30).status_code for base in bases] == [
            401,
            401,
        ]
        main(["token", "list", str(twins[1])])
        listed = capsys.readouterr().out
        assert token_id in listed and "admin" in listed
        assert not any(tokens_path(twin / "replicas.duckdb").exists() for twin in twins)
        name = url.rsplit("/", 1)[1]
        assert postgis.query(name, f"SELECT version FROM {TOKEN_SCHEMA}.book") == [(2,)]
