"""An in-process event hub: twin, state and lifecycle events for SSE clients and bridges.

Publishing never blocks the hot path: each subscriber has a bounded queue, and a subscriber
that falls behind loses its *oldest* events, counted in ``Subscription.dropped`` (and reported
to it by a ``dropped`` event), so a slow browser tab never slows device ingestion.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

EventKind = Literal["twin", "state", "lifecycle", "call", "dropped"]


@dataclass(frozen=True, slots=True)
class Event:
    """One event: a kind, a device (or object) id, a JSON-able body and a timestamp (ms)."""

    kind: EventKind
    id: str
    body: dict[str, Any]
    ts_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)


class Subscription:
    """A subscriber's bounded queue; iterate it with ``async for``."""

    def __init__(self, hub: EventHub, maxsize: int, kinds: frozenset[EventKind] | None) -> None:
        self._hub = hub
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.kinds = kinds
        self.dropped = 0

    def offer(self, event: Event) -> None:
        """Queues an event, dropping the oldest one when full."""
        if self.kinds is not None and event.kind not in self.kinds:
            return
        if self._queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
            self.dropped += 1
            self._hub.dropped += 1
        self._queue.put_nowait(event)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        reported = 0
        while True:
            event = await self._queue.get()
            if self.dropped != reported:
                reported = self.dropped
                yield Event("dropped", "", {"dropped": reported})
            yield event

    def close(self) -> None:
        """Stops receiving events."""
        self._hub.unsubscribe(self)


class EventHub:
    """Fan-out of events to subscribers."""

    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self.published = 0
        self.dropped = 0

    @property
    def active(self) -> bool:
        """Whether anyone listens (producers skip building events otherwise)."""
        return bool(self._subs)

    def publish(self, event: Event) -> None:
        """Delivers an event to every subscriber without blocking."""
        self.published += 1
        for sub in self._subs:
            sub.offer(event)

    @contextlib.contextmanager
    def subscribe(
        self, maxsize: int = 10_000, kinds: frozenset[EventKind] | None = None
    ) -> Iterator[Subscription]:
        """A subscription for the duration of a ``with`` block."""
        sub = Subscription(self, maxsize, kinds)
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self.unsubscribe(sub)

    def unsubscribe(self, sub: Subscription) -> None:
        """Removes a subscriber (idempotent)."""
        self._subs.discard(sub)

    def __len__(self) -> int:
        return len(self._subs)
