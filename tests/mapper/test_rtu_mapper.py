"""Modbus RTU end to end: a device on a socat pseudo-terminal pair → mapper → device manager.

``socat`` links two pseudo-terminals; pymodbus's RTU server answers on one end as unit 1, the
mapper (``communicateMode: RTU``) polls the other. Without socat the test fails when ``CI`` is
set and is skipped elsewhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Final

import pytest
from mapper_helpers import manifests, mapper_config, running_mapper
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge_helpers import running_app, short_home
from serial_line import pty_pair
from twinplane.drivers.modbus.adapter import ModbusDriver
from twinplane.edge.core import EdgeCore
from waits import until

BAUD: Final = 115_200
WAIT: Final = 5.0
"""Seconds socat may take to make the pseudo-terminals."""

MODEL: Final = """\
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: rtu-model, namespace: default}
spec:
  protocol: modbus
  properties:
  - {name: temperature, type: FLOAT, accessMode: ReadOnly}
  - {name: setpoint, type: INT, accessMode: ReadWrite}
"""


def rtu_device(serial_port: str) -> str:
    """A boiler as unit 1 on ``serial_port``: temperature x 0.1 at 0, a setpoint at 1."""
    return f"""\
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {{name: rtu1, namespace: default}}
spec:
  deviceModelRef: {{name: rtu-model}}
  protocol:
    protocolName: modbus
    configData:
      communicateMode: RTU
      serialPort: {serial_port}
      baudRate: {BAUD}
      dataBits: 8
      parity: none
      stopBits: 1
      slaveID: 1
  properties:
  - name: temperature
    collectCycle: 50
    reportCycle: 50
    reportToCloud: true
    visitors:
      protocolName: modbus
      configData: {{register: HoldingRegister, offset: 0, limit: 1, dataType: float, scale: 0.1}}
  - name: setpoint
    collectCycle: 50
    reportCycle: 50
    reportToCloud: true
    visitors:
      protocolName: modbus
      configData: {{register: HoldingRegister, offset: 1, limit: 1, dataType: int}}
"""


@pytest.fixture
def line(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two linked pseudo-terminals: ``(device end, mapper end)``."""
    with pty_pair(tmp_path) as ends:
        yield ends


@pytest.fixture
async def serial_device(line: tuple[str, str]) -> AsyncIterator[str]:
    """Unit 1 (holding registers 215, 7) served over RTU; yields the mapper's end of the line."""
    unit = SimDevice(id=1, simdata=[SimData(0, values=[215, 7], datatype=DataType.REGISTERS)])
    server = ModbusSerialServer([unit], framer=FramerType.RTU, port=line[0], baudrate=BAUD)
    await server.serve_forever(background=True)
    try:
        yield line[1]
    finally:
        await server.shutdown()


def reported(core: EdgeCore, prop: str) -> str | None:
    """The device manager's reported value of one of ``rtu1``'s twins."""
    side = core.twins("default/rtu1")[prop]["reported"]
    return None if side is None else side["value"]


@pytest.mark.timeout(30)
async def test_rtu_register_reaches_the_twin_and_desired_is_written(serial_device: str) -> None:
    """Over RTU a register becomes the twin; a desired setpoint is written and reported back."""
    with short_home() as home:
        async with running_app(home, manifests(MODEL, rtu_device(serial_device))) as app:
            assert app.core is not None
            core = app.core
            cfg = mapper_config(home, app.config.socket_path, protocol="modbus")
            async with running_mapper(cfg, ModbusDriver(timeout=0.5)) as mapper:
                running = mapper.runtime.devices["default/rtu1"]
                assert running.bus.key == f"rtu://{serial_device}"
                await until(lambda: reported(core, "temperature") == "21.5", "the temperature")
                assert reported(core, "setpoint") == "7"

                await core.set_desired("default/rtu1", {"setpoint": "33"})
                await until(lambda: reported(core, "setpoint") == "33", "the setpoint read back")
                assert mapper.runtime.devices["default/rtu1"].client is running.client
                desired = core.twins("default/rtu1")["setpoint"]["desired"]
                assert desired is not None
                assert desired["value"] == "33"
