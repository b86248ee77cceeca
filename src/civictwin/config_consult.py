"""The ``[[consultations]]`` part of ``twin.toml``: when a published comparison takes contributions.

A comparison's public page (docs/consultation.md) is always readable; it takes comments and votes
only when a ``[[consultations]]`` block names it, between its ``opens`` and ``closes`` instants.

```toml
[[consultations]]
comparison = "2026-11-30-zone30"          # the comparison's id under runs/
opens = 2026-12-01T08:00:00+02:00         # TOML date-times with an offset (a bare date: 00:00 UTC)
closes = 2027-01-15T23:59:00+02:00
themes = ["safety", "noise", "parking", "other"]
retention_days = 180                      # identifiers and exact places dropped this long after a contribution
moderation_days = 14                      # moderators may decide pending contributions this long after closing
survey_categories = ["pothole", "crossing", "lighting"]   # the viewer's survey form (none: no form)
survey_photo_max_bytes = 8388608          # largest photo the survey form accepts (bytes)
```
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_THEME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
DEFAULT_CONSENT = (
    "I agree that my comment and vote are stored by the city for this consultation, shown publicly "
    "under a random pseudonym once a moderator approves them, and counted in the report to the council. "
    "No name, e-mail or address is asked for; no cookies or trackers are used. I can delete my "
    "contribution with the deletion code I am given; after the retention period it is anonymised."
)

DEFAULT_SURVEY_CONSENT = (
    "I agree that my observation (its place, category, text and photo) is stored by the city for this "
    "consultation and shown publicly on the map once a moderator approves it, without my name. The "
    "photo's hidden data (location, camera, time) is removed before it is stored. No name, e-mail or "
    "address is asked for; no cookies or trackers are used. I can delete my observation with the "
    "deletion code I am given; after the retention period its place is made approximate."
)
MAX_SURVEY_PHOTO_BYTES = 25 * 1024 * 1024
"""The most ``survey_photo_max_bytes`` may be (25 MiB, the survey import's own photo limit)."""


class ConsultationConfig(BaseModel):
    """One consultation: the comparison it is about, when it is open, its themes, how long data is kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    comparison: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", description="The comparison's id")
    opens: datetime = Field(description="When contributions are first accepted (UTC when no offset)")
    closes: datetime = Field(description="When contributions and moderation stop (UTC when no offset)")
    themes: Annotated[list[str], Field(min_length=1, max_length=20)] = Field(
        default_factory=lambda: ["general"], description="The themes a contributor chooses from"
    )
    retention_days: Annotated[int, Field(ge=1, le=3650)] = Field(
        default=180,
        description="Days after a contribution when its pseudonym, deletion code and exact place go",
    )
    consent: Annotated[str, Field(min_length=20, max_length=2000)] = Field(
        default=DEFAULT_CONSENT, description="The consent text a contributor must accept"
    )
    moderation_days: Annotated[int, Field(ge=0, le=365)] = Field(
        default=14,
        description="Days after closing during which moderators may still decide pending contributions",
    )
    contributions_per_hour: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=20, description="Contributions (and deletions) one source may send per hour"
    )
    proof_of_work_bits: Annotated[int, Field(ge=0, le=24)] = Field(
        default=16, description="Leading zero bits of SHA-256 a contribution's proof of work needs"
    )
    proposals: bool = Field(
        default=False, description="Whether residents may also propose scenarios of their own ([proposals])"
    )
    proposals_per_hour: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=3, description="Proposals (and their deletions) one source (client address) may send per hour"
    )
    survey_categories: Annotated[list[str], Field(max_length=30)] = Field(
        default_factory=list,
        description="The categories of the viewer's survey form (lower-case words); none: no survey form",
    )
    survey_consent: Annotated[str, Field(min_length=20, max_length=2000)] = Field(
        default=DEFAULT_SURVEY_CONSENT, description="The consent text a survey observer must accept"
    )
    survey_photo_max_bytes: Annotated[int, Field(ge=10_000, le=MAX_SURVEY_PHOTO_BYTES)] = Field(
        default=8 * 1024 * 1024, description="Largest photo the survey form accepts (bytes)"
    )

    @field_validator("opens", "closes", mode="before")
    @classmethod
    def _instant(cls, value: object) -> object:
        """A bare TOML date is midnight UTC; a date-time without an offset is UTC."""
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime.combine(value, time(0, 0), tzinfo=UTC)
        return value

    @field_validator("opens", "closes")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @field_validator("themes", "survey_categories")
    @classmethod
    def _themes(cls, value: list[str]) -> list[str]:
        bad = [t for t in value if not _THEME_PATTERN.match(t)]
        if bad:
            raise ValueError(f"theme(s) {', '.join(map(repr, bad))}: expected lower-case words like 'noise'")
        if len(set(value)) != len(value):
            raise ValueError("a word is listed twice")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> ConsultationConfig:
        if self.closes <= self.opens:
            raise ValueError("closes must be after opens")
        return self

    def is_open(self, now: datetime) -> bool:
        """Whether contributions are accepted at ``now`` (opens inclusive, closes exclusive)."""
        return self.opens <= now < self.closes


class ProposalsSection(BaseModel):
    """``[proposals]``: how citizen proposals run (docs/consultation.md#citizen-proposals): at most
    ``concurrent_runs`` at once and ``runs_per_day`` started per UTC day, with the consultation's seeds
    (at most ``max_seeds``) and ``settings`` passed to the engines as ``civictwin compare --set`` does."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrent_runs: Annotated[int, Field(ge=1, le=8)] = Field(
        default=1, description="Proposal runs at the same time (each a `civictwin compare` process)"
    )
    runs_per_day: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=5, description="Proposal runs started per UTC day; further approved ones wait for the next"
    )
    max_seeds: Annotated[int, Field(ge=1, le=100)] | None = Field(
        default=None, description="At most this many seeds per run (default: the comparison's seeds)"
    )
    workers: Annotated[int, Field(ge=1, le=64)] = Field(default=2, description="Seed processes per run")
    seed_timeout_s: Annotated[float, Field(gt=0, le=86_400)] = Field(
        default=3600.0, description="Seconds one seed may run before the run fails"
    )
    max_interventions: Annotated[int, Field(ge=1, le=50)] = Field(
        default=10, description="Interventions one proposal may hold"
    )
    types: list[str] | None = Field(
        default=None,
        description="The intervention types offered (default: every installed type drawn on the map)",
    )
    settings: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Engine parameter overrides for proposal runs, e.g. {traffic = {iterations = 2}}",
    )


def check_unique_consultations(consultations: list[ConsultationConfig]) -> None:
    """One block per comparison (raises ``ValueError`` naming the duplicates)."""
    names = [c.comparison for c in consultations]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"consultations: comparison(s) configured twice: {', '.join(dupes)}")
