"""Personal data in the twin's tables (GDPR): declared in ``twin.toml`` or recognised, recorded once.

After a build has written every table, :func:`mark_personal` gives each catalogue record a
``personal_data`` part (which columns are personal, the legal basis, the retention period, whether
the geometries are exact home locations) that :mod:`civictwin.store.personal` enforces everywhere
the twin publishes. A column is personal when its source declares it (``personal``), when a table it
was derived from had a personal column of that name, or when it is *recognised*: its name looks
like a person's name, a phone number, an e-mail address or a survey's device or account identifier
(:data:`NAME_PATTERNS`), or most of a
sample of its text values look like e-mail addresses or phone numbers (:data:`VALUE_PATTERNS`).
Recognised columns are flagged in the quality report and stay personal unless the source lists
them in ``not_personal``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from civictwin.catalog.metadata import CATALOG
from civictwin.catalog.quality import QUALITY
from civictwin.config import CONFIG_FILENAME, REMOTE_KINDS, AccessLevel, SourceConfig, SourceKind, TwinConfig
from civictwin.errors import ConfigError
from civictwin.store.base import GEOMETRY, Store
from civictwin.store.personal import PERSONAL_DATA

SAMPLE_ROWS = 1000
"""Text values read per column to recognise e-mail addresses and phone numbers."""
VALUE_SHARE = 0.5
"""A column is recognised by its values when at least this share of its non-empty sampled values match."""

# Column names, lower-cased, as whole names or after a prefix ending in "_" (owner_phone, contact_email).
NAME_PATTERNS: dict[str, re.Pattern[str]] = {
    "a person's name": re.compile(
        r"^(?:.*_)?(?:(?:first|last|given|family|full|owner|contact|person|resident|tenant|occupant)_?name"
        r"|surname|forename)s?$"
    ),
    "a phone number": re.compile(r"^(?:.*_)?(?:phone|telephone|tel|mobile|gsm|fax)(?:_?(?:number|no|nr))?$"),
    "an e-mail address": re.compile(r"^(?:.*_)?e_?mail(?:_?address)?$"),
    # survey exports (ODK Central, KoboToolbox, XLSForm metadata): who or which device submitted
    "a device or account identifier": re.compile(
        r"^(?:.*_)?(?:device_?id|imei|imsi|sim_?serial|subscriber_?id|submitter(?:_?(?:id|name))?"
        r"|submitted_by|user_?name)$"
    ),
}
# Whole text values: an e-mail address; an international phone number (+ or 00, then 7 to 19 digits and
# separators); a national one (0, area code, a space, dash or slash, then at least 5 digits).
VALUE_PATTERNS: dict[str, re.Pattern[str]] = {
    "e-mail addresses": re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.IGNORECASE),
    "phone numbers": re.compile(
        r"^(?:(?:\+|00)[1-9][0-9 ().\-/]{6,18}|0[1-9][0-9]{0,4}[ \-/][0-9]{5,}(?:[ \-][0-9]{2,})*)$"
    ),
}


def recognised_by_name(columns: Iterable[str]) -> dict[str, str]:
    """Columns whose name looks personal, each with the reason (``looks like a phone number``)."""
    found: dict[str, str] = {}
    for column in columns:
        for what, pattern in NAME_PATTERNS.items():
            if pattern.match(column.lower()):
                found[column] = f"its name looks like {what}"
                break
    return found


def recognised_by_values(sample: Mapping[str, Sequence[Any]]) -> dict[str, str]:
    """Text columns whose sampled values mostly look like e-mail addresses or phone numbers."""
    found: dict[str, str] = {}
    for column, values in sample.items():
        texts = [str(v).strip() for v in values if isinstance(v, str) and v.strip()]
        if not texts:
            continue
        for what, pattern in VALUE_PATTERNS.items():
            share = sum(bool(pattern.match(text)) for text in texts) / len(texts)
            if share >= VALUE_SHARE:
                found[column] = f"{share:.0%} of {len(texts)} sampled values look like {what}"
                break
    return found


def mark_personal(store: Store, config: TwinConfig) -> None:
    """Give every catalogued table its ``personal_data`` part and flag recognised columns in its quality."""
    sources = {source.name: source for source in config.sources}
    catalogue = store.records(CATALOG)
    tables = {info.name: info.columns for info in store.tables()}
    origins: dict[str, list[SourceConfig]] = {}
    for table, record in catalogue.items():
        if table not in tables:
            continue
        found = _origins(table, catalogue, sources, origins)
        if "inputs" not in record:
            _check_declared(config, table, tables[table], found)
        part = _personal_part(store, table, tables[table], record, found)
        if part is not None:
            # home locations: restricted in the catalogue too (the access rule enforces it regardless)
            access = {"access": AccessLevel.RESTRICTED.value} if part["locations"] else {}
            store.put_record(CATALOG, table, {**record, **access, PERSONAL_DATA: part})
            _flag_in_quality(store, table, part)


def _check_declared(
    config: TwinConfig, table: str, columns: Mapping[str, str], found: list[SourceConfig]
) -> None:
    """Refuse a declared personal column a vector, survey or API source's table lacks (a typo would publish the real one).

    Columns the source's ``columns`` option leaves out are not stored, hence fine; those that became the
    geometry (``x``, ``y``, ``wkt``) belong to ``personal_locations`` instead. Grids keep numeric
    columns only, and 3D city models hold attributes as JSON, so neither is checked here.
    """
    for source in found:
        if source.kind not in (SourceKind.VECTOR, SourceKind.SURVEY) and source.kind not in REMOTE_KINDS:
            continue
        geometry = {source.x, source.y, source.wkt}
        missing = [
            c
            for c in source.personal
            if c not in columns and c not in geometry and (source.columns is None or c in source.columns)
        ]
        if missing:
            available = ", ".join(c for c in columns if c != GEOMETRY) or "(none)"
            raise ConfigError(
                f"names column(s) {', '.join(missing)}, which table '{table}' does not have; available: {available}",
                path=config.resolve(CONFIG_FILENAME),
                field=f"sources.{source.name}.personal",
            )


def _origins(
    table: str,
    catalogue: Mapping[str, Mapping[str, Any]],
    sources: Mapping[str, SourceConfig],
    memo: dict[str, list[SourceConfig]],
) -> list[SourceConfig]:
    """The configured sources ``table`` was read or derived from (in first-seen order)."""
    if table in memo:
        return memo[table]
    memo[table] = []  # a cycle in the records must not recurse forever
    record = catalogue.get(table) or {}
    names = [credit["name"] for credit in record.get("sources") or [record.get("source") or {}] if credit]
    found = [sources[name] for name in names if name in sources]
    for parent in record.get("inputs") or []:
        found.extend(s for s in _origins(parent, catalogue, sources, memo) if s not in found)
    memo[table] = found
    return found


def _personal_part(
    store: Store, table: str, columns: Mapping[str, str], record: Mapping[str, Any], found: list[SourceConfig]
) -> dict[str, Any] | None:
    """The ``personal_data`` part of ``table``'s record, or None when it holds no personal data."""
    own = "inputs" not in record  # read from a source, not derived
    # a source's own tables keep every declared name: a 3D city model's attributes are JSON, not columns
    declared = {c for s in found for c in s.personal if own or c in columns}
    waived = {c for s in found for c in s.not_personal}
    text_columns = [c for c, t in columns.items() if t == "VARCHAR" and c not in declared]
    sample = store.sample_rows(table, columns=text_columns, limit=SAMPLE_ROWS) if text_columns else None
    recognised = {
        **(recognised_by_values({c: sample[c].tolist() for c in text_columns}) if sample is not None else {}),
        **recognised_by_name(c for c in columns if c not in declared),
    }
    recognised = {c: why for c, why in sorted(recognised.items()) if c not in waived}
    locations = own and any(s.personal_locations for s in found)
    if not (declared or recognised or locations):
        return None
    holders = [s for s in found if s.personal or s.personal_locations]
    bases = list(dict.fromkeys(s.legal_basis for s in holders if s.legal_basis))
    retention = [s.retention_days for s in holders if s.retention_days is not None]
    return {
        "fields": sorted(declared | set(recognised)),
        "declared": sorted(declared),
        "recognised": recognised,
        "locations": locations,
        "legal_basis": "; ".join(bases) or None,
        "retention_days": min(retention, default=None),
    }


def _flag_in_quality(store: Store, table: str, part: Mapping[str, Any]) -> None:
    """Name the recognised personal columns in ``table``'s quality record, with what to do about them."""
    if not part["recognised"]:
        return
    record = dict(store.records(QUALITY).get(table) or {"table": table, "notes": []})
    record["personal_recognised"] = dict(part["recognised"])
    notes = [
        f"column '{column}' treated as personal data ({why}) and never published; "
        "declare it in the source's `personal` (with legal_basis and retention_days) or `not_personal`"
        for column, why in part["recognised"].items()
    ]
    record["notes"] = [*record.get("notes", []), *notes]
    store.put_record(QUALITY, table, record)
