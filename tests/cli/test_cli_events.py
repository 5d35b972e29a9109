"""``twinplane get events`` and describe's Events against ``twinplane edge`` in a subprocess."""

from __future__ import annotations

import itertools
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator

import grpc
import pytest
from test_cli import ok, thermo

from edge_helpers import EdgeProcess, edge_process
from twinplane.dmi.v1beta1 import api_pb2, api_pb2_grpc


def report_state(server: EdgeProcess, namespace: str, device: str, state: str) -> None:
    """ReportDeviceStates over the DMI socket."""
    request = api_pb2.ReportDeviceStatesRequest(
        deviceName=device, deviceNamespace=namespace, state=state
    )
    with grpc.insecure_channel(server.target) as channel:
        api_pb2_grpc.DeviceManagerServiceStub(channel).ReportDeviceStates(request, timeout=5)


@pytest.fixture(scope="module")
def server() -> Iterator[EdgeProcess]:
    """``twinplane edge`` in a subprocess; it must stop with status 0 on SIGTERM."""
    with edge_process("--log-level", "warning") as process:
        process.start()
        yield process
        assert process.terminate() == 0, process.output()


def wait_for_events(server: EdgeProcess, *args: str, count: int) -> list[dict[str, object]]:
    """``get events ARGS -o json`` until it lists ``count`` events (the log writes in batches)."""
    deadline = time.monotonic() + 20
    while True:
        items = json.loads(ok(server, "get", "events", *args, "-o", "json"))["items"]
        if len(items) >= count or time.monotonic() > deadline:
            return list(items)
        time.sleep(0.1)


def test_get_events_lists_a_devices_state_changes(server: EdgeProcess) -> None:
    """State changes are listed oldest first in kubectl's columns, filtered by device and type."""
    ok(server, "apply", "-f", "-", stdin=thermo("evs"))
    report_state(server, "evs", "thermo-1", "online")
    report_state(server, "evs", "thermo-1", "offline")
    items = wait_for_events(server, "thermo-1", "-n", "evs", "--type", "state", count=2)
    assert [i["reason"] for i in items] == ["DeviceOffline", "DeviceOnline"]
    lines = ok(server, "get", "events", "thermo-1", "-n", "evs").splitlines()
    assert lines[0].split()[:4] == ["LAST", "SEEN", "TYPE", "SEVERITY"]
    assert "DeviceOnline" in lines[1]
    assert "DeviceOffline" in lines[2]
    assert "device/thermo-1" in lines[2]
    text = ok(server, "describe", "device", "thermo-1", "-n", "evs")
    events = text[text.index("Events:") :]
    assert "DeviceOffline" in events
    assert "state" in events


def test_get_events_watch_prints_new_events(server: EdgeProcess) -> None:
    """--watch follows the stream: a state change made after it started is printed."""
    ok(server, "apply", "-f", "-", stdin=thermo("evw"))
    env = {**os.environ, "TWINPLANE_SERVER": server.url}
    with subprocess.Popen(
        [sys.executable, "-m", "twinplane.cli", "get", "events", "-n", "evw", "--watch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as watch:
        try:
            assert watch.stdout is not None
            states = itertools.cycle(("online", "offline"))
            deadline = time.monotonic() + 20
            # Until it has subscribed, changes go unseen: change the state until one is printed.
            while not select.select([watch.stdout], [], [], 0.2)[0]:
                assert time.monotonic() < deadline, "--watch printed nothing"
                report_state(server, "evw", "thermo-1", next(states))
            line = watch.stdout.readline()
            assert "thermo-1" in line
            assert "state" in line
        finally:
            watch.kill()


def test_get_events_bad_type_names_the_parameter(server: EdgeProcess) -> None:
    """An unknown --type is the server's 400, printed without a traceback."""
    env = {**os.environ, "TWINPLANE_SERVER": server.url}
    done = subprocess.run(
        [sys.executable, "-m", "twinplane.cli", "get", "events", "--type", "bogus"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "type" in done.stderr
    assert "Traceback" not in done.stderr
