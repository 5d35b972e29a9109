"""The Modbus driver adapter: Modbus TCP and RTU devices as :class:`FrameClient` s.

Protocol ``configData`` (v1beta1 flat form, spec §8.2): ``ip``, ``port`` (502, 1..65535),
``slaveID`` (1; 0..255 on TCP, 1..247 on RTU), ``communicateMode`` (``TCP`` or ``RTU``); for TCP
``maxInFlight`` (1, twinplane's key: requests pipelined on the connection, 1..256); for RTU
``serialPort``, ``baudRate`` (19200), ``dataBits`` (8), ``parity`` (``none``), ``stopBits`` (1).
The legacy nested keys (``tcp.ip``-style names are not representable in v1beta1's scalar map)
are not read.

Devices behind one TCP endpoint share one connection and one bus. The connection carries one
transaction at a time unless every device on it says ``maxInFlight`` > 1 (the smallest value
of the endpoint's devices wins): many PLCs and gateways answer only the first of pipelined
requests. Devices on one serial line share one client and a bus that carries one request at a
time. Reads return the raw data
bytes the engine decodes (visitors ``register``, ``offset``, ``limit``, ``dataType``, ``scale``,
swaps); writes run the register write the engine encodes for the property.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

from twinplane.errors import SpecError
from twinplane.mapper.driver import (
    BusSpec,
    DeviceClient,
    Driver,
    FrameClient,
    FrameRead,
    PropertyVisitor,
    ProtocolConfig,
    WriteOp,
)

if TYPE_CHECKING:
    from twinplane.drivers.modbus import ModbusTcpClient
    from twinplane.drivers.modbus.tcp import PreparedReads

__all__ = ["ModbusDriver", "ModbusSettings"]

log = logging.getLogger(__name__)

TCP_POLLS_IN_FLIGHT: Final = 16
"""Polls a TCP endpoint's bus starts at once; their requests wait in the connection's queue
when its window (``maxInFlight``) is full."""

MAX_IN_FLIGHT_LIMIT: Final = 256
"""The largest ``maxInFlight`` taken."""


class _Client(Protocol):
    async def read(self, unit: int, kind: str, address: int, count: int) -> bytes: ...
    async def execute_write(self, unit: int, write: WriteOp) -> None: ...
    async def close(self) -> None: ...


def _int(
    config: Mapping[str, object], key: str, default: int, bounds: tuple[int, int] | None = None
) -> int:
    value = config.get(key, default)
    number: int | None = None
    if isinstance(value, int | str) and not isinstance(value, bool):
        with contextlib.suppress(ValueError):
            number = int(value)
    path = f"spec.protocol.configData.{key}"
    if number is None:
        raise SpecError(f"{key} must be an integer, not {value!r}", path=path)
    if bounds is not None and not bounds[0] <= number <= bounds[1]:
        raise SpecError(f"{key} must be {bounds[0]}..{bounds[1]}, not {number}", path=path)
    return number


@dataclass(frozen=True, slots=True)
class ModbusSettings:
    """A device's Modbus protocol config, validated."""

    mode: str
    unit: int
    host: str = ""
    port: int = 502
    serial_port: str = ""
    baudrate: int = 19200
    bytesize: int = 8
    parity: str = "none"
    stopbits: int = 1
    max_in_flight: int = 1

    @classmethod
    def parse(cls, config: Mapping[str, object]) -> ModbusSettings:
        """Validates ``configData``.

        Raises:
            SpecError: A missing or malformed key (``path`` names it).
        """
        mode = str(config.get("communicateMode", "TCP")).upper()
        if mode == "TCP":
            host = config.get("ip")
            if not isinstance(host, str) or not host:
                raise SpecError("ip must be set for Modbus TCP", path="spec.protocol.configData.ip")
            return cls(
                "TCP",
                _int(config, "slaveID", 1, (0, 255)),
                host=host,
                port=_int(config, "port", 502, (1, 65535)),
                max_in_flight=_int(config, "maxInFlight", 1, (1, MAX_IN_FLIGHT_LIMIT)),
            )
        unit = _int(config, "slaveID", 1, (1, 247))
        if mode == "RTU":
            serial = config.get("serialPort")
            if not isinstance(serial, str) or not serial:
                raise SpecError(
                    "serialPort must be set for Modbus RTU",
                    path="spec.protocol.configData.serialPort",
                )
            return cls(
                "RTU",
                unit,
                serial_port=serial,
                baudrate=_int(config, "baudRate", 19200),
                bytesize=_int(config, "dataBits", 8),
                parity=str(config.get("parity", "none")),
                stopbits=_int(config, "stopBits", 1),
            )
        raise SpecError(
            f"communicateMode {mode!r}: allowed are TCP and RTU",
            path="spec.protocol.configData.communicateMode",
        )

    @property
    def bus_key(self) -> str:
        """``tcp://host:port`` or ``rtu://serial port``."""
        if self.mode == "TCP":
            return f"tcp://{self.host}:{self.port}"
        return f"rtu://{self.serial_port}"


class ModbusDeviceClient(FrameClient):
    """One unit id on a shared Modbus client."""

    def __init__(self, driver: ModbusDriver, settings: ModbusSettings) -> None:
        self.driver = driver
        self.settings = settings
        self._client: _Client | None = None
        self._tcp: ModbusTcpClient | None = None
        self._prepared: tuple[Sequence[FrameRead], PreparedReads] | None = None

    async def init_device(self) -> None:
        """Takes (or opens) the bus's shared client."""
        if self._client is None:
            self._client = await self.driver.acquire(self.settings)
            if self.settings.mode == "TCP":
                self._tcp = cast("ModbusTcpClient", self._client)

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
        """On TCP, every coalesced read in one write, settled by one future (no task)."""
        tcp = self._tcp
        if tcp is None:
            return None
        prepared = self._prepared
        if prepared is None or prepared[0] is not batch:  # the plan is checked once
            prepared = self._prepared = (batch, tcp.prepare_reads(batch))
        return tcp.submit_prepared(self.settings.unit, prepared[1], timeout)

    async def write(self, prop: PropertyVisitor, value: str) -> None:
        """Runs the engine-encoded register write of ``value``."""
        if prop.encode_write is None:
            raise SpecError(f"property {prop.name} has no Modbus visitor", property=prop.name)
        await self._shared().execute_write(self.settings.unit, prop.encode_write(value))

    async def stop_device(self) -> None:
        """Releases the shared client (closed when its last device stops)."""
        if self._client is not None:
            self._client = None
            self._tcp = None
            await self.driver.release(self.settings)


class ModbusDriver(Driver):
    """Protocol ``modbus``: TCP endpoints and serial lines as buses.

    Args:
        timeout: Seconds a request may wait for its response.
    """

    protocol = "modbus"
    frames = True

    def __init__(self, timeout: float = 3.0) -> None:
        self.timeout = timeout
        self._clients: dict[str, tuple[_Client, int]] = {}
        self._lock = asyncio.Lock()

    def new_client(self, protocol: ProtocolConfig) -> DeviceClient:
        """A client for one unit id."""
        return ModbusDeviceClient(self, ModbusSettings.parse(protocol.config))

    def bus(self, protocol: ProtocolConfig) -> BusSpec:
        """The TCP endpoint or serial line (one request at a time)."""
        settings = ModbusSettings.parse(protocol.config)
        return BusSpec(settings.bus_key, TCP_POLLS_IN_FLIGHT if settings.mode == "TCP" else 1)

    async def acquire(self, settings: ModbusSettings) -> _Client:
        """The shared client of a bus, opened on first use.

        A TCP endpoint's window is the smallest ``maxInFlight`` of its devices.
        """
        async with self._lock:
            found = self._clients.get(settings.bus_key)
            if found is not None:
                self._clients[settings.bus_key] = (found[0], found[1] + 1)
                shared = found[0]
                if settings.mode == "TCP":
                    self._narrow(cast("ModbusTcpClient", shared), settings)
                return shared
            client: Any
            if settings.mode == "TCP":
                from twinplane.drivers.modbus import ModbusTcpClient  # noqa: PLC0415

                client = ModbusTcpClient(
                    settings.host,
                    settings.port,
                    timeout=self.timeout,
                    max_in_flight=settings.max_in_flight,
                )
            else:
                from twinplane.drivers.modbus.rtu import ModbusRtuClient  # noqa: PLC0415

                client = ModbusRtuClient(
                    settings.serial_port,
                    baudrate=settings.baudrate,
                    bytesize=settings.bytesize,
                    parity=settings.parity,
                    stopbits=settings.stopbits,
                    timeout=self.timeout,
                )
            self._clients[settings.bus_key] = (client, 1)
            return client  # type: ignore[no-any-return]

    @staticmethod
    def _narrow(client: ModbusTcpClient, settings: ModbusSettings) -> None:
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

    async def release(self, settings: ModbusSettings) -> None:
        """Drops one device's use of a bus's client; closes it after the last."""
        async with self._lock:
            found = self._clients.get(settings.bus_key)
            if found is None:
                return
            if found[1] > 1:
                self._clients[settings.bus_key] = (found[0], found[1] - 1)
                return
            del self._clients[settings.bus_key]
        await found[0].close()

    async def close(self) -> None:
        """Closes every shared client."""
        clients, self._clients = self._clients, {}
        for client, _ in clients.values():
            await client.close()
