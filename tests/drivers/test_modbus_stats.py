"""The Modbus driver's ``stats()``: its clients' counters summed, closed clients' kept.

Real Modbus TCP over loopback: two simulators (two endpoints), devices from the driver's
``new_client`` as the mapper makes them.
"""

from __future__ import annotations

import dataclasses
from typing import cast

import pytest

from twinplane.drivers.base import DriverStat, FrameClient, ProtocolConfig
from twinplane.drivers.modbus import ModbusCounters, ModbusTimeoutError
from twinplane.drivers.modbus.adapter import COUNTER_METRICS, ModbusDriver
from twinplane.sim.modbus import ModbusSimulator

HOST = "127.0.0.1"
READS = [("HoldingRegister", 0, 4), ("CoilRegister", 0, 3)]

pytestmark = pytest.mark.timeout(30)


def _device(driver: ModbusDriver, port: int, unit: int) -> FrameClient:
    config = {"ip": HOST, "port": port, "slaveID": unit, "communicateMode": "TCP"}
    return cast(FrameClient, driver.new_client(ProtocolConfig("modbus", config)))


def _values(stats: list[DriverStat]) -> dict[str, float]:
    return {s.name: s.value for s in stats}


def test_every_client_counter_has_a_metric() -> None:
    """Each ModbusCounters field is exported, as a counter named ``modbus_..._total``."""
    assert set(COUNTER_METRICS) == {f.name for f in dataclasses.fields(ModbusCounters)}
    stats = ModbusDriver().stats()
    names = [s.name for s in stats]
    assert len(set(names)) == len(names)
    assert all(n.startswith("modbus_") for n in names)
    assert {s.name for s in stats if s.kind == "gauge"} == {
        "modbus_connections",
        "modbus_pipelining_disabled",
    }
    assert all(s.value == 0 for s in stats)


async def test_totals_over_endpoints_survive_closed_clients() -> None:
    """Counts add up over two endpoints and stay when a client closes; connections go down."""
    driver = ModbusDriver(timeout=2.0)
    async with (
        ModbusSimulator(2, host=HOST, port=0, rate=0) as a,
        ModbusSimulator(1, host=HOST, port=0, rate=0) as b,
    ):
        devices = [
            _device(driver, a.port, 1),
            _device(driver, a.port, 2),
            _device(driver, b.port, 1),
        ]
        for device in devices:
            await device.init_device()
        for device in devices:
            assert len(await device.read(READS)) == len(READS)
        reads = len(devices) * len(READS)
        stats = _values(driver.stats())
        assert stats["modbus_requests_total"] == stats["modbus_responses_total"] == reads
        assert stats["modbus_connections"] == 2
        assert stats["modbus_timeouts_total"] == stats["modbus_pipeline_timeouts_total"] == 0
        assert stats["modbus_pipelining_disabled"] == 0

        await devices[2].stop_device()  # the last device of endpoint b: its client closes
        stats = _values(driver.stats())
        assert stats["modbus_connections"] == 1
        assert stats["modbus_requests_total"] == stats["modbus_responses_total"] == reads

        await devices[0].read(READS)
        await driver.close()
    stats = _values(driver.stats())
    assert stats["modbus_connections"] == 0
    assert stats["modbus_requests_total"] == stats["modbus_responses_total"] == reads + 2


async def test_a_dead_unit_counts_timeouts() -> None:
    """A unit that never answers: its reads count as sent and timed out, none answered."""
    driver = ModbusDriver(timeout=0.2)
    async with ModbusSimulator(1, host=HOST, port=0, rate=0) as sim:
        device = _device(driver, sim.port, 1)
        await device.init_device()
        sim.faults.dead(unit=1)
        with pytest.raises(ModbusTimeoutError):
            await device.read(READS[:1])
        stats = _values(driver.stats())
        await driver.close()
    assert stats["modbus_requests_total"] == 1
    assert stats["modbus_timeouts_total"] == 1
    assert stats["modbus_responses_total"] == 0
