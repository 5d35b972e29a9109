"""The Modbus driver's commands: register blocks, coil pulses, reads on demand.

A method's ``driver`` block names the command; its other fields and the call's arguments
(over them) are the parameters:

``readRegisters``
    ``register`` (``HoldingRegister``, the default: FC3; ``InputRegister``: FC4), ``offset``
    (0..65535), ``count`` (1..125, default 1; ``offset + count`` at most 65536) and an optional
    ``dataType`` (``int16``, ``uint16``, ``int32``, ``uint32``, ``float32``: big-endian words,
    the 32-bit types two words each). Result ``{"register", "offset", "words": [...]}``, plus
    ``"decoded": [...]`` with a ``dataType``.
``writeRegisters``
    ``register`` (``HoldingRegister``, the default: FC16; ``CoilRegister``: FC15), ``offset``,
    ``values``: a JSON list or a comma-separated text (``"1,2,3"``, since call arguments are
    scalars), 1..123 values of 0..65535 (coils: 1..1968 values of 0/1 or booleans). Result
    ``{"register", "offset", "values": [...]}`` (what was written).
``pulseCoil``
    ``offset`` and ``durationMs`` (1..60000, default 500): the coil on (FC5), the wait, the
    coil off (FC5). The pulse is one job of the device's bus: a bus that carries one
    transaction at a time (a serial line, ``maxInFlight: 1``) is held for the whole pulse, so no
    poll runs between on and off; the off write is sent even when the call's deadline passes
    during the wait. Result ``{"offset", "durationMs"}``.

Each parameter is checked before anything is sent; a refusal names it (:class:`CommandError`
with ``field``).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Protocol

from twinplane.drivers.base import WriteOp
from twinplane.drivers.commands import CommandError, RunCommand, int_parameter

__all__ = ["COMMANDS", "prepare"]

COMMANDS: Final = frozenset({"readRegisters", "writeRegisters", "pulseCoil"})

MAX_READ: Final = 125
MAX_WRITE_REGISTERS: Final = 123
MAX_WRITE_COILS: Final = 1968
MAX_PULSE_MS: Final = 60_000
_ADDRESSES: Final = 0x10000
_WORD: Final = 0xFFFF
_READ_KINDS: Final = ("HoldingRegister", "InputRegister")
_WRITE_KINDS: Final = ("HoldingRegister", "CoilRegister")
_DECODE: Final[Mapping[str, tuple[str, int]]] = {
    "int16": (">h", 1),
    "uint16": (">H", 1),
    "int32": (">i", 2),
    "uint32": (">I", 2),
    "float32": (">f", 2),
}


class Bus(Protocol):
    """What a command needs of the device's Modbus client (TCP or RTU)."""

    async def read(
        self, unit: int, kind: str, address: int, count: int, *, urgent: bool = False
    ) -> bytes:
        """Reads ``count`` registers or bits; ``urgent``: ahead of the queued polls."""
        ...

    async def execute_write(self, unit: int, write: WriteOp) -> None:
        """Runs a ``(function, address, values)`` write."""
        ...


def prepare(
    command: str, params: Mapping[str, Any], bus: Callable[[], Bus], unit: int
) -> RunCommand:
    """Checks ``command``'s parameters; returns what runs it through ``bus()``.

    Raises:
        CommandError: An unknown command (``NotOffered``) or a refused parameter.
    """
    if command == "readRegisters":
        return _read_registers(params, bus, unit)
    if command == "writeRegisters":
        return _write_registers(params, bus, unit)
    if command == "pulseCoil":
        return _pulse_coil(params, bus, unit)
    allowed = ", ".join(sorted(COMMANDS))
    raise CommandError(
        f"the Modbus driver runs no command {command!r} (it runs: {allowed})",
        code="NotOffered",
        field="command",
    )


def _kind(params: Mapping[str, Any], allowed: Sequence[str]) -> str:
    kind = params.get("register", allowed[0])
    if kind not in allowed:
        raise CommandError(
            f"register must be one of {', '.join(allowed)}, not {kind!r}", field="register"
        )
    return str(kind)


def _span(offset: int, count: int, field: str) -> None:
    if offset + count > _ADDRESSES:
        raise CommandError(f"offset {offset} + {count} runs past 65535", field=field)


def _read_registers(params: Mapping[str, Any], bus: Callable[[], Bus], unit: int) -> RunCommand:
    kind = _kind(params, _READ_KINDS)
    offset = int_parameter(params, "offset", 0, _WORD)
    count = int_parameter(params, "count", 1, MAX_READ, default=1)
    _span(offset, count, "count")
    data_type = params.get("dataType")
    if data_type is not None and data_type not in _DECODE:
        allowed = ", ".join(_DECODE)
        raise CommandError(
            f"dataType must be one of {allowed}, not {data_type!r}", field="dataType"
        )
    if data_type is not None and count % _DECODE[data_type][1]:
        raise CommandError(f"count {count} is not a whole number of {data_type}", field="count")

    async def run() -> dict[str, Any]:
        data = await bus().read(unit, kind, offset, count, urgent=True)
        words = list(struct.unpack(f">{count}H", data[: 2 * count]))
        out: dict[str, Any] = {"register": kind, "offset": offset, "words": words}
        if data_type is not None:
            fmt, size = _DECODE[data_type]
            out["decoded"] = [
                struct.unpack(fmt, data[i : i + 2 * size])[0] for i in range(0, 2 * count, 2 * size)
            ]
        return out

    return run


def _values(params: Mapping[str, Any], coils: bool) -> list[int]:
    raw = params.get("values")
    if raw is None:
        raise CommandError("values is required", field="values")
    if isinstance(raw, str):
        items: list[Any] = [part.strip() for part in raw.split(",")] if raw.strip() else []
    elif isinstance(raw, list):
        items = raw
    else:
        raise CommandError("values must be a list or comma-separated text", field="values")
    limit = MAX_WRITE_COILS if coils else MAX_WRITE_REGISTERS
    if not 1 <= len(items) <= limit:
        raise CommandError(f"{len(items)} values is outside 1..{limit}", field="values")
    high = 1 if coils else _WORD
    out = []
    for i, item in enumerate(items):
        value = _value(item, coils)
        if value is None or not 0 <= value <= high:
            raise CommandError(
                f"values[{i}] {item!r} is not {'0/1' if coils else 'an integer 0..65535'}",
                field=f"values[{i}]",
            )
        out.append(value)
    return out


def _value(item: object, coils: bool) -> int | None:
    if isinstance(item, bool):
        return int(item) if coils else None
    if isinstance(item, float) and item.is_integer():
        item = int(item)
    if isinstance(item, int):
        return item
    if not isinstance(item, str):
        return None
    if coils and item.lower() in ("true", "false"):
        return int(item.lower() == "true")
    try:
        return int(item, 0)
    except ValueError:
        return None


def _write_registers(params: Mapping[str, Any], bus: Callable[[], Bus], unit: int) -> RunCommand:
    kind = _kind(params, _WRITE_KINDS)
    coils = kind == "CoilRegister"
    offset = int_parameter(params, "offset", 0, _WORD)
    values = _values(params, coils)
    _span(offset, len(values), "values")
    write: WriteOp = (15, offset, [bool(v) for v in values]) if coils else (16, offset, values)

    async def run() -> dict[str, Any]:
        await bus().execute_write(unit, write)
        return {"register": kind, "offset": offset, "values": values}

    return run


def _pulse_coil(params: Mapping[str, Any], bus: Callable[[], Bus], unit: int) -> RunCommand:
    offset = int_parameter(params, "offset", 0, _WORD)
    duration = int_parameter(params, "durationMs", 1, MAX_PULSE_MS, default=500)

    async def run() -> dict[str, Any]:
        client = bus()
        await client.execute_write(unit, (5, offset, [True]))
        try:
            await asyncio.sleep(duration / 1000)
        finally:  # the coil goes off even when the deadline passes during the wait
            await _shielded(client.execute_write(unit, (5, offset, [False])))
        return {"offset": offset, "durationMs": duration}

    return run


async def _shielded(write: Awaitable[None]) -> None:
    """Awaits ``write`` to its end even if the caller is cancelled meanwhile."""
    task = asyncio.ensure_future(write)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise
