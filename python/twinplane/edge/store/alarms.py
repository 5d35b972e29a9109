"""The ``alarms`` table: active alarms and recently cleared ones (:mod:`twinplane.edge.alarms`).

A row is one alarm, from its raise to its clear: who acknowledged it and when, and when it
cleared (``NULL`` while active). :meth:`AlarmTable.put_alarms` stores a batch and keeps at most
``max_cleared`` cleared rows (the most recently cleared) in the same transaction. Deleting a
``Device`` deletes its rows (a trigger in the schema).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import msgspec

from twinplane.edge.store.connection import StoreConnection

__all__ = ["AlarmTable", "StoredAlarm"]

_PUT: Final = "INSERT OR REPLACE INTO alarms VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_DELETE: Final = "DELETE FROM alarms WHERE id = ?"
_PRUNE: Final = (
    "DELETE FROM alarms WHERE cleared_ms IS NOT NULL AND id NOT IN "
    "(SELECT id FROM alarms WHERE cleared_ms IS NOT NULL ORDER BY cleared_ms DESC LIMIT ?)"
)


class StoredAlarm(msgspec.Struct, frozen=True):
    """One alarm (the fields of :class:`twinplane.edge.alarms.Alarm`).

    Attributes:
        id: The alarm's identity (one raise).
        device_id: ``<namespace>/<name>``.
        rule: The rule's name.
        property: The property the rule watches.
        severity: ``info``, ``warning`` or ``critical`` (the rule's, at raise).
        message: The rule's message.
        value: The value that raised it.
        threshold: The bound it crossed.
        raised_ms: When the raising sample was taken.
        acknowledged_by: Who acknowledged it (``None``: not yet).
        acknowledged_ms: When.
        cleared_ms: When the clearing sample was taken (``None``: active).
    """

    id: str
    device_id: str
    rule: str
    property: str
    severity: str
    message: str
    value: float
    threshold: float
    raised_ms: int
    acknowledged_by: str | None
    acknowledged_ms: int | None
    cleared_ms: int | None


class AlarmTable(StoreConnection):
    """The alarms' methods of :class:`~twinplane.edge.store.EdgeStore`."""

    def put_alarms(
        self, alarms: Iterable[StoredAlarm], deleted: Iterable[str] = (), *, max_cleared: int
    ) -> int:
        """Stores (or replaces, by id) ``alarms``, deletes ``deleted`` ids, prunes cleared rows.

        One transaction; returns the cleared rows pruned beyond the newest ``max_cleared``.
        """
        rows = [msgspec.structs.astuple(a) for a in alarms]
        gone = [(i,) for i in deleted]
        with self._tx("put_alarms") as conn:
            if gone:
                conn.executemany(_DELETE, gone)
            if rows:
                conn.executemany(_PUT, rows)
            pruned = conn.execute(_PRUNE, (max_cleared,)).rowcount
        return int(pruned)

    def list_alarms(self) -> list[StoredAlarm]:
        """Every stored alarm, oldest raise first."""
        sql = "SELECT * FROM alarms ORDER BY raised_ms, id"
        return [StoredAlarm(*r) for r in self._read("list_alarms", sql)]
