"""Modbus RTU over a serial line, through pymodbus's async serial client.

:class:`ModbusRtuClient` has the interface of :class:`~twinplane.drivers.modbus.tcp.ModbusTcpClient`
(``read``, the writes, ``execute_write``, ``counters``, ``async with``), so a driver does not care
which one it holds. A serial line carries one request at a time (RTU frames have no transaction
id), so requests wait their turn on a lock; the bus scheduler orders them.

pymodbus's outcomes become the same typed errors as over TCP: an exception response is a
:class:`ModbusExceptionError`, no answer within ``timeout`` a :class:`ModbusTimeoutError` (the
timer is ours, so one place maps it), a mismatched or undecodable answer a
:class:`ModbusFrameError`, a port that cannot be opened or went away a
:class:`ModbusConnectionError`. pymodbus's own retries and reconnect loop are off: the next call
reopens a lost port, as the TCP client reconnects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from types import TracebackType
from typing import Literal, Self, TypeVar

from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU

from twinplane.drivers.modbus.errors import (
    ModbusConnectionError,
    ModbusError,
    ModbusExceptionError,
    ModbusFrameError,
    ModbusTimeoutError,
)
from twinplane.drivers.modbus.frames import (
    READ_FUNCTIONS,
    Function,
    encode_write,
    pack_bits,
    pack_registers,
    read_function,
    read_size,
)
from twinplane.drivers.modbus.tcp import ModbusCounters, WriteOp

__all__ = ["ModbusRtuClient"]

log = logging.getLogger("twinplane.drivers.modbus")

T = TypeVar("T")

Parity = Literal["N", "E", "O"]

_PARITY: dict[str, Parity] = {"none": "N", "even": "E", "odd": "O", "n": "N", "e": "E", "o": "O"}


class ModbusRtuClient:
    """A Modbus RTU master on one serial port; one request in flight at a time.

    Args:
        port: The serial device (``/dev/ttyUSB0``) or a pyserial URL.
        baudrate: Bits per second.
        bytesize: Data bits (5-8).
        parity: ``N``, ``E`` or ``O`` (KubeEdge's ``none``/``even``/``odd`` are accepted).
        stopbits: 1 or 2.
        timeout: Seconds a request may wait for its response.

    Attributes:
        counters: Requests, responses, errors by kind, reconnects.
    """

    def __init__(  # noqa: PLR0913 - the serial line's settings
        self,
        port: str,
        *,
        baudrate: int = 19200,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: int = 1,
        timeout: float = 1.0,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        try:
            self.parity: Parity = _PARITY[parity.lower()]
        except KeyError:
            raise ValueError(
                f"parity must be N, E or O (or none, even, odd), not {parity!r}"
            ) from None
        self.port = port
        self.baudrate = baudrate
        self.bytesize = bytesize
        self.stopbits = stopbits
        self.timeout = timeout
        self.counters = ModbusCounters()
        self._client: AsyncModbusSerialClient | None = None
        self._connections = 0
        self._closing = False
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        state = "connected" if self.connected else "closed" if self._closing else "idle"
        return f"<ModbusRtuClient {self.port} {state}>"

    @property
    def connected(self) -> bool:
        """Whether the port is open right now."""
        return self._client is not None and self._client.connected

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Opens the port, unless it is open.

        Raises:
            ModbusConnectionError: The port cannot be opened, or the client is closed.
        """
        async with self._lock:
            await self._ready()

    async def close(self) -> None:
        """Closes the port."""
        self._closing = True
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def _ready(self) -> AsyncModbusSerialClient:
        """The open client; opens (or reopens) the port when needed. Called under the lock."""
        if self._closing:
            raise ModbusConnectionError(f"{self.port}: the client is closed")
        client = self._client
        if client is not None and client.connected:
            return client
        if client is not None:
            client.close()
        client = AsyncModbusSerialClient(
            self.port,
            framer=FramerType.RTU,
            baudrate=self.baudrate,
            bytesize=self.bytesize,
            parity=self.parity,
            stopbits=self.stopbits,
            # Our timer times requests out; pymodbus's (which also bounds the connect) is a
            # backstop that never fires first. No retries, no reconnect loop of its own.
            timeout=self.timeout * 2 + 1,
            retries=0,
            reconnect_delay=0,
            name=f"rtu {self.port}",
        )
        try:
            opened = await client.connect()
        except (OSError, ModbusException) as exc:
            self.counters.connection_errors += 1
            raise ModbusConnectionError(f"{self.port}: cannot open: {exc}") from exc
        if not opened:
            client.close()
            self.counters.connection_errors += 1
            raise ModbusConnectionError(f"{self.port}: cannot open the serial port")
        if self._connections:
            self.counters.reconnects += 1
            log.info("%s: reopened", self.port)
        self._connections += 1
        self._client = client
        return client

    # --- requests ---

    async def read(
        self, unit: int, kind: str, address: int, count: int, *, urgent: bool = False
    ) -> bytes:
        """Reads registers or bits: the data bytes of the response.

        As :meth:`twinplane.drivers.modbus.tcp.ModbusTcpClient.read`: registers big-endian, bits
        packed LSB first, and the same typed errors. ``urgent`` changes nothing here: a serial
        line carries one request at a time and its bus scheduler already runs calls first.
        """
        del urgent
        function = READ_FUNCTIONS.get(kind) or read_function(kind)
        read_size(function, address, count)
        response = await self._execute(unit, function, address, count)
        if function <= Function.READ_DISCRETE_INPUTS:
            if len(response.bits) < count:
                raise self._fail(
                    ModbusFrameError(
                        f"{len(response.bits)} bits in a response to a read of {count}",
                        unit=unit,
                        function=function,
                    )
                )
            self.counters.responses += 1
            return pack_bits(response.bits[:count])
        if len(response.registers) != count:
            raise self._fail(
                ModbusFrameError(
                    f"{len(response.registers)} registers in a response to a read of {count}",
                    unit=unit,
                    function=function,
                )
            )
        self.counters.responses += 1
        return pack_registers(response.registers)

    async def write_single_coil(self, unit: int, address: int, value: bool) -> None:
        """Writes one coil (function 5)."""
        await self.execute_write(unit, (Function.WRITE_SINGLE_COIL, address, [value]))

    async def write_single_register(self, unit: int, address: int, value: int) -> None:
        """Writes one holding register (function 6; ``value`` is 0..65535)."""
        await self.execute_write(unit, (Function.WRITE_SINGLE_REGISTER, address, [value]))

    async def write_coils(self, unit: int, address: int, values: Sequence[bool]) -> None:
        """Writes consecutive coils (function 15)."""
        await self.execute_write(unit, (Function.WRITE_MULTIPLE_COILS, address, values))

    async def write_registers(self, unit: int, address: int, values: Sequence[int]) -> None:
        """Writes consecutive holding registers (function 16)."""
        await self.execute_write(unit, (Function.WRITE_MULTIPLE_REGISTERS, address, values))

    async def execute_write(self, unit: int, write: WriteOp) -> None:
        """Executes a write given as the engine's ``(function, offset, values)`` tuple."""
        function, address, values = write
        encode_write(function, address, values)  # validates as the TCP client does
        response = await self._execute(unit, function, address, values)
        if response.address != address:
            raise self._fail(
                ModbusFrameError(
                    f"write echo for address {response.address}, not {address}",
                    unit=unit,
                    function=function,
                )
            )
        self.counters.responses += 1

    # --- the exchange ---

    def _call(
        self,
        client: AsyncModbusSerialClient,
        unit: int,
        function: int,
        address: int,
        arg: int | Sequence[bool] | Sequence[int],
    ) -> Awaitable[ModbusPDU]:
        if isinstance(arg, int):
            readers = {
                Function.READ_COILS: client.read_coils,
                Function.READ_DISCRETE_INPUTS: client.read_discrete_inputs,
                Function.READ_HOLDING_REGISTERS: client.read_holding_registers,
                Function.READ_INPUT_REGISTERS: client.read_input_registers,
            }
            return readers[Function(function)](address, count=arg, device_id=unit)
        if function == Function.WRITE_SINGLE_COIL:
            return client.write_coil(address, bool(arg[0]), device_id=unit)
        if function == Function.WRITE_SINGLE_REGISTER:
            return client.write_register(address, int(arg[0]), device_id=unit)
        if function == Function.WRITE_MULTIPLE_COILS:
            return client.write_coils(address, [bool(v) for v in arg], device_id=unit)
        return client.write_registers(address, [int(v) for v in arg], device_id=unit)

    async def _execute(
        self, unit: int, function: int, address: int, arg: int | Sequence[bool] | Sequence[int]
    ) -> ModbusPDU:
        """One request on the line: the response, or the typed error."""
        async with self._lock:
            client = await self._ready()
            self.counters.requests += 1
            try:
                response = await self._wait_for(
                    self._call(client, unit, function, address, arg), unit, function
                )
            except ModbusError as err:
                raise self._fail(err) from None
            except ConnectionException as exc:
                raise self._fail(
                    ModbusConnectionError(f"{self.port}: {exc}", unit=unit, function=function)
                ) from exc
            except ModbusIOException as exc:
                error: ModbusError = (
                    ModbusTimeoutError(f"{self.port}: {exc}", unit=unit, function=function)
                    if "no response" in str(exc).lower()
                    else ModbusFrameError(f"{self.port}: {exc}", unit=unit, function=function)
                )
                raise self._fail(error) from exc
            except ModbusException as exc:
                raise self._fail(
                    ModbusFrameError(f"{self.port}: {exc}", unit=unit, function=function)
                ) from exc
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            raise self._fail(ModbusExceptionError(function, code, unit))
        if response.function_code != function:
            raise self._fail(
                ModbusFrameError(
                    f"response to function {response.function_code}",
                    unit=unit,
                    function=function,
                )
            )
        return response

    def _fail(self, error: ModbusError) -> ModbusError:
        self.counters.count_error(error)
        return error

    async def _wait_for(self, aw: Awaitable[T], unit: int, function: int) -> T:
        """Awaits ``aw`` for at most ``timeout`` seconds; a timeout is a ModbusTimeoutError."""
        try:
            async with asyncio.timeout(self.timeout):
                return await aw
        except TimeoutError as exc:
            raise ModbusTimeoutError(
                f"{self.port}: unit {unit} function {function}: "
                f"no response within {self.timeout:g} s",
                unit=unit,
                function=function,
            ) from exc
