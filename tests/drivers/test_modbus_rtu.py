"""Modbus RTU over a pseudo-terminal pair made by socat, against pymodbus's serial server.

``socat`` (Debian package ``socat``; ``.ci/run`` installs it) links two pseudo-terminals; a
pymodbus ``ModbusSerialServer`` answers on one end, :class:`ModbusRtuClient` asks on the other.
Without socat the tests fail when ``CI`` is set and are skipped elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer

from modbus_peers import SIZE, SLOW, device, expected, holding
from serial_line import pty_pair
from twinplane.drivers.modbus import (
    ModbusConnectionError,
    ModbusExceptionError,
    ModbusRequestError,
    ModbusTimeoutError,
)
from twinplane.drivers.modbus.frames import pack_bits, pack_registers
from twinplane.drivers.modbus.rtu import ModbusRtuClient
from twinplane.twin import encode_register

BAUD = 115_200
WAIT = 5.0
"""Seconds any wait may take before a test fails."""

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def line(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two linked pseudo-terminals: ``(server end, client end)``."""
    with pty_pair(tmp_path) as ends:
        yield ends


@pytest.fixture
async def client(line: tuple[str, str]) -> AsyncIterator[ModbusRtuClient]:
    """Our RTU client, with pymodbus's RTU server (units 1, 2, and slow 3) on the line."""
    server = ModbusSerialServer(
        [device(1), device(2), device(3)],
        framer=FramerType.RTU,
        port=line[0],
        baudrate=BAUD,
    )
    await server.serve_forever(background=True)
    try:
        async with ModbusRtuClient(line[1], baudrate=BAUD, timeout=SLOW / 3) as c:
            yield c
    finally:
        await server.shutdown()


@pytest.mark.parametrize(
    "kind", ["CoilRegister", "DiscreteInputRegister", "HoldingRegister", "InputRegister"]
)
async def test_reads_every_kind(client: ModbusRtuClient, kind: str) -> None:
    """Every register kind reads the datastore's values as the engine's frame bytes."""
    for unit, address, count in [(1, 0, 1), (2, 5, 10), (1, 0, SIZE), (2, 13, 19)]:
        assert await client.read(unit, kind, address, count) == expected(unit, kind, address, count)
    assert client.counters.responses == 4


async def test_writes_stick(client: ModbusRtuClient) -> None:
    """Functions 5, 6, 15, 16 and the engine's write tuples write what a read returns."""
    await client.write_single_coil(2, 0, value=True)
    await client.write_coils(2, 1, [True, True])
    await client.write_single_register(2, 0, 0xABCD)
    await client.write_registers(2, 1, [1, 2])
    await client.execute_write(
        2, encode_register({"register": "HoldingRegister", "offset": 3}, "INT", 77)
    )
    assert await client.read(2, "CoilRegister", 0, 3) == pack_bits([True, True, True])
    assert await client.read(2, "HoldingRegister", 0, 5) == pack_registers(
        [0xABCD, 1, 2, 77, holding(2)[4]]
    )


async def test_exception_response_is_typed(client: ModbusRtuClient) -> None:
    """A read past the datastore raises ModbusExceptionError with unit, function and code."""
    with pytest.raises(ModbusExceptionError) as info:
        await client.read(1, "HoldingRegister", SIZE - 1, 2)
    assert (info.value.unit, info.value.function, info.value.code) == (1, 3, 2)
    assert client.counters.exceptions == 1


async def test_slow_unit_times_out(client: ModbusRtuClient) -> None:
    """A unit slower than the timeout raises ModbusTimeoutError; the line then serves on."""
    with pytest.raises(ModbusTimeoutError) as info:
        await client.read(3, "InputRegister", 0, 2)
    assert (info.value.unit, info.value.function) == (3, 4)
    await asyncio.sleep(SLOW)  # let the slow unit's late answer pass on the line
    assert await client.read(1, "InputRegister", 0, 2) == expected(1, "InputRegister", 0, 2)
    assert client.counters.timeouts == 1


async def test_silent_line_times_out(line: tuple[str, str]) -> None:
    """With nothing answering on the line, a request raises ModbusTimeoutError."""
    async with ModbusRtuClient(line[1], baudrate=BAUD, timeout=0.1) as rtu:
        with pytest.raises(ModbusTimeoutError) as info:
            await rtu.read(5, "CoilRegister", 0, 8)
        assert (info.value.unit, info.value.function) == (5, 1)
        assert rtu.counters.timeouts == 1


async def test_one_request_at_a_time(client: ModbusRtuClient) -> None:
    """Concurrent reads queue on the line and each gets its own data."""
    reads = [(1 + i % 2, "HoldingRegister", i, 3) for i in range(20)]
    results = await asyncio.wait_for(asyncio.gather(*(client.read(*r) for r in reads)), WAIT)
    assert results == [expected(*r) for r in reads]


async def test_bad_requests_and_missing_port() -> None:
    """Requests outside Modbus limits are refused; a port that does not exist cannot open."""
    rtu = ModbusRtuClient("/dev/twinplane-no-such-port", timeout=0.5)
    with pytest.raises(ModbusRequestError):
        await rtu.read(1, "HoldingRegister", 0, 200)
    with pytest.raises(ModbusConnectionError):
        await rtu.read(1, "HoldingRegister", 0, 1)
    await rtu.close()
    with pytest.raises(ValueError, match="parity"):
        ModbusRtuClient("/dev/null", parity="mark")
