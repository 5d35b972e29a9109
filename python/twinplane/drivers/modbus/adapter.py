"""The Modbus driver adapter: Modbus TCP and RTU devices as :class:`FrameClient` s.

Protocol ``configData``: the keys of :mod:`twinplane.protocols.modbus` (``ip``, ``port``,
``slaveID``, ``communicateMode``, twinplane's ``maxInFlight``, the RTU serial settings).

Devices behind one TCP endpoint share one connection and one bus. The connection carries one
transaction at a time unless every device on it says ``maxInFlight`` > 1 (the smallest value
of the endpoint's devices wins): many PLCs and gateways answer only the first of pipelined
requests. Devices on one serial line share one client and a bus that carries one request at a
time. Reads return the raw data bytes the engine decodes (visitors ``register``, ``offset``,
``limit``, ``dataType``, ``scale``, swaps); writes run the register write the engine encodes
for the property.

:meth:`ModbusDriver.stats` sums every client's :class:`~twinplane.drivers.modbus.tcp.ModbusCounters`
(closed clients' included, so the totals never go down) for the mapper's ``/metrics``:
requests, answers, errors by kind, reconnects, and the pipelined polls that lost their later
reads (:data:`COUNTER_METRICS`), with two gauges: the clients held and the TCP connections
that fell back to one transaction at a time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Protocol

from twinplane.drivers.base import (
    BusSpec,
    DeviceClient,
    Driver,
    DriverStat,
    FrameClient,
    FrameRead,
    PropertyVisitor,
    ProtocolConfig,
    WriteOp,
)
from twinplane.drivers.commands import RunCommand
from twinplane.drivers.modbus import commands as modbus_commands
from twinplane.drivers.modbus.pool import ClientPool
from twinplane.drivers.modbus.tcp import ModbusCounters, ModbusTcpClient, PreparedReads
from twinplane.errors import SpecError
from twinplane.protocols.modbus import ModbusEndpoint

__all__ = [
    "COUNTER_METRICS",
    "PLANS_KEPT",
    "TCP_POLLS_IN_FLIGHT",
    "ModbusDeviceClient",
    "ModbusDriver",
]

log = logging.getLogger(__name__)

PLANS_KEPT: Final = 64
"""Prepared plans a device keeps: one per set of properties read together."""

TCP_POLLS_IN_FLIGHT: Final = 16
"""Polls a TCP endpoint's bus starts at once; their requests wait in the connection's queue
when its window (``maxInFlight``) is full."""

COUNTER_METRICS: Final[dict[str, tuple[str, str]]] = {
    "requests": ("modbus_requests_total", "Modbus requests sent (TCP and RTU, every client)."),
    "responses": (
        "modbus_responses_total",
        "Modbus requests answered with the data or the write echo asked for (the reads of a "
        "poll once all of them are).",
    ),
    "timeouts": (
        "modbus_timeouts_total",
        "Modbus requests that got no answer in time (a poll of several reads counts once).",
    ),
    "exceptions": ("modbus_exceptions_total", "Modbus exception responses."),
    "frame_errors": ("modbus_frame_errors_total", "Garbled or mismatched Modbus responses."),
    "connection_errors": (
        "modbus_connection_errors_total",
        "Failed connects, and Modbus requests lost with their connection.",
    ),
    "unknown_responses": (
        "modbus_unknown_responses_total",
        "Modbus responses for no request in flight (late, or a wrong transaction id), dropped.",
    ),
    "reconnects": ("modbus_reconnects_total", "Modbus connections made again after a loss."),
    "pipeline_timeouts": (
        "modbus_pipeline_timeouts_total",
        "Pipelined Modbus TCP polls whose first reads were answered while a later one timed "
        "out: the device seems to take one transaction at a time.",
    ),
    "pipelining_disabled": (
        "modbus_pipelining_fallbacks_total",
        "Times a Modbus TCP connection fell back from pipelining to one transaction at a time "
        "because of such a poll.",
    ),
}
"""Each :class:`ModbusCounters` field: its metric name (after ``twinplane_mapper_``) and help."""

_FIELDS: Final = tuple(f.name for f in dataclasses.fields(ModbusCounters))


class _Client(Protocol):
    counters: ModbusCounters

    async def read(
        self, unit: int, kind: str, address: int, count: int, *, urgent: bool = False
    ) -> bytes: ...
    async def execute_write(self, unit: int, write: WriteOp) -> None: ...
    async def close(self) -> None: ...


class ModbusDeviceClient(FrameClient):
    """One unit id on a shared Modbus client.

    Its requests wait their turn on the bus's connection or serial line, and the client times
    each out once sent (``queues``).
    """

    queues = True

    def __init__(self, driver: ModbusDriver, settings: ModbusEndpoint) -> None:
        self.driver = driver
        self.settings = settings
        self._client: _Client | None = None
        self._tcp: ModbusTcpClient | None = None
        self._prepared: tuple[Sequence[FrameRead], PreparedReads] | None = None
        self._plans: dict[int, tuple[Sequence[FrameRead], PreparedReads]] = {}
        """Every plan's prepared reads (a device whose properties have their own cycles
        polls a few plans in turn), by the plan's identity."""

    async def init_device(self) -> None:
        """Takes (or opens) the bus's shared client; on TCP, connects it."""
        if self._client is None:
            self._client = await self.driver.acquire(self.settings)
            if isinstance(self._client, ModbusTcpClient):
                self._tcp = self._client
        if self._tcp is not None:
            await self._tcp.connect()

    def _shared(self) -> _Client:
        if self._client is None:
            raise ConnectionError(f"device on {self.settings.bus_key} is not initialised")
        return self._client

    async def read(self, batch: Sequence[FrameRead]) -> list[bytes]:
        """Reads every coalesced range (on TCP through :meth:`submit_read`, once connected)."""
        client, unit = self._shared(), self.settings.unit
        tcp = self._tcp
        if tcp is not None:
            await tcp.connect()
            fut = self.submit_read(batch, tcp.timeout)
            if fut is not None:
                return await fut
        return [await client.read(unit, kind, start, count) for kind, start, count in batch]

    def submit_read(
        self, batch: Sequence[FrameRead], timeout: float
    ) -> asyncio.Future[list[bytes]] | None:
        """On TCP, every coalesced read queued at once, settled by one future (no task)."""
        tcp = self._tcp
        if tcp is None:
            return None
        prepared = self._prepared
        if prepared is None or prepared[0] is not batch:  # each plan is checked once
            prepared = self._prepared = self._prepare(tcp, batch)
        return tcp.submit_prepared(self.settings.unit, prepared[1], timeout)

    def _prepare(
        self, tcp: ModbusTcpClient, batch: Sequence[FrameRead]
    ) -> tuple[Sequence[FrameRead], PreparedReads]:
        """A plan's prepared reads: checked on its first poll, kept for the next ones."""
        plans = self._plans
        prepared = plans.get(id(batch))
        if prepared is None or prepared[0] is not batch:
            if len(plans) >= PLANS_KEPT:  # plans that come and go (reads of ad hoc batches)
                plans.clear()
            prepared = plans[id(batch)] = (batch, tcp.prepare_reads(batch))
        return prepared

    async def write(self, prop: PropertyVisitor, value: str) -> None:
        """Runs the engine-encoded register write of ``value``."""
        if prop.encode_write is None:
            raise SpecError(f"property {prop.name} has no Modbus visitor", property=prop.name)
        await self._shared().execute_write(self.settings.unit, prop.encode_write(value))

    def prepare_command(self, command: str, params: Mapping[str, Any]) -> RunCommand:
        """A Modbus command (:mod:`twinplane.drivers.modbus.commands`), checked."""
        return modbus_commands.prepare(command, params, self._shared, self.settings.unit)

    async def stop_device(self) -> None:
        """Releases the shared client (closed when its last device stops)."""
        if self._client is not None:
            self._client = None
            self._tcp = None
            await self.driver.release(self.settings)


class ModbusDriver(Driver):
    """Protocol ``modbus``: TCP endpoints and serial lines as buses.

    Args:
        timeout: Seconds a request may wait for its response once sent.
    """

    protocol = "modbus"
    frames = True
    commands = modbus_commands.COMMANDS

    def __init__(self, timeout: float = 3.0) -> None:
        self.timeout = timeout
        self._clients: ClientPool[_Client] = ClientPool()
        self._lock = asyncio.Lock()
        self._closed = dict.fromkeys(_FIELDS, 0)  # what closed clients counted

    def new_client(self, protocol: ProtocolConfig) -> DeviceClient:
        """A client for one unit id."""
        return ModbusDeviceClient(self, ModbusEndpoint.parse(protocol.config))

    def bus(self, protocol: ProtocolConfig) -> BusSpec:
        """The TCP endpoint or serial line, and how its devices' polls are spread.

        A bus that takes one transaction at a time (a serial line, ``maxInFlight: 1``) spreads
        its devices' polls over the cycle.
        """
        settings = ModbusEndpoint.parse(protocol.config)
        tcp = settings.mode == "TCP"
        one_at_a_time = not tcp or settings.max_in_flight == 1
        return BusSpec(settings.bus_key, TCP_POLLS_IN_FLIGHT if tcp else 1, spread=one_at_a_time)

    async def acquire(self, settings: ModbusEndpoint) -> _Client:
        """The shared client of a bus, opened on first use.

        A TCP endpoint's window is the smallest ``maxInFlight`` of its devices.
        """
        async with self._lock:
            client = self._clients.acquire(settings.bus_key, lambda: self._open(settings))
        if isinstance(client, ModbusTcpClient):
            _narrow(client, settings)
        return client

    def _open(self, settings: ModbusEndpoint) -> _Client:
        if settings.mode == "TCP":
            return ModbusTcpClient(
                settings.host,
                settings.port,
                timeout=self.timeout,
                max_in_flight=settings.max_in_flight,
            )
        # on use: RTU loads pymodbus
        from twinplane.drivers.modbus.rtu import ModbusRtuClient  # noqa: PLC0415

        return ModbusRtuClient(
            settings.serial_port,
            baudrate=settings.baudrate,
            bytesize=settings.bytesize,
            parity=settings.parity,
            stopbits=settings.stopbits,
            timeout=self.timeout,
        )

    async def release(self, settings: ModbusEndpoint) -> None:
        """Drops one device's use of a bus's client; closes it after the last."""
        async with self._lock:
            closed = await self._clients.release(settings.bus_key)
        if closed is not None:
            _add(self._closed, [closed])

    async def close(self) -> None:
        """Closes every shared client."""
        _add(self._closed, await self._clients.close())

    def stats(self) -> list[DriverStat]:
        """Every counter summed over the clients, open and closed; clients held; fallbacks.

        Totals only, no label per endpoint or device, so a mapper of 10,000 devices exports as
        many Modbus series as one of a single device.
        """
        clients = list(self._clients.clients())
        totals = dict(self._closed)
        _add(totals, clients)
        out = [
            DriverStat(name, "counter", help_text, totals[key])
            for key, (name, help_text) in COUNTER_METRICS.items()
        ]
        out.append(
            DriverStat(
                "modbus_connections",
                "gauge",
                "Modbus clients held: one per TCP endpoint or serial line in use (connected, "
                "or connecting again).",
                len(clients),
            )
        )
        out.append(
            DriverStat(
                "modbus_pipelining_disabled",
                "gauge",
                "Modbus TCP connections held that fell back to one transaction at a time: their "
                "devices ask for maxInFlight > 1 but lose the later reads of a pipelined poll.",
                sum(1 for c in clients if c.counters.pipelining_disabled),
            )
        )
        return out


def _add(totals: dict[str, int], clients: Iterable[_Client]) -> None:
    """Adds each client's counters to ``totals``, field by field."""
    for client in clients:
        counters = client.counters
        for key in _FIELDS:
            totals[key] += getattr(counters, key)


def _narrow(client: ModbusTcpClient, settings: ModbusEndpoint) -> None:
    """Lowers an endpoint's window to a joining device's ``maxInFlight``, if smaller."""
    current = client.max_in_flight
    if current is not None and settings.max_in_flight < current:
        log.warning(
            "%s: a device with maxInFlight %d joins devices with %d: the endpoint's "
            "connection now carries %d request(s) at a time",
            settings.bus_key,
            settings.max_in_flight,
            current,
            settings.max_in_flight,
        )
        client.max_in_flight = settings.max_in_flight
