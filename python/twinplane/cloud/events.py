"""The edges' device events in the cloud: stored, served, and written as Kubernetes Events.

Each edge forwards its event log by sequence number (:class:`~twinplane.cloud.wire.Events`);
the cloud keeps only the events of devices the node holds (and of the node's mappers), stores
them in its own file (:meth:`~twinplane.cloud.state.CloudState.put_events`, bounded), and
acknowledges through the batch's sequence number, which its next welcome gives back as the
resume point. ``GET /api/v1/namespaces/{ns}/events`` on the cloud serves them.

With Kubernetes, each device event also becomes a core ``Event`` on its Device, the way
kubelet records them:

- aggregated: the edge keeps one event per (device, type, reason, key) and counts repeats; the
  cloud names the Kubernetes Event after the edge event's id, creates it the first time and
  afterwards patches ``count``, ``lastTimestamp`` and ``message``;
- rate-limited per Device like kubelet's spam filter (a token bucket: a burst of
  :data:`BURST`, then one every :data:`REFILL_S` seconds); what the bucket refuses is counted
  (``dropped``) and still stored in the cloud's own log;
- ``type`` ``Normal`` for ``info``, ``Warning`` otherwise; ``source`` the edge node.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

from twinplane.cloud import wire
from twinplane.cloud.registry import RegistryError

if TYPE_CHECKING:
    from twinplane.cloud.controller import DeviceController, Session

__all__ = ["BURST", "REFILL_S", "CloudEvents", "EventStats", "EventWriter", "kube_event"]

log = logging.getLogger(__name__)

BURST: Final = 25
"""Kubernetes Events a Device may get at once (kubelet's spam filter burst)."""

REFILL_S: Final = 300.0
"""Seconds for one more token once the burst is spent (kubelet's: one per 5 minutes)."""


class EventWriter(Protocol):
    """Where Kubernetes Events go (the Kubernetes registry has one)."""

    async def write_event(self, namespace: str, event: dict[str, Any], *, update: bool) -> None:
        """Creates ``event`` (``update``: merge-patches the one of its name)."""
        ...


@dataclass(slots=True)
class EventStats:
    """What the cloud did with the edges' events."""

    received: int = 0
    stored: int = 0
    refused: int = 0
    kube_written: int = 0
    kube_dropped: int = 0
    kube_failed: int = 0


class _Bucket:
    __slots__ = ("at", "tokens")

    def __init__(self) -> None:
        self.tokens = float(BURST)
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(BURST), self.tokens + (now - self.at) / REFILL_S)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class CloudEvents:
    """Takes the edges' events (see the module doc)."""

    def __init__(self, controller: DeviceController, writer: EventWriter | None) -> None:
        self.controller = controller
        self.writer = writer
        self.stats = EventStats()
        self._buckets: dict[str, _Bucket] = {}
        self._written: dict[str, int] = {}  # Kubernetes Event name → the count it shows

    async def on_events(self, session: Session, message: wire.Events) -> None:
        """Stores a node's batch, writes Kubernetes Events, acknowledges it."""
        self.stats.received += len(message.events)
        mine = [e for e in message.events if self._may_say(session.node, e)]
        self.stats.refused += len(message.events) - len(mine)
        if mine:
            await self.controller.state.put_events(session.node, mine)
            self.stats.stored += len(mine)
            if self.writer is not None:
                for event in mine:
                    await self._to_kubernetes(session.node, event)
        session.post(wire.EventsAck(seq=message.id))

    def _may_say(self, node: str, event: dict[str, Any]) -> bool:
        required = ("id", "seq", "type", "reason", "severity", "namespace", "device", "last_ts_ms")
        if not all(k in event for k in required):
            return False
        if not event["namespace"]:
            return True  # the node's own mapper
        return self.controller.owns(node, f"{event['namespace']}/{event['device']}")

    async def _to_kubernetes(self, node: str, event: dict[str, Any]) -> None:
        assert self.writer is not None  # noqa: S101 - the caller checks
        if not event["namespace"]:
            return  # a mapper has no object in Kubernetes to hang its event on
        name = kube_event_name(event)
        update = name in self._written
        if update and self._written[name] >= int(event.get("count", 1)):
            return  # nothing new (a replayed batch)
        if not update and not self._bucket(event).take():
            self.stats.kube_dropped += 1
            return
        body = kube_event(node, event, self.controller.device_uid(event))
        try:
            await self.writer.write_event(event["namespace"], body, update=update)
        except RegistryError as exc:
            self.stats.kube_failed += 1
            log.warning("could not write Kubernetes Event %s: %s", name, exc)
            return
        self.stats.kube_written += 1
        self._written[name] = int(event.get("count", 1))
        if len(self._written) > 100_000:  # noqa: PLR2004 - bounded memory
            self._written.pop(next(iter(self._written)))

    def _bucket(self, event: dict[str, Any]) -> _Bucket:
        key = f"{event['namespace']}/{event['device']}"
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket()
        return bucket


def kube_event_name(event: dict[str, Any]) -> str:
    """``<device>.<12 hex of the edge event id>``: one Kubernetes Event per edge event."""
    digest = hashlib.sha256(str(event["id"]).encode()).hexdigest()[:12]
    return f"{str(event['device'])[:240]}.{digest}"


def kube_event(node: str, event: dict[str, Any], device_uid: str) -> dict[str, Any]:
    """A core/v1 Event on the Device, from an edge device event."""
    first = _time(int(event.get("first_ts_ms") or event["last_ts_ms"]))
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": kube_event_name(event), "namespace": event["namespace"]},
        "involvedObject": {
            "apiVersion": "devices.kubeedge.io/v1beta1",
            "kind": "Device",
            "namespace": event["namespace"],
            "name": event["device"],
            "uid": device_uid,
        },
        "reason": event["reason"],
        "message": str(event.get("message") or event["reason"])[:1024],
        "type": "Normal" if event["severity"] == "info" else "Warning",
        "count": int(event.get("count", 1)),
        "firstTimestamp": first,
        "lastTimestamp": _time(int(event["last_ts_ms"])),
        "source": {"component": "twinplane-edge", "host": node},
        "reportingComponent": "twinplane.io/edge",
        "reportingInstance": node,
    }


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
