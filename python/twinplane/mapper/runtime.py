"""The mapper runtime: the devices' lifecycle, their buses and the engine.

Each device the device manager gives (the ``MapperRegister`` answer, then the
``DeviceMapperService`` calls) gets a driver client and joins the scheduler of its bus; the
engine keeps its twins and the data plane its sink routes. A device whose spec changes restarts
alone; a change of desired values only is written through the running client (KubeEdge would
restart the device). Desired values are written in the background by the
:class:`~twinplane.mapper.desired_writes.DesiredWriter` (retried while the failure is
transient, superseded by a newer value), so ``UpdateDevice`` answers without waiting for the
device.

The runtime serves nothing and registers nowhere: the mapper's composition root
(:mod:`twinplane.mapper.app`) builds the servers, the reporter and the data plane around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Final

from twinplane import heap
from twinplane.dmi.v1beta1 import api_pb2
from twinplane.drivers.base import DeviceClient, Driver, PropertyVisitor, WriteOp
from twinplane.errors import SpecError, TwinplaneError
from twinplane.mapper.config import MapperConfig
from twinplane.mapper.cycles import PropertyCycles
from twinplane.mapper.desired_writes import DesiredWriter, WritePolicy
from twinplane.mapper.instance import DeviceInstance, StatusTwin, device_id
from twinplane.mapper.scheduler import BusScheduler, ScheduledDevice, now_ms
from twinplane.mapper.sinks import DataPlane, apply_push_heartbeats  # data plane
from twinplane.twin import Engine, ValueLike

__all__ = ["POLL_TIMEOUT_S", "MapperRuntime", "RunningDevice"]

log = logging.getLogger(__name__)

POLL_TIMEOUT_S: Final = 5.0
"""Longest deadline of one poll (shorter cycles get their cycle, at least 0.5 s)."""


@dataclass(slots=True)
class RunningDevice:
    """A started device: its decoded instance, client and place on a bus."""

    instance: DeviceInstance
    client: DeviceClient
    bus: BusScheduler
    scheduled: ScheduledDevice
    props: dict[str, PropertyVisitor] = field(default_factory=dict)


class MapperRuntime:
    """One mapper process's devices, their buses and the engine.

    It implements :class:`~twinplane.mapper.server.MapperHost`, what ``DeviceMapperService``
    drives.

    Args:
        config: The mapper's settings.
        driver: The protocol driver.
        data_plane: Where each started device's push methods and database sinks are routed.

    Attributes:
        writer: The desired-value writes (its ``on_result`` receives each value's outcome).
        on_comm_error: Called with ``(device_id, error)`` for each failed poll (the mapper's
            :class:`~twinplane.mapper.comm_errors.CommErrorReporter` counts them), if set.
    """

    def __init__(self, config: MapperConfig, driver: Driver, data_plane: DataPlane) -> None:
        self.config = config
        self.driver = driver
        self.engine = Engine()
        self.models: dict[str, api_pb2.DeviceModel] = {}
        self.devices: dict[str, RunningDevice] = {}
        self.buses: dict[str, BusScheduler] = {}
        self.data_plane = data_plane
        self.writer = DesiredWriter(
            WritePolicy(attempts=config.write_attempts, backoff_s=config.write_backoff_ms / 1000)
        )
        self._lock = asyncio.Lock()
        self._removal_listeners: list[Callable[[str], None]] = []
        self.on_comm_error: Callable[[str, BaseException], None] | None = None

    def _comm_error(self, device_id: str, err: BaseException) -> None:
        if self.on_comm_error is not None:
            try:
                self.on_comm_error(device_id, err)
            except Exception:  # a counting bug must not break the poll loop
                log.exception("communication error listener failed")

    def add_removal_listener(self, listener: Callable[[str], None]) -> None:
        """Calls ``listener(device_id)`` when a device stops (the reporter forgets it)."""
        self._removal_listeners.append(listener)

    async def stop(self) -> None:
        """Stops the desired writes, every bus and device, then the driver."""
        await self.writer.stop()
        for bus in self.buses.values():
            await bus.stop()
        for running in list(self.devices.values()):
            await self._stop_client(running)
        self.devices.clear()
        await self.driver.close()

    async def stop_polling(self) -> None:
        """Stops every bus: no poll or write starts from now on (the devices stay)."""
        for bus in list(self.buses.values()):
            await bus.stop()

    # -- devices --------------------------------------------------------------------------

    def model_of(self, device: api_pb2.Device) -> api_pb2.DeviceModel | None:
        """The model of a device, if known."""
        return self.models.get(device_id(device.namespace, device.spec.deviceModelReference))

    async def register_device(self, device: api_pb2.Device) -> bool:
        """Starts a device. Returns whether it started.

        A known device is updated as :meth:`update_device` would (nothing happens when it is
        unchanged): a device manager that restarted sends every device again with
        ``RegisterDevice``, and a desired value set meanwhile must not be lost.
        """
        async with self._lock:
            if device_id(device.namespace, device.name) not in self.devices:
                await self._start(DeviceInstance.from_proto(device, self.model_of(device)))
                return True
        return await self.update_device(device) == "started"

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
                self._apply_desired(running, changed)
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
        cycles = PropertyCycles.of(
            props,
            [p.collect_cycle_ms for p in instance.properties],
            partial(self.engine.read_plan, index) if driver.frames else None,
        )
        bus = self.buses.get(bus_spec.key)
        if bus is None:
            bus = BusScheduler(
                bus_spec.key,
                self.engine,
                max_in_flight=bus_spec.max_in_flight,
                spread=bus_spec.spread,
                on_error=self._comm_error,
            )
            self.buses[bus_spec.key] = bus
            bus.start()
        elif bus_spec.spread:
            bus.spread = True  # a device taking one transaction at a time joined
        scheduled = ScheduledDevice(
            device_id=instance.id,
            index=index,
            client=client,
            props=props,
            plan=plan,
            cycle_s=instance.collect_cycle_ms / 1000,
            timeout_s=min(POLL_TIMEOUT_S, max(instance.collect_cycle_ms / 1000, 0.5)),
            cycles=cycles,
        )
        running = RunningDevice(instance, client, bus, scheduled, {p.name: p for p in props})
        self.devices[instance.id] = running
        self.data_plane.add_device(instance.message)  # data plane: route to the sinks
        bus.add(scheduled)
        desired = instance.desired()
        if desired:
            self._apply_desired(running, dict(desired))
        heap.changed()
        log.info("device %s started on bus %s", instance.id, bus.key)

    def _encoder(self, dev_id: str, prop: str) -> Callable[[ValueLike], WriteOp]:
        engine = self.engine

        def encode(value: ValueLike) -> WriteOp:
            return engine.encode_write(dev_id, prop, value)

        return encode

    def _apply_desired(self, running: RunningDevice, values: dict[str, str]) -> None:
        """Takes the desired values into the engine and writes them in the background."""
        dev_id = running.instance.id
        self.engine.set_desired(dev_id, dict(values), now_ms())
        for name, value in values.items():
            prop = running.props.get(name)
            if prop is not None:
                self.writer.submit(
                    dev_id, name, value, partial(running.bus.write, dev_id, prop, value)
                )

    async def _stop(self, dev_id: str) -> bool:
        running = self.devices.pop(dev_id, None)
        if running is None:
            return False
        self.writer.forget(dev_id)  # a restart writes its desired values again
        running.bus.remove(dev_id)
        await self._stop_client(running)
        with contextlib.suppress(TwinplaneError):
            self.engine.remove_device(dev_id)
        for listener in self._removal_listeners:
            listener(dev_id)
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
        twins = []
        for name, twin in self.engine.twins(dev_id).items():
            desired, reported = twin["desired"], twin["reported"]
            twins.append(
                StatusTwin(
                    name,
                    twin["type"],
                    desired["value"] if desired else "",
                    str(desired["timestamp"]) if desired else "",
                    reported["value"] if reported else "",
                    str(reported["timestamp"]) if reported else "",
                )
            )
        return running.instance.with_twins(twins)
