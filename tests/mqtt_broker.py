"""A real ``mosquitto`` on a free loopback port, shared by the MQTT tests.

Importable as ``mqtt_broker`` from every test module, like ``edge_helpers`` (see ``conftest.py``).
A missing binary fails the test when ``CI`` is set and skips it elsewhere (``needs.unavailable``).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge_helpers import free_port
from needs import unavailable

STARTS_WITHIN = 10.0
"""Seconds mosquitto may take to accept connections before the test fails."""


def mosquitto_binary() -> str:
    """The mosquitto binary; missing, the test fails under CI and is skipped elsewhere."""
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()),
        None,
    )
    if found is None:
        unavailable("mosquitto is not installed (Debian package mosquitto; .ci/run installs it)")
    return found


@dataclass
class Mosquitto:
    """A mosquitto process on a loopback port, restartable on the same port."""

    binary: str
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker URL, in KubeEdge's ``tcp://`` form."""
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def mqtt_url(self) -> str:
        """The broker URL, in the ``mqtt://`` form."""
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Starts mosquitto and waits until it accepts connections."""
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "max_queued_messages 100000\n"
        )
        log = (self.workdir / "mosquitto.log").open("ab")  # appended to across restarts
        self.proc = subprocess.Popen(  # noqa: S603 - our own config, a found binary
            [self.binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + STARTS_WITHIN
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                output = (self.workdir / "mosquitto.log").read_text(errors="replace")
                pytest.fail(f"mosquitto exited with {self.proc.returncode}:\n{output}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        pytest.fail(f"mosquitto did not accept connections on port {self.port}")

    def stop(self) -> None:
        """Stops mosquitto (SIGTERM, then SIGKILL)."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


@contextlib.contextmanager
def running_mosquitto(workdir: Path, binary: str | None = None) -> Iterator[Mosquitto]:
    """A started mosquitto working in ``workdir``, stopped on exit.

    Args:
        workdir: Where its configuration and log go.
        binary: The mosquitto binary; by default :func:`mosquitto_binary` finds it.
    """
    server = Mosquitto(binary if binary is not None else mosquitto_binary(), workdir)
    try:
        server.start()  # inside: a broker that never accepts connections is stopped too
        yield server
    finally:
        server.stop()
