"""Helpers of the sink tests: change batches made by the real engine, ports, bounded waits."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from needs import unavailable
from twinplane.twin import Engine, PropertySpec, ValueLike

SPECS: list[PropertySpec] = [
    {"name": "temp", "type": "FLOAT"},
    {"name": "count", "type": "INT"},
    {"name": "label", "type": "STRING"},
    {"name": "on", "type": "BOOLEAN"},
]


def changes(
    rows: Sequence[tuple[str, str, ValueLike]], ts_ms: int = 1_700_000_000_000
) -> pa.RecordBatch:
    """The engine's reported changes for ``(device id, property, value)`` rows, as Arrow."""
    engine = Engine()
    index = {}
    for device, _, _ in rows:
        if device not in index:
            index[device] = engine.upsert_device(device, SPECS)
    names = [s["name"] for s in SPECS]
    for device, prop, value in rows:
        engine.ingest_values(index[device], [(names.index(prop), value)], ts_ms)
    return pa.record_batch(engine.report())


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_binary(name: str, *extra: str, package: str) -> str:
    """A server binary; missing, the test fails under CI and is skipped elsewhere."""
    found = shutil.which(name) or next((p for p in extra if Path(p).exists()), None)
    if found is None:
        unavailable(f"{name} is not installed (Debian package {package}; .ci/run installs it)")
    return found


def wait_port(proc: subprocess.Popen[bytes], port: int, log: Path, within: float = 15.0) -> None:
    """Waits until ``proc`` accepts TCP connections on ``port``; raises with its log if not."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise AssertionError(f"server did not listen on {port}:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 5 s."""
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
