"""``twinplane up``: the embedded default, run as the user runs it."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from edge_helpers import free_port
from mqtt_broker import running_mosquitto

DEVICES = 5
WAIT_S = 15.0


def _args(home: Path, port: int) -> list[str]:
    """``twinplane up``'s options: a few devices, a free REST port, the mapper's free too."""
    args = ["up", "--devices", str(DEVICES), "--home", str(home)]
    return [*args, "--rest-addr", f"127.0.0.1:{port}", "--mapper-port", "0"]


def _up(home: Path, port: int, *extra: str, umask: int | None = None) -> subprocess.Popen[str]:
    """Starts ``twinplane up`` with a few devices on a free REST port (``extra`` options)."""
    cmd = [sys.executable, "-m", "twinplane.cli", *_args(home, port), *extra]
    return subprocess.Popen(  # noqa: S603 - our own command
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        umask=-1 if umask is None else umask,
    )


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
    assert "100 unchanged" in out or f"{DEVICES} unchanged" in out  # and the simulator too


def _sim_port(home: Path, port: int) -> int:
    """The simulator port the stored devices name (read over REST)."""
    items = _devices(port)
    return int(items[0]["spec"]["protocol"]["configData"]["port"])


def _wait_for_moved_fleet(proc: subprocess.Popen[str], port: int, old: int) -> int:
    """Waits until the fleet reports from a simulator port other than ``old``; returns it.

    The REST API is up before ``twinplane up`` re-applies its devices, so for a moment it lists
    the stored devices (with the previous run's values) at their old port.
    """
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        devices = _wait_for_fleet(proc, port)
        ports = {int(d["spec"]["protocol"]["configData"]["port"]) for d in devices}
        if old not in ports:
            return min(ports)
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"the devices stayed on port {old}: {proc.communicate()}")


def test_a_restart_whose_simulator_port_is_taken_moves_the_devices_quietly(
    tmp_path: Path,
) -> None:
    """The stored devices' port is busy: the devices follow the simulator, with no warning.

    They are re-applied with the new port before the mapper sees them, so nothing polls or
    writes the old address.
    """
    port = free_port()
    proc = _up(tmp_path, port)
    try:
        _wait_for_fleet(proc, port)
        old = _sim_port(tmp_path, port)
    finally:
        _interrupt(proc)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", old))
        squatter.listen()
        proc = _up(tmp_path, port)
        try:
            new = _wait_for_moved_fleet(proc, port, old)
        finally:
            out, err = _interrupt(proc)
    assert new != old
    assert f"{DEVICES} configured" in out
    assert err == "", err  # no write, back-off or mapper warnings


def test_make_run_stops_on_ctrl_c_with_status_0_and_the_summary_in_place(
    tmp_path: Path,
) -> None:
    """``make run`` on a terminal: Ctrl-C is read as a key, so make and twinplane up exit 0.

    Log lines and progress appear above the live summary, which is redrawn in place.
    """
    port = free_port()
    up_args = " ".join(_args(tmp_path, port)[1:])
    root = Path(__file__).resolve().parent.parent
    pid, fd = pty.fork()
    if pid == 0:  # the child: make run, as a user types it
        os.chdir(root)
        make = ["make", "--no-print-directory", "-s", "run", f"UP_ARGS={up_args}"]
        os.execvp(make[0], make)  # noqa: S606 - the user's make, from PATH
    output = b""
    deadline = time.monotonic() + 4 * WAIT_S
    sent = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            output += data
        if not sent and output.count(b"devices online 5/5") >= 2:  # drawn, then redrawn
            os.write(fd, b"\x03")  # Ctrl-C
            sent = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    text = output.decode(errors="replace")
    assert sent, text
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "Interrupt" not in text  # make's own line when its recipe gets SIGINT
    assert "stopped cleanly" in text
    assert "\x1b[3F\x1b[J" in text  # the summary's three lines redrawn in place


def test_up_shows_no_mqtt_password_and_keeps_its_state_to_its_owner(tmp_path: Path) -> None:
    """--mqtt user:password@ reaches a real broker; output shows ***; files are 0600 (umask 0)."""
    port = free_port()
    home = tmp_path / "home"
    with running_mosquitto(tmp_path) as broker:
        url = broker.mqtt_url.replace("mqtt://", "mqtt://edge:s3cret@")
        proc = _up(home, port, "--mqtt", url, umask=0)
        try:
            _wait_for_fleet(proc, port)
            connected = _metric(port, "twinplane_mqtt_connected")
            listed = [*(home / "state").iterdir(), *(home / "run").iterdir()]
            paths = [home, home / "state", home / "run", *listed]
            modes = {p.relative_to(home).as_posix(): stat.S_IMODE(p.lstat().st_mode) for p in paths}
        finally:
            out, err = _interrupt(proc)
    assert connected == 1.0  # the credentials were taken as given
    assert "s3cret" not in out + err
    assert f"MQTT mqtt://edge:***@127.0.0.1:{broker.port}" in out
    assert modes.pop(".") == modes.pop("state") == modes.pop("run") == 0o700
    assert modes.pop("state/firmware") == 0o700  # the firmware images' folder
    assert modes == dict.fromkeys(modes, 0o600)  # every file and socket in state/ and run/
    assert {"state/edge.db", "run/dmi.sock", "run/modbus.sock"} <= set(modes)


def _metric(port: int, name: str) -> float:
    """A sample of the device manager's ``/metrics`` without labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")
