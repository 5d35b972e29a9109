"""The Modbus TCP client's window: one transaction at a time by default, pipelining opt-in.

Against two third-party servers that are not ours — pymodbus's (it answers only the first of
pipelined requests, like many PLCs and gateways) and modbus_tk's (it answers every pipelined
request) — and against the simulator in its one-at-a-time mode (``max_in_flight=1``).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from modbus_peers import HOST, ModbusTkServer, PymodbusServer, WireProbe, expected
from twinplane.drivers.modbus import ModbusTcpClient, ModbusTimeoutError
from twinplane.sim.modbus import ModbusSimulator

WAIT = 5.0
"""Seconds any wait may take before a test fails."""

pytestmark = pytest.mark.timeout(30)

KINDS = ("HoldingRegister", "CoilRegister", "InputRegister", "DiscreteInputRegister")
POLL = [(kind, 2, 5) for kind in KINDS]
"""One poll of a device with a property of each register kind."""

Server = PymodbusServer | ModbusTkServer


@pytest.fixture(params=["pymodbus", "modbus_tk"])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[Server]:
    """A third-party Modbus TCP server with units 1 and 2."""
    srv: Server = PymodbusServer((1, 2)) if request.param == "pymodbus" else ModbusTkServer((1, 2))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, object]]]:
    """What reaches the event loop's exception handler during the test (nothing, normally)."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, object]] = []
    old = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    yield seen
    loop.set_exception_handler(old)


async def _poll(client: ModbusTcpClient, unit: int, seconds: float = WAIT) -> list[bytes]:
    fut = client.submit_reads(unit, POLL, seconds)
    assert fut is not None
    return await fut


async def test_polls_of_several_units_and_kinds_one_at_a_time(server: Server) -> None:
    """By default polls of four register kinds on two units go one request at a time."""
    async with (
        WireProbe(server.port) as probe,
        ModbusTcpClient(HOST, probe.port, timeout=WAIT) as client,
    ):
        polls = [client.submit_reads(unit, POLL) for unit in (1, 2, 1, 2)]
        assert all(p is not None for p in polls)
        results = await asyncio.wait_for(asyncio.gather(*(p for p in polls if p is not None)), WAIT)
    assert probe.most_outstanding == 1
    assert probe.requests == [
        (unit, function) for unit in (1, 2, 1, 2) for function in (3, 1, 4, 2)
    ]  # each poll's reads in order, the polls in the order made
    for unit, frames in zip((1, 2, 1, 2), results, strict=True):
        assert frames == [expected(unit, kind, address, count) for kind, address, count in POLL]
    assert client.counters.timeouts == client.counters.pipeline_timeouts == 0
    assert client.counters.requests == client.counters.responses == 4 * len(POLL)


async def test_pipelining_on_a_server_that_answers_it() -> None:
    """With pipelining asked for, modbus_tk answers every read of a burst, in flight at once."""
    srv = ModbusTkServer((1, 2))
    await srv.start()
    try:
        async with (
            WireProbe(srv.port) as probe,
            ModbusTcpClient(HOST, probe.port, timeout=WAIT, max_in_flight=None) as client,
        ):
            polls = [client.submit_reads(unit, POLL) for unit in (1, 2)]
            results = await asyncio.gather(*(p for p in polls if p is not None))
    finally:
        await srv.stop()
    assert results == [[expected(u, k, a, c) for k, a, c in POLL] for u in (1, 2)]
    assert probe.most_outstanding == 2 * len(POLL)  # the whole burst in flight at once
    assert len(probe.chunks) == 1  # in one write
    assert client.counters.pipeline_timeouts == 0
    assert client.max_in_flight is None


@pytest.mark.parametrize("peer", ["pymodbus", "simulator"])
async def test_pipelining_on_a_one_at_a_time_device_is_detected_and_dropped(
    peer: str, caplog: pytest.LogCaptureFixture
) -> None:
    """First reads of a pipelined poll answered, a later one lost: counted, logged, dropped.

    The poll fails; the counter and one warning say why, and the client falls back to one
    transaction at a time, so the next poll is answered.
    """
    async with (
        OneAtATimePeer(peer) as (port, unit, want),
        ModbusTcpClient(HOST, port, timeout=WAIT, max_in_flight=8) as client,
    ):
        with (
            caplog.at_level(logging.WARNING, logger="twinplane.drivers.modbus"),
            pytest.raises(ModbusTimeoutError),
        ):
            await _poll(client, unit, seconds=0.3)
        assert client.counters.pipeline_timeouts == 1
        assert client.counters.pipelining_disabled == 1
        assert client.max_in_flight == 1
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "one transaction at a time" in warnings[0]
        assert f"unit {unit}" in warnings[0]
        assert "maxInFlight" in warnings[0]
        assert await _poll(client, unit) == want  # one at a time now: answered
        assert client.counters.pipelining_disabled == 1


class OneAtATimePeer:
    """A one-at-a-time peer: pymodbus's server, or the simulator with ``max_in_flight=1``.

    Yields ``(port, unit, the frames of POLL for that unit)``.
    """

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.pymodbus: PymodbusServer | None = None
        self.sim: ModbusSimulator | None = None

    async def __aenter__(self) -> tuple[int, int, list[bytes]]:
        if self.peer == "pymodbus":
            self.pymodbus = PymodbusServer((1,))
            await self.pymodbus.start()
            return self.pymodbus.port, 1, [expected(1, k, a, c) for k, a, c in POLL]
        self.sim = ModbusSimulator(1, host=HOST, port=0, rate=0, max_in_flight=1)
        await self.sim.start()
        return self.sim.port, 1, [self.sim.peek(1, k, a, c) for k, a, c in POLL]

    async def __aexit__(self, *exc: object) -> None:
        if self.pymodbus is not None:
            await self.pymodbus.stop()
        if self.sim is not None:
            await self.sim.stop()


async def test_several_expired_reads_in_one_sweep(loop_errors: list[dict[str, object]]) -> None:
    """Reads of several polls expiring at once all time out, and the timer goes on after.

    Regression: cancelling one read of a poll took its siblings out of the table of requests
    in flight while the sweep still meant to pop them (KeyError in the timer callback, which
    then never re-armed: later requests stayed pending for ever).
    """
    async with ModbusSimulator(3, host=HOST, port=0, rate=0) as sim:
        sim.faults.dead(unit=2)
        sim.faults.dead(unit=3)
        async with ModbusTcpClient(HOST, sim.port, timeout=WAIT, max_in_flight=None) as client:
            dead = [client.submit_reads(unit, POLL, 0.2) for unit in (2, 3)]
            healthy = client.submit_reads(1, POLL, 0.2)
            assert healthy is not None
            assert await asyncio.wait_for(healthy, WAIT) == [
                sim.peek(1, k, a, c) for k, a, c in POLL
            ]
            for fut in dead:
                assert fut is not None
                with pytest.raises(ModbusTimeoutError):
                    await asyncio.wait_for(fut, WAIT)
            later = client.submit_reads(2, POLL, 0.4)  # needs the timer re-armed
            assert later is not None
            with pytest.raises(ModbusTimeoutError):
                await asyncio.wait_for(later, WAIT)
            assert client.in_flight == 0
            assert client.counters.timeouts == 3
    assert loop_errors == []


async def test_a_write_goes_ahead_of_queued_reads() -> None:
    """One at a time, a write queued after polls is sent before them (writes pre-empt polls)."""
    async with ModbusSimulator(3, host=HOST, port=0, rate=0, max_in_flight=1) as sim:
        sim.faults.slow(0.1, unit=1)  # keeps the window busy while the others queue up
        async with (
            WireProbe(sim.port) as probe,
            ModbusTcpClient(HOST, probe.port, timeout=WAIT) as client,
        ):
            first = client.submit_reads(1, POLL[:1])
            polls = [client.submit_reads(unit, POLL) for unit in (2, 3)]
            await asyncio.sleep(0.02)  # unit 1's read is in flight, the polls wait
            assert probe.requests == [(1, 3)]
            assert client.in_flight == 3
            order: list[str] = []

            def done(name: str) -> Callable[[object], None]:
                return lambda _: order.append(name)

            write = asyncio.ensure_future(client.write_single_register(3, 7, 77))
            write.add_done_callback(done("write"))
            waits: list[asyncio.Future[Any]] = [write]
            for name, fut in zip(("poll 2", "poll 3"), [first, *polls][1:], strict=True):
                assert fut is not None
                fut.add_done_callback(done(name))
                waits.append(fut)
            assert first is not None
            await asyncio.wait_for(asyncio.gather(first, *waits), WAIT)
    assert order == ["write", "poll 2", "poll 3"]
    assert probe.requests[:2] == [(1, 3), (3, 6)]  # the write right after the read in flight
    assert probe.most_outstanding == 1


async def test_the_simulator_answers_the_first_of_pipelined_requests_when_asked() -> None:
    """``max_in_flight=1``: the simulator answers the first of requests sent together.

    It keeps framing the stream: a partial frame after them is completed by the next segment.
    """

    def request(tid: int, function: int = 3) -> bytes:
        return struct.pack(">HHHBBHH", tid, 0, 6, 1, function, 0, 2)

    async with ModbusSimulator(1, host=HOST, port=0, rate=0, max_in_flight=1) as sim:
        reader, writer = await asyncio.open_connection(HOST, sim.port)
        try:
            third = request(3)
            writer.write(request(1) + request(2, 4) + third + request(4)[:5])
            head = await asyncio.wait_for(reader.readexactly(6), WAIT)
            (tid, _, length) = struct.unpack(">HHH", head)
            await asyncio.wait_for(reader.readexactly(length), WAIT)
            assert tid == 1
            with pytest.raises(TimeoutError):  # the others are dropped, not late
                await asyncio.wait_for(reader.readexactly(1), 0.2)
            writer.write(request(4)[5:])  # the rest of the partial frame
            head = await asyncio.wait_for(reader.readexactly(6), WAIT)
            assert struct.unpack(">H", head[:2]) == (4,)
        finally:
            writer.close()
            await writer.wait_closed()
        assert sim.counters.ignored == 2  # tids 2 and 3; 4 was completed and answered
        assert sim.counters.responses == 2


def test_the_simulator_refuses_a_window_below_one() -> None:
    """``max_in_flight`` 0 is refused with the field named."""
    with pytest.raises(Exception, match="max_in_flight must be at least 1"):
        ModbusSimulator(1, max_in_flight=0)
