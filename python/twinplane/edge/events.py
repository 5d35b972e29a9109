"""An in-process event hub: twin, state, lifecycle and device events for SSE clients and bridges.

``event`` events carry a typed :class:`DeviceEvent` (:mod:`twinplane.edge.device_events`
publishes them: the one entry point is :meth:`EdgeEvents.emit
<twinplane.edge.device_events.EdgeEvents.emit>`).

Publishing never blocks the hot path: each subscriber has a bounded queue, and a subscriber
that falls behind loses its *oldest* events, counted in ``Subscription.dropped`` (and reported
to it by a ``dropped`` event), so a slow browser tab never slows device ingestion.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

import msgspec

EventKind = Literal["twin", "state", "lifecycle", "event", "call", "dropped"]

EventType = Literal["state", "alarm", "comm", "call", "write", "mapper", "upgrade"]
"""What a device event is about."""

Severity = Literal["info", "warning", "critical"]
"""How much a device event matters."""

EVENT_TYPES: Final[frozenset[str]] = frozenset(get_args(EventType))
SEVERITIES: Final[frozenset[str]] = frozenset(get_args(Severity))


class DeviceEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One typed device event, as stored in the log and sent on SSE and MQTT.

    Attributes:
        id: Stable identity; an aggregated event keeps it while its ``count`` grows.
        seq: Position in the edge's log, reassigned each time the event changes (so a reader
            resuming from a sequence number sees every change).
        type: What the event is about.
        reason: CamelCase, Kubernetes' style (``DeviceOffline``, ``CommunicationError``, ...).
        severity: ``info``, ``warning`` or ``critical``.
        namespace: The device's namespace (empty for a mapper).
        device: The device's name (a mapper's name for ``type="mapper"``).
        message: For people.
        count: How many times it happened in the aggregation window.
        first_ts_ms: When it first happened (ms since the epoch).
        last_ts_ms: When it last happened.
        body: Details, a JSON object.
    """

    id: str
    seq: int
    type: EventType
    reason: str
    severity: Severity
    namespace: str
    device: str
    message: str
    count: int
    first_ts_ms: int
    last_ts_ms: int
    body: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def object_id(self) -> str:
        """``<namespace>/<device>`` (the mapper's name for a mapper event)."""
        return f"{self.namespace}/{self.device}" if self.namespace else self.device

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON object (the wire form of the log, SSE and MQTT)."""
        return msgspec.structs.asdict(self)


@dataclass(frozen=True, slots=True)
class Event:
    """One event: a kind, a device (or object) id, a JSON-able body and a timestamp (ms)."""

    kind: EventKind
    id: str
    body: dict[str, Any]
    ts_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)


class Subscription:
    """A subscriber's bounded queue; iterate it with ``async for``."""

    def __init__(
        self,
        hub: EventHub,
        maxsize: int,
        kinds: frozenset[EventKind] | None,
        accept: Callable[[Event], bool] | None = None,
    ) -> None:
        self._hub = hub
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.kinds = kinds
        self.accept = accept
        self.dropped = 0

    def offer(self, event: Event) -> None:
        """Queues an event, dropping the oldest one when full."""
        if self.kinds is not None and event.kind not in self.kinds:
            return
        if self.accept is not None and not self.accept(event):
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
        self,
        maxsize: int = 10_000,
        kinds: frozenset[EventKind] | None = None,
        accept: Callable[[Event], bool] | None = None,
    ) -> Iterator[Subscription]:
        """A subscription for the duration of a ``with`` block.

        Args:
            maxsize: Events queued before the oldest are dropped.
            kinds: Only these kinds (every kind when ``None``).
            accept: Only the events it returns true for (called on the publisher's path: it
                must be cheap and must not raise).
        """
        sub = Subscription(self, maxsize, kinds, accept)
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
