"""``twinplane up --cloud``: the fleet made in ``twinplane cloud``, run as the user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edge_helpers import free_port
from test_up import DEVICES, WAIT_S, _args, _interrupt, _wait_for_fleet

NODE = "gw-1"


def _twinplane(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "twinplane.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603


@contextmanager
def _cloud(home: Path, port: int) -> Iterator[str]:
    """``twinplane cloud`` (embedded registry) on ``port``; yields its hub URL."""
    cmd = [sys.executable, "-m", "twinplane.cli", "cloud", "--home", str(home)]
    cmd += ["--listen", f"127.0.0.1:{port}", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: S603
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the cloud did not start"
                time.sleep(0.1)
        yield f"ws://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.communicate(timeout=WAIT_S)


def _token(cloud_home: Path, tmp_path: Path, node: str = NODE) -> Path:
    made = _twinplane("cloud", "token", "create", node, "--home", str(cloud_home))
    assert made.returncode == 0, made.stderr
    path = tmp_path / f"{node}.token"
    path.write_text(made.stdout)
    return path


def _up(home: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "twinplane.cli", *_args(home, port), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: S603


def _get(url: str) -> Any:  # noqa: ANN401 - decoded JSON
    with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - http:// URLs of the test
        return json.load(r)


def _wait_for_online(proc: subprocess.Popen[str], rest: int) -> list[dict[str, Any]]:
    """Waits until every device of the fleet is online (its state follows its first values)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        devices = _wait_for_fleet(proc, rest)
        if all(d["status"].get("state") == "online" for d in devices):
            return devices
        assert time.monotonic() < deadline, devices
        time.sleep(0.2)


def _setpoint_reported(rest: int, value: str) -> bool:
    twins = _get(f"http://127.0.0.1:{rest}/api/v1/namespaces/default/devices/thermostat-1/twin")
    reported = twins["twins"]["setpoint"].get("reported") or {}
    return bool(reported.get("value") == value)


def test_the_fleet_is_made_in_the_cloud_and_a_cloud_call_reaches_its_device(
    tmp_path: Path,
) -> None:
    """``up --cloud``: the devices are the cloud's (node gw-1), delivered down the link.

    A call made with ``twinplane call --server CLOUD`` writes the simulated register; a restart
    with the cloud gone runs the stored fleet.
    """
    cloud_port, rest = free_port(), free_port()
    cloud_home, home = tmp_path / "cloud", tmp_path / "edge"
    token = _token(cloud_home, tmp_path)
    link = ["--node-name", NODE, "--token-file", str(token)]
    with _cloud(cloud_home, cloud_port) as hub:
        proc = _up(home, rest, "--cloud", hub, *link)
        try:
            devices = _wait_for_online(proc, rest)
            server = f"http://127.0.0.1:{cloud_port}"
            in_cloud = _get(f"{server}/apis/devices.kubeedge.io/v1beta1/devices")["items"]
            call = _twinplane(
                "call", "thermostat-1", "setpoint", "setpoint=24", "--server", server,
                "--wait", "10s",
            )  # fmt: skip
            deadline = time.monotonic() + WAIT_S
            while not _setpoint_reported(rest, "24"):  # the mapper's next poll reads it back
                assert time.monotonic() < deadline, (call, "the setpoint was not written")
                time.sleep(0.2)
        finally:
            out, _ = _interrupt(proc)
    assert f"applied in the cloud ({DEVICES} created)" in out, out
    assert f"delivered to {NODE}" in out
    assert {d["spec"]["nodeName"] for d in devices} == {NODE}
    assert {d["metadata"]["annotations"]["twinplane.io/delivered-by"] for d in devices} == {"cloud"}
    assert sorted(d["metadata"]["name"] for d in in_cloud) == sorted(
        f"thermostat-{i + 1}" for i in range(DEVICES)
    )
    assert call.returncode == 0, call.stderr
    assert "Succeeded" in call.stdout
    assert '"setpoint": "24"' in call.stdout

    proc = _up(home, rest, "--cloud", hub, *link)  # the cloud has stopped
    try:
        again = _wait_for_fleet(proc, rest)
    finally:
        out, _ = _interrupt(proc)
    assert len(again) == DEVICES
    assert "cannot reach the cloud" in out
    assert "connection refused" in out
    assert "stored (the cloud is not reachable)" in out


def test_a_first_run_needs_its_cloud_and_a_token_the_cloud_knows(tmp_path: Path) -> None:
    """No cloud on a first run, or a token of another node: a clear error, exit 1, no fleet."""
    cloud_port, rest = free_port(), free_port()
    cloud_home = tmp_path / "cloud"
    token = _token(cloud_home, tmp_path)
    hub = f"ws://127.0.0.1:{cloud_port}"

    link = ["--node-name", NODE, "--token-file", str(token)]
    proc = _up(tmp_path / "a", rest, "--cloud", hub, *link)
    out, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 1, (out, err)
    assert "cannot reach the cloud" in err
    assert "start `twinplane cloud` first, or leave out --cloud" in err

    with _cloud(cloud_home, cloud_port):
        other = ["--node-name", "gw-2", "--token-file", str(token)]  # gw-1's token
        proc = _up(tmp_path / "b", rest, "--cloud", hub, *other)
        out, err = proc.communicate(timeout=2 * WAIT_S)
    assert proc.returncode == 1, (out, err)
    assert "the cloud refused node gw-2's token (401)" in err
    assert "twinplane cloud token create gw-2" in err


def test_the_cloud_options_are_checked_before_anything_starts(tmp_path: Path) -> None:
    """A bad --cloud URL, no --token-file, an empty one: exit 2 naming the option."""
    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    base = ["up", "--home", str(tmp_path / "h")]
    cases = {
        ("--cloud", "http://127.0.0.1:1"): "--cloud: 'http://127.0.0.1:1' is not a ws:// or wss://",
        ("--cloud", "ws://127.0.0.1:1"): "--cloud needs --token-file",
        ("--cloud", "ws://127.0.0.1:1", "--token-file", str(empty)): f"--token-file: {empty} is",
        ("--cloud", "ws://127.0.0.1:1", "--token-file", str(tmp_path / "no")): "--token-file: [",
    }
    for extra, message in cases.items():
        done = _twinplane(*base, *extra)
        assert done.returncode == 2, (extra, done.stderr)
        assert f"twinplane up: error: {message}" in done.stderr, done.stderr
    assert not (tmp_path / "h").exists()  # nothing was started or stored
