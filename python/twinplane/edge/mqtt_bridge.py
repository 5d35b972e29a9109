"""The MQTT bridge: KubeEdge's ``$hw/events`` device topics on a broker (spec §3.5, §3.8, §3.9, §4).

Outbound, every batch of twin changes the device manager makes (DMI reports, REST, MQTT,
manifests) becomes KubeEdge's ``…/twin/update/result``, ``…/document`` and ``…/delta``
messages, encoded in Rust by ``Changes.to_mqtt()``; a desired write that a mapper reports failed
(or a success that clears that) becomes a ``…/twin/update/result`` with ``last_write_error``.
Inbound, the bridge serves ``…/twin/update``, ``…/twin/get``, ``…/state/update`` and
``$hw/events/node/<node>/membership/get``, answering on the request topic plus ``/result``
(payloads: :mod:`twinplane.edge.mqtt_payloads`, ``docs/mqtt.md``).

Delivery: QoS 1 both ways, client id ``twinplane-edge-<node>``, a clean session, reconnecting
with jittered exponential backoff for as long as the bridge runs (subscriptions are renewed on
every connection). The change listener never blocks: messages wait in a bounded queue that
drops its *oldest* message when full (``dropped``, logged once per burst) while a window of
publisher tasks drains it. A publish counts (``published``) only once the broker has
acknowledged it (aiomqtt's QoS 1 ``publish`` awaits the PUBACK); messages in flight when the
connection drops are sent again after reconnecting, in their order (at least once, as QoS 1
promises).

Broker configuration matters: a PUBACK only means the *broker* has the message. Mosquitto keeps
at most ``max_queued_messages`` (default 1000) messages per subscriber and silently drops QoS 1
messages beyond that for a subscriber that falls behind, and sends at most
``max_inflight_messages`` (default 20) unacknowledged QoS 1 messages to each one. For busy
subscribers raise both (for example ``max_queued_messages 100000``,
``max_inflight_messages 100``); see ``docs/mqtt.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import random
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, cast

import aiomqtt

from twinplane.edge.calls import CallService
from twinplane.edge.core import EdgeCore, now_ms
from twinplane.edge.events import DeviceEvent
from twinplane.edge.mqtt_calls import MqttCalls
from twinplane.edge.mqtt_payloads import (
    BAD_REQUEST,
    DEVICE_PREFIX,
    INTERNAL_ERROR,
    NODE_PREFIX,
    NOT_FOUND,
    UPLOAD_PREFIX,
    EventIn,
    MsgTwinIn,
    Request,
    RequestError,
    StateUpdateIn,
    TwinUpdateIn,
    decode_request,
    encode,
    error_result,
    membership_device,
    membership_result,
    merge_documents,
    state_result,
    subscriptions,
    twin_get_result,
    twin_result,
    twin_write_result,
)
from twinplane.edge.write_errors import WriteError
from twinplane.errors import SpecError, TwinplaneError, UnknownDeviceError
from twinplane.mqtt_url import BrokerUrl
from twinplane.twin import Changes, PropertyTypeName, TwinDict, canonical

log = logging.getLogger(__name__)

_RECONNECT_MIN = 0.1
_MAX_INCOMING = 10_000
"""Inbound messages aiomqtt holds before the bridge handles them (beyond: discarded, logged)."""

_Outgoing = tuple[int, str, bytes]
"""A queued publication: sequence number (its place in the order), topic, payload."""


@dataclass(slots=True)
class _Capture:
    """The changes an MQTT request makes to its device, collected to answer them as one update.

    The request handler sets it in a context variable around its calls into the core, so only
    changes made by those calls (in the handler's task) are collected.
    """

    device: str
    changes: list[Changes] = field(default_factory=list)
    closed: bool = False


class MqttBridge:
    """The ``$hw/events`` twin topics of one device manager on an MQTT broker.

    Args:
        core: The registry and twins.
        url: The broker: ``mqtt://host:port`` or ``tcp://host:port``, optionally with
            ``user:pass@``.
        node_name: This node (client id ``twinplane-edge-<node>``, membership topics).
        qos: QoS of subscriptions and publications.
        queue_limit: Messages waiting for the broker; beyond it the oldest are dropped.
        max_inflight: Publications awaiting their acknowledgement at once.
        reconnect_max: Longest wait between connection attempts, in seconds.

    Raises:
        SpecError: A bad ``url``, ``qos`` or limit.
    """

    def __init__(  # noqa: PLR0913 - keyword-only settings
        self,
        core: EdgeCore,
        url: str,
        *,
        node_name: str,
        qos: int = 1,
        queue_limit: int = 100_000,
        max_inflight: int = 64,
        reconnect_max: float = 10.0,
    ) -> None:
        if qos not in (0, 1, 2):
            raise SpecError(f"MQTT QoS must be 0, 1 or 2, got {qos}", path="qos")
        if queue_limit < 1 or max_inflight < 1:
            raise SpecError("MQTT queue_limit and max_inflight must be at least 1")
        self.core = core
        self.broker = BrokerUrl.parse(url)
        self.node_name = node_name
        self.client_id = f"twinplane-edge-{node_name}"
        self.qos = qos
        self.queue_limit = queue_limit
        self.max_inflight = max_inflight
        self.reconnect_max = reconnect_max
        self.published = 0
        self.dropped = 0
        self.events_queued = 0
        self.reconnects = 0
        self.received = 0
        self.rejected = 0
        self.upload_listener: Callable[[str, bytes], None] | None = None
        """Set by the cloud link: called with each ``$hw/events/upload/...`` message."""
        self.calls: MqttCalls | None = None
        """The method-call topics (:mod:`twinplane.edge.mqtt_calls`), once :meth:`serve_calls`."""
        self._queue: asyncio.Queue[_Outgoing] = asyncio.Queue(queue_limit)
        self._retry: deque[_Outgoing] = deque()
        self._inflight: dict[int, _Outgoing] = {}
        self._seq = itertools.count()
        self._burst_dropped = 0
        self._connected = asyncio.Event()
        self._sessions = 0
        self._closed = False
        self._listening = False
        self._task: asyncio.Task[None] | None = None
        self._capture: contextvars.ContextVar[_Capture | None] = contextvars.ContextVar(
            f"mqtt-capture-{id(self)}", default=None
        )
        self._logged_rejects: set[tuple[str, int]] = set()

    # -- lifecycle ------------------------------------------------------------------------

    def serve_calls(self, calls: CallService) -> None:
        """Serves ``…/method/call`` through ``calls`` (answers on ``…/method/result``)."""
        self.calls = MqttCalls(calls, self._offer_json)

    async def start(self) -> None:
        """Starts forwarding changes and connecting in the background (returns at once)."""
        if self._task is not None:
            return
        self._closed = False
        if not self._listening:
            self.core.add_change_listener(self._on_changes)
            self.core.add_write_listener(self._on_write_errors)
            self.core.events.add_listener(self._on_event)
            self._listening = True
        self._task = asyncio.create_task(self._run(), name="mqtt-bridge")
        log.info("MQTT bridge started", extra={"broker": str(self.broker), "node": self.node_name})

    async def stop(self, drain_timeout: float = 2.0) -> None:
        """Stops the bridge.

        While connected, it first waits up to ``drain_timeout`` seconds for the queued messages
        to be acknowledged.
        """
        self._closed = True
        self.core.remove_change_listener(self._on_changes)
        self.core.remove_write_listener(self._on_write_errors)
        self.core.events.remove_listener(self._on_event)
        task, self._task = self._task, None
        if task is None:
            return
        if self._connected.is_set() and self.pending:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_timeout):
                    await self.flush()
        await _cancel(task)
        if self.pending:
            log.warning("MQTT bridge stopped with unsent messages", extra={"unsent": self.pending})

    async def wait_connected(self) -> None:
        """Returns once connected and subscribed (wrap it in ``asyncio.timeout``)."""
        await self._connected.wait()

    async def flush(self) -> None:
        """Returns once every message queued so far is acknowledged by the broker or dropped."""
        await self._queue.join()

    @property
    def connected(self) -> bool:
        """Whether the bridge is connected and subscribed."""
        return self._connected.is_set()

    @property
    def pending(self) -> int:
        """Messages not yet acknowledged by the broker (queued or in flight)."""
        return self._queue.qsize() + len(self._retry) + len(self._inflight)

    def stats(self) -> dict[str, int]:
        """The bridge's counters.

        ``published`` (acknowledged by the broker), ``dropped`` (queue full), ``events_queued``
        (device events queued for ``…/events``), ``reconnects``,
        ``received`` and ``rejected`` (requests answered with an error), plus ``pending`` and
        ``connected`` (0/1).
        """
        return {
            "published": self.published,
            "dropped": self.dropped,
            "events_queued": self.events_queued,
            "reconnects": self.reconnects,
            "received": self.received,
            "rejected": self.rejected,
            "pending": self.pending,
            "connected": int(self.connected),
        }

    # -- outbound -------------------------------------------------------------------------

    def _on_changes(self, changes: Changes) -> None:
        """The core's change listener: queues the twin messages of ``changes``; never blocks."""
        if self._closed:
            return
        capture = self._capture.get()
        if capture is not None and not capture.closed and changes.devices() == [capture.device]:
            capture.changes.append(changes)  # answered as one update by the request handler
            return
        for topic, payload in changes.to_mqtt():
            self._offer(topic, payload)

    def _on_write_errors(self, device_id: str, errors: Mapping[str, WriteError | None]) -> None:
        """The core's write listener: a ``…/twin/update/result`` with ``last_write_error``."""
        if self._closed:
            return
        twins = self.core.twins(device_id)
        body = twin_write_result(str(uuid.uuid4()), now_ms(), twins, errors)
        self._offer_json(f"{DEVICE_PREFIX}{device_id}/twin/update/result", body)

    def _on_event(self, event: DeviceEvent) -> None:
        """The device events' listener: ``$hw/events/device/<ns>/<name>/events``.

        A mapper's events (no namespace) go to ``$hw/events/node/<node>/events``.
        """
        if self._closed:
            return
        if event.namespace:
            topic = f"{DEVICE_PREFIX}{event.namespace}/{event.device}/events"
        else:
            topic = f"{NODE_PREFIX}{self.node_name}/events"
        self.events_queued += 1
        self._offer_json(topic, event.to_json())

    def _offer(self, topic: str, payload: bytes) -> None:
        """Queues a message, dropping the oldest queued one when the queue is full."""
        if self._queue.full():
            self._queue.get_nowait()
            self._queue.task_done()
            self.dropped += 1
            self._burst_dropped += 1
            if self._burst_dropped == 1:
                log.warning(
                    "MQTT outbound queue full: dropping the oldest messages",
                    extra={"queue_limit": self.queue_limit, "broker": str(self.broker)},
                )
        self._queue.put_nowait((next(self._seq), topic, payload))

    def _offer_json(self, topic: str, body: dict[str, Any]) -> None:
        self._offer(topic, encode(body))

    async def _publish_worker(self, client: aiomqtt.Client) -> None:
        """Publishes queued messages one at a time; many workers make the in-flight window.

        Taking a message and handing it to paho happen without a suspension in between, so
        messages leave in queue order.
        """
        while True:
            item = self._retry.popleft() if self._retry else await self._queue.get()
            seq, topic, payload = item
            self._inflight[seq] = item  # re-sent after a reconnect unless acknowledged
            await client.publish(topic, payload, qos=self.qos)
            del self._inflight[seq]
            self.published += 1
            self._queue.task_done()
            if self._burst_dropped and self._queue.empty():
                log.warning(
                    "MQTT outbound queue drained after dropping messages",
                    extra={"dropped": self._burst_dropped, "broker": str(self.broker)},
                )
                self._burst_dropped = 0

    def _requeue_inflight(self) -> None:
        """Puts unacknowledged messages back in front of the queue, in their order."""
        if self._inflight:
            self._retry = deque(sorted([*self._retry, *self._inflight.values()]))
            self._inflight.clear()

    # -- connection -----------------------------------------------------------------------

    async def _run(self) -> None:
        """Connects, serves, and reconnects with jittered exponential backoff, forever."""
        delay = _RECONNECT_MIN
        failures = 0
        while True:
            sessions = self._sessions
            error: BaseException | None = None
            try:
                await self._session()
            except* aiomqtt.MqttError as group:
                error = group.exceptions[0]
            except* Exception as group:
                error = group.exceptions[0]
                log.exception("MQTT bridge session failed", exc_info=error)
            if self._sessions != sessions:  # it was up: an outage starts now
                delay, failures = _RECONNECT_MIN, 0
            failures += 1
            if failures == 1:
                log.warning(
                    "MQTT broker unreachable or connection lost; retrying with backoff",
                    extra={"broker": str(self.broker), "error": str(error)},
                )
            else:
                log.debug("MQTT connection attempt failed", extra={"error": str(error)})
            await asyncio.sleep(random.uniform(delay / 2, delay))  # noqa: S311 - jitter only
            delay = min(delay * 2, self.reconnect_max)

    async def _session(self) -> None:
        """One connection: subscribe, then receive and publish until it fails."""
        client = aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=self.broker.username,
            password=self.broker.password,
            identifier=self.client_id,
            keepalive=30,
            max_inflight_messages=self.max_inflight,
            max_queued_incoming_messages=_MAX_INCOMING,
        )
        async with client:
            uploads = self.upload_listener is not None
            for topic in subscriptions(self.node_name, uploads=uploads):
                await client.subscribe(topic, qos=self.qos)
            self._sessions += 1
            if self._sessions > 1:
                self.reconnects += 1
            self._connected.set()
            log.info(
                "MQTT bridge connected",
                extra={
                    "broker": str(self.broker),
                    "client_id": self.client_id,
                    "reconnects": self.reconnects,
                    "pending": self.pending,
                },
            )
            try:
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(self._receive(client), name="mqtt-receive")
                    for i in range(self.max_inflight):
                        tasks.create_task(self._publish_worker(client), name=f"mqtt-publish-{i}")
            finally:
                self._connected.clear()
                self._requeue_inflight()

    # -- inbound --------------------------------------------------------------------------

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            await self._handle(message.topic.value, _payload_bytes(message.payload))

    async def _handle(self, topic: str, payload: bytes) -> None:
        """Serves one inbound message; never raises (errors are answered or logged)."""
        self.received += 1
        if topic.startswith(UPLOAD_PREFIX) and self.upload_listener is not None:
            try:
                self.upload_listener(topic, payload)
            except Exception:  # the link's bug must not stop the bridge
                log.exception("upload listener failed")
            return
        request = Request.from_topic(topic, self.node_name)
        if request is None:
            log.debug("MQTT message on an unserved topic ignored", extra={"topic": topic})
            return
        try:
            match request.kind:
                case "twin/update":
                    await self._twin_update(request, payload)
                case "twin/get":
                    self._twin_get(request, payload)
                case "state/update":
                    await self._state_update(request, payload)
                case "membership/get":
                    self._membership_get(request, payload)
                case "method/call":
                    await self._method_call(request, payload)
        except RequestError as err:
            self._reject(request, err)
        except Exception:  # a bug in one request must not end the bridge
            log.exception("MQTT request failed", extra={"topic": topic})
            self._reject(request, RequestError(INTERNAL_ERROR, "internal error"))

    async def _method_call(self, request: Request, payload: bytes) -> None:
        """``…/method/call``: a method call (:mod:`twinplane.edge.mqtt_calls`)."""
        if self.calls is None:
            raise RequestError(NOT_FOUND, "method calls are not served here")
        await self.calls.handle(request.identity, payload)

    def _reject(self, request: Request, err: RequestError) -> None:
        self.rejected += 1
        key = (request.kind, err.code)
        level = logging.DEBUG if key in self._logged_rejects else logging.WARNING
        self._logged_rejects.add(key)
        log.log(
            level,
            "MQTT request rejected",
            extra={"topic": request.topic, "code": err.code, "reason": err.reason},
        )
        self._offer_json(
            request.result_topic, error_result(err.event_id, now_ms(), err.code, err.reason)
        )

    async def _twin_update(self, request: Request, payload: bytes) -> None:
        """``…/twin/update``: expected values become desired, actual values reported."""
        update = decode_request(payload, TwinUpdateIn)
        event_id = update.event_id or ""
        device_id = request.identity
        twins = self._twins(device_id, event_id)
        if update.twin is None:
            raise RequestError(BAD_REQUEST, "invalid payload: twin is required", event_id)
        ts = now_ms()
        desired, reported = _plan_update(device_id, update.twin, twins, ts, event_id)
        capture = _Capture(device_id)
        token = self._capture.set(capture)
        done = False
        try:
            if desired:
                await self.core.set_desired(device_id, desired, ts_ms=ts)
            if reported:
                self.core.apply_reported(device_id, reported)
            done = True
        except TwinplaneError as err:
            raise _request_error(err, event_id) from None
        finally:
            self._capture.reset(token)
            capture.closed = True
            if not done:  # what did change still goes out, as the engine encoded it
                for changes in capture.changes:
                    self._on_changes(changes)
        self._answer_update(request, event_id, list(update.twin), capture.changes)

    def _answer_update(
        self, request: Request, event_id: str, keys: list[str], captured: list[Changes]
    ) -> None:
        """Result, document and delta of one update, as EdgeCore sends them (spec §3.8).

        The result lists every requested twin after the update (EdgeCore has no value
        comparison, so it answers unchanged twins too); the document merges the update's
        batches of changes; the delta is the device's delta after the update.
        """
        ts = now_ms()
        twins = self.core.twins(request.identity)
        errors = self.core.write_errors.of(request.identity)
        self._offer_json(request.result_topic, twin_result(event_id, ts, twins, keys, errors))
        document_topic, delta_topic = f"{request.topic}/document", f"{request.topic}/delta"
        documents: list[bytes] = []
        deltas: list[tuple[str, bytes]] = []
        for changes in captured:
            messages = changes.to_mqtt(ts)
            documents.extend(body for topic, body in messages if topic == document_topic)
            # The last batch's delta is the device's delta after the whole update.
            deltas = [(topic, body) for topic, body in messages if topic == delta_topic]
        if documents:
            self._offer_json(document_topic, merge_documents(event_id, ts, documents))
        for topic, body in deltas:
            self._offer(topic, body)

    def _twin_get(self, request: Request, payload: bytes) -> None:
        """``…/twin/get``: every twin of the device."""
        event_id = decode_request(payload, EventIn).event_id or ""
        twins = self._twins(request.identity, event_id)
        errors = self.core.write_errors.of(request.identity)
        body = twin_get_result(event_id, now_ms(), twins, errors)
        self._offer_json(request.result_topic, body)

    async def _state_update(self, request: Request, payload: bytes) -> None:
        """``…/state/update``: records the device state."""
        update = decode_request(payload, StateUpdateIn)
        event_id = update.event_id or ""
        if not update.state:
            raise RequestError(BAD_REQUEST, "invalid payload: state is required", event_id)
        try:
            state = await self.core.report_state(request.identity, update.state)
        except TwinplaneError as err:
            raise _request_error(err, event_id) from None
        body = state_result(
            event_id or str(uuid.uuid4()),
            now_ms(),
            request.name,
            state.state,
            state.last_online,
        )
        self._offer_json(request.result_topic, body)

    def _membership_get(self, request: Request, payload: bytes) -> None:
        """``$hw/events/node/<node>/membership/get``: the devices of this node."""
        event_id = decode_request(payload, EventIn).event_id or ""
        devices = []
        for device in self.core.devices.values():
            if device.spec.node_name not in (None, "", self.node_name):
                continue
            state = self.core.states.get(device.id)
            devices.append(
                membership_device(
                    device.id,
                    device.name,
                    state.state if state is not None else "unknown",
                    state.last_online if state is not None else "",
                )
            )
        self._offer_json(request.result_topic, membership_result(event_id, now_ms(), devices))

    def _twins(self, device_id: str, event_id: str) -> dict[str, TwinDict]:
        try:
            return self.core.twins(device_id)
        except UnknownDeviceError:
            raise RequestError(NOT_FOUND, f"device {device_id} does not exist", event_id) from None


def _plan_update(
    device_id: str,
    update: dict[str, MsgTwinIn | None],
    twins: dict[str, TwinDict],
    ts: int,
    event_id: str,
) -> tuple[dict[str, str | None], list[tuple[str, str, int]]]:
    """Checks a whole update before anything is applied: the desired and reported values.

    Raises:
        RequestError: 400 for an unknown property or a value that does not fit its type.
    """
    desired: dict[str, str | None] = {}
    reported: list[tuple[str, str, int]] = []
    for key, twin in update.items():
        if key not in twins:
            raise RequestError(BAD_REQUEST, f"device {device_id} has no property {key!r}", event_id)
        if twin is None:
            desired[key] = None  # KubeEdge: delete the (optional) twin; here: its desired value
            continue
        ptype = cast("PropertyTypeName", twins[key]["type"])
        for side, value in (("expected", twin.expected), ("actual", twin.actual)):
            if value is None or value.value is None:
                continue
            try:
                canonical(ptype, value.value)
            except TwinplaneError:
                raise RequestError(
                    BAD_REQUEST,
                    f"twin {key!r}: {side} value {value.value!r} is not a valid {ptype}",
                    event_id,
                ) from None
            if side == "expected":
                desired[key] = value.value
            else:
                reported.append((key, value.value, ts))
    return desired, reported


def _request_error(err: TwinplaneError, event_id: str) -> RequestError:
    """The answer to a request the core refused."""
    if isinstance(err, UnknownDeviceError):
        code = NOT_FOUND
    elif isinstance(err, LookupError | ValueError):  # unknown property, value type, spec
        code = BAD_REQUEST
    else:
        code = INTERNAL_ERROR
    return RequestError(code, err.message, event_id)


def _payload_bytes(payload: object) -> bytes:
    """An aiomqtt payload as bytes."""
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()


_CANCEL_WAIT_S: Final = 0.5
"""How long the bridge's task may take to end after it is cancelled, each time."""


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancels the bridge's task and waits for it to end, cancelling again if needed.

    A cancellation that lands in aiomqtt's connect or subscribe can be absorbed there (its clean
    disconnect then waits for an answer that never comes), and a stop would hang for ever: a
    second cancellation ends it, and a task that still runs is left behind with a warning, so
    the process stops on time.
    """
    for attempt in range(2):
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=_CANCEL_WAIT_S)
        if done:
            if not task.cancelled() and task.exception() is not None:
                log.warning("MQTT bridge task ended with an error", exc_info=task.exception())
            return
        log.warning(
            "MQTT bridge task still running %.0f s after it was cancelled%s",
            _CANCEL_WAIT_S * (attempt + 1),
            "; cancelling again" if attempt == 0 else "; leaving it",
        )
