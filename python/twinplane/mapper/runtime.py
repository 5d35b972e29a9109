"""The mapper runtime: registration, the devices' lifecycle, buses and the reporter.

Startup: serve ``DeviceMapperService`` on the mapper's own socket first (so the device manager
can push to it at once), then ``MapperRegister`` (``withData``) until the manager answers —
retried with backoff, as a mapper may start before its device manager — and start every device
of the answer. Each device gets a driver client and joins the scheduler of its bus; the engine
keeps its twins. A device whose spec changes restarts alone; a change of desired values only is
written through the running client (KubeEdge would restart the device).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import grpc

from twinplane import heap
from twinplane.dmi.v1beta1 import api_pb2, api_pb2_grpc
from twinplane.drivers.base import DeviceClient, Driver, PropertyVisitor, WriteOp
from twinplane.errors import SpecError, TwinplaneError
from twinplane.mapper.config import MapperConfig
from twinplane.mapper.instance import DeviceInstance, device_id
from twinplane.mapper.reporter import CompatBudget, Reporter
from twinplane.mapper.scheduler import BusScheduler, ScheduledDevice, now_ms
from twinplane.mapper.sinks import DataPlane, apply_push_heartbeats  # data plane
from twinplane.twin import Engine, ValueLike

if TYPE_CHECKING:
    from twinplane.mapper.rest import MapperRestServer

__all__ = ["MapperRuntime", "RunningDevice", "register_mapper"]

log = logging.getLogger(__name__)

REGISTER_TIMEOUT_S: Final = 5.0
MAX_REGISTER_BACKOFF_S: Final = 5.0
POLL_TIMEOUT_S: Final = 5.0


async def register_mapper(
    stub: api_pb2_grpc.DeviceManagerServiceStub,
    cfg: MapperConfig,
    *,
    budget: CompatBudget | None = None,
) -> api_pb2.MapperRegisterResponse:
    """``MapperRegister`` (``withData``) until the device manager answers, with backoff.

    Args:
        stub: The device manager's DMI stub.
        cfg: The mapper's name, version, protocol and socket.
        budget: EdgeCore pacing (its limiter counts ``MapperRegister`` too, spec §2.1).
    """
    request = api_pb2.MapperRegisterRequest(
        withData=True,
        mapper=api_pb2.MapperInfo(
            name=cfg.name,
            version=cfg.version,
            api_version=cfg.api_version,
            protocol=cfg.protocol,
            address=str(cfg.socket_path).encode(),
            state="ok",
        ),
    )
    backoff = 0.1
    while True:
        if budget is not None:
            await budget.acquire()
        try:
            response: api_pb2.MapperRegisterResponse = await stub.MapperRegister(
                request, timeout=REGISTER_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as err:
            delay = backoff * (0.5 + random.random())  # noqa: S311 - jitter
            log.info(
                "device manager at %s not ready (%s); registering again in %.1fs",
                cfg.edgecore_sock,
                err.code().name,
                delay,
            )
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, MAX_REGISTER_BACKOFF_S)
        else:
            return response


@dataclass(slots=True)
class RunningDevice:
    """A started device: its decoded instance, client and place on a bus."""

    instance: DeviceInstance
    client: DeviceClient
    bus: BusScheduler
    scheduled: ScheduledDevice
    props: dict[str, PropertyVisitor] = field(default_factory=dict)


class MapperRuntime:
    """One mapper process's devices.

    Args:
        config: The mapper's settings.
        driver: The protocol driver.
    """

    def __init__(self, config: MapperConfig, driver: Driver) -> None:
        self._heap_held = False
        self.config = config
        self.driver = driver
        self.engine = Engine()
        self.models: dict[str, api_pb2.DeviceModel] = {}
        self.devices: dict[str, RunningDevice] = {}
        self.buses: dict[str, BusScheduler] = {}
        self.registered = asyncio.Event()
        self.registrations = 0
        self._lock = asyncio.Lock()
        self._channel: grpc.aio.Channel | None = None
        self.reporter: Reporter | None = None
        self._server: object | None = None
        self.rest: MapperRestServer | None = None
        self._register_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.data_plane = DataPlane(extra=config.sinks)  # data plane; + config `sinks:` section

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Serves the mapper socket and the REST data API, starts the reporter, registers."""
        from twinplane.mapper.rest import MapperRestServer  # noqa: PLC0415 - a cycle otherwise
        from twinplane.mapper.server import MapperServer  # noqa: PLC0415

        server = MapperServer(self)
        await server.start(self.config.socket_path)
        self._server = server
        rest = MapperRestServer(self)
        await rest.start(self.config.http_host, self.config.http_port)
        self.rest = rest
        self._channel = grpc.aio.insecure_channel(f"unix:{self.config.edgecore_sock}")
        interval = self.config.report_interval_ms / 1000 or None
        self.reporter = Reporter(
            self.engine,
            self._channel,
            interval_s=interval or 0.2,
            concurrency=self.config.dmi_concurrency,
            compat=self.config.edgecore_compat,
            states=self.device_states,
        )
        self.reporter.on_changes = self.data_plane.offer  # data plane
        self.reporter.start()
        heap.acquire()
        self._heap_held = True
        self._register_task = asyncio.create_task(self._register_loop(), name="mapper-register")

    async def stop(self) -> None:
        """Stops registering, reporting, every device and the server."""
        from twinplane.mapper.server import MapperServer  # noqa: PLC0415

        if self._register_task is not None:
            self._register_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._register_task
        if self.rest is not None:
            await self.rest.stop()
        if isinstance(self._server, MapperServer):
            await self._server.stop()
        if self.reporter is not None:
            await self.reporter.stop()
        for bus in self.buses.values():
            await bus.stop()
        for running in list(self.devices.values()):
            await self._stop_client(running)
        self.devices.clear()
        await self.data_plane.close()  # data plane: flush and close the sinks
        await self.driver.close()
        if self._channel is not None:
            await self._channel.close()
        if self._heap_held:
            self._heap_held = False
            heap.release()

    async def _register_loop(self) -> None:
        assert self._channel is not None  # noqa: S101
        stub = api_pb2_grpc.DeviceManagerServiceStub(self._channel)
        budget = self.reporter.budget if self.reporter is not None else None
        response = await register_mapper(stub, self.config, budget=budget)
        cfg = self.config
        if self.reporter is not None:  # fast path: TwinStream, or plain DMI (docs/mapper.md)
            await self.reporter.negotiate(cfg.name)
        await self.load(response)
        self.registrations += 1
        self.registered.set()
        log.info(
            "registered with the device manager",
            extra={"mapper": cfg.name, "devices": len(response.deviceList)},
        )

    async def load(self, response: api_pb2.MapperRegisterResponse) -> None:
        """Takes the models and devices of a ``MapperRegister`` answer (parallel lists)."""
        for model in response.modelList:
            self.models[device_id(model.namespace, model.name)] = model
        for device in response.deviceList:
            try:
                await self.register_device(device)
            except TwinplaneError:
                log.exception("device %s/%s cannot start", device.namespace, device.name)

    # -- devices --------------------------------------------------------------------------

    def model_of(self, device: api_pb2.Device) -> api_pb2.DeviceModel | None:
        """The model of a device, if known."""
        return self.models.get(device_id(device.namespace, device.spec.deviceModelReference))

    async def register_device(self, device: api_pb2.Device) -> bool:
        """Starts a device; a known device is left as it is. Returns whether it started."""
        async with self._lock:
            if device_id(device.namespace, device.name) in self.devices:
                return False
            await self._start(DeviceInstance.from_proto(device, self.model_of(device)))
            return True

    async def update_device(self, device: api_pb2.Device) -> str:
        """Applies a changed device.

        Returns:
            ``desired`` (written, no restart), ``restarted``, ``started`` (it was unknown) or
            ``unchanged``.
        """
        instance = DeviceInstance.from_proto(device, self.model_of(device))
        async with self._lock:
            running = self.devices.get(instance.id)
            if running is None:
                await self._start(instance)
                return "started"
            if running.instance.key == instance.key:
                old = running.instance.desired()
                running.instance = instance
                changed = {k: v for k, v in instance.desired().items() if old.get(k) != v}
                if not changed:
                    return "unchanged"
                await self._apply_desired(running, changed)
                return "desired"
            await self._stop(instance.id)
            await self._start(instance)
            return "restarted"

    async def remove_device(self, dev_id: str) -> bool:
        """Stops and forgets a device; returns whether it was running."""
        async with self._lock:
            return await self._stop(dev_id)

    async def _start(self, instance: DeviceInstance) -> None:
        driver = self.driver
        if instance.protocol.protocol_name != driver.protocol:
            raise SpecError(
                f"device {instance.id} speaks {instance.protocol.protocol_name!r}; "
                f"this mapper serves {driver.protocol!r}",
                device=instance.id,
                path="spec.protocol.protocolName",
            )
        bus_spec = driver.bus(instance.protocol)
        client = driver.new_client(instance.protocol)
        specs = instance.engine_specs(frames=driver.frames)
        apply_push_heartbeats(specs, instance.message)  # data plane: heartbeat = reportCycle
        index = self.engine.upsert_device(instance.id, specs)
        props = [
            PropertyVisitor(
                name=p.name,
                index=i,
                type=p.type,
                config=p.visitor,
                encode_write=self._encoder(instance.id, p.name) if driver.frames else None,
            )
            for i, p in enumerate(instance.properties)
        ]
        plan = self.engine.read_plan(index) if driver.frames else []
        bus = self.buses.get(bus_spec.key)
        if bus is None:
            bus = BusScheduler(bus_spec.key, self.engine, max_in_flight=bus_spec.max_in_flight)
            self.buses[bus_spec.key] = bus
            bus.start()
        scheduled = ScheduledDevice(
            device_id=instance.id,
            index=index,
            client=client,
            props=props,
            plan=plan,
            cycle_s=instance.collect_cycle_ms / 1000,
            timeout_s=min(POLL_TIMEOUT_S, max(instance.collect_cycle_ms / 1000, 0.5)),
        )
        running = RunningDevice(instance, client, bus, scheduled, {p.name: p for p in props})
        self.devices[instance.id] = running
        self.data_plane.add_device(instance.message)  # data plane: route to the sinks
        bus.add(scheduled)
        desired = instance.desired()
        if desired:
            self.engine.set_desired(instance.id, dict(desired), now_ms())
            for name, value in desired.items():
                task = asyncio.create_task(self._write(running, name, value))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        heap.changed()
        log.info("device %s started on bus %s", instance.id, bus.key)

    def _encoder(self, dev_id: str, prop: str) -> Callable[[ValueLike], WriteOp]:
        engine = self.engine

        def encode(value: ValueLike) -> WriteOp:
            return engine.encode_write(dev_id, prop, value)

        return encode

    async def _apply_desired(self, running: RunningDevice, values: dict[str, str]) -> None:
        self.engine.set_desired(running.instance.id, dict(values), now_ms())
        for name, value in values.items():
            await self._write(running, name, value)

    async def _write(self, running: RunningDevice, name: str, value: str) -> None:
        prop = running.props.get(name)
        if prop is None:
            return
        try:
            await running.bus.write(running.instance.id, prop, value)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # logged; the device stays up
            log.warning(
                "device %s: writing %s=%s failed: %s", running.instance.id, name, value, err
            )

    async def _stop(self, dev_id: str) -> bool:
        running = self.devices.pop(dev_id, None)
        if running is None:
            return False
        running.bus.remove(dev_id)
        await self._stop_client(running)
        with contextlib.suppress(TwinplaneError):
            self.engine.remove_device(dev_id)
        if self.reporter is not None:
            self.reporter.forget(dev_id)
        await self.data_plane.remove_device(dev_id)  # data plane
        heap.changed(removed=True)
        log.info("device %s stopped", dev_id)
        return True

    async def _stop_client(self, running: RunningDevice) -> None:
        try:
            await running.client.stop_device()
        except Exception:  # a driver bug must not keep the device half-stopped
            log.exception("device %s: stop_device failed", running.instance.id)

    # -- views ----------------------------------------------------------------------------

    async def device_states(self) -> dict[str, tuple[str, bool, int]]:
        """Per device: (state, report periodically, state cycle ms) for the reporter.

        A device the scheduler sees failing is ``offline`` or ``unhealthy``; otherwise the
        driver's :meth:`~twinplane.drivers.base.DeviceClient.get_device_states` decides, its
        ``ok`` meaning ``online``.
        """
        out: dict[str, tuple[str, bool, int]] = {}
        default = DeviceClient.get_device_states
        for dev_id, running in list(self.devices.items()):
            state = running.scheduled.state
            # A client without its own check (most) says "ok": no coroutine per device then.
            if state == "online" and type(running.client).get_device_states is not default:
                try:
                    driver_state = (await running.client.get_device_states()).strip().lower()
                except Exception:  # a driver bug: the device is not healthy
                    log.exception("device %s: get_device_states failed", dev_id)
                    driver_state = "unhealthy"
                state = "online" if driver_state in ("ok", "") else driver_state
            out[dev_id] = (state, running.instance.state_report, running.instance.state_cycle_ms)
        return out

    def get_device(self, dev_id: str) -> api_pb2.Device | None:
        """The device message with its current twins in ``status.twins``."""
        running = self.devices.get(dev_id)
        if running is None:
            return None
        out = api_pb2.Device()
        out.CopyFrom(running.instance.message)
        del out.status.twins[:]
        for name, twin in self.engine.twins(dev_id).items():
            pb = out.status.twins.add(propertyName=name)
            meta = {"type": twin["type"].lower()}
            desired, reported = twin["desired"], twin["reported"]
            pb.observedDesired.value = desired["value"] if desired else ""
            pb.observedDesired.metadata.update(
                {**meta, "timestamp": str(desired["timestamp"]) if desired else ""}
            )
            pb.reported.value = reported["value"] if reported else ""
            pb.reported.metadata.update(
                {**meta, "timestamp": str(reported["timestamp"]) if reported else ""}
            )
        return out
