"""The Modbus simulator: pymodbus's client and ours against it, every fault mode, the CLI.

Each test runs a :class:`ModbusSimulator` on free loopback ports (``port=0``) in the test's
event loop; values are frozen (``rate=0``) unless a test is about them changing, so what a
client reads can be compared with :meth:`ModbusSimulator.peek`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
import struct
import sys
import threading
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu import ExceptionResponse

import reference as ref
from modbus_peers import WireProbe
from twinplane.cli.sim import parse_ramp
from twinplane.drivers.modbus import (
    ModbusConnectionError,
    ModbusExceptionError,
    ModbusFrameError,
    ModbusRequestError,
    ModbusTcpClient,
    ModbusTimeoutError,
)
from twinplane.drivers.modbus.frames import pack_registers
from twinplane.errors import SpecError
from twinplane.sim.modbus import GARBLE_KINDS, ModbusSimulator, Ramp, SimFaults
from twinplane.twin import Engine, PropertySpec, RegisterKindName

HOST = "127.0.0.1"
KINDS: list[RegisterKindName] = [
    "CoilRegister",
    "DiscreteInputRegister",
    "InputRegister",
    "HoldingRegister",
]
WAIT = 5.0
"""Seconds any wait may take before a test fails."""
SHORT = 0.15
"""A client timeout for requests that are meant to go unanswered."""

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def sim() -> AsyncIterator[ModbusSimulator]:
    """Ten devices, unit ids 1..10 on one free port, values frozen."""
    async with ModbusSimulator(10, host=HOST, port=0, registers=50, rate=0) as s:
        yield s


@pytest.fixture
async def client(sim: ModbusSimulator) -> AsyncIterator[ModbusTcpClient]:
    """Our client on the simulator's port, with a short timeout, pipelining without limit."""
    async with ModbusTcpClient(HOST, sim.port, timeout=SHORT, max_in_flight=None) as c:
        yield c


@pytest.fixture
async def pymodbus_client(sim: ModbusSimulator) -> AsyncIterator[AsyncModbusTcpClient]:
    """The pymodbus client on the simulator's port."""
    c = AsyncModbusTcpClient(HOST, port=sim.port, timeout=WAIT, retries=0)
    assert await c.connect()
    try:
        yield c
    finally:
        c.close()


def bits(data: bytes, count: int) -> list[bool]:
    """The first ``count`` bits of packed coil data."""
    return [bool(data[i // 8] >> (i % 8) & 1) for i in range(count)]


def registers(data: bytes) -> list[int]:
    """Big-endian register bytes as integers."""
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


# --- pymodbus's client against the simulator ---------------------------------------------------


async def test_pymodbus_reads_every_kind(
    sim: ModbusSimulator, pymodbus_client: AsyncModbusTcpClient
) -> None:
    """The pymodbus client reads every kind of every unit as the simulator serves it."""
    c = pymodbus_client
    for unit in (1, 7):
        rr = await c.read_coils(3, count=20, device_id=unit)
        assert rr.bits[:20] == bits(sim.peek(unit, "CoilRegister", 3, 20), 20)
        rr = await c.read_discrete_inputs(0, count=50, device_id=unit)
        assert rr.bits[:50] == bits(sim.peek(unit, "DiscreteInputRegister", 0, 50), 50)
        rr = await c.read_input_registers(10, count=40, device_id=unit)
        assert rr.registers == registers(sim.peek(unit, "InputRegister", 10, 40))
        rr = await c.read_holding_registers(0, count=50, device_id=unit)
        assert rr.registers == registers(sim.peek(unit, "HoldingRegister", 0, 50))
    assert sim.counters.requests == sim.counters.responses == 8


async def test_pymodbus_writes_stick(
    sim: ModbusSimulator, pymodbus_client: AsyncModbusTcpClient
) -> None:
    """Writes of every function stick: reads and the simulator itself return them."""
    c = pymodbus_client
    assert not (await c.write_register(4, 0xCAFE, device_id=2)).isError()
    assert not (await c.write_registers(10, [1, 2, 3], device_id=2)).isError()
    assert not (await c.write_coil(0, True, device_id=2)).isError()
    assert not (await c.write_coils(1, [False, True, False], device_id=2)).isError()
    rr = await c.read_holding_registers(10, count=3, device_id=2)
    assert rr.registers == [1, 2, 3]
    assert registers(sim.peek(2, "HoldingRegister", 4, 1)) == [0xCAFE]
    rr = await c.read_coils(0, count=4, device_id=2)
    assert rr.bits[:4] == [True, False, True, False]
    rr = await c.read_holding_registers(10, count=3, device_id=3)
    assert rr.registers == registers(sim.peek(3, "HoldingRegister", 10, 3))  # untouched
    assert sim.counters.writes == 4


async def test_pymodbus_gets_exceptions(pymodbus_client: AsyncModbusTcpClient) -> None:
    """Bad addresses answer exception 2, other functions 1, unknown unit ids 11."""
    c = pymodbus_client
    for rr in (
        await c.read_holding_registers(49, count=2, device_id=1),
        await c.read_coils(50, count=1, device_id=1),
        await c.write_registers(48, [1, 2, 3], device_id=1),
        await c.write_coil(50, True, device_id=1),
    ):
        assert isinstance(rr, ExceptionResponse)
        assert rr.exception_code == 2
    rr = await c.read_exception_status(device_id=1)  # function 7
    assert isinstance(rr, ExceptionResponse)
    assert rr.exception_code == 1
    rr = await c.read_holding_registers(0, count=1, device_id=11)
    assert isinstance(rr, ExceptionResponse)
    assert rr.exception_code == 11


# --- our client against the simulator ----------------------------------------------------------


async def test_pipelined_reads_match(sim: ModbusSimulator, client: ModbusTcpClient) -> None:
    """Hundreds of reads in flight on one connection each get their own unit's data."""
    reads = [(1 + i % 10, KINDS[i % 4], i % 40, 1 + i % 10) for i in range(400)]
    async with (
        WireProbe(sim.port) as probe,
        ModbusTcpClient(HOST, probe.port, timeout=SHORT, max_in_flight=None) as piped,
    ):
        tasks = [asyncio.create_task(piped.read(*r)) for r in reads]
        results = await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
    assert results == [sim.peek(*r) for r in reads]
    assert probe.most_outstanding > len(reads) // 2  # in flight together, matched by id
    assert client.in_flight == 0


async def test_values_change_at_the_rate() -> None:
    """Values move with time at ``rate``; a written register sticks while its neighbours move."""
    async with (
        ModbusSimulator(2, host=HOST, port=0, rate=200) as sim,
        ModbusTcpClient(HOST, sim.port, timeout=WAIT) as client,
    ):
        await client.write_single_register(1, 1, 4242)
        first = await client.read(1, "HoldingRegister", 0, 8)
        await asyncio.sleep(0.05)  # 10 ticks
        second = await client.read(1, "HoldingRegister", 0, 8)
        assert registers(first)[1] == registers(second)[1] == 4242
        assert registers(first)[2] != registers(second)[2]  # the counter moved
        assert first != second
        assert sim.tick() >= 10


async def test_frozen_values_are_deterministic(sim: ModbusSimulator) -> None:
    """With rate 0 the values never move, and devices differ from each other."""
    assert sim.tick() == 0
    assert sim.peek(1, "InputRegister", 0, 20) == sim.peek(1, "InputRegister", 0, 20)
    assert sim.peek(1, "InputRegister", 0, 20) != sim.peek(2, "InputRegister", 0, 20)


async def test_set_registers_pins_values(sim: ModbusSimulator, client: ModbusTcpClient) -> None:
    """Values set through the API are what reads return, for every kind."""
    sim.set_registers(3, 5, [1, 2, 0xFFFF], kind="InputRegister")
    sim.set_registers(3, 2, [True, False, True], kind="DiscreteInputRegister")
    assert await client.read(3, "InputRegister", 5, 3) == pack_registers([1, 2, 0xFFFF])
    assert bits(await client.read(3, "DiscreteInputRegister", 2, 3), 3) == [True, False, True]
    with pytest.raises(IndexError):
        sim.set_registers(3, 49, [1, 2])
    with pytest.raises(KeyError):
        sim.set_registers(11, 0, [1])


async def test_engine_decodes_what_the_simulator_serves(
    sim: ModbusSimulator, client: ModbusTcpClient
) -> None:
    """Frames read from the simulator decode in the engine as the reference decodes its values."""
    # The engine reads coalesced frames through our client; the reference decodes each
    # property's own addresses as the simulator serves them; pinned values decode to themselves.
    visitors: list[tuple[str, str, dict[str, Any]]] = [
        ("sine", "INT", {"register": "HoldingRegister", "offset": 0, "dataType": "uint16"}),
        ("ramp", "FLOAT", {"register": "HoldingRegister", "offset": 1, "scale": 0.1}),
        ("counter", "INT", {"register": "InputRegister", "offset": 2, "dataType": "int16"}),
        ("walk", "DOUBLE", {"register": "InputRegister", "offset": 3, "scale": 0.01}),
        (
            "wide",
            "INT",
            {"register": "HoldingRegister", "offset": 4, "limit": 2, "dataType": "uint32"},
        ),
        (
            "swapped",
            "FLOAT",
            {
                "register": "InputRegister",
                "offset": 6,
                "limit": 2,
                "dataType": "float32",
                "isRegisterSwap": True,
            },
        ),
        ("pump", "BOOLEAN", {"register": "CoilRegister", "offset": 5}),
        ("alarm", "BOOLEAN", {"register": "DiscreteInputRegister", "offset": 9}),
        (
            "setpoint",
            "FLOAT",
            {"register": "HoldingRegister", "offset": 20, "limit": 2, "dataType": "float32"},
        ),
    ]
    engine = Engine()
    specs: list[PropertySpec] = [
        cast(PropertySpec, {"name": name, "type": ty, "visitor": config})
        for name, ty, config in visitors
    ]
    dev = engine.upsert_device("default/sim-4", specs)
    sim.set_registers(4, 20, [0x41AC, 0x0000])  # 21.5 as float32
    sim.set_registers(4, 5, [True], kind="CoilRegister")
    for kind, start, count in engine.read_plan(dev):
        frame = await client.read(4, kind, start, count)
        assert frame == sim.peek(4, kind, start, count)
        engine.ingest_frame(dev, cast(RegisterKindName, kind), start, frame, 1_000, count)
    got = {c["property"]: c["value"] for c in engine.report().to_list()}
    want = {}
    for name, ty, config in visitors:
        v = ref.compile_visitor(config, ty)
        own = sim.peek(4, v.kind, v.offset, v.count)  # just this property's addresses
        want[name] = ref.canonical(ty, ref.decode(v, v.offset, own))
    assert got == want
    assert (got["setpoint"], got["pump"]) == ("21.5", "true")


# --- faults, through our client ----------------------------------------------------------------


async def test_slow_unit(sim: ModbusSimulator, client: ModbusTcpClient) -> None:
    """A slow unit times out a short timeout and answers a long one; others stay prompt."""
    sim.faults.slow(SHORT * 2, unit=5)
    with pytest.raises(ModbusTimeoutError) as info:
        await client.read(5, "HoldingRegister", 0, 2)
    assert info.value.unit == 5
    assert await client.read(6, "HoldingRegister", 0, 2) == sim.peek(6, "HoldingRegister", 0, 2)
    async with ModbusTcpClient(HOST, sim.port, timeout=WAIT) as patient:
        assert await patient.read(5, "HoldingRegister", 0, 2) == sim.peek(
            5, "HoldingRegister", 0, 2
        )
    assert sim.counters.delayed == 2


async def test_dead_unit_never_blocks_its_neighbours(
    sim: ModbusSimulator, client: ModbusTcpClient
) -> None:
    """A dead unit's requests time out while its neighbours on the same connection answer."""
    sim.faults.apply("unit=6:dead")
    dead = asyncio.create_task(client.read(6, "InputRegister", 0, 4))
    neighbours = [await client.read(u, "InputRegister", 0, 4) for u in (1, 2, 3, 7, 8)]
    assert neighbours == [sim.peek(u, "InputRegister", 0, 4) for u in (1, 2, 3, 7, 8)]
    assert not dead.done()
    with pytest.raises(ModbusTimeoutError):
        await asyncio.wait_for(dead, WAIT)
    assert sim.counters.dropped == 1
    assert client.counters.timeouts == 1
    assert client.counters.reconnects == 0


async def test_exception_fault_through_the_client(
    sim: ModbusSimulator, client: ModbusTcpClient
) -> None:
    """A unit told to answer exception 4 raises it, with its standard name, for any function."""
    sim.faults.exception(4, unit=7)
    with pytest.raises(ModbusExceptionError) as info:
        await client.read(7, "CoilRegister", 0, 1)
    assert (info.value.code, info.value.code_name, info.value.unit) == (
        4,
        "SERVER_DEVICE_FAILURE",
        7,
    )
    with pytest.raises(ModbusExceptionError):
        await client.write_single_register(7, 0, 1)
    assert client.counters.exceptions == 2


@pytest.mark.parametrize("kind", ["length", "truncated"])
async def test_garbled_frames_fail_their_request(
    sim: ModbusSimulator, client: ModbusTcpClient, kind: str
) -> None:
    """A wrong-length or truncated answer fails its own request; the connection carries on."""
    sim.faults.apply(f"unit=8:garble={kind}")
    for read in [("HoldingRegister", 0, 5), ("CoilRegister", 0, 9), ("InputRegister", 3, 1)]:
        with pytest.raises(ModbusFrameError) as info:
            await client.read(8, *read)
        assert info.value.unit == 8
    with pytest.raises(ModbusFrameError):
        await client.write_registers(8, 0, [1, 2])
    assert await client.read(9, "HoldingRegister", 0, 5) == sim.peek(9, "HoldingRegister", 0, 5)
    assert client.counters.frame_errors == 4
    assert client.counters.reconnects == 0


async def test_wrong_transaction_id_is_dropped(
    sim: ModbusSimulator, client: ModbusTcpClient
) -> None:
    """An answer with a wrong transaction id is counted and dropped: its request times out."""
    sim.faults.garble(kinds=["tid"], unit=8)
    with pytest.raises(ModbusTimeoutError):
        await client.read(8, "HoldingRegister", 0, 5)
    assert client.counters.unknown_responses == 1
    assert await client.read(1, "HoldingRegister", 0, 5) == sim.peek(1, "HoldingRegister", 0, 5)


async def test_unframeable_header_resets_the_connection(
    sim: ModbusSimulator, client: ModbusTcpClient
) -> None:
    """An unframeable header fails its request and resets the connection; a call reconnects."""
    sim.faults.apply("unit=8:garble=header")
    others = [asyncio.create_task(client.read(9, "CoilRegister", 0, 1)) for _ in range(3)]
    with pytest.raises(ModbusFrameError, match="bad MBAP header"):
        await client.read(8, "HoldingRegister", 0, 5)
    for task in others:  # answered before the garbled frame, or lost with the connection
        with contextlib.suppress(ModbusConnectionError):
            await asyncio.wait_for(task, WAIT)
    assert await client.read(9, "HoldingRegister", 0, 5) == sim.peek(9, "HoldingRegister", 0, 5)
    assert client.counters.reconnects == 1


async def test_garble_probability(sim: ModbusSimulator, client: ModbusTcpClient) -> None:
    """``garble=P`` garbles about P of the answers; each garbled one fails its request."""
    sim.faults.apply("unit=2:garble=length+truncated@0.5")
    outcomes = await asyncio.gather(
        *(client.read(2, "HoldingRegister", 0, 4) for _ in range(200)), return_exceptions=True
    )
    failed = sum(isinstance(o, ModbusFrameError) for o in outcomes)
    assert failed == sim.counters.garbled
    assert 50 < failed < 150
    assert all(isinstance(o, bytes | ModbusFrameError) for o in outcomes)


async def test_port_faults_and_clearing() -> None:
    """A fault on a port hits every unit there and none elsewhere; clearing restores it."""
    async with ModbusSimulator(300, host=HOST, port=0, rate=0) as sim:
        first, second = sim.ports
        sim.faults.dead(port=second)
        async with (
            ModbusTcpClient(HOST, first, timeout=SHORT) as a,
            ModbusTcpClient(HOST, second, timeout=SHORT) as b,
        ):
            assert await a.read(247, "InputRegister", 0, 1) == sim.peek(247, "InputRegister", 0, 1)
            with pytest.raises(ModbusTimeoutError):
                await b.read(1, "InputRegister", 0, 1)
            sim.faults.clear(port=second)
            assert not sim.faults
            assert await b.read(53, "InputRegister", 0, 1) == sim.peek(
                53, "InputRegister", 0, 1, port=second
            )
            with pytest.raises(ModbusExceptionError) as info:
                await b.read(54, "InputRegister", 0, 1)  # no 301st device
            assert info.value.code == 11


# --- layout, faults text, CLI ------------------------------------------------------------------


def test_layouts() -> None:
    """Devices fill unit ids 1..K per port, or spread over a port range."""
    sim = ModbusSimulator(600, port=5020)
    assert sim.layout() == [(5020, 1, 247), (5021, 1, 247), (5022, 1, 106)]
    assert sim.address(0) == (5020, 1)
    assert sim.address(247) == (5021, 1)
    assert sim.address(599) == (5022, 106)
    assert ModbusSimulator(10, port=7000, units_per_port=4).layout() == [
        (7000, 1, 4),
        (7001, 1, 4),
        (7002, 1, 2),
    ]
    assert ModbusSimulator(3, port_range=(6000, 6009)).layout() == [
        (6000, 1, 1),
        (6001, 1, 1),
        (6002, 1, 1),
    ]
    assert ModbusSimulator(25, port_range=(6000, 6009)).layout()[-1] == (6008, 1, 1)
    with pytest.raises(SpecError):
        ModbusSimulator(3000, port_range=(6000, 6005))
    with pytest.raises(SpecError):
        ModbusSimulator(10, units_per_port=248)
    with pytest.raises(SpecError):
        ModbusSimulator(0)


def _read_request(tid: int, unit: int, address: int, count: int) -> bytes:
    """A read-holding-registers request frame (MBAP header and PDU)."""
    return struct.pack(">HHHBBHH", tid, 0, 6, unit, 3, address, count)


def test_a_paced_simulator_reads_many_connections_in_one_turn() -> None:
    """With ``pace``, requests that arrive while the loop sleeps are all answered next turn.

    The simulator runs on its own event loop in a thread (the pause stops the whole loop);
    the clients are plain blocking sockets. The pause is a whole second so that a busy machine
    sends the eleven requests within it (at 0.3 s, descheduled test threads split them).
    """
    clients = 12
    sim = ModbusSimulator(clients, port=0, units_per_port=1, rate=0, pace=1.0)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()

    async def serve() -> None:
        async with sim:
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),))
    thread.start()
    try:
        assert ready.wait(10)
        socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for port in sim.ports]
        with contextlib.ExitStack() as stack:
            for sock in socks:
                stack.enter_context(sock)
            socks[0].sendall(_read_request(1, 1, 0, 4))
            first = socks[0].recv(64)  # answered, then the loop sleeps out its 1 s
            for tid, sock in enumerate(socks[1:], 2):
                sock.sendall(_read_request(tid, 1, 0, 4))
            answers = [first] + [sock.recv(64) for sock in socks[1:]]
        expected = [sim.peek(1, "HoldingRegister", 0, 4, port=port) for port in sim.ports]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
    for i, answer in enumerate(answers):
        tid, _, length, unit, function, size = struct.unpack_from(">HHHBBB", answer)
        assert (tid, length, unit, function, size) == (i + 1, 11, 1, 3, 8)
        assert answer[9:] == expected[i]
    assert sim.counters.responses == clients
    # The first request's turn, then the other eleven's: two turns. A loaded machine may split
    # the eleven over two turns (their bytes arrive around the end of the pause); requests not
    # read together would take a turn each (twelve).
    assert 2 <= sim.counters.paced_turns <= 3


def test_pace_is_checked() -> None:
    """A pace below 0 or above 1 s is a SpecError naming ``pace``."""
    for pace in (-0.001, 1.5, float("nan")):
        with pytest.raises(SpecError) as info:
            ModbusSimulator(1, pace=pace)
        assert info.value.path == "pace"


def test_fault_text_round_trip() -> None:
    """The ``--faults`` text parses into faults that describe themselves the same way."""
    spec = "unit=5:slow=200ms,unit=6:dead,unit=7:exception=4,unit=8:garble=0.1"
    faults = SimFaults(spec)
    assert faults.describe() == spec
    assert faults.get(5020, 5) is not None
    assert faults.get(5020, 9) is None
    assert faults.get(5020, 8).garble_kinds == GARBLE_KINDS  # type: ignore[union-attr]
    faults.apply("port=5021:unit=1-3:garble=tid+header@0.5:slow=1.5s,unit=6:ok")
    assert faults.get(5021, 2).delay == 1.5  # type: ignore[union-attr]
    assert faults.get(5020, 2) is None
    assert faults.get(5020, 6) is None
    assert "port=5021:unit=3:slow=1500ms:garble=tid+header@0.5" in faults.describe()


@pytest.mark.parametrize(
    ("spec", "index", "match"),
    [
        ("dead", 0, "names no unit= or port="),
        ("unit=5", 0, "names no fault"),
        ("unit=5:slow=200", 0, "duration like 200ms"),
        ("unit=5:dead,unit=6:slo=1s", 1, "unknown fault field 'slo=1s'"),
        ("unit=5:exception=0", 0, "exception code must be 1..255"),
        ("unit=5:garble=1.5", 0, "probability must be 0..1"),
        ("unit=5:garble=crc", 0, "unknown garble kind 'crc'"),
        ("unit=5-3:dead", 0, "empty range"),
        ("unit=300:dead", 0, "unit id must be 0..255"),
        ("port=x:dead", 0, "number or a range"),
    ],
)
def test_bad_fault_text(spec: str, index: int, match: str) -> None:
    """Bad ``--faults`` text is a SpecError naming the entry."""
    with pytest.raises(SpecError, match=match) as info:
        SimFaults(spec)
    assert info.value.path == f"faults[{index}]"


async def test_cli_serves_and_stops() -> None:
    """``twinplane sim modbus`` serves its devices with faults, and stops on SIGTERM."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "twinplane.cli",
        "sim",
        "modbus",
        "--devices",
        "3",
        "--port",
        "0",
        "--rate",
        "0",
        "--faults",
        "unit=2:dead",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        header = await asyncio.wait_for(proc.stdout.readline(), WAIT)
        assert b"3 devices" in header
        assert b"unit=2:dead" in header
        where = await asyncio.wait_for(proc.stdout.readline(), WAIT)
        match = re.search(rb":(\d+)\s+unit ids 1-3", where)
        assert match is not None, where
        async with ModbusTcpClient(HOST, int(match.group(1)), timeout=SHORT) as client:
            assert len(await client.read(1, "HoldingRegister", 0, 10)) == 20
            with pytest.raises(ModbusTimeoutError):
                await client.read(2, "HoldingRegister", 0, 10)
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), WAIT)
        assert proc.returncode == 0, err
        assert b"stopped; connections=1 requests=2 responses=1" in out
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_cli_refuses_bad_faults() -> None:
    """A bad ``--faults`` exits 2 naming the entry."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "twinplane.cli",
        "sim",
        "modbus",
        "--faults",
        "unit=1:slow=5",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode == 2
    assert b"faults[0]" in err


async def test_cli_refuses_a_bad_pace() -> None:
    """``--pace-ms`` above a second exits 2 naming ``pace``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "twinplane.cli",
        "sim",
        "modbus",
        "--pace-ms",
        "5000",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode == 2
    assert b"error (pace): pace must be 0..1 s, not 5.0" in err


# --- one poll's reads in one write (ModbusTcpClient.submit_reads) ---------------------------

POLL = [("HoldingRegister", 0, 3), ("CoilRegister", 0, 9), ("InputRegister", 20, 6)]


async def test_submit_reads_answers_every_read_in_order(
    sim: ModbusSimulator, client: ModbusTcpClient
) -> None:
    """A poll's reads go out together; one future gets every frame, as read() returns them."""
    futures = [client.submit_reads(unit, POLL) for unit in (1, 4, 10)]
    results = await asyncio.wait_for(asyncio.gather(*cast("list[Any]", futures)), WAIT)
    for unit, frames in zip((1, 4, 10), results, strict=True):
        assert frames == [sim.peek(unit, kind, start, count) for kind, start, count in POLL]
        assert frames == [await client.read(unit, k, start, count) for k, start, count in POLL]
    assert client.in_flight == 0
    assert client.counters.requests == client.counters.responses == 18


async def test_submit_reads_needs_a_connection_and_checks_first() -> None:
    """No connection yet: None (read() connects); a request Modbus cannot carry sends nothing."""
    async with ModbusSimulator(1, host=HOST, port=0, rate=0) as sim:
        client = ModbusTcpClient(HOST, sim.port, timeout=SHORT)
        assert client.submit_reads(1, POLL) is None
        await client.connect()
        with pytest.raises(ModbusRequestError):
            client.submit_reads(1, [("HoldingRegister", 0, 3), ("HoldingRegister", 0, 200)])
        assert client.counters.requests == 0
        assert client.in_flight == 0
        await client.close()


async def test_submit_reads_fails_whole_poll_on_one_error(
    sim: ModbusSimulator, client: ModbusTcpClient
) -> None:
    """An exception answer fails the poll with that error; its sibling reads leave the table."""
    sim.faults.exception(2, unit=3)
    fut = client.submit_reads(3, POLL)
    assert fut is not None
    with pytest.raises(ModbusExceptionError) as info:
        await asyncio.wait_for(fut, WAIT)
    assert (info.value.unit, info.value.code) == (3, 2)
    assert client.in_flight == 0
    assert client.counters.exceptions == 1
    good = client.submit_reads(2, POLL)
    assert good is not None
    assert len(await asyncio.wait_for(good, WAIT)) == len(POLL)


async def test_submit_reads_times_out_with_its_own_deadline(sim: ModbusSimulator) -> None:
    """A dead unit's poll times out after the poll's timeout, not the client's.

    A neighbour's poll on the same connection is not held up.
    """
    sim.faults.dead(unit=5)
    async with ModbusTcpClient(HOST, sim.port, timeout=WAIT) as client:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        dead = client.submit_reads(5, POLL, timeout=SHORT)
        alive = client.submit_reads(6, POLL, timeout=SHORT)
        assert dead is not None
        assert alive is not None
        assert len(await asyncio.wait_for(alive, WAIT)) == len(POLL)
        with pytest.raises(ModbusTimeoutError, match="unit 5") as info:
            await asyncio.wait_for(dead, WAIT)
        assert SHORT * 0.9 <= loop.time() - t0 < WAIT
        assert info.value.unit == 5
        assert client.in_flight == 0
        assert client.counters.timeouts == 1


async def test_submit_reads_fails_on_a_lost_connection(sim: ModbusSimulator) -> None:
    """The connection closing under a poll fails it with ModbusConnectionError."""
    sim.faults.slow(1.0, unit=7)
    async with ModbusTcpClient(HOST, sim.port, timeout=WAIT) as client:
        fut = client.submit_reads(7, POLL)
        assert fut is not None
        await asyncio.sleep(0.05)
        await client.close()
        with pytest.raises(ModbusConnectionError):
            await asyncio.wait_for(fut, WAIT)


async def test_polls_started_together_share_one_write(sim: ModbusSimulator) -> None:
    """The reads of polls started in one loop iteration go out in a single write."""
    async with (
        WireProbe(sim.port) as probe,
        ModbusTcpClient(HOST, probe.port, timeout=SHORT, max_in_flight=None) as piped,
    ):
        futures = [piped.submit_reads(unit, POLL) for unit in (1, 2, 3)]
        results = await asyncio.wait_for(asyncio.gather(*cast("list[Any]", futures)), WAIT)
    assert len(probe.chunks) == 1
    assert len(probe.chunks[0]) == 3 * len(POLL) * 12  # twelve bytes per read request
    assert [len(frames) for frames in results] == [len(POLL)] * 3


async def test_an_exception_on_one_register_spares_the_others(
    sim: ModbusSimulator, pymodbus_client: AsyncModbusTcpClient
) -> None:
    """An exception at address 10 answers reads touching it only (pymodbus sees it); clearable."""
    sim.faults.exception(2, unit=4, address=10, count=2)
    assert sim.faults.describe() == "unit=4:exception=2@10-11"
    hit = await pymodbus_client.read_holding_registers(9, count=2, device_id=4)
    assert isinstance(hit, ExceptionResponse)
    assert hit.exception_code == 2
    spared = await pymodbus_client.read_holding_registers(12, count=3, device_id=4)
    assert not spared.isError()
    below = await pymodbus_client.read_holding_registers(0, count=10, device_id=4)
    assert not below.isError()
    sim.faults.clear(unit=4)  # switched off at run time
    assert not (await pymodbus_client.read_holding_registers(10, count=1, device_id=4)).isError()


def test_an_exception_at_addresses_parses_and_is_checked() -> None:
    """The text form CODE@A-B parses; a malformed one names its entry."""
    faults = SimFaults("unit=3:exception=4@7,unit=5:exception=2@10-20")
    assert faults.describe() == "unit=3:exception=4@7,unit=5:exception=2@10-20"
    with pytest.raises(SpecError, match=r"CODE@ADDRESS"):
        SimFaults("unit=3:exception=4@x")
    with pytest.raises(SpecError):
        SimFaults("unit=3:exception=4@9-2")


def test_ramp_rises_and_falls_between_its_bounds() -> None:
    """A ramp starts at low, rises at its rate to high, falls back, and repeats."""
    ramp = Ramp(low=280, high=320, per_second=10.0)
    assert [ramp.at(t) for t in (0.0, 1.0, 4.0, 5.0, 8.0, 9.0)] == [280, 290, 320, 310, 280, 290]
    with pytest.raises(SpecError):
        Ramp(low=5, high=1, per_second=1.0)
    with pytest.raises(SpecError):
        Ramp(low=0, high=1, per_second=0.0)


async def test_a_ramping_register_crosses_a_threshold_over_modbus_tcp(
    sim: ModbusSimulator, pymodbus_client: AsyncModbusTcpClient
) -> None:
    """A pymodbus client reads a ramping holding register going above and back below a threshold."""
    sim.ramp(2, 7, Ramp(low=280, high=320, per_second=400.0))
    seen: set[bool] = set()
    async with asyncio.timeout(WAIT):
        while seen != {True, False}:
            rr = await pymodbus_client.read_holding_registers(7, count=1, device_id=2)
            assert 280 <= rr.registers[0] <= 320
            seen.add(rr.registers[0] > 300)
            await asyncio.sleep(0.01)
    with pytest.raises(SpecError):
        sim.ramp(2, 0, Ramp(0, 1, 1.0), kind="CoilRegister")


def test_the_cli_ramp_text_parses_and_bad_text_names_the_option() -> None:
    """`--ramp UNIT:ADDRESS=LOW..HIGH@RATE` gives unit, address and ramp; bad text is refused."""
    assert parse_ramp("1:0=280..320@1.5") == (1, 0, Ramp(280, 320, 1.5))
    with pytest.raises(SpecError) as info:
        parse_ramp("1:0=280-320")
    assert info.value.path == "ramp"
