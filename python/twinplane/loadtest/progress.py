"""The progress line of a benchmark: redrawn in place on a terminal, plain lines otherwise."""

from __future__ import annotations

import time
from typing import Final, TextIO

__all__ = ["Progress", "bar"]

PLAIN_INTERVAL_S: Final = 5.0
BAR_WIDTH: Final = 24


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """``[#######.........]`` filled to ``fraction`` (clamped to 0..1)."""
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


class Progress:
    r"""Step lines that stay, and a status line that is redrawn (TTY) or printed every 5 s.

    Args:
        out: Where to write.
        tty: ``out`` is a terminal: redraw the status line with ``\\r``.
    """

    def __init__(self, out: TextIO, *, tty: bool) -> None:
        self.out = out
        self.tty = tty
        self.ok = "✓" if "utf" in (getattr(out, "encoding", "") or "").lower() else "ok"
        self._shown = False
        self._last_plain = 0.0

    def status(self, text: str, *, force: bool = False) -> None:
        """Shows the transient status line."""
        if self.tty:
            self.out.write("\r\x1b[2K" + text)
            self.out.flush()
            self._shown = True
            return
        now = time.monotonic()
        if force or now - self._last_plain >= PLAIN_INTERVAL_S:
            self._last_plain = now
            print(text, file=self.out, flush=True)

    def step(self, text: str, started: float | None = None) -> None:
        """Prints a line that stays (``✓ text (N ms)`` when ``started`` is given)."""
        self.clear()
        if started is not None:
            text = f"  {self.ok} {text}  ({(time.monotonic() - started) * 1000:,.0f} ms)"
        print(text, file=self.out, flush=True)
        self._last_plain = 0.0

    def clear(self) -> None:
        """Removes the status line (on a terminal)."""
        if self.tty and self._shown:
            self.out.write("\r\x1b[2K")
            self.out.flush()
        self._shown = False
