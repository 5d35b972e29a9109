"""The ``device_states`` table: each device's last reported state and when it was last online."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from twinplane.edge.store.connection import StoreConnection, now_ms

__all__ = ["StateTable", "StoredState"]

_PUT_STATE = "INSERT OR REPLACE INTO device_states VALUES (?, ?, ?, ?)"


class StoredState(msgspec.Struct, frozen=True):
    """A device's last reported state (``online``, ``offline``, ...)."""

    device_id: str
    state: str
    last_online: str
    updated_ms: int


class StateTable(StoreConnection):
    """The device states' methods of :class:`~twinplane.edge.store.EdgeStore`."""

    def put_state(self, device_id: str, state: str, last_online: str) -> None:
        """Records a device's state and when it was last online (KubeEdge keeps both as text)."""
        with self._tx("put_state") as conn:
            conn.execute(_PUT_STATE, (device_id, state, last_online, now_ms()))

    def put_states(self, states: Iterable[tuple[str, str, str]]) -> None:
        """Records many ``(device_id, state, last_online)`` in one transaction."""
        now = now_ms()
        with self._tx("put_states") as conn:
            conn.executemany(
                _PUT_STATE,
                [(device, state, last_online, now) for device, state, last_online in states],
            )

    def get_state(self, device_id: str) -> StoredState | None:
        """A device's recorded state, or ``None``."""
        sql = "SELECT * FROM device_states WHERE device_id=?"
        rows = self._read("get_state", sql, (device_id,))
        return StoredState(*rows[0]) if rows else None

    def list_states(self) -> list[StoredState]:
        """Every recorded device state, by device id."""
        sql = "SELECT * FROM device_states ORDER BY device_id"
        return [StoredState(*r) for r in self._read("list_states", sql)]
