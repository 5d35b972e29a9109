"""The ``events_outbox`` table: events waiting for the cloud link, in order, ids never reused."""

from __future__ import annotations

import msgspec

from twinplane.edge.store.connection import StoreConnection, now_ms

__all__ = ["OutboxEntry", "OutboxTable"]


class OutboxEntry(msgspec.Struct, frozen=True):
    """An event waiting for the cloud link; ``id`` grows and is never reused."""

    id: int
    topic: str
    payload: bytes
    created_ms: int


class OutboxTable(StoreConnection):
    """The outbox's methods of :class:`~twinplane.edge.store.EdgeStore`."""

    def append_outbox(self, topic: str, payload: bytes) -> int:
        """Appends an event for the cloud link; returns its id."""
        with self._tx("append_outbox") as conn:
            cur = conn.execute(
                "INSERT INTO events_outbox (topic, payload, created_ms) VALUES (?, ?, ?)",
                (topic, payload, now_ms()),
            )
            return int(cur.lastrowid or 0)

    def list_outbox(self, limit: int = 100) -> list[OutboxEntry]:
        """The oldest ``limit`` events, oldest first."""
        sql = "SELECT * FROM events_outbox ORDER BY id LIMIT ?"
        return [OutboxEntry(*r) for r in self._read("list_outbox", sql, (limit,))]

    def delete_outbox(self, through_id: int) -> int:
        """Deletes the events up to and including ``through_id``; how many there were."""
        with self._tx("delete_outbox") as conn:
            return conn.execute("DELETE FROM events_outbox WHERE id<=?", (through_id,)).rowcount
