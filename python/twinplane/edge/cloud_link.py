"""The edge's link to ``twinplane cloud``: devices down, twins up, through outages.

The edge never waits for the cloud. It samples, stores and serves twins and takes local
desired values whether the link is up or not (edge autonomy); the link only watches.

Upstream. Every twin or state change marks its device in memory; every ``flush_interval`` the
marks go into the ``cloud_outbox`` table (one transaction), coalesced per device
(:mod:`twinplane.edge.store.cloud_outbox`), and only then are they sent. A report carries the
device's newest values read at send time; the outbox row is cleared when the cloud acknowledges
it (after writing it into its registry), so delivery is at-least-once and a replay is harmless
(the cloud keeps the newer of two values). On (re)connect, the devices already pending are the
**backlog**: drained oldest first at ``drain_rate`` devices per second, while devices that change
after the connect go out at once (the **live** lane). The cloud's :class:`~twinplane.cloud.wire.
Welcome` says the newest reported timestamp it holds per device; a device whose twins are newer
is marked whole, so a mark lost to a crash between a change and its flush is found again.

Downstream. The cloud sends the objects that differ from what this edge said it holds
(:class:`~twinplane.cloud.wire.Hello`) and then the whole list (``synced``): cloud-delivered
devices the cloud no longer has for this node are removed; devices applied locally (without the
``twinplane.io/delivered-by`` annotation) are never touched. Desired values come with their
versions and follow KubeEdge's rule (:meth:`~twinplane.edge.core.EdgeCore.sync_desired`): a value
changed on the edge that the cloud had not seen wins, and is reported back.

The link reconnects with exponential backoff and full jitter (``reconnect_min`` to
``reconnect_max`` seconds).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import random
import ssl
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec

from twinplane.cloud import wire
from twinplane.edge.core import EdgeCore
from twinplane.edge.store.cloud_outbox import CloudMark
from twinplane.edge.store.device_events import EventQuery
from twinplane.errors import TwinplaneError, UnknownDeviceError
from twinplane.manifests import ManifestError
from twinplane.tasks import cancel_and_wait
from twinplane.twin import Changes

if TYPE_CHECKING:
    from twinplane.edge.calls import Call, CallService
    from twinplane.edge.events import DeviceEvent

EVENTS_BATCH = 200
"""Device events per upstream message, at most (one message unacknowledged at a time)."""

__all__ = ["CloudLink", "CloudRefusedError", "LinkStats"]

log = logging.getLogger(__name__)

_BATCH = 500  # devices per report message


class CloudRefusedError(TwinplaneError):
    """The cloud refused this node's token (401)."""


@dataclass(slots=True)
class LinkStats:
    """Counters for ``/metrics`` and the tests."""

    connects: int = 0
    reports_sent: int = 0
    devices_sent: int = 0
    acked: int = 0
    rejected: int = 0
    downstream: int = 0
    refused_downstream: int = 0
    uploads_sent: int = 0
    events_sent: int = 0
    backlog_at_connect: int = 0
    last_resync_s: float = 0.0


class CloudLink:
    """The edge side of the link (started by ``twinplane edge --cloud URL``).

    Args:
        core: The device manager.
        url: ``ws://`` or ``wss://`` URL of the cloud (the path is added).
        node: This node's name.
        token: Its token (``twinplane cloud token create NODE``).
        ca_file: A CA bundle to trust for ``wss://`` (default: the system's).
        flush_interval: Seconds between outbox flushes (and live sends).
        drain_rate: Backlog devices sent per second after a reconnect.
        window: Devices sent and not yet acknowledged, at most.
    """

    def __init__(  # noqa: PLR0913 - keyword-only settings
        self,
        core: EdgeCore,
        url: str,
        *,
        node: str,
        token: str,
        ca_file: Path | None = None,
        flush_interval: float = 0.5,
        drain_rate: float = 5000.0,
        window: int = 20_000,
        reconnect_min: float = 0.5,
        reconnect_max: float = 30.0,
        calls: CallService | None = None,
    ) -> None:
        self.core = core
        self.calls = calls
        self.url = url.rstrip("/") + wire.CONNECT_PATH
        self.node = node
        self.token = token
        self.ca_file = ca_file
        self.flush_interval = flush_interval
        self.drain_rate = drain_rate
        self.window = window
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.stats = LinkStats()
        self.connected = asyncio.Event()
        self.synced = asyncio.Event()
        self.refused: CloudRefusedError | None = None
        """Why the cloud refused the last connection attempt (a token it does not know)."""
        self._marks: dict[str, set[str] | None] = {}
        self._state_marks: set[str] = set()
        self._live: dict[str, CloudMark] = {}
        self._inflight: dict[str, list[tuple[str, int]]] = {}
        self._inflight_devices = 0
        self._window_free = asyncio.Event()
        self._window_free.set()
        self._acks: list[tuple[str, int]] = []
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._send_lock = asyncio.Lock()
        self._epoch = uuid.uuid4().hex[:8]
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._uploads_pending = asyncio.Event()
        self._call_sends: set[asyncio.Task[None]] = set()
        self._events_from: int | None = None  # the cloud's resume point, from its welcome
        self._events_new = asyncio.Event()
        self._events_acked = 0
        self._events_ack = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Starts watching the device manager and connecting."""
        self.core.add_change_listener(self._on_changes)
        self.core.add_state_listener(lambda device_id, _state: self.mark_state(device_id))
        if self.calls is not None:
            self.calls.add_listener(self._on_call)
        self.core.events.add_listener(self._on_event)
        self._flusher = asyncio.create_task(self._flush_loop(), name="cloud outbox")
        self._task = asyncio.create_task(self._run(), name="cloud link")

    async def stop(self) -> None:
        """Disconnects; what is pending stays in the outbox for the next start."""
        self.core.remove_change_listener(self._on_changes)
        if self.calls is not None:
            self.calls.remove_listener(self._on_call)
        self.core.events.remove_listener(self._on_event)
        for task in (self._task, self._flusher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        with contextlib.suppress(TwinplaneError):
            await self._flush()

    def upload(self, topic: str, payload: bytes) -> None:
        """Queues an edge application's ``$hw/events/upload/...`` message for the cloud."""
        task = self._store_upload(topic, payload)
        asyncio.get_running_loop().create_task(task)

    async def _store_upload(self, topic: str, payload: bytes) -> None:
        await self.core.store.append_outbox(topic, payload)
        self._uploads_pending.set()

    # -- marks ------------------------------------------------------------------------------

    def _on_changes(self, changes: Changes) -> None:
        for change in changes.to_list():
            device = change["device"]
            props = self._marks.get(device, set())
            if props is not None:
                props.add(change["property"])
                self._marks[device] = props

    def mark_state(self, device_id: str) -> None:
        """A device's state changed."""
        self._state_marks.add(device_id)
        self._marks.setdefault(device_id, set())

    def _mark_all(self, devices: Iterable[str]) -> None:
        for device in devices:
            self._marks[device] = None

    async def _flush(self) -> list[CloudMark]:
        if not self._marks and not self._state_marks:
            return []
        marks, self._marks = self._marks, {}
        states, self._state_marks = self._state_marks, set()
        for device in states:
            marks.setdefault(device, set())
        rows = [
            (d, None if p is None else frozenset(p), d in states)
            for d, p in marks.items()
            if d in self.core.devices
        ]
        return await self.core.store.mark_cloud(rows)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                fresh = await self._flush()
                if self._acks:
                    acks, self._acks = self._acks, []
                    await self.core.store.ack_cloud(acks)
            except TwinplaneError as exc:
                log.warning("cloud outbox write failed (retrying): %s", exc)
                continue
            if self.synced.is_set():
                for mark in fresh:
                    self._live[mark.device_id] = mark
                if self._live:
                    live, self._live = list(self._live.values()), {}
                    with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                        await self._send_marks(live)

    # -- connection -------------------------------------------------------------------------

    def _ssl(self) -> ssl.SSLContext | bool:
        if not self.url.startswith("wss://"):
            return False
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)

    async def _run(self) -> None:
        delay = self.reconnect_min
        async with aiohttp.ClientSession() as http:
            while True:
                started = time.monotonic()
                try:
                    await self._connection(http)
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    log.warning("cloud link: %s; retrying", exc, extra={"url": self.url})
                except TwinplaneError as exc:
                    if isinstance(exc, CloudRefusedError):
                        self.refused = exc
                    log.error("cloud link: %s", exc, extra={"url": self.url})  # noqa: TRY400
                finally:
                    self.connected.clear()
                    self.synced.clear()
                    self._ws = None
                if time.monotonic() - started > 30:  # noqa: PLR2004 - it was up a while
                    delay = self.reconnect_min
                await asyncio.sleep(random.uniform(0, delay))  # noqa: S311 - jitter only
                delay = min(self.reconnect_max, delay * 2)

    async def _connection(self, http: aiohttp.ClientSession) -> None:
        headers = {wire.NODE_HEADER: self.node, "Authorization": f"Bearer {self.token}"}
        try:
            ws = await http.ws_connect(
                self.url, headers=headers, ssl=self._ssl(), heartbeat=15.0, max_msg_size=0
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 401:  # noqa: PLR2004
                raise CloudRefusedError(
                    f"the cloud refused node {self.node}'s token (401): make one with "
                    f"`twinplane cloud token create {self.node}`"
                ) from exc
            raise
        self._ws = ws
        self.refused = None
        self._events_from = None  # until the welcome says where the cloud stands
        self._inflight.clear()
        self._inflight_devices = 0
        self._window_free.set()
        self.stats.connects += 1
        try:
            await self._flush()
            await ws.send_str(wire.encode(self._hello()))
            self.connected.set()
            log.info("connected to the cloud", extra={"url": self.url, "node": self.node})
            receive = asyncio.create_task(self._receive(ws), name="cloud receive")
            uploads = asyncio.create_task(self._uploads(ws), name="cloud uploads")
            events = asyncio.create_task(self._events(ws), name="cloud events")
            try:
                done, _ = await asyncio.wait(
                    {receive, uploads, events}, return_when="FIRST_COMPLETED"
                )
            finally:
                for task in (receive, uploads, events):
                    if not task.done():
                        await cancel_and_wait(task)
            for task in done:
                task.result()  # the link's end: raises what ended it, if it failed
        finally:
            await ws.close()

    def _hello(self) -> wire.Hello:
        devices: dict[str, str] = {}
        for key, device in self.core.devices.items():
            annotations = device.metadata.annotations or {}
            if annotations.get(wire.SOURCE_ANNOTATION) == "cloud":
                devices[key] = device.metadata.resource_version or ""
        models: dict[str, str] = {}
        for key, model in self.core.models.items():
            annotations = model.metadata.annotations or {}
            if annotations.get(wire.SOURCE_ANNOTATION) == "cloud":
                models[key] = model.metadata.resource_version or ""
        return wire.Hello(node=self.node, devices=devices, models=models)

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for frame in ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            try:
                message = wire.decode_cloud(frame.data)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                log.warning("cloud sent a message that does not decode: %s", exc)
                continue
            await self._on_message(message)
        if ws.close_code not in (None, 1000, 1001):
            reason = ws.exception() or ""
            raise ConnectionError(f"the cloud closed the link: {ws.close_code} {reason}")

    async def _send(self, message: wire.EdgeMessage) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            raise ConnectionError("not connected")
        async with self._send_lock:
            await ws.send_str(wire.encode(message))

    # -- downstream -------------------------------------------------------------------------

    async def _on_message(self, message: wire.CloudMessage) -> None:
        if isinstance(message, wire.Welcome):
            await self._welcome(message)
        elif isinstance(message, wire.ReportAck):
            self._on_report_ack(message)
        elif isinstance(message, wire.UploadAck):
            await self._on_upload_ack(message)
        elif isinstance(message, wire.EventsAck):
            self._events_acked = max(self._events_acked, message.seq)
            self._events_ack.set()
        elif isinstance(message, wire.CallRequest):
            self.stats.downstream += 1
            await self._call_request(message)
            await self._send(wire.Ack(ids=[message.id]))
        elif isinstance(message, (wire.Upsert, wire.Remove, wire.DesiredUpdate, wire.Synced)):
            self.stats.downstream += 1
            errors: dict[str, str] = {}
            try:
                await self._apply(message)
            except (ManifestError, TwinplaneError) as exc:
                self.stats.refused_downstream += 1
                errors[str(message.id)] = str(exc)[:2000]
                log.warning("refused %s from the cloud: %s", type(message).__name__, exc)
            await self._send(wire.Ack(ids=[message.id], errors=errors))

    async def _welcome(self, welcome: wire.Welcome) -> None:
        """A resync by versions: devices newer here than the cloud knows are sent whole."""
        started = time.monotonic()
        newer = []
        for device_id in self.core.devices:
            if not self._owned(device_id):
                continue
            try:
                twins = self.core.twins(device_id)
            except UnknownDeviceError:
                continue
            newest = max(
                (t["reported"]["timestamp"] for t in twins.values() if t["reported"]), default=0
            )
            if newest > welcome.reported.get(device_id, -1):
                newer.append(device_id)
        self._mark_all(newer)
        await self._flush()
        await self._resend_calls()
        self._events_from = welcome.events_seq
        self._events_new.set()
        backlog = await self.core.store.count_cloud()
        self.stats.backlog_at_connect = backlog
        asyncio.get_running_loop().create_task(self._drain(started))

    # -- device events (the edge's log, forwarded by sequence number) -----------------------

    def _on_event(self, _event: object) -> None:
        self._events_new.set()

    async def _events(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Sends the log forward from where the cloud stands, a batch at a time, acknowledged.

        The events of this node's devices and of its mappers go; what the cloud holds comes
        from its welcome, so nothing is kept here: a log the edge lost (a new home) starts over.
        """
        while not ws.closed:
            await self._events_new.wait()
            self._events_new.clear()
            if self._events_from is None:
                continue  # no welcome yet
            await self.core.events.flush()  # what was emitted is in the log, to be read
            last = await self._latest_event_seq()
            if last < self._events_from:
                self._events_from = 0  # the edge's log is newer than the cloud thinks: restart
            while True:
                batch = await self.core.events.query(
                    EventQuery(after_seq=self._events_from, limit=EVENTS_BATCH)
                )
                if not batch:
                    break
                mine = [e.to_json() for e in batch if self._event_is_mine(e)]
                through = batch[-1].seq
                self._events_ack.clear()
                await self._send(wire.Events(id=through, events=mine))
                self.stats.events_sent += len(mine)
                await self._events_ack.wait()
                self._events_from = max(self._events_acked, through)

    async def _latest_event_seq(self) -> int:
        newest = await self.core.events.query(EventQuery(limit=1))
        return newest[0].seq if newest else 0

    def _event_is_mine(self, event: DeviceEvent) -> bool:
        if not event.namespace:
            return True  # a mapper of this node
        return self._owned(f"{event.namespace}/{event.device}")

    # -- method calls made in the cloud (DeviceCall objects) -------------------------------

    async def _call_request(self, request: wire.CallRequest) -> None:
        """Submits a cloud call under its uid (a second delivery finds the first)."""
        if self.calls is None or not self._owned(f"{request.namespace}/{request.device}"):
            why = "this edge takes no calls" if self.calls is None else "not a device of this node"
            await self._send_call(_refused(request, "UnknownDevice", why))
            return
        try:
            await self.calls.submit_call(
                request.namespace,
                request.device,
                request.method,
                request.arguments,
                source="cloud",
                timeout_s=request.timeout_s,
                ttl_s=request.ttl_s,
                call_id=request.call,
            )
        except TwinplaneError as exc:  # refused before anything was stored: say why
            code = _CALL_ERROR_CODES.get(type(exc).__name__, "Invalid")
            log.info("refused call %s from the cloud: %s", request.call, exc)
            await self._send_call(_refused(request, code, str(exc)[:2000]))
        # An accepted call answers through _on_call (it was stored and notified).

    def _on_call(self, call: Call) -> None:
        if call.source != "cloud" or self._ws is None or self._ws.closed:
            return  # not the cloud's, or the link is down: resent on the next welcome
        task = asyncio.get_running_loop().create_task(self._send_call(_update(call)))
        self._call_sends.add(task)
        task.add_done_callback(self._call_sends.discard)

    async def _send_call(self, update: wire.CallUpdate) -> None:
        try:
            await self._send(update)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("call update %s not sent (%s): resent on reconnect", update.call, exc)

    async def _resend_calls(self) -> None:
        """After a (re)connect: where every call the cloud made stands, as the edge holds it."""
        if self.calls is None:
            return
        for device_id, device in list(self.core.devices.items()):
            if not self._owned(device_id):
                continue
            for call in await self.calls.list_calls(device.namespace, device.name, limit=100):
                if call.source == "cloud":
                    await self._send(_update(call))

    def _owned(self, device_id: str) -> bool:
        device = self.core.devices.get(device_id)
        return device is not None and (device.spec.node_name or "") == self.node

    async def _drain(self, started: float) -> None:
        """Sends the backlog oldest first at ``drain_rate`` devices per second."""
        await self.synced.wait()
        after = 0
        budget_start = time.monotonic()
        sent = 0
        while self._ws is not None and not self._ws.closed:
            rows = await self.core.store.list_cloud(_BATCH, after)
            if not rows:
                break
            after = rows[-1].seq
            rows = [r for r in rows if r.device_id not in self._live]
            with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                await self._send_marks(rows)
            sent += len(rows)
            ahead = sent / self.drain_rate - (time.monotonic() - budget_start)
            if ahead > 0:
                await asyncio.sleep(ahead)
        self.stats.last_resync_s = time.monotonic() - started
        log.info(
            "cloud resync sent",
            extra={"devices": sent, "seconds": round(self.stats.last_resync_s, 2)},
        )

    async def _apply(
        self, message: wire.Upsert | wire.Remove | wire.DesiredUpdate | wire.Synced
    ) -> None:
        core = self.core
        if isinstance(message, wire.Upsert):
            obj = message.object
            if message.kind == "Device":
                node = (obj.get("spec") or {}).get("nodeName")
                if node != self.node:
                    raise TwinplaneError(f"device for node {node!r}, not this node {self.node!r}")
            await core.apply(msgspec.json.encode(obj), source="cloud", from_cloud=True)
            if message.kind == "Device" and message.desired:
                meta = obj.get("metadata") or {}
                device_id = f"{meta.get('namespace') or 'default'}/{meta.get('name')}"
                await self._sync_desired(device_id, message.desired)
        elif isinstance(message, wire.DesiredUpdate):
            await self._sync_desired(message.device, message.twins)
        elif isinstance(message, wire.Remove):
            if message.kind == "Device":
                await core.delete_device(message.namespace, message.name)
            else:
                await core.delete_model(message.namespace, message.name)
        else:
            keep = set(message.devices)
            for device_id, device in list(core.devices.items()):
                annotations = device.metadata.annotations or {}
                if annotations.get(wire.SOURCE_ANNOTATION) == "cloud" and device_id not in keep:
                    await core.delete_device(device.namespace, device.name)
            self.synced.set()

    async def _sync_desired(self, device_id: str, twins: dict[str, wire.DesiredSync]) -> None:
        values = {p: (s.value, s.version.cloud, s.version.edge) for p, s in twins.items()}
        refused = await self.core.sync_desired(device_id, values)
        if refused:  # the edge's own value wins: report it so the cloud converges
            props = self._marks.get(device_id, set())
            if props is not None:
                props.update(refused)
                self._marks[device_id] = props

    # -- upstream ---------------------------------------------------------------------------

    def _report_of(self, mark: CloudMark) -> wire.DeviceReport | None:
        try:
            twins = self.core.twins(mark.device_id)
        except UnknownDeviceError:
            return None
        out: dict[str, wire.TwinReport] = {}
        for name, twin in twins.items():
            if mark.properties is not None and name not in mark.properties:
                continue
            out[name] = wire.TwinReport(
                type=twin["type"],
                reported=_side(twin["reported"]),
                desired=_side(twin["desired"]),
                reported_version=wire.Version(**twin["reported_version"]),
                desired_version=wire.Version(**twin["desired_version"]),
            )
        state = self.core.states.get(mark.device_id)
        return wire.DeviceReport(
            device=mark.device_id,
            twins=out,
            state=state.state if state is not None else None,
            last_online=(state.last_online or None) if state is not None else None,
        )

    async def _send_marks(self, marks: list[CloudMark]) -> None:
        for start in range(0, len(marks), _BATCH):
            chunk = marks[start : start + _BATCH]
            reports: list[wire.DeviceReport] = []
            done: list[tuple[str, int]] = []
            for mark in chunk:
                report = self._report_of(mark)
                if report is None:
                    self._acks.append((mark.device_id, mark.rev))
                    continue
                reports.append(report)
                done.append((mark.device_id, mark.rev))
            if not reports:
                continue
            while self._inflight_devices >= self.window:
                self._window_free.clear()
                await self._window_free.wait()
            msg_id = f"{self._epoch}-{next(self._ids)}"
            self._inflight[msg_id] = done
            self._inflight_devices += len(done)
            self.stats.reports_sent += 1
            self.stats.devices_sent += len(reports)
            await self._send(wire.Report(id=msg_id, devices=reports))

    def _on_report_ack(self, ack: wire.ReportAck) -> None:
        for msg_id in ack.ids:
            done = self._inflight.pop(msg_id, None)
            if done is not None:
                self._inflight_devices -= len(done)
                self._acks.extend(done)
                self.stats.acked += len(done)
        if ack.rejected:
            self.stats.rejected += len(ack.rejected)
            log.warning(
                "the cloud refused reports of %d devices (first: %s)",
                len(ack.rejected),
                next(iter(ack.rejected.values())),
            )
        if self._inflight_devices < self.window:
            self._window_free.set()

    async def _uploads(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._uploads_pending.set()
        self._upload_sent_through = 0
        while not ws.closed:
            await self._uploads_pending.wait()
            self._uploads_pending.clear()
            for entry in await self.core.store.list_outbox(500):
                if entry.id <= self._upload_sent_through:
                    continue
                try:
                    text, encoding = entry.payload.decode(), "utf-8"
                except UnicodeDecodeError:
                    text, encoding = base64.b64encode(entry.payload).decode(), "base64"
                upload = wire.Upload(
                    id=f"u{entry.id}",
                    topic=entry.topic,
                    payload=text,
                    timestamp=entry.created_ms,
                    encoding=encoding,  # type: ignore[arg-type]
                )
                await self._send(upload)
                self._upload_sent_through = entry.id
                self.stats.uploads_sent += 1

    async def _on_upload_ack(self, ack: wire.UploadAck) -> None:
        ids = [int(i[1:]) for i in ack.ids if i.startswith("u") and i[1:].isdigit()]
        if ids:
            await self.core.store.delete_outbox(max(ids))
            self._uploads_pending.set()


def _side(side: Any) -> wire.SideReport | None:  # noqa: ANN401 - a TwinSideDict or None
    if side is None:
        return None
    return wire.SideReport(value=side["value"], timestamp=side["timestamp"])


_CALL_ERROR_CODES: dict[str, str] = {
    "UnknownDeviceError": "UnknownDevice",
    "UnknownMethodError": "UnknownMethod",
    "CallArgumentError": "InvalidArguments",
    "CallConflictError": "Conflict",
}
"""A refused submission's error, as the call's ``status.error.code`` in the cloud."""


def _update(call: Call) -> wire.CallUpdate:
    error = None if call.error is None else {"code": call.error.code, "message": call.error.message}
    return wire.CallUpdate(
        call=call.id,
        namespace=call.namespace,
        device=call.device,
        state=call.state,
        result=call.result,
        error=error,
        created_ms=call.created_ms,
        sent_ms=call.sent_ms,
        finished_ms=call.finished_ms,
    )


def _refused(request: wire.CallRequest, code: str, message: str) -> wire.CallUpdate:
    return wire.CallUpdate(
        call=request.call,
        namespace=request.namespace,
        device=request.device,
        state="Failed",
        error={"code": code, "message": message},
        finished_ms=time.time_ns() // 1_000_000,
    )
