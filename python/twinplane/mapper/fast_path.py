"""The fast path's client side: reports as batches on one ``twinplane.v1.TwinStream`` stream.

After ``MapperRegister`` the reporter asks the device manager for ``Capabilities``. twinplane
answers ``fast_path: true``; a plain DMI v1beta1 peer (KubeEdge EdgeCore) answers
``UNIMPLEMENTED`` (or ``UNKNOWN`` service), and the mapper stays on unary
``ReportDeviceStatus`` for good. On the fast path every report cycle's ``to_dmi()`` bytes go out
as :class:`ReportBatch` messages (at most ``max_batch`` entries and :data:`MAX_BATCH_BYTES` each)
on one long-lived ``Report`` stream, opened lazily. At most ``window`` batches are unacked at
once (flow control); an ack not received within the timeout, a write or read error or the end of
the stream fails every unacked batch with :class:`FastPathError` — the reporter sends those
reports through unary DMI — and the fast path is negotiated again after a backoff.

The ``Capabilities`` answer also says whether the device manager takes desired-write outcomes
(``write_outcomes``, :mod:`twinplane.mapper.write_outcomes`); a peer without the fast path
takes none.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from typing import Final

import grpc

from twinplane.stream.v1 import stream_pb2

__all__ = ["MAX_BATCH_BYTES", "FastPath", "FastPathError", "FastPathState"]

log = logging.getLogger(__name__)

CAPABILITIES: Final = "/twinplane.v1.TwinStream/Capabilities"
REPORT: Final = "/twinplane.v1.TwinStream/Report"
MAX_BATCH_BYTES: Final = 3 * 1024 * 1024
"""Most report bytes per batch: under the 4 MiB receive limit of DMI servers."""
_ABSENT_CODES: Final = (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNKNOWN)


class FastPathError(Exception):
    """The stream failed; the batch may or may not have been applied (send it again)."""


class FastPathState(enum.Enum):
    """Where the negotiation stands."""

    UNKNOWN = "unknown"
    """Not negotiated yet."""
    ABSENT = "absent"
    """The peer has no fast path (plain DMI v1beta1): unary for good."""
    READY = "ready"
    """Negotiated: reports go on the stream."""
    DOWN = "down"
    """The stream failed: unary until the retry time, then negotiate again."""


class FastPath:
    """One mapper's ``TwinStream`` client.

    Args:
        channel: The channel to the device manager (the DMI one).
        window: Most unacked batches.
        ack_timeout_s: Longest wait for one batch's ack.
        retry_s: First delay before negotiating again after a failure (doubles up to 60 s).
    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        window: int = 4,
        ack_timeout_s: float = 5.0,
        retry_s: float = 1.0,
    ) -> None:
        self.state = FastPathState.UNKNOWN
        self.max_batch = 0
        self.write_outcomes: bool | None = None
        """Whether the peer takes ``ReportWriteOutcomes`` (``None``: not asked yet)."""
        self.comm_errors: bool | None = None
        """Whether the peer takes ``ReportCommErrors`` (``None``: not asked yet)."""
        self.mapper = ""
        self.failures = 0
        self._capabilities: grpc.aio.UnaryUnaryMultiCallable[
            stream_pb2.CapabilitiesRequest, stream_pb2.CapabilitiesResponse
        ] = channel.unary_unary(
            CAPABILITIES,
            request_serializer=stream_pb2.CapabilitiesRequest.SerializeToString,
            response_deserializer=stream_pb2.CapabilitiesResponse.FromString,
        )
        self._report: grpc.aio.StreamStreamMultiCallable[
            stream_pb2.ReportBatch, stream_pb2.ReportAck
        ] = channel.stream_stream(
            REPORT,
            request_serializer=stream_pb2.ReportBatch.SerializeToString,
            response_deserializer=stream_pb2.ReportAck.FromString,
        )
        self._window = asyncio.Semaphore(max(1, window))
        # gRPC takes one write at a time on a stream (a second one fails the call with
        # GRPC_CALL_ERROR_TOO_MANY_OPERATIONS): batches in the window wait for their turn.
        self._write_lock = asyncio.Lock()
        self._ack_timeout_s = ack_timeout_s
        self._retry_s = retry_s
        self._backoff_s = retry_s
        self._retry_at = 0.0
        self._call: grpc.aio.StreamStreamCall[stream_pb2.ReportBatch, stream_pb2.ReportAck] | None
        self._call = None
        self._reader: asyncio.Task[None] | None = None
        self._seq = 0
        self._acks: dict[int, asyncio.Future[stream_pb2.ReportAck]] = {}

    async def negotiate(self, mapper: str | None = None, *, timeout_s: float = 5.0) -> bool:
        """Asks the peer for ``Capabilities``; returns whether the fast path is ready."""
        if mapper is not None:
            self.mapper = mapper
        try:
            caps = await self._capabilities(
                stream_pb2.CapabilitiesRequest(mapper=self.mapper), timeout=timeout_s
            )
        except grpc.aio.AioRpcError as err:
            if err.code() in _ABSENT_CODES:
                self.state = FastPathState.ABSENT
                self.write_outcomes = False
                self.comm_errors = False
                log.info("device manager has no fast path (plain DMI v1beta1): unary reports")
                return False
            self._down(f"capabilities: {err.code().name}")
            return False
        self.write_outcomes = caps.write_outcomes
        self.comm_errors = caps.comm_errors
        if not caps.fast_path or caps.max_batch < 1:
            self.state = FastPathState.ABSENT
            return False
        self.max_batch = caps.max_batch
        self.state = FastPathState.READY
        self._backoff_s = self._retry_s
        log.info("fast path negotiated (TwinStream)", extra={"max_batch": self.max_batch})
        return True

    async def ready(self) -> bool:
        """Whether to send on the stream now; negotiates again once a failure's delay is over."""
        if self.state is FastPathState.READY:
            return True
        if self.state is FastPathState.DOWN and time.monotonic() >= self._retry_at:
            return await self.negotiate()
        return False

    async def send(self, reports: list[bytes]) -> stream_pb2.ReportAck:
        """Sends one batch and waits for its ack (at most ``window`` batches unacked).

        Raises:
            FastPathError: The stream failed (the fast path is down until the retry time).
        """
        async with self._window:
            if self.state is not FastPathState.READY:
                raise FastPathError("the fast path is not ready")
            call = self._call if self._call is not None else self._open()
            self._seq += 1
            seq = self._seq
            ack = asyncio.get_running_loop().create_future()
            self._acks[seq] = ack
            try:
                async with self._write_lock:
                    if self._call is not call:
                        raise FastPathError("the stream failed before this batch was written")  # noqa: TRY301
                    await call.write(stream_pb2.ReportBatch(seq=seq, reports=reports))
                return await asyncio.wait_for(ack, self._ack_timeout_s)
            except FastPathError:
                raise
            except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as err:
                self._fail(f"write: {err!r}")
                raise FastPathError(str(err)) from err
            except TimeoutError as err:
                self._fail(f"no ack of batch {seq} within {self._ack_timeout_s:g}s")
                raise FastPathError("ack timeout") from err
            finally:
                self._acks.pop(seq, None)
                if ack.done() and not ack.cancelled():
                    ack.exception()  # retrieved: a failed stream fails every waiter at once

    async def close(self) -> None:
        """Ends the stream (unacked batches fail)."""
        self._close_call("closed")
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None

    # -- internals -----------------------------------------------------------------------------

    def _open(self) -> grpc.aio.StreamStreamCall[stream_pb2.ReportBatch, stream_pb2.ReportAck]:
        call = self._report()
        self._call = call
        self._reader = asyncio.create_task(self._read(call), name="mapper-fast-path-acks")
        return call

    async def _read(
        self, call: grpc.aio.StreamStreamCall[stream_pb2.ReportBatch, stream_pb2.ReportAck]
    ) -> None:
        try:
            while True:
                ack = await call.read()
                if ack is grpc.aio.EOF:
                    reason = "stream ended"
                    break
                assert isinstance(ack, stream_pb2.ReportAck)  # noqa: S101 - read() is typed loosely
                waiter = self._acks.pop(ack.seq, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(ack)
        except grpc.aio.AioRpcError as err:
            reason = f"{err.code().name} {err.details()}"
        if self._call is call:
            self._fail(f"read: {reason}", from_reader=True)

    def _fail(self, reason: str, *, from_reader: bool = False) -> None:
        """The stream is unusable: fail every unacked batch, fall back until the retry time."""
        self._close_call(reason)
        if not from_reader and self._reader is not None:
            self._reader.cancel()
        self._reader = None
        self.failures += 1
        self._down(reason)

    def _close_call(self, reason: str) -> None:
        call, self._call = self._call, None
        if call is not None:
            call.cancel()
        acks, self._acks = self._acks, {}
        for waiter in acks.values():
            if not waiter.done():
                waiter.set_exception(FastPathError(reason))

    def _down(self, reason: str) -> None:
        self.state = FastPathState.DOWN
        self._retry_at = time.monotonic() + self._backoff_s
        log.warning(
            "fast path down (%s): unary DMI reports; negotiating again in %.1fs",
            reason,
            self._backoff_s,
        )
        self._backoff_s = min(self._backoff_s * 2, 60.0)
