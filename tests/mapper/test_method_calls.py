"""Method calls end to end: edge REST → Methods over gRPC on UDS → twinplane mapper → Modbus TCP.

Real parts: the device manager (EdgeApp, SQLite, its REST API), a twinplane mapper with the
Modbus driver, the simulator (its journal records each request in arrival order), pymodbus as
a third-party client and as a third-party server.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import grpc
import pytest
from mapper_helpers import manifests, mapper_config, running_mapper
from pymodbus.client import AsyncModbusTcpClient

from edge_helpers import running_app, short_home
from modbus_peers import HOST, PymodbusServer
from twinplane.drivers.modbus.adapter import ModbusDriver
from twinplane.edge.app import EdgeApp
from twinplane.edge.method_delivery import MethodsDeliverer
from twinplane.fleet import device_manifests
from twinplane.mapper.app import MapperApp
from twinplane.mapper.methods_service import MethodsServicer
from twinplane.rest.guard import CLIENT_HEADER
from twinplane.sim.modbus import ModbusSimulator
from twinplane.stream.v1 import stream_pb2, stream_pb2_grpc
from waits import until

MODEL = """\
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: thermo-model, namespace: default}
spec:
  protocol: modbus
  properties:
  - {name: temperature, type: INT, accessMode: ReadOnly}
  - {name: setpoint, type: INT, accessMode: ReadWrite, minimum: 5, maximum: 35}
"""

METHODS = {
    "setpoint": {"idempotent": True},
    "readRegisters": {
        "parameters": {
            "offset": {"type": "int", "required": True},
            "count": {"type": "int", "default": 1},
            "dataType": {"type": "string"},
        },
        "driver": {"command": "readRegisters", "register": "HoldingRegister"},
    },
    "writeBlock": {
        "parameters": {
            "offset": {"type": "int", "required": True},
            "values": {"type": "string"},
            "register": {"type": "string"},
        },
        "driver": {"command": "writeRegisters"},
    },
    "pulse": {
        "parameters": {"durationMs": {"type": "int", "default": 50}},
        "driver": {"command": "pulseCoil", "offset": 4},
    },
}

CALLS = "/api/v1/namespaces/default/devices/{name}/methods/{method}?wait=10s"


def thermostat(name: str, port: int, unit: int = 1, *, cycle_ms: int = 200, extra: str = "") -> str:
    """A thermostat on ``unit`` of ``port``: temperature at 0, an int16 setpoint at 1."""
    return f"""\
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata:
  name: {name}
  namespace: default
  annotations:
    twinplane.io/methods: {json.dumps(json.dumps(METHODS))}
spec:
  deviceModelRef: {{name: thermo-model}}
  protocol:
    protocolName: modbus
    configData: {{ip: {HOST}, port: {port}, slaveID: {unit}, communicateMode: TCP{extra}}}
  properties:
  - name: temperature
    collectCycle: {cycle_ms}
    reportCycle: {cycle_ms}
    visitors: {{protocolName: modbus, configData: {{register: HoldingRegister, offset: 0}}}}
  - name: setpoint
    collectCycle: {cycle_ms}
    reportCycle: {cycle_ms}
    visitors:
      protocolName: modbus
      configData: {{register: HoldingRegister, offset: 1, dataType: int16}}
  methods:
  - {{name: setpoint, propertyNames: [setpoint]}}
"""


@dataclass
class Stack:
    """The device manager, its REST session and the mapper, with the devices online."""

    app: EdgeApp
    mapper: MapperApp
    http: aiohttp.ClientSession

    @property
    def deliverer(self) -> MethodsDeliverer:
        """The edge's call delivery."""
        assert self.app.calls is not None
        deliverer = self.app.calls.deliverer
        assert isinstance(deliverer, MethodsDeliverer)
        return deliverer

    async def call(
        self, method: str, args: dict[str, Any], device: str = "t1", query: str = ""
    ) -> Any:  # noqa: ANN401
        """``POST …/methods/{method}?wait=10s[&query]``; the finished call."""
        url = CALLS.format(name=device, method=method) + (f"&{query}" if query else "")
        async with self.http.post(url, json=args) as resp:
            body = await resp.json()
            assert resp.status == 200, body
            return body


@contextlib.asynccontextmanager
async def stack(
    *devices: str, compat: bool = False, text: str | None = None, names: tuple[str, ...] = ()
) -> AsyncIterator[Stack]:
    """Edge + a twinplane Modbus mapper (``compat``: ``--edgecore-compat``) with ``devices``.

    ``text`` replaces the model and devices (then ``names`` are the devices to wait for).
    """
    names = names or tuple(doc.split("name: ", 1)[1].split("\n", 1)[0] for doc in devices)
    with short_home() as home:
        async with running_app(home, text or manifests(MODEL, *devices)) as app:
            cfg = mapper_config(home, app.config.socket_path, protocol="modbus")
            cfg = dataclasses.replace(cfg, edgecore_compat=compat)
            async with (
                running_mapper(cfg, ModbusDriver(timeout=1.0)) as mapper,
                aiohttp.ClientSession(
                    base_url=app.rest_url, headers={CLIENT_HEADER: "twinplane-tests"}
                ) as http,
            ):
                core = app.core
                assert core is not None

                def all_online() -> bool:
                    states = [core.states.get(f"default/{name}") for name in names]
                    return all(st is not None and st.state in ("online", "ok") for st in states)

                await until(all_online, "the devices online")
                yield Stack(app, mapper, http)


def writes(sim: ModbusSimulator, function: int) -> list[bytes]:
    """The request PDUs of ``function`` in the simulator's journal, in order."""
    assert sim.journal is not None
    return [pdu for _, pdu in sim.journal if pdu[0] == function]


@pytest.mark.timeout(60)
async def test_setpoint_call_reaches_the_register_through_the_methods_service() -> None:
    """A property method goes through Methods.Call (written values, not desired values)."""
    async with ModbusSimulator(devices=1, port=0, rate=0) as sim:
        sim.set_registers(1, 0, [20, 7])
        async with stack(thermostat("t1", sim.port)) as s:
            call = await s.call("setpoint", {"setpoint": 25})
            assert call["state"] == "Succeeded", call
            assert call["result"] == {"written": {"setpoint": "25"}}
            assert sim.peek(1, "HoldingRegister", 1, 1) == b"\x00\x19"
            assert s.deliverer.delivered == {"methods": 1, "desired": 0}
            core = s.app.core
            assert core is not None
            assert "setpoint" not in core.desired_values("default/t1")  # no desired value set

            def reported() -> str | None:
                side = core.twins("default/t1")["setpoint"]["reported"]
                return None if side is None else side["value"]

            await until(lambda: reported() == "25", "the written value reported")


@pytest.mark.timeout(60)
async def test_block_write_is_read_back_by_a_third_party_client() -> None:
    """A writeRegisters call (FC16) lands in the device; pymodbus's client reads the block back."""
    async with ModbusSimulator(devices=1, port=0, rate=0) as sim:
        sim.journal = []
        async with stack(thermostat("t1", sim.port)) as s:
            call = await s.call("writeBlock", {"offset": 10, "values": "11, 22, 65535"})
            assert call["state"] == "Succeeded", call
            assert call["result"] == {
                "register": "HoldingRegister",
                "offset": 10,
                "values": [11, 22, 65535],
            }
            assert [pdu[:6] for pdu in writes(sim, 16)] == [b"\x10\x00\x0a\x00\x03\x06"]
            client = AsyncModbusTcpClient(HOST, port=sim.port, timeout=2, retries=0)
            await client.connect()
            try:
                answer = await client.read_holding_registers(10, count=3, device_id=1)
            finally:
                client.close()
            assert answer.registers == [11, 22, 65535]


@pytest.mark.timeout(60)
async def test_block_write_against_a_pymodbus_server() -> None:
    """The same command against pymodbus's server: the server holds the block afterwards."""
    server = PymodbusServer(units=(1,), log=True)
    await server.start()
    try:
        async with stack(thermostat("t1", server.port, extra=", maxInFlight: 1")) as s:
            call = await s.call("writeBlock", {"offset": 20, "values": "5,6,7,8"})
            assert call["state"] == "Succeeded", call
            assert await server.holding(1, 20, 4) == [5, 6, 7, 8]
            assert (1, 16, 20, 4) in server.requests
    finally:
        await server.stop()


@pytest.mark.timeout(60)
async def test_registers_are_read_on_demand_and_decoded() -> None:
    """A readRegisters call (FC3) answers the words at once, and int16 values with dataType."""
    async with ModbusSimulator(devices=1, port=0, rate=0) as sim:
        sim.set_registers(1, 30, [1, 0xFFFF, 300])
        async with stack(thermostat("t1", sim.port)) as s:
            call = await s.call("readRegisters", {"offset": 30, "count": 3})
            assert call["state"] == "Succeeded", call
            assert call["result"] == {
                "register": "HoldingRegister",
                "offset": 30,
                "words": [1, 65535, 300],
            }
            call = await s.call("readRegisters", {"offset": 30, "count": 3, "dataType": "int16"})
            assert call["result"]["decoded"] == [1, -1, 300]
            assert s.mapper.runtime.devices["default/t1"].bus.stats.commands == 2


@pytest.mark.timeout(60)
async def test_a_coil_pulse_turns_the_coil_on_then_off() -> None:
    """A pulseCoil call writes the coil on (FC5 0xFF00), then off (FC5 0x0000); it ends off."""
    async with ModbusSimulator(devices=1, port=0, rate=0) as sim:
        sim.journal = []
        async with stack(thermostat("t1", sim.port)) as s:
            call = await s.call("pulse", {"durationMs": 80})
            assert call["state"] == "Succeeded", call
            assert call["result"] == {"offset": 4, "durationMs": 80}
            assert writes(sim, 5) == [b"\x05\x00\x04\xff\x00", b"\x05\x00\x04\x00\x00"]
            assert sim.peek(1, "CoilRegister", 4, 1) == b"\x00"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("method", "args", "field"),
    [
        ("writeBlock", {"offset": 10, "values": "1,70000"}, "values[1]"),
        ("writeBlock", {"offset": 65535, "values": "1,2"}, "values"),
        ("writeBlock", {"offset": 70000, "values": "1"}, "offset"),
        ("writeBlock", {"offset": 0, "values": ",".join(["1"] * 124)}, "values"),
        ("readRegisters", {"offset": 0, "count": 126}, "count"),
        ("readRegisters", {"offset": 65535, "count": 2}, "count"),
        ("readRegisters", {"offset": 0, "dataType": "float64"}, "dataType"),
    ],
)
async def test_bad_parameters_are_refused_naming_the_field(
    method: str, args: dict[str, Any], field: str
) -> None:
    """The driver refuses a bad parameter before sending anything; the error names it."""
    async with ModbusSimulator(devices=1, port=0, rate=0) as sim:
        sim.journal = []
        async with stack(thermostat("t1", sim.port)) as s:
            call = await s.call(method, args)
            assert call["state"] == "Failed", call
            assert call["error"]["code"] == "InvalidArgument", call
            assert call["error"]["message"].startswith(f"{field}: "), call
            assert writes(sim, 16) == []
            assert [pdu for _, pdu in sim.journal if pdu[1:3] != b"\x00\x00"] == []  # polls only


@pytest.mark.timeout(60)
async def test_a_mapper_without_the_service_gets_desired_values() -> None:
    """With --edgecore-compat (no Methods service) the setpoint goes as a desired value."""
    async with ModbusSimulator(devices=1, port=0, rate=0) as sim:
        sim.set_registers(1, 0, [20, 7])
        async with stack(thermostat("t1", sim.port), compat=True) as s:
            call = await s.call("setpoint", {"setpoint": 26})
            assert call["state"] == "Succeeded", call
            assert call["result"] == {"reported": {"setpoint": "26"}}
            assert sim.peek(1, "HoldingRegister", 1, 1) == b"\x00\x1a"
            assert s.deliverer.delivered == {"methods": 0, "desired": 1}
            call = await s.call("readRegisters", {"offset": 0})
            assert call["state"] == "Failed", call
            assert call["error"]["code"] == "NotOffered", call


async def test_a_mapper_that_offered_the_service_and_then_answers_unimplemented(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Capabilities said yes, then Call answers UNIMPLEMENTED (the mapper lost the service).

    Nothing ran on the mapper, so that call and the next go as desired values, and
    Capabilities is not asked again.
    """
    asked: list[str] = []
    capabilities = MethodsServicer.Capabilities

    async def counted(
        self: MethodsServicer,
        request: stream_pb2.MethodsCapabilitiesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> stream_pb2.MethodsCapabilities:
        asked.append(request.caller)
        return await capabilities(self, request, context)

    async def unimplemented(
        self: MethodsServicer,
        request: stream_pb2.MethodCall,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")

    monkeypatch.setattr(MethodsServicer, "Capabilities", counted)  # before the server starts:
    monkeypatch.setattr(MethodsServicer, "Call", unimplemented)  # it binds the handlers then
    async with ModbusSimulator(devices=1, port=0, rate=0) as sim:
        sim.set_registers(1, 0, [20, 7])
        async with stack(thermostat("t1", sim.port)) as s:
            call = await s.call("setpoint", {"setpoint": 26})
            assert call["state"] == "Succeeded", call
            assert call["result"] == {"reported": {"setpoint": "26"}}  # the desired-value way
            assert sim.peek(1, "HoldingRegister", 1, 1) == b"\x00\x1a"
            assert s.deliverer.delivered == {"methods": 0, "desired": 1}
            call = await s.call("setpoint", {"setpoint": 27})
            assert call["state"] == "Succeeded", call
            assert sim.peek(1, "HoldingRegister", 1, 1) == b"\x00\x1b"
            assert s.deliverer.delivered == {"methods": 0, "desired": 2}
            call = await s.call("readRegisters", {"offset": 0})
            assert call["error"]["code"] == "NotOffered", call  # no driver commands that way
    assert asked == ["twinplane-edge"]  # once, for the first call


@pytest.mark.timeout(60)
async def test_calls_pre_empt_polls_on_a_busy_bus() -> None:
    """A call's request goes out next on a bus with overdue polls (the journal's order)."""
    async with ModbusSimulator(devices=4, port=0, units_per_port=4, rate=0) as sim:
        devices = [
            thermostat(f"t{u}", sim.port, u, cycle_ms=10, extra=", maxInFlight: 1")
            for u in (1, 2, 3, 4)
        ]
        async with stack(*devices) as s:
            sim.faults.slow(
                0.3, port=sim.port
            )  # each answer takes 0.3 s: the three other units are overdue
            bus = s.mapper.runtime.devices["default/t1"].bus
            await until(lambda: bus.stats.polls_late >= 3, "polls to run late")
            sim.journal = []
            call = await s.call("readRegisters", {"offset": 40, "count": 2})
            assert call["state"] == "Succeeded", call
            journal = sim.journal
            calls = [i for i, (_, pdu) in enumerate(journal) if pdu == b"\x03\x00\x28\x00\x02"]
            assert len(calls) == 1, journal
            # At most the poll in flight when the call came, and one starting with it, before it.
            assert calls[0] <= 1, journal


@pytest.mark.timeout(60)
async def test_the_make_run_fleets_read_registers_command_works() -> None:
    """The fleet's readRegisters (as `make run` applies it) answers through the mapper."""
    async with ModbusSimulator(devices=1, port=0, rate=0, max_in_flight=1) as sim:
        sim.set_registers(1, 40, [215, 3])
        text = device_manifests([(sim.port, 1)])
        async with stack(text=text, names=("thermostat-1",)) as s:
            call = await s.call("readRegisters", {"offset": 40, "count": 2}, "thermostat-1")
            assert call["state"] == "Succeeded", call
            assert call["result"]["words"] == [215, 3]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("compat", [False, True])
async def test_capabilities_on_the_mappers_socket(compat: bool) -> None:
    """Methods.Capabilities lists the Modbus commands; --edgecore-compat answers UNIMPLEMENTED."""
    async with (
        ModbusSimulator(devices=1, port=0, rate=0) as sim,
        stack(thermostat("t1", sim.port), compat=compat) as s,
        grpc.aio.insecure_channel(f"unix:{s.mapper.config.socket_path}") as channel,
    ):
        stub = stream_pb2_grpc.MethodsStub(channel)
        request = stream_pb2.MethodsCapabilitiesRequest(caller="tests")
        if compat:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Capabilities(request, timeout=5)
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
            return
        answer = await stub.Capabilities(request, timeout=5)
        assert answer.protocol == "modbus"
        assert list(answer.driver_commands) == [
            "pulseCoil",
            "readRegisters",
            "writeRegisters",
        ]
        assert answer.property_writes
        unknown = await stub.Call(
            stream_pb2.MethodCall(
                id="x", device_namespace="default", device_name="nope", command="x"
            ),
            timeout=5,
        )
        assert unknown.error_code == "NotFound"


@pytest.mark.timeout(60)
async def test_a_coil_block_write_uses_fc15() -> None:
    """A writeRegisters call on CoilRegister writes the coils (FC15); the simulator holds them."""
    async with ModbusSimulator(devices=1, port=0, rate=0) as sim:
        sim.journal = []
        async with stack(thermostat("t1", sim.port)) as s:
            args = {"offset": 8, "values": "1,0,true", "register": "CoilRegister"}
            call = await s.call("writeBlock", args)
            assert call["state"] == "Succeeded", call
            assert call["result"]["values"] == [1, 0, 1]
            assert writes(sim, 15) == [b"\x0f\x00\x08\x00\x03\x01\x05"]
            assert sim.peek(1, "CoilRegister", 8, 3) == b"\x05"


@pytest.mark.timeout(60)
async def test_a_pulse_cut_by_its_deadline_still_turns_the_coil_off() -> None:
    """A pulse longer than the call's deadline ends the call, and the coil is written off."""
    async with ModbusSimulator(devices=1, port=0, rate=0) as sim:
        sim.journal = []
        async with stack(thermostat("t1", sim.port)) as s:
            call = await s.call("pulse", {"durationMs": 5000}, query="timeout=1s")
            assert call["state"] in ("TimedOut", "Failed"), call
            assert call["error"]["code"] == "Timeout", call
            await until(lambda: len(writes(sim, 5)) == 2, "the off write")
            assert writes(sim, 5) == [b"\x05\x00\x04\xff\x00", b"\x05\x00\x04\x00\x00"]
