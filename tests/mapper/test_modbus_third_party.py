"""A Modbus mapper managing devices on Modbus TCP servers that are not ours.

pymodbus's server takes one transaction at a time (of pipelined requests it answers the first
and drops the others, as many PLCs and gateways do); modbus_tk's answers pipelined requests.
Each server holds two devices (unit ids 1 and 2 on one endpoint) with a property of each
register kind. With the driver's defaults every device comes online on both, its twins carry
the server's values, and a desired value reaches the server's register. A device configured
to pipeline (``maxInFlight``) on the one-at-a-time server is detected, logged, and served one
transaction at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from mapper_helpers import manifests, mapper_config, running_mapper

from edge_helpers import running_app, short_home
from modbus_peers import ModbusTkServer, PymodbusServer, coils, discrete_inputs, holding, inputs
from twinplane.drivers.modbus import ModbusTcpClient
from twinplane.drivers.modbus.adapter import ModbusDriver
from twinplane.edge.core import EdgeCore
from waits import until

pytestmark = pytest.mark.timeout(60)

MODEL = """\
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: plc-model, namespace: default}
spec:
  protocol: modbus
  properties:
  - {name: level, type: INT, accessMode: ReadOnly}
  - {name: setpoint, type: INT, accessMode: ReadWrite}
  - {name: pump, type: BOOLEAN, accessMode: ReadOnly}
  - {name: flow, type: INT, accessMode: ReadOnly}
  - {name: alarm, type: BOOLEAN, accessMode: ReadOnly}
"""

PROPERTIES = (
    ("level", "{register: HoldingRegister, offset: 4, limit: 1, dataType: uint16}"),
    ("setpoint", "{register: HoldingRegister, offset: 9, limit: 1, dataType: uint16}"),
    ("pump", "{register: CoilRegister, offset: 3, limit: 1, dataType: boolean}"),
    ("flow", "{register: InputRegister, offset: 6, limit: 1, dataType: uint16}"),
    ("alarm", "{register: DiscreteInputRegister, offset: 2, limit: 1, dataType: boolean}"),
)


def plc(name: str, port: int, unit: int, extra: str = "") -> str:
    """A device on unit ``unit`` of the endpoint, every property read every 50 ms."""
    props = "".join(
        f"  - name: {prop}\n"
        "    collectCycle: 50\n"
        "    reportCycle: 50\n"
        "    reportToCloud: true\n"
        f"    visitors: {{protocolName: modbus, configData: {visitor}}}\n"
        for prop, visitor in PROPERTIES
    )
    return (
        "apiVersion: devices.kubeedge.io/v1beta1\n"
        "kind: Device\n"
        f"metadata: {{name: {name}, namespace: default}}\n"
        "spec:\n"
        "  deviceModelRef: {name: plc-model}\n"
        "  protocol:\n"
        "    protocolName: modbus\n"
        f"    configData: {{ip: 127.0.0.1, port: {port}, slaveID: {unit}, "
        f"communicateMode: TCP{extra}}}\n"
        "  properties:\n" + props
    )


def server_values(unit: int) -> dict[str, str]:
    """What the server holds for each property, as twin text."""
    return {
        "level": str(holding(unit)[4]),
        "setpoint": str(holding(unit)[9]),
        "pump": "true" if coils(unit)[3] else "false",
        "flow": str(inputs(unit)[6]),
        "alarm": "true" if discrete_inputs(unit)[2] else "false",
    }


def reported(core: EdgeCore, device: str) -> dict[str, str | None]:
    """Every reported twin value of a device in the device manager."""
    out: dict[str, str | None] = {}
    for prop, twin in core.twins(f"default/{device}").items():
        side = twin["reported"]
        out[prop] = None if side is None else side["value"]
    return out


def _reports(core: EdgeCore, unit: int) -> Callable[[], bool]:
    """Whether device ``plc-<unit>`` reports what the server holds."""
    want = server_values(unit)
    return lambda: reported(core, f"plc-{unit}") == want


@pytest.mark.parametrize("kind", ["pymodbus", "modbus_tk"])
async def test_devices_on_a_third_party_server_report_and_take_writes(kind: str) -> None:
    """Two devices of four register kinds on one endpoint: online, right values, writes land."""
    server = PymodbusServer((1, 2)) if kind == "pymodbus" else ModbusTkServer((1, 2))
    await server.start()
    try:
        docs = manifests(MODEL, plc("plc-1", server.port, 1), plc("plc-2", server.port, 2))
        with short_home() as home:
            async with running_app(home, docs) as app:
                assert app.core is not None
                core = app.core
                cfg = mapper_config(home, app.config.socket_path, protocol="modbus")
                async with running_mapper(cfg, ModbusDriver(timeout=1.0)) as mapper:
                    for unit in (1, 2):
                        await until(_reports(core, unit), f"{kind} unit {unit}")
                    assert {d.scheduled.state for d in mapper.runtime.devices.values()} == {
                        "online"
                    }
                    await core.set_desired("default/plc-2", {"setpoint": "4321"})
                    await until(lambda: reported(core, "plc-2")["setpoint"] == "4321", "write")
                    assert await server.holding(2, 9, 1) == [4321]
                    client = mapper.runtime.devices["default/plc-1"].client
                    tcp = getattr(client, "_tcp", None)
                    assert isinstance(tcp, ModbusTcpClient)
                    assert tcp.max_in_flight == 1
                    assert tcp.counters.timeouts == tcp.counters.pipeline_timeouts == 0
    finally:
        await server.stop()


async def test_pipelining_asked_of_a_one_at_a_time_server_is_found_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``maxInFlight: 8`` on a one-at-a-time server: found out, logged, and served anyway.

    The lost reads are counted and logged once, the connection falls back to one transaction
    at a time, and both devices come online.
    """
    server = PymodbusServer((1, 2))
    await server.start()
    try:
        docs = manifests(
            MODEL,
            *(plc(f"plc-{u}", server.port, u, ", maxInFlight: 8") for u in (1, 2)),
        )
        with short_home() as home:
            async with running_app(home, docs) as app:
                assert app.core is not None
                core = app.core
                cfg = mapper_config(home, app.config.socket_path, protocol="modbus")
                with caplog.at_level(logging.WARNING, logger="twinplane.drivers.modbus"):
                    async with running_mapper(cfg, ModbusDriver(timeout=0.3)) as mapper:
                        for unit in (1, 2):
                            await until(_reports(core, unit), f"unit {unit}")
                        tcp = getattr(mapper.runtime.devices["default/plc-1"].client, "_tcp", None)
                        assert isinstance(tcp, ModbusTcpClient)
                        assert tcp.max_in_flight == 1
                        assert tcp.counters.pipeline_timeouts >= 1
                        assert tcp.counters.pipelining_disabled == 1
    finally:
        await server.stop()
    lines = [
        r.getMessage() for r in caplog.records if "one transaction at a time" in r.getMessage()
    ]
    assert len(lines) == 1
    assert f"127.0.0.1:{server.port}" in lines[0]
