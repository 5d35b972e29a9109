"""The device controller: each node's devices down the edge link, their twins up into DeviceStatus.

Downstream is level-based, as controller-runtime's reconcilers are. Informers keep the Device
and DeviceModel caches; a change queues the object's key on the session of each node it concerns
(the node it is on and the node it left), so a burst of changes to one device collapses into one
pending key; the session's worker compares what the node should hold (the cache) with what it
holds (what it said in its ``hello`` plus what it acknowledged since) and sends the difference:
a model before the first device that needs it, a device's removal before its model's, a device
that moved nodes removed from one and added on the other. Model changes are sent too (KubeEdge's
controller only caches them).

Upstream is **coalesced**. Reports only update :attr:`DeviceController.latest` (the newest twin
values per device) and mark the device dirty; one writer wakes every ``status_interval`` and
writes each dirty device's DeviceStatus once (one merge patch with the whole ``status.twins``
list), however many reports came in between, through
:meth:`~twinplane.cloud.registry.Registry.merge_patch_many`. ``lastOnlineTime`` is rewritten when
the state changes or every ``online_refresh`` seconds, not on every report. A report is
acknowledged to its edge only once every device it carried is written, so a cloud that dies
before writing loses nothing: the edge resends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from twinplane.cloud import wire
from twinplane.cloud.calls import CallController
from twinplane.cloud.events import CloudEvents
from twinplane.cloud.informer import Informer, object_key
from twinplane.cloud.registry import NotFoundError, Registry, RegistryError
from twinplane.cloud.registry.base import GROUP_VERSION
from twinplane.cloud.state import CloudState, DesiredRow
from twinplane.tasks import cancel_and_wait

__all__ = ["ControllerStats", "DeviceController", "Session", "device_status_object"]

log = logging.getLogger(__name__)

_CREATE_CONCURRENCY = 16
"""DeviceStatus creates in flight at once (a first start makes one per Device)."""


def now_ms() -> int:
    """Milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class ControllerStats:
    """Counters for ``/metrics`` and the benchmark."""

    reports: int = 0
    twins_reported: int = 0
    rejected: int = 0
    patches: int = 0
    patch_errors: int = 0
    status_creates: int = 0
    writes: int = 0
    downstream: int = 0


@dataclass(slots=True)
class Twin:
    """The newest value of one twin the cloud holds."""

    type: str
    reported: wire.SideReport | None = None
    desired: wire.SideReport | None = None
    desired_version: wire.Version = field(default_factory=wire.Version)


@dataclass(slots=True)
class Latest:
    """What the cloud holds of one device's status."""

    twins: dict[str, Twin] = field(default_factory=dict)
    state: str = ""
    last_online: str = ""
    written_state: str = ""
    written_online_s: float = 0.0
    reported_ms: int = 0


Send = Callable[[str], Awaitable[None]]


class Session:
    """One connected edge node, as the controller sees it."""

    def __init__(self, node: str, send: Send) -> None:
        self.node = node
        self.send_text = send
        self.sent: dict[tuple[str, str], str] = {}
        self.queue: dict[tuple[str, str], None] = {}
        self.wake = asyncio.Event()
        self.next_id = 1
        self.unacked: dict[int, tuple[str, str]] = {}
        self.synced = False
        self.worker: asyncio.Task[None] | None = None
        self._posting: set[asyncio.Task[None]] = set()

    def enqueue(self, kind: str, key: str) -> None:
        """Queues an object's key for reconciling (a key already queued stays once)."""
        self.queue[(kind, key)] = None
        self.wake.set()

    async def send(self, message: wire.CloudMessage) -> None:
        """Sends one message."""
        await self.send_text(wire.encode(message))

    def post(self, message: wire.CloudMessage) -> None:
        """Sends one message in the background; a connection that closed meanwhile drops it.

        What is dropped is an acknowledgement the edge repeats the report for (at-least-once).
        """
        task = asyncio.get_running_loop().create_task(self._send_quietly(message))
        self._posting.add(task)
        task.add_done_callback(self._posting.discard)

    async def _send_quietly(self, message: wire.CloudMessage) -> None:
        try:
            await self.send(message)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("node %s: %s not sent (%s)", self.node, type(message).__name__, exc)

    def take_id(self) -> int:
        """The id of the next downstream message."""
        self.next_id += 1
        return self.next_id - 1


class DeviceController:
    """Delivers devices to nodes and writes their reported twins into DeviceStatus objects.

    Args:
        registry: Where the objects live.
        state: The cloud's own file (desired versions, uploads).
        status_interval: Seconds between DeviceStatus writes (at most one per device per
            interval).
        online_refresh: Seconds between rewrites of an unchanged ``lastOnlineTime``.
    """

    def __init__(
        self,
        registry: Registry,
        state: CloudState,
        *,
        status_interval: float = 1.0,
        online_refresh: float = 60.0,
    ) -> None:
        self.registry = registry
        self.state = state
        self.status_interval = status_interval
        self.online_refresh = online_refresh
        self.stats = ControllerStats()
        self.devices = Informer(registry, "devices", self._on_device)
        self.models = Informer(registry, "devicemodels", self._on_model)
        self.calls = CallController(registry, self)
        writer = registry if hasattr(registry, "write_event") else None
        self.events = CloudEvents(self, writer)  # type: ignore[arg-type]
        self.sessions: dict[str, Session] = {}
        self.latest: dict[str, Latest] = {}
        self._node_of: dict[str, str] = {}
        self._by_node: dict[str, set[str]] = {}
        self._dirty: dict[str, None] = {}
        self._pending: dict[str, tuple[Session, set[str]]] = {}
        self._msgs_of: dict[str, set[str]] = {}
        self._has_status: set[str] = set()
        self._desired_dirty: list[tuple[str, str, DesiredRow]] = []
        self._desired_at: dict[tuple[str, str], int] = {}
        self._writer: asyncio.Task[None] | None = None
        self._wake_writer = asyncio.Event()
        self._stopping = False

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Loads the DeviceStatus objects, then starts the informers and the status writer."""
        items, _ = await self.registry.list("devicestatuses")
        for obj in items:
            key = object_key(obj)
            self._has_status.add(key)
            self.latest[key] = _latest_from_status(obj)
        self.models.start()
        await self.models.synced.wait()
        self.devices.start()
        await self.devices.synced.wait()
        await self.calls.start()
        self._writer = asyncio.create_task(self._write_loop(), name="status writer")

    async def stop(self) -> None:
        """Stops the informers, the sessions' workers and the writer (after a last write)."""
        self._stopping = True
        await self.calls.stop()
        await self.devices.stop()
        await self.models.stop()
        for session in list(self.sessions.values()):
            await self.detach(session)
        if self._writer is not None:
            self._wake_writer.set()
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        with contextlib.suppress(RegistryError, OSError):
            await self._write_dirty()

    # -- informer handlers ------------------------------------------------------------------

    def _on_model(self, kind: str, obj: dict[str, Any]) -> None:
        key = object_key(obj)
        for node, session in self.sessions.items():
            if any(self._model_key(d) == key for d in self._by_node.get(node, ())):
                session.enqueue("DeviceModel", key)

    def _on_device(self, kind: str, obj: dict[str, Any]) -> None:
        key = object_key(obj)
        old_node = self._node_of.get(key)
        new_node = "" if kind == "DELETED" else str(obj.get("spec", {}).get("nodeName") or "")
        if old_node:
            self._by_node.get(old_node, set()).discard(key)
        if new_node:
            self._node_of[key] = new_node
            self._by_node.setdefault(new_node, set()).add(key)
        else:
            self._node_of.pop(key, None)
        for node in {old_node or "", new_node} - {""}:
            session = self.sessions.get(node)
            if session is not None:
                session.enqueue("Device", key)
        if kind == "DELETED":
            self.latest.pop(key, None)
            self._dirty.pop(key, None)
            asyncio.get_running_loop().create_task(self._forget(key, obj))
        else:
            self._desired_from_spec(key, obj)
            if key not in self._has_status:
                self._dirty[key] = None  # its DeviceStatus is made by the next write
                self._wake_writer.set()

    async def _forget(self, key: str, obj: dict[str, Any]) -> None:
        """A deleted device: its desired versions and its DeviceStatus go too.

        Kubernetes' garbage collector would delete the DeviceStatus (its owner is gone); the
        controller does it itself, since no collector runs without kube-controller-manager.
        """
        await self.state.forget_device(key)
        self._has_status.discard(key)
        meta = obj.get("metadata", {})
        with contextlib.suppress(NotFoundError):
            try:
                await self.registry.delete(
                    "devicestatuses", meta.get("namespace") or "default", meta["name"]
                )
            except RegistryError as exc:
                log.warning("could not delete the DeviceStatus of %s: %s", key, exc)

    def observe_device(self, obj: dict[str, Any]) -> None:
        """Takes a Device's desired values now (the REST API wrote its spec; the watch follows)."""
        self._desired_from_spec(object_key(obj), obj)

    def desired_seen(self, key: str, prop: str) -> int:
        """When (ms) this controller first saw the spec's current desired value of a twin."""
        return self._desired_at.get((key, prop), 0)

    def _desired_from_spec(self, key: str, obj: dict[str, Any]) -> None:
        """Bumps the cloud version of each desired value the spec changed."""
        rows = self.state.desired.get(key, {})
        for prop in obj.get("spec", {}).get("properties") or ():
            desired = prop.get("desired") or {}
            value = desired.get("value")
            name = prop.get("name")
            if not name or value is None:
                continue
            row = rows.get(name)
            if row is None:
                row = DesiredRow(None, None, 0, 0)
            if row.spec_value == str(value):
                continue
            row = DesiredRow(str(value), str(value), row.cloud + 1, row.edge)
            self._desired_at[(key, name)] = now_ms()
            self._desired_dirty.append((key, name, row))
            self.state.desired.setdefault(key, {})[name] = row
        if self._desired_dirty:
            self._wake_writer.set()

    @staticmethod
    def _model_key_of(obj: dict[str, Any]) -> str:
        meta = obj.get("metadata", {})
        ref = obj.get("spec", {}).get("deviceModelRef") or {}
        return f"{meta.get('namespace') or 'default'}/{ref.get('name', '')}"

    def _model_key(self, device_key: str) -> str:
        obj = self.devices.cache.get(device_key)
        return "" if obj is None else self._model_key_of(obj)

    # -- sessions (downstream) --------------------------------------------------------------

    async def attach(self, node: str, send: Send, hello: wire.Hello) -> Session:
        """A node connected: resyncs it and starts its worker; returns the session.

        A session of the same node that is still attached is detached first (the newest
        connection wins).
        """
        old = self.sessions.get(node)
        if old is not None:
            await self.detach(old)
        session = Session(node, send)
        session.sent = {("Device", k): v for k, v in hello.devices.items()}
        session.sent.update({("DeviceModel", k): v for k, v in hello.models.items()})
        self.sessions[node] = session
        reported = {
            k: self.latest[k].reported_ms for k in self._by_node.get(node, ()) if k in self.latest
        }
        events_seq = await self.state.events_seq(node)
        await session.send(wire.Welcome(node=node, reported=reported, events_seq=events_seq))
        for kind, key in list(session.sent):
            session.enqueue(kind, key)
        for key in sorted(self._by_node.get(node, ())):
            session.enqueue("Device", key)
        session.worker = asyncio.create_task(self._work(session), name=f"session {node}")
        return session

    async def detach(self, session: Session) -> None:
        """A node's link ended: stop its worker; its unacknowledged reports are resent later."""
        if self.sessions.get(session.node) is session:
            del self.sessions[session.node]
        if session.worker is not None:
            await cancel_and_wait(session.worker)  # a failure of its own: the link says why
        for msg_id in [m for m, (s, _) in self._pending.items() if s is session]:
            del self._pending[msg_id]

    async def _work(self, session: Session) -> None:
        while True:
            await session.wake.wait()
            session.wake.clear()
            while session.queue:
                kind, key = next(iter(session.queue))
                del session.queue[(kind, key)]
                if kind == "Device":
                    await self._reconcile_device(session, key)
                else:
                    await self._reconcile_model(session, key)
            if not session.synced:
                session.synced = True
                devices = sorted(self._by_node.get(session.node, ()))
                await session.send(wire.Synced(id=session.take_id(), devices=devices))
                await self._send_all_desired(session, devices)
                await self.calls.on_attach(session)  # the edge has every device by now

    async def _send_all_desired(self, session: Session, devices: Iterable[str]) -> None:
        for key in devices:
            rows = self.state.desired.get(key)
            if rows:
                twins = {p: _desired_sync(r) for p, r in rows.items()}
                await session.send(
                    wire.DesiredUpdate(id=session.take_id(), device=key, twins=twins)
                )

    def _on_node(self, session: Session, key: str) -> dict[str, Any] | None:
        obj = self.devices.cache.get(key)
        if obj is None or (obj.get("spec", {}).get("nodeName") or "") != session.node:
            return None
        return obj

    async def _reconcile_device(self, session: Session, key: str) -> None:
        obj = self._on_node(session, key)
        sent_key = ("Device", key)
        if obj is None:
            if sent_key in session.sent:
                ns, name = key.split("/", 1)
                await self._send(session, wire.Remove(id=0, kind="Device", namespace=ns, name=name))
                del session.sent[sent_key]
            # the models only it needed on this node go too
            for _kind, model_key in [k for k in session.sent if k[0] == "DeviceModel"]:
                if not self._model_used(session, model_key):
                    await self._reconcile_model(session, model_key)
            return
        model_key = self._model_key_of(obj)
        model = self.models.cache.get(model_key)
        if model is None:
            return  # sent when its model appears (the model's event queues its devices)
        await self._reconcile_model(session, model_key)
        version = _rv(obj)
        if session.sent.get(sent_key) != version:
            rows = self.state.desired.get(key, {})
            desired = {p: _desired_sync(r) for p, r in rows.items()}
            upsert = wire.Upsert(id=0, kind="Device", object=_deliverable(obj), desired=desired)
            await self._send(session, upsert)
            session.sent[sent_key] = version

    def _model_used(self, session: Session, model_key: str) -> bool:
        return any(
            self._model_key(d) == model_key and self._on_node(session, d) is not None
            for d in self._by_node.get(session.node, ())
        )

    async def _reconcile_model(self, session: Session, model_key: str) -> None:
        sent_key = ("DeviceModel", model_key)
        model = self.models.cache.get(model_key)
        if model is None or not self._model_used(session, model_key):
            if sent_key in session.sent and not self._model_used(session, model_key):
                ns, name = model_key.split("/", 1)
                await self._send(
                    session, wire.Remove(id=0, kind="DeviceModel", namespace=ns, name=name)
                )
                del session.sent[sent_key]
            return
        version = _rv(model)
        if session.sent.get(sent_key) != version:
            await self._send(
                session, wire.Upsert(id=0, kind="DeviceModel", object=_deliverable(model))
            )
            session.sent[sent_key] = version

    async def _send(self, session: Session, message: wire.Upsert | wire.Remove) -> None:
        import msgspec  # noqa: PLC0415 - only to renumber a frozen struct

        msg_id = session.take_id()
        message = msgspec.structs.replace(message, id=msg_id)
        session.unacked[msg_id] = (message.kind, type(message).__name__)
        self.stats.downstream += 1
        await session.send(message)

    def on_ack(self, session: Session, ack: wire.Ack) -> None:
        """The edge applied downstream messages (``errors``: those it refused, logged)."""
        for msg_id in ack.ids:
            session.unacked.pop(msg_id, None)
        for failed, error in ack.errors.items():
            log.warning("node %s refused message %s: %s", session.node, failed, error)

    # -- upstream ---------------------------------------------------------------------------

    def device_uid(self, event: dict[str, Any]) -> str:
        """The uid of an event's Device (``""`` when it is not cached)."""
        obj = self.devices.cache.get(f"{event['namespace']}/{event['device']}") or {}
        return str(obj.get("metadata", {}).get("uid", ""))

    def node_of(self, device_key: str) -> str:
        """The node a device is on (``""`` if none, or no such device)."""
        return self._node_of.get(device_key, "")

    def owns(self, node: str, device_key: str) -> bool:
        """Whether ``device_key`` is assigned to ``node`` (a node may only report its own)."""
        return self._node_of.get(device_key) == node

    async def on_report(self, session: Session, report: wire.Report) -> None:
        """Takes a report's twins and states; acknowledged once written (:meth:`_write_dirty`)."""
        self.stats.reports += 1
        rejected: dict[str, str] = {}
        waiting: set[str] = set()
        desired_rows: list[tuple[str, str, DesiredRow]] = []
        for dev in report.devices:
            if not self.owns(session.node, dev.device):
                rejected[dev.device] = f"device {dev.device} is not assigned to node {session.node}"
                self.stats.rejected += 1
                continue
            latest = self.latest.setdefault(dev.device, Latest())
            if self._merge(dev.device, latest, dev, desired_rows):
                self._dirty[dev.device] = None
                self._msgs_of.setdefault(dev.device, set()).add(report.id)
                waiting.add(dev.device)
        if desired_rows:
            self._desired_dirty.extend(desired_rows)
        if rejected:
            log.warning(
                "node %s reported %d devices it does not own (first: %s)",
                session.node,
                len(rejected),
                next(iter(rejected.values())),
            )
        if waiting:
            self._pending[report.id] = (session, waiting)
            self._wake_writer.set()
            if rejected:
                await session.send(wire.ReportAck(ids=[], rejected=rejected))
        else:
            await session.send(wire.ReportAck(ids=[report.id], rejected=rejected))

    def _merge(
        self,
        key: str,
        latest: Latest,
        dev: wire.DeviceReport,
        desired_rows: list[tuple[str, str, DesiredRow]],
    ) -> bool:
        """Takes what is newer than what the cloud holds; whether anything changed."""
        changed = False
        for prop, twin in dev.twins.items():
            self.stats.twins_reported += 1
            held = latest.twins.get(prop)
            if held is None:
                held = latest.twins[prop] = Twin(twin.type)
                changed = True
            if twin.reported is not None and (
                held.reported is None or twin.reported.timestamp >= held.reported.timestamp
            ):
                if held.reported != twin.reported:
                    changed = True
                held.reported = twin.reported
                latest.reported_ms = max(latest.reported_ms, twin.reported.timestamp)
            if twin.desired is not None and (
                held.desired is None or twin.desired.timestamp >= held.desired.timestamp
            ):
                if held.desired != twin.desired:
                    changed = True
                held.desired = twin.desired
                held.desired_version = twin.desired_version
                self._converge_desired(
                    key, prop, twin.desired.value, twin.desired_version, desired_rows
                )
        if dev.state is not None and dev.state != latest.state:
            latest.state = dev.state
            changed = True
        if dev.last_online is not None and dev.last_online != latest.last_online:
            latest.last_online = dev.last_online
            if time.monotonic() - latest.written_online_s >= self.online_refresh:
                changed = True
        return changed

    def _converge_desired(
        self,
        key: str,
        prop: str,
        value: str,
        version: wire.Version,
        rows: list[tuple[str, str, DesiredRow]],
    ) -> None:
        """The edge holds a desired value: the cloud takes it if the edge changed it unseen.

        An edge counter above the cloud's means a change on the edge the cloud had not seen
        (the edge refused the cloud's concurrent one by KubeEdge's rule): the cloud takes the
        edge's value, and the higher of each counter, so its next spec change is accepted.
        """
        row = self.state.desired.get(key, {}).get(prop)
        held = wire.Version(row.cloud, row.edge) if row is not None else wire.Version()
        if row is not None and version.edge <= held.edge and not _newer(version, held):
            return
        merged = wire.Version(max(version.cloud, held.cloud), max(version.edge, held.edge))
        spec_value = row.spec_value if row is not None else None
        new = DesiredRow(spec_value, value, merged.cloud, merged.edge)
        self.state.desired.setdefault(key, {})[prop] = new
        rows.append((key, prop, new))

    async def _write_loop(self) -> None:
        while True:
            await self._wake_writer.wait()
            self._wake_writer.clear()
            started = time.monotonic()
            try:
                await self._write_dirty()
            except Exception:  # a registry outage: keep the dirty set, try again
                log.exception("DeviceStatus write failed; retrying")
            # at most one write per interval: a burst costs one patch per device
            await asyncio.sleep(max(0.0, self.status_interval - (time.monotonic() - started)))

    async def _write_dirty(self) -> None:
        if self._desired_dirty:
            rows, self._desired_dirty = self._desired_dirty, []
            await self.state.put_desired(rows)
        if not self._dirty:
            return
        keys = list(self._dirty)
        self._dirty.clear()
        missing = [k for k in keys if k not in self._has_status and k in self.devices.cache]
        if missing:  # a bounded number at a time: a first start creates one per device
            gate = asyncio.Semaphore(_CREATE_CONCURRENCY)

            async def create(key: str) -> None:
                async with gate:
                    await self._create_status(key)

            await asyncio.gather(*(create(k) for k in missing))
        patches, written = self._patches(keys)
        if not patches:
            return
        self.stats.writes += 1
        results = await self.registry.merge_patch_many("devicestatuses", patches)
        ok: list[str] = []
        for key, result in zip(written, results, strict=True):
            if isinstance(result, RegistryError):
                self.stats.patch_errors += 1
                if isinstance(result, NotFoundError):
                    self._has_status.discard(key)
                log.warning("DeviceStatus %s: %s", key, result)
                self._dirty[key] = None  # the next interval tries again
            else:
                self.stats.patches += 1
                ok.append(key)
        self._done(ok)
        if self._dirty:
            self._wake_writer.set()

    def _patches(self, keys: list[str]) -> tuple[list[tuple[str, str, dict[str, Any]]], list[str]]:
        """The merge patches of the dirty devices that have something to write, and their keys."""
        patches: list[tuple[str, str, dict[str, Any]]] = []
        written: list[str] = []
        now = time.monotonic()
        for key in keys:
            latest = self.latest.get(key)
            if key not in self.devices.cache:
                self._done([key])  # deleted meanwhile: nothing to write
                continue
            if latest is None or key not in self._has_status:
                continue
            if not latest.twins and not latest.state:
                self._done([key])  # a new, empty DeviceStatus: nothing to patch yet
                continue
            ns, name = key.split("/", 1)
            patches.append((ns, name, self._patch(key, latest, now)))
            written.append(key)
        return patches, written

    def _patch(self, key: str, latest: Latest, now: float) -> dict[str, Any]:
        device = self.devices.cache.get(key, {})
        props = [p.get("name") for p in device.get("spec", {}).get("properties") or ()]
        names = [p for p in props if p in latest.twins] or list(latest.twins)
        twins = []
        for name in names:
            twin = latest.twins[name]
            entry: dict[str, Any] = {"propertyName": name}
            if twin.reported is not None:
                entry["reported"] = _status_value(twin.reported, twin.type)
            if twin.desired is not None:
                entry["observedDesired"] = _status_value(twin.desired, twin.type)
            twins.append(entry)
        status: dict[str, Any] = {"twins": twins}
        if latest.state:
            status["state"] = latest.state
        refresh = now - latest.written_online_s >= self.online_refresh
        if latest.last_online and (latest.state != latest.written_state or refresh):
            status["lastOnlineTime"] = latest.last_online
            latest.written_online_s = now
        latest.written_state = latest.state
        return {"status": status}

    async def _create_status(self, key: str) -> None:
        device = self.devices.cache[key]
        try:
            await self.registry.create("devicestatuses", device_status_object(device))
            self.stats.status_creates += 1
        except RegistryError as exc:
            if exc.status != 409:  # noqa: PLR2004 - it exists already: fine
                log.warning("could not create the DeviceStatus of %s: %s", key, exc)
                self._dirty[key] = None
                return
        self._has_status.add(key)
        self.latest.setdefault(key, Latest())

    def _done(self, keys: Iterable[str]) -> None:
        """Devices written: acknowledge every report now wholly written."""
        for key in keys:
            for msg_id in self._msgs_of.pop(key, ()):
                pending = self._pending.get(msg_id)
                if pending is None:
                    continue
                session, waiting = pending
                waiting.discard(key)
                if not waiting:
                    del self._pending[msg_id]
                    if self.sessions.get(session.node) is session:
                        session.post(wire.ReportAck(ids=[msg_id]))


def device_status_object(device: dict[str, Any]) -> dict[str, Any]:
    """A new, empty DeviceStatus for ``device``, owned by it (a controller ownerReference)."""
    meta = device.get("metadata", {})
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "DeviceStatus",
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace") or "default",
            "ownerReferences": [
                {
                    "apiVersion": GROUP_VERSION,
                    "kind": "Device",
                    "name": meta["name"],
                    "uid": meta.get("uid", ""),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {},
        "status": {"twins": []},
    }


def _deliverable(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as the edge gets it: without managedFields, marked as the cloud's."""
    meta = dict(obj.get("metadata", {}))
    meta.pop("managedFields", None)
    annotations = dict(meta.get("annotations") or {})
    annotations[wire.SOURCE_ANNOTATION] = "cloud"
    meta["annotations"] = annotations
    return {**obj, "metadata": meta}


def _status_value(side: wire.SideReport, type_: str) -> dict[str, Any]:
    return {"value": side.value, "metadata": {"timestamp": str(side.timestamp), "type": type_}}


def _desired_sync(row: DesiredRow) -> wire.DesiredSync:
    return wire.DesiredSync(value=row.value, version=wire.Version(row.cloud, row.edge))


def _not_older(a: wire.Version, b: wire.Version) -> bool:
    return a.cloud >= b.cloud and a.edge >= b.edge


def _newer(a: wire.Version, b: wire.Version) -> bool:
    return _not_older(a, b) and a != b


def _rv(obj: dict[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("resourceVersion", ""))


def _latest_from_status(obj: dict[str, Any]) -> Latest:
    """What a stored DeviceStatus says (after a cloud restart)."""
    latest = Latest()
    status = obj.get("status") or {}
    for entry in status.get("twins") or ():
        name = entry.get("propertyName")
        if not name:
            continue
        twin = Twin(type="")
        for side in ("reported", "observedDesired"):
            value = entry.get(side)
            if not isinstance(value, dict) or "value" not in value:
                continue
            meta = value.get("metadata") or {}
            twin.type = str(meta.get("type", twin.type))
            try:
                ts = int(meta.get("timestamp", 0))
            except (TypeError, ValueError):
                ts = 0
            report = wire.SideReport(str(value["value"]), ts)
            if side == "reported":
                twin.reported = report
                latest.reported_ms = max(latest.reported_ms, ts)
            else:
                twin.desired = report
        latest.twins[name] = twin
    latest.state = latest.written_state = str(status.get("state") or "")
    latest.last_online = str(status.get("lastOnlineTime") or "")
    return latest
