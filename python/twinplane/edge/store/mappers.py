"""The ``mappers`` table: the mappers registered with ``MapperRegister`` (DMI ``MapperInfo``).

Kept across restarts, so the device manager reaches its mappers again before they register anew.
"""

from __future__ import annotations

from typing import Final

import msgspec

from twinplane.edge.store.connection import StoreConnection, now_ms

__all__ = ["MapperTable", "StoredMapper"]

_LIST_MAPPERS: Final = "SELECT * FROM mappers ORDER BY name"


class StoredMapper(msgspec.Struct, frozen=True):
    """A registered mapper (DMI ``MapperInfo``; ``address`` is its socket path)."""

    name: str
    protocol: str
    address: str
    version: str
    api_version: str
    state: str
    registered_ms: int


class MapperTable(StoreConnection):
    """The mappers' methods of :class:`~twinplane.edge.store.EdgeStore`."""

    def put_mapper(  # noqa: PLR0913 - one argument per MapperInfo field
        self,
        name: str,
        *,
        protocol: str,
        address: str,
        version: str = "",
        api_version: str = "",
        state: str = "",
        registered_ms: int | None = None,
    ) -> StoredMapper:
        """Registers (or re-registers) a mapper; ``registered_ms`` defaults to now."""
        mapper = StoredMapper(
            name,
            protocol,
            address,
            version,
            api_version,
            state,
            now_ms() if registered_ms is None else registered_ms,
        )
        with self._tx("put_mapper") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO mappers VALUES (?, ?, ?, ?, ?, ?, ?)",
                msgspec.structs.astuple(mapper),
            )
        return mapper

    def get_mapper(self, name: str) -> StoredMapper | None:
        """The registered mapper, or ``None``."""
        rows = self._read("get_mapper", "SELECT * FROM mappers WHERE name=?", (name,))
        return StoredMapper(*rows[0]) if rows else None

    def list_mappers(self) -> list[StoredMapper]:
        """Every registered mapper, by name."""
        return [StoredMapper(*r) for r in self._read("list_mappers", _LIST_MAPPERS)]

    def delete_mapper(self, name: str) -> bool:
        """Forgets a mapper; whether it was registered."""
        with self._tx("delete_mapper") as conn:
            return conn.execute("DELETE FROM mappers WHERE name=?", (name,)).rowcount > 0
