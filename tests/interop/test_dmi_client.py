"""KubeEdge's DMI client stubs against twinplane's two gRPC servers.

``dmi-client`` (interop/go) is made of KubeEdge's generated DMI v1beta1 stubs
(``github.com/kubeedge/api`` v1.23.0) and grpc-go, and dials a Unix socket as EdgeCore and
mapper-framework do. It prints one JSON line per RPC; every assertion is here.

- Scenario ``edge``: it is a mapper-framework mapper calling a real ``twinplane edge``
  (MapperRegister, ReportDeviceStatus, ReportDeviceStates) with mapper-framework's payloads and
  with nil and empty fields.
- Scenario ``mapper``: it is EdgeCore calling a real ``twinplane mapper --protocol modbus``
  (RegisterDevice, RemoveDevice, UpdateDevice, Create/Update/RemoveDeviceModel, GetDevice) with
  KubeEdge's Modbus sample as EdgeCore converts it, configData in ``google.protobuf.Any``; the
  device is a third-party Modbus TCP server (pymodbus).

Where twinplane answers otherwise than EdgeCore or mapper-framework would, the expectation says
so (docs/kubeedge.md lists the differences).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from asyncio.subprocess import Process
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge_helpers import EdgeProcess, edge_command, edge_process
from interop_tools import interop_binary
from modbus_peers import PymodbusServer, coils, holding
from twinplane.rest.guard import CLIENT_HEADER

pytestmark = pytest.mark.slow

CLIENT = "dmi-client"
RUN_WITHIN = 90.0
"""Seconds one scenario may take (the mapper waits 3 s for a model that never comes)."""

WRAPPERS = frozenset(
    f"google.protobuf.{name}"
    for name in ("StringValue", "BoolValue", "Int32Value", "Int64Value", "FloatValue")
)
"""The Any payloads mapper-framework's ``common.DecodeAnyValue`` decodes."""

# KubeEdge's v1beta1 Modbus sample (spec §6.4), on node "edge" (twinplane edge's default).
SAMPLE = """\
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: temperature-model, namespace: default}
spec:
  protocol: modbus
  properties:
  - {name: temperature, description: actual temperature, type: FLOAT, accessMode: ReadWrite,
     minimum: "0", maximum: "100.0", unit: Celsius}
  - {name: temperature-switch, type: INT, accessMode: ReadWrite}
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: temperature-instance}
spec:
  deviceModelRef: {name: temperature-model}
  nodeName: edge
  protocol:
    protocolName: modbus
    configData: {communicateMode: "TCP", port: "5502", slaveID: 1, ip: "127.0.0.1"}
  properties:
  - name: temperature
    visitors:
      protocolName: modbus
      configData: {dataType: "float", register: "HoldingRegister", offset: 0, limit: 1,
                   scale: 0.1, isSwap: false, isRegisterSwap: false, max: 100.0, min: 1.0}
    collectCycle: 10000
    reportCycle: 10000
    reportToCloud: true
  - name: temperature-switch
    desired: {value: "1"}
    visitors: {protocolName: modbus,
               configData: {dataType: "int", register: "CoilRegister", offset: 0, limit: 1,
                            scale: 1}}
    collectCycle: 10000
    reportCycle: 10000
    reportToCloud: true
  methods:
  - {name: SwitchControl, description: control the switch of the device,
     propertyNames: [temperature-switch]}
  - {name: UpdateTemperature, propertyNames: [temperature]}
"""

# The gRPC code of every call of scenario "edge" (grpc-go's names).
EDGE_CODES = {
    "register-nil-mapper": "InvalidArgument",
    "register-empty-protocol": "InvalidArgument",  # EdgeCore refuses it too
    "register-without-data": "OK",
    "register-with-data": "OK",
    "report-temperature": "OK",
    "report-switch": "OK",
    "report-two-twins": "OK",
    # EdgeCore: "does not have twin data"; twinplane: an empty report changes nothing.
    "report-nil-reported-device": "OK",
    "report-empty-twins": "OK",
    "report-twin-without-reported": "OK",  # EdgeCore would dereference nil here
    "report-twin-without-observed-desired": "OK",  # and here
    "report-empty-namespace": "OK",
    # EdgeCore answers these OK and drops them later; twinplane says why at once.
    "report-unknown-device": "NotFound",
    "report-unknown-property": "InvalidArgument",
    "report-value-not-an-int": "InvalidArgument",
    "report-empty-name": "NotFound",
    "state-ok": "OK",
    "state-online": "OK",
    "state-offline": "OK",
    "state-unhealthy": "OK",
    "state-unknown": "OK",
    "state-disconnected": "OK",  # EdgeCore ignores mapper-framework's "disconnected"
    "state-upper-case": "OK",
    "state-not-a-state": "InvalidArgument",  # EdgeCore ignores it silently
    "state-empty": "InvalidArgument",
    "state-empty-name": "InvalidArgument",
    "state-unknown-device": "NotFound",  # EdgeCore drops it silently
}

# The gRPC code of every call of scenario "mapper".
MAPPER_CODES = {
    "remove-unknown-device": "OK",  # mapper-framework: an error; twinplane: already gone
    "create-model-nil": "InvalidArgument",
    "create-model-empty-name": "InvalidArgument",
    "register-nil-device": "InvalidArgument",
    "register-empty-name": "InvalidArgument",
    "register-nil-spec": "InvalidArgument",
    "register-unknown-model": "FailedPrecondition",  # after 3 s, as mapper-framework's 3 tries
    "create-model": "OK",
    "register-before-its-model": "OK",
    "get-device-registered": "OK",
    "register-again": "OK",
    "update-device": "OK",
    "get-device-updated": "OK",
    "update-device-nil": "InvalidArgument",
    "update-model": "OK",
    "update-model-nil": "InvalidArgument",
    "register-nil-protocol-config": "InvalidArgument",
    "register-nil-visitor-config": "InvalidArgument",
    "get-device-empty-name": "NotFound",
    "get-device-unknown": "NotFound",
    "remove-device-empty-name": "InvalidArgument",
    "remove-device": "OK",
    "get-device-removed": "NotFound",
    "remove-model": "OK",
    "remove-model-unknown": "OK",
    "remove-model-empty-name": "OK",
}


async def run_client(binary: Path, *args: str) -> dict[str, dict[str, Any]]:
    """Runs ``dmi-client ARGS``: each call's result by its case name."""
    proc = await asyncio.create_subprocess_exec(
        str(binary),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), RUN_WITHIN)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")
    results = [json.loads(line) for line in out.decode().splitlines()]
    by_case = {r["case"]: r for r in results}
    assert len(by_case) == len(results), [r["case"] for r in results]
    return by_case


def codes(results: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Each case's gRPC code name."""
    return {case: r["code"] for case, r in results.items()}


async def rest(http: aiohttp.ClientSession, url: str) -> Any:  # noqa: ANN401 - decoded JSON
    """``GET url`` answered 200: the decoded body."""
    async with http.get(url) as resp:
        body = await resp.json(content_type=None)
        assert resp.status == 200, body
        return body


async def eventually(check: Callable[[], Any], what: str, within: float = 10.0) -> Any:  # noqa: ANN401
    """Awaits ``check()`` until it returns something true; that value."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {within:g} s (last: {value!r})")
        await asyncio.sleep(0.1)


def config_values(config: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A decoded configData map as plain values; every entry a wrapper mapper-framework reads."""
    assert {entry["type"] for entry in config.values()} <= WRAPPERS, config
    return {key: entry.get("value") for key, entry in config.items()}


# -- scenario edge ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def edge_with_sample() -> AsyncIterator[tuple[EdgeProcess, aiohttp.ClientSession]]:
    """``twinplane edge`` as a process with KubeEdge's Modbus sample applied."""
    with edge_process("--log-level", "warning") as edge:
        edge.start()
        async with aiohttp.ClientSession() as http:
            headers = {"Content-Type": "application/yaml", CLIENT_HEADER: "tests"}
            async with http.post(f"{edge.url}/api/v1/apply", data=SAMPLE, headers=headers) as r:
                assert r.status == 200, await r.text()
            yield edge, http


async def test_kubeedge_dmi_client_calls_every_device_manager_rpc() -> None:
    """MapperRegister, ReportDeviceStatus and ReportDeviceStates as mapper-framework sends them."""
    client = interop_binary(CLIENT)
    async with edge_with_sample() as (edge, http):
        address = edge.home / "modbus.sock"
        where = ["--edge-socket", str(edge.socket), "--mapper-address", str(address)]
        results = await run_client(client, "--scenario", "edge", *where)
        assert codes(results) == EDGE_CODES, {c: r["message"] for c, r in results.items()}
        _registration(results, address)
        _report_messages(results)
        await _registered_mapper(http, edge, address)
        await _twins_after_the_reports(http, edge)
        await _states_after_the_reports(http, edge)
        assert edge.proc is not None
        assert edge.proc.poll() is None, edge.output()


def _registration(results: dict[str, dict[str, Any]], address: Path) -> None:
    """The registration answers: refusals in EdgeCore's words, devices as a mapper reads them."""
    assert results["register-nil-mapper"]["message"] == "mapper must be set"
    assert results["register-empty-protocol"]["message"] == (
        "fail to register mapper Modbus-mapper because the protocol is nil"
    )
    assert results["register-without-data"]["answer"] == {"devices": [], "models": []}
    answer = results["register-with-data"]["answer"]
    (device,) = answer["devices"]
    (model,) = answer["models"]  # parallel to the devices
    assert (device["namespace"], device["name"]) == ("default", "temperature-instance")
    assert device["model"] == "temperature-model"
    # What mapper-framework dereferences without a nil check is all there (spec §1.4).
    assert device["specSet"], device
    assert device["protocolSet"], device
    assert device["statusSet"], device
    assert device["protocol"] == "modbus"
    assert device["protocolConfigSet"]
    assert config_values(device["protocolConfig"]) == {
        "communicateMode": "TCP",
        "port": "5502",  # quoted in the manifest: a StringValue
        "slaveID": 1,
        "ip": "127.0.0.1",
    }
    props = {p["name"]: p for p in device["properties"]}
    assert list(props) == ["temperature", "temperature-switch"]
    for prop in props.values():
        assert prop["desiredSet"], prop
        assert prop["visitorsSet"], prop
        assert prop["visitorConfigSet"], prop
        assert prop["visitorProtocol"] == "modbus"
        assert (prop["collectCycle"], prop["reportCycle"], prop["reportToCloud"]) == (
            10000,
            10000,
            True,
        )
    assert props["temperature"]["desired"] == ""
    assert props["temperature-switch"]["desired"] == "1"
    assert config_values(props["temperature"]["visitorConfig"]) == {
        "dataType": "float",
        "register": "HoldingRegister",
        "offset": 0,
        "limit": 1,
        "scale": 0.1,
        "isSwap": False,
        "isRegisterSwap": False,
        "max": 100,
        "min": 1,
    }
    assert config_values(props["temperature-switch"]["visitorConfig"]) == {
        "dataType": "int",
        "register": "CoilRegister",
        "offset": 0,
        "limit": 1,
        "scale": 1,
    }
    assert device["methods"] == {
        "SwitchControl": ["temperature-switch"],
        "UpdateTemperature": ["temperature"],
    }
    assert (model["namespace"], model["name"], model["specSet"]) == (
        "default",
        "temperature-model",
        True,
    )
    assert model["properties"] == [
        {
            "name": "temperature",
            "description": "actual temperature",
            "type": "FLOAT",
            "accessMode": "ReadWrite",
            "minimum": "0",
            "maximum": "100.0",
            "unit": "Celsius",
        },
        {
            "name": "temperature-switch",
            "description": "",
            "type": "INT",
            "accessMode": "ReadWrite",
            "minimum": "",
            "maximum": "",
            "unit": "",
        },
    ]
    assert model["commands"] == 0


def _report_messages(results: dict[str, dict[str, Any]]) -> None:
    """Refused reports name what is wrong."""
    unknown = "unknown device default/no-such-device"
    assert results["report-unknown-device"]["message"] == unknown
    assert results["state-unknown-device"]["message"] == unknown
    assert "humidity" in results["report-unknown-property"]["message"]
    message = results["report-value-not-an-int"]["message"]
    assert "temperature-switch" in message
    assert "INT" in message
    assert "sleeping" in results["state-not-a-state"]["message"]


async def _registered_mapper(http: aiohttp.ClientSession, edge: EdgeProcess, address: Path) -> None:
    """The device manager keeps MapperInfo as sent, the address bytes as the socket path."""
    mapper = await rest(http, f"{edge.url}/api/v1/mappers/Modbus-mapper")
    assert {k: mapper[k] for k in ("protocol", "address", "version", "apiVersion", "state")} == {
        "protocol": "modbus",
        "address": str(address),
        "version": "v1.13.0",
        "apiVersion": "v1.0.0",
        "state": "ok",
    }
    assert mapper["devices"] == ["default/temperature-instance"]


async def _twins_after_the_reports(http: aiohttp.ClientSession, edge: EdgeProcess) -> None:
    """Reported values landed; the nil and empty reports and observedDesired changed nothing."""
    url = f"{edge.url}/api/v1/namespaces/default/devices/temperature-instance/twin"
    twins = (await rest(http, url))["twins"]
    temperature, switch = twins["temperature"], twins["temperature-switch"]
    # 21.5, then 22.5, then 23.5 from the report without a namespace (default/...).
    assert temperature["reported"]["value"] == "23.5"
    assert switch["reported"]["value"] == "0"  # from the twin without observedDesired
    # mapper-framework's empty timestamp: the time of arrival.
    assert temperature["reported"]["timestamp"] > 0
    # A mapper's observedDesired does not set the device manager's desired value.
    assert temperature["desired"] is None
    assert switch["desired"]["value"] == "1"


async def _states_after_the_reports(http: aiohttp.ClientSession, edge: EdgeProcess) -> None:
    """Every accepted state was recorded; "ONLINE" counts as online; the device ends online."""
    url = f"{edge.url}/api/v1/namespaces/default/devices/temperature-instance"
    status = (await rest(http, url))["status"]
    assert status["state"] == "online"
    assert status["lastOnlineTime"].endswith("Z")

    async def state_events() -> dict[str, int]:
        events = await rest(http, f"{edge.url}/api/v1/namespaces/default/events?type=state")
        seen = {e["body"]["state"]: e["count"] for e in events["items"]}
        return seen if sum(seen.values()) >= 7 else {}  # the log is written in batches

    seen = await eventually(state_events, "seven state changes in the event log")
    assert seen == {
        "ok": 1,
        "online": 2,  # "online", then "ONLINE" after "disconnected"
        "offline": 1,
        "unhealthy": 1,
        "unknown": 1,
        "disconnected": 1,
    }


# -- scenario mapper -------------------------------------------------------------------------------


@dataclass
class Mapper:
    """``twinplane mapper`` as a process: its socket and what it printed."""

    proc: Process
    socket: Path
    log: Path

    def output(self) -> str:
        """What the mapper printed so far."""
        return self.log.read_text(errors="replace")


@contextlib.asynccontextmanager
async def modbus_mapper(edge: EdgeProcess) -> AsyncIterator[Mapper]:
    """``twinplane mapper --protocol modbus`` registered with ``edge``, once it has started."""
    home = edge.home / "mapper"
    home.mkdir(mode=0o700)
    args = [
        *("mapper", "--protocol", "modbus", "--socket", str(home / "modbus.sock")),
        *("--edgecore-sock", str(edge.socket), "--home", str(home), "--http-port", "0"),
        *("--log-level", "warning"),
    ]
    log = home / "mapper.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *edge_command(),
            *args,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    mapper = Mapper(proc, home / "modbus.sock", log)
    try:

        async def started() -> bool:  # its banner is printed once every part started
            assert proc.returncode is None, f"the mapper ended:\n{mapper.output()}"
            return any(line.startswith("twinplane mapper") for line in mapper.output().splitlines())

        await eventually(started, "the mapper starts", within=30)
        yield mapper
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def coil(server: PymodbusServer, unit: int, address: int) -> bool:
    """A coil as the Modbus server holds it now."""
    assert server.server is not None
    context: Any = server.server.context
    (value,) = await context.async_getValues(unit, 1, address, 1)
    return bool(value)


async def test_kubeedge_dmi_client_calls_every_mapper_rpc() -> None:
    """EdgeCore's Devices and DeviceModels down DeviceMapperService, and GetDevice's answers."""
    client = interop_binary(CLIENT)
    server = PymodbusServer(units=(1,))
    await server.start()
    try:
        assert coils(1)[0]  # coil 0 reads 1 before the mapper writes the sample's desired 0
        with edge_process("--log-level", "warning") as edge:
            edge.start()
            async with modbus_mapper(edge) as mapper:
                modbus = f"127.0.0.1:{server.port}"
                where = ["--mapper-socket", str(mapper.socket), "--modbus-addr", modbus]
                results = await run_client(client, "--scenario", "mapper", *where)
                messages = {c: r["message"] for c, r in results.items()}
                assert codes(results) == MAPPER_CODES, (messages, mapper.output())
                _lifecycle_answers(results)
                _registered_device(results)
                _updated_device(results)
                assert await coil(server, 1, 0)  # the updated desired 1, written
                assert mapper.proc.returncode is None, mapper.output()
    finally:
        await server.stop()


def _lifecycle_answers(results: dict[str, dict[str, Any]]) -> None:
    """Responses carry the names; refusals name the field."""
    assert results["create-model"]["answer"] == {
        "deviceModelName": "temperature-model",
        "deviceModelNamespace": "default",
    }
    for case in ("register-before-its-model", "register-again"):
        assert results[case]["answer"] == {
            "deviceName": "temperature-instance",
            "deviceNamespace": "default",
        }
    assert results["register-nil-device"]["message"] == "device.name must be set"
    assert results["register-empty-name"]["message"] == "device.name must be set"
    assert results["update-device-nil"]["message"] == "device.name must be set"
    assert results["create-model-nil"]["message"] == "model.name must be set"
    assert results["update-model-nil"]["message"] == "model.name must be set"
    assert results["remove-device-empty-name"]["message"] == "deviceName must be set"
    assert results["register-nil-spec"]["message"] == (
        "device.spec.deviceModelReference must be set"
    )
    assert "ip" in results["register-nil-protocol-config"]["message"]
    assert "register" in results["register-nil-visitor-config"]["message"]
    assert results["register-unknown-model"]["message"] == (
        "deviceModel never-created in default namespace not found"
    )
    assert results["get-device-removed"]["message"] == (
        "device default/temperature-instance not found"
    )


def _twins(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    device = result["answer"]["device"]
    assert result["answer"]["deviceSet"]
    assert (device["namespace"], device["name"]) == ("default", "temperature-instance")
    return {t["property"]: t for t in device["twins"]}


def _registered_device(results: dict[str, dict[str, Any]]) -> None:
    """GetDevice: the values read from the device, the desired 0 written and read back."""
    twins = _twins(results["get-device-registered"])
    assert set(twins) == {"temperature", "temperature-switch"}
    temperature, switch = twins["temperature"], twins["temperature-switch"]
    # Holding register 0 of unit 1, as a scaled int16 (scale 0.1).
    assert temperature["reported"] == f"{holding(1)[0] / 10:g}"
    assert switch["reported"] == "0"
    assert switch["observedDesired"] == "0"
    assert temperature["reportedMeta"]["type"] == "float"
    assert switch["reportedMeta"]["type"] == "int"
    for twin in twins.values():
        assert twin["reportedSet"], twin
        assert twin["observedDesiredSet"], twin
        assert twin["reportedMeta"]["timestamp"].isdigit(), twin


def _updated_device(results: dict[str, dict[str, Any]]) -> None:
    """After UpdateDevice (port unquoted, desired 1): the new value written and read back."""
    twins = _twins(results["get-device-updated"])
    assert twins["temperature-switch"]["reported"] == "1"
    assert twins["temperature-switch"]["observedDesired"] == "1"
    assert twins["temperature"]["reported"] == f"{holding(1)[0] / 10:g}"
