"""Dataset access levels from the catalogue, and the one rule deciding who may read a dataset.

public: anyone, anonymous included; internal: any valid token; restricted: admins and the stewards
named on their token. A dataset without a catalogue record, or with an unknown access value, counts as
restricted: access fails closed. A dataset whose geometries are exact home locations of people
(``personal_locations`` in ``twin.toml``) is restricted whatever its configured level: the public
sees such data only aggregated, in the tables derived from it (zones).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from civictwin.config import AccessLevel
from civictwin.governance.tokens import Principal, Role
from civictwin.store.personal import holds_home_locations


def access_levels(
    catalog: Mapping[str, Mapping[str, Any]], datasets: Iterable[str]
) -> dict[str, AccessLevel]:
    """The access level of each dataset, read from its catalogue record (restricted when absent)."""
    return {name: _level(catalog.get(name)) for name in datasets}


def _level(record: Mapping[str, Any] | None) -> AccessLevel:
    if holds_home_locations(record):
        return AccessLevel.RESTRICTED
    value = record.get("access") if record else None
    try:
        return AccessLevel(str(value))
    except ValueError:
        return AccessLevel.RESTRICTED


def can_read(principal: Principal, dataset: str, level: AccessLevel) -> bool:
    """Whether ``principal`` may read ``dataset`` at access ``level``."""
    role = principal.role
    if level is AccessLevel.PUBLIC or role is Role.ADMIN:
        return True
    if level is AccessLevel.INTERNAL:
        return role is not None
    return role is Role.STEWARD and dataset in principal.stewarded


@dataclass(frozen=True)
class AccessPolicy:
    """The access levels of one twin's datasets, asked per principal."""

    levels: Mapping[str, AccessLevel]

    def readable(self, principal: Principal) -> frozenset[str]:
        """Every dataset ``principal`` may read."""
        return frozenset(name for name, level in self.levels.items() if can_read(principal, name, level))

    def allows(self, principal: Principal, dataset: str) -> bool:
        """Whether ``principal`` may read ``dataset`` (unknown datasets: never)."""
        level = self.levels.get(dataset)
        return level is not None and can_read(principal, dataset, level)
