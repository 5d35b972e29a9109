"""A Python imitation of mapper-framework's design, against twinplane's device manager.

What it is: the baseline of ``twinplane bench scale --baseline mapper-framework-imitation``
(:data:`twinplane.loadtest.baselines.IMITATION`),
written here in Python after KubeEdge mapper-framework's design (per-property tickers, one
unary report per property), reporting to twinplane's own device manager. It is **not**
KubeEdge's code and not a Go mapper: its figures measure that design run in Python with
twinplane's parts, not KubeEdge (a baseline built from mapper-framework's Go code is a later
issue). It runs beside twinplane's own mapper on the same load, so the difference between the
two is the design, not the parts. From mapper-framework it takes:

- **one ticker per property** (``TwinData.Run``): every property with a Modbus visitor gets its
  own loop at its ``collectCycle``, which reads only that property's registers (its visitor's
  ``register``/``offset``/``limit``): one Modbus request per property per cycle, no coalescing of
  neighbouring registers;
- **one report per sample** (``TwinData.PushToEdgeCore``): each value goes out as its own unary
  DMI ``ReportDeviceStatus`` carrying one twin (``reported`` and ``observedDesired``), every
  cycle, with **no change detection**, and the loop awaits the call before its next tick;
- a ticker that drops ticks (Go's ``time.Ticker``): a loop still busy when its next poll is due
  skips that poll (counted late) and never bursts to catch up;
- errors logged and dropped: a failed read or report is counted and the loop goes on at its next
  tick (no backoff), and desired values of ReadWrite properties are written when a device starts;
  ``UpdateDevice`` restarts the device.

It is meant to be fair, not a strawman: it uses twinplane's Modbus client
(:class:`~twinplane.drivers.modbus.tcp.ModbusTcpClient`, one shared connection per TCP endpoint
with the devices' ``maxInFlight``, where mapper-framework's driver locks one connection per
device), decodes in Rust (:func:`twinplane.twin.decode_register`, one call per sample, from the
read plan the engine makes for a one-property layout), keeps one gRPC channel with a pre-built
stub (mapper-framework dials a new connection per report), runs on uvloop and has the product
mapper's garbage-collector policy (:mod:`twinplane.heap`: acquired at start, told of every
device started or stopped). Device intake is the product's: ``MapperRegister`` with
``withData``, the seven ``DeviceMapperService`` RPCs on its own socket, devices decoded by
:class:`~twinplane.mapper.instance.DeviceInstance`, Modbus settings by
:class:`~twinplane.protocols.modbus.ModbusEndpoint`. Only Modbus TCP devices are served.

Counters are served as Prometheus text on ``GET /metrics`` (every name ``twinplane_mapper_``, as
the product's, so one scraper reads both).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import grpc
from aiohttp import web
from aiohttp.typedefs import Handler

from twinplane import __version__, heap
from twinplane.dmi.v1beta1 import api_pb2, api_pb2_grpc
from twinplane.drivers.modbus.pool import ClientPool
from twinplane.drivers.modbus.tcp import ModbusTcpClient
from twinplane.errors import SpecError
from twinplane.loadtest.baselines import IMITATION
from twinplane.mapper.config import MapperConfig
from twinplane.mapper.instance import DeviceInstance, InstanceProperty, StatusTwin, device_id
from twinplane.mapper.register import load_answer, register_mapper
from twinplane.mapper.runtime import POLL_TIMEOUT_S
from twinplane.mapper.scheduler import ON_TIME_TOLERANCE, now_ms
from twinplane.mapper.server import MapperServer
from twinplane.metrics import CONTENT_TYPE, MetricsWriter
from twinplane.protocols.modbus import ModbusEndpoint as ModbusSettings
from twinplane.rest.guard import RequestGuard, RequestRefused
from twinplane.service import STOP_SIGNALS, stop_on_signals
from twinplane.twin import Engine, PropertyTypeName, VisitorConfig, decode_register, encode_register

__all__ = [
    "ON_TIME_TOLERANCE",
    "BaselineStats",
    "ImitationMapper",
    "run_imitation_mapper",
]

log = logging.getLogger(__name__)

REPORT_TIMEOUT_S: Final = 1.0
"""Deadline of one ``ReportDeviceStatus`` call (mapper-framework's context timeout)."""

MODBUS_TIMEOUT_S: Final = 3.0
"""Seconds a Modbus request may wait for its response (the product's Modbus driver default)."""

PREFIX: Final = "twinplane_mapper_"

_GOLDEN: Final = 0.618_033_988_749_895


@dataclass(slots=True)
class BaselineStats:
    """The baseline's counters (what ``/metrics`` serves).

    Attributes:
        bus_polls: Successful property polls, by TCP endpoint.
        bus_poll_errors: Failed property polls, by TCP endpoint.
        on_time: Successful polls that started and finished in time.
        late: Polls that were late: started or finished too late, or skipped (busy loop).
        skipped: Of ``late``, polls skipped because the loop was still busy.
        report_errors: ``ReportDeviceStatus`` calls that failed.
        twins: Twins reported (one per successful poll).
        reports_sent: ``ReportDeviceStatus`` calls that succeeded.
        state_reports: ``ReportDeviceStates`` calls that succeeded.
        state_errors: ``ReportDeviceStates`` calls that failed.
        registrations: Successful ``MapperRegister`` calls.
    """

    bus_polls: dict[str, int] = field(default_factory=dict)
    bus_poll_errors: dict[str, int] = field(default_factory=dict)
    on_time: int = 0
    late: int = 0
    skipped: int = 0
    report_errors: int = 0
    twins: int = 0
    reports_sent: int = 0
    state_reports: int = 0
    state_errors: int = 0
    registrations: int = 0

    @property
    def polls(self) -> int:
        """Successful property polls on every endpoint."""
        return sum(self.bus_polls.values())

    @property
    def poll_errors(self) -> int:
        """Failed property polls on every endpoint."""
        return sum(self.bus_poll_errors.values())


@dataclass(slots=True, eq=False)
class _PropertyLoop:
    """One property's ticker: what it reads, how it decodes, its health and last value."""

    name: str
    type: PropertyTypeName
    visitor: VisitorConfig
    kind: str
    start: int
    count: int
    cycle_s: float
    timeout_s: float
    desired: str
    state: str = "unknown"
    error: str | None = None
    value: str | None = None
    timestamp: int = 0


@dataclass(slots=True, eq=False)
class _Device:
    """A started device: its decoded instance, shared client, loops and reported state."""

    instance: DeviceInstance
    settings: ModbusSettings
    client: ModbusTcpClient
    props: list[_PropertyLoop]
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    sent_state: str = "unknown"
    state_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def state(self) -> str:
        """``offline`` or ``unhealthy`` when a property's last poll failed, else its polls'."""
        states = {p.state for p in self.props}
        for worst in ("offline", "unhealthy", "unknown"):
            if worst in states:
                return worst
        return "online" if states else "unknown"


def _open_tcp(settings: ModbusSettings) -> ModbusTcpClient:
    return ModbusTcpClient(
        settings.host,
        settings.port,
        timeout=MODBUS_TIMEOUT_S,
        max_in_flight=settings.max_in_flight,
    )


class ImitationMapper:
    """The imitation of mapper-framework: per-property tickers, one unary report per sample.

    Args:
        config: The mapper's settings (protocol ``modbus``).

    Attributes:
        stats: The counters ``/metrics`` serves.
        registered: Set once ``MapperRegister`` succeeded and its devices started.
        url: The metrics server's base URL once started.
    """

    def __init__(self, config: MapperConfig) -> None:
        self.config = config
        self.stats = BaselineStats()
        self.models: dict[str, api_pb2.DeviceModel] = {}
        self.devices: dict[str, _Device] = {}
        self.registered = asyncio.Event()
        self.url = ""
        self._planner = Engine()
        self._endpoints: ClientPool[ModbusTcpClient] = ClientPool()  # one per TCP endpoint
        self._lock = asyncio.Lock()
        self._loops_started = 0
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None
        self._server: MapperServer | None = None
        self._runner: web.AppRunner | None = None
        self._guard: RequestGuard | None = None
        self._register_task: asyncio.Task[None] | None = None
        self._heap_held = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Serves the mapper socket and ``/metrics``, then registers in the background.

        The collector policy is the product mapper's (:func:`twinplane.heap.acquire`), from
        here until :meth:`stop`.

        Raises:
            OSError: The socket or the HTTP address cannot be bound.
        """
        path = self.config.socket_path
        server = MapperServer(self)  # the product's DeviceMapperService, over this mapper
        await server.start(path)
        self._server = server
        await self._serve_metrics()
        self._channel = grpc.aio.insecure_channel(f"unix:{self.config.edgecore_sock}")
        self._stub = api_pb2_grpc.DeviceManagerServiceStub(self._channel)
        heap.acquire()
        self._heap_held = True
        self._register_task = asyncio.create_task(self._register_loop(), name="imitation-register")
        log.info(
            "mapper-framework imitation serving",
            extra={"socket": str(path), "metrics": f"{self.url}/metrics"},
        )

    async def stop(self) -> None:
        """Stops registering, every device's loops, the servers and the channel."""
        if self._register_task is not None:
            self._register_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._register_task
        if self._server is not None:
            await self._server.stop()
            self._server = None
        async with self._lock:
            for dev_id in list(self.devices):
                await self._stop(dev_id)
        await self._endpoints.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._channel is not None:
            await self._channel.close()
        if self._heap_held:
            self._heap_held = False
            heap.release()

    async def _serve_metrics(self) -> None:
        app = web.Application(middlewares=[self._guarded])
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.config.http_host, self.config.http_port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host = self.config.http_host
        self._guard = RequestGuard(host, runner.addresses[0][1])
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{runner.addresses[0][1]}"

    @web.middleware
    async def _guarded(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """``Host`` and ``Origin`` are checked as on every twinplane REST server."""
        if self._guard is not None:
            try:
                self._guard.check(request)
            except RequestRefused as err:
                body = {"message": err.message, "header": err.header}
                return web.json_response(body, status=err.status)
        return await handler(request)

    async def _metrics(self, request: web.Request) -> web.Response:
        del request
        return web.Response(
            body=self.render_metrics().encode(), headers={"Content-Type": CONTENT_TYPE}
        )

    async def _register_loop(self) -> None:
        cfg = self.config
        response = await register_mapper(self._stub, cfg)
        await load_answer(self, response)
        self.stats.registrations += 1
        self.registered.set()
        log.info(
            "registered with the device manager",
            extra={"mapper": cfg.name, "devices": len(response.deviceList)},
        )

    # -- devices --------------------------------------------------------------------------

    def model_of(self, device: api_pb2.Device) -> api_pb2.DeviceModel | None:
        """The model of a device, if known."""
        return self.models.get(device_id(device.namespace, device.spec.deviceModelReference))

    async def register_device(self, device: api_pb2.Device) -> bool:
        """Starts a device; a known device is left as it is. Returns whether it started.

        Raises:
            SpecError: The device is not a Modbus TCP device, or a visitor is invalid.
        """
        async with self._lock:
            if device_id(device.namespace, device.name) in self.devices:
                return False
            self._start(DeviceInstance.from_proto(device, self.model_of(device)))
            return True

    async def update_device(self, device: api_pb2.Device) -> str:
        """Applies a changed device as mapper-framework does: any change restarts it.

        Returns:
            ``unchanged``, ``restarted`` or ``started`` (it was unknown).
        """
        instance = DeviceInstance.from_proto(device, self.model_of(device))
        async with self._lock:
            running = self.devices.get(instance.id)
            if running is None:
                self._start(instance)
                return "started"
            old = running.instance
            if old.key == instance.key and old.desired() == instance.desired():
                return "unchanged"
            await self._stop(instance.id)
            self._start(instance)
            return "restarted"

    async def remove_device(self, dev_id: str) -> bool:
        """Stops a device's loops and forgets it; returns whether it was running."""
        async with self._lock:
            return await self._stop(dev_id)

    def _start(self, instance: DeviceInstance) -> None:
        if instance.protocol.protocol_name != self.config.protocol:
            raise SpecError(
                f"device {instance.id} speaks {instance.protocol.protocol_name!r}; "
                f"this mapper serves {self.config.protocol!r}",
                device=instance.id,
                path="spec.protocol.protocolName",
            )
        settings = ModbusSettings.parse(instance.protocol.config)
        if settings.mode != "TCP":
            raise SpecError(
                f"device {instance.id}: the baseline mapper serves Modbus TCP only",
                device=instance.id,
                path="spec.protocol.configData.communicateMode",
            )
        props = [self._plan(instance, p) for p in instance.properties if p.visitor]
        dev = _Device(
            instance,
            settings,
            self._endpoints.acquire(settings.bus_key, lambda: _open_tcp(settings)),
            props,
        )
        self.devices[instance.id] = dev
        loop = asyncio.get_running_loop()
        for prop in props:
            fraction = (self._loops_started * _GOLDEN) % 1.0
            self._loops_started += 1
            first_due = loop.time() + fraction * prop.cycle_s
            self._spawn(dev, self._run_loop(dev, prop, first_due), f"{instance.id}/{prop.name}")
        for spec in instance.properties:
            if spec.writable and spec.desired and spec.visitor:
                self._spawn(dev, self._write_desired(dev, spec), f"{instance.id}/{spec.name}=")
        heap.changed()
        log.info("device %s started: %d property loops", instance.id, len(props))

    def _plan(self, instance: DeviceInstance, prop: InstanceProperty) -> _PropertyLoop:
        """The one read of a property: the engine's plan for a one-property layout."""
        visitor: VisitorConfig = prop.visitor  # type: ignore[assignment]
        key = f"{instance.id}\x00{prop.name}"
        index = self._planner.upsert_device(
            key, [{"name": prop.name, "type": prop.type, "visitor": visitor}]
        )
        try:
            plan = self._planner.read_plan(index)
        finally:
            self._planner.remove_device(key)
        if len(plan) != 1:
            raise SpecError(
                f"device {instance.id}: property {prop.name} needs {len(plan)} reads, not one",
                device=instance.id,
                property=prop.name,
            )
        kind, start, count = plan[0]
        cycle_s = prop.collect_cycle_ms / 1000
        return _PropertyLoop(
            name=prop.name,
            type=prop.type,
            visitor=visitor,
            kind=kind,
            start=start,
            count=count,
            cycle_s=cycle_s,
            timeout_s=min(POLL_TIMEOUT_S, max(cycle_s, 0.5)),
            desired=prop.desired,
        )

    def _spawn(self, dev: _Device, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        dev.tasks.add(task)
        task.add_done_callback(dev.tasks.discard)

    async def _stop(self, dev_id: str) -> bool:
        dev = self.devices.pop(dev_id, None)
        if dev is None:
            return False
        tasks = list(dev.tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._endpoints.release(dev.settings.bus_key)
        heap.changed(removed=True)
        log.info("device %s stopped", dev_id)
        return True

    async def _write_desired(self, dev: _Device, prop: InstanceProperty) -> None:
        """mapper-framework writes a ReadWrite property's desired value when a device starts."""
        visitor: VisitorConfig = prop.visitor  # type: ignore[assignment]
        try:
            write = encode_register(visitor, prop.type, prop.desired)
            async with asyncio.timeout(POLL_TIMEOUT_S):
                await dev.client.execute_write(dev.settings.unit, write)
        except Exception as err:  # logged and dropped, as mapper-framework does
            log.warning(
                "device %s: writing %s=%s failed: %s", dev.instance.id, prop.name, prop.desired, err
            )

    # -- the per-property ticker ----------------------------------------------------------

    async def _run_loop(self, dev: _Device, prop: _PropertyLoop, first_due: float) -> None:
        """``TwinData.Run``: poll and report at every tick; a tick while busy is dropped."""
        loop = asyncio.get_running_loop()
        due = first_due
        while True:
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._poll(dev, prop, due)
            due += prop.cycle_s
            now = loop.time()
            if now >= due:  # busy through the next tick(s): dropped, like Go's time.Ticker
                missed = int((now - due) // prop.cycle_s) + 1
                self.stats.late += missed
                self.stats.skipped += missed
                due += missed * prop.cycle_s

    async def _poll(self, dev: _Device, prop: _PropertyLoop, due: float) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        bus = dev.settings.bus_key
        try:
            async with asyncio.timeout(prop.timeout_s):
                frame = await dev.client.read(dev.settings.unit, prop.kind, prop.start, prop.count)
            ts = now_ms()
            done = loop.time()
            value = decode_register(prop.visitor, prop.type, prop.start, frame)
        except Exception as err:  # the loop goes on at its next tick
            self.stats.bus_poll_errors[bus] = self.stats.bus_poll_errors.get(bus, 0) + 1
            self._failed(dev, prop, err)
            await self._sync_state(dev)
            return
        self.stats.bus_polls[bus] = self.stats.bus_polls.get(bus, 0) + 1
        cycle = prop.cycle_s
        if started <= due + ON_TIME_TOLERANCE * cycle and done <= due + cycle:
            self.stats.on_time += 1
        else:
            self.stats.late += 1
        if prop.error is not None:
            log.info("device %s: %s answers again", dev.instance.id, prop.name)
        prop.error = None
        prop.state = "online"
        prop.value, prop.timestamp = value, ts
        if dev.sent_state != "online":
            await self._sync_state(dev)
        await self._report(dev, prop, value, ts)

    def _failed(self, dev: _Device, prop: _PropertyLoop, err: Exception) -> None:
        timeout = isinstance(err, TimeoutError | ConnectionError | OSError)
        prop.state = "offline" if timeout else "unhealthy"
        text = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        if text != prop.error:  # once per kind of error, not per tick
            prop.error = text
            log.warning("device %s: reading %s failed: %s", dev.instance.id, prop.name, text)

    async def _report(self, dev: _Device, prop: _PropertyLoop, value: str, ts: int) -> None:
        """``PushToEdgeCore``: one unary ``ReportDeviceStatus`` with this one twin, awaited."""
        type_name = prop.type.lower()
        request = api_pb2.ReportDeviceStatusRequest(
            deviceName=dev.instance.name,
            deviceNamespace=dev.instance.namespace,
            reportedDevice=api_pb2.DeviceStatus(
                twins=[
                    api_pb2.Twin(
                        propertyName=prop.name,
                        observedDesired=api_pb2.TwinProperty(
                            value=prop.desired, metadata={"type": type_name, "timestamp": ""}
                        ),
                        reported=api_pb2.TwinProperty(
                            value=value, metadata={"timestamp": str(ts), "type": type_name}
                        ),
                    )
                ]
            ),
        )
        self.stats.twins += 1
        try:
            await self._stub.ReportDeviceStatus(request, timeout=REPORT_TIMEOUT_S)
        except grpc.aio.AioRpcError as err:
            self.stats.report_errors += 1
            log.debug("device %s: report of %s failed: %s", dev.instance.id, prop.name, err)
            return
        self.stats.reports_sent += 1

    async def _sync_state(self, dev: _Device) -> None:
        """One ``ReportDeviceStates`` per change of the device's state."""
        async with dev.state_lock:
            state = dev.state()
            if state in ("unknown", dev.sent_state):
                return
            request = api_pb2.ReportDeviceStatesRequest(
                deviceName=dev.instance.name, deviceNamespace=dev.instance.namespace, state=state
            )
            try:
                await self._stub.ReportDeviceStates(request, timeout=REPORT_TIMEOUT_S)
            except grpc.aio.AioRpcError as err:
                self.stats.state_errors += 1
                log.debug("device %s: state report failed: %s", dev.instance.id, err)
                return
            self.stats.state_reports += 1
            dev.sent_state = state

    # -- views ----------------------------------------------------------------------------

    def get_device(self, dev_id: str) -> api_pb2.Device | None:
        """The device message with its last reported values in ``status.twins``."""
        dev = self.devices.get(dev_id)
        if dev is None:
            return None
        return dev.instance.with_twins(
            StatusTwin(
                p.name,
                p.type,
                p.desired,
                "",
                p.value or "",
                str(p.timestamp) if p.value is not None else "",
            )
            for p in dev.props
        )

    def loops(self) -> Iterator[tuple[str, str]]:
        """``(device id, property)`` of every running property loop."""
        for dev_id, dev in list(self.devices.items()):
            running = {t.get_name() for t in dev.tasks if not t.done()}
            for prop in dev.props:
                if f"{dev_id}/{prop.name}" in running:
                    yield dev_id, prop.name

    def render_metrics(self) -> str:
        """The counters as Prometheus text (format 0.0.4)."""
        s = self.stats
        out = MetricsWriter(prefix=PREFIX)
        out.family(
            "build_info",
            "gauge",
            f"The twinplane version and the mapper's protocol; style: {IMITATION.description}.",
            [
                (
                    {
                        "version": __version__,
                        "protocol": self.config.protocol,
                        "style": IMITATION.name,
                    },
                    1,
                )
            ],
        )
        out.single(
            "registrations_total", "counter", "Successful MapperRegister calls.", s.registrations
        )
        buses = sorted(set(s.bus_polls) | set(s.bus_poll_errors))
        out.family(
            "bus_polls_total",
            "counter",
            "Property polls that succeeded, by TCP endpoint.",
            [({"bus": b}, s.bus_polls.get(b, 0)) for b in buses],
        )
        out.family(
            "bus_poll_errors_total",
            "counter",
            "Property polls that failed, by TCP endpoint.",
            [({"bus": b}, s.bus_poll_errors.get(b, 0)) for b in buses],
        )
        out.single(
            "polls_on_time_total",
            "counter",
            "Polls that started within 10% of their cycle after their due time and read in time.",
            s.on_time,
        )
        out.single(
            "polls_late_total",
            "counter",
            "Polls that started or finished late, or were skipped because their loop was busy.",
            s.late,
        )
        out.family(
            "reports_sent_total",
            "counter",
            "ReportDeviceStatus calls that succeeded (one twin each).",
            [({"path": "unary"}, s.reports_sent)],
        )
        out.single(
            "report_errors_total",
            "counter",
            "ReportDeviceStatus calls that failed.",
            s.report_errors,
        )
        out.single("twin_changes_total", "counter", "Twins reported (one per poll).", s.twins)
        out.single(
            "state_reports_sent_total", "counter", "ReportDeviceStates calls sent.", s.state_reports
        )
        out.single(
            "state_report_errors_total",
            "counter",
            "ReportDeviceStates calls that failed.",
            s.state_errors,
        )
        return out.render()


# -- entry points -------------------------------------------------------------------------------


async def run_imitation_mapper(
    config: MapperConfig,
    *,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Runs the imitation until SIGINT/SIGTERM (or ``stop`` is set), then stops cleanly.

    Args:
        config: The mapper's settings.
        stop: Set to stop (signals set it too).
        ready: Set once the mapper is registered and its devices' loops run.

    Raises:
        OSError: The socket or the metrics address cannot be bound.
    """
    stop = stop_on_signals(stop)
    loop = asyncio.get_running_loop()
    mapper = ImitationMapper(config)
    try:
        await mapper.start()
        registered = asyncio.ensure_future(mapper.registered.wait())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({registered, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            registered.cancel()
            stopping.cancel()
        if mapper.registered.is_set() and ready is not None:
            ready.set()
        await stop.wait()
    finally:
        await mapper.stop()
        for sig in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
