"""The store's SQLite connection: opening, pragmas, migrations, transactions.

:meth:`StoreConnection.open` refuses a file that is not twinplane's or that a newer release
wrote (both left byte for byte untouched), then sets WAL mode, ``synchronous=FULL``, foreign keys,
the page cache and checkpoint sizes, and applies the schema's missing steps
(:mod:`twinplane.edge.store.migrations`). Every table's methods (``objects.py``, ``mappers.py``,
``twins.py``, ``states.py``, ``outbox.py``) run on it: one transaction each (``BEGIN
IMMEDIATE``, so writers queue on ``busy_timeout`` instead of failing on a lock upgrade), and a
:class:`~twinplane.edge.store.errors.StoreError` instead of ``sqlite3``'s errors.

The database and its ``-wal`` and ``-shm`` files are for their owner only (0600, the folders
created for them 0700: :mod:`twinplane.owner_only`), whatever the umask.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import msgspec

from twinplane.edge.store import migrations
from twinplane.edge.store.errors import StoreError, StoreVersionError
from twinplane.owner_only import FILE_MODE, make_dirs, private_file

__all__ = ["StoreConnection", "json_text", "now_ms"]

log = logging.getLogger(__name__)

_WAL_SIZE_LIMIT: Final = 64 * 1024 * 1024  # bytes the WAL is truncated to after a checkpoint
_CACHE_KIB: Final = 32 * 1024  # SQLite page cache (100,000 twins take about 20 MiB)
_CHECKPOINT_PAGES: Final = 8192  # WAL pages (4 KiB) between automatic checkpoints: 32 MiB
_SIDE_FILES: Final = ("-wal", "-shm", "-journal")


def now_ms() -> int:
    """Milliseconds since the epoch (the ``*_ms`` columns)."""
    return time.time_ns() // 1_000_000


def json_text(body: Mapping[str, Any], encoder: msgspec.json.Encoder) -> str:
    """A body as the JSON text the tables store."""
    return encoder.encode(body if isinstance(body, dict) else dict(body)).decode()


class StoreConnection:
    """One SQLite connection, opened with :meth:`open`; use it from the thread that opened it."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._path = path

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, busy_timeout_ms: int = 5000) -> Self:
        """Opens (creating it and its parent folders if needed) and migrates a database.

        Args:
            path: The database file.
            busy_timeout_ms: How long a statement waits for another connection's lock.

        Raises:
            StoreVersionError: The schema is newer than this code; the file is untouched.
            StoreError: The file is not a twinplane database (untouched too), or SQLite failed.
        """
        file = Path(path)
        make_dirs(file.parent)
        if not file.exists():
            try:
                private_file(file)  # before SQLite creates -wal and -shm with the file's mode
            except OSError as exc:
                raise StoreError(f"cannot create {file}: {exc}", db_path=str(file)) from exc
        try:
            conn = sqlite3.connect(file, timeout=busy_timeout_ms / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {file}: {exc}", db_path=str(file)) from exc
        try:
            _prepare(conn, file, busy_timeout_ms)
            _owner_only(file)  # a file of an earlier release may be readable by others
        except BaseException:
            conn.close()
            raise
        return cls(conn, file)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    def close(self) -> None:
        """Closes the connection (idempotent); the last connection checkpoints the WAL."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"{what}: {exc}", db_path=str(self._path)) from exc

    @contextlib.contextmanager
    def _tx(self, what: str) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        with self._errors(what):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _read(self, what: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._errors(what):
            return self._conn.execute(sql, params).fetchall()

    def pragmas(self) -> dict[str, int | str]:
        """The connection's settings and schema version, for diagnostics."""
        names = ("journal_mode", "synchronous", "foreign_keys", "busy_timeout", "user_version")
        return {n: self._read("pragmas", f"PRAGMA {n}")[0][0] for n in names}


def _owner_only(path: Path) -> None:
    """The database and the side files that exist now: mode 0600 (once known to be ours)."""
    for file in (path, *(path.with_name(path.name + s) for s in _SIDE_FILES)):
        with contextlib.suppress(FileNotFoundError):
            file.chmod(FILE_MODE)


def _prepare(conn: sqlite3.Connection, path: Path, busy_timeout_ms: int) -> None:
    """Checks, configures and migrates a fresh connection (see :meth:`StoreConnection.open`)."""
    where = str(path)
    try:
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms:d}")
        # Only reads until the file is known to be ours and not newer: a refused file is left
        # byte for byte as it was (switching to WAL alone would rewrite its header).
        version = migrations.user_version(conn)
        app_id = migrations.application_id(conn)
        if version > migrations.LATEST:
            raise StoreVersionError(
                f"{path} has schema version {version}, newer than the {migrations.LATEST} this"
                " twinplane knows; it was written by a newer release (upgrade, or move the file"
                " away to start empty)",
                db_path=where,
                found=version,
                supported=migrations.LATEST,
            )
        foreign = app_id == 0 and (version > 0 or migrations.has_tables(conn))
        if foreign or app_id not in (0, migrations.APPLICATION_ID):
            raise StoreError(
                f"{path} is not a twinplane edge database (application_id {app_id:#x},"
                f" user_version {version}); refusing to change it",
                db_path=where,
            )
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{path}: cannot use WAL mode (got {mode!r})", db_path=where)
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT:d}")
        # Every twin of a dense node changes every second: keep the twins table's pages in
        # memory (no read per upsert) and checkpoint every 32 MiB of WAL instead of 4 MiB, so
        # a page rewritten many times between checkpoints is copied to the database once.
        conn.execute(f"PRAGMA cache_size = {-_CACHE_KIB:d}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {_CHECKPOINT_PAGES:d}")
        for step in migrations.migrate(conn, migrations.MIGRATIONS):
            log.info("edge store %s: schema %d: %s", path, step.version, step.description)
        if (now := migrations.user_version(conn)) != migrations.LATEST:
            raise StoreVersionError(
                f"{path} was migrated to schema {now} by another process meanwhile",
                db_path=where,
                found=now,
                supported=migrations.LATEST,
            )
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}", db_path=where) from exc
