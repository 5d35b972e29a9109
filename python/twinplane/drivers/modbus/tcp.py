"""A lean asyncio Modbus TCP client: one transaction at a time by default, pipelining opt-in.

One :class:`ModbusTcpClient` is one TCP connection to a device or a gateway (any unit id).
Each request gets a transaction id and a settle slot (a future, or one read of a poll) in a
dict keyed by that id. How many requests may be in flight on the connection at once is
``max_in_flight``:

- ``1`` (the default): one transaction at a time, what many PLCs and Modbus TCP gateways (and
  pymodbus's server) need — they answer the first request of a burst and drop or ignore the
  others. The others wait in a queue, and the next one is written from the callback that
  settles the previous one's reply (or its timeout): no coroutine, task or timer per request;
- ``k > 1``: up to ``k`` requests pipelined; ``None``: pipelined without limit. Responses are
  matched by transaction id whatever order they come back in, so a slow unit behind a gateway
  never holds up its neighbours. A poll whose first reads are answered while its later ones
  time out looks like a device that takes one transaction at a time: it is counted
  (``counters.pipeline_timeouts``), logged once, and the client falls back to one at a time.

Writes go to the front of the queue (they pre-empt polls). The protocol is an
:class:`asyncio.Protocol` (no streams, no task per request): the cost per request is one
``struct`` pack and one dict entry; one timer per connection times every request out.

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

A lost connection is made again by the next call (counted in ``counters.reconnects``).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
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


# A request in flight: its settle slot, unit, function, what the response must be (the data
# bytes of a read, or the echo of a write), and its deadline (loop time).
_Pending = tuple[_Settle, int, int, "int | bytes", float]

# A request waiting for room on the connection: settle slot, unit, function, expected answer
# (as in _Pending), the read's address and count (0 for a write), and its timeout in seconds
# (its deadline is set when it is sent).
_Queued = tuple[_Settle, int, int, "int | bytes", int, int, float]


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


class _Connection(asyncio.Protocol):
    """One TCP connection: its window of requests in flight, the queue behind it, its framing.

    Args:
        client: The client the connection belongs to (counters, limit, fallback).
    """

    def __init__(self, client: ModbusTcpClient) -> None:
        self.client = client
        self.counters = client.counters
        self.peer = client.peer
        self.limit = client.max_in_flight
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self.transport: asyncio.Transport | None = None
        self.pending: dict[int, _Pending] = {}
        self.queue: deque[_Queued] = deque()
        self.closed = False
        self.loop = asyncio.get_running_loop()
        self.lost: asyncio.Future[None] = self.loop.create_future()
        self._reason = "connection closed"
        self._rest = b""
        self._tid = 0
        self._pump_soon = False

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
        if self.queue:  # the next requests go out from this reply's callback
            self.pump()

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
        queued, self.queue = self.queue, deque()
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
        lost = [(e[0], e[1], e[2]) for e in pending.values()]
        lost += [(q[0], q[1], q[2]) for q in queued]
        for fut, unit, function in lost:
            if not fut.done():
                fut.set_exception(
                    ModbusConnectionError(
                        f"{self.peer}: {self._reason}", unit=unit, function=function
                    )
                )
        if not self.lost.done():
            self.lost.set_result(None)

    # --- the window and the queue ---

    def enqueue(self, request: _Queued, *, first: bool = False) -> None:
        """Queues a request; it is sent when the window has room (writes go ``first``).

        The queue is worked at the end of this loop iteration, so the requests queued meanwhile
        (the polls of a gateway's units) go out together where the window allows.
        """
        if first:
            self.queue.appendleft(request)
        else:
            self.queue.append(request)
        self.pump_soon()

    def pump_soon(self) -> None:
        """Works the queue at the end of this loop iteration (once, however often asked)."""
        if not self._pump_soon:
            self._pump_soon = True
            self.loop.call_soon(self.pump)

    def pump(self) -> None:
        """Sends queued requests while the window has room, in one write."""
        self._pump_soon = False
        queue = self.queue
        transport = self.transport
        if self.closed or transport is None:
            return  # connection_lost fails what is queued
        room = len(queue) if self.limit is None else self.limit - len(self.pending)
        if room <= 0:
            return
        deadline_base = self.loop.time()
        adus = []
        add, next_tid = self.add, self.next_tid
        last_poll: _Poll | None = None
        while queue and room > 0:
            settle, unit, function, expect, address, count, seconds = queue.popleft()
            if settle.done():
                continue  # its poll failed or its caller gave up while it waited
            tid = next_tid()
            if isinstance(expect, int):
                adus.append(READ_ADU.pack(tid, 0, 6, unit, function, address, count))
            else:
                adus.append(MBAP.pack(tid, 0, len(expect) + 1, unit) + expect)
            add(tid, settle, unit, function, expect, deadline=deadline_base + seconds)
            room -= 1
            if type(settle) is _Part:
                poll = settle.poll
                if poll is last_poll:
                    poll.pipelined = True  # two of its reads in flight at once
                last_poll = poll
        if adus:
            self.counters.requests += len(adus)
            transport.write(adus[0] if len(adus) == 1 else b"".join(adus))

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
        deadline: float,
    ) -> None:
        """Puts a request in flight; the connection's timer times it out at ``deadline``."""
        self.pending[tid] = (fut, unit, function, expect, deadline)
        if self._timer is None or deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = self.loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        """Times out the requests past their deadline and sets the timer for the next one.

        The futures are cancelled with the marker :meth:`ModbusTcpClient._wait_for` maps to a
        timeout. One timer per connection, not one per request (under uvloop a timer per
        request costs more than all the rest of a request): it fires at the earliest deadline,
        sweeps the requests in flight (the window: one, or a few dozen) and is set again for
        the next one. Timing a request out can settle others (the other reads of its poll), so
        the sweep takes the expired entries out first and settles them after; then the queue
        gets the room they leave.
        """
        self._timer = None
        now = self.loop.time()
        pending = self.pending
        expired = [tid for tid, entry in pending.items() if entry[4] <= now]
        settles = [pending.pop(tid)[0] for tid in expired]
        for fut in settles:
            if not fut.done():
                fut.cancel(_EXPIRED)
        if self.closed:
            return
        if pending:  # settling above schedules callbacks only: nothing re-armed the timer
            self._timer_at = min(entry[4] for entry in pending.values())
            self._timer = self.loop.call_at(self._timer_at, self._expire)
        if self.queue:
            self.pump()

    # --- settling ---

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
    """The reads of one poll, queued together and settled by one future (no task per read).

    Each read is a :class:`_Part` in the connection's queue, then in its table of requests in
    flight; the future gets the frames in order once every read is answered, or the first
    error. The other reads are not taken out of the table then: a device taking one
    transaction at a time is still working on one, so it keeps its place in the window until
    its answer (counted as unknown) or its deadline; reads still queued are skipped.
    """

    __slots__ = ("client", "frames", "fut", "left", "pipelined", "seconds", "unit")

    def __init__(
        self, client: ModbusTcpClient, conn: _Connection, unit: int, size: int, seconds: float
    ) -> None:
        self.client = client
        self.seconds = seconds
        self.unit = unit
        self.fut: asyncio.Future[list[bytes]] = conn.loop.create_future()
        self.frames: list[bytes] = [b""] * size
        self.left = size
        self.pipelined = False
        """Whether two of its reads were in flight at once."""

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
        if poll.fut.done():
            return False
        client = poll.client
        if poll.pipelined and poll.left < len(poll.frames):
            client.pipelined_reads_lost(poll.unit, self.function)
        poll.failed(
            ModbusTimeoutError(
                f"{client.peer}: unit {poll.unit} function {self.function}: "
                f"no response within {poll.seconds:g} s",
                unit=poll.unit,
                function=self.function,
            )
        )
        return True


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
        self._conn: _Connection | None = None
        self._connections = 0
        self._closing = False
        self._connect_lock = asyncio.Lock()

    def __repr__(self) -> str:
        state = "connected" if self.connected else "closed" if self._closing else "idle"
        return f"<ModbusTcpClient {self.peer} {state}>"

    @property
    def connected(self) -> bool:
        """Whether the connection is up right now."""
        return self._conn is not None and not self._conn.closed

    @property
    def in_flight(self) -> int:
        """Requests sent and not answered yet."""
        return 0 if self._conn is None else len(self._conn.pending)

    @property
    def waiting(self) -> int:
        """Requests queued behind the window."""
        return 0 if self._conn is None else len(self._conn.queue)

    @property
    def max_in_flight(self) -> int | None:
        """Requests in flight at once (``None``: no limit); may be changed at any time."""
        return self._max_in_flight

    @max_in_flight.setter
    def max_in_flight(self, value: int | None) -> None:
        if value is not None and value < 1:
            raise ValueError(f"max_in_flight must be at least 1, not {value}")
        self._max_in_flight = value
        conn = self._conn
        if conn is not None:
            conn.limit = value
            if conn.queue and not conn.closed:
                conn.pump_soon()

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
            raise ModbusConnectionError(f"{self.peer}: the client is closed")
        async with self._connect_lock:
            conn = self._conn
            if conn is not None and not conn.closed:
                return conn
            return await self._open()

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        counters, peer = self.counters, self.peer
        try:
            _, conn = await self._wait_for(
                loop.create_connection(lambda: _Connection(self), self.host, self.port),
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
        conn = self._conn
        if conn is None or conn.closed or not reads:
            return None
        seconds = self.timeout if timeout is None else timeout
        poll = _Poll(self, conn, unit, len(reads), seconds)
        queue = conn.queue
        for index, (function, address, count, size) in enumerate(reads):
            queue.append(
                (_Part(poll, index, function), unit, function, size, address, count, seconds)
            )
        conn.pump_soon()
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
        """A write, ahead of the queued reads (writes pre-empt polls)."""
        await self._exchange(unit, pdu[0], pdu, first=True)

    async def _exchange(  # noqa: PLR0913 - a request's fields
        self,
        unit: int,
        function: int,
        expect: int | bytes,
        address: int = 0,
        count: int = 0,
        *,
        first: bool = False,
    ) -> bytes:
        """Queues one request and waits for its response.

        ``expect`` is the data bytes a read answers (then ``address`` and ``count`` are the
        read's) or the PDU of a write (its echo is the answer). A caller that gives up (is
        cancelled) leaves its request to be skipped if still queued; sent, it keeps its place
        in the window until answered or timed out, as the device is working on it.
        """
        conn = self._conn
        if conn is None or conn.closed:
            conn = await self._connection()
        fut: asyncio.Future[bytes] = conn.loop.create_future()
        conn.enqueue((fut, unit, function, expect, address, count, self.timeout), first=first)
        counters = self.counters
        try:
            data = await self._wait_for(fut, None, unit, function)
        except ModbusError as err:
            counters.count_error(err)
            raise
        finally:
            if not fut.done():
                fut.cancel()
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
                f"{self.peer}:{where} no response within {seconds:g} s",
                unit=unit,
                function=function,
            ) from None
        finally:
            if handle is not None:
                handle.cancel()
