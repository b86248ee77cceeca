"""The contribution database on both backends (a SQLite file beside a DuckDB twin, the schema
``civictwin_contributions`` of a PostGIS twin's database), with the same expected values: one proof of
work per contribution even within one group commit and across connections, anonymisation after
retention with hand-checked values, deletion by code hash; on PostGIS, left alone by a rebuild."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pgtwin import PostGIS, build_layers

from civictwin.errors import StoreError
from civictwin.store.contributions import (
    CONTRIBUTION_SCHEMA,
    ContributionStore,
    Decision,
    Kind,
    NewContribution,
    Queued,
    Status,
    contributions_path,
    open_contribution_store,
)
from civictwin.store.opening import StoreLocation

DAY1 = datetime(2026, 12, 10, 14, 30, 5, tzinfo=UTC)


def _queued(challenge: str, *, text: str = "Safer streets", code: str = "h1") -> Queued:
    new = NewContribution(consultation="c1", scenario="zone30", theme="safety", text=text, vote="for",
                          lon=24.94567, lat=60.17123)  # fmt: skip
    return Queued(contribution=new, pseudonym="Resident AAAAAA", deletion_sha256=code, challenge=challenge,
                  challenge_expires=DAY1.timestamp() + 600, received=DAY1)  # fmt: skip


def test_the_file_sits_beside_the_store_and_not_in_it(tmp_path: Path) -> None:
    assert contributions_path(tmp_path / "city.duckdb") == tmp_path / "city.contributions.sqlite"


@pytest.fixture
def store(sidecar_location: StoreLocation, tmp_path: Path) -> Iterator[ContributionStore]:
    """An empty contribution database of the twin ``tmp_path/twin.duckdb``: a SQLite file beside it,
    or the schema of a fresh PostGIS database; the photo folder beside the twin's files on both."""
    with open_contribution_store(sidecar_location, store_path=tmp_path / "twin.duckdb") as opened:
        yield opened


def test_a_challenge_spent_twice_in_one_batch_stores_once(store: ContributionStore) -> None:
    first, replay, other = store.add_many([_queued("a"), _queued("a", code="h2"), _queued("b", code="h3")])
    assert first is not None and other is not None and replay is None
    assert [c.id for c in store.contributions("c1", status=Status.PENDING)] == [first.id, other.id]


def test_a_challenge_spent_through_another_connection_is_a_replay(store: ContributionStore) -> None:
    """Two server processes (two connections) share the spent challenges and the proof-of-work key."""
    (first,) = store.add_many([_queued("a")])
    with ContributionStore(store.path, media=store.photo_folder("c1").parent) as other:
        assert other.add_many([_queued("a", code="h2"), _queued("b", code="h3")])[0] is None
        assert other.secret("proof", b"key-one") == b"key-one"
        assert store.secret("proof", b"key-two") == b"key-one"
    assert first is not None and store.count("c1", status=Status.PENDING) == 2


def test_anonymisation_after_retention(store: ContributionStore) -> None:
    kept, dropped = store.add_many([_queued("a", code="h1"), _queued("b", code="h2", text="never approved")])
    assert kept is not None and dropped is not None
    assert store.decide("c1", kept.id, Decision(Status.APPROVED, "fine", "mod1"), now=DAY1)
    assert store.anonymise("c1", older_than=DAY1) == 0  # made at DAY1 exactly: not older
    assert store.anonymise("c1", older_than=datetime(2026, 12, 11, tzinfo=UTC)) == 2
    (after,) = store.contributions("c1", status=None)
    assert (after.id, after.pseudonym, after.lon, after.lat) == (kept.id, "anonymised", 24.95, 60.17)
    assert after.created == datetime(2026, 12, 10, tzinfo=UTC) and after.anonymised
    assert (after.text, after.vote, after.reason) == ("Safer streets", "for", "fine")
    assert not store.delete("c1", "h1")  # the deletion code's hash is gone with the pseudonym


def test_deletion_by_code_hash(store: ContributionStore) -> None:
    store.add_many([_queued("a", code="h1")])
    assert not store.delete("other", "h1")  # another consultation's code space
    assert store.delete("c1", "h1")
    assert store.contributions("c1", status=None) == []


OLD_SCHEMA = """CREATE TABLE contributions (id INTEGER PRIMARY KEY, consultation TEXT NOT NULL, pseudonym TEXT,
deletion_sha256 TEXT UNIQUE, scenario TEXT NOT NULL, vote TEXT, theme TEXT NOT NULL, text TEXT NOT NULL,
lon REAL, lat REAL, created TEXT NOT NULL, status TEXT NOT NULL, moderated_at TEXT, moderated_by TEXT,
reason TEXT, anonymised INTEGER NOT NULL DEFAULT 0);
INSERT INTO contributions (consultation, scenario, theme, text, created, status)
VALUES ('c1', 'zone30', 'safety', 'from before surveys', '2026-12-01T00:00:00.000000Z', 'approved');"""


def test_a_database_from_before_surveys_gains_kind_and_photo(tmp_path: Path) -> None:
    """A file written before survey observations existed opens with its comments as comments."""
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as con:
        con.executescript(OLD_SCHEMA)
    with ContributionStore(path) as store:
        (old,) = store.contributions("c1", status=None)
        assert (old.text, old.kind, old.photo) == ("from before surveys", Kind.COMMENT, None)
        assert store.contributions("c1", status=None, kind=Kind.OBSERVATION) == []


def test_observations_beside_comments_and_their_photos(store: ContributionStore, tmp_path: Path) -> None:
    """Kinds are counted apart; a photo file no observation names any longer is swept (after its grace)."""
    seen = NewContribution(consultation="c1", scenario="", theme="pothole", text="hole", vote=None,
                           lon=24.9, lat=60.1, kind=Kind.OBSERVATION, photo="a" * 64 + ".jpg")  # fmt: skip
    comment, observation = store.add_many([
        _queued("a"),
        Queued(contribution=seen, pseudonym="Resident BBBBBB", deletion_sha256="h2", challenge="b",
               challenge_expires=DAY1.timestamp() + 600, received=DAY1),
    ])  # fmt: skip
    assert comment is not None and observation is not None
    assert (observation.kind, observation.photo, observation.theme) == (
        Kind.OBSERVATION, "a" * 64 + ".jpg", "pothole")  # fmt: skip
    assert store.count("c1", status=Status.PENDING) == 2
    assert store.count("c1", status=Status.PENDING, kind=Kind.COMMENT) == 1
    assert store.photo_status("c1", "a" * 64 + ".jpg") == {Status.PENDING}
    folder = store.photo_folder("c1")
    assert folder == tmp_path / "twin.contributions.sqlite.media" / "c1"
    folder.mkdir(parents=True)
    for name in ("a" * 64 + ".jpg", "b" * 64 + ".jpg"):
        (folder / name).write_bytes(b"jpeg")
    assert store.forget_unused_photos("c1") == 0  # both just written: within the grace period
    assert store.forget_unused_photos("c1", grace_s=0.0) == 1
    assert sorted(p.name for p in folder.iterdir()) == ["a" * 64 + ".jpg"]
    assert store.delete("c1", "h2")
    assert store.forget_unused_photos("c1", grace_s=0.0) == 1 and list(folder.iterdir()) == []


def test_a_database_without_a_photo_folder_is_refused() -> None:
    with pytest.raises(StoreError, match="needs a photo folder"):
        ContributionStore("postgresql://civictwin@127.0.0.1:1/twin")


def test_postgis_contributions_survive_a_rebuild_in_their_own_schema(
    postgis: PostGIS, postgis_twin: str, tmp_path: Path
) -> None:
    url = postgis_twin
    location = StoreLocation(kind="postgis", dsn=url)
    with open_contribution_store(location, store_path=tmp_path / "twin.duckdb") as store:
        (stored,) = store.add_many([_queued("a")])
        assert stored is not None
    build_layers(location, 3)
    name = url.rsplit("/", 1)[1]
    assert postgis.query(name, f"SELECT id, text, status FROM {CONTRIBUTION_SCHEMA}.contributions") == [
        (stored.id, "Safer streets", "pending")
    ]
    with open_contribution_store(location, store_path=tmp_path / "twin.duckdb") as after:
        assert after.contributions("c1", status=Status.PENDING) == [stored]
    assert not (tmp_path / "twin.contributions.sqlite").exists()
