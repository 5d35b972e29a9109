"""Garbage-collector policy for long-running twinplane processes with large, stable heaps.

A device manager or mapper serving 10,000 devices holds a few million long-lived Python
objects (manifests, protocol messages, device clients, read plans) and allocates short-lived
ones at a high rate (one poll, one report after another). CPython's cyclic collector then runs
full (generation 2) collections over the whole heap every few seconds — measured at 10,000
devices: 420 to 470 ms each in a mapper, 110 to 140 ms in a device manager, each one a pause in
which no device is polled and no report is applied.

:class:`HeapSteward` removes those pauses the way large Python services do (``gc.freeze``):

- a higher generation-0 threshold, so objects that live a few milliseconds (a poll in flight)
  die before they are promoted;
- once a burst of configuration changes (devices registered, manifests applied) has been quiet
  for :data:`QUIET_S`, one collection and then ``gc.freeze()``: everything alive is moved to
  the permanent generation, which later collections do not scan;
- a removal (objects that may now be cyclic garbage) unfreezes first, so the collection after
  the burst sees and frees them.

Reference counting frees almost everything; only cyclic garbage waits for a collection.
Collections that still take longer than :data:`SLOW_GC_S` are logged at debug level.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any, Final

__all__ = [
    "GEN0_THRESHOLD",
    "QUIET_S",
    "SLOW_GC_S",
    "HeapSteward",
    "acquire",
    "changed",
    "release",
]

log = logging.getLogger(__name__)

GEN0_THRESHOLD: Final = 20_000
"""Allocations between generation-0 collections (CPython's default is 700)."""

QUIET_S: Final = 2.0
"""Seconds without configuration changes before the heap is frozen."""

SLOW_GC_S: Final = 0.05
"""Collections longer than this are logged (debug)."""


class HeapSteward:
    """The collector policy of one process (see the module docstring).

    Call :meth:`install` once the event loop runs, :meth:`changed` after each configuration
    change (``removed=True`` when objects were dropped), :meth:`close` at shutdown.
    """

    def __init__(self, *, quiet_s: float = QUIET_S) -> None:
        self.quiet_s = quiet_s
        self.freezes = 0
        self.slow_collections = 0
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = 0.0
        self._thresholds = gc.get_threshold()

    def install(self) -> None:
        """Sets the thresholds, starts timing collections and freezes what exists now.

        Raises:
            RuntimeError: No running event loop (nothing is changed then).
        """
        loop = asyncio.get_running_loop()
        if self._loop is not None:
            return  # installed already
        self._loop = loop
        self._thresholds = gc.get_threshold()
        _, gen1, gen2 = self._thresholds
        gc.set_threshold(max(GEN0_THRESHOLD, self._thresholds[0]), gen1, gen2)
        gc.callbacks.append(self._on_gc)
        self.changed()

    def changed(self, *, removed: bool = False) -> None:
        """Configuration changed: freeze once it has been quiet for :attr:`quiet_s`."""
        if removed and gc.get_freeze_count():
            gc.unfreeze()
        if self._loop is None:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_later(self.quiet_s, self._freeze)

    def close(self) -> None:
        """Stops the timer and restores the collector (the frozen objects are unfrozen)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        gc.unfreeze()
        gc.set_threshold(*self._thresholds)
        self._loop = None

    def _freeze(self) -> None:
        self._handle = None
        started = time.perf_counter()
        gc.collect()
        gc.freeze()
        self.freezes += 1
        log.debug(
            "heap frozen: %d objects out of the collector's scans (%.0f ms)",
            gc.get_freeze_count(),
            (time.perf_counter() - started) * 1000,
        )

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        if took > SLOW_GC_S:
            self.slow_collections += 1
            log.debug(
                "garbage collection of generation %d took %.0f ms (%d collected)",
                info.get("generation", -1),
                took * 1000,
                info.get("collected", 0),
            )


_STEWARD: HeapSteward | None = None
_USERS = 0


def acquire() -> None:
    """Installs the process's :class:`HeapSteward` (first user) from the running loop.

    The collector is process-wide: a device manager and a mapper in one process
    (``twinplane up``) share one policy; it is undone when the last user releases it.
    """
    global _STEWARD, _USERS  # noqa: PLW0603 - one policy per process
    if _STEWARD is None:
        steward = HeapSteward()
        steward.install()  # raises without a running loop, before anything is counted
        _STEWARD = steward
    _USERS += 1


def release() -> None:
    """Drops one use; the last one restores the collector."""
    global _STEWARD, _USERS  # noqa: PLW0603 - one policy per process
    _USERS = max(_USERS - 1, 0)
    if _USERS == 0 and _STEWARD is not None:
        _STEWARD.close()
        _STEWARD = None


def changed(*, removed: bool = False) -> None:
    """Configuration changed (see :meth:`HeapSteward.changed`); nothing without a user."""
    if _STEWARD is not None:
        _STEWARD.changed(removed=removed)
