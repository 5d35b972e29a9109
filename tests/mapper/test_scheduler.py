"""The bus scheduler's one poll path: every poll a future, one callback applying every rule.

A real engine; the device is a frame client double whose cheap path settles its future from
the loop's callbacks, as Modbus TCP's does (the timing against a real simulator is in
``test_scheduler_timing.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial
from typing import cast

import pytest

from twinplane.drivers.base import FrameClient, FrameRead, PropertyVisitor
from twinplane.mapper.cycles import PropertyCycles
from twinplane.mapper.scheduler import BusScheduler, ScheduledDevice
from twinplane.twin import Engine, PropertySpec
from waits import until

pytestmark = pytest.mark.timeout(30)

SPEC = cast(
    PropertySpec,
    {"name": "t", "type": "INT", "visitor": {"register": "HoldingRegister", "offset": 0}},
)
CYCLE_S = 0.02


class Device(FrameClient):
    """One holding register; ``answers`` says what each cheap-path poll gets."""

    def __init__(self) -> None:
        self.inits = 0
        self.coroutine_reads = 0
        self.cheap_reads = 0
        self.writes: list[str] = []
        self.answers: list[bytes | Exception] = []
        self.value = b"\x00\x07"
        self.batches: list[Sequence[FrameRead]] = []

    async def init_device(self) -> None:
        """Counts initialisations."""
        self.inits += 1

    async def read(self, batch: Sequence[FrameRead]) -> list[bytes]:
        """The coroutine path (not taken: this client has a cheap path)."""
        self.coroutine_reads += 1
        return [self.value for _ in batch]

    def submit_read(
        self, batch: Sequence[FrameRead], timeout: float
    ) -> asyncio.Future[list[bytes]] | None:
        """The cheap path: a future settled by a loop callback, no task."""
        del timeout
        self.cheap_reads += 1
        self.batches.append(batch)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[bytes]] = loop.create_future()
        answer = self.answers.pop(0) if self.answers else self.value
        loop.call_soon(self._settle, fut, answer, len(batch))
        return fut

    @staticmethod
    def _settle(fut: asyncio.Future[list[bytes]], answer: bytes | Exception, reads: int) -> None:
        if fut.done():  # cancelled by the bus's stop()
            return
        if isinstance(answer, Exception):
            fut.set_exception(answer)
        else:
            fut.set_result([answer] * reads)

    async def write(self, prop: PropertyVisitor, value: str) -> None:
        """Records the write."""
        del prop
        self.writes.append(value)


def bus_with(client: Device) -> tuple[BusScheduler, ScheduledDevice]:
    """A bus with one device of ``client`` polled every CYCLE_S."""
    engine = Engine()
    index = engine.upsert_device("default/d", [SPEC])
    bus = BusScheduler("test", engine, max_in_flight=4)
    device = ScheduledDevice(
        device_id="default/d",
        index=index,
        client=client,
        props=[PropertyVisitor(name="t", index=0, type="INT")],
        plan=engine.read_plan(index),
        cycle_s=CYCLE_S,
        timeout_s=1.0,
    )
    bus.add(device)
    return bus, device


async def test_failures_of_the_cheap_path_back_off_and_recover() -> None:
    """A failed cheap-path future is counted, takes the device offline, and it recovers."""
    client = Device()
    client.answers = [TimeoutError("no answer"), TimeoutError("no answer")]
    bus, device = bus_with(client)
    bus.start()
    try:
        await until(lambda: bus.stats.poll_errors == 2, "two failed polls")
        await until(lambda: device.state == "online" and device.failures == 0, "recovery")
        await until(lambda: bus.stats.polls >= 3, "polls after the recovery")
    finally:
        await bus.stop()
    assert client.coroutine_reads == 0  # the first poll initialises, then takes the cheap path
    assert client.inits == 1
    assert not device.busy
    assert bus.stats.poll_errors == 2


async def test_a_frame_the_engine_refuses_fails_the_poll_and_the_bus_goes_on() -> None:
    """A wrong-sized frame from the cheap path is a failed poll, not a lost callback."""
    client = Device()
    client.answers = [b"\x00"]  # one byte for one 16-bit register
    bus, device = bus_with(client)
    bus.start()
    try:
        await until(lambda: bus.stats.poll_errors == 1, "the refused frame")
        await until(lambda: device.state == "online" and bus.stats.polls >= 3, "more polls")
    finally:
        await bus.stop()
    twin = bus.engine.report().to_list()
    assert any(change["property"] == "t" for change in twin)


async def test_a_write_before_the_first_poll_initialises_the_device_once() -> None:
    """The device is initialised once, by whichever of a write or a poll comes first."""
    client = Device()
    bus, device = bus_with(client)
    bus.start()
    try:
        await bus.write("default/d", PropertyVisitor(name="t", index=0, type="INT"), "5")
        await until(lambda: bus.stats.polls >= 2, "polls after the write")
    finally:
        await bus.stop()
    assert client.writes == ["5"]
    assert client.inits == 1
    assert device.initialized
    assert client.coroutine_reads == 0  # initialised by the write: every poll took the cheap path


SLOW_SPEC = cast(
    PropertySpec,
    {"name": "s", "type": "INT", "visitor": {"register": "HoldingRegister", "offset": 5}},
)
SLOW_S = 60.0
"""A cycle no test waits for: the slow property is due at the first poll only."""


def bus_with_cycles(client: Device) -> tuple[BusScheduler, ScheduledDevice]:
    """A bus with one device: ``t`` every CYCLE_S, ``s`` every SLOW_S."""
    engine = Engine()
    index = engine.upsert_device("default/d", [SPEC, SLOW_SPEC])
    bus = BusScheduler("test", engine, max_in_flight=4)
    props = [PropertyVisitor(name="t", index=0, type="INT"), PropertyVisitor("s", 1, "INT")]
    millis = [round(CYCLE_S * 1000), round(SLOW_S * 1000)]
    device = ScheduledDevice(
        device_id="default/d",
        index=index,
        client=client,
        props=props,
        plan=engine.read_plan(index),
        cycle_s=CYCLE_S,
        timeout_s=1.0,
        cycles=PropertyCycles(props, millis, partial(engine.read_plan, index)),
    )
    bus.add(device)
    return bus, device


WHOLE = [("HoldingRegister", 0, 1), ("HoldingRegister", 5, 1)]
FAST = [("HoldingRegister", 0, 1)]


async def test_a_device_with_two_cycles_reads_the_slow_property_only_when_due() -> None:
    """The first poll reads both properties; the next ones only the fast one."""
    client = Device()
    bus, _ = bus_with_cycles(client)
    bus.start()
    try:
        await until(lambda: len(client.batches) >= 4, "four polls")
    finally:
        await bus.stop()
    assert [list(b) for b in client.batches[:4]] == [WHOLE, FAST, FAST, FAST]
    bus.engine.report()
    twins = bus.engine.twins("default/d")
    assert {p: t["reported"] is not None for p, t in twins.items()} == {"t": True, "s": True}


async def test_a_failed_poll_is_retried_with_the_properties_it_did_not_read() -> None:
    """The slow property's failed read is retried at once, not a slow cycle later."""
    client = Device()
    client.answers = [TimeoutError("no answer")]
    bus, device = bus_with_cycles(client)
    bus.start()
    try:
        await until(lambda: device.polls >= 2, "polls after the failure")
    finally:
        await bus.stop()
    assert [list(b) for b in client.batches[:3]] == [WHOLE, WHOLE, FAST]


async def test_the_poll_after_a_write_reads_the_whole_device() -> None:
    """A write's follow-up poll reads every property, then the cycles go on."""
    client = Device()
    bus, device = bus_with_cycles(client)
    bus.start()
    try:
        await until(lambda: device.polls >= 2, "two polls")
        before = len(client.batches)
        await bus.write("default/d", PropertyVisitor(name="s", index=1, type="INT"), "5")
        await until(lambda: len(client.batches) >= before + 2, "polls after the write")
    finally:
        await bus.stop()
    after = [list(b) for b in client.batches[before:]]
    assert WHOLE in after  # the follow-up (a due poll may come first)
    assert after[-1] == FAST
