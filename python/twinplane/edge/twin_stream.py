"""The fast path's server side: ``twinplane.v1.TwinStream`` beside DMI in the same gRPC server.

``Report`` is a bidirectional stream of :class:`ReportBatch` messages; each entry of a batch is a
serialized DMI ``ReportDeviceStatusRequest`` exactly as a mapper's engine encodes it, applied
through :meth:`EdgeCore.ingest_dmi_report` like a ``ReportDeviceStatus`` call (decoded in Rust,
no re-encoding). Every batch gets one :class:`ReportAck` with its ``seq``, in order. A bad entry
is rejected alone (its index, the status code ``ReportDeviceStatus`` would answer, the message);
the others apply. The DMI admission budget is shared: one token per entry; a batch over it, or
over ``max_batch`` entries, has every entry rejected with ``RESOURCE_EXHAUSTED`` (retryable) and
the stream stays open.

``Capabilities`` tells a mapper that the fast path is served and how big a batch may be; a plain
DMI v1beta1 peer (KubeEdge EdgeCore) answers it with ``UNIMPLEMENTED``.

``ReportWriteOutcomes`` takes how the mapper's desired-value writes ended
(:mod:`twinplane.edge.write_errors`), durable before the answer; ``Capabilities`` says
``write_outcomes: true`` when it is served. The admission budget is shared, one token per
outcome; over it the call is ``RESOURCE_EXHAUSTED`` (the mapper sends the outcomes again).

``ReportCommErrors`` takes a mapper's counted communication errors (per device and kind of
failure, every few seconds) and records each as a ``comm`` device event with its count
(:meth:`EdgeCore.record_comm_errors`); ``Capabilities`` says ``comm_errors: true``. Events are
not durable state: the answer does not wait for the event log.

A stream message that is not a ``ReportBatch`` (no ``seq`` to answer) ends the stream with
``INVALID_ARGUMENT``, naming the field and byte offset where decoding failed; the batches before
it were applied and acked.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import grpc

from twinplane.dmi.wire import decode_request
from twinplane.edge.admission import TokenBucket
from twinplane.edge.store import StoreError
from twinplane.edge.write_errors import WriteOutcome
from twinplane.errors import TwinplaneError
from twinplane.stream.v1 import stream_pb2

__all__ = ["MAX_BATCH", "SERVICE", "TwinStreamService", "TwinStreamStats"]

log = logging.getLogger(__name__)

SERVICE: Final = "twinplane.v1.TwinStream"
MAX_BATCH: Final = 1024
"""Most entries per batch offered to mappers (never above the admission burst)."""

_EXHAUSTED: Final = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]

RecordOutcomes = Callable[[list[WriteOutcome]], Awaitable[tuple[int, int]]]
"""Records write outcomes durably; returns ``(applied, ignored)``."""

RecordCommErrors = Callable[[list[stream_pb2.CommError]], tuple[int, int]]
"""Records counted communication errors as events; returns ``(applied, ignored)``."""


@dataclass(slots=True)
class TwinStreamStats:
    """Counters of the fast path."""

    streams: int = 0
    batches: int = 0
    reports: int = 0
    rejected: int = 0
    write_outcomes: int = 0
    comm_errors: int = 0


class TwinStreamService:
    """``twinplane.v1.TwinStream`` for one device manager.

    Args:
        ingest: Applies one serialized ``ReportDeviceStatusRequest`` (raises a
            :class:`TwinplaneError` for a bad one).
        bucket: The DMI server's admission budget, shared (one token per entry).
        status_of: The gRPC status of an error, as ``ReportDeviceStatus`` answers it.
        max_batch: Most entries per batch.
        write_outcomes: Records desired-write outcomes; ``None``: ``ReportWriteOutcomes`` is
            not served.
        comm_errors: Records communication errors; ``None``: ``ReportCommErrors`` is not
            served.
    """

    def __init__(  # noqa: PLR0913 - the collaborators, then keyword-only recorders
        self,
        ingest: Callable[[bytes], object],
        bucket: TokenBucket,
        status_of: Callable[[TwinplaneError], grpc.StatusCode],
        *,
        max_batch: int = MAX_BATCH,
        write_outcomes: RecordOutcomes | None = None,
        comm_errors: RecordCommErrors | None = None,
    ) -> None:
        self._ingest = ingest
        self._record_outcomes = write_outcomes
        self._record_comm = comm_errors
        self.bucket = bucket
        self._status_of = status_of
        limit = bucket.burst if bucket.rate > 0 else max_batch
        self.max_batch = max(1, min(max_batch, limit))
        self.stats = TwinStreamStats()

    def handler(self) -> grpc.GenericRpcHandler:
        """The service's generic handler, for ``server.add_generic_rpc_handlers``."""
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            # Requests arrive as raw bytes: each handler decodes its own.
            "Report": grpc.stream_stream_rpc_method_handler(
                self.report, response_serializer=stream_pb2.ReportAck.SerializeToString
            ),
            "Capabilities": grpc.unary_unary_rpc_method_handler(
                self.capabilities,
                response_serializer=stream_pb2.CapabilitiesResponse.SerializeToString,
            ),
        }
        if self._record_outcomes is not None:
            handlers["ReportWriteOutcomes"] = grpc.unary_unary_rpc_method_handler(
                self.report_write_outcomes,
                response_serializer=stream_pb2.WriteOutcomesAck.SerializeToString,
            )
        if self._record_comm is not None:
            handlers["ReportCommErrors"] = grpc.unary_unary_rpc_method_handler(
                self.report_comm_errors,
                response_serializer=stream_pb2.CommErrorsAck.SerializeToString,
            )
        return grpc.method_handlers_generic_handler(SERVICE, handlers)

    async def capabilities(
        self, data: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> stream_pb2.CapabilitiesResponse:
        """The fast path is served, with ``max_batch`` entries per batch."""
        request = await decode_request(stream_pb2.CapabilitiesRequest, data, context)
        log.debug("fast path offered", extra={"mapper": request.mapper})
        return stream_pb2.CapabilitiesResponse(
            fast_path=True,
            max_batch=self.max_batch,
            write_outcomes=self._record_outcomes is not None,
            comm_errors=self._record_comm is not None,
        )

    async def report_comm_errors(
        self, data: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> stream_pb2.CommErrorsAck:
        """Records counted communication errors as ``comm`` device events."""
        assert self._record_comm is not None  # noqa: S101 - served only with a recorder
        request = await decode_request(stream_pb2.CommErrors, data, context)
        count = len(request.errors)
        if count and not self.bucket.try_acquire(count):
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"over the DMI admission budget ({self.bucket.rate:g} calls/s); retry later",
            )
        applied, ignored = self._record_comm(list(request.errors))
        self.stats.comm_errors += count
        return stream_pb2.CommErrorsAck(applied=applied, ignored=ignored)

    async def report_write_outcomes(
        self, data: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> stream_pb2.WriteOutcomesAck:
        """Records how desired writes ended; durable before the answer."""
        assert self._record_outcomes is not None  # noqa: S101 - served only with a recorder
        request = await decode_request(stream_pb2.WriteOutcomes, data, context)
        count = len(request.outcomes)
        if count and not self.bucket.try_acquire(count):
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"over the DMI admission budget ({self.bucket.rate:g} calls/s); retry later",
            )
        outcomes = [WriteOutcome.from_proto(msg) for msg in request.outcomes]
        try:
            applied, ignored = await self._record_outcomes(outcomes)
        except StoreError as err:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"cannot store: {err}")
        self.stats.write_outcomes += count
        return stream_pb2.WriteOutcomesAck(applied=applied, ignored=ignored)

    async def report(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[stream_pb2.ReportAck]:
        """Applies each batch as it arrives and answers it with one ack of the same ``seq``."""
        self.stats.streams += 1
        async for data in requests:
            yield self.apply(await decode_request(stream_pb2.ReportBatch, data, context))

    def apply(self, batch: stream_pb2.ReportBatch) -> stream_pb2.ReportAck:
        """Applies one batch entry by entry; a bad entry is rejected alone."""
        reports = batch.reports
        count = len(reports)
        ack = stream_pb2.ReportAck(seq=batch.seq)
        self.stats.batches += 1
        if count == 0:
            return ack
        if count > self.max_batch or not self.bucket.try_acquire(count):
            reason = (
                f"batch of {count} reports over max_batch {self.max_batch}"
                if count > self.max_batch
                else f"over the DMI admission budget ({self.bucket.rate:g} reports/s); retry later"
            )
            ack.errors.extend(
                stream_pb2.ReportError(index=i, code=_EXHAUSTED, message=reason)
                for i in range(count)
            )
            self.stats.rejected += count
            return ack
        errors = ack.errors
        ingest = self._ingest
        for index, payload in enumerate(reports):
            try:
                ingest(payload)
            except TwinplaneError as err:
                status = self._status_of(err)
                errors.add(index=index, code=status.value[0], message=str(err))
        rejected = len(errors)
        ack.applied = count - rejected
        self.stats.reports += ack.applied
        self.stats.rejected += rejected
        return ack
