"""pymodbus peers for the driver tests: datastores set here, served by pymodbus's servers.

Units 1 and 2 answer at once, unit 3 answers after ``SLOW`` seconds. Each unit has ``SIZE``
coils, discrete inputs, holding and input registers with values computed from the unit id.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence

from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData, SimDevice

from twinplane.drivers.modbus.frames import pack_bits, pack_registers

HOST = "127.0.0.1"
SIZE = 64
"""Addresses of each kind per unit."""
SLOW = 0.3
"""Seconds unit 3 takes to answer."""


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def coils(unit: int) -> list[bool]:
    """Unit ``unit``'s initial coils."""
    return [(i * unit) % 3 == 0 for i in range(SIZE)]


def discrete_inputs(unit: int) -> list[bool]:
    """Unit ``unit``'s discrete inputs."""
    return [(i + unit) % 2 == 1 for i in range(SIZE)]


def holding(unit: int) -> list[int]:
    """Unit ``unit``'s initial holding registers."""
    return [(1000 * unit + 17 * i) & 0xFFFF for i in range(SIZE)]


def inputs(unit: int) -> list[int]:
    """Unit ``unit``'s input registers."""
    return [(0xF000 + 257 * i * unit) & 0xFFFF for i in range(SIZE)]


EXPECTED: dict[str, Callable[[int], Sequence[int]]] = {
    "CoilRegister": coils,
    "DiscreteInputRegister": discrete_inputs,
    "HoldingRegister": holding,
    "InputRegister": inputs,
}


def expected(unit: int, kind: str, address: int, count: int) -> bytes:
    """The data bytes a read of the initial datastore answers."""
    values = EXPECTED[kind](unit)[address : address + count]
    if kind in ("CoilRegister", "DiscreteInputRegister"):
        return pack_bits(values)
    return pack_registers([int(v) for v in values])


async def slow_action(  # noqa: PLR0913, PLR0917 - pymodbus's action signature
    function_code: int,
    start_address: int,
    address: int,
    count: int,
    current_registers: list[int],
    set_values: list[int] | list[bool] | None,
) -> ExcCodes | None:
    """Makes a unit answer late."""
    await asyncio.sleep(SLOW)
    return None


def device(unit: int) -> SimDevice:
    """A pymodbus device with separate blocks for the four kinds."""
    return SimDevice(
        id=unit,
        simdata=(
            [SimData(0, values=coils(unit), datatype=DataType.BITS)],
            [SimData(0, values=discrete_inputs(unit), datatype=DataType.BITS)],
            [SimData(0, values=holding(unit), datatype=DataType.REGISTERS)],
            [SimData(0, values=inputs(unit), datatype=DataType.REGISTERS)],
        ),
        action=slow_action if unit == 3 else None,
    )
