"""A Modbus TCP client: one transaction at a time by default, pipelining opt-in.

One :class:`ModbusTcpClient` is one TCP connection to a device or a gateway (any unit id).
The connection is made here (asyncio: name resolution, connect timeout, errors), then handed to
the process's Modbus I/O thread (``twinplane._engine.ModbusIo``, Rust, outside the GIL), which
does the rest of the wire work: it keeps the connection's queue of requests and a window of
``max_in_flight`` of them in flight,

- ``1`` (the default): one transaction at a time, what many PLCs and Modbus TCP gateways (and
  pymodbus's server) need — they answer the first request of a burst and drop or ignore the
  others. The next request of the connection is written by the I/O thread from the previous
  one's answer (or its timeout): a poll of three reads costs Python one call in and one result
  out, not three round trips through the event loop;
- ``k > 1``: up to ``k`` requests pipelined; ``None``: pipelined without limit. Responses are
  matched by transaction id whatever order they come back in, so a slow unit behind a gateway
  never holds up its neighbours. A poll whose first reads are answered while a later one times
  out looks like a device that takes one transaction at a time: it is counted
  (``counters.pipeline_timeouts``), logged once, and the client falls back to one at a time.

Writes go to the front of the queue (they pre-empt polls). Each event loop has one channel to
the I/O thread (:class:`_Hub`): requests made in one loop iteration go to the thread in one
wake-up, and the loop wakes once (one readable descriptor) for all the answers that came in
meanwhile. A read answered with exactly the data asked for is settled in Rust; every other
answer comes back as bytes and is judged here, with the same functions the rest of the driver
uses (:mod:`twinplane.drivers.modbus.frames`).

What goes wrong becomes a typed error (:mod:`twinplane.drivers.modbus.errors`):

- no answer within ``timeout`` of the request being sent: :class:`ModbusTimeoutError`;
- an exception response: :class:`ModbusExceptionError` with the function and code;
- a response with a valid header but the wrong unit, function, byte count or length:
  :class:`ModbusFrameError` for that request only;
- a header that cannot be framed (protocol id not 0, impossible length): the request it names
  fails with :class:`ModbusFrameError`, and the connection is reset, since the stream can no
  longer be split into frames; the other requests in flight or queued fail with
  :class:`ModbusConnectionError`;
- a response for no request in flight (late, or a wrong transaction id) is counted in
  ``counters.unknown_responses`` and dropped.

A failed poll's reads still in flight keep their place in the window until answered (counted as
unknown) or timed out, as the device is still working on them; its queued reads are skipped. A
lost connection is made again by the next call (counted in ``counters.reconnects``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any, Final, Self

from twinplane._engine import ModbusIo
from twinplane.drivers.modbus.errors import (
    ModbusConnectionError,
    ModbusError,
    ModbusExceptionError,
    ModbusFrameError,
    ModbusTimeoutError,
)
from twinplane.drivers.modbus.frames import (
    READ_FUNCTIONS,
    check_write_response,
    decode_read_response,
    encode_write,
    encode_write_coils,
    encode_write_registers,
    encode_write_single_coil,
    encode_write_single_register,
    read_function,
    read_size,
)

__all__ = ["ModbusCounters", "ModbusTcpClient", "PreparedReads", "WriteOp"]

log = logging.getLogger("twinplane.drivers.modbus")

WriteOp = tuple[int, int, Sequence[bool] | Sequence[int]]
"""A write as the engine gives it: ``(function, offset, values)``."""

PreparedReads = tuple[tuple[int, int, int, int], ...]
"""Reads checked by :meth:`ModbusTcpClient.prepare_reads`: ``(function, address, count, data
bytes)`` each."""

# What ModbusIo.take() hands back: the first item of each tuple.
_FRAMES: Final = 0  # (0, token, sent, [data bytes per read])
_TIMEOUT: Final = 1  # (1, token, sent, part, pipeline_lost)
_ANSWER: Final = 2  # (2, token, sent, part, unit, transaction id, pdu)
_TRUNCATED: Final = 3  # (3, token, sent, part, transaction id, bytes received)
_GARBLED: Final = 4  # (4, token, sent, part, transaction id, unit, message)
_LOST: Final = 5  # (5, token, sent, loss kind, text)
_CLOSED: Final = 6  # (6, conn, 0, loss kind, text)
_UNKNOWN: Final = 7  # (7, conn, count)
_GARBLED_LOSS: Final = 3


@dataclass(slots=True)
class ModbusCounters:
    """Counters of one client since it was made (plain integers, cheap to bump).

    Attributes:
        requests: Requests sent.
        responses: Requests answered with the data or echo asked for.
        timeouts: Requests that got no answer in time.
        exceptions: Modbus exception responses.
        frame_errors: Garbled or mismatched responses.
        connection_errors: Failed connects, and requests lost with their connection.
        unknown_responses: Responses for no request in flight (late, or a wrong transaction
            id), dropped.
        reconnects: Connections made after the first.
        pipeline_timeouts: Pipelined polls whose first reads were answered while a later one
            timed out: the device seems to take one transaction at a time.
        pipelining_disabled: Times the client fell back to one transaction at a time for that.
    """

    requests: int = 0
    responses: int = 0
    timeouts: int = 0
    exceptions: int = 0
    frame_errors: int = 0
    connection_errors: int = 0
    unknown_responses: int = 0
    reconnects: int = 0
    pipeline_timeouts: int = 0
    pipelining_disabled: int = 0

    def count_error(self, error: ModbusError) -> None:
        """Counts a failed request under its kind."""
        if isinstance(error, ModbusTimeoutError):
            self.timeouts += 1
        elif isinstance(error, ModbusExceptionError):
            self.exceptions += 1
        elif isinstance(error, ModbusFrameError):
            self.frame_errors += 1
        elif isinstance(error, ModbusConnectionError):
            self.connection_errors += 1

    @property
    def errors(self) -> dict[str, int]:
        """Failed requests by kind."""
        return {
            "timeout": self.timeouts,
            "exception": self.exceptions,
            "frame": self.frame_errors,
            "connection": self.connection_errors,
        }

    def as_dict(self) -> dict[str, int]:
        """Every counter by name."""
        return asdict(self)


def _reason(kind: int, text: str) -> str:
    """Why a connection ended, from the I/O thread's loss kind and text."""
    if kind == 1:
        return "the device closed the connection"
    if kind == 2:  # noqa: PLR2004 - the loss kinds of ModbusIo
        return f"connection lost: {text}"
    if kind == _GARBLED_LOSS:
        return f"connection reset after a garbled frame ({text})"
    return "connection closed"


class _Hub:
    """One event loop's channel to the Modbus I/O thread, and what waits on it.

    Holds no reference to its loop (the loop holds it, through its reader), so it goes with the
    loop: dropping the channel closes the connections the loop left open.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.io = ModbusIo()
        self.requests: dict[int, _Request] = {}
        self.links: dict[int, _Link] = {}
        self._tokens = itertools.count(1)
        self._flush_soon = False
        loop.add_reader(self.io.fileno(), self._drain)

    def token(self, request: _Request) -> int:
        token = next(self._tokens)
        self.requests[token] = request
        return token

    def flush_soon(self) -> None:
        """Hands the commands to the thread at the end of this loop iteration (once)."""
        if self._flush_soon:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # outside the loop (a setter called from sync code)
            self.io.flush()
            return
        self._flush_soon = True
        loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_soon = False
        self.io.flush()

    def _drain(self) -> None:
        requests, links = self.requests, self.links
        for event in self.io.take():
            kind = event[0]
            if kind <= _LOST:
                request = requests.pop(event[1], None)
                if request is not None:
                    request.settle(event)
            elif kind == _CLOSED:
                link = links.pop(event[1], None)
                if link is not None:
                    link.ended(event[3], event[4])
            else:
                link = links.get(event[1])
                if link is not None:
                    link.client.counters.unknown_responses += event[2]


_HUBS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Hub] = weakref.WeakKeyDictionary()


def _hub() -> _Hub:
    loop = asyncio.get_running_loop()
    hub = _HUBS.get(loop)
    if hub is None:
        hub = _HUBS[loop] = _Hub(loop)
    return hub


class _Link:
    """One connection handed to the I/O thread."""

    __slots__ = ("client", "closed", "conn", "hub", "lost", "reason")

    def __init__(self, client: ModbusTcpClient, hub: _Hub, conn: int) -> None:
        self.client = client
        self.hub = hub
        self.conn = conn
        self.closed = False
        self.reason = "connection closed"
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        hub.links[conn] = self

    def ended(self, kind: int, text: str) -> None:
        self.closed = True
        self.reason = _reason(kind, text)
        if kind == _GARBLED_LOSS:
            log.warning("%s: %s; resetting the connection", self.client.peer, text)
        if not self.lost.done():
            self.lost.set_result(None)


class _Request:
    """A poll (reads of one unit) or a write, waiting for its one event from the I/O thread."""

    __slots__ = ("client", "functions", "fut", "reads", "seconds", "unit", "write")

    def __init__(  # noqa: PLR0913 - a request's fields
        self,
        client: ModbusTcpClient,
        unit: int,
        seconds: float,
        fut: asyncio.Future[Any],
        *,
        reads: PreparedReads = (),
        write: bytes = b"",
    ) -> None:
        self.client = client
        self.unit = unit
        self.seconds = seconds
        self.fut = fut
        self.reads = reads
        self.write = write
        client._outstanding += 1  # the client's own count

    def function(self, part: int) -> int:
        return self.write[0] if self.write else self.reads[part][0]

    def settle(self, event: tuple[Any, ...]) -> None:
        client = self.client
        counters = client.counters
        client._outstanding -= 1
        counters.requests += event[2]
        kind = event[0]
        if kind == _FRAMES:
            counters.responses += len(event[3])
            if not self.fut.done():
                self.fut.set_result(event[3])
            return
        try:
            err = self._error(kind, event)
        except ModbusError as raised:
            err = raised
        if err is None:  # a write's echo, as asked
            counters.responses += 1
            if not self.fut.done():
                self.fut.set_result([b""])
            return
        counters.count_error(err)
        if not self.fut.done():
            self.fut.set_exception(err)

    def _answer_error(self, event: tuple[Any, ...]) -> ModbusError | None:
        """What an answer other than the plain read answer means (``None``: a write's echo)."""
        _, _, _, part, got_unit, tid, pdu = event
        unit, function = self.unit, self.function(part)
        if got_unit != unit:
            return ModbusFrameError(
                f"response from unit {got_unit} to a request for unit {unit}",
                unit=unit,
                function=function,
                transaction_id=tid,
            )
        if self.write:
            check_write_response(pdu, self.write, unit)
            return None
        decode_read_response(pdu, function, self.reads[part][3], unit)
        # the I/O thread keeps every answer these checks pass: not reached for a read
        return ModbusFrameError(
            f"answer {bytes(pdu).hex()} was not taken", unit=unit, function=function
        )

    def _error(self, kind: int, event: tuple[Any, ...]) -> ModbusError | None:
        """The error an event stands for (raised by the frame checks), or ``None``."""
        client, unit = self.client, self.unit
        if kind == _TIMEOUT:
            function = self.function(event[3])
            if event[4]:
                client.pipelined_reads_lost(unit, function)
            return ModbusTimeoutError(
                f"{client.peer}: unit {unit} function {function}: "
                f"no response within {self.seconds:g} s",
                unit=unit,
                function=function,
            )
        if kind == _ANSWER:
            return self._answer_error(event)
        if kind == _TRUNCATED:
            return ModbusFrameError(
                f"truncated frame: the connection closed after {event[5]} bytes",
                unit=unit,
                function=self.function(event[3]),
                transaction_id=event[4],
            )
        if kind == _GARBLED:
            return ModbusFrameError(
                event[6],
                unit=unit,
                function=self.function(event[3]),
                transaction_id=event[4],
            )
        return ModbusConnectionError(
            f"{client.peer}: {_reason(event[3], event[4])}",
            unit=unit,
            function=self.function(0),
        )


class ModbusTcpClient:
    """A Modbus TCP client: one connection, one transaction at a time unless told otherwise.

    Use it as ``async with ModbusTcpClient(host, port) as client:``; every method may be
    called from many tasks at once: requests wait their turn in the connection's queue.

    Args:
        host: The device's or gateway's address.
        port: Its TCP port.
        timeout: Seconds a request may wait for its response once sent.
        connect_timeout: Seconds a connect may take (default: ``timeout``).
        max_in_flight: Requests in flight on the connection at once. ``1`` (the default) is
            one transaction at a time, which every Modbus TCP device takes; more pipelines
            (for devices and gateways known to answer pipelined requests); ``None`` pipelines
            without limit.

    Attributes:
        counters: Requests, responses, errors by kind, reconnects, pipelining trouble.
        peer: ``host:port``.
    """

    def __init__(
        self,
        host: str,
        port: int = 502,
        *,
        timeout: float = 3.0,
        connect_timeout: float | None = None,
        max_in_flight: int | None = 1,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, not {max_in_flight}")
        self.host = host
        self.port = port
        self.timeout = timeout
        self.connect_timeout = timeout if connect_timeout is None else connect_timeout
        self.counters = ModbusCounters()
        self.peer = f"{host}:{port}"
        self._max_in_flight = max_in_flight
        self._link: _Link | None = None
        self._connections = 0
        self._closing = False
        self._connect_lock = asyncio.Lock()
        self._outstanding = 0

    def __repr__(self) -> str:
        state = "connected" if self.connected else "closed" if self._closing else "idle"
        return f"<ModbusTcpClient {self.peer} {state}>"

    @property
    def connected(self) -> bool:
        """Whether the connection is up right now."""
        return self._link is not None and not self._link.closed

    @property
    def in_flight(self) -> int:
        """Polls and writes made and not finished yet (queued or on the wire)."""
        return self._outstanding

    @property
    def max_in_flight(self) -> int | None:
        """Requests in flight at once (``None``: no limit); may be changed at any time."""
        return self._max_in_flight

    @max_in_flight.setter
    def max_in_flight(self, value: int | None) -> None:
        if value is not None and value < 1:
            raise ValueError(f"max_in_flight must be at least 1, not {value}")
        self._max_in_flight = value
        link = self._link
        if link is not None and not link.closed:
            link.hub.io.set_limit(link.conn, value or 0)
            link.hub.flush_soon()

    def pipelined_reads_lost(self, unit: int, function: int) -> None:
        """A pipelined poll's first reads were answered and a later one was not.

        The device (or the gateway in front of it) seems to take one transaction at a time:
        counted, logged once, and the client falls back to one request in flight.
        """
        self.counters.pipeline_timeouts += 1
        if self._max_in_flight == 1:
            return
        self.counters.pipelining_disabled += 1
        log.warning(
            "%s: unit %d answered the first requests of a pipelined poll but not a later one "
            "(function %d): the device seems to take one transaction at a time; sending one "
            "at a time from now on (configData maxInFlight: 1 says so up front)",
            self.peer,
            unit,
            function,
            extra={"peer": self.peer, "unit": unit},
        )
        self.max_in_flight = 1

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

    # --- connection ---

    async def connect(self) -> None:
        """Connects, unless connected already.

        Raises:
            ModbusConnectionError: The connect failed or timed out, or the client is closed.
        """
        await self._connection()

    async def close(self) -> None:
        """Closes the connection; requests in flight or queued fail (connection error)."""
        self._closing = True
        link, self._link = self._link, None
        if link is None or link.closed:
            return
        link.hub.io.close(link.conn)
        link.hub.flush_soon()
        await asyncio.wait({link.lost}, timeout=self.timeout)

    async def _connection(self) -> _Link:
        link = self._link
        if link is not None and not link.closed:
            return link
        if self._closing:
            raise ModbusConnectionError(f"{self.peer}: the client is closed")
        async with self._connect_lock:
            link = self._link
            if link is not None and not link.closed:
                return link
            return await self._open()

    async def _open(self) -> _Link:
        counters, peer = self.counters, self.peer
        try:
            async with asyncio.timeout(self.connect_timeout):
                sock = await self._connected_socket()
        except TimeoutError as err:
            counters.connection_errors += 1
            raise ModbusConnectionError(f"{peer}: connect timed out") from err
        except OSError as exc:
            counters.connection_errors += 1
            raise ModbusConnectionError(f"{peer}: connect failed: {exc}") from exc
        if self._closing:  # closed while connecting
            sock.close()
            raise ModbusConnectionError(f"{peer}: the client is closed")
        if self._connections:
            counters.reconnects += 1
            log.info("%s: reconnected", peer)
        self._connections += 1
        hub = _hub()
        conn = hub.io.attach(sock.detach(), self._max_in_flight or 0)
        hub.flush_soon()
        link = self._link = _Link(self, hub, conn)
        return link

    async def _connected_socket(self) -> socket.socket:
        """A socket connected to the first of the host's addresses that answers."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        error: OSError = OSError(f"no address for {self.host}")
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                await loop.sock_connect(sock, address)
            except OSError as exc:
                sock.close()
                error = exc
            except BaseException:
                sock.close()
                raise
            else:
                return sock
        raise error

    # --- requests ---

    async def read(
        self, unit: int, kind: str, address: int, count: int, *, urgent: bool = False
    ) -> bytes:
        """Reads registers or bits: the data bytes of the response.

        Args:
            unit: The unit (slave) id.
            kind: ``CoilRegister``, ``DiscreteInputRegister``, ``HoldingRegister`` or
                ``InputRegister``.
            address: The first address.
            count: How many registers (1..125) or bits (1..2000).
            urgent: Queue it ahead of the polls waiting on the connection, as writes are (a
                read a method call asked for).

        Returns:
            Registers as big-endian bytes (2 per register), bits packed LSB first: what
            :meth:`twinplane.twin.Engine.ingest_frame` takes.

        Raises:
            ModbusRequestError: A kind, address or count Modbus cannot carry.
            ModbusExceptionError: The device answered with an exception.
            ModbusTimeoutError: No answer in time.
            ModbusFrameError: A garbled or mismatched answer.
            ModbusConnectionError: No connection, or it was lost.
        """
        function = READ_FUNCTIONS.get(kind) or read_function(kind)
        size = read_size(function, address, count)
        link = await self._connection()
        reads = ((function, address, count, size),)
        fut = self._submit(link, unit, reads, self.timeout, first=urgent)
        return (await fut)[0]

    @staticmethod
    def prepare_reads(reads: Sequence[tuple[str, int, int]]) -> PreparedReads:
        """Checks ``(kind, address, count)`` reads once, for :meth:`submit_prepared`.

        Raises:
            ModbusRequestError: A kind, address or count Modbus cannot carry.
        """
        out = []
        for kind, address, count in reads:
            function = READ_FUNCTIONS.get(kind) or read_function(kind)
            out.append((function, address, count, read_size(function, address, count)))
        return tuple(out)

    def submit_reads(
        self, unit: int, reads: Sequence[tuple[str, int, int]], timeout: float | None = None
    ) -> asyncio.Future[list[bytes]] | None:
        """Queues every read of one poll; one future settles them all.

        The cheap path of a poller: no coroutine, no task, no timer per read. The reads go out
        in one write where the window allows (pipelining), else one after another, each
        written from the previous one's reply. The future's result is the data bytes of each
        read, in order (as :meth:`read` returns them); its exception is the first read's error
        (:class:`ModbusTimeoutError` when a read is not answered ``timeout`` seconds after it
        was sent, default the client's, and the other errors of :meth:`read`).

        Args:
            unit: The unit (slave) id.
            reads: ``(kind, address, count)`` per read.
            timeout: Seconds each read may take once sent.

        Returns:
            The future, or ``None`` when there is no connection yet: then use :meth:`read`,
            which connects.

        Raises:
            ModbusRequestError: A kind, address or count Modbus cannot carry (nothing is sent).
        """
        return self.submit_prepared(unit, self.prepare_reads(reads), timeout)

    def submit_prepared(
        self, unit: int, reads: PreparedReads, timeout: float | None = None
    ) -> asyncio.Future[list[bytes]] | None:
        """:meth:`submit_reads` with reads checked once by :meth:`prepare_reads`."""
        link = self._link
        if link is None or link.closed or not reads:
            return None
        return self._submit(link, unit, reads, self.timeout if timeout is None else timeout)

    def _submit(
        self, link: _Link, unit: int, reads: PreparedReads, seconds: float, *, first: bool = False
    ) -> asyncio.Future[list[bytes]]:
        hub = link.hub
        fut: asyncio.Future[list[bytes]] = asyncio.get_running_loop().create_future()
        token = hub.token(_Request(self, unit, seconds, fut, reads=reads))
        hub.io.read(link.conn, token, unit, reads, seconds, first)
        hub.flush_soon()
        return fut

    async def write_single_coil(self, unit: int, address: int, value: bool) -> None:
        """Writes one coil (function 5)."""
        await self._write(unit, encode_write_single_coil(address, value))

    async def write_single_register(self, unit: int, address: int, value: int) -> None:
        """Writes one holding register (function 6; ``value`` is 0..65535)."""
        await self._write(unit, encode_write_single_register(address, value))

    async def write_coils(self, unit: int, address: int, values: Sequence[bool]) -> None:
        """Writes consecutive coils (function 15)."""
        await self._write(unit, encode_write_coils(address, values))

    async def write_registers(self, unit: int, address: int, values: Sequence[int]) -> None:
        """Writes consecutive holding registers (function 16)."""
        await self._write(unit, encode_write_registers(address, values))

    async def execute_write(self, unit: int, write: WriteOp) -> None:
        """Executes a write given as the engine's ``(function, offset, values)`` tuple.

        The tuple is what :meth:`twinplane.twin.Engine.encode_write` returns.
        """
        function, address, values = write
        await self._write(unit, encode_write(function, address, values))

    async def _write(self, unit: int, pdu: bytes) -> None:
        """A write, ahead of the queued reads (writes pre-empt polls).

        A caller that gives up (is cancelled) leaves the write to the connection: queued or
        sent, it is settled there (the device may be working on it).
        """
        link = await self._connection()
        hub = link.hub
        fut: asyncio.Future[list[bytes]] = asyncio.get_running_loop().create_future()
        token = hub.token(_Request(self, unit, self.timeout, fut, write=pdu))
        hub.io.request(link.conn, token, unit, pdu, self.timeout)
        hub.flush_soon()
        await fut
