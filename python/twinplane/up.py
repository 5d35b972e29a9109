"""``twinplane up``: the embedded default — simulator, device manager and Modbus mapper in one.

One process and one event loop (uvloop when importable) run a Modbus simulator with N devices
on loopback, the device manager (:class:`~twinplane.edge.app.EdgeApp`, SQLite in ``--home``), a
Modbus mapper registered with it over DMI, and generated ``DeviceModel``/``Device`` manifests
for the simulated devices (built as JSON and applied through ``EdgeCore.apply``). MQTT is used
only when ``--mqtt`` is given.

Startup order: the device manager (it loads what an earlier run stored), the simulator (on the
ports the stored devices name, when they are free, so a restart finds its devices where they
were), the manifests (applied before any mapper is there: a mapper never polls a stale
address), then the mapper, which gets every device in its registration answer.

With ``--cloud`` the device manager links to ``twinplane cloud`` as ``--node-name``, and the
manifests are applied in the cloud (``spec.nodeName`` set to the node) instead of on the edge:
the cloud delivers them down the link, as it delivers any device made there, and ``up`` waits
for that delivery before the mapper starts. A cloud that cannot be reached does not stop a
restart whose home holds the fleet already (edge autonomy); a first run needs it. The simulator
takes one Modbus transaction at a time per connection, as many real devices do.

Startup prints one progress line per part; then a live summary is redrawn every second on a
terminal (plain lines every few seconds otherwise). SIGINT/SIGTERM stop everything in reverse
order: polling stops, the mapper's last twin changes are reported, the device manager persists
every twin, the simulator closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol, TextIO, runtime_checkable

from twinplane.errors import TwinplaneError
from twinplane.fleet import MODEL_NAME, TEMPERATURE_RAMP, device_manifests, registers_for
from twinplane.owner_only import make_dirs
from twinplane.ports import port_free
from twinplane.redact import redact_url
from twinplane.service import stop_on_signals

if TYPE_CHECKING:
    from twinplane.edge.app import EdgeApp
    from twinplane.edge.core import EdgeCore
    from twinplane.mapper.app import MapperApp
    from twinplane.sim.modbus import ModbusSimulator
    from twinplane.twin import Changes

__all__ = [
    "DELIVERY_TIMEOUT_S",
    "MAPPER_PORT",
    "CloudUnreachableError",
    "LiveOutput",
    "UpConfig",
    "apply_in_cloud",
    "cloud_api_url",
    "default_home",
    "run_up",
    "stored_sim_port",
]

MAPPER_PORT: Final = 7777
PLAIN_INTERVAL_S: Final = 5.0
FLUSH_TIMEOUT_S: Final = 5.0
DELIVERY_TIMEOUT_S: Final = 30.0
"""With ``--cloud``: seconds the cloud has to deliver the applied fleet to this edge."""


def default_home() -> Path:
    """``$TWINPLANE_HOME``, else ``~/.twinplane/up``."""
    env = os.environ.get("TWINPLANE_HOME")
    return Path(env).expanduser() if env else Path("~/.twinplane/up").expanduser()


@runtime_checkable
class LiveOutput(Protocol):
    """An output with a live block of lines (a terminal): the summary is redrawn in place."""

    def write(self, text: str, /) -> int:
        """Writes text above the block."""
        ...

    def show(self, lines: Sequence[str]) -> None:
        """Replaces the block with ``lines``."""
        ...

    def release(self) -> None:
        """Leaves the block on screen as ordinary lines."""
        ...


@dataclass(slots=True)
class UpConfig:
    """Settings of ``twinplane up``.

    Attributes:
        sim_port: The simulator's first port; 0 takes the port the stored devices name if it
            is free, else free ports.
        out: Where progress and the summary go; a :class:`LiveOutput` redraws the summary in
            place every second, anything else gets a plain line every few seconds.
        on_tick: Called once a second (the CLI writes the counts of collapsed log lines).
        allowed_hosts: Names the device manager's REST API answers to besides its address.
        max_event_streams: Most event streams the device manager keeps open (``None``: its
            default).
        node_name: This edge's node name (the fleet's ``spec.nodeName`` with ``cloud_url``).
        cloud_url: ``ws://`` or ``wss://`` URL of ``twinplane cloud``; ``None``: no cloud, the
            fleet is applied on the edge.
        cloud_token: The node's token for the cloud.
        cloud_ca: A CA bundle to trust for ``wss://`` (and the cloud's ``https://`` API).
    """

    home: Path
    devices: int = 100
    properties: int = 4
    rest_addr: str = "127.0.0.1:7780"
    mqtt_url: str | None = None
    sim_port: int = 0
    mapper_port: int = MAPPER_PORT
    out: TextIO = field(default_factory=lambda: sys.stdout)
    on_tick: Callable[[], None] | None = None
    allowed_hosts: tuple[str, ...] = ()
    max_event_streams: int | None = None
    node_name: str = "edge"
    cloud_url: str | None = None
    cloud_token: str = ""
    cloud_ca: Path | None = None


def stored_sim_port(core: EdgeCore) -> int:
    """The first simulator port the stored fleet devices name, 0 when there are none."""
    ports = []
    for device in core.devices.values():
        if device.spec.device_model_ref.name != MODEL_NAME:
            continue
        port = (device.spec.protocol.config_data or {}).get("port")
        if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 2**16:
            ports.append(port)
    return min(ports, default=0)


class _Meter:
    """Counts twin changes at the device manager and turns counters into rates."""

    def __init__(self) -> None:
        self.changes = 0
        self._last: tuple[float, int, int] | None = None

    def on_changes(self, changes: Changes) -> None:
        self.changes += len(changes)

    def rates(self, samples: int) -> tuple[float, float]:
        now = time.monotonic()
        last, self._last = self._last, (now, samples, self.changes)
        if last is None or now <= last[0]:
            return 0.0, 0.0
        dt = now - last[0]
        return (samples - last[1]) / dt, (self.changes - last[2]) / dt


class _Up:
    """The parts of ``twinplane up`` and their order."""

    def __init__(self, config: UpConfig) -> None:
        self.config = config
        self.sim: ModbusSimulator | None = None
        self.edge: EdgeApp | None = None
        self.mapper: MapperApp | None = None
        self.meter = _Meter()
        self.ok = "✓" if "utf" in (getattr(config.out, "encoding", "") or "").lower() else "ok"

    def say(self, text: str) -> None:
        print(text, file=self.config.out, flush=True)

    def step(self, what: str, detail: str, t0: float) -> None:
        ms = (time.monotonic() - t0) * 1000
        self.say(f"  {self.ok} {what:<16} {detail}  ({ms:.0f} ms)")

    async def start(self) -> None:
        from twinplane.drivers.registry import get_driver  # noqa: PLC0415
        from twinplane.edge.app import EdgeApp, EdgeConfig  # noqa: PLC0415 - fast CLI start
        from twinplane.mapper.app import MapperApp  # noqa: PLC0415
        from twinplane.mapper.config import MapperConfig  # noqa: PLC0415
        from twinplane.sim.modbus import ModbusSimulator  # noqa: PLC0415

        cfg = self.config
        self.say(f"twinplane up: {cfg.devices} simulated Modbus devices, state in {cfg.home}")
        t0 = time.monotonic()
        edge_config = EdgeConfig(
            home=cfg.home,
            rest_addr=cfg.rest_addr,
            mqtt_url=cfg.mqtt_url,
            allowed_hosts=cfg.allowed_hosts,
            node_name=cfg.node_name,
            cloud_url=cfg.cloud_url,
            cloud_token=cfg.cloud_token,
            cloud_ca=cfg.cloud_ca,
        )
        if cfg.max_event_streams is not None:
            edge_config.max_event_streams = cfg.max_event_streams
        make_dirs(edge_config.db_path.parent)  # 0700, like every folder made for state
        make_dirs(edge_config.socket_path.parent)
        self.edge = EdgeApp(edge_config)
        await self.edge.start()
        assert self.edge.core is not None  # noqa: S101
        core = self.edge.core
        core.add_change_listener(self.meter.on_changes)
        mqtt = f"  MQTT {redact_url(cfg.mqtt_url)}" if cfg.mqtt_url else ""
        cloud = f"  cloud {redact_url(cfg.cloud_url)} as {cfg.node_name}" if cfg.cloud_url else ""
        self.step("device manager", f"REST {self.edge.rest_url}{mqtt}{cloud}", t0)

        t0 = time.monotonic()
        self.sim = await self._simulator(ModbusSimulator, stored_sim_port(core))
        ports = self.sim.ports
        where = f"{self.sim.host}:{ports[0]}" + (f"..{ports[-1]}" if len(ports) > 1 else "")
        self.step("simulator", f"{cfg.devices} devices on {where}", t0)

        t0 = time.monotonic()
        addresses = [self.sim.address(i) for i in range(cfg.devices)]
        if cfg.cloud_url:
            node = cfg.node_name
            text = device_manifests(
                addresses, properties=cfg.properties, host=self.sim.host, node_name=node
            )
            how = await self._apply_in_cloud(core, cfg.cloud_url, text, addresses)
            self.step(f"{cfg.devices} devices", how, t0)
        else:
            text = device_manifests(addresses, properties=cfg.properties, host=self.sim.host)
            result = await core.apply(text, source="twinplane up")
            outcomes = [outcome for _, _, outcome in result.outcomes[1:]]
            self.step(f"{cfg.devices} devices", f"applied ({_counted(outcomes)})", t0)

        t0 = time.monotonic()
        host = "127.0.0.1"
        port = cfg.mapper_port if cfg.mapper_port and port_free(host, cfg.mapper_port) else 0
        mapper_config = MapperConfig(
            protocol="modbus",
            name="modbus-mapper",
            socket_path=cfg.home / "run" / "modbus.sock",
            edgecore_sock=edge_config.socket_path,
            http_host=host,
            http_port=port,
        )
        self.mapper = MapperApp(mapper_config, get_driver("modbus"))
        await self.mapper.start()
        await asyncio.wait_for(self.mapper.registered.wait(), timeout=10)
        rest = self.mapper.rest.url if self.mapper.rest is not None else "-"
        self.step("mapper", f"modbus-mapper registered, REST {rest}", t0)

    async def _apply_in_cloud(
        self, core: EdgeCore, url: str, text: str, addresses: list[tuple[int, int]]
    ) -> str:
        """Applies the fleet in the cloud and waits until its link delivered every device here.

        Returns what the progress line says. A cloud that cannot be reached is a warning when
        this home holds the fleet at the simulator's addresses already, otherwise an error.

        Raises:
            TwinplaneError: The cloud refused the manifests, cannot be reached on a first run,
                or did not deliver the fleet within :data:`DELIVERY_TIMEOUT_S`.
        """
        cfg = self.config
        host = self.sim.host if self.sim is not None else "127.0.0.1"
        fleet = {f"default/thermostat-{i + 1}": (host, *a) for i, a in enumerate(addresses)}
        try:
            outcomes = await apply_in_cloud(url, text, ca_file=cfg.cloud_ca)
        except CloudUnreachableError as err:
            if not _holds(core, fleet):
                raise TwinplaneError(
                    f"{err}: start `twinplane cloud` first, or leave out --cloud"
                ) from err
            self.say(f"  ! cloud            {err}; the stored devices run, the link keeps trying")
            return "stored (the cloud is not reachable)"
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S
        link = self.edge.cloud if self.edge is not None else None
        while not _holds(core, fleet):
            if link is not None and link.refused is not None:
                raise TwinplaneError(f"the fleet is applied in the cloud, but {link.refused}")
            if time.monotonic() > deadline:
                raise TwinplaneError(
                    f"the cloud took the fleet but did not deliver it to node {cfg.node_name} "
                    f"within {DELIVERY_TIMEOUT_S:g} s: is the token {cfg.node_name}'s (see the "
                    "log above)?"
                )
            await asyncio.sleep(0.1)
        return f"applied in the cloud ({_counted(outcomes[1:])}), delivered to {cfg.node_name}"

    async def _simulator(self, make: type[ModbusSimulator], remembered: int) -> ModbusSimulator:
        """The simulator on ``--sim-port``, else where the stored devices are, else free ports.

        One transaction at a time per connection, as many real devices take them.
        """
        cfg = self.config
        registers = registers_for(cfg.properties)
        first = cfg.sim_port or (
            remembered if remembered and port_free("127.0.0.1", remembered) else 0
        )
        for port in dict.fromkeys((first, 0)):
            sim = make(cfg.devices, port=port, registers=registers, max_in_flight=1)
            try:
                await sim.start()
            except OSError:
                if port == 0 or cfg.sim_port:
                    raise
                continue  # a stored port is taken after all: free ports, the devices follow
            self._ramp_temperature(sim)
            return sim
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _ramp_temperature(sim: ModbusSimulator) -> None:
        """Ramps the first thermostat's temperature across the sample alarm rule's threshold."""
        from twinplane.sim.modbus import Ramp  # noqa: PLC0415 - the simulator loads on demand

        port, unit = sim.address(0)
        sim.ramp(unit, 0, Ramp(*TEMPERATURE_RAMP), port=port)

    def _samples(self) -> int:
        if self.mapper is None:
            return 0
        polls = sum(bus.stats.polls for bus in self.mapper.runtime.buses.values())
        return polls * self.config.properties

    def summary(self) -> list[str]:
        """The summary's lines (rates since the previous call)."""
        from twinplane.edge.core import ONLINE_STATES  # noqa: PLC0415

        assert self.edge is not None  # noqa: S101
        assert self.edge.core is not None  # noqa: S101
        core = self.edge.core
        total = len(core.devices)
        online = sum(
            1 for d in core.devices if (s := core.states.get(d)) and s.state in ONLINE_STATES
        )
        samples, changes = self.meter.rates(self._samples())
        mapper = self.mapper.rest.url if self.mapper and self.mapper.rest else "-"
        rest = self.edge.rest_url
        link = self.edge.cloud
        cloud = ""
        if link is not None:
            cloud = "   cloud " + ("connected" if link.connected.is_set() else "reconnecting")
        return [
            f"devices online {online}/{total}   samples/s {samples:,.0f}   "
            f"twin changes/s {changes:,.0f}{cloud}",
            f"REST {rest}/api/v1/devices   events {rest}/api/v1/events",
            f"mapper REST {mapper}   Ctrl-C stops",
        ]

    def show(self) -> None:
        lines = self.summary()
        out = self.config.out
        if isinstance(out, LiveOutput):
            out.show(lines)
        else:
            self.say(" | ".join(lines))

    async def stop(self) -> None:
        """Stops every part that started, in reverse order, flushing the last changes."""
        if self.mapper is not None:
            with contextlib.suppress(TimeoutError, TwinplaneError, OSError):
                async with asyncio.timeout(FLUSH_TIMEOUT_S):
                    await self.mapper.drain()
            await self.mapper.stop()
        if self.edge is not None:
            await self.edge.stop()
        if self.sim is not None:
            await self.sim.stop()


class CloudUnreachableError(TwinplaneError):
    """No answer from the cloud's API (refused, timed out, TLS failed)."""


def cloud_api_url(url: str) -> str:
    """The cloud's REST API for its hub URL: ``ws://h:p`` is ``http://h:p``, ``wss`` ``https``."""
    base = url.rstrip("/")
    return "https" + base.removeprefix("wss") if base.startswith("wss") else "http" + base[2:]


async def apply_in_cloud(url: str, text: str, *, ca_file: Path | None = None) -> list[str]:
    """``POST /api/v1/apply`` of ``text`` to the cloud at hub URL ``url``; each outcome.

    Raises:
        CloudUnreachableError: No answer.
        TwinplaneError: The cloud refused the manifests (its message, with the first cause).
    """
    import ssl  # noqa: PLC0415 - loaded with --cloud only

    import aiohttp  # noqa: PLC0415

    from twinplane import __version__  # noqa: PLC0415
    from twinplane.rest.guard import CLIENT_HEADER  # noqa: PLC0415

    api = cloud_api_url(url)
    tls: ssl.SSLContext | bool = False
    if api.startswith("https"):
        tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    headers = {CLIENT_HEADER: f"twinplane-up/{__version__}", "Content-Type": "application/json"}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
            http.post(
                f"{api}/api/v1/apply",
                params={"source": "twinplane up"},
                data=text,
                headers=headers,
                ssl=tls,
            ) as resp,
        ):
            body = await resp.json(content_type=None)
            status = resp.status
    except (aiohttp.ClientConnectionError, OSError, TimeoutError) as err:
        os_error = getattr(err, "os_error", err)
        if isinstance(os_error, ConnectionRefusedError):
            why = "connection refused"
        else:
            why = str(err) or type(err).__name__
        raise CloudUnreachableError(f"cannot reach the cloud at {api} ({why})") from err
    except ValueError as err:
        raise TwinplaneError(f"the cloud at {api} answered something that is not JSON") from err
    if status >= 400 or not isinstance(body, dict):  # noqa: PLR2004
        message = body.get("message") if isinstance(body, dict) else None
        raise TwinplaneError(f"the cloud at {api} refused the fleet ({status}): {message}")
    return [str(item.get("outcome")) for item in body.get("items") or []]


def _holds(core: EdgeCore, fleet: dict[str, tuple[str, int, int]]) -> bool:
    """Whether the edge holds every fleet device, delivered by the cloud, at its address."""
    from twinplane.cloud.wire import SOURCE_ANNOTATION  # noqa: PLC0415

    for device_id, (host, port, unit) in fleet.items():
        device = core.devices.get(device_id)
        if device is None or (device.metadata.annotations or {}).get(SOURCE_ANNOTATION) != "cloud":
            return False
        config = device.spec.protocol.config_data or {}
        if (config.get("ip"), config.get("port"), config.get("slaveID")) != (host, port, unit):
            return False
    return True


def _counted(outcomes: Sequence[str]) -> str:
    """``"3 created, 97 unchanged"``."""
    kinds: dict[str, int] = {}
    for outcome in outcomes:
        kinds[outcome] = kinds.get(outcome, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))


async def run_up(config: UpConfig, *, stop: asyncio.Event | None = None) -> None:
    """Runs ``twinplane up`` until SIGINT/SIGTERM (or ``stop`` is set), then stops cleanly."""
    stop = stop_on_signals(stop)
    up = _Up(config)
    try:
        await up.start()
        up.say("running; Ctrl-C stops")
        up.meter.rates(up._samples())
        live = isinstance(config.out, LiveOutput)
        shown = 0.0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            if config.on_tick is not None:
                config.on_tick()
            now = time.monotonic()
            if not stop.is_set() and (live or now - shown >= PLAIN_INTERVAL_S):
                shown = now
                up.show()
        if isinstance(config.out, LiveOutput):
            config.out.release()  # the last summary stays above what follows
        up.say("stopping: mapper, device manager, simulator")
    finally:
        await up.stop()
    persisted = up.edge.core.persister.stats.rows if up.edge and up.edge.core else 0
    up.say(f"twinplane up: stopped cleanly; {persisted} twin rows persisted this run")
