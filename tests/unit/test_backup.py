"""Backup and restore, and the operations commands, through the real command line."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from civictwin.api.app import create_app
from civictwin.governance.audit import audit_path
from civictwin.governance.security import security_path
from civictwin.governance.tokens import Role, create_token, tokens_path

sys.path.insert(0, str(Path(__file__).parent / "api"))
from apitwin import build_twin

ENTRY = "from civictwin.entry import main; main()"
CONFIG = (
    '[twin]\nname = "test twin"\nstore = "test-twin.duckdb"\n[area]\nbbox = [24.9, 60.1, 25.0, 60.2]\n'
    '[[sources]]\nname = "osm"\nkind = "osm"\npath = "city.osm.pbf"\nlicence = "x"\npublisher = "x"\nsteward = "x"\n'
)


def civictwin(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", ENTRY, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
        env={"COLUMNS": "200", "PATH": ""},
    )  # fmt: skip


@pytest.fixture()
def twin(tmp_path: Path) -> Path:
    directory = tmp_path / "twin"
    build_twin(directory)
    (directory / "twin.toml").write_text(CONFIG)
    (directory / "city.osm.pbf").write_bytes(b"source bytes")
    (directory / "scenarios").mkdir()
    (directory / "scenarios" / "calm.toml").write_text('name = "calm"\n')
    return directory


def test_a_backup_restores_into_a_working_twin(twin: Path, tmp_path: Path) -> None:
    admin = create_token(tokens_path(twin / "test-twin.duckdb"), role=Role.ADMIN).token
    with TestClient(create_app(twin)) as client:
        before = client.get("/collections/zones/items", headers={"Authorization": f"Bearer {admin}"}).json()
    (twin / "test-twin.duckdb.building").write_bytes(b"a build in progress")
    for name in ("test-twin.limits.sqlite", "test-twin.limits.sqlite-wal"):  # serving workers' buckets
        (twin / name).write_bytes(b"rate buckets")
    made = civictwin("backup", str(twin), str(tmp_path / "twin.tar.gz"), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    with tarfile.open(tmp_path / "twin.tar.gz") as tar:
        names = sorted(tar.getnames())
        manifest = json.loads(tar.extractfile("BACKUP.json").read())  # type: ignore[union-attr]
    assert names == [
        "BACKUP.json", "city.osm.pbf", "scenarios/calm.toml", "test-twin.duckdb", "test-twin.tokens.json",
        "test-twin.tokens.used.json", "twin.toml",
    ]  # fmt: skip
    assert {f["path"] for f in manifest["files"]} == set(names) - {"BACKUP.json"}
    restored = tmp_path / "restored"
    done = civictwin("restore", str(tmp_path / "twin.tar.gz"), str(restored), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (restored / "city.osm.pbf").read_bytes() == b"source bytes"
    assert (restored / "test-twin.tokens.json").stat().st_mode & 0o777 == 0o600
    with TestClient(create_app(restored)) as client:
        after = client.get("/collections/zones/items", headers={"Authorization": f"Bearer {admin}"}).json()
        assert client.get("/health/ready").status_code == 200
    assert after["features"] == before["features"] and after["numberMatched"] == 2


def test_logs_go_into_a_backup_only_when_asked(twin: Path, tmp_path: Path) -> None:
    with TestClient(create_app(twin)) as client:
        client.get("/collections")
    assert (
        civictwin("backup", str(twin), str(tmp_path / "with.tar.gz"), "--logs", cwd=tmp_path).returncode == 0
    )
    with tarfile.open(tmp_path / "with.tar.gz") as tar:
        assert {"test-twin.audit.jsonl", "test-twin.security.jsonl"} <= set(tar.getnames())


def test_a_damaged_archive_restores_nothing(twin: Path, tmp_path: Path) -> None:
    assert civictwin("backup", str(twin), str(tmp_path / "t.tar.gz"), cwd=tmp_path).returncode == 0
    with tarfile.open(tmp_path / "t.tar.gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    members["twin.toml"] = members["twin.toml"] + b"# tampered\n"
    with tarfile.open(tmp_path / "bad.tar.gz", "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    failed = civictwin("restore", str(tmp_path / "bad.tar.gz"), str(tmp_path / "restored"), cwd=tmp_path)
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'bad.tar.gz'}: twin.toml: checksum mismatch (damaged archive)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar.gz", "t.tar.gz", "twin"]
    again = civictwin("restore", str(tmp_path / "t.tar.gz"), str(twin), cwd=tmp_path)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_audit_verify_on_the_command_line(twin: Path, tmp_path: Path) -> None:
    with TestClient(create_app(twin)) as client:
        for path in ("/", "/collections", "/conformance", "/tiles"):
            client.get(path)
    token = civictwin("token", "create", str(twin), "--role", "viewer", "--days", "30", cwd=tmp_path)
    assert token.returncode == 0 and "expires 20" in token.stdout
    intact = civictwin("audit", "verify", str(twin), cwd=tmp_path)
    assert intact.returncode == 0, intact.stderr
    assert "audit log: 4 records in 1 file(s), chain intact" in intact.stdout
    assert "security log: 1 records in 1 file(s), chain intact" in intact.stdout
    log = audit_path(twin / "test-twin.duckdb")
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join([lines[0], lines[2].replace("/conformance", "/conformancf"), lines[3]]))
    broken = civictwin("audit", "verify", str(twin), cwd=tmp_path)
    assert broken.returncode == 1
    assert f"{log}: line 2: altered (its content no longer matches its hash)" in broken.stdout
    assert (
        f"{log}: line 2: does not follow the record before it (a record was removed or moved)"
        in broken.stdout
    )
    assert broken.stderr.strip().splitlines() == [
        "error: 2 problem(s) found: the logs were altered or records removed"
    ]
    events = [
        json.loads(line)["event"]
        for line in security_path(twin / "test-twin.duckdb").read_text().splitlines()
    ]
    assert events == ["token created"]


def test_token_rotation_on_the_command_line(twin: Path, tmp_path: Path) -> None:
    created = civictwin("token", "create", str(twin), "--role", "analyst", "--name", "mobility", cwd=tmp_path)
    old_id = created.stdout.strip().splitlines()[-1].split("_")[1]
    rotated = civictwin("token", "rotate", old_id, str(twin), "--grace-hours", "2", cwd=tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    new_token = rotated.stdout.strip().splitlines()[-1]
    listed = civictwin("token", "list", str(twin), cwd=tmp_path)
    new_id = new_token.split("_")[1]
    rows = {i: next(line for line in listed.stdout.splitlines() if i in line) for i in (old_id, new_id)}
    assert all("analyst" in row and "mobility" in row for row in rows.values())
    assert "never" not in rows[old_id]  # the old token now has an end: the grace period
    events = [json.loads(line) for line in security_path(twin / "test-twin.duckdb").read_text().splitlines()]
    assert [(e["event"], e.get("replaces")) for e in events] == [
        ("token created", None),
        ("token rotated", old_id),
    ]


def test_a_postgis_twin_whose_server_is_down_is_not_backed_up(tmp_path: Path) -> None:
    from civictwin.backup import backup_twin
    from civictwin.errors import StoreError

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    url = f"postgresql://twin@127.0.0.1:{port}/city"
    (tmp_path / "twin.toml").write_text(CONFIG.replace('"test-twin.duckdb"', f'"{url}"'))
    with pytest.raises(StoreError) as refused:
        backup_twin(tmp_path, tmp_path.parent / "backup.tar.gz")
    message = refused.value.user_message()
    assert message.startswith(f"{url}: cannot connect to the PostGIS store: ") and "refused" in message
    assert "\n" not in message and not (tmp_path.parent / "backup.tar.gz").exists()
