"""Firmware artifacts on the edge: stored once, streamed in, checked, never held whole in memory.

An artifact is ``(name, version)`` with the device models it fits, its size and SHA-256. Its
bytes are a file in ``HOME/state/firmware/`` named by the SHA-256 (mode 0600), so artifacts with
the same bytes share one file; the metadata is a row of the ``firmware`` table
(:mod:`twinplane.edge.store.firmware`).

:meth:`FirmwareStore.add` streams the bytes into a temporary file in that folder while hashing
them, refuses more than ``max_bytes``, checks the SHA-256 the caller expects (if it gave one),
fsyncs, and only then renames the file into place and stores the row: an upload cut short, too
big or with the wrong digest leaves nothing behind. An artifact is immutable: adding the same
``(name, version)`` again with the same bytes is ``unchanged``, with other bytes a
:class:`FirmwareConflictError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import time
import uuid
from collections.abc import AsyncIterable
from pathlib import Path
from typing import Final

from twinplane.edge.store import AsyncEdgeStore
from twinplane.edge.store.firmware import StoredFirmware
from twinplane.errors import SpecError, TwinplaneError
from twinplane.owner_only import FILE_MODE, make_dirs

__all__ = [
    "MAX_FIRMWARE_BYTES",
    "FirmwareConflictError",
    "FirmwareStore",
    "FirmwareTooLargeError",
    "UnknownFirmwareError",
    "check_firmware_name",
]

MAX_FIRMWARE_BYTES: Final = 64 * 1024 * 1024
"""The largest artifact the edge takes by default (64 MiB)."""

_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_SHA256: Final = re.compile(r"[0-9a-f]{64}")
_MODEL: Final = re.compile(r"(?:[a-z0-9][a-z0-9.-]{0,62}/)?[a-z0-9][a-z0-9.-]{0,252}")
_WRITE_AT: Final = 1024 * 1024  # bytes gathered before one write in the file thread
_INCOMING: Final = ".incoming-"


class UnknownFirmwareError(TwinplaneError):
    """No artifact has that name and version."""


class FirmwareConflictError(TwinplaneError):
    """That name and version hold other bytes: artifacts are immutable."""


class FirmwareTooLargeError(TwinplaneError):
    """The upload is larger than the store takes."""


def check_firmware_name(value: str, field: str) -> str:
    """``value`` if it is a valid artifact name or version (1-63 of ``A-Za-z0-9._-``).

    Raises:
        SpecError: It is not; the error names ``field``.
    """
    if not _NAME.fullmatch(value):
        raise SpecError(
            f"{field}: {value[:80]!r} is not 1-63 letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit)",
            path=field,
        )
    return value


def _models(models: tuple[str, ...]) -> tuple[str, ...]:
    out = []
    for i, model in enumerate(models):
        if not _MODEL.fullmatch(model):
            raise SpecError(
                f"models[{i}]: {model[:80]!r} is not a DeviceModel name or <namespace>/<name>",
                path=f"models[{i}]",
            )
        out.append(model if "/" in model else f"default/{model}")
    if not out:
        raise SpecError("models: name at least one DeviceModel the firmware fits", path="models")
    return tuple(dict.fromkeys(out))


class FirmwareStore:
    """The edge's firmware artifacts: files by SHA-256 in ``folder``, metadata in ``store``.

    Args:
        store: The device manager's store (the ``firmware`` table).
        folder: Where the files go (made 0700 if missing).
        max_bytes: The largest artifact taken.
    """

    def __init__(
        self, store: AsyncEdgeStore, folder: Path, *, max_bytes: int = MAX_FIRMWARE_BYTES
    ) -> None:
        self.store = store
        self.folder = folder
        self.max_bytes = max_bytes
        self._lock = asyncio.Lock()

    def start(self) -> None:
        """Makes the folder and removes what an interrupted upload left."""
        make_dirs(self.folder)
        for stale in self.folder.glob(_INCOMING + "*"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()

    def path(self, fw: StoredFirmware) -> Path:
        """The file holding an artifact's bytes."""
        return self.folder / fw.sha256

    async def add(  # noqa: PLR0913 - the artifact's fields, keyword-only
        self,
        name: str,
        version: str,
        chunks: AsyncIterable[bytes],
        *,
        models: tuple[str, ...],
        description: str = "",
        sha256: str | None = None,
    ) -> tuple[StoredFirmware, str]:
        """Streams an artifact in; the stored artifact and ``created`` or ``unchanged``.

        Raises:
            SpecError: A bad name, version, model or expected digest, or the bytes do not have
                the expected SHA-256 (nothing is stored).
            FirmwareTooLargeError: More than :attr:`max_bytes` came (nothing is stored).
            FirmwareConflictError: ``(name, version)`` holds other bytes.
        """
        check_firmware_name(name, "name")
        check_firmware_name(version, "version")
        fits = _models(models)
        if sha256 is not None and not _SHA256.fullmatch(sha256):
            raise SpecError(
                f"sha256: {sha256[:80]!r} is not 64 lower-case hex digits", path="sha256"
            )
        if len(description) > 1024:  # noqa: PLR2004
            raise SpecError("description: at most 1024 characters", path="description")
        temp = self.folder / f"{_INCOMING}{uuid.uuid4().hex}"
        try:
            digest, size = await self._receive(chunks, temp)
            if sha256 is not None and digest != sha256:
                raise SpecError(
                    f"sha256: the {size} bytes received have sha256 {digest}, not {sha256}",
                    path="sha256",
                )
            fw = StoredFirmware(
                name, version, fits, size, digest, description, int(time.time() * 1000)
            )
            async with self._lock:  # one (name, version) decision at a time
                existing = await self.store.get_firmware(name, version)
                if existing is not None:
                    if existing.sha256 != digest:
                        raise FirmwareConflictError(
                            f"firmware {name} {version} exists with other bytes (sha256 "
                            f"{existing.sha256}); an artifact is immutable: give it a new version"
                        )
                    return existing, "unchanged"
                target = self.folder / digest
                if target.exists():
                    temp.unlink()
                else:
                    temp.replace(target)
                await self.store.put_firmware(fw)
            return fw, "created"
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    async def _receive(self, chunks: AsyncIterable[bytes], temp: Path) -> tuple[str, int]:
        hasher = hashlib.sha256()
        size = 0
        fd = await asyncio.to_thread(
            os.open, temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE
        )
        try:
            pending: list[bytes] = []
            gathered = 0
            async for chunk in chunks:
                size += len(chunk)
                if size > self.max_bytes:
                    raise FirmwareTooLargeError(
                        f"firmware is larger than the {self.max_bytes} bytes this edge takes"
                    )
                hasher.update(chunk)
                pending.append(chunk)
                gathered += len(chunk)
                if gathered >= _WRITE_AT:
                    await asyncio.to_thread(_write_all, fd, b"".join(pending))
                    pending, gathered = [], 0
            if pending:
                await asyncio.to_thread(_write_all, fd, b"".join(pending))
            await asyncio.to_thread(os.fsync, fd)
        finally:
            os.close(fd)
        return hasher.hexdigest(), size

    async def get(self, name: str, version: str) -> StoredFirmware:
        """The artifact ``(name, version)``.

        Raises:
            UnknownFirmwareError: There is none.
        """
        fw = await self.store.get_firmware(name, version)
        if fw is None:
            raise UnknownFirmwareError(f"no firmware {name} {version} on this edge")
        return fw

    async def list(self) -> list[StoredFirmware]:
        """Every artifact, by name then version."""
        return await self.store.list_firmware()

    async def delete(self, name: str, version: str) -> None:
        """Deletes an artifact, and its file when no other artifact has the same bytes.

        Raises:
            UnknownFirmwareError: There is none.
        """
        async with self._lock:
            fw = await self.store.get_firmware(name, version)
            left = await self.store.delete_firmware(name, version)
            if fw is None or left is None:
                raise UnknownFirmwareError(f"no firmware {name} {version} on this edge")
            if left == 0:
                with contextlib.suppress(FileNotFoundError):
                    await asyncio.to_thread(self.path(fw).unlink)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
