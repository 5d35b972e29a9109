"""The ``objects`` table: ``Device`` and ``DeviceModel`` manifests as applied, with a generation.

A manifest's body is stored as sorted JSON text, so an unchanged manifest is recognised and not
written again (its generation stays). Deleting a ``Device`` deletes its twins and its state in
the same transaction (a trigger in the schema).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any, Final

import msgspec

from twinplane.edge.store.connection import StoreConnection, json_text, now_ms

__all__ = ["DEVICE", "DEVICE_MODEL", "ObjectTable", "StoredObject", "device_id"]

DEVICE: Final = "Device"
"""The ``kind`` of a Device manifest."""
DEVICE_MODEL: Final = "DeviceModel"
"""The ``kind`` of a DeviceModel manifest."""

_SORTED: Final = msgspec.json.Encoder(order="sorted")  # manifests: equal dicts, equal text
_DICT: Final = msgspec.json.Decoder(dict[str, Any])


class StoredObject(msgspec.Struct, frozen=True):
    """A manifest as applied; ``generation`` starts at 1 and grows by one per change."""

    kind: str
    namespace: str
    name: str
    body: dict[str, Any]
    generation: int
    updated_ms: int


def device_id(namespace: str, name: str) -> str:
    """The id of a device and of its twins: ``<namespace>/<name>``, as in KubeEdge."""
    return f"{namespace}/{name}"


class ObjectTable(StoreConnection):
    """The manifests' methods of :class:`~twinplane.edge.store.EdgeStore`."""

    def put_object(self, kind: str, namespace: str, name: str, body: Mapping[str, Any]) -> int:
        """Stores a manifest; returns its generation (unchanged body: same one, no write)."""
        text = json_text(body, _SORTED)
        with self._tx("put_object") as conn:
            return _upsert(conn, (kind, namespace, name), text, now_ms())

    def put_objects(self, objects: Iterable[tuple[str, str, str, Mapping[str, Any]]]) -> list[int]:
        """:meth:`put_object` for many ``(kind, namespace, name, body)``; their generations.

        One transaction: all are stored, or none.
        """
        rows = [(kind, ns, name, json_text(body, _SORTED)) for kind, ns, name, body in objects]
        now = now_ms()
        with self._tx("put_objects") as conn:
            return [_upsert(conn, (kind, ns, name), text, now) for kind, ns, name, text in rows]

    def get_object(self, kind: str, namespace: str, name: str) -> StoredObject | None:
        """The stored manifest, or ``None``."""
        rows = self._read(
            "get_object",
            "SELECT * FROM objects WHERE kind=? AND namespace=? AND name=?",
            (kind, namespace, name),
        )
        return _object(rows[0]) if rows else None

    def list_objects(self, kind: str, namespace: str | None = None) -> list[StoredObject]:
        """The manifests of a kind (in one namespace if given), by namespace and name."""
        sql = "SELECT * FROM objects WHERE kind=?"
        params: tuple[str, ...] = (kind,)
        if namespace is not None:
            sql, params = sql + " AND namespace=?", (kind, namespace)
        rows = self._read("list_objects", sql + " ORDER BY namespace, name", params)
        return [_object(r) for r in rows]

    def delete_object(self, kind: str, namespace: str, name: str) -> bool:
        """Deletes a manifest (a Device with its twins and state); whether it existed."""
        with self._tx("delete_object") as conn:
            cur = conn.execute(
                "DELETE FROM objects WHERE kind=? AND namespace=? AND name=?",
                (kind, namespace, name),
            )
            return cur.rowcount > 0


def _upsert(conn: sqlite3.Connection, key: tuple[str, str, str], text: str, now: int) -> int:
    """Writes one manifest in the open transaction unless its text is unchanged; its generation.

    ``key`` is ``(kind, namespace, name)``.
    """
    row = conn.execute(
        "SELECT body, generation FROM objects WHERE kind=? AND namespace=? AND name=?", key
    ).fetchone()
    if row is not None and row[0] == text:
        return int(row[1])
    generation = 1 if row is None else int(row[1]) + 1
    conn.execute(
        "INSERT INTO objects VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (kind, namespace, name)"
        " DO UPDATE SET"
        " body=excluded.body, generation=excluded.generation,"
        " updated_ms=excluded.updated_ms",
        (*key, text, generation, now),
    )
    return generation


def _object(row: tuple[Any, ...]) -> StoredObject:
    kind, namespace, name, text, generation, updated_ms = row
    return StoredObject(kind, namespace, name, _DICT.decode(text), generation, updated_ms)
