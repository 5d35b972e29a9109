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
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dmi_helpers import MAPPER_METADATA, report_state
from dmi_helpers import report as dmi_report
from edge_helpers import EdgeProcess, device_yaml, edge_process, thermo_model
from twinplane.dmi.v1beta1 import api_pb2
from twinplane.rest.guard import CLIENT_HEADER

WAIT = 30.0
"""Seconds any wait may take before the test fails."""

THERMO_1 = """\
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
"""

MANIFESTS = "---\n".join(
    [
        thermo_model("temperature", "setpoint", "label"),
        THERMO_1,
        device_yaml("thermo-2", "thermo-model"),
    ]
)

LATE_DEVICE = device_yaml("thermo-3", "thermo-model")

DEVICES = "/api/v1/namespaces/default/devices"
MODELS = "/api/v1/namespaces/default/devicemodels"


def twin_path(device: str) -> str:
    """The REST path of a device's twin."""
    return f"{DEVICES}/{device}/twin"


def stored_twins(db: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Every twin row on disk, read through a read-only connection beside the running writer."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute("SELECT device_id, property, body FROM twins").fetchall()
    finally:
        conn.close()
    return {(device, prop): json.loads(body) for device, prop, body in rows}


@pytest.fixture
def edge() -> Iterator[EdgeProcess]:
    """``twinplane edge`` on a fresh home folder; the process is not started."""
    with edge_process() as process:
        yield process


async def start(edge: EdgeProcess) -> None:
    """Starts the process (in a thread: it waits for ``/healthz``)."""
    await asyncio.to_thread(edge.start)


async def call(
    edge: EdgeProcess,
    method: str,
    path: str,
    **kwargs: Any,  # noqa: ANN401
) -> Any:  # noqa: ANN401
    """A REST request that must answer 200; the decoded JSON."""
    async with (
        aiohttp.ClientSession(base_url=edge.url, headers={CLIENT_HEADER: "tests"}) as http,
        http.request(method, path, **kwargs) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def apply(edge: EdgeProcess, manifests: str) -> Any:  # noqa: ANN401
    """``POST /api/v1/apply``."""
    headers = {"Content-Type": "application/yaml"}
    return await call(edge, "POST", "/api/v1/apply", data=manifests, headers=headers)


async def report(edge: EdgeProcess, device: str, **values: str) -> None:
    """``ReportDeviceStatus`` over the DMI socket with one twin per value, as a mapper sends it."""
    observed = api_pb2.TwinProperty()
    await dmi_report(edge.target, device, values, metadata=MAPPER_METADATA, observed=observed)


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
    await start(edge)
    result = await apply(edge, MANIFESTS)
    assert [item["outcome"] for item in result["items"]] == ["created"] * 3
    answer = await call(edge, "PATCH", twin_path("thermo-1"), json={"desired": {"setpoint": "25"}})
    assert answer["delta"] == {"setpoint": "25"}
    assert answer["twins"]["setpoint"]["desired"]["value"] == "25"
    assert answer["twins"]["setpoint"]["desired_version"] == {"cloud": 0, "edge": 2}
    await report(edge, "thermo-1", temperature="22.5", label="hall")
    await report(edge, "thermo-2", temperature="19.25")
    await report_state(edge.target, "thermo-1", "online")
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

    edge.kill9()
    await start(edge)

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
    await start(edge)
    await apply(edge, MANIFESTS)
    await apply(edge, LATE_DEVICE)
    answer = await call(edge, "PATCH", twin_path("thermo-2"), json={"desired": {"setpoint": "7"}})
    acknowledged = answer["twins"]["setpoint"]

    edge.kill9()
    assert stat.S_ISSOCK(edge.socket.lstat().st_mode), "the killed process left no socket file"
    await start(edge)

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
