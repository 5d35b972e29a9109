"""Desired-write outcomes toward the device manager (``TwinStream/ReportWriteOutcomes``).

DMI v1beta1 has no call that tells the device manager a desired value could not be written, so
twinplane adds one beside its fast path. It is discovered with the fast path's ``Capabilities``
(``write_outcomes: true``); toward a plain DMI v1beta1 device manager (KubeEdge EdgeCore, which
answers ``UNIMPLEMENTED``), toward a twinplane that predates the call, and with
``--edgecore-compat``, nothing is sent and a write that failed is only in the mapper's log and
metrics, as before.

Outcomes wait in a map keyed by device and property, so a burst of outcomes for one property
collapses into its newest (a work queue keyed by object). One task sends them in batches; a
batch the device manager did not take (it is restarting) goes back under any newer outcome and
is sent again after a backoff. A device that stops takes its pending outcomes with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import grpc

from twinplane.mapper.desired_writes import WriteResult
from twinplane.stream.v1 import stream_pb2
from twinplane.tasks import cancel_and_wait

__all__ = ["REPORT_WRITE_OUTCOMES", "WriteOutcomeReporter", "WriteOutcomeStats"]

log = logging.getLogger(__name__)

REPORT_WRITE_OUTCOMES: Final = "/twinplane.v1.TwinStream/ReportWriteOutcomes"
MAX_BATCH: Final = 512
"""Most outcomes per call."""
CALL_TIMEOUT_S: Final = 5.0
MAX_RETRY_S: Final = 10.0
"""Longest wait before a batch the device manager did not take is sent again."""

Supported = Callable[[], bool | None]
"""Whether the device manager takes outcomes: ``True``, ``False``, or ``None`` (not known yet)."""


@dataclass(slots=True)
class WriteOutcomeStats:
    """Counters of the outcome reports.

    Attributes:
        sent: Outcomes the device manager took (recorded or ignored as stale).
        errors: Calls that failed (their outcomes were kept for the next one).
        unsent: Outcomes dropped because the device manager does not take them.
    """

    sent: int = 0
    errors: int = 0
    unsent: int = 0


class WriteOutcomeReporter:
    """Sends :class:`WriteResult` values to the device manager.

    Args:
        channel: The channel to the device manager (the DMI one).
        supported: Whether it takes them (the fast path's ``Capabilities`` answer).
        retry_s: First wait before a failed call's outcomes are sent again (doubles).
    """

    def __init__(
        self, channel: grpc.aio.Channel, supported: Supported, *, retry_s: float = 0.5
    ) -> None:
        self.stats = WriteOutcomeStats()
        self._supported = supported
        self._retry_s = retry_s
        self._call: grpc.aio.UnaryUnaryMultiCallable[
            stream_pb2.WriteOutcomes, stream_pb2.WriteOutcomesAck
        ] = channel.unary_unary(
            REPORT_WRITE_OUTCOMES,
            request_serializer=stream_pb2.WriteOutcomes.SerializeToString,
            response_deserializer=stream_pb2.WriteOutcomesAck.FromString,
        )
        self._pending: dict[tuple[str, str], WriteResult] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._absent = False  # the call answered UNIMPLEMENTED: never again

    def offer(self, result: WriteResult) -> None:
        """Queues an outcome (replacing an unsent one of the same property); never blocks."""
        key = (result.device_id, result.property)
        self._pending.pop(key, None)  # the newest goes to the end: oldest first
        self._pending[key] = result
        self._wake.set()

    def forget(self, device_id: str) -> None:
        """Drops the unsent outcomes of a device that stopped."""
        for key in [k for k in self._pending if k[0] == device_id]:
            del self._pending[key]

    @property
    def pending(self) -> int:
        """Outcomes not sent yet."""
        return len(self._pending)

    def start(self) -> None:
        """Starts the sending task."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="mapper-write-outcomes")

    async def stop(self) -> None:
        """Stops the task (unsent outcomes are dropped)."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def _run(self) -> None:
        delay = self._retry_s
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                supported = False if self._absent else self._supported()
                if supported is None:  # not negotiated yet: keep them
                    await asyncio.sleep(self._retry_s)
                    continue
                if not supported:
                    self.stats.unsent += len(self._pending)
                    self._pending.clear()
                    break
                if await self._send_batch():
                    delay = self._retry_s
                else:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, MAX_RETRY_S)

    async def _send_batch(self) -> bool:
        """Sends the oldest outcomes; whether the device manager took them."""
        keys = list(self._pending)[:MAX_BATCH]
        batch = {key: self._pending.pop(key) for key in keys}
        request = stream_pb2.WriteOutcomes(outcomes=[_message(r) for r in batch.values()])
        try:
            ack = await self._call(request, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as err:
            self.stats.errors += 1
            if err.code() is grpc.StatusCode.UNIMPLEMENTED:  # a peer without the call after all
                self._absent = True
                self.stats.unsent += len(batch)
                log.info("device manager takes no write outcomes: failed writes stay in the log")
                return True
            for key, result in batch.items():  # back, unless a newer outcome came meanwhile
                self._pending.setdefault(key, result)
            log.debug("write outcomes not reported (%s); kept", err.code().name)
            return False
        self.stats.sent += len(batch)
        if ack.ignored:
            log.debug("device manager ignored %d stale write outcomes", ack.ignored)
        return True


def _message(result: WriteResult) -> stream_pb2.WriteOutcome:
    namespace, _, name = result.device_id.partition("/")
    return stream_pb2.WriteOutcome(
        device_namespace=namespace,
        device_name=name,
        property=result.property,
        value=result.value,
        ok=result.ok,
        reason=result.reason,
        attempts=result.attempts,
        time_ms=result.time_ms,
    )
