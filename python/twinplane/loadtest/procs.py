"""The benchmarked processes: started with their logs in files, watched, measured and stopped.

Each :class:`Proc` is ``sys.executable -m twinplane ...`` in a session of its own (a Ctrl-C
at the terminal reaches the bench only, which then stops them in order), its stdout and stderr
in ``<name>.log``. :func:`proc_usage` reads a process's CPU time and memory from ``/proc``.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["BenchError", "Proc", "ProcUsage", "proc_usage", "raise_fd_limit"]

STOP_TIMEOUT_S: Final = 15.0
"""Seconds a process gets to stop after SIGTERM before SIGKILL."""

_CLK_TCK: Final = os.sysconf("SC_CLK_TCK")
_LOG_TAIL_LINES: Final = 15


class BenchError(Exception):
    """The benchmark could not run; the message says why (and shows a process's last lines)."""


@dataclass(frozen=True, slots=True)
class ProcUsage:
    """CPU seconds (user + system) and memory (MiB) of a process at one moment."""

    cpu_s: float
    rss_mb: float
    hwm_mb: float


def proc_usage(pid: int) -> ProcUsage | None:
    """``/proc/<pid>/stat`` (utime + stime) and ``/proc/<pid>/status`` (VmRSS, VmHWM).

    Returns:
        The usage, or ``None`` when the process is gone (or this is not Linux).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime: fields 14 and 15
    kib = {"VmRSS": 0, "VmHWM": 0}
    for line in status.splitlines():
        key, _, rest = line.partition(":")
        if key in kib:
            kib[key] = int(rest.split()[0])
    return ProcUsage(cpu, kib["VmRSS"] / 1024, kib["VmHWM"] / 1024)


def raise_fd_limit() -> int:
    """Raises this process's soft ``RLIMIT_NOFILE`` to its hard limit (children inherit it).

    Returns:
        The soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Proc:
    """One ``twinplane`` process (or another program), its output in ``log_dir/<name>.log``.

    Args:
        name: A short name (``sim``, ``edge``, ``mapper``).
        args: The arguments after ``python -m twinplane``, or after ``program``.
        log_dir: Where the log file goes.
        program: Another executable to run instead of ``python -m twinplane``.
    """

    def __init__(
        self, name: str, args: Sequence[str], log_dir: Path, program: Path | None = None
    ) -> None:
        self.name = name
        prefix = [str(program)] if program is not None else [sys.executable, "-m", "twinplane"]
        self.argv = [*prefix, *args]
        self.log_path = log_dir / f"{name}.log"
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The process id (0 before it started)."""
        return self._popen.pid if self._popen is not None else 0

    def start(self) -> None:
        """Starts the process in a session of its own."""
        with self.log_path.open("wb") as log:
            self._popen = subprocess.Popen(  # noqa: S603 - our interpreter, or an interop/go build
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def exited(self) -> int | None:
        """The exit status if the process has ended, else ``None``."""
        return self._popen.poll() if self._popen is not None else None

    def check(self) -> None:
        """Raises :class:`BenchError` (with the log's last lines) if the process has ended."""
        code = self.exited()
        if code is not None:
            raise BenchError(
                f"{self.name} exited early with status {code}; last lines of {self.log_path}:\n"
                + self.tail()
            )

    def tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The log's last lines, indented."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "  (no log)"
        return "\n".join(f"  {line}" for line in text.splitlines()[-lines:]) or "  (empty log)"

    def usage(self) -> ProcUsage | None:
        """CPU and memory now (see :func:`proc_usage`)."""
        return proc_usage(self.pid) if self.exited() is None and self.pid else None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit status."""
        popen = self._popen
        if popen is None:
            return None
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                popen.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while popen.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    popen.kill()
        return popen.wait()
