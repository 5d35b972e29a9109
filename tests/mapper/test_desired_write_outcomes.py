"""A failed desired write is visible where the user set it, end to end.

A real device manager (``EdgeApp``, REST, SSE, its MQTT bridge on a real mosquitto), a real
Modbus mapper, and pymodbus's Modbus TCP server (not ours) whose unit refuses a setpoint above
100 with exception 3 (``ILLEGAL_DATA_VALUE``), as a PLC that checks ranges does. A refused
value shows in the twin after one attempt; a device that cannot be reached is tried again and
shows more attempts; the error survives a restart of the device manager; a later good write
clears it — over REST, SSE, MQTT ``…/twin/update/result`` and the CLI. Toward a plain DMI peer
(no TwinStream, like KubeEdge EdgeCore) the mapper only logs, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import grpc
import pytest
from mapper_helpers import manifests, mapper_config, running_mapper

from edge_helpers import edge_command, running_app, short_home
from modbus_peers import PymodbusServer, refuse_above
from mqtt_broker import running_mosquitto
from twinplane.dmi.convert import device_to_proto, model_to_proto
from twinplane.dmi.v1beta1 import api_pb2, api_pb2_grpc
from twinplane.drivers.modbus.adapter import ModbusDriver
from twinplane.edge.app import EdgeApp, EdgeConfig
from twinplane.manifests.load import load_strict
from twinplane.mapper.app import MapperApp
from twinplane.mapper.config import MapperConfig
from twinplane.mapper.fast_path import FastPathState
from waits import WAIT_S, until

pytestmark = pytest.mark.timeout(90)

SETPOINT = 1
"""The setpoint's holding register."""
LIMIT = 100
"""The largest setpoint the unit takes."""
DEVICE = "default/boiler"
TWIN_PATH = "/api/v1/namespaces/default/devices/boiler/twin"
RESULT_TOPIC = f"$hw/events/device/{DEVICE}/twin/update/result"

MODEL = """\
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: boiler-model, namespace: default}
spec:
  protocol: modbus
  properties:
  - {name: temperature, type: INT, accessMode: ReadOnly}
  - {name: setpoint, type: INT, accessMode: ReadWrite}
"""


def boiler(port: int, desired: str | None = None) -> str:
    """The boiler on unit 1 of ``port``: temperature (register 0) and setpoint (register 1)."""
    want = f"    desired: {{value: '{desired}'}}\n" if desired is not None else ""
    return f"""\
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {{name: boiler, namespace: default}}
spec:
  deviceModelRef: {{name: boiler-model}}
  protocol:
    protocolName: modbus
    configData: {{ip: 127.0.0.1, port: {port}, slaveID: 1, communicateMode: TCP}}
  properties:
  - name: temperature
    collectCycle: 100
    reportCycle: 100
    visitors:
      protocolName: modbus
      configData: {{register: HoldingRegister, offset: 0, limit: 1, dataType: int}}
  - name: setpoint
    collectCycle: 100
    reportCycle: 100
{want}    visitors:
      protocolName: modbus
      configData: {{register: HoldingRegister, offset: {SETPOINT}, limit: 1, dataType: int}}
"""


def plc(port: int | None = None) -> PymodbusServer:
    """Pymodbus's server with unit 1 refusing setpoints above :data:`LIMIT`."""
    return PymodbusServer((1,), port=port, actions={1: refuse_above(SETPOINT, LIMIT)})


def modbus_mapper(home: Path, socket: Path) -> MapperConfig:
    """A Modbus mapper whose retries wait 50 ms, then 100 ms (3 attempts)."""
    return dataclasses.replace(mapper_config(home, socket, protocol="modbus"), write_backoff_ms=50)


# -- observers: REST, SSE, MQTT, CLI -----------------------------------------------------------


async def twin(http: aiohttp.ClientSession, prop: str = "setpoint") -> dict[str, Any]:
    """``GET …/twin``'s twin of ``prop``."""
    async with http.get(TWIN_PATH) as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
    found: dict[str, Any] = body["twins"][prop]
    return found


async def wait_error(
    http: aiohttp.ClientSession, value: str | None, what: str
) -> dict[str, Any] | None:
    """Waits until the setpoint's ``last_write_error`` is for ``value`` (``None``: cleared)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while True:
        error: dict[str, Any] | None = (await twin(http))["last_write_error"]
        if (error is None and value is None) or (error is not None and error["value"] == value):
            return error
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last_write_error is {error}")
        await asyncio.sleep(0.02)


async def set_desired(http: aiohttp.ClientSession, value: str) -> None:
    """``PATCH …/twin`` with a desired setpoint."""
    async with http.patch(TWIN_PATH, json={"desired": {"setpoint": value}}) as resp:
        assert resp.status == 200, await resp.text()


class Events:
    """An SSE client of ``/api/v1/events?kinds=twin``, keeping the write events."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp

    async def write_event(self, value: str | None) -> dict[str, Any]:
        """The next ``twin`` event of kind ``write`` whose error is for ``value`` (or cleared)."""
        async with asyncio.timeout(WAIT_S):
            while True:
                line = await self.resp.content.readline()
                if not line.startswith(b"data: "):
                    continue
                data: dict[str, Any] = json.loads(line[6:])
                if data.get("kind") != "write":
                    continue
                error = data["last_write_error"]
                if (error is None) == (value is None) and (
                    error is None or error["value"] == value
                ):
                    return data


@contextlib.asynccontextmanager
async def events(http: aiohttp.ClientSession) -> AsyncIterator[Events]:
    """A subscribed event stream."""
    async with http.get("/api/v1/events?kinds=twin") as resp:
        assert resp.status == 200
        async with asyncio.timeout(WAIT_S):
            assert await resp.content.readline() == b": subscribed\n"
        yield Events(resp)


class Results:
    """An MQTT client subscribed to the boiler's ``…/twin/update/result``."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.bodies: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()

    async def run(self) -> None:
        """Receives until cancelled."""
        async for message in self.client.messages:
            assert isinstance(message.payload, bytes)
            self.bodies.append(json.loads(message.payload))
            self._arrived.set()

    async def write_result(self, value: str | None) -> dict[str, Any]:
        """The first result whose setpoint carries ``last_write_error`` for ``value`` (or null)."""
        async with asyncio.timeout(WAIT_S):
            while True:
                for body in self.bodies:
                    entry = body.get("twin", {}).get("setpoint") or {}
                    if "last_write_error" not in entry:
                        continue
                    error = entry["last_write_error"]
                    if (error is None and value is None) or (error or {}).get("value") == value:
                        return body
                self._arrived.clear()
                await self._arrived.wait()


@contextlib.asynccontextmanager
async def results(port: int) -> AsyncIterator[Results]:
    """A subscribed MQTT client on the broker at ``port``."""
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"test-{uuid.uuid4()}") as client:
        await client.subscribe(RESULT_TOPIC, qos=1)
        inbox = Results(client)
        task = asyncio.create_task(inbox.run())
        try:
            yield inbox
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def cli(server: str, *args: str) -> str:
    """Runs ``twinplane ARGS --server SERVER`` without blocking the loop; its output."""
    proc = await asyncio.create_subprocess_exec(
        *edge_command(),
        *args,
        "--server",
        server,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def resynced(app: EdgeApp, mapper: MapperApp) -> None:
    """Waits until a (re)started device manager has given the mapper its device again."""
    assert app.mappers is not None
    link = app.mappers.links[mapper.config.name]
    await until(lambda: link.pending == 0 and link.stats.sent >= 2, "the mapper's re-sync")


# -- the tests ---------------------------------------------------------------------------------


async def test_a_failed_write_shows_everywhere_survives_a_restart_and_clears() -> None:
    """Refused (1 attempt), unreachable (3 attempts), kept over a restart, cleared by a success."""
    server = plc()
    await server.start()
    try:
        with short_home() as home, running_mosquitto(home) as broker:
            config = EdgeConfig(home=home, rest_addr="127.0.0.1:0", mqtt_url=broker.mqtt_url)
            app = EdgeApp(config)
            try:
                await app.start()
                assert app.core is not None
                await app.core.apply(manifests(MODEL, boiler(server.port)))
                async with (
                    running_mapper(
                        modbus_mapper(home, config.socket_path), ModbusDriver(0.3)
                    ) as mapper,
                    results(broker.port) as mqtt,
                ):
                    async with aiohttp.ClientSession(base_url=app.rest_url) as http:
                        await refused_then_unreachable(app, mapper, http, mqtt, server)
                        error = (await twin(http))["last_write_error"]
                    await app.stop()

                    # A restart of the device manager keeps the error; the mapper runs on.
                    app = EdgeApp(config)
                    await app.start()
                    async with aiohttp.ClientSession(base_url=app.rest_url) as http:
                        assert (await twin(http))["last_write_error"] == error
                        await resynced(app, mapper)

                        # The device is back: a good value is written and clears the error.
                        await server.start()
                        await set_desired(http, "43")
                        assert await wait_error(http, None, "the error to clear") is None
                        result = await mqtt.write_result(None)
                        assert result["twin"]["setpoint"]["expected"]["value"] == "43"
                        assert await server.holding(1, SETPOINT, 1) == [43]
            finally:
                await app.stop()
    finally:
        await server.stop()


async def refused_then_unreachable(
    app: EdgeApp,
    mapper: MapperApp,
    http: aiohttp.ClientSession,
    mqtt: Results,
    server: PymodbusServer,
) -> None:
    """A refused value (one attempt) seen everywhere, then an unreachable device (3 attempts)."""
    fast = mapper.reporter.fast_path if mapper.reporter is not None else None
    assert fast is not None
    assert fast.write_outcomes is True  # discovered with Capabilities
    scheduled = mapper.runtime.devices[DEVICE].scheduled
    await until(lambda: scheduled.state == "online", "the boiler online")
    assert (await twin(http))["last_write_error"] is None

    # The device refuses the value: one attempt, the device's reason.
    async with events(http) as sse:
        await set_desired(http, "500")
        error = await wait_error(http, "500", "the refusal")
        event = await sse.write_event("500")
    assert error is not None
    assert error["attempts"] == 1
    assert "ILLEGAL_DATA_VALUE" in error["reason"]
    assert isinstance(error["time"], int)
    assert (event["device"], event["property"], event["value"]) == (DEVICE, "setpoint", "500")
    assert event["last_write_error"] == error
    result = await mqtt.write_result("500")
    assert result["twin"]["setpoint"]["last_write_error"] == error
    assert result["twin"]["setpoint"]["expected"]["value"] == "500"
    assert await server.holding(1, SETPOINT, 1) == [1017]  # unchanged
    async with http.get("/api/v1/namespaces/default/devices/boiler") as resp:
        status = (await resp.json())["status"]
    (entry,) = [t for t in status["twins"] if t["propertyName"] == "setpoint"]
    assert entry["lastWriteError"] == error
    table = (await cli(app.rest_url, "twin", "get", "boiler")).splitlines()
    assert table[0].split()[-1] == "WRITE-ERROR"
    (row,) = [line for line in table if line.startswith("setpoint")]
    assert "500 after 1 attempt: ModbusExceptionError: Modbus exception 3" in row
    described = await cli(app.rest_url, "describe", "device", "boiler")
    assert "Write Errors:" in described
    (line,) = [line for line in described.splitlines() if line.strip().startswith("setpoint:")]
    assert "500 at " in line
    assert "after 1 attempt: ModbusExceptionError" in line
    assert "ILLEGAL_DATA_VALUE" in line
    async with http.get("/metrics") as resp:
        metrics = await resp.text()
    assert "twinplane_write_failures_reported_total 1\n" in metrics
    assert "twinplane_twin_write_errors 1\n" in metrics

    # The device cannot be reached: tried again, 3 attempts.
    await server.stop()
    await set_desired(http, "42")
    error = await wait_error(http, "42", "the unreachable device's failure")
    assert error is not None
    assert error["attempts"] == 3
    assert mapper.runtime.writer.stats.retries >= 2
    await mqtt.write_result("42")


async def test_a_later_good_write_clears_the_error_over_rest_sse_mqtt_and_the_cli() -> None:
    """A refused value, then one the device takes: the error clears everywhere."""
    server = plc()
    await server.start()
    try:
        with short_home() as home, running_mosquitto(home) as broker:
            docs = manifests(MODEL, boiler(server.port, desired="500"))  # refused at start
            async with (
                running_app(home, docs, mqtt_url=broker.mqtt_url) as app,
                aiohttp.ClientSession(base_url=app.rest_url) as http,
                results(broker.port) as mqtt,
                running_mapper(modbus_mapper(home, app.config.socket_path), ModbusDriver(0.3)),
            ):
                error = await wait_error(http, "500", "the manifest's refused value")
                assert error is not None
                assert error["attempts"] == 1
                async with events(http) as sse:
                    await set_desired(http, "42")
                    assert await wait_error(http, None, "the error to clear") is None
                    event = await sse.write_event(None)
                assert event["value"] == "42"
                assert event["last_write_error"] is None
                result = await mqtt.write_result(None)
                assert result["twin"]["setpoint"]["expected"]["value"] == "42"
                assert await server.holding(1, SETPOINT, 1) == [42]
                async with http.get("/api/v1/namespaces/default/devices/boiler") as resp:
                    status = (await resp.json())["status"]
                (entry,) = [t for t in status["twins"] if t["propertyName"] == "setpoint"]
                assert "lastWriteError" not in entry
                table = await cli(app.rest_url, "twin", "get", "boiler")
                (row,) = [line for line in table.splitlines() if line.startswith("setpoint")]
                assert row.split()[-1] == "<none>"
                described = await cli(app.rest_url, "describe", "device", "boiler")
                (line,) = [x for x in described.splitlines() if x.startswith("Write Errors:")]
                assert line.split() == ["Write", "Errors:", "<none>"]
    finally:
        await server.stop()


# -- a plain DMI peer --------------------------------------------------------------------------


class DmiOnlyManager(api_pb2_grpc.DeviceManagerServiceServicer):
    """A plain DMI v1beta1 device manager (like KubeEdge EdgeCore): no TwinStream."""

    def __init__(self, docs: str) -> None:
        loaded = load_strict(docs)
        (model,) = loaded.models
        self.register = api_pb2.MapperRegisterResponse()
        for device in loaded.devices:
            self.register.modelList.append(model_to_proto(model))
            desired = {p.name: p.desired.value for p in device.spec.properties if p.desired}
            self.register.deviceList.append(device_to_proto(device, model, desired))

    async def MapperRegister(  # noqa: N802 - the generated servicer's name
        self, request: api_pb2.MapperRegisterRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> api_pb2.MapperRegisterResponse:
        """Hands out the boiler."""
        return self.register

    async def ReportDeviceStatus(  # noqa: N802
        self,
        request: api_pb2.ReportDeviceStatusRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> api_pb2.ReportDeviceStatusResponse:
        """Takes the report."""
        return api_pb2.ReportDeviceStatusResponse()

    async def ReportDeviceStates(  # noqa: N802
        self,
        request: api_pb2.ReportDeviceStatesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> api_pb2.ReportDeviceStatesResponse:
        """Takes the state."""
        return api_pb2.ReportDeviceStatesResponse()


async def test_toward_a_plain_dmi_peer_a_failed_write_is_only_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No TwinStream (KubeEdge EdgeCore): nothing is sent, the failure is logged as before."""
    server = plc()
    await server.start()
    try:
        manager = DmiOnlyManager(manifests(MODEL, boiler(server.port, desired="500")))
        with short_home() as home:
            sock = home / "dmi.sock"
            grpc_server = grpc.aio.server()
            api_pb2_grpc.add_DeviceManagerServiceServicer_to_server(manager, grpc_server)
            grpc_server.add_insecure_port(f"unix:{sock}")
            await grpc_server.start()
            try:
                caplog.set_level(logging.WARNING, logger="twinplane.mapper.desired_writes")
                async with running_mapper(modbus_mapper(home, sock), ModbusDriver(0.3)) as mapper:
                    assert mapper.reporter is not None
                    assert mapper.reporter.fast_path is not None
                    assert mapper.reporter.fast_path.state is FastPathState.ABSENT
                    assert mapper.outcomes is not None
                    outcomes = mapper.outcomes
                    await until(lambda: outcomes.stats.unsent == 1, "the outcome, not sent")
                    assert outcomes.stats.sent == 0
                    assert outcomes.stats.errors == 0
                    assert mapper.runtime.writer.stats.failed == 1
                    metrics = mapper.metrics()
                    assert "twinplane_mapper_desired_write_failures_total 1\n" in metrics
                    assert "twinplane_mapper_write_outcomes_reported_total 0\n" in metrics
            finally:
                await grpc_server.stop(grace=None)
        (line,) = [
            r.getMessage() for r in caplog.records if "writing setpoint=500" in r.getMessage()
        ]
        assert "failed after 1 attempt: ModbusExceptionError" in line
    finally:
        await server.stop()
