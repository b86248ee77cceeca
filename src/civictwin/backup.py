"""Back up a twin into one archive, and restore it into a working twin elsewhere.

A backup is a gzip-compressed tar of the twin directory: ``twin.toml``, the store, the token file
(hashes only), scenarios, comparisons and whatever sources live inside the directory, plus
``BACKUP.json`` listing every file with its size and SHA-256. The audit and security logs go in only
with ``logs=True`` (they hold personal data under their own retention). Files a running build or
comparison is still writing (staging files, locks, partial folders) are left out, and the store is
read through one open file handle, so a rebuild landing meanwhile cannot tear it: the archive holds
the old twin or the new one, whole. The archive itself is written to a temporary name and renamed
into place durably (:mod:`civictwin.durable`).

A restore checks every file against ``BACKUP.json`` before anything is put in place, unpacks into a
staging folder beside the target, checks the store opens, and only then renames the folder to the
target, which must not exist yet: a damaged archive never produces a half-restored twin.

A twin stored in PostGIS is backed up the same way, its database part as ``store.pgdump`` (the served
schema and the pointer, by ``pg_dump``: :mod:`civictwin.store.postgis_dump`). It is restored into
another database, given as ``store`` (one with the postgis extension and no twin yet): the restored
``twin.toml`` is pointed at it, and should anything fail the restored schemas are dropped again.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from civictwin import __version__, durable
from civictwin.config import CONFIG_FILENAME, is_database_url, load_config
from civictwin.errors import CivicTwinError
from civictwin.store.opening import (
    drop_database_twin,
    dump_database,
    open_store,
    restore_database,
    store_location,
)

MANIFEST = "BACKUP.json"
_FORMAT = 1
_TRANSIENT = (".lock", ".building", ".wal", ".tmp", ".partial", ".limits.sqlite")
"""Names of files never archived: work in progress, locks, and the serving workers' rate buckets."""
_LOGS = (".audit.jsonl", ".security.jsonl", ".audit.jsonl.key")
DATABASE_DUMP = "store.pgdump"
"""The archive member holding a PostGIS twin's database part."""


class BackupError(CivicTwinError):
    """A backup cannot be written, or an archive cannot be restored."""


@dataclass(frozen=True)
class BackupSummary:
    """What a backup or restore handled."""

    archive: Path
    twin_dir: Path
    files: int
    bytes: int


def backup_twin(twin_dir: Path, archive: Path, *, logs: bool = False) -> BackupSummary:
    """Write the twin in ``twin_dir`` to the archive ``archive`` (``.tar.gz``)."""
    config = load_config(twin_dir)
    root = config.base_dir
    location = store_location(config)
    if location.dsn is None:
        store = config.store_path.resolve()
        if not store.is_relative_to(root):
            raise BackupError("the store lies outside the twin directory; back it up separately", path=store)
        if not store.is_file():
            raise BackupError("no store to back up (run `civictwin build` first)", path=store)
    if archive.resolve().is_relative_to(root):
        raise BackupError("write the archive outside the twin directory", path=archive)
    members = [p for p in sorted(root.rglob("*")) if p.is_file() and _kept(p.relative_to(root), logs=logs)]
    listed: list[dict[str, Any]] = []
    archive.parent.mkdir(parents=True, exist_ok=True)
    with durable.atomic_path(archive) as partial, tarfile.open(partial, "w:gz") as tar:
        if location.dsn is not None:
            listed.append(_add_dump(tar, location.dsn, partial.parent))
        for path in members:
            listed.append(_add(tar, path, path.relative_to(root).as_posix()))
        manifest = {"format": _FORMAT, "civictwin": __version__, "created": _now(), "files": listed}
        data = json.dumps(manifest, indent=1).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return BackupSummary(archive, root, len(listed), sum(int(f["bytes"]) for f in listed))


def _kept(relative: Path, *, logs: bool) -> bool:
    name = relative.name
    if any(part.startswith(".") for part in relative.parts) or any(t in name for t in _TRANSIENT):
        return False
    return logs or not any(name.endswith(s) or ".audit." in name or ".security." in name for s in _LOGS)


def _add(tar: tarfile.TarFile, path: Path, name: str) -> dict[str, Any]:
    """Add one file read through a single handle (a consistent copy even if it is replaced meanwhile)."""
    with open(path, "rb") as handle:
        data = handle.read()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600 if name.endswith(".tokens.json") else 0o644
    info.mtime = int(path.stat().st_mtime)
    tar.addfile(info, io.BytesIO(data))
    return {"path": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _add_dump(tar: tarfile.TarFile, dsn: str, scratch: Path) -> dict[str, Any]:
    """Add the PostGIS twin's dump (written beside the archive first, then removed)."""
    dump = scratch / f".{DATABASE_DUMP}.{uuid.uuid4().hex[:8]}.partial"
    try:
        dump_database(dsn, dump)
        return _add(tar, dump, DATABASE_DUMP)
    finally:
        dump.unlink(missing_ok=True)


def restore_twin(archive: Path, twin_dir: Path, *, store: str | None = None) -> BackupSummary:
    """Unpack ``archive`` into the new directory ``twin_dir`` after checking every file and the store.

    A backup of a PostGIS twin needs ``store``, the URI of the database to restore it into.
    """
    if twin_dir.exists():
        raise BackupError("the restore target already exists; choose a new directory", path=twin_dir)
    if not archive.is_file():
        raise BackupError("no such backup archive", path=archive)
    twin_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = twin_dir.with_name(f".{twin_dir.name}.restoring-{uuid.uuid4().hex[:8]}")
    try:
        total, count = _unpack(archive, staging)
        if (staging / DATABASE_DUMP).is_file():
            _restore_database(staging, store)
        elif store is not None:
            raise BackupError("this backup holds a DuckDB store, not a database to restore into --store")
        else:
            _check_twin(staging)
        staging.rename(twin_dir)
        durable.sync_directory(twin_dir.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BackupSummary(archive, twin_dir, count, total)


def _unpack(archive: Path, staging: Path) -> tuple[int, int]:
    """Write every listed file under ``staging``, checked against the manifest; (bytes, files)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            manifest = _manifest(tar, archive)
            expected = {f["path"]: f for f in manifest["files"]}
            written = 0
            for member in tar.getmembers():
                if member.name == MANIFEST:
                    continue
                entry = expected.pop(_safe(member.name, archive), None)
                handle = tar.extractfile(member) if member.isfile() else None
                if entry is None or handle is None:
                    raise BackupError(f"unexpected member {member.name[:120]!r}", path=archive)
                data = handle.read()
                if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                    raise BackupError(f"{member.name}: checksum mismatch (damaged archive)", path=archive)
                target = staging / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                target.chmod(member.mode & 0o777)
                durable.sync_file(target)
                written += len(data)
    except (tarfile.TarError, OSError, EOFError, KeyError, TypeError, ValueError) as exc:
        raise BackupError(f"unreadable backup archive ({type(exc).__name__}: {exc})", path=archive) from None
    if expected:
        raise BackupError(
            f"files missing from the archive: {', '.join(sorted(expected))[:300]}", path=archive
        )
    return written, len(manifest["files"])


def _manifest(tar: tarfile.TarFile, archive: Path) -> dict[str, Any]:
    member = tar.extractfile(MANIFEST)
    if member is None:
        raise BackupError(f"not a civictwin backup (no {MANIFEST})", path=archive)
    manifest: dict[str, Any] = json.loads(member.read())
    if manifest.get("format") != _FORMAT:
        raise BackupError(f"unknown backup format {manifest.get('format')!r}", path=archive)
    return manifest


def _safe(name: str, archive: Path) -> str:
    """``name`` if it stays inside the twin directory (no absolute path, no ``..``)."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise BackupError(f"unsafe path in archive: {name[:120]!r}", path=archive)
    return name


def _check_twin(directory: Path) -> None:
    """The restored twin's configuration parses and its store opens."""
    if not (directory / CONFIG_FILENAME).is_file():
        raise BackupError(f"the archive holds no {CONFIG_FILENAME}")
    config = load_config(directory)
    with open_store(config):
        pass


def _restore_database(staging: Path, store: str | None) -> None:
    """Load the dump into ``store`` and point the restored twin.toml at it (dropped again on failure)."""
    if store is None or not is_database_url(store):
        raise BackupError(
            "this backup holds a PostGIS twin: give --store, the postgresql:// URI of an empty database "
            "with the postgis extension, to restore it into"
        )
    config_file = staging / CONFIG_FILENAME
    _point_at(config_file, store)  # checks the URI holds no password before anything is loaded
    restore_database(store, staging / DATABASE_DUMP)
    try:
        (staging / DATABASE_DUMP).unlink()
        _check_twin(staging)
    except BaseException:
        drop_database_twin(store)
        raise


def _point_at(config_file: Path, store: str) -> None:
    """Rewrite ``[twin] store`` of the restored twin.toml to the database it is restored into."""
    old = load_config(config_file.parent).twin.store
    text = config_file.read_text(encoding="utf-8")
    quoted = [q for q in (f'"{old}"', f"'{old}'") if text.count(q) == 1]
    if old is None or len(quoted) != 1:
        raise BackupError("cannot find the one [twin] store value to point at --store", path=config_file)
    config_file.write_text(text.replace(quoted[0], json.dumps(store)), encoding="utf-8")
    load_config(config_file.parent)  # a password in the new URI is refused here, in one line


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
