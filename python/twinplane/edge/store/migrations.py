"""The edge store's schema, as an ordered list of migration steps.

The schema version is SQLite's ``PRAGMA user_version``; the file is marked as twinplane's with
``PRAGMA application_id``. Step ``n`` takes a database from version ``n - 1`` to ``n`` and is
applied in one transaction together with the version bump, so a crash leaves the database at
one version or the next, never between. A released step is never edited: a change to the
schema is a new step at the end of :data:`MIGRATIONS`.

This module only knows the schema and how to apply it; :mod:`twinplane.edge.store.connection`
decides whether a file may be migrated at all (a newer or foreign database is refused untouched).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Final

APPLICATION_ID: Final = 0x74776E70
"""``PRAGMA application_id`` of a twinplane edge database (``"twnp"``)."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step.

    Attributes:
        version: The schema version the step produces (steps are numbered 1, 2, 3, ...).
        description: What the step adds, for logs.
        statements: The SQL statements, executed in order inside one transaction.
    """

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(
        1,
        "registry: applied Device and DeviceModel manifests, registered mappers",
        (
            f"PRAGMA application_id = {APPLICATION_ID}",
            """CREATE TABLE objects (
                kind TEXT NOT NULL,
                namespace TEXT NOT NULL,
                name TEXT NOT NULL,
                body TEXT NOT NULL,
                generation INTEGER NOT NULL CHECK (generation >= 1),
                updated_ms INTEGER NOT NULL,
                PRIMARY KEY (kind, namespace, name)
            )""",
            """CREATE TABLE mappers (
                name TEXT NOT NULL PRIMARY KEY,
                protocol TEXT NOT NULL,
                address TEXT NOT NULL,
                version TEXT NOT NULL,
                api_version TEXT NOT NULL,
                state TEXT NOT NULL,
                registered_ms INTEGER NOT NULL
            )""",
        ),
    ),
    Migration(
        2,
        "twins and device states; deleting a Device deletes both",
        (
            """CREATE TABLE twins (
                device_id TEXT NOT NULL,
                property TEXT NOT NULL,
                body TEXT NOT NULL,
                PRIMARY KEY (device_id, property)
            ) WITHOUT ROWID""",
            """CREATE TABLE device_states (
                device_id TEXT NOT NULL PRIMARY KEY,
                state TEXT NOT NULL,
                last_online TEXT NOT NULL,
                updated_ms INTEGER NOT NULL
            ) WITHOUT ROWID""",
            # A device's id is `<namespace>/<name>` (KubeEdge's); the cascade lives in the schema
            # so that no caller can leave a deleted device's twins behind.
            """CREATE TRIGGER objects_device_cascade AFTER DELETE ON objects
            WHEN old.kind = 'Device'
            BEGIN
                DELETE FROM twins WHERE device_id = old.namespace || '/' || old.name;
                DELETE FROM device_states WHERE device_id = old.namespace || '/' || old.name;
            END""",
        ),
    ),
    Migration(
        3,
        "outbox of events toward the cloud link",
        (
            # AUTOINCREMENT: ids are never reused, so "delete up to id" cannot hit a newer event.
            """CREATE TABLE events_outbox (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                topic TEXT NOT NULL,
                payload BLOB NOT NULL,
                created_ms INTEGER NOT NULL
            )""",
        ),
    ),
    Migration(
        4,
        "the last failed desired write of each twin property; deleting a Device deletes them",
        (
            """CREATE TABLE write_errors (
                device_id TEXT NOT NULL,
                property TEXT NOT NULL,
                value TEXT NOT NULL,
                reason TEXT NOT NULL,
                attempts INTEGER NOT NULL CHECK (attempts >= 1),
                time_ms INTEGER NOT NULL,
                PRIMARY KEY (device_id, property)
            ) WITHOUT ROWID""",
            """CREATE TRIGGER objects_device_write_errors_cascade AFTER DELETE ON objects
            WHEN old.kind = 'Device'
            BEGIN
                DELETE FROM write_errors WHERE device_id = old.namespace || '/' || old.name;
            END""",
        ),
    ),
    Migration(
        5,
        "devices whose twins the cloud has not acknowledged (the edge link's outbox)",
        (
            """CREATE TABLE cloud_outbox (
                device_id TEXT NOT NULL PRIMARY KEY,
                seq INTEGER NOT NULL,
                rev INTEGER NOT NULL,
                properties TEXT,
                state INTEGER NOT NULL
            ) WITHOUT ROWID""",
            "CREATE INDEX cloud_outbox_seq ON cloud_outbox (seq)",
            """CREATE TRIGGER objects_device_cloud_outbox_cascade AFTER DELETE ON objects
            WHEN old.kind = 'Device'
            BEGIN
                DELETE FROM cloud_outbox WHERE device_id = old.namespace || '/' || old.name;
            END""",
        ),
    ),
    Migration(
        6,
        "the device event log (bounded by count and age; aggregated events are updated)",
        (
            # `seq` is reassigned when an aggregated event is counted again, so reading from a
            # sequence number sees every change; `id` is the event's stable identity.
            # AUTOINCREMENT keeps the highest seq ever stored (sqlite_sequence) across pruning.
            """CREATE TABLE device_events (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                namespace TEXT NOT NULL,
                device TEXT NOT NULL,
                type TEXT NOT NULL,
                reason TEXT NOT NULL,
                severity TEXT NOT NULL,
                message TEXT NOT NULL,
                count INTEGER NOT NULL CHECK (count >= 1),
                first_ts_ms INTEGER NOT NULL,
                last_ts_ms INTEGER NOT NULL,
                body TEXT NOT NULL
            )""",
            "CREATE INDEX device_events_device ON device_events (namespace, device, seq)",
            "CREATE INDEX device_events_last_ts ON device_events (last_ts_ms)",
        ),
    ),
    Migration(
        7,
        "method calls: durable before they are acknowledged, outcomes kept for inspection",
        (
            """CREATE TABLE calls (
                id TEXT NOT NULL PRIMARY KEY,
                device_id TEXT NOT NULL,
                method TEXT NOT NULL,
                body TEXT NOT NULL,
                state TEXT NOT NULL,
                created_ms INTEGER NOT NULL
            ) WITHOUT ROWID""",
            "CREATE INDEX calls_device_created ON calls (device_id, created_ms)",
            "CREATE INDEX calls_state ON calls (state)",
            """CREATE TRIGGER objects_device_calls_cascade AFTER DELETE ON objects
            WHEN old.kind = 'Device'
            BEGIN
                DELETE FROM calls WHERE device_id = old.namespace || '/' || old.name;
            END""",
        ),
    ),
    Migration(
        8,
        "alarms: active and recently cleared, with their acknowledgements; deleting a Device"
        " deletes them",
        (
            """CREATE TABLE alarms (
                id TEXT NOT NULL PRIMARY KEY,
                device_id TEXT NOT NULL,
                rule TEXT NOT NULL,
                property TEXT NOT NULL,
                severity TEXT NOT NULL,
                message TEXT NOT NULL,
                value REAL NOT NULL,
                threshold REAL NOT NULL,
                raised_ms INTEGER NOT NULL,
                acknowledged_by TEXT,
                acknowledged_ms INTEGER,
                cleared_ms INTEGER
            ) WITHOUT ROWID""",
            "CREATE INDEX alarms_device ON alarms (device_id, rule)",
            "CREATE INDEX alarms_cleared ON alarms (cleared_ms) WHERE cleared_ms IS NOT NULL",
            """CREATE TRIGGER objects_device_alarms_cascade AFTER DELETE ON objects
            WHEN old.kind = 'Device'
            BEGIN
                DELETE FROM alarms WHERE device_id = old.namespace || '/' || old.name;
            END""",
        ),
    ),
    Migration(
        9,
        "firmware: the artifacts stored on the edge (name, version, models, size, sha256); the"
        " bytes live in files named by their sha256",
        (
            """CREATE TABLE firmware (
                name TEXT NOT NULL,
                version TEXT NOT NULL,
                models TEXT NOT NULL,
                size INTEGER NOT NULL,
                sha256 TEXT NOT NULL,
                description TEXT NOT NULL,
                created_ms INTEGER NOT NULL,
                PRIMARY KEY (name, version)
            ) WITHOUT ROWID""",
            "CREATE INDEX firmware_sha256 ON firmware (sha256)",
        ),
    ),
)

LATEST: Final = MIGRATIONS[-1].version
"""The schema version this code writes."""


def user_version(conn: sqlite3.Connection) -> int:
    """The database's schema version (``PRAGMA user_version``; 0 for a new file)."""
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def application_id(conn: sqlite3.Connection) -> int:
    """The database's ``PRAGMA application_id`` (0 when never set)."""
    row = conn.execute("PRAGMA application_id").fetchone()
    return int(row[0])


def has_tables(conn: sqlite3.Connection) -> bool:
    """Whether the database holds any schema object besides SQLite's own."""
    row = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
    ).fetchone()
    return int(row[0]) > 0


def migrate(conn: sqlite3.Connection, steps: tuple[Migration, ...] = MIGRATIONS) -> list[Migration]:
    """Applies the steps the database has not seen yet, one transaction each.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Each step re-reads the
    version under the write lock (``BEGIN IMMEDIATE``), so two processes opening the same file
    at once apply every step exactly once.

    Args:
        conn: The connection, in autocommit mode.
        steps: The ordered steps (tests pass a prefix to build an old database).

    Returns:
        The steps applied, in order.

    Raises:
        sqlite3.Error: A step failed; it was rolled back and the database is at the version
            of the last step that succeeded.
    """
    applied: list[Migration] = []
    for step in steps:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if user_version(conn) >= step.version:
                conn.execute("ROLLBACK")
                continue
            for statement in step.statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {step.version:d}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        applied.append(step)
    return applied
