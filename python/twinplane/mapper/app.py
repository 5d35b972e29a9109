"""``twinplane mapper``: the mapper process, composed from its parts.

Startup order: serve ``DeviceMapperService`` on the mapper's own socket (so the device manager
can push to it at once) → the REST data API → the channel to the device manager, the twin and
state reporter (its changes also feed the data plane) and the desired-write outcome reporter →
``MapperRegister`` in the background, after which the fast path is negotiated (it says whether
the device manager takes write outcomes) and every device of the answer starts. Shutdown runs
the other way: registration, REST API, server, reporters, the runtime (desired writes, buses,
devices, driver), the data plane (sinks flushed), the channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc

from twinplane import heap
from twinplane.dmi.v1beta1 import api_pb2_grpc
from twinplane.drivers.base import Driver
from twinplane.mapper.comm_errors import CommErrorReporter
from twinplane.mapper.config import MapperConfig
from twinplane.mapper.methods_service import MethodsServicer
from twinplane.mapper.metrics import render_mapper_metrics
from twinplane.mapper.register import load_answer, register_mapper
from twinplane.mapper.reporter import Reporter
from twinplane.mapper.rest import MapperRestServer
from twinplane.mapper.runtime import MapperRuntime
from twinplane.mapper.server import MapperServer
from twinplane.mapper.sinks import DataPlane
from twinplane.mapper.write_outcomes import WriteOutcomeReporter
from twinplane.service import serve

__all__ = ["DEFAULT_REPORT_INTERVAL_S", "MapperApp", "run_mapper"]

log = logging.getLogger(__name__)

DEFAULT_REPORT_INTERVAL_S = 0.2
"""The report tick when the config gives none (``report_interval_ms: 0``)."""


class MapperApp:
    """A running mapper (see :func:`run_mapper`).

    Args:
        config: The mapper's settings.
        driver: The protocol driver.

    Attributes:
        runtime: The devices, buses and engine.
        data_plane: The push methods and database sinks (with the config's ``sinks``).
        server: ``DeviceMapperService`` on the mapper's socket, once started.
        rest: The REST data API, once started.
        reporter: Twin and state reports to the device manager, once started.
        outcomes: Desired-write outcomes to the device manager, once started.
        registered: Set once ``MapperRegister`` succeeded and its devices started.
        registrations: Successful ``MapperRegister`` calls.
    """

    def __init__(self, config: MapperConfig, driver: Driver) -> None:
        self.config = config
        self.data_plane = DataPlane(extra=config.sinks)
        self.runtime = MapperRuntime(config, driver, self.data_plane)
        self.server: MapperServer | None = None
        self.rest: MapperRestServer | None = None
        self.reporter: Reporter | None = None
        self.outcomes: WriteOutcomeReporter | None = None
        self.comm_errors: CommErrorReporter | None = None
        self.registered = asyncio.Event()
        self.registrations = 0
        self._channel: grpc.aio.Channel | None = None
        self._register_task: asyncio.Task[None] | None = None
        self._heap_held = False

    @property
    def report_interval_s(self) -> float:
        """The report tick in effect."""
        return self.config.report_interval_ms / 1000 or DEFAULT_REPORT_INTERVAL_S

    async def start(self) -> None:
        """Starts every part in order; raises if one cannot start (:meth:`stop` cleans up)."""
        cfg = self.config
        # --edgecore-compat: a plain KubeEdge mapper, without twinplane's Methods service
        methods = None if cfg.edgecore_compat else MethodsServicer(self.runtime)
        self.server = MapperServer(self.runtime, methods=methods)
        await self.server.start(cfg.socket_path)
        rest = MapperRestServer(
            self.runtime,
            metrics=self.metrics,
            report_interval_s=self.report_interval_s,
            allowed_hosts=cfg.allowed_hosts,
        )
        await rest.start(cfg.http_host, cfg.http_port)
        self.rest = rest
        channel = self._channel = grpc.aio.insecure_channel(f"unix:{cfg.edgecore_sock}")
        reporter = self.reporter = Reporter(
            self.runtime.engine,
            channel,
            interval_s=self.report_interval_s,
            concurrency=cfg.dmi_concurrency,
            compat=cfg.edgecore_compat,
            states=self.runtime.device_states,
        )
        reporter.on_changes = self.data_plane.offer  # data plane
        self.runtime.add_removal_listener(reporter.forget)
        reporter.start()
        outcomes = self.outcomes = WriteOutcomeReporter(channel, reporter.write_outcomes)
        self.runtime.writer.on_result = outcomes.offer
        self.runtime.add_removal_listener(outcomes.forget)
        outcomes.start()
        comm = self.comm_errors = CommErrorReporter(
            channel, reporter.comm_errors, interval_s=cfg.comm_error_interval_ms / 1000
        )
        self.runtime.on_comm_error = comm.count
        self.runtime.add_removal_listener(comm.forget)
        comm.start()
        heap.acquire()
        self._heap_held = True
        self._register_task = asyncio.create_task(
            self._register(channel, reporter), name="mapper-register"
        )

    async def _register(self, channel: grpc.aio.Channel, reporter: Reporter) -> None:
        cfg = self.config
        stub = api_pb2_grpc.DeviceManagerServiceStub(channel)
        response = await register_mapper(stub, cfg, budget=reporter.budget)
        await reporter.negotiate(cfg.name)  # fast path: TwinStream, or plain DMI (docs/mapper.md)
        await load_answer(self.runtime, response)
        self.registrations += 1
        self.registered.set()
        log.info(
            "registered with the device manager",
            extra={"mapper": cfg.name, "devices": len(response.deviceList)},
        )

    def metrics(self) -> str:
        """Every metric of this mapper, as Prometheus text (``GET /metrics``)."""
        return render_mapper_metrics(
            self.runtime,
            reporter=self.reporter,
            outcomes=self.outcomes,
            comm_errors=self.comm_errors,
            data_plane=self.data_plane,
            registrations=self.registrations,
        )

    async def drain(self) -> None:
        """Stops polling and reports the engine's last changes (before :meth:`stop`)."""
        await self.runtime.stop_polling()
        if self.reporter is not None:
            await self.reporter.flush()

    async def stop(self) -> None:
        """Stops every part that started, in reverse order."""
        if self._register_task is not None:
            self._register_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._register_task
        if self.rest is not None:
            await self.rest.stop()
        if self.server is not None:
            await self.server.stop()
        if self.reporter is not None:
            await self.reporter.stop()
        if self.outcomes is not None:
            await self.outcomes.stop()
        if self.comm_errors is not None:
            await self.comm_errors.stop()
        await self.runtime.stop()
        await self.data_plane.close()  # data plane: flush and close the sinks
        if self._channel is not None:
            await self._channel.close()
        if self._heap_held:
            self._heap_held = False
            heap.release()


async def run_mapper(
    config: MapperConfig, driver: Driver, *, ready: asyncio.Event | None = None
) -> None:
    """Runs a mapper until SIGINT/SIGTERM (or cancellation), then stops cleanly."""
    app = MapperApp(config, driver)

    def banner() -> str:
        rest = app.rest.url if app.rest is not None else "-"
        return (
            f"twinplane mapper {config.name}: protocol {config.protocol}  socket "
            f"unix://{config.socket_path}  device manager unix://{config.edgecore_sock}  "
            f"REST {rest}"
        )

    await serve(app, banner=banner, ready=ready)
