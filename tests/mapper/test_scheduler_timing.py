"""The bus scheduler's timing: on-time and late polls, the cheap poll path, overruns.

A real :class:`ModbusSimulator` on loopback, the Modbus driver's clients and a real engine;
the scheduler polls three devices on one TCP endpoint at a short cycle.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Sequence
from typing import cast

import pytest

from twinplane.drivers.base import FrameClient, FrameRead, ProtocolConfig
from twinplane.drivers.modbus.adapter import ModbusDeviceClient, ModbusDriver
from twinplane.mapper.scheduler import (
    LATENESS_BOUNDS_S,
    ON_TIME_TOLERANCE,
    BusScheduler,
    ScheduledDevice,
)
from twinplane.sim.modbus import ModbusSimulator
from twinplane.twin import Engine, PropertySpec

HOST = "127.0.0.1"
CYCLE_S = 0.1
RUN_S = 1.2

pytestmark = pytest.mark.timeout(30)

SPECS = [
    cast(
        PropertySpec,
        {"name": "t", "type": "INT", "visitor": {"register": "HoldingRegister", "offset": 0}},
    ),
    cast(
        PropertySpec,
        {"name": "c", "type": "BOOLEAN", "visitor": {"register": "CoilRegister", "offset": 1}},
    ),
]


async def _run(
    sim: ModbusSimulator, units: list[int], *, timeout_s: float, window: int = 1
) -> BusScheduler:
    engine = Engine()
    driver = ModbusDriver(timeout=2.0)
    bus = BusScheduler(f"tcp://{HOST}:{sim.port}", engine, max_in_flight=16)
    for unit in units:
        dev_id = f"default/d{unit}"
        index = engine.upsert_device(dev_id, SPECS)
        config = {
            "ip": HOST,
            "port": sim.port,
            "slaveID": unit,
            "communicateMode": "TCP",
            "maxInFlight": window,
        }
        client = driver.new_client(ProtocolConfig("modbus", config))
        assert isinstance(client, FrameClient)
        bus.add(
            ScheduledDevice(
                device_id=dev_id,
                index=index,
                client=client,
                props=[],
                plan=engine.read_plan(index),
                cycle_s=CYCLE_S,
                timeout_s=timeout_s,
            )
        )
    bus.start()
    try:
        await asyncio.sleep(RUN_S)
    finally:
        await bus.stop()
        await driver.close()
    return bus


async def test_healthy_devices_are_polled_on_time_through_the_cheap_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every poll of answering devices is on time, and the samples reach the engine.

    No poll goes through the client's coroutine read: the first one initialises (connects) the
    device and then takes the cheap path like the others.
    """
    coroutine_reads = 0
    original = ModbusDeviceClient.read

    async def counted(self: ModbusDeviceClient, batch: Sequence[FrameRead]) -> list[bytes]:
        nonlocal coroutine_reads
        coroutine_reads += 1
        return await original(self, batch)

    monkeypatch.setattr(ModbusDeviceClient, "read", counted)
    async with ModbusSimulator(3, host=HOST, port=0, rate=0) as sim:
        bus = await _run(sim, [1, 2, 3], timeout_s=1.0)
        requests = sim.counters.requests
    stats = bus.stats
    expected = 3 * RUN_S / CYCLE_S
    assert expected * 0.8 <= stats.polls <= expected + 3
    assert stats.poll_errors == 0
    assert stats.overruns == 0
    assert stats.polls_on_time + stats.polls_late == stats.polls
    assert stats.polls_on_time >= 0.95 * stats.polls
    assert sum(stats.lateness) == stats.polls
    assert coroutine_reads == 0  # the first poll too: initialised, then the cheap path
    assert 2 * stats.polls <= requests <= 2 * (stats.polls + 3)  # + polls cut off by stop()
    changes = {(c["device"], c["property"]) for c in bus.engine.report().to_list()}
    assert ("default/d2", "t") in changes


async def test_slow_device_polls_are_late_and_overrun_not_counted_on_time() -> None:
    """A unit answering after 1.5 cycles: its polls overrun and none counts as on time.

    The endpoint pipelines (``maxInFlight`` 16), so the slow unit does not hold up its
    neighbour. The slow unit's polls start on time (a poll due while it is busy is skipped as
    an overrun, not started late): they are late because they finish after the next poll was
    due, which the start-lateness histogram does not show and the on-time count does.
    """
    async with ModbusSimulator(2, host=HOST, port=0, rate=0) as sim:
        sim.faults.slow(CYCLE_S * 1.5, unit=2)
        bus = await _run(sim, [1, 2], timeout_s=1.0, window=16)
    by_device = {d.device_id: d for d in bus.devices.values()}
    slow, fast = by_device["default/d2"], by_device["default/d1"]
    assert slow.overruns > 0
    assert fast.overruns == 0
    assert slow.polls >= 3
    stats = bus.stats
    assert stats.polls == slow.polls + fast.polls
    assert stats.polls_late >= slow.polls - 1  # the first may beat the fault's first delay
    assert stats.polls_on_time <= fast.polls + 1
    # Every poll, the slow unit's included, started within the on-time tolerance.
    on_time_buckets = bisect.bisect_left(LATENESS_BOUNDS_S, ON_TIME_TOLERANCE * CYCLE_S) + 1
    assert sum(stats.lateness[:on_time_buckets]) >= stats.polls - 1
    assert sum(stats.lateness) == stats.polls
    assert stats.poll_errors == 0


async def test_one_transaction_at_a_time_a_slow_unit_delays_its_neighbours() -> None:
    """On a one-at-a-time endpoint (the default) a slow unit's answers hold the line.

    Its neighbour's polls wait for the slow unit's transactions and are late too, but both
    devices keep answering: no poll fails.
    """
    async with ModbusSimulator(2, host=HOST, port=0, rate=0, max_in_flight=1) as sim:
        sim.faults.slow(CYCLE_S * 1.5, unit=2)
        bus = await _run(sim, [1, 2], timeout_s=1.0)
        ignored = sim.counters.ignored
    by_device = {d.device_id: d for d in bus.devices.values()}
    assert by_device["default/d1"].overruns > 0
    assert by_device["default/d1"].polls >= 3
    assert by_device["default/d2"].polls >= 2  # 0.15 s each: on a loaded machine only a few
    assert bus.stats.poll_errors == 0
    assert ignored == 0  # the client never sent a second request while one was unanswered


async def test_dead_device_fails_within_its_poll_timeout() -> None:
    """A dead unit's polls fail after the device's timeout (the cheap path's own deadline)."""
    async with ModbusSimulator(2, host=HOST, port=0, rate=0) as sim:
        bus = await _run(sim, [1, 2], timeout_s=0.3)  # unit 2 answers its first poll (init)
        assert bus.stats.poll_errors == 0
        sim.faults.dead(unit=2)
        bus2 = await _run(sim, [1, 2], timeout_s=0.3)
    states = {d.device_id: d.state for d in bus2.devices.values()}
    assert states == {"default/d1": "online", "default/d2": "offline"}
    assert 1 <= bus2.stats.poll_errors <= RUN_S / 0.3 + 1


async def test_devices_of_a_bus_share_its_phase_and_buses_differ() -> None:
    """A bus's devices are due at the same phase of the cycle; another bus has another phase."""
    engine = Engine()
    driver = ModbusDriver(timeout=2.0)
    buses = [BusScheduler(f"tcp://{HOST}:{5020 + b}", engine, max_in_flight=16) for b in (0, 1)]
    for b, bus in enumerate(buses):
        for unit in (1, 2, 3):
            dev_id = f"default/b{b}-d{unit}"
            index = engine.upsert_device(dev_id, SPECS)
            config = {"ip": HOST, "port": 5020 + b, "slaveID": unit, "communicateMode": "TCP"}
            bus.add(
                ScheduledDevice(
                    device_id=dev_id,
                    index=index,
                    client=driver.new_client(ProtocolConfig("modbus", config)),
                    props=[],
                    plan=engine.read_plan(index),
                    cycle_s=CYCLE_S,
                    timeout_s=1.0,
                )
            )
    phases = [{round(d.due % CYCLE_S, 6) for d in bus.devices.values()} for bus in buses]
    assert [len(p) for p in phases] == [1, 1]
    assert phases[0] != phases[1]
    await driver.close()


async def test_a_bus_taking_one_transaction_at_a_time_spreads_its_devices() -> None:
    """Each device of a ``maxInFlight: 1`` bus has a phase of its own; a pipelining bus has one.

    The phases are golden-ratio steps apart, so ten units behind one connection do not queue
    behind each other every cycle; a pipelining bus keeps one phase for all (one write per
    cycle). A serial line spreads too.
    """
    engine = Engine()
    driver = ModbusDriver(timeout=2.0)
    phases: dict[int | None, list[float]] = {}
    for max_in_flight in (1, 16):
        config = {"ip": HOST, "port": 5020, "communicateMode": "TCP"}
        if max_in_flight > 1:
            config["maxInFlight"] = max_in_flight
        spec = driver.bus(ProtocolConfig("modbus", config))
        assert spec.spread is (max_in_flight == 1)
        bus = BusScheduler(spec.key, engine, max_in_flight=spec.max_in_flight, spread=spec.spread)
        for unit in range(1, 11):
            dev_id = f"default/w{max_in_flight}-d{unit}"
            index = engine.upsert_device(dev_id, SPECS)
            bus.add(
                ScheduledDevice(
                    device_id=dev_id,
                    index=index,
                    client=driver.new_client(ProtocolConfig("modbus", {**config, "slaveID": unit})),
                    props=[],
                    plan=engine.read_plan(index),
                    cycle_s=CYCLE_S,
                    timeout_s=1.0,
                )
            )
        phases[max_in_flight] = sorted(
            (d.due - bus.phase * CYCLE_S) % CYCLE_S / CYCLE_S for d in bus.devices.values()
        )
    spread, together = phases[1], phases[16]
    assert len({round(p, 6) for p in spread}) == 10
    gaps = [b - a for a, b in zip(spread, [*spread[1:], spread[0] + 1], strict=True)]
    assert min(gaps) > 0.05  # ten phases over the cycle, none closer than a twentieth
    assert len({round(p, 6) for p in together}) == 1
    rtu = driver.bus(ProtocolConfig("modbus", {"communicateMode": "RTU", "serialPort": "/dev/x"}))
    assert rtu.spread
    await driver.close()
