"""The contribution database: one proof of work per contribution even within one group commit,
anonymisation after retention with hand-checked values, deletion by code hash."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from civictwin.store.contributions import (
    ContributionStore,
    Decision,
    NewContribution,
    Queued,
    Status,
    contributions_path,
)

DAY1 = datetime(2026, 12, 10, 14, 30, 5, tzinfo=UTC)


def _queued(challenge: str, *, text: str = "Safer streets", code: str = "h1") -> Queued:
    new = NewContribution(consultation="c1", scenario="zone30", theme="safety", text=text, vote="for",
                          lon=24.94567, lat=60.17123)  # fmt: skip
    return Queued(contribution=new, pseudonym="Resident AAAAAA", deletion_sha256=code, challenge=challenge,
                  challenge_expires=DAY1.timestamp() + 600, received=DAY1)  # fmt: skip


def test_the_file_sits_beside_the_store_and_not_in_it(tmp_path: Path) -> None:
    assert contributions_path(tmp_path / "city.duckdb") == tmp_path / "city.contributions.sqlite"


def test_a_challenge_spent_twice_in_one_batch_stores_once(tmp_path: Path) -> None:
    with ContributionStore(tmp_path / "c.sqlite") as store:
        first, replay, other = store.add_many(
            [_queued("a"), _queued("a", code="h2"), _queued("b", code="h3")]
        )
        assert first is not None and other is not None and replay is None
        assert [c.id for c in store.contributions("c1", status=Status.PENDING)] == [first.id, other.id]


def test_anonymisation_after_retention(tmp_path: Path) -> None:
    with ContributionStore(tmp_path / "c.sqlite") as store:
        kept, dropped = store.add_many(
            [_queued("a", code="h1"), _queued("b", code="h2", text="never approved")]
        )
        assert kept is not None and dropped is not None
        assert store.decide("c1", kept.id, Decision(Status.APPROVED, "fine", "mod1"), now=DAY1)
        assert store.anonymise("c1", older_than=DAY1) == 0  # made at DAY1 exactly: not older
        assert store.anonymise("c1", older_than=datetime(2026, 12, 11, tzinfo=UTC)) == 2
        (after,) = store.contributions("c1", status=None)
        assert (after.id, after.pseudonym, after.lon, after.lat) == (kept.id, "anonymised", 24.95, 60.17)
        assert after.created == datetime(2026, 12, 10, tzinfo=UTC) and after.anonymised
        assert (after.text, after.vote, after.reason) == ("Safer streets", "for", "fine")
        assert not store.delete("c1", "h1")  # the deletion code's hash is gone with the pseudonym


def test_deletion_by_code_hash(tmp_path: Path) -> None:
    with ContributionStore(tmp_path / "c.sqlite") as store:
        store.add_many([_queued("a", code="h1")])
        assert not store.delete("other", "h1")  # another consultation's code space
        assert store.delete("c1", "h1")
        assert store.contributions("c1", status=None) == []
