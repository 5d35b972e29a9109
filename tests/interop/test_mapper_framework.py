"""KubeEdge's mapper-framework as the mapper of twinplane's device manager.

``mapper-framework-modbus`` (interop/go) registers, reports and serves DeviceMapperService and
the REST API with mapper-framework's own packages (KubeEdge's Go code, v1.23.0); only its device
loop and Modbus driver are written here. It runs as a process against a real device manager
(in this process), over real gRPC on Unix sockets, and reads the simulator over Modbus TCP.

Every DeviceMapperService RPC the device manager uses is driven: RegisterDevice (at apply),
UpdateDevice (a desired value, which reaches the register), RemoveDevice, CreateDeviceModel,
UpdateDeviceModel, RemoveDeviceModel; and the registration answer's devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge_helpers import free_port, running_app, short_home
from interop_tools import interop_binary
from twinplane.edge.app import EdgeApp
from twinplane.edge.core import EdgeCore
from twinplane.edge.mappers import MapperLink
from twinplane.fleet import MODEL_NAME, device_manifests, registers_for
from twinplane.rest.guard import CLIENT_HEADER
from twinplane.sim.modbus import ModbusSimulator

pytestmark = pytest.mark.slow

NAME = "mapper-framework-modbus"
WAIT_S = 20.0
SETPOINT = ("HoldingRegister", 10)  # the fleet's int16 setpoint register


def fleet(sim: ModbusSimulator, count: int, first: int = 0) -> list[dict[str, Any]]:
    """The fleet's model and ``count`` thermostats (from device ``first``).

    Their properties are read every 200 ms and their states reported every 500 ms.
    """
    addresses = [sim.address(i) for i in range(first, first + count)]
    items: list[dict[str, Any]] = json.loads(
        device_manifests(addresses, properties=4, host=sim.host, cycle_ms=200)
    )["items"]
    for index, item in enumerate(items[1:]):
        item["metadata"]["name"] = f"thermostat-{first + index + 1}"
        item["spec"]["stateReport"] = {"reportToCloud": True, "reportCycle": 500}
    return items


def as_list(items: list[dict[str, Any]]) -> str:
    """The objects as a ``v1 List`` manifest."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


@dataclass
class GoMapper:
    """The mapper-framework mapper as a process, and where it listens."""

    proc: subprocess.Popen[bytes]
    socket: Path
    rest: str
    log: Path

    def output(self) -> str:
        """What the mapper logged."""
        return self.log.read_text(errors="replace")


@contextlib.asynccontextmanager
async def go_mapper(home: Path, edge_socket: Path) -> AsyncIterator[GoMapper]:
    """``mapper-framework-modbus`` with a config file as mapper-framework reads it."""
    socket = home / "mf-modbus.sock"
    port = free_port()
    config = home / "config.yaml"
    config.write_text(
        f"grpc_server:\n  socket_path: {socket}\n"
        f"common:\n  name: {NAME}\n  version: v1.23.0\n  api_version: v1.0.0\n"
        f"  protocol: modbus\n  address: 127.0.0.1\n  edgecore_sock: {edge_socket}\n"
        f'  http_port: "{port}"\n'
    )
    log = home / "mapper.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603, ASYNC220 - our build of KubeEdge's code; instant
            [str(interop_binary(NAME)), "--config-file", str(config), "--v", "2"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    mapper = GoMapper(proc, socket, f"http://127.0.0.1:{port}", log)
    try:
        yield mapper
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def until(check: Callable[[], Any], what: str, mapper: GoMapper) -> None:
    """Waits for ``check()`` to be true (awaiting it if it is a coroutine)."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert mapper.proc.poll() is None, f"the mapper exited:\n{mapper.output()}"
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {WAIT_S:g} s\n{mapper.output()[-3000:]}")
        await asyncio.sleep(0.1)


def core_of(app: EdgeApp) -> EdgeCore:
    """The device manager's registry and twins."""
    assert app.core is not None
    return app.core


def link_of(app: EdgeApp) -> MapperLink | None:
    """The device manager's link to the mapper, once it registered."""
    assert app.mappers is not None
    return app.mappers.links.get(NAME)


def reported(core: EdgeCore, device: str) -> dict[str, str]:
    """The device's reported values by property."""
    try:
        twins = core.twins(f"default/{device}")
    except LookupError:
        return {}
    return {name: t["reported"]["value"] for name, t in twins.items() if t["reported"]}


async def rest_get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    """``GET url``: the status and the decoded JSON (the text when it is not JSON)."""
    async with http.get(url) as resp:
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text


@dataclass
class Stack:
    """The simulator, the device manager, the Go mapper and an HTTP session."""

    sim: ModbusSimulator
    app: EdgeApp
    mapper: GoMapper
    http: aiohttp.ClientSession
    model: dict[str, Any]

    @property
    def core(self) -> EdgeCore:
        """The device manager's registry and twins."""
        return core_of(self.app)

    def setpoint(self, device: int) -> int:
        """The setpoint register of simulated device ``device`` now."""
        port, unit = self.sim.address(device)
        return int.from_bytes(self.sim.peek(unit, *SETPOINT, 1, port=port), "big", signed=True)

    async def until(self, check: Callable[[], Any], what: str) -> None:
        """Waits for ``check``; the mapper's log on failure."""
        await until(check, what, self.mapper)


async def test_a_mapper_framework_mapper_serves_twinplane_devices_end_to_end() -> None:
    """Registration with data, reports as twins, states, the DMI calls down, and its REST API."""
    async with ModbusSimulator(devices=3, port=0, registers=registers_for(4), rate=0) as sim:
        for unit in range(3):
            port, slave = sim.address(unit)
            sim.set_registers(slave, 0, [215 + unit], port=port)  # temperature 21.5, 21.6, ...
        with short_home() as home:
            items = fleet(sim, 2)
            async with (
                running_app(home, as_list(items)) as app,
                go_mapper(home, app.config.socket_path) as mapper,
                aiohttp.ClientSession() as http,
            ):
                stack = Stack(sim, app, mapper, http, items[0])
                await _registration_and_reports(stack)
                await _devices_and_desired_values_down(stack)
                await _its_rest_api(stack)
                await _a_twinplane_call(stack)
                await _model_update_and_removals(stack)
                assert mapper.proc.poll() is None, mapper.output()


def _state(core: EdgeCore, name: str) -> str | None:
    st = core.states.get(f"default/{name}")
    return st.state if st is not None else None


async def _registration_and_reports(s: Stack) -> None:
    """MapperRegister with data: the two devices come in its answer and report; states too."""
    await s.until(lambda: link_of(s.app) is not None, "the mapper registers")
    for i, name in enumerate(("thermostat-1", "thermostat-2")):
        await s.until(
            lambda n=name: len(reported(s.core, n)) == 4,  # type: ignore[misc]
            f"{name}'s four twins reported",
        )
        values = reported(s.core, name)
        assert float(values["temperature"]) == pytest.approx((215 + i) / 10)
        assert values["running"] in ("true", "false")
        assert values["setpoint"] == "21"  # the desired value, written at start
    assert s.setpoint(0) == 21
    await s.until(lambda: _state(s.core, "thermostat-1") in ("ok", "online"), "its state")


async def _devices_and_desired_values_down(s: Stack) -> None:
    """RegisterDevice for a device applied later; UpdateDevice for a desired value."""
    await s.core.apply(as_list(fleet(s.sim, 1, first=2)[1:]))
    await s.until(lambda: len(reported(s.core, "thermostat-3")) == 4, "thermostat-3 reports")
    # A desired value restarts the device in the mapper, which writes it at start.
    await s.core.set_desired("default/thermostat-1", {"setpoint": "26"})
    await s.until(lambda: s.setpoint(0) == 26, "the desired setpoint in the register")
    await s.until(
        lambda: reported(s.core, "thermostat-1").get("setpoint") == "26",
        "the written setpoint read back",
    )


async def _its_rest_api(s: Stack) -> None:
    """mapper-framework's httpserver over this mapper's device panel."""
    rest = s.mapper.rest
    status, body = await rest_get(s.http, f"{rest}/api/v1/ping")
    assert status == 200, body
    assert body["statusCode"] == 200
    status, body = await rest_get(s.http, f"{rest}/api/v1/device/default/thermostat-2/temperature")
    assert status == 200, body
    assert float(body["Data"]["Value"]) == pytest.approx(21.6)
    url = f"{rest}/api/v1/devicemethod/default/thermostat-2"
    status, body = await rest_get(s.http, url)
    assert status == 200, body
    assert [m["Name"] for m in body["Data"]["Methods"]] == ["setpoint"]
    status, body = await rest_get(s.http, f"{url}/setpoint/setpoint/30")
    assert status == 200, body
    assert s.setpoint(1) == 30
    status, body = await rest_get(s.http, f"{rest}/api/v1/meta/model/default/thermostat-2")
    assert status == 200, body
    assert body["name"] == MODEL_NAME
    assert len(body["properties"]) == 4


async def _a_twinplane_call(s: Stack) -> None:
    """A twinplane method call to a mapper without the Methods service.

    It answers UNIMPLEMENTED, so the call goes as a desired value through UpdateDevice, as
    EdgeCore's would.
    """
    url = f"{s.app.rest_url}/api/v1/namespaces/default/devices/thermostat-2/methods/setpoint"
    async with s.http.post(
        f"{url}?wait=10s", json={"setpoint": 23}, headers={CLIENT_HEADER: "twinplane-tests"}
    ) as resp:
        call = await resp.json()
    assert resp.status == 200, call
    assert call["state"] == "Succeeded", call
    assert call["result"] == {"reported": {"setpoint": "23"}}
    assert s.setpoint(1) == 23


async def _model_update_and_removals(s: Stack) -> None:
    """UpdateDeviceModel, RemoveDevice, RemoveDeviceModel; no call failed."""
    link = link_of(s.app)
    assert link is not None
    sent = link.stats.sent
    model = json.loads(json.dumps(s.model))
    model["spec"]["properties"][0]["description"] = "room temperature"
    await s.core.apply(json.dumps(model))
    await s.until(lambda: link.stats.sent > sent, "the model update sent")
    url = f"{s.mapper.rest}/api/v1/meta/model/default/thermostat-2"
    status, body = await rest_get(s.http, url)
    assert status == 200, body
    assert body["properties"][0]["description"] == "room temperature", body

    await s.core.delete_device("default", "thermostat-3")
    url = f"{s.mapper.rest}/api/v1/device/default/thermostat-3/temperature"

    async def forgotten() -> bool:
        status, _ = await rest_get(s.http, url)
        return status == 500

    await s.until(forgotten, "thermostat-3 removed from the mapper")
    sent = link.stats.sent
    for name in ("thermostat-1", "thermostat-2"):
        await s.core.delete_device("default", name)
    await s.core.delete_model("default", MODEL_NAME)
    await s.until(lambda: link.stats.sent >= sent + 3, "the removals sent")
    assert link.stats.failed == 0, s.mapper.output()[-3000:]
    assert link.stats.sent >= 7
