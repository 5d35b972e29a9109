"""Mappers known to the device manager, device ownership, and the lifecycle pushed to them.

A mapper registers with ``MapperRegister`` (name, protocol, the path of its own Unix socket;
checked by :class:`~twinplane.edge.mapper_info.MapperInfo`) and may be forgotten again
(:meth:`MapperDirectory.unregister`).
Unlike EdgeCore (one mapper per protocol), several mappers may serve one protocol: each device
is owned by one of them — the one named by the device annotation ``twinplane.io/mapper``, else
the one chosen by rendezvous hashing of the device id over the protocol's mappers (stable while
the set of mappers is stable).

Each mapper has one worker that pushes lifecycle operations over ``DeviceMapperService``: model
before device (``CreateDeviceModel`` then ``RegisterDevice``), ``UpdateDevice`` only when the
device message really changed, ``RemoveDevice``/``RemoveDeviceModel``. Every call has a deadline;
failures are retried with exponential backoff and jitter, and a newer operation on the same
object replaces a pending one. A mapper that registers again gets a full re-sync.

Each link also keeps what the mapper's twinplane ``Methods`` service offers
(:attr:`MapperLink.methods`, asked once per registration by
:mod:`twinplane.edge.method_delivery`) and a channel of its own for method calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

import grpc

from twinplane.dmi.convert import device_to_proto, model_to_proto
from twinplane.dmi.v1beta1 import api_pb2, api_pb2_grpc
from twinplane.edge.device_events import EdgeEvents
from twinplane.edge.events import Severity
from twinplane.edge.mapper_info import MapperInfo
from twinplane.errors import TwinplaneError
from twinplane.manifests import Device, DeviceModel

log = logging.getLogger(__name__)

OWNER_ANNOTATION = "twinplane.io/mapper"
"""Device annotation that pins a device to a mapper by name."""

CALL_TIMEOUT_S = 10.0
"""Deadline of one lifecycle call (EdgeCore uses 10 s)."""

LINK_CONCURRENCY = 16
"""Lifecycle calls in flight at once toward one mapper (each on another object)."""

OpKind = Literal["model", "model-delete", "device", "device-delete"]


@dataclass(slots=True)
class _Op:
    kind: OpKind
    key: str  # model or device id
    namespace: str
    name: str


@dataclass(slots=True)
class LinkStats:
    """Counters of one mapper link."""

    sent: int = 0
    failed: int = 0
    retries: int = 0
    skipped_unchanged: int = 0


@dataclass(frozen=True, slots=True)
class MethodsOffer:
    """What a mapper's ``Methods`` service runs (``offered`` false: it has none).

    Attributes:
        offered: The service answers (false: ``UNIMPLEMENTED``, a plain KubeEdge mapper).
        driver_commands: The driver commands it runs.
        property_writes: Whether it runs property-writing methods.
    """

    offered: bool
    driver_commands: frozenset[str] = frozenset()
    property_writes: bool = False


class MapperLink:
    """One mapper: its info, gRPC channels and lifecycle worker.

    Attributes:
        methods: What its ``Methods`` service offers, once asked since it last registered.
    """

    def __init__(self, info: MapperInfo, directory: MapperDirectory) -> None:
        self.info = info
        self._dir = directory
        self._pending: dict[str, _Op] = {}
        self._wake = asyncio.Event()
        self._retry_now = asyncio.Event()
        self._sent_devices: dict[str, bytes] = {}
        self._sent_models: dict[str, bytes] = {}
        self._model_lock = asyncio.Lock()
        self.stats = LinkStats()
        self.lost = False  # sends to it fail since it was last reached
        self._channel: grpc.aio.Channel | None = None
        self._calls: grpc.aio.Channel | None = None
        self._task: asyncio.Task[None] | None = None
        self.methods: MethodsOffer | None = None

    def start(self) -> None:
        """Starts the worker."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"mapper-{self.info.name}")

    async def close(self) -> None:
        """Stops the worker and closes the channel."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._drop_channel()
        await self.drop_calls_channel()

    def calls_channel(self) -> grpc.aio.Channel:
        """The channel method calls go through (dialled on first use, kept)."""
        if self._calls is None:
            self._calls = grpc.aio.insecure_channel(f"unix:{self.info.address}")
        return self._calls

    async def drop_calls_channel(self) -> None:
        """Closes the method calls' channel (the next call dials afresh)."""
        if self._calls is not None:
            channel, self._calls = self._calls, None
            await channel.close()

    async def _drop_channel(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close()

    def retry_now(self) -> None:
        """Ends a retry backoff at once (the mapper registered again: it is back)."""
        self._retry_now.set()

    def has_model(self, model_id: str) -> bool:
        """Whether the mapper was sent this model."""
        return model_id in self._sent_models

    def forget_sent(self) -> None:
        """Forgets what the mapper was sent (it restarted): the next sync sends everything."""
        self._sent_devices.clear()
        self._sent_models.clear()

    def mark_sent(
        self, models: Iterable[api_pb2.DeviceModel], devices: Iterable[api_pb2.Device]
    ) -> None:
        """Records messages the mapper received in its ``MapperRegister`` response."""
        for model in models:
            key = f"{model.namespace}/{model.name}"
            self._sent_models[key] = model.SerializeToString(deterministic=True)
        for device in devices:
            key = f"{device.namespace}/{device.name}"
            self._sent_devices[key] = device.SerializeToString(deterministic=True)

    def enqueue(self, op: _Op) -> None:
        """Queues an operation, replacing a pending one on the same object."""
        self._pending[f"{op.kind.split('-')[0]}:{op.key}"] = op
        self._wake.set()

    @property
    def pending(self) -> int:
        """Operations waiting to be sent."""
        return len(self._pending)

    def _stub(self) -> api_pb2_grpc.DeviceMapperServiceStub:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(f"unix:{self.info.address}")
        return api_pb2_grpc.DeviceMapperServiceStub(self._channel)

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                failed = await self._drain()
                if not failed:
                    backoff = 0.2
                    self._retry_now.clear()
                    self._reached()
                    continue
                self._lose(failed[0][2])
                for key, op, _ in failed:
                    if key not in self._pending:  # not superseded meanwhile: retry it
                        self._pending[key] = op
                    self.stats.retries += 1
                delay = backoff * (0.5 + random.random())  # noqa: S311 - jitter
                key, op, err = failed[0]
                # A mapper not reached yet since this start (its record was stored) may simply
                # not run yet: it is synced when it registers; say so quietly until then.
                log.log(
                    logging.WARNING if self.stats.sent else logging.INFO,
                    "mapper %s: %s %s failed (%s)%s; retrying in %.1fs",
                    self.info.name,
                    op.kind,
                    op.key,
                    _short(err),
                    f" with {len(failed) - 1} more" if len(failed) > 1 else "",
                    delay,
                )
                # Dial afresh on the next try, as EdgeCore dials per call: a kept channel's
                # own reconnect backoff grows to minutes and fails calls fast meanwhile.
                await self._drop_channel()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._retry_now.wait()
                if self._retry_now.is_set():
                    self._retry_now.clear()
                    backoff = 0.2
                else:
                    backoff = min(backoff * 2, 30.0)

    def _lose(self, err: BaseException) -> None:
        """A ``MapperLost`` event the first time a mapper reached before stops answering."""
        if self.lost or not self.stats.sent:
            return
        self.lost = True
        self._dir.emit(
            "MapperLost",
            "warning",
            self.info.name,
            f"mapper {self.info.name} does not answer at {self.info.address}: {_short(err)}",
        )

    def _reached(self) -> None:
        if self.lost:
            self.lost = False
            self._dir.emit(
                "MapperReachable", "info", self.info.name, f"mapper {self.info.name} answers again"
            )

    async def _drain(self) -> list[tuple[str, _Op, BaseException]]:
        """Sends what is pending, up to :data:`LINK_CONCURRENCY` calls at once.

        Each call is on another object, and a new one starts as soon as one ends, so a slow
        call holds up only its own place (10,000 devices reach a mapper in seconds, not one
        round trip after another, nor one slowest-of-16 after another). An object changed
        while its call is in flight waits for that call. At the first failure no more calls
        start; the failures are returned once the calls in flight have ended.
        """
        running: dict[asyncio.Future[BaseException | None], tuple[str, _Op]] = {}
        busy: set[str] = set()
        failed: list[tuple[str, _Op, BaseException]] = []
        try:
            while True:
                while not failed and len(running) < LINK_CONCURRENCY:
                    key = next((k for k in self._pending if k not in busy), None)
                    if key is None:
                        break
                    op = self._pending.pop(key)
                    running[asyncio.ensure_future(self._attempt(key, op))] = (key, op)
                    busy.add(key)
                if not running:
                    return failed
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    key, op = running.pop(task)
                    busy.discard(key)
                    err = task.result()
                    if err is not None:
                        failed.append((key, op, err))
        finally:
            for task in running:
                task.cancel()

    async def _attempt(self, key: str, op: _Op) -> BaseException | None:
        """Sends one operation; the error to retry it for, or ``None`` (sent, or dropped)."""
        try:
            await self._send(op)
        except TwinplaneError:  # cannot be converted: retrying will not help
            self.stats.failed += 1
            log.exception("mapper %s: %s %s dropped", self.info.name, op.kind, op.key)
        except (grpc.aio.AioRpcError, OSError) as err:
            self.stats.failed += 1
            log.debug("mapper %s: %s %s failed: %s", self.info.name, op.kind, key, _short(err))
            return err
        return None

    async def _send(self, op: _Op) -> None:
        stub = self._stub()
        if op.kind == "model":
            model = self._dir.models().get(op.key)
            if model is None:
                return
            await self._send_model(stub, model)
        elif op.kind == "model-delete":
            self._sent_models.pop(op.key, None)
            await stub.RemoveDeviceModel(
                api_pb2.RemoveDeviceModelRequest(modelName=op.name, modelNamespace=op.namespace),
                timeout=CALL_TIMEOUT_S,
            )
        elif op.kind == "device":
            await self._send_device(stub, op)
        else:
            self._sent_devices.pop(op.key, None)
            await stub.RemoveDevice(
                api_pb2.RemoveDeviceRequest(deviceName=op.name, deviceNamespace=op.namespace),
                timeout=CALL_TIMEOUT_S,
            )
        self.stats.sent += 1

    async def _send_model(
        self, stub: api_pb2_grpc.DeviceMapperServiceStub, model: DeviceModel
    ) -> None:
        async with self._model_lock:  # a model and its devices' first sends run at once
            await self._send_model_locked(stub, model)

    async def _send_model_locked(
        self, stub: api_pb2_grpc.DeviceMapperServiceStub, model: DeviceModel
    ) -> None:
        pb = model_to_proto(model)
        data = pb.SerializeToString(deterministic=True)
        previous = self._sent_models.get(model.id)
        if previous == data:
            return
        if previous is None:
            await stub.CreateDeviceModel(
                api_pb2.CreateDeviceModelRequest(model=pb), timeout=CALL_TIMEOUT_S
            )
        else:
            await stub.UpdateDeviceModel(
                api_pb2.UpdateDeviceModelRequest(model=pb), timeout=CALL_TIMEOUT_S
            )
        self._sent_models[model.id] = data

    async def _send_device(self, stub: api_pb2_grpc.DeviceMapperServiceStub, op: _Op) -> None:
        found = self._dir.device(op.key)
        if found is None:
            return
        device, model = found
        if model.id not in self._sent_models:
            await self._send_model(stub, model)
        pb = device_to_proto(device, model, self._dir.desired(device.id))
        data = pb.SerializeToString(deterministic=True)
        previous = self._sent_devices.get(device.id)
        if previous == data:
            self.stats.skipped_unchanged += 1
            return
        if previous is None:
            await stub.RegisterDevice(
                api_pb2.RegisterDeviceRequest(device=pb), timeout=CALL_TIMEOUT_S
            )
        else:
            await stub.UpdateDevice(api_pb2.UpdateDeviceRequest(device=pb), timeout=CALL_TIMEOUT_S)
        self._sent_devices[device.id] = data


def _short(err: BaseException) -> str:
    if isinstance(err, grpc.aio.AioRpcError):
        return f"{err.code().name}: {err.details()}"
    return str(err)


def _rendezvous(device_id: str, mapper: str) -> int:
    digest = hashlib.blake2b(f"{mapper}\0{device_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass(slots=True)
class MapperDirectory:
    """Registered mappers, device ownership and their lifecycle links.

    Args:
        models: Returns the registry's models by id.
        devices: Returns the registry's devices by id.
        desired: Returns a device's current desired values (canonical text) by property.
        events: Where ``mapper`` events go (``MapperLost``, ``MapperReachable``), if anywhere.
    """

    models: Callable[[], dict[str, DeviceModel]]
    devices: Callable[[], dict[str, Device]]
    desired: Callable[[str], dict[str, str]]
    links: dict[str, MapperLink] = field(default_factory=dict)
    events: EdgeEvents | None = None

    def emit(self, reason: str, severity: Severity, mapper: str, message: str) -> None:
        """Publishes a ``mapper`` event (nothing without :attr:`events`)."""
        if self.events is not None:
            self.events.emit(
                type="mapper", reason=reason, severity=severity, device=mapper, message=message
            )

    def device(self, device_id: str) -> tuple[Device, DeviceModel] | None:
        """A device and its model, if both are known."""
        device = self.devices().get(device_id)
        if device is None:
            return None
        model = self.models().get(device.model_id)
        return None if model is None else (device, model)

    def owner(self, device: Device) -> MapperLink | None:
        """The mapper that owns a device, if one of its protocol is registered."""
        candidates = [
            link for link in self.links.values() if link.info.protocol == device.protocol_name
        ]
        if not candidates:
            return None
        pinned = (device.metadata.annotations or {}).get(OWNER_ANNOTATION)
        for link in candidates:
            if link.info.name == pinned:
                return link
        return max(candidates, key=lambda link: _rendezvous(device.id, link.info.name))

    def owned(self, link: MapperLink) -> list[tuple[Device, DeviceModel]]:
        """The devices a mapper owns, with their models."""
        out = []
        for device in self.devices().values():
            if self.owner(device) is link:
                found = self.device(device.id)
                if found is not None:
                    out.append(found)
        return out

    def devices_of(self, name: str) -> list[str]:
        """The ids of the devices the named mapper owns, sorted (none for an unknown name)."""
        link = self.links.get(name)
        if link is None:
            return []
        return sorted(d.id for d in self.devices().values() if self.owner(d) is link)

    def register(self, info: MapperInfo, *, with_data: bool) -> MapperLink:
        """Adds or refreshes a mapper and re-syncs the devices it owns.

        With ``with_data`` the caller returns the devices in the ``MapperRegister`` response and
        records them with :meth:`MapperLink.mark_sent`; otherwise they are queued to be pushed
        (``CreateDeviceModel``, ``RegisterDevice``). When the protocol's set of mappers changes,
        devices that move to another mapper are removed from the old one.
        """
        before = {d.id: self.owner(d) for d in self.devices().values()}
        link = self.links.get(info.name)
        if link is None or link.info.address != info.address or link.info.protocol != info.protocol:
            if link is not None:
                asyncio.get_running_loop().create_task(link.close())
            link = MapperLink(info, self)
            self.links[info.name] = link
            link.start()
        else:
            link.info = info
            link.retry_now()
        link.forget_sent()
        link.methods = None  # it may have restarted as another build: ask again
        if not with_data:
            for device, model in self.owned(link):
                link.enqueue(_Op("model", model.id, model.namespace, model.name))
                link.enqueue(_Op("device", device.id, device.namespace, device.name))
        for device_id, old in before.items():
            device = self.devices()[device_id]
            new = self.owner(device)
            if old is not None and new is not old:
                old.enqueue(_Op("device-delete", device_id, device.namespace, device.name))
        return link

    async def unregister(self, name: str) -> bool:
        """Forgets a mapper: stops its worker and contacts it no more; whether it was known.

        Its devices go to another mapper of the protocol if one is registered (pushed to it as
        ``CreateDeviceModel`` and ``RegisterDevice``), else they wait, unowned, for the next
        mapper of the protocol to register. The forgotten mapper is sent nothing, not even
        ``RemoveDevice``.
        """
        link = self.links.get(name)
        if link is None:
            return False
        moved = self.owned(link)
        del self.links[name]
        await link.close()
        for device, model in moved:
            new = self.owner(device)
            if new is not None:
                new.enqueue(_Op("model", model.id, model.namespace, model.name))
                new.enqueue(_Op("device", device.id, device.namespace, device.name))
        return True

    def on_lifecycle(self, action: str, object_id: str, obj: object | None) -> None:
        """The registry's lifecycle listener: queue what the mappers must hear."""
        namespace, _, name = object_id.partition("/")
        if action in ("device-upsert", "desired") and isinstance(obj, Device):
            link = self.owner(obj)
            if link is not None:
                link.enqueue(_Op("device", object_id, namespace, name))
        elif action == "device-delete" and isinstance(obj, Device):
            link = self.owner(obj)
            if link is not None:
                link.enqueue(_Op("device-delete", object_id, namespace, name))
        elif action == "model-upsert":
            for link in self._links_using(object_id):
                link.enqueue(_Op("model", object_id, namespace, name))
        elif action == "model-delete" and isinstance(obj, DeviceModel):
            for link in self.links.values():
                if link.has_model(object_id):
                    link.enqueue(_Op("model-delete", object_id, namespace, name))

    def _links_using(self, model_id: str) -> Iterable[MapperLink]:
        seen: dict[str, MapperLink] = {}
        for device in self.devices().values():
            if device.model_id == model_id:
                link = self.owner(device)
                if link is not None:
                    seen[link.info.name] = link
        return seen.values()

    async def close(self) -> None:
        """Stops every link."""
        for link in list(self.links.values()):
            await link.close()
