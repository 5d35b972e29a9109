"""The ``cloud_outbox`` table: devices whose twins or state the cloud has not acknowledged yet.

One row per device, coalesced: a device that changes a thousand times while the link is down is
one row naming the properties that changed (``NULL``: all of them) — the values themselves are
the twins', read when the report is sent, so what reaches the cloud is always the newest. ``seq``
is the order in which devices first became pending (the backlog drains oldest first) and never
moves; ``rev`` grows with every new mark, so an acknowledgement of an older send (``rev``
given) does not clear a newer change.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import msgspec

from twinplane.edge.store.connection import StoreConnection

__all__ = ["CloudMark", "CloudOutboxTable"]


class CloudMark(msgspec.Struct, frozen=True):
    """A device pending for the cloud."""

    device_id: str
    seq: int
    rev: int
    properties: frozenset[str] | None
    """The properties that changed; ``None``: every one (a resync)."""
    state: bool
    """Whether its state changed."""


def _props(text: str | None) -> frozenset[str] | None:
    return None if text is None else frozenset(json.loads(text))


class CloudOutboxTable(StoreConnection):
    """The cloud outbox's methods of :class:`~twinplane.edge.store.EdgeStore`."""

    def mark_cloud(
        self, marks: Iterable[tuple[str, frozenset[str] | None, bool]]
    ) -> list[CloudMark]:
        """Merges ``(device, properties or None for all, state changed)`` marks; the rows now."""
        out: list[CloudMark] = []
        with self._tx("mark_cloud") as conn:
            (top,) = conn.execute("SELECT coalesce(max(seq), 0) FROM cloud_outbox").fetchone()
            for device_id, props, state in marks:
                row = conn.execute(
                    "SELECT seq, rev, properties, state FROM cloud_outbox WHERE device_id=?",
                    (device_id,),
                ).fetchone()
                if row is None:
                    top += 1
                    seq, rev, merged, was = top, 1, props, False
                else:
                    seq, rev, old, was = row[0], row[1] + 1, _props(row[2]), bool(row[3])
                    merged = None if old is None or props is None else old | props
                text = None if merged is None else json.dumps(sorted(merged))
                conn.execute(
                    "INSERT OR REPLACE INTO cloud_outbox VALUES (?, ?, ?, ?, ?)",
                    (device_id, seq, rev, text, int(state or was)),
                )
                out.append(CloudMark(device_id, seq, rev, merged, state or was))
        return out

    def list_cloud(self, limit: int = 1000, after_seq: int = 0) -> list[CloudMark]:
        """Pending devices after ``after_seq``, oldest first."""
        sql = (
            "SELECT device_id, seq, rev, properties, state FROM cloud_outbox"
            " WHERE seq > ? ORDER BY seq LIMIT ?"
        )
        rows = self._read("list_cloud", sql, (after_seq, limit))
        return [CloudMark(d, s, r, _props(p), bool(st)) for d, s, r, p, st in rows]

    def count_cloud(self) -> int:
        """How many devices are pending."""
        return int(self._read("count_cloud", "SELECT count(*) FROM cloud_outbox")[0][0])

    def ack_cloud(self, done: Iterable[tuple[str, int]]) -> int:
        """Clears ``(device, rev)`` rows that were not marked again since; how many."""
        with self._tx("ack_cloud") as conn:
            cur = conn.executemany(
                "DELETE FROM cloud_outbox WHERE device_id=? AND rev=?", list(done)
            )
            return cur.rowcount
