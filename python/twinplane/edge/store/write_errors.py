"""The ``write_errors`` table: the last failed desired write of each twin property.

A row says which desired value a mapper could not write, why, after how many attempts and when
(:mod:`twinplane.edge.write_errors` decides when a row is set or cleared). Deleting a ``Device``
deletes its rows (a trigger in the schema).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import msgspec

from twinplane.edge.store.connection import StoreConnection

__all__ = ["StoredWriteError", "WriteErrorTable"]

_PUT: Final = "INSERT OR REPLACE INTO write_errors VALUES (?, ?, ?, ?, ?, ?)"
_DELETE: Final = "DELETE FROM write_errors WHERE device_id=? AND property=?"


class StoredWriteError(msgspec.Struct, frozen=True):
    """A twin property's last failed desired write.

    Attributes:
        device_id: ``<namespace>/<name>``.
        property: The property.
        value: The desired value the write was for.
        reason: Why the mapper gave up.
        attempts: Attempts the mapper made.
        time_ms: When the last attempt ended (ms since the epoch, the mapper's clock).
    """

    device_id: str
    property: str
    value: str
    reason: str
    attempts: int
    time_ms: int


class WriteErrorTable(StoreConnection):
    """The write errors' methods of :class:`~twinplane.edge.store.EdgeStore`."""

    def put_write_errors(
        self,
        errors: Iterable[StoredWriteError],
        cleared: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Stores ``errors`` and deletes the rows of ``cleared`` ``(device_id, property)``.

        One transaction for both: either every change is stored or none is.
        """
        rows = [msgspec.structs.astuple(e) for e in errors]
        gone = list(cleared)
        with self._tx("put_write_errors") as conn:
            if gone:
                conn.executemany(_DELETE, gone)
            if rows:
                conn.executemany(_PUT, rows)

    def list_write_errors(self) -> list[StoredWriteError]:
        """Every stored write error, by device and property."""
        sql = "SELECT * FROM write_errors ORDER BY device_id, property"
        return [StoredWriteError(*r) for r in self._read("list_write_errors", sql)]
