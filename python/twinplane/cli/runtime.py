"""What every process command of the CLI shares: log levels, logging set-up, the event loop.

``twinplane edge``, ``mapper``, ``sim``, ``up`` and ``bench imitation-mapper`` configure logging
with :func:`configure_logging` (``time level logger: message key=value ...``, the structured
``extra=`` fields printed as ``key=value``) and run their event loop from :func:`loop_factory`
(uvloop where it is installed). One way to configure logging, in one module.

Repeated lines collapse: a second record of the same logger, level and message template (the
same warning about another device, say) within :data:`REPEAT_WINDOW_S` of the first is held
back and counted, and one line says how many there were ("... and 199 more like it in 10 s").
So 200 devices failing the same way print two lines, not 200.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, TextIO

__all__ = [
    "LOG_LEVELS",
    "REPEAT_WINDOW_S",
    "CollapsingHandler",
    "configure_logging",
    "default_home",
    "loop_factory",
]

LOG_LEVELS: Final = ("debug", "info", "warning", "error")
"""The ``--log-level`` choices."""

REPEAT_WINDOW_S: Final = 10.0
"""How long after a log line its repeats are collapsed into one count."""

# Attributes every LogRecord has; anything else came in through ``extra=`` and is printed.
_RECORD_KEYS: Final = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def default_home() -> Path:
    """``$TWINPLANE_HOME``, else ``~/.twinplane``."""
    return Path(os.environ.get("TWINPLANE_HOME") or "~/.twinplane").expanduser()


class _Formatter(logging.Formatter):
    """``time level logger: message key=value ...`` with the record's structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = {k: v for k, v in vars(record).items() if k not in _RECORD_KEYS}
        if extra:
            text += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        return text


class CollapsingHandler(logging.StreamHandler[TextIO]):
    """A stream handler that collapses repeats of a line into one count.

    Records with the same logger, level and message template as one written less than
    ``window_s`` seconds before are held back and counted; once the window is over (checked on
    every record and on :meth:`flush_repeats`), one line says how many came. Debug records are
    never collapsed.

    Args:
        stream: Where lines go.
        window_s: How long repeats of a line are collapsed.
        clock: Seconds, monotonic (tests pass their own).
    """

    def __init__(
        self,
        stream: TextIO,
        window_s: float = REPEAT_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(stream)
        self.window_s = window_s
        self._clock = clock
        # (logger, level, template) -> (window start, repeats held back, the first record)
        self._seen: dict[tuple[str, int, str], tuple[float, int, logging.LogRecord]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        """Writes the record, or counts it as a repeat of one written in the window."""
        now = self._clock()
        self._close_windows(now)
        if record.levelno <= logging.DEBUG:
            super().emit(record)
            return
        key = (record.name, record.levelno, str(record.msg))
        seen = self._seen.get(key)
        if seen is not None:
            self._seen[key] = (seen[0], seen[1] + 1, seen[2])
            return
        self._seen[key] = (now, 0, record)
        super().emit(record)

    def flush_repeats(self) -> None:
        """Writes the counts of every window that is over."""
        self._close_windows(self._clock())

    def close(self) -> None:
        """Writes every count held back, then closes."""
        self._close_windows(float("inf"))
        super().close()

    def _close_windows(self, now: float) -> None:
        over = [key for key, (start, _, _) in self._seen.items() if now - start >= self.window_s]
        for key in over:
            start, repeats, first = self._seen.pop(key)
            if repeats:
                span = min(now - start, self.window_s)
                summary = logging.makeLogRecord(
                    {
                        "name": first.name,
                        "levelno": first.levelno,
                        "levelname": first.levelname,
                        "msg": "... and %d more like %r in %.0f s",
                        "args": (repeats, _clip(first.getMessage()), span),
                    }
                )
                super().emit(summary)


def _clip(text: str, width: int = 120) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def configure_logging(level: str, stream: TextIO | None = None) -> CollapsingHandler:
    """Logs at ``level`` (one of :data:`LOG_LEVELS`) to ``stream`` (stderr), repeats collapsed.

    Structured fields are included. aiohttp's access log stays quiet unless ``level`` is
    ``debug``.

    Returns:
        The handler (``flush_repeats()`` writes the counts of finished windows).
    """
    handler = CollapsingHandler(stream or sys.stderr)
    handler.setFormatter(_Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    if level != "debug":
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return handler


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Uvloop's loop factory where uvloop is installed, else ``None`` (asyncio's own loop)."""
    try:
        import uvloop  # noqa: PLC0415 - optional, where the platform has it
    except ImportError:
        return None
    return uvloop.new_event_loop
