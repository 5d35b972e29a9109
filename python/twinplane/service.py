"""Running a process until SIGINT or SIGTERM, then stopping it cleanly.

Every process command (``twinplane edge``, ``mapper``, ``sim``, ``up``, ``bench
imitation-mapper``) stops on either signal; :func:`stop_on_signals` is that rule in one place,
and :func:`serve` runs a composition root with it (start, announce, wait, stop — the stop runs
even when the start fails half-way, or the task is cancelled).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import Final, Protocol

__all__ = ["STOP_SIGNALS", "Service", "serve", "stop_on_signals"]

STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
"""The signals that stop a process cleanly."""


class Service(Protocol):
    """A process's composition root: parts started in order and stopped the other way."""

    async def start(self) -> None:
        """Starts every part; raises if one cannot start."""
        ...

    async def stop(self) -> None:
        """Stops every part that started."""
        ...


def stop_on_signals(stop: asyncio.Event | None = None) -> asyncio.Event:
    """``stop`` (or a new event), set by :data:`STOP_SIGNALS` from now on.

    Where the running loop cannot install signal handlers (not the main thread, or a platform
    without them) the event is only set by its owner.
    """
    event = stop if stop is not None else asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, event.set)
    return event


async def serve(
    service: Service, *, banner: Callable[[], str], ready: asyncio.Event | None = None
) -> None:
    """Starts ``service``, prints ``banner()``, sets ``ready``, waits for a signal, stops it."""
    stop = stop_on_signals()
    try:
        await service.start()
        print(banner(), flush=True)
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        await service.stop()
