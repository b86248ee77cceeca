"""`civictwin backup` / `restore` of a twin stored in PostGIS: pg_dump of the served schema and of the
schemas the served twin writes (contributions, proposals, ...), restored into another (empty)
database with the twin's files, twin.toml pointed at it; refusals in one line."""

from __future__ import annotations

import gzip
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pgtwin import CRS, PASSWORD, PostGIS, layers, twin_toml

from civictwin.backup import BackupError, backup_twin, restore_twin
from civictwin.config import load_config
from civictwin.errors import StoreError
from civictwin.governance.tokens import Role, create_token, list_tokens, tokens_path
from civictwin.store.contributions import open_contribution_store
from civictwin.store.opening import StoreLocation, build_store, open_store
from civictwin.store.proposals import NewProposal, open_proposal_store


def test_a_postgis_twin_is_backed_up_and_restored_into_another_database(
    postgis: PostGIS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    source, target, bare = postgis.new_database(), postgis.new_database(), postgis.new_database(postgis=False)
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "twin.toml").write_text(twin_toml(name="Pg backup", url=source))
    with build_store(StoreLocation(kind="postgis", dsn=source), crs=CRS) as store:
        store.write_table("buildings", layers()["buildings"])
        store.put_record("catalog", "buildings", {"access": "public"})
    token = create_token(tokens_path(load_config(twin).store_path), role=Role.ANALYST).record
    kept = StoreLocation(kind="postgis", dsn=source)
    with open_contribution_store(kept, store_path=tmp_path / "elsewhere.duckdb") as contributions:
        contributions.secret("proof", b"k" * 32)
    with open_proposal_store(kept) as proposals:
        new_proposal = NewProposal(consultation="c1", pseudonym="Resident ABCDEF", title="Thirty",
                                   description="", interventions=[], deletion_sha256="sha")  # fmt: skip
        proposal = proposals.add(new_proposal, now=datetime(2026, 12, 10, tzinfo=UTC))

    archive = tmp_path / "twin.tar.gz"
    summary = backup_twin(twin, archive)
    with tarfile.open(archive) as tar:
        names = sorted(tar.getnames())
    assert names == ["BACKUP.json", "pg-backup.tokens.json", "store.pgdump", "twin.toml"]
    assert summary.files == 3
    assert PASSWORD.encode() not in gzip.decompress(archive.read_bytes())

    with pytest.raises(BackupError) as missing:
        restore_twin(archive, tmp_path / "restored")
    assert missing.value.user_message().startswith("this backup holds a PostGIS twin: give --store")
    with pytest.raises(StoreError) as no_postgis:
        restore_twin(archive, tmp_path / "restored", store=bare)
    assert "no postgis extension" in no_postgis.value.user_message()

    restore_twin(archive, tmp_path / "restored", store=target)
    restored = load_config(tmp_path / "restored")
    assert restored.twin.store == target
    assert not (tmp_path / "restored" / "store.pgdump").exists()
    assert [r.id for r in list_tokens(tokens_path(restored.store_path))] == [token.id]
    there = StoreLocation(kind="postgis", dsn=target)
    with open_contribution_store(there, store_path=tmp_path / "elsewhere.duckdb") as contributions:
        assert contributions.secret("proof", b"another key") == b"k" * 32
    with open_proposal_store(there) as proposals:
        assert proposals.proposals("c1") == [proposal]
    with open_store(StoreLocation(kind="postgis", dsn=source)) as old, open_store(restored) as new:
        assert new.records("meta") == old.records("meta")  # the same version marker: the same twin
        frame = new.read_frame("buildings")
        assert frame["osm_id"].tolist() == [101, 102, 103, 104, 105]
        assert frame.crs == CRS and frame.geometry.area.round(1).tolist() == [400.0] * 5

    with pytest.raises(StoreError) as occupied:
        restore_twin(archive, tmp_path / "again", store=target)
    assert occupied.value.user_message() == (
        f"{target}: the database already holds a twin; restore into an empty one"
    )
    assert not (tmp_path / "again").exists()
    bare_with_proposals = postgis.new_database()  # a twin's proposals, and no twin
    open_proposal_store(StoreLocation(kind="postgis", dsn=bare_with_proposals)).close()
    with pytest.raises(StoreError) as kept_there:
        restore_twin(archive, tmp_path / "again", store=bare_with_proposals)
    assert kept_there.value.user_message() == (
        f"{bare_with_proposals}: the database already holds the schema civictwin_proposals; "
        "restore into an empty one"
    )
    assert postgis.query(
        bare_with_proposals.rsplit("/", 1)[1], "SELECT count(*) FROM civictwin_proposals.proposals"
    ) == [(0,)]
