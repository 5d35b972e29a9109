"""The Modbus adapter's read plans: a device polled with a few plans in turn, over real TCP."""

from __future__ import annotations

import pytest

from twinplane.drivers.base import FrameRead, ProtocolConfig
from twinplane.drivers.modbus.adapter import ModbusDeviceClient, ModbusDriver
from twinplane.drivers.modbus.tcp import ModbusTcpClient, PreparedReads
from twinplane.sim.modbus import ModbusSimulator

pytestmark = pytest.mark.timeout(30)

WHOLE: list[FrameRead] = [("HoldingRegister", 0, 2), ("InputRegister", 8, 1)]
FAST: list[FrameRead] = [("HoldingRegister", 0, 1)]


async def test_plans_polled_in_turn_are_each_checked_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two plans alternating (per-property cycles): right frames, each plan prepared once."""
    prepared: list[list[FrameRead]] = []
    real = ModbusTcpClient.prepare_reads

    def counted(reads: list[FrameRead]) -> PreparedReads:
        prepared.append(list(reads))
        return real(reads)

    monkeypatch.setattr(ModbusTcpClient, "prepare_reads", staticmethod(counted))
    async with ModbusSimulator(devices=1, port=0, rate=0) as sim:
        sim.set_registers(1, 0, [5, 6])
        driver = ModbusDriver(timeout=1.0)
        config = {"ip": "127.0.0.1", "port": sim.port, "slaveID": 1}
        client = driver.new_client(ProtocolConfig("modbus", config))
        assert isinstance(client, ModbusDeviceClient)
        await client.init_device()
        try:
            frames = []
            for plan in (WHOLE, FAST, WHOLE, FAST, FAST, WHOLE):
                fut = client.submit_read(plan, 1.0)
                assert fut is not None
                frames.append(await fut)
        finally:
            await client.stop_device()
            await driver.close()
        held = sim.peek(1, "InputRegister", 8, 1)
    whole, fast = [b"\x00\x05\x00\x06", held], [b"\x00\x05"]
    assert frames == [whole, fast, whole, fast, fast, whole]
    assert prepared == [WHOLE, FAST]
