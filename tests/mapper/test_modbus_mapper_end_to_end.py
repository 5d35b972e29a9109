"""Modbus end to end: simulator → mapper → device manager twin, and desired → register."""

from __future__ import annotations

import pytest
from mapper_helpers import manifests, mapper_config, running_mapper

from edge_helpers import running_app, short_home
from twinplane.drivers.modbus.adapter import ModbusDriver
from twinplane.edge.core import EdgeCore
from twinplane.sim.modbus import ModbusSimulator
from waits import until

MODEL = """\
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: boiler-model, namespace: default}
spec:
  protocol: modbus
  properties:
  - {name: temperature, type: FLOAT, accessMode: ReadOnly}
  - {name: setpoint, type: INT, accessMode: ReadWrite}
"""


def modbus_device(name: str, port: int, unit: int) -> str:
    """A boiler on unit ``unit`` of the simulator's port: temperature x 0.1, a setpoint."""
    return f"""\
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {{name: {name}, namespace: default}}
spec:
  deviceModelRef: {{name: boiler-model}}
  protocol:
    protocolName: modbus
    configData: {{ip: 127.0.0.1, port: {port}, slaveID: {unit}, communicateMode: TCP}}
  properties:
  - name: temperature
    collectCycle: 40
    reportCycle: 40
    reportToCloud: true
    visitors:
      protocolName: modbus
      configData: {{register: HoldingRegister, offset: 0, limit: 1, dataType: float, scale: 0.1}}
  - name: setpoint
    collectCycle: 40
    reportCycle: 40
    reportToCloud: true
    visitors:
      protocolName: modbus
      configData: {{register: HoldingRegister, offset: 1, limit: 1, dataType: int}}
"""


def reported(core: EdgeCore, device: str, prop: str) -> str | None:
    """The device manager's reported value of a twin."""
    side = core.twins(f"default/{device}")[prop]["reported"]
    return None if side is None else side["value"]


@pytest.mark.timeout(30)
async def test_simulator_values_reach_the_twin_and_desired_writes_the_register() -> None:
    """Pinned registers become twins; a desired setpoint is written and reported back."""
    async with ModbusSimulator(devices=3, port=0, units_per_port=3, rate=0) as sim:
        for unit in (1, 2, 3):
            sim.set_registers(unit, 0, [200 + unit, 7])
        sim.faults.dead(unit=3)
        docs = manifests(MODEL, *(modbus_device(f"b{u}", sim.port, u) for u in (1, 2, 3)))
        with short_home() as home:
            async with running_app(home, docs) as app:
                assert app.core is not None
                core = app.core
                cfg = mapper_config(home, app.config.socket_path, protocol="modbus")
                async with running_mapper(cfg, ModbusDriver(timeout=0.3)) as mapper:
                    await until(lambda: reported(core, "b1", "temperature") == "20.1", "b1")
                    await until(lambda: reported(core, "b2", "temperature") == "20.2", "b2")
                    assert reported(core, "b1", "setpoint") == "7"
                    dead = mapper.runtime.devices["default/b3"].scheduled
                    await until(lambda: dead.failures >= 1, "the dead unit to fail")
                    assert dead.state == "offline"
                    client = mapper.runtime.devices["default/b1"].client

                    await core.set_desired("default/b1", {"setpoint": "33"})
                    await until(
                        lambda: sim.peek(1, "HoldingRegister", 1, 1) == b"\x00\x21", "register"
                    )
                    await until(lambda: reported(core, "b1", "setpoint") == "33", "reported 33")
                    assert mapper.runtime.devices["default/b1"].client is client
                    sim.set_registers(2, 0, [250])
                    await until(lambda: reported(core, "b2", "temperature") == "25", "b2 moves")
                    assert reported(core, "b3", "temperature") is None


@pytest.mark.timeout(30)
async def test_a_desired_value_in_the_manifest_is_written_when_the_device_starts() -> None:
    """A desired setpoint of a device added to a running bus is written before its first poll."""
    async with ModbusSimulator(devices=1, port=0, units_per_port=1, rate=0) as sim:
        device = modbus_device("b1", sim.port, 1).replace(
            "  - name: setpoint\n", '  - name: setpoint\n    desired: {value: "42"}\n'
        )
        with short_home() as home:
            async with running_app(home, manifests(MODEL, modbus_device("b0", sim.port, 1))) as app:
                assert app.core is not None
                core = app.core
                cfg = mapper_config(home, app.config.socket_path, protocol="modbus")
                async with running_mapper(cfg, ModbusDriver(timeout=0.3)):
                    # b0 keeps the bus busy; b1 arrives over RegisterDevice while it runs.
                    await until(lambda: reported(core, "b0", "setpoint") is not None, "b0")
                    await core.apply(device)
                    await until(
                        lambda: sim.peek(1, "HoldingRegister", 1, 1) == b"\x00\x2a", "register"
                    )
                    await until(lambda: reported(core, "b1", "setpoint") == "42", "reported 42")
