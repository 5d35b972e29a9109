"""What the cloud keeps beside the registry: desired-value versions and uploads (``cloud.db``).

- ``desired``: per twin property, the cloud's view of KubeEdge's desired version
  ``{cloud, edge}`` (spec §3.8). ``spec_value`` is what ``spec.properties[].desired.value`` last
  said; when it changes the cloud counter goes up. When an edge reports a desired value with a
  newer version (a local change, or one made while the link was down), the cloud takes the edge's
  value and version: the two converge.
- ``uploads``: what edge applications published to ``$hw/events/upload/#`` (path 9), bounded to
  the newest ``keep`` rows.
- ``device_events``: the edges' device events, bounded by count (``keep_events``, the newest)
  and by age (``keep_events_s`` after an event last happened; older ones are neither served
  nor kept).

SQLite in WAL mode with ``synchronous=FULL``; every write commits before the call returns.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinplane.owner_only import make_dirs, private_file
from twinplane.tasks import thread_to_end

__all__ = ["KEEP_EVENTS_S", "CloudState", "DesiredRow", "UploadRow"]

KEEP_EVENTS_S = 7 * 24 * 3600.0
"""Seconds a device event stays after it last happened (the edge's event log keeps as long)."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS desired (
        device_id TEXT NOT NULL,
        property TEXT NOT NULL,
        spec_value TEXT,
        value TEXT,
        cloud INTEGER NOT NULL,
        edge INTEGER NOT NULL,
        PRIMARY KEY (device_id, property)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS uploads (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        node TEXT NOT NULL,
        id TEXT NOT NULL,
        topic TEXT NOT NULL,
        payload TEXT NOT NULL,
        encoding TEXT NOT NULL,
        timestamp INTEGER NOT NULL,
        UNIQUE (node, id)
    )""",
    # The edges' device events (docs/events.md, "From the cloud"): one row per event id, its
    # count and last time updated as the edge aggregates it; edge_seq is where each node's
    # stream stands (the resume point after a reconnect).
    """CREATE TABLE IF NOT EXISTS device_events (
        node TEXT NOT NULL,
        id TEXT NOT NULL,
        edge_seq INTEGER NOT NULL,
        namespace TEXT NOT NULL,
        device TEXT NOT NULL,
        type TEXT NOT NULL,
        reason TEXT NOT NULL,
        severity TEXT NOT NULL,
        last_ts_ms INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (node, id)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS device_events_device ON device_events (namespace, device)",
    "CREATE INDEX IF NOT EXISTS device_events_last ON device_events (last_ts_ms)",
    # Where each node's event stream stands, kept apart from the events: pruning a node's
    # events (by count or age) must not move its resume point back.
    """CREATE TABLE IF NOT EXISTS events_seq (
        node TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
    )""",
)


@dataclass(slots=True)
class DesiredRow:
    """A twin's desired value as the cloud knows it."""

    spec_value: str | None
    value: str | None
    cloud: int
    edge: int


@dataclass(slots=True, frozen=True)
class UploadRow:
    """One uploaded message."""

    seq: int
    node: str
    id: str
    topic: str
    payload: str
    encoding: str
    timestamp: int


class CloudState:
    """The cloud's own SQLite file; :meth:`open` loads the desired table into :attr:`desired`."""

    def __init__(
        self,
        path: Path,
        *,
        keep_uploads: int = 10_000,
        keep_events: int = 50_000,
        keep_events_s: float = KEEP_EVENTS_S,
    ) -> None:
        self.path = path
        self.keep_uploads = keep_uploads
        self.keep_events = keep_events
        self.keep_events_s = keep_events_s
        self.desired: dict[str, dict[str, DesiredRow]] = {}
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    def open(self) -> None:
        """Opens (creating) the file and loads the desired versions."""
        make_dirs(self.path.parent)
        private_file(self.path)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute("DELETE FROM device_events WHERE last_ts_ms < ?", (self._events_cutoff(),))
        for device_id, prop, spec_value, value, cloud, edge in conn.execute(
            "SELECT device_id, property, spec_value, value, cloud, edge FROM desired"
        ):
            self.desired.setdefault(device_id, {})[prop] = DesiredRow(
                spec_value, value, cloud, edge
            )
        self._conn = conn

    def close(self) -> None:
        """Closes the file."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _events_cutoff(self) -> int:
        """Events that last happened before this (ms since the epoch) are past the age bound."""
        return int((time.time() - self.keep_events_s) * 1000)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("CloudState is not open")
        return self._conn

    async def put_desired(self, rows: Iterable[tuple[str, str, DesiredRow]]) -> None:
        """Stores desired rows ``(device, property, row)`` (and keeps them in memory)."""
        batch = list(rows)
        if not batch:
            return
        params = [(d, p, r.spec_value, r.value, r.cloud, r.edge) for d, p, r in batch]

        def write() -> None:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT OR REPLACE INTO desired VALUES (?, ?, ?, ?, ?, ?)", params)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

        async with self._lock:
            await thread_to_end(write)
        for device_id, prop, row in batch:
            self.desired.setdefault(device_id, {})[prop] = row

    async def forget_device(self, device_id: str) -> None:
        """Drops a deleted device's desired rows."""
        self.desired.pop(device_id, None)
        async with self._lock:
            await thread_to_end(
                self._db().execute, "DELETE FROM desired WHERE device_id=?", (device_id,)
            )

    async def add_uploads(self, rows: Iterable[tuple[str, str, str, str, str, int]]) -> list[int]:
        """Stores uploads ``(node, id, topic, payload, encoding, ts)``; a replayed id is ignored.

        Returns the sequence numbers of the rows that were new.
        """
        batch = list(rows)

        def write() -> list[int]:
            db = self._db()
            new: list[int] = []
            db.execute("BEGIN IMMEDIATE")
            try:
                for row in batch:
                    cur = db.execute(
                        "INSERT OR IGNORE INTO uploads"
                        " (node, id, topic, payload, encoding, timestamp) VALUES (?,?,?,?,?,?)",
                        row,
                    )
                    if cur.rowcount:
                        new.append(int(cur.lastrowid or 0))
                db.execute(
                    "DELETE FROM uploads WHERE seq <= (SELECT max(seq) FROM uploads) - ?",
                    (self.keep_uploads,),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return new

        async with self._lock:
            return await thread_to_end(write)

    async def uploads(
        self, *, after: int = 0, node: str | None = None, limit: int = 1000
    ) -> list[UploadRow]:
        """Uploads after sequence number ``after`` (of ``node``), oldest first."""
        sql = "SELECT seq, node, id, topic, payload, encoding, timestamp FROM uploads WHERE seq > ?"
        args: list[object] = [after]
        if node is not None:
            sql += " AND node = ?"
            args.append(node)
        sql += " ORDER BY seq LIMIT ?"
        args.append(limit)
        async with self._lock:
            rows = await thread_to_end(lambda: self._db().execute(sql, args).fetchall())
        return [UploadRow(*r) for r in rows]

    async def put_events(self, node: str, events: list[dict[str, Any]]) -> None:
        """Stores a node's events (a repeated id replaces its row: the newer count wins)."""
        if not events:
            return

        def write() -> None:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT INTO device_events (node, id, edge_seq, namespace, device, type,"
                    " reason, severity, last_ts_ms, body) VALUES (?,?,?,?,?,?,?,?,?,?)"
                    " ON CONFLICT (node, id) DO UPDATE SET edge_seq = excluded.edge_seq,"
                    " last_ts_ms = excluded.last_ts_ms, body = excluded.body"
                    " WHERE excluded.edge_seq > device_events.edge_seq",
                    [
                        (
                            node,
                            str(e["id"]),
                            int(e["seq"]),
                            str(e["namespace"]),
                            str(e["device"]),
                            str(e["type"]),
                            str(e["reason"]),
                            str(e["severity"]),
                            int(e["last_ts_ms"]),
                            json.dumps(e, separators=(",", ":")),
                        )
                        for e in events
                    ],
                )
                db.execute(
                    "INSERT INTO events_seq (node, seq) VALUES (?, ?) ON CONFLICT (node)"
                    " DO UPDATE SET seq = max(seq, excluded.seq)",
                    (node, max(int(e["seq"]) for e in events)),
                )
                db.execute(
                    "DELETE FROM device_events WHERE (node, id) IN (SELECT node, id FROM"
                    " device_events ORDER BY last_ts_ms DESC LIMIT -1 OFFSET ?)",
                    (self.keep_events,),
                )
                db.execute(
                    "DELETE FROM device_events WHERE last_ts_ms < ?", (self._events_cutoff(),)
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

        async with self._lock:
            await thread_to_end(write)

    async def events_seq(self, node: str) -> int:
        """The highest edge sequence number stored of ``node`` (0 if none)."""

        def read() -> int:
            db = self._db()
            row = db.execute("SELECT seq FROM events_seq WHERE node = ?", (node,)).fetchone()
            if row is not None:
                return int(row[0])
            # A cloud.db from before events_seq: where its stored events stand.
            row = db.execute(
                "SELECT max(edge_seq) FROM device_events WHERE node = ?", (node,)
            ).fetchone()
            return int(row[0] or 0)

        async with self._lock:
            return await thread_to_end(read)

    async def events(
        self,
        *,
        namespace: str | None = None,
        device: str | None = None,
        type_: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Stored events, newest first, each with its ``node`` (none older than the bound)."""
        sql = "SELECT node, body FROM device_events WHERE last_ts_ms >= ?"
        args: list[object] = [self._events_cutoff()]
        for column, value in (("namespace", namespace), ("device", device), ("type", type_)):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        sql += " ORDER BY last_ts_ms DESC LIMIT ?"
        args.append(limit)
        async with self._lock:
            rows = await thread_to_end(lambda: self._db().execute(sql, args).fetchall())
        return [{**json.loads(body), "node": node} for node, body in rows]
