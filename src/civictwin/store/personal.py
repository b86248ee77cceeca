"""The one publishing rule for personal data (GDPR Art. 5(1)(c) and 25: minimisation, by default).

A table's catalogue record says which of its columns hold personal data (``personal_data.fields``)
and whether its geometries are exact home locations (``personal_data.locations``). Whatever is
published from the twin (API features and queryables, vector tiles, exports) asks this module
which columns it may carry: personal columns are withheld from every role, admins included, since
the API and exports are publishing channels; personal data stays in the store, where only those who
hold the store file (its stewards) reach it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from civictwin.errors import StoreError
from civictwin.store.base import Store

PERSONAL_DATA = "personal_data"
"""Key of the personal-data part of a catalogue record."""


def personal_columns(record: Mapping[str, Any] | None) -> frozenset[str]:
    """The columns a catalogue record declares or recognises as personal (none without a record)."""
    part = (record or {}).get(PERSONAL_DATA) or {}
    return frozenset(str(column) for column in part.get("fields") or ())


def holds_home_locations(record: Mapping[str, Any] | None) -> bool:
    """Whether a table's geometries are exact home locations of people (never public)."""
    part = (record or {}).get(PERSONAL_DATA) or {}
    return bool(part.get("locations"))


def publishable(columns: Iterable[str], record: Mapping[str, Any] | None) -> list[str]:
    """``columns`` without the personal ones, in their order."""
    withheld = personal_columns(record)
    return [column for column in columns if column not in withheld]


def read_published(store: Store, table: str) -> pd.DataFrame:
    """The rows of ``table`` as they may leave the twin (exports): every column but the personal ones."""
    info = next((t for t in store.tables() if t.name == table), None)
    if info is None:
        raise StoreError(f"no table '{table}' in this twin")
    record = store.records("catalog").get(table)
    return store.read_table(table, columns=publishable(info.columns, record))
