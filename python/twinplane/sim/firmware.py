"""A simulated device's firmware transfer block: a register-block upgrade protocol.

The holding registers from a base address ``B`` (60000 by default) are the block; uint32 values
are two registers, high word first (docs/upgrades.md has the table and the host's sequence):

====== ============== =====================================================================
B+0    ACTIVE_VERSION the running image's version (uint32, read-only; ``major << 16 | minor``)
B+2    STAGED_VERSION the version in the staged slot (uint32, read-only; 0: none)
B+4    STATUS         :class:`Status` (read-only)
B+5    NEXT_OFFSET    the byte offset the device expects next (uint32, read-only)
B+7    IMAGE_SIZE     uint32, written before BEGIN
B+9    IMAGE_CRC32    uint32 (``zlib.crc32`` of the whole image), written before BEGIN
B+11   TARGET_VERSION uint32, written before BEGIN
B+13   COMMAND        :class:`Command`
B+14   CHUNK_OFFSET   uint32 } one function-16 write from B+14: the header, then the data,
B+16   CHUNK_LENGTH   bytes  } two bytes a register, big-endian, the last one padded with 0
B+17   CHUNK_CRC16    the Modbus RTU CRC-16 of the chunk's bytes
B+18   CHUNK_DATA     up to 116 registers (232 bytes)
====== ============== =====================================================================

:class:`FirmwareSlot` is one device's state and answers the block's reads and writes. It knows
nothing of sockets: a write that makes the device reboot (COMMIT, ROLLBACK) or lose power
returns an :class:`Outage`, which the simulator carries out (the unit answers nothing until it
ends, then :meth:`FirmwareSlot.wake` runs).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from twinplane.drivers.modbus.errors import ExceptionCode, ModbusExceptionError
from twinplane.drivers.modbus.frames import Function

__all__ = [
    "BLOCK_SIZE",
    "CHUNK_MAX",
    "DEFAULT_BASE",
    "DEFAULT_REBOOT_S",
    "DEFAULT_VERSION",
    "NO_FAULTS",
    "Command",
    "FirmwareFaults",
    "FirmwareSlot",
    "Outage",
    "Status",
    "crc16",
]

DEFAULT_BASE: Final = 60000
DEFAULT_VERSION: Final = 0x0001_0000
"""1.0, as ``major << 16 | minor``."""
DEFAULT_REBOOT_S: Final = 1.0
CHUNK_MAX: Final = 232
"""Bytes a chunk carries at most (4 header + 116 data registers: one function-16 write)."""
MAX_IMAGE: Final = 16 * 1024 * 1024
"""The largest image a simulated device takes."""

ACTIVE_VERSION: Final = 0
STAGED_VERSION: Final = 2
STATUS: Final = 4
NEXT_OFFSET: Final = 5
IMAGE_SIZE: Final = 7
IMAGE_CRC32: Final = 9
TARGET_VERSION: Final = 11
COMMAND: Final = 13
CHUNK: Final = 14
"""CHUNK_OFFSET; the chunk header (4 registers) and data follow."""
_CHUNK_HEADER: Final = 4
BLOCK_SIZE: Final = CHUNK + _CHUNK_HEADER + CHUNK_MAX // 2
"""Registers in the block (B .. B+BLOCK_SIZE-1)."""


class Status(IntEnum):
    """STATUS (B+4)."""

    IDLE = 0
    RECEIVING = 1
    VERIFYING = 2
    STAGED = 3
    APPLYING = 4
    CHUNK_CRC_ERROR = 5
    IMAGE_ERROR = 6
    BOOT_FAILED = 7
    ROLLED_BACK = 8


class Command(IntEnum):
    """COMMAND (B+13)."""

    BEGIN = 1
    COMMIT = 2
    ABORT = 3
    ROLLBACK = 4


_RECEIVING: Final = (Status.RECEIVING, Status.CHUNK_CRC_ERROR)
"""States of a transfer in progress (a chunk error leaves it resumable)."""


def _crc16_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC16: Final = _crc16_table()


def crc16(data: bytes | bytearray) -> int:
    """The Modbus RTU CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF) of ``data``."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC16[(crc ^ byte) & 0xFF]
    return crc


@dataclass(frozen=True, slots=True)
class FirmwareFaults:
    """What goes wrong with a unit's firmware transfers.

    Attributes:
        power_loss_at: The unit loses power when a chunk would take the bytes received to this
            many or more (once per transfer): that chunk is neither kept nor answered.
        bad_chunk: The Nth chunk write (1-based, counted from a BEGIN that starts a transfer)
            is corrupted on receipt: CRC error.
        reboot: Seconds a reboot (or a power loss) keeps the unit silent; ``None``: the
            default.
        boot_fail: A committed image fails to boot: the unit comes back on the old one.
    """

    power_loss_at: int | None = None
    bad_chunk: int | None = None
    reboot: float | None = None
    boot_fail: bool = False


NO_FAULTS: Final = FirmwareFaults()


@dataclass(frozen=True, slots=True)
class Outage:
    """The unit answers nothing for ``seconds``; then :meth:`FirmwareSlot.wake`.

    Attributes:
        seconds: How long.
        answer: Whether the request that caused it is answered first (a COMMIT is; the chunk
            that met a power loss is not).
    """

    seconds: float
    answer: bool


def _u32(registers: Sequence[int], at: int) -> int:
    return registers[at] << 16 | registers[at + 1]


def _split(value: int) -> tuple[int, int]:
    return value >> 16 & 0xFFFF, value & 0xFFFF


def _bad_value(function: int) -> ModbusExceptionError:
    return ModbusExceptionError(function, ExceptionCode.ILLEGAL_DATA_VALUE)


class FirmwareSlot:
    """One device's firmware: the running image, the staged slot and a transfer in progress.

    Args:
        version: The running image's version.
    """

    def __init__(self, version: int = DEFAULT_VERSION) -> None:
        self.active = version
        self.previous: int | None = None
        self.staged = 0
        self.status = Status.IDLE
        self.next_offset = 0
        self.chunks_applied = 0
        """Chunks written into an image (repeats and rejected chunks not counted)."""
        self._params = [0] * 6  # IMAGE_SIZE, IMAGE_CRC32, TARGET_VERSION as written
        self._chunk = [0] * (BLOCK_SIZE - CHUNK)  # the last chunk write, as registers
        self._transfer: tuple[int, int, int] | None = None  # (size, crc, version) begun
        self._image = bytearray()
        self._chunk_writes = 0
        self._power_lost = False
        self._on_wake: tuple[int, Status] | None = None  # (active version, status) after

    @property
    def image(self) -> bytes:
        """The bytes of the transfer received so far."""
        return bytes(self._image[: self.next_offset])

    def registers(self, offset: int, count: int) -> list[int]:
        """The block's registers ``offset .. offset+count-1`` (relative to its base)."""
        values = [
            *_split(self.active),
            *_split(self.staged),
            int(self.status),
            *_split(self.next_offset),
            *self._params,
            0,  # COMMAND reads 0
            *self._chunk,
        ]
        return values[offset : offset + count]

    def write(
        self, function: int, offset: int, values: Sequence[int], faults: FirmwareFaults
    ) -> Outage | None:
        """Applies a write of registers from ``offset`` (relative to the base).

        Returns:
            An outage to carry out, or ``None``: answer the write now.

        Raises:
            ModbusExceptionError: ``ILLEGAL_DATA_ADDRESS`` for a read-only register,
                ``ILLEGAL_DATA_VALUE`` for a bad command or a chunk refused.
        """
        if offset >= CHUNK:
            return self._receive(function, offset, values, faults)
        stop = offset + len(values)
        if offset < IMAGE_SIZE or stop > CHUNK:
            raise ModbusExceptionError(function, ExceptionCode.ILLEGAL_DATA_ADDRESS)
        params = values[: COMMAND - offset]
        self._params[offset - IMAGE_SIZE : offset - IMAGE_SIZE + len(params)] = params
        if stop == CHUNK:
            return self._command(function, values[-1], faults)
        return None

    def wake(self) -> None:
        """Ends an outage: the device runs again."""
        if self._on_wake is not None:
            self.active, self.status = self._on_wake
            self._on_wake = None

    def _command(self, function: int, command: int, faults: FirmwareFaults) -> Outage | None:
        reboot = DEFAULT_REBOOT_S if faults.reboot is None else faults.reboot
        if command == Command.BEGIN:
            self._begin(function)
        elif command == Command.COMMIT:
            self._commit(function, faults)
            return Outage(reboot, answer=True)
        elif command == Command.ABORT:
            self._drop(Status.IDLE)
        elif command == Command.ROLLBACK:
            if self.previous is None:
                raise _bad_value(function)
            self.previous, back = self.active, self.previous
            self.status = Status.APPLYING
            self._on_wake = (back, Status.ROLLED_BACK)
            return Outage(reboot, answer=True)
        else:
            raise _bad_value(function)
        return None

    def _begin(self, function: int) -> None:
        params = self._params
        wanted = (_u32(params, 0), _u32(params, 2), _u32(params, 4))
        if not 1 <= wanted[0] <= MAX_IMAGE:
            raise _bad_value(function)
        if self.status in _RECEIVING and self._transfer == wanted:
            self.status = Status.RECEIVING  # a resume: NEXT_OFFSET stays
            return
        self._drop(Status.RECEIVING)
        self._transfer = wanted

    def _commit(self, function: int, faults: FirmwareFaults) -> None:
        if self.status not in _RECEIVING or self._transfer is None:
            raise _bad_value(function)
        size, crc, version = self._transfer
        self.status = Status.VERIFYING
        if self.next_offset != size or zlib.crc32(self._image) != crc:
            self._drop(Status.IMAGE_ERROR)
            raise _bad_value(function)
        self.staged = version
        self.status = Status.APPLYING  # staged (3), then straight to applying
        if faults.boot_fail:
            self._on_wake = (self.active, Status.BOOT_FAILED)
        else:
            self.previous = self.active
            self._on_wake = (version, Status.IDLE)
            self.staged = 0
        self._transfer = None
        self._image = bytearray()
        self.next_offset = 0

    def _drop(self, status: Status) -> None:
        self._transfer = None
        self._image = bytearray()
        self.next_offset = 0
        self._chunk_writes = 0
        self._power_lost = False
        self.status = status

    def _receive(
        self, function: int, offset: int, values: Sequence[int], faults: FirmwareFaults
    ) -> Outage | None:
        """A chunk: one function-16 write of the header and the data from CHUNK_OFFSET."""
        if function != Function.WRITE_MULTIPLE_REGISTERS or offset != CHUNK:
            raise _bad_value(function)
        if self.status not in _RECEIVING or self._transfer is None:
            raise _bad_value(function)
        self._chunk_writes += 1
        self._chunk[: len(values)] = values
        if len(values) < _CHUNK_HEADER:
            raise self._refused(function)
        at, length, check = _u32(values, 0), values[2], values[3]
        data = b"".join(v.to_bytes(2, "big") for v in values[_CHUNK_HEADER:])
        if faults.bad_chunk == self._chunk_writes:
            data = bytes((data[0] ^ 0xFF,)) + data[1:] if data else data
        size = self._transfer[0]
        fits = 1 <= length <= CHUNK_MAX and len(data) == length + (length & 1)
        if not fits or at + length > size or at > self.next_offset:
            raise self._refused(function)
        if at < self.next_offset:
            return None  # a repeat after a lost answer: acknowledged, not applied again
        chunk = data[:length]
        if crc16(chunk) != check:
            raise self._refused(function)
        if (
            faults.power_loss_at is not None
            and not self._power_lost
            and at + length >= faults.power_loss_at
        ):
            self._power_lost = True
            self._on_wake = (self.active, Status.RECEIVING)
            return Outage(DEFAULT_REBOOT_S if faults.reboot is None else faults.reboot, False)
        self._image += chunk
        self.next_offset += length
        self.chunks_applied += 1
        self.status = Status.RECEIVING
        return None

    def _refused(self, function: int) -> ModbusExceptionError:
        """A chunk refused: STATUS says so, the transfer stays resumable from NEXT_OFFSET."""
        self.status = Status.CHUNK_CRC_ERROR
        return _bad_value(function)
