"""``twinplane call`` and ``twinplane get calls`` against ``twinplane edge`` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import grpc
import pytest

from dmi_helpers import report_request
from edge_helpers import EdgeProcess, edge_process, thermo_model
from twinplane.cli.calls import parse_arguments
from twinplane.dmi.v1beta1 import api_pb2, api_pb2_grpc

NS = "calls"
METHODS = json.dumps({"setpoint": {"parameters": {"setpoint": {"minimum": 5, "maximum": 30}}}})
DEVICE = f"""\
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata:
  name: thermo-1
  namespace: {NS}
  annotations: {{twinplane.io/methods: {json.dumps(METHODS)}}}
spec:
  deviceModelRef: {{name: thermo-model}}
  nodeName: edge-a
  protocol: {{protocolName: modbus, configData: {{ip: 127.0.0.1, port: 5020}}}}
  properties:
  - name: setpoint
    visitors: {{protocolName: modbus, configData: {{register: HoldingRegister, offset: 1}}}}
  methods:
  - {{name: setpoint, propertyNames: [setpoint]}}
"""


def cli(
    server: EdgeProcess, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs ``twinplane ARGS`` against ``server`` (``$TWINPLANE_SERVER``)."""
    env = {**os.environ, "TWINPLANE_SERVER": server.url}
    return subprocess.run(  # noqa: S603 - our own command
        [sys.executable, "-m", "twinplane.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def ok(server: EdgeProcess, *args: str, stdin: str | None = None) -> str:
    """Runs a command that must succeed; its stdout."""
    done = cli(server, *args, stdin=stdin)
    assert done.returncode == 0, done.stderr
    return done.stdout


def failed(server: EdgeProcess, *args: str) -> list[str]:
    """Runs a command that must fail with status 1; its stderr lines (never a traceback)."""
    done = cli(server, *args)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done.stderr.splitlines()


def report(server: EdgeProcess, **values: str) -> None:
    """ReportDeviceStatus of thermo-1 over the DMI socket."""
    request = report_request("thermo-1", values, namespace=NS)
    with grpc.insecure_channel(server.target) as channel:
        api_pb2_grpc.DeviceManagerServiceStub(channel).ReportDeviceStatus(request, timeout=5)


def report_state(server: EdgeProcess, state: str) -> None:
    """ReportDeviceStates of thermo-1 over the DMI socket."""
    request = api_pb2.ReportDeviceStatesRequest(
        deviceName="thermo-1", deviceNamespace=NS, state=state
    )
    with grpc.insecure_channel(server.target) as channel:
        api_pb2_grpc.DeviceManagerServiceStub(channel).ReportDeviceStates(request, timeout=5)


@pytest.fixture(scope="module")
def server() -> Iterator[EdgeProcess]:
    """``twinplane edge`` in a subprocess with thermo-1 (a setpoint method) applied."""
    with edge_process("--log-level", "warning") as process:
        process.start()
        ok(
            process,
            "apply",
            "-f",
            "-",
            stdin="---\n".join([thermo_model("setpoint", namespace=NS), DEVICE]),
        )
        yield process
        assert process.terminate() == 0, process.output()


def calls_json(server: EdgeProcess) -> list[dict[str, object]]:
    """``twinplane get calls thermo-1 -o json``'s items."""
    items: list[dict[str, object]] = json.loads(
        ok(server, "get", "calls", "thermo-1", "-n", NS, "-o", "json")
    )["items"]
    return items


def test_arguments_are_json_scalars_when_they_parse() -> None:
    """KEY=VALUE values are JSON scalars when they parse, text otherwise."""
    assert parse_arguments(["a=21", "b=2.5", "c=true", "d=eco", 'e="21"', "f=[1]", "g="]) == {
        "a": 21,
        "b": 2.5,
        "c": True,
        "d": "eco",
        "e": "21",
        "f": "[1]",
        "g": "",
    }


def test_call_then_get_calls_shows_its_outcome(server: EdgeProcess) -> None:
    """A call is accepted, runs, and get calls lists it Succeeded once the device reports."""
    report_state(server, "online")
    out = ok(server, "call", "thermo-1", "setpoint", "setpoint=22", "-n", NS, "--timeout", "30s")
    assert " setpoint on calls/thermo-1: " in out
    call_id = out.split()[1]
    for _ in range(200):
        if calls_json(server)[0]["state"] == "Sent":
            break
        time.sleep(0.05)
    report(server, setpoint="22")
    for _ in range(200):
        newest = calls_json(server)[0]
        if newest["state"] == "Succeeded":
            break
        time.sleep(0.05)
    assert newest["id"] == call_id
    assert newest["result"] == {"reported": {"setpoint": "22"}}
    table = ok(server, "get", "calls", "thermo-1", "-n", NS)
    assert table.splitlines()[0].split() == [
        "ID",
        "METHOD",
        "STATE",
        "ARGS",
        "RESULT",
        "ERROR",
        "SOURCE",
        "CREATED",
    ]
    assert call_id in table
    assert "Succeeded" in table


def test_refused_argument_and_offline_device_exit_1(server: EdgeProcess) -> None:
    """A refused argument exits 1 naming it; a call to an offline device without ttl exits 1."""
    lines = failed(server, "call", "thermo-1", "setpoint", "setpoint=99", "-n", NS)
    assert any("setpoint" in line and "5..30" in line for line in lines), lines
    report_state(server, "offline")
    done = cli(server, "call", "thermo-1", "setpoint", "setpoint=20", "-n", NS, "--wait", "5s")
    assert done.returncode == 1, done.stderr
    assert "Failed" in done.stdout
    assert "Offline" in done.stdout
    report_state(server, "online")


def test_bad_duration_is_a_clear_error(server: EdgeProcess) -> None:
    """--wait that is not a duration is one clear error line."""
    lines = failed(
        server, "call", "thermo-1", "setpoint", "setpoint=20", "-n", NS, "--wait", "soon"
    )
    assert any("--wait" in line for line in lines), lines
