"""Tokens (hashed, atomic file, live re-read), the access rule per role and level, the audit log."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from civictwin.config import AccessLevel
from civictwin.governance.access import AccessPolicy, access_levels, can_read
from civictwin.governance.audit import AuditLog, read_audit
from civictwin.governance.tokens import (
    ANONYMOUS,
    Principal,
    Role,
    TokenError,
    TokenRegistry,
    create_token,
    list_tokens,
    revoke_token,
    tokens_path,
)


def test_tokens_path_sits_beside_the_store(tmp_path: Path) -> None:
    assert tokens_path(tmp_path / "helsinki.duckdb") == tmp_path / "helsinki.tokens.json"


def test_token_is_stored_as_sha256_only(tmp_path: Path) -> None:
    path = tmp_path / "t.tokens.json"
    issued = create_token(path, role=Role.ADMIN, name="ops")
    assert issued.token.startswith(f"ct_{issued.record.id}_") and len(issued.token) == 3 + 9 + 43
    data = json.loads(path.read_text())
    assert data["tokens"][0]["sha256"] == hashlib.sha256(issued.token.encode()).hexdigest()
    assert issued.token.split("_", 2)[2] not in path.read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_registry_verifies_and_sees_changes_without_restart(tmp_path: Path) -> None:
    """A registry created before the token exists accepts it once written, and refuses it once revoked."""
    path = tmp_path / "t.tokens.json"
    registry = TokenRegistry(path)
    assert registry.verify("ct_00000000_" + "a" * 43) is None
    issued = create_token(path, role=Role.VIEWER)
    record = registry.verify(issued.token)
    assert record is not None and record.role is Role.VIEWER
    assert registry.verify(issued.token[:-1] + ("b" if issued.token[-1] != "b" else "c")) is None
    assert registry.verify("garbage") is None
    revoke_token(path, issued.record.id)
    assert registry.verify(issued.token) is None


def test_token_argument_errors(tmp_path: Path) -> None:
    path = tmp_path / "t.tokens.json"
    with pytest.raises(TokenError, match="steward token needs"):
        create_token(path, role=Role.STEWARD)
    with pytest.raises(TokenError, match="only steward tokens"):
        create_token(path, role=Role.VIEWER, datasets=["roads"])
    with pytest.raises(TokenError, match="invalid dataset"):
        create_token(path, role=Role.STEWARD, datasets=["roads; drop"])
    with pytest.raises(TokenError, match="no token with id"):
        revoke_token(path, "deadbeef")
    issued = create_token(path, role=Role.ANALYST)
    revoke_token(path, issued.record.id)
    with pytest.raises(TokenError, match="already revoked"):
        revoke_token(path, issued.record.id)


def test_corrupt_token_file_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "t.tokens.json"
    path.write_text("{not json")
    with pytest.raises(TokenError, match="unreadable token file") as info:
        list_tokens(path)
    assert str(path) in info.value.user_message()


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "t.tokens.json"
    for _ in range(5):
        create_token(path, role=Role.VIEWER)
    assert sorted(os.listdir(tmp_path)) == ["t.tokens.json", "t.tokens.json.lock"]
    assert len(list_tokens(path)) == 5


@pytest.mark.parametrize(
    ("role", "datasets", "expected"),
    [
        (None, (), {"pub"}),
        (Role.VIEWER, (), {"pub", "int"}),
        (Role.ANALYST, (), {"pub", "int"}),
        (Role.STEWARD, ("res",), {"pub", "int", "res"}),
        (Role.STEWARD, ("other",), {"pub", "int"}),
        (Role.ADMIN, (), {"pub", "int", "res", "uncatalogued", "odd"}),
    ],
)
def test_access_rule(
    tmp_path: Path, role: Role | None, datasets: tuple[str, ...], expected: set[str]
) -> None:
    """public: all; internal: any token; restricted, uncatalogued or unknown level: steward and admin."""
    catalog = {
        "pub": {"access": "public"},
        "int": {"access": "internal"},
        "res": {"access": "restricted"},
        "odd": {"access": "secret"},
    }
    levels = access_levels(catalog, ["pub", "int", "res", "uncatalogued", "odd"])
    assert levels["uncatalogued"] is AccessLevel.RESTRICTED and levels["odd"] is AccessLevel.RESTRICTED
    principal = ANONYMOUS
    if role is not None:
        path = tmp_path / "t.tokens.json"
        issued = create_token(path, role=role, datasets=datasets)
        principal = Principal.of(TokenRegistry(path).verify(issued.token))
    assert AccessPolicy(levels).readable(principal) == expected
    assert AccessPolicy(levels).allows(principal, "missing") is False
    assert can_read(principal, "pub", AccessLevel.PUBLIC)


def test_audit_log_appends_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.audit.jsonl"
    log = AuditLog(path)
    log.record(
        who="anonymous", client="1.2.3.4", method="GET", path="/", query="", status=200, duration_ms=1.23456
    )
    log.record(
        who="abcd1234", client="1.2.3.4", method="GET", path="/x", query="a=1", status=404, duration_ms=2
    )
    log.close()
    entries = read_audit(path)
    assert [(e.who, e.path, e.status, e.duration_ms) for e in entries] == [
        ("anonymous", "/", 200, 1.235),
        ("abcd1234", "/x", 404, 2.0),
    ]
    assert len(path.read_text().splitlines()) == 2
