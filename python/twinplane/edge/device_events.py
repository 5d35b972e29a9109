"""The edge's typed device events: one entry point, aggregation, and the bounded log writer.

Every producer (device states, mappers, desired writes, communication errors, alarms, calls)
publishes through :meth:`EdgeEvents.emit`, which never blocks and never raises:

1. the event is *aggregated* like kubelet's: the same ``(namespace, device, type, reason,
   key)`` (``key`` defaults to the message) within ``window_s`` of its last occurrence adds to
   the ``count`` and ``last_ts_ms`` of one event (same ``id``, a new ``seq``) instead of making
   a new one, so a device failing every poll is one event with a growing count;
2. it goes to the event hub (SSE clients; each has its own bounded queue) and to the listeners
   (the MQTT bridge, which queues it boundedly itself);
3. it is queued for the log: a bounded map of pending rows keyed by event id (a burst on one
   event is one row), written by one task every ``flush_interval`` seconds in one transaction,
   which also prunes the log to ``max_count`` rows and ``max_age_s``. When the map is full a
   new event is not stored and :attr:`EventCounters.log_dropped` counts it: a slow disk costs
   log rows, never ingestion.

Sequence numbers grow for the life of the database (SQLite's AUTOINCREMENT high-water mark,
which survives pruning), so a reader resuming with ``after_seq`` never misses nor repeats one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from twinplane.edge.events import (
    EVENT_TYPES,
    SEVERITIES,
    DeviceEvent,
    Event,
    EventHub,
    EventType,
    Severity,
)
from twinplane.edge.store import AsyncEdgeStore
from twinplane.edge.store.connection import now_ms
from twinplane.edge.store.device_events import EventQuery, StoredEvent

__all__ = [
    "EVENT_LOG_MAX_AGE_S",
    "EVENT_LOG_MAX_COUNT",
    "EdgeEvents",
    "EventCounters",
    "EventListener",
    "from_stored",
]

log = logging.getLogger(__name__)

EVENT_LOG_MAX_COUNT: Final = 10_000
"""Events the log keeps unless told otherwise (``twinplane edge --event-log-max``)."""

EVENT_LOG_MAX_AGE_S: Final = 7 * 86_400.0
"""Seconds an event stays in the log after it last happened (``--event-log-max-age``)."""

AGGREGATION_WINDOW_S: Final = 600.0
"""An event that recurs within this many seconds is counted, not repeated (kubelet's 10 min)."""

_RECENT_MAX: Final = 4096  # aggregation keys remembered (least recently seen forgotten first)
_ENCODER: Final = msgspec.json.Encoder()
_DECODER: Final = msgspec.json.Decoder(dict[str, Any])

EventListener = Callable[[DeviceEvent], None]
"""Called with every event emitted (must not block; the MQTT bridge queues it)."""

_Key = tuple[str, str, str, str, str]


@dataclass(slots=True)
class EventCounters:
    """What :class:`EdgeEvents` did, for ``/metrics``.

    Attributes:
        published: Events emitted (an aggregated repeat counts once per emit).
        stored: Event rows written to the log.
        log_dropped: Events not stored because the log's queue was full (or the write failed).
        pruned: Rows removed by the count and age bounds.
        invalid: Emits refused (unknown type or severity, bad count); logged, not raised.
    """

    published: int = 0
    stored: int = 0
    log_dropped: int = 0
    pruned: int = 0
    invalid: int = 0


class EdgeEvents:
    """The edge's device events: :meth:`emit` and the log behind it.

    Args:
        hub: Where SSE clients subscribe.
        store: The edge store holding the log (``None``: no log, events only go live).
        max_count: Rows the log keeps.
        max_age_s: Seconds a row is kept after its ``last_ts_ms``.
        window_s: The aggregation window.
        queue_size: Distinct events waiting for the log before new ones are dropped.
        flush_interval: Seconds between log writes.
    """

    def __init__(  # noqa: PLR0913 - the collaborators, then keyword-only settings
        self,
        hub: EventHub,
        store: AsyncEdgeStore | None = None,
        *,
        max_count: int = EVENT_LOG_MAX_COUNT,
        max_age_s: float = EVENT_LOG_MAX_AGE_S,
        window_s: float = AGGREGATION_WINDOW_S,
        queue_size: int = 10_000,
        flush_interval: float = 0.2,
    ) -> None:
        if max_count < 1 or max_age_s <= 0 or queue_size < 1:
            raise ValueError("event log bounds must be positive")
        self.hub = hub
        self.store = store
        self.max_count = max_count
        self.max_age_s = max_age_s
        self.window_ms = int(window_s * 1000)
        self.queue_size = queue_size
        self.flush_interval = flush_interval
        self.counters = EventCounters()
        self._listeners: list[EventListener] = []
        self._recent: OrderedDict[_Key, DeviceEvent] = OrderedDict()
        self._pending: dict[str, DeviceEvent] = {}
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._seq = 0

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Resumes the sequence from the log and starts the log writer."""
        if self.store is not None:
            self._seq = max(self._seq, await self.store.last_event_seq())
            self._writer = asyncio.create_task(self._write_loop(), name="event log writer")

    async def stop(self) -> None:
        """Writes what is pending and stops the writer."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            await self.flush()

    @property
    def pending(self) -> int:
        """Events waiting for the log."""
        return len(self._pending)

    @property
    def last_seq(self) -> int:
        """The last sequence number given."""
        return self._seq

    def add_listener(self, listener: EventListener) -> None:
        """Calls ``listener(event)`` for every event emitted (must not block)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: EventListener) -> None:
        """Stops calling ``listener`` (no error if it was not registered)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    # -- the entry point ------------------------------------------------------------------

    def emit(  # noqa: PLR0913 - the event's fields, keyword-only
        self,
        *,
        type: EventType,  # noqa: A002 - the field's name in the model
        reason: str,
        severity: Severity = "info",
        namespace: str = "",
        device: str = "",
        message: str = "",
        body: Mapping[str, Any] | None = None,
        count: int = 1,
        key: str | None = None,
        ts_ms: int | None = None,
    ) -> DeviceEvent | None:
        """Publishes one device event; never blocks, never raises.

        Args:
            type: ``state``, ``alarm``, ``comm``, ``call``, ``write``, ``mapper`` or ``upgrade``.
            reason: CamelCase (``DeviceOffline``, ``CommunicationError``, ...).
            severity: ``info``, ``warning`` or ``critical``.
            namespace: The device's namespace (empty for a mapper event).
            device: The device's name (the mapper's name for a mapper event).
            message: For people; also the aggregation key unless ``key`` is given.
            body: Details (a JSON object; copied).
            count: Occurrences this emit stands for (a mapper's count of failed polls).
            key: What tells two events with the same reason apart for aggregation (e.g. the
                property), when the message carries changing numbers.
            ts_ms: When it happened (now when not given).

        Returns:
            The event as published (with its id, seq and count), or ``None`` when refused
            (unknown type or severity: logged and counted in ``invalid``).
        """
        try:
            return self._emit(
                type_=type,
                reason=reason,
                severity=severity,
                namespace=namespace,
                device=device,
                message=message,
                body=body,
                count=count,
                key=key,
                ts_ms=ts_ms,
            )
        except Exception:  # a producer must never fail because of an event
            self.counters.invalid += 1
            log.exception("device event refused", extra={"reason": reason, "device": device})
            return None

    def _emit(  # noqa: PLR0913 - emit's arguments
        self,
        *,
        type_: str,
        reason: str,
        severity: str,
        namespace: str,
        device: str,
        message: str,
        body: Mapping[str, Any] | None,
        count: int,
        key: str | None,
        ts_ms: int | None,
    ) -> DeviceEvent | None:
        if type_ not in EVENT_TYPES or severity not in SEVERITIES or count < 1 or not reason:
            self.counters.invalid += 1
            log.warning(
                "device event refused: type %r, severity %r, reason %r, count %r",
                type_,
                severity,
                reason,
                count,
            )
            return None
        now = now_ms() if ts_ms is None else ts_ms
        agg: _Key = (namespace, device, type_, reason, message if key is None else key)
        self._seq += 1
        old = self._recent.pop(agg, None)
        details = dict(body) if body is not None else {}
        if old is not None and now - old.last_ts_ms <= self.window_ms:
            event = msgspec.structs.replace(
                old,
                seq=self._seq,
                severity=severity,
                message=message,
                count=old.count + count,
                last_ts_ms=max(now, old.last_ts_ms),
                body=details,
            )
        else:
            event = DeviceEvent(
                id=uuid.uuid4().hex,
                seq=self._seq,
                type=type_,  # type: ignore[arg-type]
                reason=reason,
                severity=severity,  # type: ignore[arg-type]
                namespace=namespace,
                device=device,
                message=message,
                count=count,
                first_ts_ms=now,
                last_ts_ms=now,
                body=details,
            )
        self._recent[agg] = event
        if len(self._recent) > _RECENT_MAX:
            self._recent.popitem(last=False)
        self.counters.published += 1
        self._queue(event)
        if self.hub.active:
            self.hub.publish(Event("event", event.object_id, event.to_json(), event.last_ts_ms))
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a listener bug must not fail the producer
                log.exception("event listener failed")
        return event

    # -- the log --------------------------------------------------------------------------

    def _queue(self, event: DeviceEvent) -> None:
        if self.store is None:
            return
        if event.id not in self._pending and len(self._pending) >= self.queue_size:
            self.counters.log_dropped += 1
            return
        self._pending[event.id] = event
        self._wake.set()

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.flush_interval)  # gather a batch
            await self.flush()

    async def flush(self) -> None:
        """Writes the pending events and prunes the log (the writer calls it; tests may)."""
        self._wake.clear()
        if self.store is None or not self._pending:
            return
        batch, self._pending = self._pending, {}
        rows = [to_stored(e) for e in batch.values()]
        min_ts = now_ms() - int(self.max_age_s * 1000)
        try:
            pruned = await self.store.put_events(rows, max_count=self.max_count, min_ts_ms=min_ts)
        except Exception:  # the store logs its own state; the events are lost, and counted
            self.counters.log_dropped += len(rows)
            log.exception("event log write failed", extra={"events": len(rows)})
            return
        self.counters.stored += len(rows)
        self.counters.pruned += pruned

    async def query(self, query: EventQuery) -> list[DeviceEvent]:
        """Events of the log matching ``query`` (see :meth:`EdgeStore.list_events`)."""
        if self.store is None:
            return []
        return [from_stored(row) for row in await self.store.list_events(query)]


def to_stored(event: DeviceEvent) -> StoredEvent:
    """An event as a log row."""
    return StoredEvent(
        seq=event.seq,
        id=event.id,
        namespace=event.namespace,
        device=event.device,
        type=event.type,
        reason=event.reason,
        severity=event.severity,
        message=event.message,
        count=event.count,
        first_ts_ms=event.first_ts_ms,
        last_ts_ms=event.last_ts_ms,
        body=_ENCODER.encode(event.body).decode(),
    )


def from_stored(row: StoredEvent) -> DeviceEvent:
    """A log row as an event."""
    return DeviceEvent(
        id=row.id,
        seq=row.seq,
        type=row.type,  # type: ignore[arg-type]
        reason=row.reason,
        severity=row.severity,  # type: ignore[arg-type]
        namespace=row.namespace,
        device=row.device,
        message=row.message,
        count=row.count,
        first_ts_ms=row.first_ts_ms,
        last_ts_ms=row.last_ts_ms,
        body=_DECODER.decode(row.body),
    )
