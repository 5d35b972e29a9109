"""A lean asyncio Modbus TCP client with pipelined transaction ids.

One :class:`ModbusTcpClient` is one TCP connection to a device or a gateway (any unit id).
Requests are pipelined: each gets a transaction id and a future in a dict, the request goes out
at once, and responses are matched by transaction id whatever order they come back in, so a
slow unit behind a gateway never holds up its neighbours. The protocol is an
:class:`asyncio.Protocol` (no streams, no task per request): the cost per request is one
``struct`` pack, one future and one timer.

What goes wrong becomes a typed error (:mod:`twinplane.drivers.modbus.errors`):

- no answer within ``timeout``: :class:`ModbusTimeoutError`;
- an exception response: :class:`ModbusExceptionError` with the function and code;
- a response with a valid header but the wrong unit, function, byte count or length:
  :class:`ModbusFrameError` for that request only;
- a header that cannot be framed (protocol id not 0, impossible length): the request it names
  fails with :class:`ModbusFrameError`, and the connection is reset, since the stream can no
  longer be split into frames; the other requests in flight fail with
  :class:`ModbusConnectionError`;
- a response for no request in flight (late, or a wrong transaction id) is counted in
  ``counters.unknown_responses`` and dropped.

A lost connection is made again by the next call (counted in ``counters.reconnects``).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable, Sequence
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Final, Protocol, Self, TypeVar, cast

from twinplane.drivers.modbus.errors import (
    ModbusConnectionError,
    ModbusError,
    ModbusExceptionError,
    ModbusFrameError,
    ModbusRequestError,
    ModbusTimeoutError,
)
from twinplane.drivers.modbus.frames import (
    MAX_MBAP_LENGTH,
    MBAP,
    MBAP_SIZE,
    READ_ADU,
    READ_FUNCTIONS,
    check_write_response,
    decode_mbap,
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

T = TypeVar("T")

WriteOp = tuple[int, int, Sequence[bool] | Sequence[int]]
"""A write as the engine gives it: ``(function, offset, values)``."""

PreparedReads = tuple[tuple[int, int, int, int], ...]
"""Reads checked by :meth:`ModbusTcpClient.prepare_reads`: ``(function, address, count, data
bytes)`` each."""

_TID: Final = struct.Struct(">H")
_EXPIRED: Final = "twinplane.drivers.modbus: request timed out"
"""The message a timed-out future is cancelled with."""
_TID_SPACE: Final = 0x10000


class _Settle(Protocol):
    """What a request in flight is settled through: a future, or one part of a poll."""

    def done(self) -> bool: ...
    def set_result(self, result: bytes, /) -> None: ...
    def set_exception(self, exception: BaseException, /) -> None: ...
    def cancel(self, msg: object = None) -> bool: ...


# A request in flight: its future, unit, function, what the response must be (the data bytes
# of a read, or the echo of a write), and its deadline (loop time).
_Pending = tuple[_Settle, int, int, "int | bytes", float]


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
    """

    requests: int = 0
    responses: int = 0
    timeouts: int = 0
    exceptions: int = 0
    frame_errors: int = 0
    connection_errors: int = 0
    unknown_responses: int = 0
    reconnects: int = 0

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


class _Connection(asyncio.Protocol):
    """One TCP connection: the requests in flight on it, and the framing of its replies."""

    def __init__(self, counters: ModbusCounters, peer: str, timeout: float) -> None:
        self.counters = counters
        self.peer = peer
        self.timeout = timeout
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._out: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.pending: dict[int, _Pending] = {}
        self.closed = False
        self.loop = asyncio.get_running_loop()
        self.lost: asyncio.Future[None] = self.loop.create_future()
        self._reason = "connection closed"
        self._rest = b""
        self._tid = 0

    # --- asyncio callbacks ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._rest:
            data = self._rest + data
            self._rest = b""
        end = len(data)
        pos = 0
        pending = self.pending
        while end - pos >= MBAP_SIZE:
            tid, protocol, length, unit = MBAP.unpack_from(data, pos)
            if protocol or not 2 <= length <= MAX_MBAP_LENGTH:  # noqa: PLR2004 - unframeable
                try:
                    decode_mbap(data, pos)
                except ModbusFrameError as err:
                    self._reset(err)
                return
            stop = pos + 6 + length
            if stop > end:
                break
            entry = pending.pop(tid, None)
            if entry is None or entry[0].done():
                self.counters.unknown_responses += 1
                log.debug("%s: dropped a response with transaction id %d", self.peer, tid)
            else:
                # The common case inline: the read answer asked for, data sliced out once.
                fut, want_unit, function, expect, _ = entry
                if (
                    unit == want_unit
                    and data[pos + MBAP_SIZE] == function
                    and data[pos + MBAP_SIZE + 1] == expect
                    and stop - pos - MBAP_SIZE - 2 == expect
                ):
                    fut.set_result(data[pos + MBAP_SIZE + 2 : stop])
                else:
                    self._complete(tid, unit, data[pos + MBAP_SIZE : stop], entry)
            pos = stop
        if pos < end:
            self._rest = data[pos:]

    def eof_received(self) -> bool | None:
        self._reason = "the device closed the connection"
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if exc is not None:
            self._reason = f"connection lost: {exc}"
        pending, self.pending = self.pending, {}
        if len(self._rest) >= _TID.size:
            (tid,) = _TID.unpack_from(self._rest)
            entry = pending.pop(tid, None)
            if entry is not None and not entry[0].done():
                entry[0].set_exception(
                    ModbusFrameError(
                        f"truncated frame: the connection closed after {len(self._rest)} bytes",
                        unit=entry[1],
                        function=entry[2],
                        transaction_id=tid,
                    )
                )
        for fut, unit, function, _, _ in pending.values():
            if not fut.done():
                fut.set_exception(
                    ModbusConnectionError(
                        f"{self.peer}: {self._reason}", unit=unit, function=function
                    )
                )
        if not self.lost.done():
            self.lost.set_result(None)

    # --- framing ---

    def send_soon(self, data: bytes) -> None:
        """Writes ``data`` at the end of this loop iteration, with what else is sent meanwhile.

        Polls started together (the units of one gateway) share one write, one syscall.
        """
        out = self._out
        out.append(data)
        if len(out) == 1:
            self.loop.call_soon(self._send_out)

    def _send_out(self) -> None:
        out, self._out = self._out, []
        if out and not self.closed and self.transport is not None:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def next_tid(self) -> int:
        """A transaction id not in flight on this connection."""
        tid = (self._tid + 1) & 0xFFFF
        if tid in self.pending:
            if len(self.pending) >= _TID_SPACE:
                raise ModbusRequestError("65536 requests in flight on one connection")
            while tid in self.pending:
                tid = (tid + 1) & 0xFFFF
        self._tid = tid
        return tid

    def add(  # noqa: PLR0913 - a request's fields
        self,
        tid: int,
        fut: _Settle,
        unit: int,
        function: int,
        expect: int | bytes,
        *,
        deadline: float | None = None,
    ) -> None:
        """Puts a request in flight; the connection's timer times it out.

        ``deadline`` (loop time) defaults to now plus the connection's timeout.
        """
        if deadline is None:
            deadline = self.loop.time() + self.timeout
        self.pending[tid] = (fut, unit, function, expect, deadline)
        if self._timer is None or deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = self.loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        """Cancels the requests past their deadline and sets the timer for the next one.

        The futures are cancelled with the marker :meth:`ModbusTcpClient._wait_for` maps to a
        timeout. One timer per connection, not one per request (under uvloop a timer per
        request costs more than all the rest of a request): it fires at the earliest deadline,
        sweeps the requests in flight (a few dozen at most) and is set again for the next one.
        """
        self._timer = None
        now = self.loop.time()
        pending = self.pending
        expired = []
        next_at = None
        for tid, entry in pending.items():
            at = entry[4]
            if at <= now:
                expired.append(tid)
            elif next_at is None or at < next_at:
                next_at = at
        for tid in expired:
            fut = pending.pop(tid)[0]
            if not fut.done():
                fut.cancel(_EXPIRED)
        if next_at is not None and not self.closed:
            self._timer_at = next_at
            self._timer = self.loop.call_at(next_at, self._expire)

    def _complete(self, tid: int, unit: int, pdu: bytes, entry: _Pending) -> None:
        """Settles a request with anything but the plain read answer: an error or a write echo."""
        fut, want_unit, function, expect, _ = entry
        try:
            if unit != want_unit:
                raise ModbusFrameError(
                    f"response from unit {unit} to a request for unit {want_unit}",
                    unit=want_unit,
                    function=function,
                    transaction_id=tid,
                )
            if isinstance(expect, int):
                data = decode_read_response(pdu, function, expect, unit)
            else:
                check_write_response(pdu, expect, unit)
                data = b""
        except ModbusError as err:
            fut.set_exception(err)
        else:
            fut.set_result(data)

    def _reset(self, err: ModbusFrameError) -> None:
        """Fails the request a garbled header names, and drops the connection."""
        tid = err.transaction_id
        entry = self.pending.pop(tid, None) if tid is not None else None
        if entry is not None and not entry[0].done():
            err.unit, err.function = entry[1], entry[2]
            entry[0].set_exception(err)
        log.warning("%s: %s; resetting the connection", self.peer, err.message)
        self._reason = f"connection reset after a garbled frame ({err.message})"
        self.closed = True
        self._rest = b""
        if self.transport is not None:
            self.transport.abort()


class _Poll:
    """The reads of one poll, sent together and settled by one future (no task per read).

    Each read in flight is a :class:`_Part` in the connection's table; the future gets the
    frames in order once every read is answered, or the first error (the other reads are
    taken out of the table then, so their late answers count as unknown).
    """

    __slots__ = ("client", "conn", "frames", "fut", "left", "seconds", "tids", "unit")

    def __init__(
        self, client: ModbusTcpClient, conn: _Connection, unit: int, size: int, seconds: float
    ) -> None:
        self.client = client
        self.seconds = seconds
        self.conn = conn
        self.unit = unit
        self.fut: asyncio.Future[list[bytes]] = conn.loop.create_future()
        self.frames: list[bytes] = [b""] * size
        self.left = size
        self.tids: list[int] = []

    def answered(self, index: int, data: bytes) -> None:
        if self.fut.done():
            return
        self.frames[index] = data
        self.left -= 1
        if not self.left:
            self.client.counters.responses += len(self.frames)
            self.fut.set_result(self.frames)

    def failed(self, err: BaseException) -> None:
        if self.fut.done():
            return
        if isinstance(err, ModbusError):
            self.client.counters.count_error(err)
        pending = self.conn.pending
        for tid in self.tids:
            entry = pending.get(tid)
            if entry is not None and isinstance(entry[0], _Part) and entry[0].poll is self:
                del pending[tid]
        self.fut.set_exception(err)


class _Part:
    """One read of a :class:`_Poll`, settled like a future by the connection."""

    __slots__ = ("function", "index", "poll")

    def __init__(self, poll: _Poll, index: int, function: int) -> None:
        self.poll = poll
        self.index = index
        self.function = function

    def done(self) -> bool:
        return self.poll.fut.done()

    def set_result(self, result: bytes, /) -> None:
        self.poll.answered(self.index, result)

    def set_exception(self, exception: BaseException, /) -> None:
        self.poll.failed(exception)

    def cancel(self, msg: object = None) -> bool:
        if msg != _EXPIRED:
            return self.poll.fut.cancel(msg)
        poll = self.poll
        poll.failed(
            ModbusTimeoutError(
                f"{poll.client.host}:{poll.client.port}: unit {poll.unit} function "
                f"{self.function}: no response within {poll.seconds:g} s",
                unit=poll.unit,
                function=self.function,
            )
        )
        return True


class ModbusTcpClient:
    """A Modbus TCP client: one connection, many requests in flight.

    Use it as ``async with ModbusTcpClient(host, port) as client:``; every method may be
    called from many tasks at once.

    Args:
        host: The device's or gateway's address.
        port: Its TCP port.
        timeout: Seconds a request may wait for its response.
        connect_timeout: Seconds a connect may take (default: ``timeout``).
        max_in_flight: At most this many requests in flight on the connection; the others
            wait their turn. ``None`` (the default) pipelines without limit; ``1`` suits a
            device that answers one request at a time (pymodbus's server is one).

    Attributes:
        counters: Requests, responses, errors by kind, reconnects.
    """

    def __init__(
        self,
        host: str,
        port: int = 502,
        *,
        timeout: float = 3.0,
        connect_timeout: float | None = None,
        max_in_flight: int | None = None,
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
        self._peer = f"{host}:{port}"
        self._conn: _Connection | None = None
        self._connections = 0
        self._closing = False
        self._connect_lock = asyncio.Lock()
        self._slots = None if max_in_flight is None else asyncio.Semaphore(max_in_flight)

    def __repr__(self) -> str:
        state = "connected" if self.connected else "closed" if self._closing else "idle"
        return f"<ModbusTcpClient {self._peer} {state}>"

    @property
    def connected(self) -> bool:
        """Whether the connection is up right now."""
        return self._conn is not None and not self._conn.closed

    @property
    def in_flight(self) -> int:
        """Requests sent and not answered yet."""
        return 0 if self._conn is None else len(self._conn.pending)

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
        """Closes the connection; requests in flight fail with :class:`ModbusConnectionError`."""
        self._closing = True
        conn, self._conn = self._conn, None
        if conn is None or conn.transport is None:
            return
        conn.transport.close()
        if not conn.lost.done():
            await asyncio.wait({conn.lost}, timeout=self.timeout)
        if not conn.lost.done():  # the peer did not let go: drop it
            conn.transport.abort()

    async def _connection(self) -> _Connection:
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        if self._closing:
            raise ModbusConnectionError(f"{self._peer}: the client is closed")
        async with self._connect_lock:
            conn = self._conn
            if conn is not None and not conn.closed:
                return conn
            return await self._open()

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        counters, peer = self.counters, self._peer
        try:
            _, conn = await self._wait_for(
                loop.create_connection(
                    lambda: _Connection(counters, peer, self.timeout), self.host, self.port
                ),
                self.connect_timeout,
            )
        except ModbusTimeoutError as err:
            counters.connection_errors += 1
            raise ModbusConnectionError(f"{peer}: connect timed out") from err
        except OSError as exc:
            counters.connection_errors += 1
            raise ModbusConnectionError(f"{peer}: connect failed: {exc}") from exc
        if self._connections:
            counters.reconnects += 1
            log.info("%s: reconnected", peer)
        self._connections += 1
        if self._closing:  # closed while connecting
            assert conn.transport is not None  # noqa: S101
            conn.transport.close()
            raise ModbusConnectionError(f"{peer}: the client is closed")
        self._conn = conn
        return conn

    # --- requests ---

    async def read(self, unit: int, kind: str, address: int, count: int) -> bytes:
        """Reads registers or bits: the data bytes of the response.

        Args:
            unit: The unit (slave) id.
            kind: ``CoilRegister``, ``DiscreteInputRegister``, ``HoldingRegister`` or
                ``InputRegister``.
            address: The first address.
            count: How many registers (1..125) or bits (1..2000).

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
        if self._slots is not None:
            async with self._slots:
                return await self._exchange(unit, function, size, address, count)
        return await self._exchange(unit, function, size, address, count)

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
        """Sends every read of one poll in one write; one future settles them all.

        The cheap path of a poller: no coroutine, no task, no timer per read. The future's
        result is the data bytes of each read, in order (as :meth:`read` returns them); its
        exception is the first read's error (:class:`ModbusTimeoutError` after ``timeout``
        seconds, default the client's, and the other errors of :meth:`read`).

        Args:
            unit: The unit (slave) id.
            reads: ``(kind, address, count)`` per read.
            timeout: Seconds the reads may take.

        Returns:
            The future, or ``None`` when there is no connection yet (or a ``max_in_flight``
            limit): then use :meth:`read`, which connects and waits its turn.

        Raises:
            ModbusRequestError: A kind, address or count Modbus cannot carry (nothing is sent).
        """
        return self.submit_prepared(unit, self.prepare_reads(reads), timeout)

    def submit_prepared(
        self, unit: int, reads: PreparedReads, timeout: float | None = None
    ) -> asyncio.Future[list[bytes]] | None:
        """:meth:`submit_reads` with reads checked once by :meth:`prepare_reads`."""
        conn = self._conn
        if conn is None or conn.closed or self._slots is not None or not reads:
            return None
        transport = conn.transport
        assert transport is not None  # noqa: S101 - set by connection_made, before any request
        seconds = self.timeout if timeout is None else timeout
        poll = _Poll(self, conn, unit, len(reads), seconds)
        deadline = conn.loop.time() + seconds
        adus = []
        add, next_tid, pack, tids = conn.add, conn.next_tid, READ_ADU.pack, poll.tids
        for index, (function, address, count, size) in enumerate(reads):
            tid = next_tid()
            adus.append(pack(tid, 0, 6, unit, function, address, count))
            add(tid, _Part(poll, index, function), unit, function, size, deadline=deadline)
            tids.append(tid)
        self.counters.requests += len(reads)
        conn.send_soon(b"".join(adus))
        return poll.fut

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
        if self._slots is not None:
            async with self._slots:
                await self._exchange(unit, pdu[0], pdu)
        else:
            await self._exchange(unit, pdu[0], pdu)

    async def _exchange(
        self, unit: int, function: int, expect: int | bytes, address: int = 0, count: int = 0
    ) -> bytes:
        """Sends one request and waits for its response; the future is removed in any case.

        ``expect`` is the data bytes a read answers (then ``address`` and ``count`` are the
        read's) or the PDU of a write (its echo is the answer).
        """
        conn = self._conn
        if conn is None or conn.closed:
            conn = await self._connection()
        tid = conn.next_tid()
        if isinstance(expect, int):
            adu = READ_ADU.pack(tid, 0, 6, unit, function, address, count)
        else:
            adu = MBAP.pack(tid, 0, len(expect) + 1, unit) + expect
        transport = conn.transport
        assert transport is not None  # noqa: S101 - set by connection_made, before any request
        fut: asyncio.Future[bytes] = conn.loop.create_future()
        conn.add(tid, fut, unit, function, expect)
        counters = self.counters
        counters.requests += 1
        try:
            transport.write(adu)
            data = await self._wait_for(fut, None, unit, function)
        except ModbusError as err:
            counters.count_error(err)
            raise
        finally:
            conn.pending.pop(tid, None)
        counters.responses += 1
        return data

    async def _wait_for(
        self,
        aw: Awaitable[T],
        timeout: float | None,  # noqa: ASYNC109 - the one place that maps timeouts
        unit: int | None = None,
        function: int | None = None,
    ) -> T:
        """Awaits ``aw``; a timeout is a :class:`ModbusTimeoutError`.

        Timing out cancels the future with a marker message: with ``timeout``, a timer of its
        own does it (the connect); requests pass ``None``, since their connection's timer times
        them out (:meth:`_Connection.add`). A cancellation without the marker is the caller's
        own and propagates.
        """
        fut = asyncio.ensure_future(aw)
        handle = (
            None if timeout is None else fut.get_loop().call_later(timeout, fut.cancel, _EXPIRED)
        )
        try:
            return await fut
        except asyncio.CancelledError as exc:
            if exc.args != (_EXPIRED,):
                raise
            seconds = self.timeout if timeout is None else timeout
            where = "" if unit is None else f" unit {unit} function {function}:"
            raise ModbusTimeoutError(
                f"{self._peer}:{where} no response within {seconds:g} s",
                unit=unit,
                function=function,
            ) from None
        finally:
            if handle is not None:
                handle.cancel()
