"""Per-property collect cycles inside one device, against real peers.

A device with a fast property (every 100 ms) and slow ones (every 300 ms): the slow registers
are read about a third as often as the fast one, the reads of properties due together are
coalesced (one request per register range), and the twin reports every property. Read counts
come from the peers themselves: our simulator's request counter, pymodbus's server's request
log, and virtual counters (which count their own reads). The bounds are wide, as the polls
run on a loaded machine; reading every property every poll (a device polled at its shortest
cycle) would put every ratio at 1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from mapper_helpers import manifests, mapper_config, running_mapper, virtual_model

from edge_helpers import running_app, short_home
from modbus_peers import PymodbusServer, holding
from twinplane.dmi.convert import device_to_proto, model_to_proto
from twinplane.dmi.v1beta1 import api_pb2
from twinplane.drivers.base import Driver
from twinplane.drivers.modbus.adapter import ModbusDriver
from twinplane.drivers.virtual import VirtualDriver
from twinplane.manifests.load import load_strict
from twinplane.mapper.register import load_answer
from twinplane.mapper.runtime import MapperRuntime, RunningDevice
from twinplane.mapper.sinks import DataPlane
from twinplane.sim.modbus import ModbusSimulator
from waits import until

pytestmark = pytest.mark.timeout(60)

FAST_MS, SLOW_MS = 100, 300
POLLS = 30
"""Fast polls each test waits for (about 3 s)."""
LOW, HIGH = 0.2, 0.5
"""Bounds of slow reads per fast read (a third when every poll is on time)."""
WAIT_S = 30.0

MODEL = """\
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: meter-model, namespace: default}
spec:
  protocol: modbus
  properties:
  - {name: power, type: INT, accessMode: ReadOnly}
  - {name: energy, type: INT, accessMode: ReadOnly}
  - {name: serial, type: INT, accessMode: ReadOnly}
"""


def meter(port: int, offsets: Sequence[int], unit: int = 1) -> str:
    """A meter: power (fast), energy and serial (slow) on holding registers ``offsets``."""
    props = "".join(
        f"  - name: {name}\n"
        f"    collectCycle: {cycle}\n"
        "    reportCycle: 600\n"
        f"    visitors: {{protocolName: modbus, configData: "
        f"{{register: HoldingRegister, offset: {offset}, limit: 1, dataType: uint16}}}}\n"
        for (name, cycle), offset in zip(
            (("power", FAST_MS), ("energy", SLOW_MS), ("serial", SLOW_MS)), offsets, strict=True
        )
    )
    return (
        "apiVersion: devices.kubeedge.io/v1beta1\n"
        "kind: Device\n"
        "metadata: {name: meter, namespace: default}\n"
        "spec:\n"
        "  deviceModelRef: {name: meter-model}\n"
        "  protocol:\n"
        "    protocolName: modbus\n"
        f"    configData: {{ip: 127.0.0.1, port: {port}, slaveID: {unit}, communicateMode: TCP}}\n"
        "  properties:\n" + props
    )


async def started(tmp_path: Path, driver: Driver, docs: str) -> MapperRuntime:
    """A mapper runtime (no servers) running the manifests' devices."""
    loaded = load_strict(docs)
    (model,) = loaded.models
    runtime = MapperRuntime(mapper_config(tmp_path, tmp_path / "dmi.sock"), driver, DataPlane())
    answer = api_pb2.MapperRegisterResponse(modelList=[model_to_proto(model)])
    answer.deviceList.extend(device_to_proto(d, model) for d in loaded.devices)
    await load_answer(runtime, answer)
    return runtime


def reported(runtime: MapperRuntime, device: str) -> dict[str, str | None]:
    """The engine's reported value of each property (after folding the samples in)."""
    runtime.engine.report()
    twins = runtime.engine.twins(device)
    return {p: None if t["reported"] is None else t["reported"]["value"] for p, t in twins.items()}


def only(running: RunningDevice) -> RunningDevice:
    """A device that is online."""
    assert running.scheduled.state == "online", running.scheduled.error
    return running


async def test_slow_registers_are_read_a_third_as_often_on_the_simulator(tmp_path: Path) -> None:
    """Our simulator counts one request per poll (power), and one more per slow poll (20..21)."""
    async with ModbusSimulator(devices=1, port=0, rate=0) as sim:
        sim.set_registers(1, 0, [11])
        sim.set_registers(1, 20, [22, 23])
        docs = manifests(MODEL, meter(sim.port, (0, 20, 21)))
        runtime = await started(tmp_path, ModbusDriver(timeout=1.0), docs)
        try:
            scheduled = runtime.devices["default/meter"].scheduled
            await until(lambda: scheduled.polls >= POLLS, f"{POLLS} polls", WAIT_S)
            polls, requests = scheduled.polls, sim.counters.requests
            await until(
                lambda: (
                    reported(runtime, "default/meter")
                    == {"power": "11", "energy": "22", "serial": "23"}
                ),
                "the twin",
            )
            only(runtime.devices["default/meter"])
        finally:
            await runtime.stop()
    # every poll reads power (register 0); a slow poll adds one request for energy and serial
    # (a poll in flight at the count may have sent its requests)
    slow_polls = requests - polls
    assert LOW * polls <= slow_polls <= HIGH * polls + 2, (polls, requests)


async def test_reads_due_together_are_coalesced_on_a_third_party_server(tmp_path: Path) -> None:
    """Pymodbus's log: power alone on fast polls, power+energy in one read and serial on slow."""
    server = PymodbusServer((1,), log=True)
    await server.start()
    try:
        docs = manifests(MODEL, meter(server.port, (0, 1, 8)))
        runtime = await started(tmp_path, ModbusDriver(timeout=1.0), docs)
        try:
            scheduled = runtime.devices["default/meter"].scheduled
            await until(lambda: scheduled.polls >= POLLS, f"{POLLS} polls", WAIT_S)
            want = {"power": str(holding(1)[0]), "energy": str(holding(1)[1])}
            want["serial"] = str(holding(1)[8])
            await until(lambda: reported(runtime, "default/meter") == want, "the twin")
            only(runtime.devices["default/meter"])
        finally:
            await runtime.stop()
        (bus,) = runtime.buses.values()
        polls = bus.stats.polls + bus.stats.poll_errors
    finally:
        await server.stop()
    reads = Counter((address, count) for _, function, address, count in server.requests)
    assert {f for _, f, _, _ in server.requests} == {3}  # holding-register reads only
    assert set(reads) == {(0, 1), (0, 2), (8, 1)}, reads  # energy never alone: coalesced
    fast_only, together, serial = reads[0, 1], reads[0, 2], reads[8, 1]
    assert abs(together - serial) <= 1  # read by the same polls (one may be in flight)
    assert 0 <= fast_only + together - polls <= 1, (reads, polls)  # power every poll, once
    assert LOW * (fast_only + together) <= together <= HIGH * (fast_only + together)


def counters_device(name: str) -> str:
    """A virtual device: count every 100 ms, setpoint and temp every 300 ms (counters all)."""
    props = "".join(
        f"  - name: {prop}\n"
        f"    collectCycle: {cycle}\n"
        "    reportCycle: 600\n"
        "    reportToCloud: true\n"
        "    visitors: {protocolName: virtual, configData: {kind: counter}}\n"
        for prop, cycle in (("temp", SLOW_MS), ("count", FAST_MS), ("setpoint", SLOW_MS))
    )
    return (
        "apiVersion: devices.kubeedge.io/v1beta1\n"
        "kind: Device\n"
        f"metadata: {{name: {name}, namespace: default}}\n"
        "spec:\n"
        "  deviceModelRef: {name: vmodel}\n"
        "  protocol: {protocolName: virtual, configData: {}}\n"
        "  properties:\n" + props
    )


async def test_virtual_properties_are_read_at_their_own_cycles_end_to_end() -> None:
    """Counters counting their reads, through the device manager: slow ones a third as often."""
    with short_home() as home:
        docs = manifests(virtual_model(), counters_device("v1"))
        async with running_app(home, docs) as app:
            assert app.core is not None
            core = app.core

            def value(prop: str) -> int:
                side = core.twins("default/v1")[prop]["reported"]
                return -1 if side is None else int(float(side["value"]))

            cfg = mapper_config(home, app.config.socket_path)
            async with running_mapper(cfg, VirtualDriver()) as mapper:
                running = mapper.runtime.devices["default/v1"]
                await until(lambda: value("count") >= POLLS, f"{POLLS} reads of count", WAIT_S)
                # a counter's value is its reads less one; temp and setpoint share their polls
                seen = {p: value(p) + 1 for p in ("count", "temp", "setpoint")}
                only(running)
    assert abs(seen["temp"] - seen["setpoint"]) <= 1, seen
    assert LOW * seen["count"] <= seen["temp"] <= HIGH * seen["count"], seen
