"""``twinplane up``: the embedded default, run as the user runs it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from edge_helpers import free_port

DEVICES = 5
WAIT_S = 15.0


def _up(home: Path, port: int) -> subprocess.Popen[str]:
    """Starts ``twinplane up`` with a few devices on a free REST port."""
    cmd = [sys.executable, "-m", "twinplane.cli", "up", "--devices", str(DEVICES)]
    cmd += ["--home", str(home), "--rest-addr", f"127.0.0.1:{port}", "--mapper-port", "0"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: S603


def _devices(port: int) -> list[dict[str, Any]]:
    """The device list of the REST API (empty while it is not up)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/devices", timeout=2) as r:
            items: list[dict[str, Any]] = json.load(r)["items"]
    except OSError:
        return []
    return items


def _reported(device: dict[str, Any]) -> bool:
    """Whether every twin of the device has a reported value."""
    twins = device.get("status", {}).get("twins", [])
    return bool(twins) and all("reported" in t for t in twins)


def _wait_for_fleet(proc: subprocess.Popen[str], port: int) -> list[dict[str, Any]]:
    """Waits until the REST API lists every device with reported twins."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        devices = _devices(port)
        if len(devices) == DEVICES and all(_reported(d) for d in devices):
            return devices
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"no fleet after {WAIT_S}s: {proc.communicate()}")


def _interrupt(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Sends SIGINT and waits for the process to exit (bounded)."""
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, (out, err)
    return out, err


def test_up_runs_the_fleet_and_keeps_it_across_restarts(tmp_path: Path) -> None:
    """Devices come up with values, SIGINT exits 0, a restart on the same home keeps them."""
    port = free_port()
    proc = _up(tmp_path, port)
    try:
        names = sorted(d["metadata"]["name"] for d in _wait_for_fleet(proc, port))
    finally:
        out, _ = _interrupt(proc)
    assert names == sorted(f"thermostat-{i + 1}" for i in range(DEVICES))
    assert "device manager" in out
    assert "stopped cleanly" in out
    assert (tmp_path / "state" / "edge.db").is_file()

    proc = _up(tmp_path, port)
    try:
        again = _wait_for_fleet(proc, port)
    finally:
        out, _ = _interrupt(proc)
    assert sorted(d["metadata"]["name"] for d in again) == names
    assert "created" not in out  # the devices were already there
