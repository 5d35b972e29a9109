"""``twinplane edge``: the device manager process, composed from its parts.

Startup order: open the store → load the registry and twins → start the DMI server on its Unix
socket → the REST API → the MQTT bridge (when a broker is given). Shutdown runs the other way
and flushes every changed twin before the store closes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twinplane.edge.call_delivery import DesiredDeliverer
from twinplane.edge.calls import CallService
from twinplane.edge.core import EdgeCore
from twinplane.edge.device_events import EVENT_LOG_MAX_AGE_S, EVENT_LOG_MAX_COUNT, EdgeEvents
from twinplane.edge.dmi_server import DmiServer
from twinplane.edge.events import EventHub
from twinplane.edge.firmware import FirmwareStore
from twinplane.edge.mapper_info import MapperInfo
from twinplane.edge.mappers import MapperDirectory
from twinplane.edge.method_delivery import MethodsDeliverer
from twinplane.edge.sse import MAX_EVENT_STREAMS
from twinplane.edge.store import AsyncEdgeStore
from twinplane.errors import SpecError
from twinplane.redact import redact_url
from twinplane.service import serve

if TYPE_CHECKING:
    from twinplane.edge.cloud_link import CloudLink
    from twinplane.edge.mqtt_bridge import MqttBridge

log = logging.getLogger(__name__)


@dataclass(slots=True)
class EdgeConfig:
    """Settings of one device manager.

    Attributes:
        home: State directory: ``home/state/edge.db``, ``home/run/dmi.sock``.
        dmi_socket: The DMI socket path (default ``home/run/dmi.sock``).
        rest_addr: ``HOST:PORT`` of the REST API (port 0 picks a free port).
        mqtt_url: ``mqtt://host:port`` of a broker, or ``None`` for none.
        node_name: This node's name.
        dmi_rate: DMI admission budget, calls per second (0: unlimited).
        dmi_burst: DMI calls admitted at once above the rate.
        allowed_hosts: Names the REST API answers to besides its address and loopback
            (``--allowed-host``; :mod:`twinplane.rest.guard`).
        max_event_streams: Most event streams open at once (``--max-event-streams``).
        event_log_max: Device events the event log keeps (``--event-log-max``).
        event_log_max_age_s: Seconds an event is kept after it last happened
            (``--event-log-max-age``).
        cloud_url: ``ws://`` or ``wss://`` URL of ``twinplane cloud`` (``--cloud``), or ``None``.
        cloud_token: This node's token for the cloud (``--token-file``).
        cloud_ca: A CA bundle to trust for ``wss://`` (``--cloud-ca``).
        cloud_flush_interval: Seconds between the cloud outbox's flushes (and live sends).
    """

    home: Path
    dmi_socket: Path | None = None
    rest_addr: str = "127.0.0.1:7780"
    mqtt_url: str | None = None
    node_name: str = "edge"
    dmi_rate: float = 200_000.0
    dmi_burst: int = 20_000
    allowed_hosts: tuple[str, ...] = ()
    max_event_streams: int = MAX_EVENT_STREAMS
    event_log_max: int = EVENT_LOG_MAX_COUNT
    event_log_max_age_s: float = EVENT_LOG_MAX_AGE_S
    cloud_url: str | None = None
    cloud_token: str = ""
    cloud_ca: Path | None = None
    cloud_flush_interval: float = 0.5
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def socket_path(self) -> Path:
        """The DMI socket in effect."""
        return self.dmi_socket or self.home / "run" / "dmi.sock"

    @property
    def db_path(self) -> Path:
        """The SQLite database."""
        return self.home / "state" / "edge.db"


class EdgeApp:
    """A running device manager (see :func:`run_edge`)."""

    def __init__(self, config: EdgeConfig) -> None:
        self.config = config
        self.store: AsyncEdgeStore | None = None
        self.core: EdgeCore | None = None
        self.mappers: MapperDirectory | None = None
        self.dmi: DmiServer | None = None
        self.rest: Any = None
        self.mqtt: MqttBridge | None = None
        self.cloud: CloudLink | None = None
        self.calls: CallService | None = None
        self.firmware: FirmwareStore | None = None
        self.rest_url = ""

    async def start(self) -> None:
        """Starts every part; raises if one cannot start (the caller stops what started)."""
        cfg = self.config
        self.store = AsyncEdgeStore.open(cfg.db_path)
        await self.store.start()
        hub = EventHub()
        events = EdgeEvents(
            hub, self.store, max_count=cfg.event_log_max, max_age_s=cfg.event_log_max_age_s
        )
        core = EdgeCore(self.store, node_name=cfg.node_name, hub=hub, events=events)
        self.core = core
        await core.start()
        self.mappers = MapperDirectory(
            models=lambda: core.models,
            devices=lambda: core.devices,
            desired=core.desired_values,
            events=core.events,
        )
        core.add_lifecycle_listener(self.mappers.on_lifecycle)
        for row in await self.store.list_mappers():
            try:
                info = MapperInfo(
                    row.name, row.protocol, row.address, row.version, row.api_version, row.state
                )
            except SpecError as err:  # stored by a release that took any registration
                log.warning("forgetting a stored mapper that could not register now: %s", err)
                await self.store.delete_mapper(row.name)
                continue
            self.mappers.register(info, with_data=False)
        self.dmi = DmiServer(core, self.mappers, rate=cfg.dmi_rate, burst=cfg.dmi_burst)
        # twinplane mappers' Methods service, else desired values (a plain KubeEdge mapper)
        self.calls = CallService(core, MethodsDeliverer(self.mappers, DesiredDeliverer(core)))
        await self.calls.start()
        self.firmware = FirmwareStore(self.store, cfg.home / "state" / "firmware")
        self.firmware.start()
        await self.dmi.start(cfg.socket_path)
        await self._start_rest()
        await self._start_cloud()  # before the bridge, which hands it $hw/events/upload/#
        await self._start_mqtt()

    async def _start_cloud(self) -> None:
        cfg = self.config
        if not cfg.cloud_url:
            return
        from twinplane.edge.cloud_link import CloudLink  # noqa: PLC0415 - optional part

        assert self.core is not None  # noqa: S101
        self.cloud = CloudLink(
            self.core,
            cfg.cloud_url,
            node=cfg.node_name,
            token=cfg.cloud_token,
            ca_file=cfg.cloud_ca,
            calls=self.calls,
        )
        await self.cloud.start()

    async def _start_rest(self) -> None:
        from twinplane.edge.rest import RestServer  # noqa: PLC0415 - optional part

        assert self.core is not None  # noqa: S101
        assert self.dmi is not None  # noqa: S101
        assert self.mappers is not None  # noqa: S101
        self.rest = RestServer(
            self.core,
            self.dmi,
            self.mappers,
            calls=self.calls,
            firmware=self.firmware,
            allowed_hosts=self.config.allowed_hosts,
            max_event_streams=self.config.max_event_streams,
        )
        self.rest_url = await self.rest.start(self.config.rest_addr)

    async def _start_mqtt(self) -> None:
        if not self.config.mqtt_url:
            log.warning("no MQTT broker configured (--mqtt): the $hw/events twin topics are off")
            return
        from twinplane.edge.mqtt_bridge import MqttBridge  # noqa: PLC0415 - optional part

        assert self.core is not None  # noqa: S101
        self.mqtt = MqttBridge(self.core, self.config.mqtt_url, node_name=self.config.node_name)
        if self.cloud is not None:
            self.mqtt.upload_listener = self.cloud.upload
        if self.calls is not None:
            self.mqtt.serve_calls(self.calls)
        await self.mqtt.start()
        if self.rest is not None:
            self.rest.mqtt = self.mqtt  # /metrics exports the bridge's counters

    async def stop(self) -> None:
        """Stops every part that started, in reverse order."""
        if self.cloud is not None:
            await self.cloud.stop()
        if self.mqtt is not None:
            await self.mqtt.stop()
        if self.rest is not None:
            await self.rest.stop()
        if self.calls is not None:
            await self.calls.stop()
        if self.dmi is not None:
            await self.dmi.stop()
        if self.mappers is not None:
            await self.mappers.close()
        if self.core is not None:
            await self.core.stop()
        if self.store is not None:
            await self.store.close()


async def run_edge(config: EdgeConfig, *, ready: asyncio.Event | None = None) -> None:
    """Runs a device manager until SIGINT/SIGTERM (or cancellation), then stops cleanly."""
    app = EdgeApp(config)

    def banner() -> str:
        mqtt = redact_url(config.mqtt_url) if config.mqtt_url else "off"
        cloud = f"  cloud {config.cloud_url} as {config.node_name}" if config.cloud_url else ""
        return (
            f"twinplane edge: DMI unix://{config.socket_path}  REST {app.rest_url}  "
            f"MQTT {mqtt}{cloud}  state {config.db_path}"
        )

    await serve(app, banner=banner, ready=ready)
