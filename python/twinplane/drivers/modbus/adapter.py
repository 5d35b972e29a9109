"""The Modbus driver adapter: Modbus TCP and RTU devices as :class:`FrameClient` s.

Protocol ``configData`` (v1beta1 flat form, spec §8.2): ``ip``, ``port`` (502), ``slaveID``
(1), ``communicateMode`` (``TCP`` or ``RTU``); for RTU ``serialPort``, ``baudRate`` (19200),
``dataBits`` (8), ``parity`` (``none``), ``stopBits`` (1). The legacy nested keys
(``tcp.ip``-style names are not representable in v1beta1's scalar map) are not read.

Devices behind one TCP endpoint share one pipelined connection and one bus; devices on one serial
line share one client and a bus that carries one request at a time. Reads return the raw data
bytes the engine decodes (visitors ``register``, ``offset``, ``limit``, ``dataType``, ``scale``,
swaps); writes run the register write the engine encodes for the property.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, cast

from twinplane.drivers.base import (
    BusSpec,
    DeviceClient,
    Driver,
    FrameClient,
    FrameRead,
    PropertyVisitor,
    ProtocolConfig,
    WriteOp,
)
from twinplane.drivers.modbus.pool import ClientPool
from twinplane.drivers.modbus.tcp import ModbusTcpClient, PreparedReads
from twinplane.errors import SpecError

__all__ = ["ModbusDriver", "ModbusSettings"]

TCP_IN_FLIGHT: Final = 16
"""Requests pipelined at once on one TCP endpoint."""


class _Client(Protocol):
    async def read(self, unit: int, kind: str, address: int, count: int) -> bytes: ...
    async def execute_write(self, unit: int, write: WriteOp) -> None: ...
    async def close(self) -> None: ...


def _int(config: Mapping[str, object], key: str, default: int) -> int:
    value = config.get(key, default)
    if isinstance(value, int | str) and not isinstance(value, bool):
        with contextlib.suppress(ValueError):
            return int(value)
    raise SpecError(
        f"{key} must be an integer, not {value!r}", path=f"spec.protocol.configData.{key}"
    )


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

    @classmethod
    def parse(cls, config: Mapping[str, object]) -> ModbusSettings:
        """Validates ``configData``.

        Raises:
            SpecError: A missing or malformed key (``path`` names it).
        """
        mode = str(config.get("communicateMode", "TCP")).upper()
        unit = _int(config, "slaveID", 1)
        if mode == "TCP":
            host = config.get("ip")
            if not isinstance(host, str) or not host:
                raise SpecError("ip must be set for Modbus TCP", path="spec.protocol.configData.ip")
            return cls("TCP", unit, host=host, port=_int(config, "port", 502))
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
        """Reads every coalesced range (pipelined on TCP)."""
        client, unit = self._shared(), self.settings.unit
        if self.settings.mode == "TCP":
            return list(
                await asyncio.gather(
                    *(client.read(unit, kind, start, count) for kind, start, count in batch)
                )
            )
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
        self._clients: ClientPool[_Client] = ClientPool()
        self._lock = asyncio.Lock()

    def new_client(self, protocol: ProtocolConfig) -> DeviceClient:
        """A client for one unit id."""
        return ModbusDeviceClient(self, ModbusSettings.parse(protocol.config))

    def bus(self, protocol: ProtocolConfig) -> BusSpec:
        """The TCP endpoint (pipelined) or serial line (one request at a time)."""
        settings = ModbusSettings.parse(protocol.config)
        return BusSpec(settings.bus_key, TCP_IN_FLIGHT if settings.mode == "TCP" else 1)

    async def acquire(self, settings: ModbusSettings) -> _Client:
        """The shared client of a bus, opened on first use."""
        async with self._lock:
            return self._clients.acquire(settings.bus_key, lambda: self._open(settings))

    def _open(self, settings: ModbusSettings) -> _Client:
        if settings.mode == "TCP":
            return ModbusTcpClient(settings.host, settings.port, timeout=self.timeout)
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

    async def release(self, settings: ModbusSettings) -> None:
        """Drops one device's use of a bus's client; closes it after the last."""
        async with self._lock:
            await self._clients.release(settings.bus_key)

    async def close(self) -> None:
        """Closes every shared client."""
        await self._clients.close()
