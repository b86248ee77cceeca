"""Where a twin's store lives, as named by ``[twin] store``: a DuckDB file or a PostGIS database.

A plain value, below everything that opens a store: :mod:`civictwin.store.opening` opens the twin's
store at a location, and the stores written while a twin is served (observations, alerts,
contributions, proposals) find their own file or schema from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from civictwin.config import TwinConfig, is_database_url


@dataclass(frozen=True)
class StoreLocation:
    """Where a twin's store lives: a DuckDB file, or a PostGIS database named by a libpq URI.

    The URI never holds a password (the configuration refuses one): libpq takes it from
    ``PGPASSWORD``, ``~/.pgpass`` or a service file, so it never reaches a log, an error or a record.
    """

    kind: Literal["duckdb", "postgis"]
    path: Path | None = None
    dsn: str | None = None

    @classmethod
    def of_file(cls, path: Path) -> StoreLocation:
        """A DuckDB store file."""
        return cls(kind="duckdb", path=path)

    def describe(self) -> str:
        """The location as shown to people (the file, or the database URI without credentials)."""
        return str(self.path) if self.path is not None else str(self.dsn)


def store_location(config: TwinConfig) -> StoreLocation:
    """The store ``twin.toml`` names (default: the DuckDB file ``<twin dir>/<name>.duckdb``)."""
    value = config.twin.store
    if value is not None and is_database_url(value):
        return StoreLocation(kind="postgis", dsn=value)
    return StoreLocation.of_file(config.store_path)
