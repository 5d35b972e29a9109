"""The ``calls`` table: method calls, stored before they are acknowledged.

A row holds one call's JSON body (:class:`twinplane.edge.calls.Call`), with its device, method,
state and creation time beside it for the queries. Deleting a ``Device`` deletes its calls (a
trigger in the schema). Finished calls are pruned per device to the newest ``keep``.
"""

from __future__ import annotations

from typing import Final

from twinplane.edge.store.connection import StoreConnection

__all__ = ["CallTable", "StoredCall"]

_PUT: Final = "INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?, ?, ?)"
_OPEN_STATES: Final = ("Pending", "Sent")
_PRUNE: Final = """DELETE FROM calls WHERE device_id = ? AND state NOT IN ('Pending', 'Sent')
    AND id NOT IN (SELECT id FROM calls WHERE device_id = ? AND state NOT IN ('Pending', 'Sent')
                   ORDER BY created_ms DESC, id DESC LIMIT ?)"""

StoredCall = tuple[str, str, str, str, str, int]
"""``(id, device_id, method, body, state, created_ms)``."""


class CallTable(StoreConnection):
    """The calls' methods of :class:`~twinplane.edge.store.EdgeStore`."""

    def put_call(self, row: StoredCall, keep: int = 100) -> None:
        """Stores (or replaces) one call and prunes its device's finished calls to ``keep``."""
        with self._tx("put_call") as conn:
            conn.execute(_PUT, row)
            conn.execute(_PRUNE, (row[1], row[1], keep))

    def get_call(self, call_id: str) -> StoredCall | None:
        """The call ``call_id``, or ``None``."""
        rows = self._read("get_call", "SELECT * FROM calls WHERE id = ?", (call_id,))
        return tuple(rows[0]) if rows else None

    def list_calls(self, device_id: str, limit: int = 100) -> list[StoredCall]:
        """The device's calls, newest first."""
        sql = "SELECT * FROM calls WHERE device_id = ? ORDER BY created_ms DESC, id DESC LIMIT ?"
        return [tuple(r) for r in self._read("list_calls", sql, (device_id, limit))]

    def open_calls(self) -> list[StoredCall]:
        """Every call not finished (``Pending`` or ``Sent``), oldest first."""
        sql = "SELECT * FROM calls WHERE state IN (?, ?) ORDER BY created_ms, id"
        return [tuple(r) for r in self._read("open_calls", sql, _OPEN_STATES)]
