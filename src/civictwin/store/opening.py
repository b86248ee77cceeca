"""The one place a twin's store is opened: ``[twin] store`` names a DuckDB file or a PostGIS database.

Everything else (the build, the CLI, the API, the engines) asks this module for a :class:`Store`
and never names a backend. Each store carries a *version marker* (``meta``/``version``: a random id
and the time), replaced by every write, so each build gives the store a new one; caches and the
API's reload key on it rather than on file stats, so they work the same whether the twin is a file
or a database schema. :class:`StoreLocation` and :func:`store_location` live below, in
:mod:`civictwin.store.location` (the stores written while a twin is served need them too), and are
named here as well for whoever opens a store.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from civictwin.config import TwinConfig
from civictwin.errors import StoreError
from civictwin.memory import BuildMemory
from civictwin.store.base import Store, version_of
from civictwin.store.location import StoreLocation as StoreLocation
from civictwin.store.location import store_location as store_location

if TYPE_CHECKING:
    from civictwin.store.features import FeatureSource
    from civictwin.store.postgis import SchemaWatch
    from civictwin.store.tiles import TileSource


def open_store(location: StoreLocation | TwinConfig) -> Store:
    """The built store at ``location`` (or the one a twin's configuration names), read-only."""
    where = _located(location)
    if where.dsn is not None:
        from civictwin.store.postgis import PostGISStore

        return PostGISStore.open(where.dsn)
    from civictwin.store.duckdb import DuckDBStore

    return DuckDBStore.open(_file(where), read_only=True)


@contextmanager
def build_store(
    location: StoreLocation | TwinConfig,
    *,
    crs: str,
    memory: BuildMemory | None = None,
    local_reads: bool = False,
) -> Iterator[Store]:
    """A fresh store that replaces the one at ``location`` atomically when the block succeeds.

    A failed or interrupted build leaves the previous twin untouched and served. ``memory``: the
    build's budget, which an embedded store's connection works within (a PostGIS server has its own).
    ``local_reads`` (with ``memory``): a PostGIS store also keeps a local copy of what is written to
    it, from which the build reads it back (:mod:`civictwin.store.mirror`) instead of through the server.
    """
    where = _located(location)
    from civictwin.store.duckdb import out_of_room

    try:
        if where.dsn is not None:
            from civictwin.store.postgis import build_store as build_postgis

            with build_postgis(where.dsn, crs=crs) as built:
                if local_reads and memory is not None:
                    from civictwin.store.mirror import mirrored

                    with mirrored(built, memory=memory) as mirror:
                        yield mirror
                else:
                    yield built
            return
        from civictwin.store.duckdb import build_store as build_duckdb

        with build_duckdb(_file(where), crs=crs, memory=memory) as store:
            yield store
    except Exception as exc:
        reason = out_of_room(exc) or _server_disk_full(exc)
        if reason is None:
            raise
        raise StoreError(
            f"the build stopped: {reason}; the twin being served is unchanged", path=where.describe()
        ) from None


def _server_disk_full(exc: BaseException) -> str | None:
    """Why ``exc`` means the PostGIS server's disk is full (SQLSTATE 53100), or None."""
    if getattr(exc, "sqlstate", None) == "53100":
        return "the database server's disk is full"
    return None


def open_published(location: StoreLocation) -> Store:
    """The store at ``location`` opened for serving (with room for the tables derived for tiles)."""
    if location.dsn is not None:
        return open_store(location)
    from civictwin.store.features import open_published as open_duckdb

    return open_duckdb(_file(location))


def publishing(store: Store) -> tuple[FeatureSource, TileSource]:
    """Feature pages and vector tiles over a store from :func:`open_published`, for its backend."""
    from civictwin.store.duckdb import DuckDBStore

    if isinstance(store, DuckDBStore):
        from civictwin.store.features import FeatureReader
        from civictwin.store.tiles import TileRenderer

        reader = FeatureReader(store)
        return reader, TileRenderer(reader, crs=store.crs)
    from civictwin.store.postgis import PostGISStore
    from civictwin.store.postgis_publish import PostGISFeatureReader, PostGISTileRenderer

    if not isinstance(store, PostGISStore):
        raise StoreError(f"cannot publish a {type(store).__name__}")
    features = PostGISFeatureReader(store)
    return features, PostGISTileRenderer(features)


def dump_database(dsn: str, target: Path) -> None:
    """Write the twin a PostGIS database serves to ``target`` (a ``pg_dump`` archive)."""
    from civictwin.store.postgis_dump import dump_twin

    dump_twin(dsn, target)


def restore_database(dsn: str, dump: Path) -> None:
    """Load a :func:`dump_database` archive into the PostGIS database ``dsn`` (which holds no twin)."""
    from civictwin.store.postgis_dump import restore_twin

    restore_twin(dsn, dump)


def drop_database_twin(dsn: str) -> None:
    """Remove the twin :func:`restore_database` loaded into ``dsn`` (a restore that failed later)."""
    from civictwin.store.postgis_dump import drop_twin

    drop_twin(dsn)


def store_version(location: StoreLocation | TwinConfig) -> str:
    """The version marker of the store at ``location`` now (the store is opened to read it)."""
    with open_store(location) as store:
        return version_of(store)


class VersionProbe:
    """The version of the store now at a location, read cheaply and often (once per API request).

    For a DuckDB file, the marker is read again only when the file's identity (inode, modification
    time) changed since the last look: a rebuild renames a new file into place. A file that cannot be
    opened gets a version naming its identity, so that the API refuses it once and logs it once. For
    PostGIS, one query over a held connection asks which schema is served, and the marker is read
    again only when that changed (a build switched to a new schema); a database that cannot be
    reached is the version ``unreachable``, which the API refuses once and logs (and serves on).
    """

    def __init__(self, location: StoreLocation) -> None:
        self._location = location
        self._seen: tuple[object, str] | None = None
        self._schemas: SchemaWatch | None = None

    def current(self) -> str | None:
        """The version of the store now there; None when there is none."""
        if self._location.dsn is not None:
            return self._current_in_database(self._location.dsn)
        path = _file(self._location)
        try:
            stat = path.stat()
        except OSError:
            return None
        return self._version_at((stat.st_ino, stat.st_mtime_ns), f"{stat.st_ino}-{stat.st_mtime_ns}")

    def _current_in_database(self, dsn: str) -> str | None:
        if self._schemas is None:
            from civictwin.store.postgis import SchemaWatch

            self._schemas = SchemaWatch(dsn)
        try:
            schema = self._schemas.current()
        except StoreError:  # the API refuses this "version" once, logs why and keeps serving
            return "unreachable"
        if schema is None:
            return None
        return self._version_at(schema, schema)

    def _version_at(self, identity: object, label: str) -> str:
        """The marker of the store whose identity (file inode and time, or served schema) is
        ``identity``: read again only when that changed; ``unreadable-<label>`` when it cannot be."""
        if self._seen is not None and self._seen[0] == identity:
            return self._seen[1]
        try:
            with open_store(self._location) as store:
                version = version_of(store)
        except StoreError:
            version = f"unreadable-{label}"
        self._seen = (identity, version)
        return version


def _located(location: StoreLocation | TwinConfig) -> StoreLocation:
    return location if isinstance(location, StoreLocation) else store_location(location)


def _file(location: StoreLocation) -> Path:
    if location.path is None:
        raise StoreError("not a DuckDB store", path=location.describe())
    return location.path
