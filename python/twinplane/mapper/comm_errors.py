"""Counted communication errors toward the device manager (``TwinStream/ReportCommErrors``).

Every failed poll is counted here, per device, kind of failure and message (``timeout``,
``connection``, ``exception`` with the protocol's code, ``protocol``), never sent one by one:
every ``interval_s`` seconds (5 by default) one call carries the counts since the last one, and
the device manager records them as ``comm`` device events with those counts. The map of counts
is bounded (``max_keys``); a failure of a key beyond it is counted in ``overflow`` only.

The call is discovered with the fast path's ``Capabilities`` (``comm_errors: true``). Toward a
plain DMI v1beta1 device manager (KubeEdge EdgeCore), a twinplane that predates it, or with
``--edgecore-compat``, nothing is sent (``unsent``): the device's state (offline, unhealthy)
still reaches the device manager through ``ReportDeviceStates``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import grpc

from twinplane.stream.v1 import stream_pb2
from twinplane.tasks import cancel_and_wait

__all__ = ["REPORT_COMM_ERRORS", "CommErrorReporter", "CommErrorStats", "classify"]

log = logging.getLogger(__name__)

REPORT_COMM_ERRORS: Final = "/twinplane.v1.TwinStream/ReportCommErrors"
INTERVAL_S: Final = 5.0
"""Seconds between reports (each carries the counts since the previous one)."""
MAX_KEYS: Final = 10_000
"""Distinct (device, kind, message) counted between two reports."""
CALL_TIMEOUT_S: Final = 5.0
_MESSAGE_MAX: Final = 300

Supported = Callable[[], bool | None]
"""Whether the device manager takes them: ``True``, ``False``, or ``None`` (not known yet)."""


def classify(err: BaseException) -> tuple[str, int, str]:
    """The kind, protocol code and message of a driver's error.

    A driver error with an integer ``code`` attribute (Modbus' ``ModbusExceptionError``) is an
    ``exception``; ``TimeoutError`` a ``timeout``; ``ConnectionError`` and ``OSError`` a
    ``connection``; anything else a ``protocol`` failure.
    """
    text = (str(err) or type(err).__name__)[:_MESSAGE_MAX]
    code = getattr(err, "code", None)
    if isinstance(code, int) and not isinstance(code, bool):
        return "exception", code, text
    if isinstance(err, TimeoutError):
        return "timeout", 0, text
    if isinstance(err, ConnectionError | OSError):
        return "connection", 0, text
    return "protocol", 0, text


@dataclass(slots=True)
class _Count:
    code: int
    count: int
    first_ms: int
    last_ms: int


@dataclass(slots=True)
class CommErrorStats:
    """Counters of the reports.

    Attributes:
        counted: Failures counted.
        sent: Entries the device manager took.
        errors: Calls that failed (their counts were kept for the next one).
        unsent: Failures not reported because the device manager does not take them.
        overflow: Failures not counted because ``max_keys`` distinct keys were pending.
    """

    counted: int = 0
    sent: int = 0
    errors: int = 0
    unsent: int = 0
    overflow: int = 0


class CommErrorReporter:
    """Counts communication errors and reports them every ``interval_s`` seconds.

    Args:
        channel: The channel to the device manager (the DMI one).
        supported: Whether it takes them (the fast path's ``Capabilities`` answer).
        interval_s: Seconds between reports.
        max_keys: Distinct (device, kind, message) counted between two reports.
    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        supported: Supported,
        *,
        interval_s: float = INTERVAL_S,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.stats = CommErrorStats()
        self.interval_s = interval_s
        self.max_keys = max_keys
        self._supported = supported
        self._call: grpc.aio.UnaryUnaryMultiCallable[
            stream_pb2.CommErrors, stream_pb2.CommErrorsAck
        ] = channel.unary_unary(
            REPORT_COMM_ERRORS,
            request_serializer=stream_pb2.CommErrors.SerializeToString,
            response_deserializer=stream_pb2.CommErrorsAck.FromString,
        )
        self._counts: dict[tuple[str, str, str], _Count] = {}
        self._task: asyncio.Task[None] | None = None
        self._absent = False  # the call answered UNIMPLEMENTED: never again

    def count(self, device_id: str, err: BaseException) -> None:
        """Counts one failed operation of ``device_id`` (``<ns>/<name>``); never blocks."""
        self.stats.counted += 1
        if self._absent or self._supported() is False:
            self.stats.unsent += 1
            return
        kind, code, message = classify(err)
        key = (device_id, kind, message)
        now = time.time_ns() // 1_000_000
        found = self._counts.get(key)
        if found is not None:
            found.count += 1
            found.last_ms = now
        elif len(self._counts) >= self.max_keys:
            self.stats.overflow += 1
        else:
            self._counts[key] = _Count(code, 1, now, now)

    def forget(self, device_id: str) -> None:
        """Drops the unsent counts of a device that stopped."""
        for key in [k for k in self._counts if k[0] == device_id]:
            del self._counts[key]

    @property
    def pending(self) -> int:
        """Distinct (device, kind, message) counted and not reported yet."""
        return len(self._counts)

    def start(self) -> None:
        """Starts the reporting task."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="mapper-comm-errors")

    async def stop(self) -> None:
        """Stops the task (unsent counts are dropped)."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            if self._counts:
                await self.report()

    async def report(self) -> bool:
        """Sends the counts now; whether the device manager took them (or they were dropped)."""
        supported = False if self._absent else self._supported()
        if supported is None or not self._counts:
            return False
        batch, self._counts = self._counts, {}
        if not supported:
            self.stats.unsent += sum(c.count for c in batch.values())
            return True
        request = stream_pb2.CommErrors(errors=[_message(k, c) for k, c in batch.items()])
        try:
            await self._call(request, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as err:
            self.stats.errors += 1
            if err.code() is grpc.StatusCode.UNIMPLEMENTED:
                self._absent = True
                self.stats.unsent += sum(c.count for c in batch.values())
                log.info("device manager takes no communication errors: they stay in the log")
                return True
            for key, found in batch.items():  # back, merged with what was counted meanwhile
                newer = self._counts.get(key)
                if newer is None:
                    self._counts[key] = found
                else:
                    newer.count += found.count
                    newer.first_ms = found.first_ms
            log.debug("communication errors not reported (%s); kept", err.code().name)
            return False
        self.stats.sent += len(batch)
        return True


def _message(key: tuple[str, str, str], found: _Count) -> stream_pb2.CommError:
    device_id, kind, message = key
    namespace, _, name = device_id.partition("/")
    return stream_pb2.CommError(
        device_namespace=namespace,
        device_name=name,
        kind=kind,
        code=found.code,
        message=message,
        count=found.count,
        first_ms=found.first_ms,
        last_ms=found.last_ms,
    )
