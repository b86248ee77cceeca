"""A PostGIS twin to and from one ``pg_dump`` archive, for ``civictwin backup`` and ``restore``.

The dump holds the served schema, the ``civictwin`` pointer schema and the schemas of what the
served twin keeps writing (:data:`KEPT_SCHEMAS`: observations, alerts, contributions, proposals,
tokens, those that exist), nothing else of the database (custom format, no owners or grants, so it
restores into another database and role). While
``pg_dump`` runs, the pointer row is share-locked: a build finishing meanwhile waits at its switch
instead of dropping the schema being dumped, so the archive holds one whole twin. A restore goes
only into a database with the postgis extension and no twin yet, in one transaction; should anything
fail, what it created is dropped again. ``pg_dump``/``pg_restore`` (Debian's ``postgresql-client``)
take the password from libpq's environment, ``~/.pgpass`` or a service file, as the store does.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from civictwin.errors import StoreError
from civictwin.store.alerts import ALERT_SCHEMA
from civictwin.store.contributions import CONTRIBUTION_SCHEMA
from civictwin.store.postgis import META_SCHEMA, _check_layout, _check_postgis, _current, connect
from civictwin.store.postgis_observations import OBSERVATION_SCHEMA
from civictwin.store.postgis_tokens import TOKEN_SCHEMA
from civictwin.store.proposals import PROPOSAL_SCHEMA

KEPT_SCHEMAS = (OBSERVATION_SCHEMA, ALERT_SCHEMA, CONTRIBUTION_SCHEMA, PROPOSAL_SCHEMA, TOKEN_SCHEMA)
"""The schemas a served PostGIS twin writes and no build touches, backed up with it (the rate buckets
of ``civictwin_serving`` are not: they are emptied at every start)."""


def dump_twin(dsn: str, target: Path) -> None:
    """Write the twin the database at ``dsn`` serves to ``target`` (``pg_dump`` custom format)."""
    pg_dump = _program("pg_dump")
    con = connect(dsn)
    try:
        _check_postgis(con, dsn)
        if _current(con) is None:
            raise StoreError("the database holds no twin to back up (run civictwin build)", path=dsn)
        with con.transaction():
            row = con.execute("SELECT schema_name, layout FROM civictwin.current FOR SHARE").fetchone()
            if row is None:
                raise StoreError("the database holds no twin to back up (run civictwin build)", path=dsn)
            _check_layout(int(row[1]), dsn)
            kept = [f"--schema={schema}" for schema in _kept_schemas(con)]
            _run(
                [pg_dump, "--format=custom", "--no-owner", "--no-privileges", f"--schema={META_SCHEMA}",
                 f"--schema={row[0]}", *kept, "--strict-names", f"--file={target}", f"--dbname={dsn}"],
                dsn,
            )  # fmt: skip
    finally:
        con.close()


def restore_twin(dsn: str, dump: Path) -> None:
    """Load a :func:`dump_twin` archive into the database at ``dsn``, which must hold no twin yet."""
    pg_restore = _program("pg_restore")
    con = connect(dsn)
    try:
        _check_postgis(con, dsn)
        if _current(con) is not None:
            raise StoreError("the database already holds a twin; restore into an empty one", path=dsn)
        present = _kept_schemas(con)
        if present:
            raise StoreError(
                f"the database already holds the schema {present[0]}; restore into an empty one", path=dsn
            )
        _run(
            [pg_restore, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
             f"--dbname={dsn}", str(dump)],
            dsn,
        )  # fmt: skip
        if _current(con) is None:
            raise StoreError("the backup's database dump holds no twin", path=dsn)
    finally:
        con.close()


def drop_twin(dsn: str) -> None:
    """Remove a twin restored by :func:`restore_twin` again (when the rest of a restore failed)."""
    con = connect(dsn)
    try:
        current = _current(con)
        with con.transaction():
            if current is not None:
                con.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(current[0])))
            for schema in (META_SCHEMA, *KEPT_SCHEMAS):  # none of these was there before the restore
                con.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    finally:
        con.close()


def _kept_schemas(con: psycopg.Connection[Any]) -> list[str]:
    """Which of :data:`KEPT_SCHEMAS` the database holds, in that order."""
    rows = con.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", [list(KEPT_SCHEMAS)])
    found = {str(row[0]) for row in rows}
    return [schema for schema in KEPT_SCHEMAS if schema in found]


def _program(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise StoreError(
            f"{name} not found: install PostgreSQL's client programs (Debian: postgresql-client)"
        )
    return found


def _run(command: list[str], dsn: str) -> None:
    """Run a PostgreSQL client program; its first error line (never a password: none is passed) on failure."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        detail = lines[0] if lines else f"exit code {done.returncode}"
        raise StoreError(f"{Path(command[0]).name} failed: {detail}", path=dsn)
