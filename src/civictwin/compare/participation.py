"""Comments and votes on a consultation, as plain data: proof of work, pseudonyms, deletion codes,
counts per scenario and theme, and the council's CSV and GeoJSON exports (docs/consultation.md).

Proof of work (hashcash style) instead of a CAPTCHA: no third-party service, no tracking, nothing a
screen reader cannot pass. The server hands out a challenge signed with HMAC-SHA256 (so it keeps no
state until it is used) naming the consultation and when it expires; the browser finds a ``nonce``
such that SHA-256 of ``challenge:nonce`` starts with ``bits`` zero bits (2^bits hashes on average,
about a second in a browser at 16 bits), and each challenge buys one contribution. A person pays
once per contribution; a bot sending thousands pays thousands of times.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from civictwin.store.contributions import Contribution

CHALLENGE_LIFETIME_S = 600
"""How long a proof-of-work challenge may be used after it was handed out (s)."""
_PSEUDONYM_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
EXPORT_COLUMNS = ("id", "scenario", "theme", "vote", "text", "lon", "lat", "date")
COUNT_COLUMNS = ("scenario", "theme", "contributions", "comments", "votes_for", "votes_against")


def pseudonym() -> str:
    """A random pseudonym such as ``Resident K7Q2XM`` (30 random bits; linked to nothing)."""
    return "Resident " + "".join(secrets.choice(_PSEUDONYM_ALPHABET) for _ in range(6))


def deletion_code() -> str:
    """A code the contributor keeps to delete their contribution (256 random bits)."""
    return "del_" + secrets.token_urlsafe(32)


def code_hash(code: str) -> str:
    """What is stored of a deletion code: its hex SHA-256 (the code has 256 random bits: no salt needed)."""
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Challenge:
    """A proof-of-work challenge: its text, the zero bits wanted, and when it expires (Unix seconds)."""

    text: str
    bits: int
    expires: float


def issue_challenge(key: bytes, consultation: str, *, bits: int, now: datetime) -> Challenge:
    """A fresh challenge for ``consultation``, signed with ``key``."""
    expires = int(now.timestamp()) + CHALLENGE_LIFETIME_S
    body = f"{consultation}.{expires}.{bits}.{secrets.token_hex(12)}"
    return Challenge(text=f"{body}.{_sign(key, body)}", bits=bits, expires=float(expires))


def check_proof(
    key: bytes, consultation: str, challenge: str, nonce: str, *, bits: int, now: datetime
) -> Challenge:
    """The challenge behind a valid proof; ``ValueError`` saying what is wrong otherwise."""
    body, _, signature = challenge.rpartition(".")
    parts = body.split(".")
    if len(parts) < 4 or not hmac.compare_digest(_sign(key, body), signature):
        raise ValueError("the proof-of-work challenge is not one this server handed out")
    *name, expires, wanted, _ = parts
    if ".".join(name) != consultation:
        raise ValueError("the proof-of-work challenge is for another consultation")
    if int(expires) < now.timestamp():
        raise ValueError("the proof-of-work challenge expired; ask for a new one")
    if int(wanted) < bits:
        raise ValueError("the proof-of-work challenge is too easy; ask for a new one")
    if not (0 < len(nonce) <= 32 and nonce.isdigit()):
        raise ValueError("nonce: expected up to 32 digits")
    if leading_zero_bits(hashlib.sha256(f"{challenge}:{nonce}".encode()).digest()) < bits:
        raise ValueError("the proof of work does not solve the challenge")
    return Challenge(text=challenge, bits=int(wanted), expires=float(expires))


def solve(challenge: str, bits: int) -> str:
    """A nonce solving ``challenge`` (what the browser does; used by the tests and the benchmark)."""
    nonce = 0
    while leading_zero_bits(hashlib.sha256(f"{challenge}:{nonce}".encode()).digest()) < bits:
        nonce += 1
    return str(nonce)


def leading_zero_bits(digest: bytes) -> int:
    """How many zero bits ``digest`` starts with."""
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def _sign(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:32]


def counts(
    contributions: Iterable[Contribution], *, scenarios: Sequence[str], themes: Sequence[str]
) -> list[dict[str, object]]:
    """Per scenario and theme (every pair, zeros included, in the given order): contributions, comments
    (with text), votes for and against."""
    tally: Counter[tuple[str, str, str]] = Counter()
    for c in contributions:
        tally[(c.scenario, c.theme, "contributions")] += 1
        tally[(c.scenario, c.theme, "comments")] += bool(c.text)
        if c.vote is not None:
            tally[(c.scenario, c.theme, f"votes_{c.vote}")] += 1
    return [
        {"scenario": s, "theme": t, **{k: tally[(s, t, k)] for k in COUNT_COLUMNS[2:]}}
        for s in scenarios
        for t in themes
    ]


def votes_per_scenario(
    contributions: Iterable[Contribution], scenarios: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Per scenario: votes for, against, and comments."""
    found = {s: {"for": 0, "against": 0, "comments": 0} for s in scenarios}
    for c in contributions:
        entry = found.setdefault(c.scenario, {"for": 0, "against": 0, "comments": 0})
        if c.vote is not None:
            entry[c.vote] += 1
        entry["comments"] += bool(c.text)
    return found


def export_row(c: Contribution) -> dict[str, object]:
    """One approved contribution as the council gets it: no pseudonym, no time of day."""
    return {"id": c.id, "scenario": c.scenario, "theme": c.theme, "vote": c.vote or "", "text": c.text,
            "lon": c.lon, "lat": c.lat, "date": c.created.date().isoformat()}  # fmt: skip


def to_csv(rows: Sequence[dict[str, object]], columns: Sequence[str]) -> str:
    """Rows as CSV (RFC 4180, a header line); a cell a spreadsheet would run as a formula is prefixed
    with ``'`` (OWASP CSV injection)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row[k]) for k in columns})
    return buffer.getvalue()


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_geojson(approved: Sequence[Contribution], tally: list[dict[str, object]], consultation: str) -> str:
    """Approved contributions as a GeoJSON FeatureCollection (those without a point have a null
    geometry), with the counts per scenario and theme as the foreign member ``counts``."""
    features = [
        {
            "type": "Feature",
            "id": c.id,
            "geometry": None
            if c.lon is None or c.lat is None
            else {"type": "Point", "coordinates": [c.lon, c.lat]},
            "properties": {k: v for k, v in export_row(c).items() if k not in ("lon", "lat")},
        }
        for c in approved
    ]
    collection = {
        "type": "FeatureCollection",
        "consultation": consultation,
        "counts": tally,
        "features": features,
    }
    return json.dumps(collection, ensure_ascii=False)
