"""What every process command of the CLI shares: log levels, logging set-up, the event loop.

``twinplane edge``, ``mapper``, ``sim``, ``up`` and ``bench kubeedge-mapper`` configure logging
with :func:`configure_logging` (``time level logger: message key=value ...``, the structured
``extra=`` fields printed as ``key=value``) and run their event loop from :func:`loop_factory`
(uvloop where it is installed). One way to configure logging, in one module.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final

__all__ = ["LOG_LEVELS", "configure_logging", "default_home", "loop_factory"]

LOG_LEVELS: Final = ("debug", "info", "warning", "error")
"""The ``--log-level`` choices."""

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


def configure_logging(level: str) -> None:
    """Logs at ``level`` (one of :data:`LOG_LEVELS`) to stderr, structured fields included.

    aiohttp's access log stays quiet unless ``level`` is ``debug``.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    if level != "debug":
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Uvloop's loop factory where uvloop is installed, else ``None`` (asyncio's own loop)."""
    try:
        import uvloop  # noqa: PLC0415 - optional, where the platform has it
    except ImportError:
        return None
    return uvloop.new_event_loop
