"""Our Modbus TCP client against pymodbus's own server, over loopback.

Each test starts a real ``pymodbus.server.ModbusTcpServer`` on a free port with the datastore of
``modbus_peers`` (units 1 and 2 answer at once, unit 3 answers after ``SLOW`` seconds), and talks
to it through :class:`ModbusTcpClient`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import cast

import pytest

from modbus_peers import EXPECTED, HOST, SIZE, SLOW, WireProbe, coils, expected, free_port, holding
from modbus_peers import PymodbusServer as Server
from twinplane.drivers.modbus import (
    ModbusConnectionError,
    ModbusError,
    ModbusExceptionError,
    ModbusRequestError,
    ModbusTcpClient,
    ModbusTimeoutError,
)
from twinplane.drivers.modbus.frames import pack_bits, pack_registers
from twinplane.twin import Engine, PropertySpec, RegisterKindName

WAIT = 5.0
"""Seconds any wait may take before a test fails."""

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """A pymodbus server on a free port."""
    srv = Server((1, 2, 3))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def client(server: Server) -> AsyncIterator[ModbusTcpClient]:
    """Our client, connected to the server."""
    async with ModbusTcpClient(HOST, server.port, timeout=WAIT) as c:
        yield c


@pytest.mark.parametrize("kind", list(EXPECTED))
async def test_reads_every_kind(client: ModbusTcpClient, kind: str) -> None:
    """Every register kind reads back the datastore's values as the engine's frame bytes."""
    for unit, address, count in [(1, 0, 1), (1, 5, 10), (2, 0, SIZE), (2, 13, 19), (1, 63, 1)]:
        assert await client.read(unit, kind, address, count) == expected(unit, kind, address, count)
    assert client.counters.responses == 5
    assert client.counters.errors == {
        "timeout": 0,
        "exception": 0,
        "frame": 0,
        "connection": 0,
    }


async def test_writes_every_function_stick(client: ModbusTcpClient) -> None:
    """Functions 5, 6, 15 and 16 write what a read then returns."""
    await client.write_single_coil(1, 1, value=True)
    await client.write_single_coil(1, 0, value=False)
    await client.write_coils(1, 10, [True, False, True, True, False, False, True, True, True])
    await client.write_single_register(1, 2, 0xBEEF)
    await client.write_registers(1, 20, [1, 2, 3, 0xFFFF])
    want_coils = coils(1)
    want_coils[0:2] = [False, True]
    want_coils[10:19] = [True, False, True, True, False, False, True, True, True]
    assert await client.read(1, "CoilRegister", 0, 20) == pack_bits(want_coils[:20])
    assert await client.read(1, "HoldingRegister", 2, 1) == b"\xbe\xef"
    assert await client.read(1, "HoldingRegister", 19, 6) == pack_registers(
        [holding(1)[19], 1, 2, 3, 0xFFFF, holding(1)[24]]
    )
    assert await client.read(2, "HoldingRegister", 20, 1) == pack_registers([holding(2)[20]])


async def test_engine_writes_and_reads_through_the_client(client: ModbusTcpClient) -> None:
    """The engine's write tuples go through execute_write and its frames decode what was set."""
    engine = Engine()
    specs: list[PropertySpec] = [
        {
            "name": "setpoint",
            "type": "FLOAT",
            "visitor": {
                "register": "HoldingRegister",
                "offset": 30,
                "limit": 2,
                "dataType": "float32",
            },
        },
        {
            "name": "level",
            "type": "INT",
            "visitor": {
                "register": "HoldingRegister",
                "offset": 40,
                "limit": 1,
                "dataType": "int16",
            },
        },
        {"name": "pump", "type": "BOOLEAN", "visitor": {"register": "CoilRegister", "offset": 7}},
    ]
    dev = engine.upsert_device("default/boiler", specs)
    for prop, value in [("setpoint", 21.5), ("level", -42), ("pump", True)]:
        await client.execute_write(2, engine.encode_write(dev, prop, value))
    for kind, start, count in engine.read_plan(dev):
        frame = await client.read(2, kind, start, count)
        engine.ingest_frame(dev, cast(RegisterKindName, kind), start, frame, 1_000, count)
    reported = {c["property"]: c["value"] for c in engine.report().to_list()}
    assert reported == {"setpoint": "21.5", "level": "-42", "pump": "true"}


async def test_exception_response_is_typed(client: ModbusTcpClient) -> None:
    """A read past the datastore answers exception 2, raised with unit, function and code."""
    with pytest.raises(ModbusExceptionError) as info:
        await client.read(1, "InputRegister", SIZE - 1, 2)
    assert (info.value.unit, info.value.function, info.value.code) == (1, 4, 2)
    assert info.value.code_name == "ILLEGAL_DATA_ADDRESS"
    with pytest.raises(ModbusExceptionError):
        await client.write_registers(1, SIZE, [1])
    assert client.counters.exceptions == 2
    assert await client.read(1, "InputRegister", 0, 2) == expected(1, "InputRegister", 0, 2)


async def test_concurrent_reads_on_one_connection(server: Server) -> None:
    """Concurrent reads on one connection go one at a time (the default), each with its data."""
    # pymodbus's server answers one request at a time per connection (it keeps only the first
    # request it framed and drops the rest of its buffer when it answers): the default window
    # of one request in flight is what it needs. Pipelining is tested against the simulator
    # (tests/sim) and the third-party servers of test_modbus_third_party.py.
    rng = random.Random(4)
    reads = []
    for _ in range(300):
        kind = rng.choice(list(EXPECTED))
        count = rng.randint(1, 20)
        reads.append((rng.choice([1, 2]), kind, rng.randint(0, SIZE - count), count))
    async with (
        WireProbe(server.port) as probe,
        ModbusTcpClient(HOST, probe.port, timeout=WAIT) as client,
    ):
        assert client.max_in_flight == 1
        tasks = [asyncio.create_task(client.read(*r)) for r in reads]
        await asyncio.sleep(0)
        assert client.in_flight == len(reads)  # every read made, waiting its turn
        results = await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
        assert results == [expected(*r) for r in reads]
        assert probe.most_outstanding == 1  # on the wire: one transaction at a time
        assert len(probe.requests) == len(reads)
        assert client.in_flight == 0
        assert client.counters.requests == client.counters.responses == len(reads)


async def test_timeout_and_late_answer_dropped(server: Server) -> None:
    """A unit slower than the timeout raises ModbusTimeoutError; its late answer is dropped."""
    async with ModbusTcpClient(HOST, server.port, timeout=SLOW / 3) as client:
        with pytest.raises(ModbusTimeoutError) as info:
            await client.read(3, "HoldingRegister", 0, 4)
        assert (info.value.unit, info.value.function) == (3, 3)
        assert client.in_flight == 0
        async with asyncio.timeout(WAIT):
            while client.counters.unknown_responses == 0:  # noqa: ASYNC110 - a counter, bounded
                await asyncio.sleep(0.02)
        assert await client.read(1, "HoldingRegister", 0, 4) == expected(1, "HoldingRegister", 0, 4)
        assert client.counters.timeouts == 1
        assert client.counters.reconnects == 0


async def test_reconnects_after_the_server_closes(server: Server) -> None:
    """A server gone fails the calls in flight and after; once it is back, a call reconnects."""
    async with ModbusTcpClient(HOST, server.port, timeout=WAIT) as client:
        assert await client.read(1, "InputRegister", 0, 3) == expected(1, "InputRegister", 0, 3)
        in_flight = asyncio.create_task(client.read(3, "InputRegister", 0, 3))
        await asyncio.sleep(SLOW / 3)
        await server.stop()
        with pytest.raises(ModbusConnectionError):
            await asyncio.wait_for(in_flight, WAIT)
        assert client.counters.connection_errors == 1
        with pytest.raises(ModbusConnectionError, match="connect failed"):
            await client.read(1, "InputRegister", 0, 3)
        await server.start()
        assert await client.read(2, "InputRegister", 0, 3) == expected(2, "InputRegister", 0, 3)
        assert client.connected
        assert client.counters.reconnects == 1
        assert client.counters.connection_errors == 2


async def test_connect_refused_is_a_connection_error() -> None:
    """Nothing listening is a ModbusConnectionError from the context manager."""
    with pytest.raises(ModbusConnectionError, match="connect failed"):
        async with ModbusTcpClient(HOST, free_port(), timeout=1):
            pass


async def test_close_fails_requests_in_flight(server: Server) -> None:
    """Closing the client fails what is in flight, and later calls, with a connection error."""
    client = ModbusTcpClient(HOST, server.port, timeout=WAIT)
    await client.connect()
    in_flight = asyncio.create_task(client.read(3, "HoldingRegister", 0, 1))
    await asyncio.sleep(0.05)
    await client.close()
    with pytest.raises(ModbusConnectionError):
        await asyncio.wait_for(in_flight, WAIT)
    with pytest.raises(ModbusConnectionError, match="closed"):
        await client.read(1, "HoldingRegister", 0, 1)


async def test_bad_requests_never_reach_the_wire(client: ModbusTcpClient) -> None:
    """Requests outside Modbus limits are refused before anything is sent."""
    with pytest.raises(ModbusRequestError):
        await client.read(1, "HoldingRegister", 0, 0)
    with pytest.raises(ModbusRequestError):
        await client.read(1, "HoldingRegister", 0, 126)
    with pytest.raises(ModbusRequestError):
        await client.read(1, "Registers", 0, 1)
    with pytest.raises(ModbusRequestError):
        await client.write_single_register(1, 0, 70_000)
    with pytest.raises(ModbusRequestError):
        await client.execute_write(1, (3, 0, [1]))
    assert client.counters.requests == 0
    assert isinstance(ModbusRequestError("x"), (ModbusError, ValueError))
