"""The ``firmware`` table: the metadata of the firmware artifacts kept on the edge.

A row is one artifact, ``(name, version)``: the device models it fits (a JSON list), its size
and sha256, a description, and when it was stored. The bytes are not in SQLite: they are a file
named by the sha256 (:mod:`twinplane.edge.firmware`), so two artifacts with the same bytes share
one file.
"""

from __future__ import annotations

from typing import Final

import msgspec

from twinplane.edge.store.connection import StoreConnection

__all__ = ["FirmwareTable", "StoredFirmware"]

_PUT: Final = "INSERT INTO firmware VALUES (?, ?, ?, ?, ?, ?, ?)"
_GET: Final = "SELECT * FROM firmware WHERE name = ? AND version = ?"
_LIST: Final = "SELECT * FROM firmware ORDER BY name, version"
_DELETE: Final = "DELETE FROM firmware WHERE name = ? AND version = ?"
_USES: Final = "SELECT count(*) FROM firmware WHERE sha256 = ?"
_MODELS: Final = msgspec.json.Decoder(list[str])


class StoredFirmware(msgspec.Struct, frozen=True):
    """One artifact's metadata.

    Attributes:
        name: The artifact's name (``thermostat-fw``).
        version: Its version (``1.2``).
        models: The device models it fits (``<namespace>/<name>``).
        size: Its length in bytes.
        sha256: Its SHA-256, lower-case hex (the name of its file).
        description: Free text.
        created_ms: When it was stored.
    """

    name: str
    version: str
    models: tuple[str, ...]
    size: int
    sha256: str
    description: str
    created_ms: int


def _row(row: tuple[object, ...]) -> StoredFirmware:
    name, version, models, size, sha256, description, created_ms = row
    return StoredFirmware(
        str(name),
        str(version),
        tuple(_MODELS.decode(str(models))),
        int(str(size)),
        str(sha256),
        str(description),
        int(str(created_ms)),
    )


class FirmwareTable(StoreConnection):
    """The firmware methods of :class:`~twinplane.edge.store.EdgeStore`."""

    def put_firmware(self, fw: StoredFirmware) -> None:
        """Stores a new artifact (an existing ``(name, version)`` is a :class:`StoreError`)."""
        row = (
            fw.name,
            fw.version,
            msgspec.json.encode(list(fw.models)).decode(),
            fw.size,
            fw.sha256,
            fw.description,
            fw.created_ms,
        )
        with self._tx("put_firmware") as conn:
            conn.execute(_PUT, row)

    def get_firmware(self, name: str, version: str) -> StoredFirmware | None:
        """The artifact ``(name, version)``, or ``None``."""
        rows = self._read("get_firmware", _GET, (name, version))
        return _row(rows[0]) if rows else None

    def list_firmware(self) -> list[StoredFirmware]:
        """Every artifact, by name then version."""
        return [_row(r) for r in self._read("list_firmware", _LIST)]

    def delete_firmware(self, name: str, version: str) -> int | None:
        """Deletes an artifact; how many artifacts still use its bytes (``None``: no such one)."""
        with self._tx("delete_firmware") as conn:
            row = conn.execute(_GET, (name, version)).fetchone()
            if row is None:
                return None
            conn.execute(_DELETE, (name, version))
            left = conn.execute(_USES, (str(row[4]),)).fetchone()
        return int(left[0])
