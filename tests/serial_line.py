"""A serial line for RTU tests: two pseudo-terminals linked by socat."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from needs import unavailable

WAIT = 5.0
"""Seconds socat may take to make (or drop) the pseudo-terminals."""


@contextlib.contextmanager
def pty_pair(folder: Path) -> Iterator[tuple[str, str]]:
    """Two linked pseudo-terminals in ``folder``: ``(device end, client end)``.

    socat missing is a failure under CI and a skip elsewhere (``needs.unavailable``).
    """
    socat = shutil.which("socat")
    if socat is None:
        unavailable("socat is not installed (Debian package socat; .ci/run installs it)")
    device_end, client_end = folder / "device", folder / "client"
    proc = subprocess.Popen(  # noqa: S603 - a found binary, our own arguments
        [socat, f"pty,raw,echo=0,link={device_end}", f"pty,raw,echo=0,link={client_end}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + WAIT
        while not (device_end.exists() and client_end.exists()):
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                pytest.fail(f"socat did not make the pseudo-terminals: {err}")
            time.sleep(0.01)
        yield str(device_end), str(client_end)
    finally:
        proc.terminate()
        try:
            proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(WAIT)
        if proc.stderr is not None:
            proc.stderr.close()
