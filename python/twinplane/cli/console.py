"""A terminal with live lines at the bottom, and Ctrl-C read as a key.

:class:`LiveConsole` keeps a block of lines (a summary redrawn every second) at the bottom of a
terminal; anything written to it — progress lines, log records — appears *above* the block,
which is then drawn again, so the two never interleave or duplicate. Lines are clipped to the
terminal's width, so the block's height is what the cursor moves back over.

:func:`keys_stop` makes Ctrl-C (and ``q``) a key the process reads instead of a SIGINT sent to
the terminal's whole foreground process group: ``make run`` then ends with the command's own
exit status (0 after a clean stop), not make's 130 for an interrupted recipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import sys
import termios
from collections.abc import Iterator, Sequence
from typing import TextIO

__all__ = ["LiveConsole", "keys_stop"]

_STOP_KEYS = frozenset(b"\x03qQ")
"""Ctrl-C, ``q``, ``Q``."""


class LiveConsole(io.TextIOBase):
    """Text above a live block of lines on a terminal.

    Args:
        stream: The terminal.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self._block: list[str] = []
        self._partial = ""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """The terminal's encoding."""
        return getattr(self.stream, "encoding", None) or "utf-8"

    def writable(self) -> bool:
        """Always."""
        return True

    def isatty(self) -> bool:
        """Whether the stream is a terminal."""
        return self.stream.isatty()

    def write(self, text: str) -> int:
        """Writes whole lines above the block (a partial line waits for its end)."""
        self._partial += text
        if "\n" not in self._partial:
            return len(text)
        done, _, self._partial = self._partial.rpartition("\n")
        self.stream.write(self._erase() + done + "\n" + self._draw(self._block))
        self.stream.flush()
        return len(text)

    def flush(self) -> None:
        """Flushes the terminal."""
        self.stream.flush()

    def show(self, lines: Sequence[str]) -> None:
        """Replaces the live block with ``lines``."""
        erase = self._erase()
        self._block = [self._clip(line) for line in lines]
        self.stream.write(erase + self._draw(self._block))
        self.stream.flush()

    def release(self) -> None:
        """Leaves the block on screen as ordinary lines; later text goes below it."""
        self._block = []

    def _erase(self) -> str:
        """Moves back to the block's first line and clears to the end of the screen."""
        return f"\x1b[{len(self._block)}F\x1b[J" if self._block else ""

    @staticmethod
    def _draw(lines: Sequence[str]) -> str:
        return "".join(f"{line}\n" for line in lines)

    @staticmethod
    def _clip(line: str) -> str:
        width = shutil.get_terminal_size((100, 24)).columns
        return line if len(line) < width else line[: max(width - 2, 1)] + "…"


@contextlib.contextmanager
def keys_stop(stop: asyncio.Event, stream: TextIO | None = None) -> Iterator[bool]:
    """While open, Ctrl-C or ``q`` on the terminal sets ``stop`` instead of sending SIGINT.

    Only when ``stream`` (stdin) is a terminal; otherwise nothing changes and signals work as
    usual. Yields whether the keys are read. The terminal's settings are restored on exit.
    """
    stdin = stream or sys.stdin
    try:
        fd = stdin.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        yield False
        return
    if not os.isatty(fd):
        yield False
        return
    loop = asyncio.get_running_loop()
    saved = termios.tcgetattr(fd)
    mode = termios.tcgetattr(fd)
    mode[3] &= ~(termios.ISIG | termios.ICANON | termios.ECHO)  # keys, not signals or lines
    mode[6][termios.VMIN], mode[6][termios.VTIME] = 1, 0

    def on_key() -> None:
        try:
            data = os.read(fd, 64)
        except OSError:
            data = b""
        if not data or _STOP_KEYS.intersection(data):
            stop.set()

    termios.tcsetattr(fd, termios.TCSANOW, mode)
    loop.add_reader(fd, on_key)
    try:
        yield True
    finally:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
