"""The sink framework: a :class:`Sink` writes batches; a :class:`SinkRunner` feeds it.

A runner owns one bounded queue of Arrow record batches and one task. :meth:`SinkRunner.offer`
never blocks (the reporter calls it on the event loop); when the queue is full the oldest batch
is dropped, counted, and logged once per burst. The task flushes by size (``max_rows``) or by
time (``interval_s`` after the first queued row), concatenates what it takes into one batch and
writes it, retrying with exponential backoff and jitter; a batch that still fails after
``max_attempts`` is counted as failed and given up (logged once per failure streak).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

__all__ = [
    "PermanentSinkError",
    "RetryLaterError",
    "RunnerSettings",
    "Sink",
    "SinkRunner",
    "SinkStats",
    "concat",
]

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Where samples go: a database, a broker, a file, an HTTP endpoint.

    ``write`` receives a non-empty batch of the engine's changes (see ``docs/sinks.md`` for the
    columns), already filtered to this sink's properties. Raising makes the runner retry the
    whole batch, so a write should be idempotent or all-or-nothing where the peer allows it.
    """

    async def write(self, batch: pa.RecordBatch) -> None:
        """Writes every row of ``batch``; raises on failure."""
        ...

    async def close(self) -> None:
        """Releases connections and files; called once, after the last write."""
        ...


class PermanentSinkError(Exception):
    """A write the peer refused for good (bad request, bad credentials): not retried."""


class RetryLaterError(Exception):
    """The peer asked to wait (HTTP 429/503 with ``Retry-After``) at least ``after_s``."""

    def __init__(self, message: str, after_s: float) -> None:
        super().__init__(message)
        self.after_s = after_s


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    """How a runner batches, bounds and retries.

    Attributes:
        max_rows: Flush as soon as this many rows are queued.
        interval_s: Flush at the latest this long after the first queued row.
        max_batches: Queue bound in batches; a full queue drops its oldest batch.
        max_attempts: Attempts per flushed batch before it is counted as failed.
        backoff_s: First retry delay; doubles per attempt, with jitter (50-100 %).
        max_backoff_s: Cap of the retry delay.
        close_timeout_s: How long :meth:`SinkRunner.close` may spend flushing the queue.
    """

    max_rows: int = 1000
    interval_s: float = 1.0
    max_batches: int = 1000
    max_attempts: int = 5
    backoff_s: float = 0.2
    max_backoff_s: float = 10.0
    close_timeout_s: float = 5.0


@dataclass(slots=True)
class SinkStats:
    """Counters of one runner (rows, except ``retries`` and ``queue_batches``)."""

    written: int = 0
    dropped: int = 0
    failed: int = 0
    retries: int = 0
    queue_batches: int = 0
    queue_rows: int = 0


def concat(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    """One record batch of the rows of ``batches`` (same schema), in order."""
    if len(batches) == 1:
        return batches[0]
    table = pa.Table.from_batches(batches).combine_chunks()
    return table.to_batches(max_chunksize=table.num_rows)[0]


class SinkRunner:
    """Feeds one sink from a bounded queue; see the module docstring.

    Args:
        name: A name for logs and metrics (for example ``redis:127.0.0.1:6379``).
        sink: The sink.
        settings: Batching, bound and retry settings.
    """

    def __init__(self, name: str, sink: Sink, settings: RunnerSettings | None = None) -> None:
        self.name = name
        self.sink = sink
        self.settings = settings or RunnerSettings()
        self._stats = SinkStats()
        self._queue: deque[pa.RecordBatch] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._burst = 0
        self._failing = False

    def start(self) -> None:
        """Starts the flush task."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"sink-{self.name}")

    def offer(self, batch: pa.RecordBatch) -> bool:
        """Queues a batch without blocking; returns ``False`` when an older batch was dropped."""
        if batch.num_rows == 0 or self._closing:
            return True
        dropped = False
        while len(self._queue) >= self.settings.max_batches:
            old = self._queue.popleft()
            self._stats.queue_rows -= old.num_rows
            self._stats.dropped += old.num_rows
            if self._burst == 0:
                log.warning(
                    "sink %s: queue full (%d batches); dropping the oldest samples",
                    self.name,
                    self.settings.max_batches,
                )
            self._burst += old.num_rows
            dropped = True
        if not dropped and self._burst:
            log.warning("sink %s: %d samples dropped in the last burst", self.name, self._burst)
            self._burst = 0
        self._queue.append(batch)
        self._stats.queue_rows += batch.num_rows
        self._wake.set()
        return not dropped

    def stats(self) -> dict[str, int]:
        """Counters for metrics: written, dropped, failed, retries, queue depth."""
        s = self._stats
        return {
            "written": s.written,
            "dropped": s.dropped,
            "failed": s.failed,
            "retries": s.retries,
            "queue_batches": len(self._queue),
            "queue_rows": s.queue_rows,
        }

    async def close(self) -> None:
        """Flushes what is queued (within ``close_timeout_s``), stops, and closes the sink."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.settings.close_timeout_s)
            except TimeoutError:
                log.warning(
                    "sink %s: %d samples not flushed before close",
                    self.name,
                    self._stats.queue_rows,
                )
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.sink.close()
        except Exception:  # a close failure must not stop the others
            log.exception("sink %s: close failed", self.name)

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._fill()
            await self._deliver(self._take())

    async def _fill(self) -> None:
        """Waits until ``max_rows`` are queued, ``interval_s`` passed, or close begins."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.interval_s
        while self._stats.queue_rows < self.settings.max_rows and not self._closing:
            left = deadline - loop.time()
            if left <= 0:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)

    def _take(self) -> pa.RecordBatch:
        taken: list[pa.RecordBatch] = []
        rows = 0
        while self._queue and (
            not taken or rows + self._queue[0].num_rows <= self.settings.max_rows
        ):
            batch = self._queue.popleft()
            taken.append(batch)
            rows += batch.num_rows
        self._stats.queue_rows -= rows
        return concat(taken)

    async def _deliver(self, batch: pa.RecordBatch) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.sink.write(batch)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # any peer failure: retried, then counted
                permanent = isinstance(err, PermanentSinkError)
                if permanent or attempt >= self.settings.max_attempts:
                    self._stats.failed += batch.num_rows
                    log.warning(
                        "sink %s: %d samples not written after %d attempt(s): %s",
                        self.name,
                        batch.num_rows,
                        attempt,
                        err,
                    )
                    return
                if not self._failing:
                    log.warning("sink %s: write failed, retrying: %s", self.name, err)
                    self._failing = True
                self._stats.retries += 1
                await asyncio.sleep(self._delay(attempt, err))
                continue
            self._stats.written += batch.num_rows
            if self._failing:
                log.info("sink %s: writing again", self.name)
                self._failing = False
            return

    def _delay(self, attempt: int, err: Exception) -> float:
        s = self.settings
        if self._closing:
            return min(s.backoff_s, 0.05)
        delay = min(s.max_backoff_s, s.backoff_s * 2.0 ** (attempt - 1))
        delay *= 0.5 + random.random() / 2  # noqa: S311 - jitter, not cryptography
        if isinstance(err, RetryLaterError):
            delay = max(delay, min(err.after_s, s.max_backoff_s))
        return delay
