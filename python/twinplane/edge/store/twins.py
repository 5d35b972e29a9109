"""The ``twins`` table: every twin property's state, the engine's persisted JSON.

A body is written as it comes: the JSON text ``Engine.take_dirty()`` returns is stored verbatim
(not parsed), a mapping is encoded. Which twins are written when is decided by the device
manager's one persistence path (:mod:`twinplane.edge.persist`), not here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import msgspec

from twinplane.edge.store.connection import StoreConnection, json_text
from twinplane.edge.store.errors import StoreError

__all__ = ["TwinBody", "TwinTable"]

TwinBody = Mapping[str, Any] | str
"""A twin property's body: a TwinDict-shaped mapping, or its JSON text as the engine's
``take_dirty()`` returns it (stored verbatim, not parsed)."""

_PLAIN: Final = msgspec.json.Encoder()
_DICT: Final = msgspec.json.Decoder(dict[str, Any])
_UPSERT_TWIN: Final = (
    "INSERT INTO twins VALUES (?, ?, ?)"
    " ON CONFLICT (device_id, property) DO UPDATE SET body=excluded.body"
)


class TwinTable(StoreConnection):
    """The twins' methods of :class:`~twinplane.edge.store.EdgeStore`."""

    def save_twins(self, rows: Iterable[tuple[str, str, TwinBody]]) -> None:
        """Upserts twin properties ``(device_id, property, body)`` in one transaction.

        Raises:
            StoreError: A body cannot be encoded as JSON (nothing is written), or SQLite failed.
        """
        params = [(device, prop, self._text(device, prop, body)) for device, prop, body in rows]
        with self._tx("save_twins") as conn:
            conn.executemany(_UPSERT_TWIN, params)

    def _text(self, device: str, prop: str, body: TwinBody) -> str:
        if isinstance(body, str):
            return body
        try:
            return json_text(body, _PLAIN)
        except (TypeError, ValueError, msgspec.EncodeError) as exc:
            raise self._error(device, prop, f"body is not JSON-encodable: {exc}") from exc

    def load_twins(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every stored twin: ``{device_id: {property: body}}``."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for device, prop, text in self._read("load_twins", "SELECT * FROM twins"):
            try:
                out.setdefault(device, {})[prop] = _DICT.decode(text)
            except msgspec.DecodeError as exc:
                raise self._error(device, prop, f"stored body is not a JSON object: {exc}") from exc
        return out

    def _error(self, device: str, prop: str, what: str) -> StoreError:
        return StoreError(
            f"twin of {device} {prop}: {what}",
            db_path=str(self.path),
            device=device,
            property=prop,
        )

    def delete_twins(self, device_id: str, properties: Iterable[str] | None = None) -> int:
        """Deletes a device's twins (only ``properties`` if given); how many there were."""
        with self._tx("delete_twins") as conn:
            if properties is None:
                return conn.execute("DELETE FROM twins WHERE device_id=?", (device_id,)).rowcount
            sql = "DELETE FROM twins WHERE device_id=? AND property=?"
            return conn.executemany(sql, [(device_id, p) for p in properties]).rowcount
