"""The Modbus driver: frames, typed errors, the TCP and RTU clients, and the mapper adapter.

- :mod:`~twinplane.drivers.modbus.frames`: MBAP and PDU encode/decode (functions 1-6, 15, 16),
  strict response validation.
- :mod:`~twinplane.drivers.modbus.errors`: :class:`ModbusExceptionError`,
  :class:`ModbusTimeoutError`, :class:`ModbusFrameError`, :class:`ModbusConnectionError`.
- :mod:`~twinplane.drivers.modbus.tcp`: :class:`ModbusTcpClient`, pipelined over one connection.
- :mod:`~twinplane.drivers.modbus.rtu`: :class:`ModbusRtuClient`, one request at a time on a
  serial line (imported on use: it loads pymodbus).
- :mod:`~twinplane.drivers.modbus.pool`: the clients a bus's devices share, closed after the last.
- :mod:`~twinplane.drivers.modbus.adapter`: :class:`~twinplane.drivers.modbus.adapter.ModbusDriver`,
  the mapper's driver (protocol ``modbus``) over both clients.

Both clients share one interface: ``read(unit, kind, address, count) -> bytes`` gives the data
bytes :meth:`twinplane.twin.Engine.ingest_frame` takes, ``execute_write(unit, op)`` runs the
``(function, offset, values)`` write the engine encodes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twinplane.drivers.modbus.errors import (
    ExceptionCode,
    ModbusConnectionError,
    ModbusError,
    ModbusExceptionError,
    ModbusFrameError,
    ModbusRequestError,
    ModbusTimeoutError,
)
from twinplane.drivers.modbus.tcp import ModbusCounters, ModbusTcpClient, WriteOp

if TYPE_CHECKING:
    from twinplane.drivers.modbus.rtu import ModbusRtuClient

__all__ = [
    "ExceptionCode",
    "ModbusConnectionError",
    "ModbusCounters",
    "ModbusError",
    "ModbusExceptionError",
    "ModbusFrameError",
    "ModbusRequestError",
    "ModbusRtuClient",
    "ModbusTcpClient",
    "ModbusTimeoutError",
    "WriteOp",
]


def __getattr__(name: str) -> Any:  # noqa: ANN401 - module attribute hook
    if name == "ModbusRtuClient":
        from twinplane.drivers.modbus.rtu import ModbusRtuClient  # noqa: PLC0415 - on use

        return ModbusRtuClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
