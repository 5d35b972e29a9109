"""Third-party Modbus TCP servers for the tests, with datastores set here.

Two implementations that are not ours, which behave differently on a pipelined connection:

- :class:`PymodbusServer`, pymodbus's ``ModbusTcpServer``: it answers **one transaction at a
  time** (of requests that arrive together it answers the first and drops the rest), as many
  PLCs and Modbus TCP gateways do;
- :class:`ModbusTkServer`, modbus_tk's threaded ``TcpServer``: it reads the stream frame by
  frame and answers every pipelined request, in order.

Units 1 and 2 answer at once; on pymodbus unit 3 answers after ``SLOW`` seconds, and a unit
may be given its own action (:func:`refuse_above`: a setpoint range check that answers
exception 3). Each unit has
``SIZE`` coils, discrete inputs, holding and input registers with values computed from the
unit id (the same on both servers). pymodbus's server can log every request it answers
(``PymodbusServer.requests``), as the server saw it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

import modbus_tk.defines as tk_defines
from modbus_tk import modbus_tcp
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from twinplane.drivers.modbus.frames import pack_bits, pack_registers

HOST = "127.0.0.1"
SIZE = 64
"""Addresses of each kind per unit."""
SLOW = 0.3
"""Seconds unit 3 takes to answer (on pymodbus)."""
WAIT = 5.0
"""Seconds a server may take to start or stop."""

Request = tuple[int, int, int, int]
"""A request as the server saw it: ``(unit, function code, address, count)``."""


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def coils(unit: int) -> list[bool]:
    """Unit ``unit``'s initial coils."""
    return [(i * unit) % 3 == 0 for i in range(SIZE)]


def discrete_inputs(unit: int) -> list[bool]:
    """Unit ``unit``'s discrete inputs."""
    return [(i + unit) % 2 == 1 for i in range(SIZE)]


def holding(unit: int) -> list[int]:
    """Unit ``unit``'s initial holding registers."""
    return [(1000 * unit + 17 * i) & 0xFFFF for i in range(SIZE)]


def inputs(unit: int) -> list[int]:
    """Unit ``unit``'s input registers."""
    return [(0xF000 + 257 * i * unit) & 0xFFFF for i in range(SIZE)]


EXPECTED: dict[str, Callable[[int], Sequence[int]]] = {
    "CoilRegister": coils,
    "DiscreteInputRegister": discrete_inputs,
    "HoldingRegister": holding,
    "InputRegister": inputs,
}


def expected(unit: int, kind: str, address: int, count: int) -> bytes:
    """The data bytes a read of the initial datastore answers."""
    values = EXPECTED[kind](unit)[address : address + count]
    if kind in ("CoilRegister", "DiscreteInputRegister"):
        return pack_bits(values)
    return pack_registers([int(v) for v in values])


async def slow_action(  # noqa: PLR0913, PLR0917 - pymodbus's action signature
    function_code: int,
    start_address: int,
    address: int,
    count: int,
    current_registers: list[int],
    set_values: list[int] | list[bool] | None,
) -> ExcCodes | None:
    """Makes a unit answer late."""
    await asyncio.sleep(SLOW)
    return None


Action = Callable[
    [int, int, int, int, list[int], "list[int] | list[bool] | None"],
    Coroutine[None, None, ExcCodes | None],
]
"""A pymodbus device action (see :func:`slow_action`): it may refuse a request."""


def refuse_above(address: int, limit: int) -> Action:
    """An action that refuses a write of more than ``limit`` to holding register ``address``.

    The answer is exception 3 (``ILLEGAL_DATA_VALUE``), as a PLC that checks a setpoint's range
    does; reads and other writes are served.
    """

    async def check(  # noqa: PLR0913, PLR0917 - pymodbus's action signature
        function_code: int,
        start_address: int,
        request_address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if function_code not in (6, 16) or set_values is None:
            return None
        hit = request_address <= address < request_address + count
        if hit and int(set_values[address - request_address]) > limit:
            return ExcCodes.ILLEGAL_VALUE
        return None

    return check


async def logged_action(  # noqa: PLR0913, PLR0917 - ours, then pymodbus's action signature
    unit: int,
    requests: list[Request],
    action: Action | None,
    function_code: int,
    start_address: int,
    address: int,
    count: int,
    current_registers: list[int],
    set_values: list[int] | list[bool] | None,
) -> ExcCodes | None:
    """Logs a request of unit ``unit``, then answers as the unit's ``action`` does."""
    requests.append((unit, function_code, address, count))
    if action is None:
        return None
    return await action(function_code, start_address, address, count, current_registers, set_values)


def device(
    unit: int, action: Action | None = None, requests: list[Request] | None = None
) -> SimDevice:
    """A pymodbus device with separate blocks for the four kinds.

    ``action`` replaces the default one (unit 3's slow answers); with ``requests``, every request
    of the unit is logged there first.
    """
    answer: Any = action if action is not None else (slow_action if unit == 3 else None)
    if requests is not None:
        answer = functools.partial(logged_action, unit, requests, answer)
    return SimDevice(
        id=unit,
        simdata=(
            [SimData(0, values=coils(unit), datatype=DataType.BITS)],
            [SimData(0, values=discrete_inputs(unit), datatype=DataType.BITS)],
            [SimData(0, values=holding(unit), datatype=DataType.REGISTERS)],
            [SimData(0, values=inputs(unit), datatype=DataType.REGISTERS)],
        ),
        action=answer,
    )


async def wait_listening(port: int) -> None:
    """Returns once something accepts connections on ``port``."""
    async with asyncio.timeout(WAIT):
        while True:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection(HOST, port)
                writer.close()
                await writer.wait_closed()
                return
            await asyncio.sleep(0.02)


class PymodbusServer:
    """pymodbus's TCP server with units ``units`` (one transaction at a time).

    ``actions`` gives a unit its own pymodbus action (e.g. :func:`refuse_above`). The server can
    be stopped and started again on the same port.

    Attributes:
        requests: With ``log=True``, every request the server handled (register reads and
            writes; bit reads count 16-bit words), in order.
    """

    def __init__(
        self,
        units: Sequence[int] = (1, 2, 3),
        port: int | None = None,
        actions: Mapping[int, Action] | None = None,
        *,
        log: bool = False,
    ) -> None:
        self.units = tuple(units)
        self.port = free_port() if port is None else port
        self.actions = dict(actions or {})
        self.server: ModbusTcpServer | None = None
        self.requests: list[Request] = []
        self._log = log

    async def start(self) -> None:
        """Starts serving and waits until it accepts connections."""
        self.server = ModbusTcpServer(
            [
                device(unit, self.actions.get(unit), self.requests if self._log else None)
                for unit in self.units
            ],
            address=(HOST, self.port),
        )
        await self.server.serve_forever(background=True)
        await wait_listening(self.port)

    async def stop(self) -> None:
        """Stops serving and drops every connection."""
        if self.server is not None:
            await self.server.shutdown()
            self.server = None

    async def holding(self, unit: int, address: int, count: int) -> list[int]:
        """Holding registers as the server holds them now."""
        assert self.server is not None
        context: Any = self.server.context
        values = await context.async_getValues(unit, 3, address, count)
        assert isinstance(values, list), values
        return [int(v) for v in values]


class ModbusTkServer:
    """modbus_tk's threaded TCP server with units ``units`` (answers pipelined requests)."""

    def __init__(self, units: Sequence[int] = (1, 2), port: int | None = None) -> None:
        self.units = tuple(units)
        self.port = free_port() if port is None else port
        self.server: Any = None
        self._slaves: dict[int, Any] = {}

    async def start(self) -> None:
        """Starts the server's thread and waits until it accepts connections."""
        server = modbus_tcp.TcpServer(port=self.port, address=HOST)
        for unit in self.units:
            slave = server.add_slave(unit)
            blocks = (
                ("coils", tk_defines.COILS, [int(v) for v in coils(unit)]),
                ("discrete", tk_defines.DISCRETE_INPUTS, [int(v) for v in discrete_inputs(unit)]),
                ("holding", tk_defines.HOLDING_REGISTERS, holding(unit)),
                ("inputs", tk_defines.ANALOG_INPUTS, inputs(unit)),
            )
            for name, kind, values in blocks:
                slave.add_block(name, kind, 0, SIZE)
                slave.set_values(name, 0, values)
            self._slaves[unit] = slave
        await asyncio.to_thread(server.start)
        self.server = server
        await wait_listening(self.port)

    async def stop(self) -> None:
        """Stops the server's thread."""
        if self.server is not None:
            server, self.server = self.server, None
            await asyncio.to_thread(server.stop)

    async def holding(self, unit: int, address: int, count: int) -> list[int]:
        """Holding registers as the server holds them now."""
        return list(self._slaves[unit].get_values("holding", address, count))


class WireProbe:
    """A TCP proxy in front of a Modbus TCP server that watches the requests go by.

    The client's window is in the I/O thread, out of a test's reach: the probe sees it on the
    wire instead. It forwards bytes both ways unchanged and frames each direction (MBAP).

    Attributes:
        requests: ``(unit, function)`` of every request, in the order it went upstream.
        most_outstanding: The most requests sent and not answered yet at any moment.
        chunks: Each read of the client's bytes (requests written together arrive in one).
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.requests: list[tuple[int, int]] = []
        self.most_outstanding = 0
        self.chunks: list[bytes] = []
        self._outstanding: set[int] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def __aenter__(self) -> WireProbe:
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(HOST, self.upstream_port)
        for task in (
            asyncio.create_task(self._pump(reader, up_writer, requests=True)),
            asyncio.create_task(self._pump(up_reader, writer, requests=False)),
        ):
            self._tasks.add(task)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, requests: bool
    ) -> None:
        rest = b""
        try:
            while data := await reader.read(65536):
                if requests:
                    self.chunks.append(data)
                rest += data
                while len(rest) >= 8 and len(rest) >= 6 + int.from_bytes(rest[4:6], "big"):
                    tid, unit, function = int.from_bytes(rest[:2], "big"), rest[6], rest[7]
                    rest = rest[6 + int.from_bytes(rest[4:6], "big") :]
                    if requests:
                        self.requests.append((unit, function))
                        self._outstanding.add(tid)
                        self.most_outstanding = max(self.most_outstanding, len(self._outstanding))
                    else:
                        self._outstanding.discard(tid)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
