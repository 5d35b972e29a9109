"""Helpers shared by the tests that run a device manager: in process or as ``twinplane edge``.

Importable as ``edge_helpers`` from every test module, like ``reference`` (see ``conftest.py``).
Manifests are built here from the pieces the tests share; a builder's output is the YAML a test
would otherwise spell out.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from needs import unavailable
from twinplane.edge.app import EdgeApp, EdgeConfig
from twinplane.edge.core import EdgeCore

SAMPLES = Path(__file__).resolve().parents[2] / "shared/fixtures/kubeedge/samples"
"""KubeEdge's sample manifests, in the shared folder beside the repository."""

STARTS_WITHIN = 30.0
"""Seconds ``twinplane edge`` may take to answer ``/healthz`` before the test fails."""


def samples() -> Path:
    """The samples folder; missing, the test fails under CI and is skipped elsewhere."""
    if not SAMPLES.is_dir():
        unavailable(f"{SAMPLES} is missing")
    return SAMPLES


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- manifests -------------------------------------------------------------------------------------

THERMO_PROPERTIES = {
    "temperature": "{name: temperature, type: FLOAT, accessMode: ReadOnly, unit: Celsius}",
    "setpoint": "{name: setpoint, type: INT, accessMode: ReadWrite}",
    "enabled": "{name: enabled, type: BOOLEAN, accessMode: ReadWrite}",
    "label": "{name: label, type: STRING, accessMode: ReadOnly}",
}
"""The properties a thermostat model can have, as YAML flow mappings."""


def model_yaml(name: str, protocol: str, *properties: str, namespace: str = "default") -> str:
    """A DeviceModel manifest; each of ``properties`` is a YAML flow mapping."""
    return (
        "apiVersion: devices.kubeedge.io/v1beta1\n"
        "kind: DeviceModel\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\n"
        "spec:\n"
        f"  protocol: {protocol}\n"
        "  properties:\n" + "".join(f"  - {prop}\n" for prop in properties)
    )


def thermo_model(*properties: str, namespace: str = "default") -> str:
    """The Modbus DeviceModel ``thermo-model`` with the named :data:`THERMO_PROPERTIES`."""
    flows = (THERMO_PROPERTIES[prop] for prop in properties)
    return model_yaml("thermo-model", "modbus", *flows, namespace=namespace)


def device_yaml(
    name: str,
    model: str,
    protocol: str = "{protocolName: modbus}",
    *,
    namespace: str = "default",
    node: str | None = None,
) -> str:
    """A Device manifest without properties; ``protocol`` is a YAML flow mapping."""
    node_name = f"  nodeName: {node}\n" if node else ""
    return (
        "apiVersion: devices.kubeedge.io/v1beta1\n"
        "kind: Device\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\n"
        "spec:\n"
        f"  deviceModelRef: {{name: {model}}}\n"
        f"{node_name}"
        f"  protocol: {protocol}\n"
    )


# -- a device manager in this process --------------------------------------------------------------


@contextlib.contextmanager
def short_home() -> Iterator[Path]:
    """A fresh home folder, removed afterwards; short, as a socket path must fit 107 bytes."""
    home = Path(tempfile.mkdtemp(prefix="tp-edge-"))
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@contextlib.asynccontextmanager
async def running_app(
    home: Path,
    manifests: str = "",
    **settings: Any,  # noqa: ANN401
) -> AsyncIterator[EdgeApp]:
    """A started :class:`EdgeApp` on ``home`` (REST on a free port) with ``manifests`` applied."""
    app = EdgeApp(EdgeConfig(home=home, rest_addr="127.0.0.1:0", **settings))
    try:
        await app.start()
        if manifests:
            assert app.core is not None
            await app.core.apply(manifests)
        yield app
    finally:
        await app.stop()


@dataclass
class RunningEdge:
    """A running device manager; test modules subclass it with their own helpers."""

    app: EdgeApp

    @property
    def core(self) -> EdgeCore:
        """The registry and twins."""
        assert self.app.core is not None
        return self.app.core

    @property
    def target(self) -> str:
        """The DMI socket as a gRPC target."""
        return f"unix:{self.app.config.socket_path}"

    @property
    def home(self) -> Path:
        """The device manager's state folder."""
        return self.app.config.home


# -- twinplane edge as a subprocess ----------------------------------------------------------------


def edge_command() -> list[str]:
    """The installed ``twinplane`` command (the module when the script is not installed)."""
    script = Path(sysconfig.get_path("scripts")) / "twinplane"
    return [str(script)] if script.exists() else [sys.executable, "-m", "twinplane.cli"]


@dataclass
class EdgeProcess:
    """``twinplane edge ARGS`` as a subprocess on a home folder; restartable.

    Each start takes a free loopback port for the REST API. What the processes print goes to
    :attr:`log`, appended to across restarts. ``umask`` is the process's umask (``None``: this
    process's).
    """

    home: Path
    args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    umask: int | None = None

    @property
    def url(self) -> str:
        """The REST API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def socket(self) -> Path:
        """The DMI socket (the default place under the home)."""
        return self.home / "run" / "dmi.sock"

    @property
    def target(self) -> str:
        """The DMI socket as a gRPC target."""
        return f"unix:{self.socket}"

    @property
    def db(self) -> Path:
        """The SQLite database."""
        return self.home / "state" / "edge.db"

    @property
    def log(self) -> Path:
        """The processes' output."""
        return self.home / "edge.log"

    def start(self) -> None:
        """Starts the command on a free port and waits until ``/healthz`` answers 200."""
        self.port = free_port()
        home, addr = str(self.home), f"127.0.0.1:{self.port}"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own command
                [*edge_command(), "edge", "--home", home, "--rest-addr", addr, *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                umask=-1 if self.umask is None else self.umask,
            )
        deadline = time.monotonic() + STARTS_WITHIN
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"twinplane edge exited with {self.proc.returncode}:\n{self.output()}")
            if self._healthy():
                return
            time.sleep(0.05)
        late = f"twinplane edge did not answer /healthz within {STARTS_WITHIN:g} s"
        pytest.fail(f"{late}:\n{self.output()}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as resp:  # noqa: S310
                return bool(resp.status == 200)
        except OSError:  # refused, or an HTTP error status
            return False

    def output(self) -> str:
        """What the processes printed so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs, nothing is flushed or removed."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait() == -signal.SIGKILL
        self.proc = None

    def terminate(self) -> int:
        """SIGTERM; the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Ends a process still running (test cleanup)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@contextlib.contextmanager
def edge_process(*args: str, umask: int | None = None) -> Iterator[EdgeProcess]:
    """An :class:`EdgeProcess` (not started) in a fresh short home; ended and removed afterwards."""
    with short_home() as home:
        process = EdgeProcess(home, args, umask=umask)
        try:
            yield process
        finally:
            process.stop()
