"""What ``twinplane edge`` acknowledged survives ``kill -9`` and a restart on the same home.

Each test runs the real command (``twinplane edge --home <tmp> --rest-addr 127.0.0.1:<port>``) as
a subprocess, waits for ``/healthz``, drives it over REST and over the DMI Unix socket as a mapper
does, kills it with SIGKILL, and starts it again on the same home: the killed process leaves its
socket file behind, and the new one must replace it.

Reported values are flushed to SQLite every 0.1 s. Rather than sleeping, the tests read the
database read-only while the process runs (WAL mode lets a reader in beside the writer) until the
reported values are on disk, then kill.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sqlite3
import stat
import sys
import sysconfig
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp
import grpc
import pytest

from twinplane.dmi.v1beta1 import api_pb2, api_pb2_grpc

WAIT = 30.0
"""Seconds a process start (or any other wait) may take before the test fails."""

MANIFESTS = """\
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: thermo-model, namespace: default}
spec:
  protocol: modbus
  properties:
  - {name: temperature, type: FLOAT, accessMode: ReadOnly, unit: Celsius}
  - {name: setpoint, type: INT, accessMode: ReadWrite}
  - {name: label, type: STRING, accessMode: ReadOnly}
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: thermo-1, namespace: default}
spec:
  deviceModelRef: {name: thermo-model}
  protocol: {protocolName: modbus, configData: {ip: 127.0.0.1, port: 5020}}
  properties:
  - name: temperature
    visitors: {protocolName: modbus, configData: {register: InputRegister, offset: 0}}
  - name: setpoint
    desired: {value: "21"}
    visitors: {protocolName: modbus, configData: {register: HoldingRegister, offset: 1}}
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: thermo-2, namespace: default}
spec:
  deviceModelRef: {name: thermo-model}
  protocol: {protocolName: modbus}
"""

LATE_DEVICE = """\
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: thermo-3, namespace: default}
spec:
  deviceModelRef: {name: thermo-model}
  protocol: {protocolName: modbus}
"""

DEVICES = "/api/v1/namespaces/default/devices"
MODELS = "/api/v1/namespaces/default/devicemodels"


def twin_path(device: str) -> str:
    """The REST path of a device's twin."""
    return f"{DEVICES}/{device}/twin"


def edge_command() -> list[str]:
    """The installed ``twinplane`` command (the module when the script is not installed)."""
    script = Path(sysconfig.get_path("scripts")) / "twinplane"
    return [str(script)] if script.exists() else [sys.executable, "-m", "twinplane.cli"]


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def open_log(path: Path) -> IO[bytes]:
    """The process log, appended to across restarts."""
    return path.open("ab")


def stored_twins(db: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Every twin row on disk, read through a read-only connection beside the running writer."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute("SELECT device_id, property, body FROM twins").fetchall()
    finally:
        conn.close()
    return {(device, prop): json.loads(body) for device, prop, body in rows}


@dataclass
class EdgeProcess:
    """``twinplane edge`` as a subprocess on a home folder; restartable."""

    home: Path
    proc: asyncio.subprocess.Process | None = None
    port: int = 0

    @property
    def url(self) -> str:
        """The REST API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def socket(self) -> Path:
        """The DMI socket (the default place under the home)."""
        return self.home / "run" / "dmi.sock"

    @property
    def db(self) -> Path:
        """The SQLite database."""
        return self.home / "state" / "edge.db"

    @property
    def log(self) -> Path:
        """The processes' output."""
        return self.home / "edge.log"

    async def start(self) -> None:
        """Starts the command on a free port and waits until ``/healthz`` answers 200."""
        self.port = free_port()
        args = ["edge", "--home", str(self.home), "--rest-addr", f"127.0.0.1:{self.port}"]
        log = open_log(self.log)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *edge_command(),
                *args,
                stdout=log,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            log.close()
        try:
            async with asyncio.timeout(WAIT), aiohttp.ClientSession() as http:
                while not await self._healthy(http):  # noqa: ASYNC110 - another process
                    await asyncio.sleep(0.05)
        except TimeoutError:
            pytest.fail(f"twinplane edge did not become healthy:\n{self.output()}")

    async def _healthy(self, http: aiohttp.ClientSession) -> bool:
        assert self.proc is not None
        if self.proc.returncode is not None:
            pytest.fail(f"twinplane edge exited with {self.proc.returncode}:\n{self.output()}")
        try:
            async with http.get(f"{self.url}/healthz") as resp:
                return resp.status == 200
        except aiohttp.ClientConnectionError:
            return False

    def output(self) -> str:
        """What the processes printed so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def kill9(self) -> None:
        """SIGKILL: no shutdown code runs, nothing is flushed or removed."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        assert await self.proc.wait() == -signal.SIGKILL
        self.proc = None

    async def stop(self) -> None:
        """Ends a process still running (test cleanup)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self.proc = None


@pytest.fixture
async def edge() -> AsyncIterator[EdgeProcess]:
    """A home folder (short: the socket path must fit 107 bytes); the process is not started."""
    home = Path(tempfile.mkdtemp(prefix="tp-dur-"))
    process = EdgeProcess(home)
    try:
        yield process
    finally:
        await process.stop()
        shutil.rmtree(home, ignore_errors=True)


async def call(
    edge: EdgeProcess,
    method: str,
    path: str,
    **kwargs: Any,  # noqa: ANN401
) -> Any:  # noqa: ANN401
    """A REST request that must answer 200; the decoded JSON."""
    async with (
        aiohttp.ClientSession(base_url=edge.url) as http,
        http.request(method, path, **kwargs) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def apply(edge: EdgeProcess, manifests: str) -> Any:  # noqa: ANN401
    """``POST /api/v1/apply``."""
    headers = {"Content-Type": "application/yaml"}
    return await call(edge, "POST", "/api/v1/apply", data=manifests, headers=headers)


async def report(edge: EdgeProcess, device: str, **values: str) -> None:
    """``ReportDeviceStatus`` over the DMI socket with one twin per value."""
    twins = [
        api_pb2.Twin(
            propertyName=prop,
            reported=api_pb2.TwinProperty(value=value, metadata={"timestamp": "", "type": ""}),
            observedDesired=api_pb2.TwinProperty(),
        )
        for prop, value in values.items()
    ]
    request = api_pb2.ReportDeviceStatusRequest(
        deviceName=device,
        deviceNamespace="default",
        reportedDevice=api_pb2.DeviceStatus(twins=twins),
    )
    async with grpc.aio.insecure_channel(f"unix:{edge.socket}") as channel:
        stub = api_pb2_grpc.DeviceManagerServiceStub(channel)
        await stub.ReportDeviceStatus(request, timeout=5)


async def report_state(edge: EdgeProcess, device: str, state: str) -> None:
    """``ReportDeviceStates`` over the DMI socket."""
    request = api_pb2.ReportDeviceStatesRequest(
        deviceName=device, deviceNamespace="default", state=state
    )
    async with grpc.aio.insecure_channel(f"unix:{edge.socket}") as channel:
        stub = api_pb2_grpc.DeviceManagerServiceStub(channel)
        await stub.ReportDeviceStates(request, timeout=5)


async def wait_until_stored(edge: EdgeProcess, expected: dict[tuple[str, str], str]) -> None:
    """Polls the database until every ``(device id, property)`` has its reported value."""

    def stored() -> bool:
        rows = stored_twins(edge.db)
        for key, value in expected.items():
            reported = rows.get(key, {}).get("reported")
            if reported is None or reported["value"] != value:
                return False
        return True

    try:
        async with asyncio.timeout(WAIT):
            while not await asyncio.to_thread(stored):  # noqa: ASYNC110 - another process
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"reported values never reached {edge.db}: {stored_twins(edge.db)}")


async def test_kill_9_keeps_registry_desired_and_reported_values(edge: EdgeProcess) -> None:
    """Devices, models, an acknowledged desired value and flushed reports survive kill -9."""
    await edge.start()
    result = await apply(edge, MANIFESTS)
    assert [item["outcome"] for item in result["items"]] == ["created"] * 3
    answer = await call(edge, "PATCH", twin_path("thermo-1"), json={"desired": {"setpoint": "25"}})
    assert answer["delta"] == {"setpoint": "25"}
    assert answer["twins"]["setpoint"]["desired"]["value"] == "25"
    assert answer["twins"]["setpoint"]["desired_version"] == {"cloud": 0, "edge": 2}
    await report(edge, "thermo-1", temperature="22.5", label="hall")
    await report(edge, "thermo-2", temperature="19.25")
    await report_state(edge, "thermo-1", "online")
    twin = await call(edge, "GET", twin_path("thermo-1"))
    assert twin["twins"]["temperature"]["reported"]["value"] == "22.5"
    await wait_until_stored(
        edge,
        {
            ("default/thermo-1", "temperature"): "22.5",
            ("default/thermo-1", "label"): "hall",
            ("default/thermo-2", "temperature"): "19.25",
        },
    )
    before = {
        "devices": await call(edge, "GET", DEVICES),
        "models": await call(edge, "GET", MODELS),
        "thermo-1": await call(edge, "GET", twin_path("thermo-1")),
        "thermo-2": await call(edge, "GET", twin_path("thermo-2")),
    }

    await edge.kill9()
    await edge.start()

    after = {
        "devices": await call(edge, "GET", DEVICES),
        "models": await call(edge, "GET", MODELS),
        "thermo-1": await call(edge, "GET", twin_path("thermo-1")),
        "thermo-2": await call(edge, "GET", twin_path("thermo-2")),
    }
    assert after == before
    twins = after["thermo-1"]["twins"]
    assert twins["setpoint"]["desired"]["value"] == "25"
    assert twins["setpoint"]["desired_version"] == {"cloud": 0, "edge": 2}
    assert twins["temperature"]["reported"]["value"] == "22.5"
    assert twins["temperature"]["reported_version"] == {"cloud": 0, "edge": 1}
    assert after["thermo-2"]["twins"]["temperature"]["reported"]["value"] == "19.25"
    assert [d["metadata"]["name"] for d in after["devices"]["items"]] == ["thermo-1", "thermo-2"]
    (device,) = [d for d in after["devices"]["items"] if d["metadata"]["name"] == "thermo-1"]
    assert device["status"]["state"] == "online"
    assert [m["metadata"]["name"] for m in after["models"]["items"]] == ["thermo-model"]


async def test_writes_acknowledged_just_before_kill_9_survive_a_stale_socket(
    edge: EdgeProcess,
) -> None:
    """An apply and a desired value answered right before kill -9 stay; the socket is replaced."""
    await edge.start()
    await apply(edge, MANIFESTS)
    await apply(edge, LATE_DEVICE)
    answer = await call(edge, "PATCH", twin_path("thermo-2"), json={"desired": {"setpoint": "7"}})
    acknowledged = answer["twins"]["setpoint"]

    await edge.kill9()
    assert stat.S_ISSOCK(edge.socket.lstat().st_mode), "the killed process left no socket file"
    await edge.start()

    health = await call(edge, "GET", "/healthz")
    assert health["checks"]["dmi"] == {"status": "ok", "socket": str(edge.socket)}
    device = await call(edge, "GET", f"{DEVICES}/thermo-3")
    assert device["metadata"]["name"] == "thermo-3"
    twin = await call(edge, "GET", twin_path("thermo-2"))
    assert twin["twins"]["setpoint"] == acknowledged
    # Mappers reach the new process through the replaced socket.
    await report(edge, "thermo-3", temperature="30.5")
    twin = await call(edge, "GET", twin_path("thermo-3"))
    assert twin["twins"]["temperature"]["reported"]["value"] == "30.5"
