"""The one path by which twins reach SQLite: the engine's dirty set, written in one transaction.

The device manager's engine runs in ``track_dirty`` mode: every twin a report, a desired value or
an apply changes is marked, and :meth:`TwinPersister.persist` takes the marked rows
(``Engine.take_dirty()``, the latest body of each changed twin as JSON text) and writes them with
one ``save_twins`` transaction. It is called every ``interval`` seconds by a background loop (the
reported values: a crash loses at most that window of telemetry, which the mappers report again)
and directly, awaited, by whatever must be durable before it is acknowledged (an apply's desired
values, a desired value set on the edge).

A write that fails keeps its rows: the next one writes them, merged under newer values, unless
their device was deleted meanwhile. The background loop backs off (doubling up to
:data:`MAX_BACKOFF_S`) while writes fail. :class:`PersistStats` counts what happened, for
``/metrics`` and ``/healthz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Final

from twinplane.edge.store import AsyncEdgeStore
from twinplane.errors import TwinplaneError
from twinplane.twin import Engine

__all__ = ["MAX_BACKOFF_S", "PersistStats", "TwinPersister"]

log = logging.getLogger(__name__)

MAX_BACKOFF_S: Final = 5.0
"""Longest wait of the background loop between two failing writes."""


@dataclass(slots=True)
class PersistStats:
    """What the twin persister did.

    Attributes:
        rows: Twin rows committed.
        flushes: Writes (transactions) committed.
        errors: Writes that failed (their rows are kept for the next one).
        unsaved: Rows taken from the engine by a failed write, waiting for the next one.
        last_flush_ms: When the last write committed (ms since the epoch; 0: none yet).
        last_flush_s: How long the last committed write took, in seconds.
    """

    rows: int = 0
    flushes: int = 0
    errors: int = 0
    unsaved: int = 0
    last_flush_ms: int = 0
    last_flush_s: float = 0.0


class TwinPersister:
    """Writes the engine's changed twins to the store (see the module docstring).

    Args:
        engine: The device manager's engine (``track_dirty=True``).
        store: The opened store.
        interval: Seconds between background writes.
    """

    def __init__(self, engine: Engine, store: AsyncEdgeStore, *, interval: float) -> None:
        self.engine = engine
        self.store = store
        self.interval = interval
        self.stats = PersistStats()
        self._lock = asyncio.Lock()
        self._unsaved: list[tuple[str, str, str]] = []
        self._loop: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Starts the background writes."""
        self._loop = asyncio.create_task(self._run(), name="twin-flusher")

    async def stop(self) -> None:
        """Stops the background writes and writes what is left.

        Raises:
            TwinplaneError: The last write failed.
        """
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        await self.persist()

    async def persist(self) -> int:
        """Writes every changed twin now; returns how many rows were written.

        Raises:
            TwinplaneError: The write failed; its rows are kept for the next one.
        """
        async with self._lock:
            rows = await asyncio.to_thread(self.engine.take_dirty)
            if self._unsaved:  # a failed write's rows (of devices still here), then newer ones
                known = set(self.engine.device_ids())
                merged = {(d, p): body for d, p, body in self._unsaved if d in known}
                merged.update({(d, p): body for d, p, body in rows})
                rows = [(d, p, body) for (d, p), body in merged.items()]
                self._unsaved = []
            if not rows:
                self.stats.unsaved = 0
                return 0
            started = time.monotonic()
            try:
                await self.store.save_twins(rows)  # one committed transaction, or it raises
            except BaseException as exc:
                self._unsaved = rows  # taken from the engine: kept here for the next try
                self.stats.unsaved = len(rows)
                if isinstance(exc, Exception):
                    self.stats.errors += 1
                raise
            committed_ms = time.time_ns() // 1_000_000
            # Committed: read -> persisted latency of these rows (and of rows taken by a failed
            # write before; an exception above leaves them waiting, unmarked).
            self.engine.mark_persisted(committed_ms)
            stats = self.stats
            stats.rows += len(rows)
            stats.flushes += 1
            stats.unsaved = 0
            stats.last_flush_ms = committed_ms
            stats.last_flush_s = time.monotonic() - started
            return len(rows)

    async def _run(self) -> None:
        backoff = self.interval
        while True:
            await asyncio.sleep(backoff)
            try:
                await self.persist()
                backoff = self.interval
            except TwinplaneError:
                log.exception("persisting twins failed; retrying")
                backoff = min(backoff * 2, MAX_BACKOFF_S)
