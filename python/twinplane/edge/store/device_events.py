"""The ``device_events`` table: the bounded log of typed device events.

A row is one :class:`StoredEvent`; an aggregated event (the same device, type, reason and
message counted again) is rewritten in place with a new ``seq``, so a reader that resumes from a
sequence number sees every change. :meth:`DeviceEventTable.put_events` prunes in the same
transaction: the oldest rows beyond ``max_count`` and every row last seen before ``min_ts_ms``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import msgspec

from twinplane.edge.store.connection import StoreConnection

__all__ = ["DeviceEventTable", "EventQuery", "StoredEvent"]

_PUT: Final = "INSERT OR REPLACE INTO device_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_PRUNE_COUNT: Final = (
    "DELETE FROM device_events WHERE seq <= "
    "(SELECT seq FROM device_events ORDER BY seq DESC LIMIT 1 OFFSET ?)"
)
_PRUNE_AGE: Final = "DELETE FROM device_events WHERE last_ts_ms < ?"


class StoredEvent(msgspec.Struct, frozen=True):
    """One row of the event log (the fields of :class:`twinplane.edge.events.DeviceEvent`).

    ``body`` is the event's JSON object as text.
    """

    seq: int
    id: str
    namespace: str
    device: str
    type: str
    reason: str
    severity: str
    message: str
    count: int
    first_ts_ms: int
    last_ts_ms: int
    body: str


class EventQuery(msgspec.Struct, frozen=True):
    """A filter over the log; ``None`` fields match everything.

    Attributes:
        namespace: Only this namespace.
        device: Only this device (a name in ``namespace``).
        type: Only these types.
        reason: Only this reason.
        severity: Only these severities.
        since_ms: Only events last seen at or after this time.
        before_seq: Newest first, below this sequence number (the ``continue`` token).
        after_seq: Oldest first, above this sequence number (reading the log forward).
        limit: Most rows returned.
    """

    namespace: str | None = None
    device: str | None = None
    type: frozenset[str] | None = None
    reason: str | None = None
    severity: frozenset[str] | None = None
    since_ms: int | None = None
    before_seq: int | None = None
    after_seq: int | None = None
    limit: int = 100


class DeviceEventTable(StoreConnection):
    """The event log's methods of :class:`~twinplane.edge.store.EdgeStore`."""

    def put_events(self, events: Iterable[StoredEvent], *, max_count: int, min_ts_ms: int) -> int:
        """Stores (or replaces, by id) ``events``, then prunes; returns the rows pruned.

        One transaction: the log is never seen beyond its bounds.
        """
        rows = [msgspec.structs.astuple(e) for e in events]
        with self._tx("put_events") as conn:
            if rows:
                conn.executemany(_PUT, rows)
            pruned = conn.execute(_PRUNE_AGE, (min_ts_ms,)).rowcount
            pruned += conn.execute(_PRUNE_COUNT, (max_count,)).rowcount
        return int(pruned)

    def list_events(self, query: EventQuery) -> list[StoredEvent]:
        """The rows matching ``query``: newest first, or oldest first with ``after_seq``."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("namespace", query.namespace),
            ("device", query.device),
            ("reason", query.reason),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        for column, values in (("type", query.type), ("severity", query.severity)):
            if values is not None:
                where.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(sorted(values))
        if query.since_ms is not None:
            where.append("last_ts_ms >= ?")
            params.append(query.since_ms)
        if query.before_seq is not None:
            where.append("seq < ?")
            params.append(query.before_seq)
        if query.after_seq is not None:
            where.append("seq > ?")
            params.append(query.after_seq)
        order = "ASC" if query.after_seq is not None else "DESC"
        sql = "SELECT * FROM device_events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY seq {order} LIMIT ?"
        params.append(query.limit)
        return [StoredEvent(*r) for r in self._read("list_events", sql, tuple(params))]

    def last_event_seq(self) -> int:
        """The highest sequence number ever stored, pruned or not (0 for a new log)."""
        sql = "SELECT seq FROM sqlite_sequence WHERE name = 'device_events'"
        rows = self._read("last_event_seq", sql)
        return int(rows[0][0]) if rows else 0
