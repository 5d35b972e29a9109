"""Twin and state reports toward the device manager (DMI ``DeviceManagerService``).

Every report tick the engine's changes are drained in a worker thread (``engine.report()``
releases the GIL) and become one ``ReportDeviceStatusRequest`` per changed device — many twins
per call, each with ``reported`` and ``observedDesired`` — encoded in Rust (``to_dmi()``) and
sent as raw bytes (``channel.unary_unary(path)`` with no serializer), never re-serialised.

Pending reports are kept per device: a report that could not be sent is merged with the next
one of the same device (newest twin wins), so nothing is lost and nothing piles up. Toward
twinplane the calls go out with bounded concurrency; toward KubeEdge EdgeCore (``compat``) one
token bucket (1 call/s, small burst: EdgeCore's own limiter) paces every DMI call of the node,
twin and state reports alike, round-robin over devices.

Device states go out on their own cycle (``status.reportCycle``): on every change, and every
cycle when the device asks for state reports (``status.reportToCloud``).

Fast path (:mod:`twinplane.mapper.fast_path`): once :meth:`Reporter.negotiate` finds
``twinplane.v1.TwinStream`` on the device manager (never in ``compat``), each tick's pending
reports go out as a few stream batches instead of one call per device; a rejected entry is
dropped or kept like a refused call, and on a stream failure the batch is sent through unary DMI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import grpc

from twinplane.dmi.v1beta1 import api_pb2
from twinplane.mapper.fast_path import MAX_BATCH_BYTES, FastPath, FastPathError  # fast path
from twinplane.twin import Changes, Engine

__all__ = ["STATE_TICK_S", "CompatBudget", "Reporter", "ReporterStats", "merge_reports"]

STATE_CONCURRENCY: Final = 32
"""State reports in flight at once (one toward EdgeCore, which takes about one call a second)."""

STATE_TICK_S: Final = 1.0
"""How often device states are looked at (a change is reported within this time). Every
device is looked at each tick, so it is not the twin report tick: 10,000 devices five times a
second would cost a mapper a fifth of a core."""

log = logging.getLogger(__name__)

REPORT_STATUS: Final = "/v1beta1.DeviceManagerService/ReportDeviceStatus"
REPORT_STATES: Final = "/v1beta1.DeviceManagerService/ReportDeviceStates"
CALL_TIMEOUT_S: Final = 5.0
_FINAL_CODES: Final = (  # fast path: entries refused for good (retrying cannot succeed)
    grpc.StatusCode.NOT_FOUND.value[0],
    grpc.StatusCode.INVALID_ARGUMENT.value[0],
)
_CODE_NAMES: Final = {code.value[0]: code.name for code in grpc.StatusCode}  # fast path


def merge_reports(older: bytes, newer: bytes) -> bytes:
    """One ``ReportDeviceStatusRequest`` with the twins of both; ``newer`` wins per property."""
    old = api_pb2.ReportDeviceStatusRequest.FromString(older)
    new = api_pb2.ReportDeviceStatusRequest.FromString(newer)
    twins = {t.propertyName: t for t in old.reportedDevice.twins}
    twins.update({t.propertyName: t for t in new.reportedDevice.twins})
    del new.reportedDevice.twins[:]
    new.reportedDevice.twins.extend(twins.values())
    return new.SerializeToString()


class CompatBudget:
    """A token bucket shared by every DMI call toward a rate-limited manager (EdgeCore)."""

    def __init__(self, rate: float = 1.0, burst: int = 3) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._turn = asyncio.Lock()  # first come, first served: no loop starves the others
        self.waits = 0
        """Calls that had to wait for a token (metrics)."""

    async def acquire(self) -> None:
        """Waits for one call's token, after the calls that asked before."""
        waited = False
        async with self._turn:
            while True:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                if not waited:
                    waited = True
                    self.waits += 1
                await asyncio.sleep((1 - self._tokens) / self.rate)


@dataclass(slots=True)
class ReporterStats:
    """Counters of the reporter."""

    status_calls: int = 0
    status_errors: int = 0
    twins: int = 0  # twin changes drained from the engine for reporting
    state_calls: int = 0
    state_errors: int = 0
    stream_batches: int = 0  # fast path: batches acked
    stream_reports: int = 0  # fast path: reports applied
    stream_fallbacks: int = 0  # fast path: batches sent through unary DMI after a stream failure


StateSource = Callable[[], Awaitable[dict[str, tuple[str, bool, int]]]]
"""Returns per device id: (state, report periodically, cycle in ms)."""


class Reporter:
    """Sends the engine's changes and device states over one channel.

    Args:
        engine: The mapper's engine.
        channel: A channel to the device manager.
        interval_s: The report tick.
        concurrency: Most status calls in flight (ignored in ``compat``).
        compat: Pace every call through a :class:`CompatBudget` (KubeEdge EdgeCore).
        states: Returns the devices' states (see :data:`StateSource`).
    """

    def __init__(  # noqa: PLR0913 - the reporter's settings
        self,
        engine: Engine,
        channel: grpc.aio.Channel,
        *,
        interval_s: float,
        concurrency: int = 8,
        compat: bool = False,
        states: StateSource | None = None,
    ) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self.stats = ReporterStats()
        self.budget = CompatBudget() if compat else None
        self._status: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            REPORT_STATUS
        )
        self._states_call: grpc.aio.UnaryUnaryMultiCallable[
            api_pb2.ReportDeviceStatesRequest, bytes
        ] = channel.unary_unary(
            REPORT_STATES, request_serializer=api_pb2.ReportDeviceStatesRequest.SerializeToString
        )
        self._limit = asyncio.Semaphore(1 if compat else max(1, concurrency))
        self._state_limit = asyncio.Semaphore(1 if compat else STATE_CONCURRENCY)
        self._pending: dict[str, bytes] = {}
        self._states = states
        self._sent_states: dict[str, tuple[str, float]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        # --- data plane (docs/sinks.md): every drained batch of changes also goes to the sinks
        self.on_changes: Callable[[Changes], None] | None = None
        # --- end data plane
        # --- fast path (twinplane.v1.TwinStream): set up by negotiate(), never in compat
        self.fast_path: FastPath | None = None if compat else FastPath(channel)
        # --- end fast path

    def start(self) -> None:
        """Starts the twin and state loops."""
        self._tasks = [asyncio.create_task(self._twin_loop(), name="mapper-report")]
        if self._states is not None:
            self._tasks.append(asyncio.create_task(self._state_loop(), name="mapper-states"))

    async def stop(self) -> None:
        """Stops the loops (pending reports are dropped)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.fast_path is not None:  # fast path
            await self.fast_path.close()

    def forget(self, device_id: str) -> None:
        """Drops what is pending for a removed device."""
        self._pending.pop(device_id, None)
        self._sent_states.pop(device_id, None)

    async def _twin_loop(self) -> None:
        # A fixed tick: the time a flush takes (acks included) comes out of the wait for the
        # next one, so a sample waits at most one tick (plus one flush) to be sent.
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self.interval_s
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:  # a flush took longer than a tick: go on at once, without a burst after
                next_at = loop.time()
            await self.flush()

    async def flush(self) -> None:
        """Drains the engine and sends every pending report once."""
        changes = await asyncio.to_thread(self.engine.report)
        self.stats.twins += len(changes)
        # --- data plane (docs/sinks.md): a non-blocking hand-over; never fails a report
        if self.on_changes is not None:
            try:
                self.on_changes(changes)
            except Exception:  # a sink bug must not stop twin reporting
                log.exception("handing changes to the data plane failed")
        # --- end data plane
        for device, payload in changes.to_dmi():
            older = self._pending.get(device)
            self._pending[device] = payload if older is None else merge_reports(older, payload)
        if not self._pending:
            return
        if self.budget is not None:
            device = next(iter(self._pending))  # round-robin: oldest first
            await self._send(device, self._pending.pop(device))
            return
        batch, self._pending = self._pending, {}
        # --- fast path: what the stream could not carry goes through unary DMI
        if self.fast_path is not None and await self.fast_path.ready():
            batch = await self._send_fast(self.fast_path, batch)
        # --- end fast path
        await asyncio.gather(*(self._send(d, p) for d, p in batch.items()))

    async def _send(self, device: str, payload: bytes) -> None:
        async with self._limit:
            if self.budget is not None:
                await self.budget.acquire()
            try:
                await self._status(payload, timeout=CALL_TIMEOUT_S)
            except grpc.aio.AioRpcError as err:
                self.stats.status_errors += 1
                code = err.code()
                if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                    log.warning("report of %s refused: %s %s", device, code.name, err.details())
                    return  # retrying the same twins cannot succeed
                newer = self._pending.get(device)
                self._pending[device] = payload if newer is None else merge_reports(payload, newer)
                log.debug("report of %s failed (%s); kept for the next tick", device, code.name)
                return
            self.stats.status_calls += 1

    # --- fast path ------------------------------------------------------------------------------

    async def negotiate(self, mapper: str) -> bool:
        """Looks for the fast path (after ``MapperRegister``); ``False``: unary DMI."""
        if self.fast_path is None:
            return False
        return await self.fast_path.negotiate(mapper)

    def write_outcomes(self) -> bool | None:
        """Whether the device manager takes desired-write outcomes (``None``: not known yet).

        Known from the fast path's ``Capabilities``; never in ``compat`` (KubeEdge EdgeCore).
        """
        return False if self.fast_path is None else self.fast_path.write_outcomes

    def comm_errors(self) -> bool | None:
        """Whether the device manager takes communication errors (``None``: not known yet).

        Known from the fast path's ``Capabilities``; never in ``compat`` (KubeEdge EdgeCore).
        """
        return False if self.fast_path is None else self.fast_path.comm_errors

    async def _send_fast(self, fast: FastPath, batch: dict[str, bytes]) -> dict[str, bytes]:
        """Sends ``batch`` as stream batches; returns the reports of batches the stream lost."""
        chunks: list[list[tuple[str, bytes]]] = [[]]
        size = 0
        for item in batch.items():
            chunk = chunks[-1]
            if chunk and (len(chunk) >= fast.max_batch or size + len(item[1]) > MAX_BATCH_BYTES):
                chunk = []
                chunks.append(chunk)
                size = 0
            chunk.append(item)
            size += len(item[1])
        lost: dict[str, bytes] = {}
        for chunk, result in zip(
            chunks,
            await asyncio.gather(
                *(fast.send([p for _, p in chunk]) for chunk in chunks), return_exceptions=True
            ),
            strict=True,
        ):
            if isinstance(result, FastPathError):
                self.stats.stream_fallbacks += 1
                lost.update(chunk)
                continue
            if isinstance(result, BaseException):
                raise result
            self.stats.stream_batches += 1
            self.stats.stream_reports += result.applied
            for error in result.errors:
                if error.index >= len(chunk):
                    continue
                device, payload = chunk[error.index]
                self.stats.status_errors += 1
                if error.code in _FINAL_CODES:
                    name = _CODE_NAMES.get(error.code, str(error.code))
                    log.warning("report of %s refused: %s %s", device, name, error.message)
                    continue
                newer = self._pending.get(device)
                self._pending[device] = payload if newer is None else merge_reports(payload, newer)
        return lost

    # --- end fast path

    async def _state_loop(self) -> None:
        assert self._states is not None  # noqa: S101 - started only with a source
        while True:
            await asyncio.sleep(STATE_TICK_S)
            now = time.monotonic()
            due: list[tuple[str, str]] = []
            for device, (state, periodic, cycle_ms) in (await self._states()).items():
                sent = self._sent_states.get(device)
                fresh = sent is not None and (not periodic or now - sent[1] < cycle_ms / 1000)
                if sent is not None and sent[0] == state and fresh:
                    continue
                if state == "unknown" and sent is None:
                    continue
                due.append((device, state))
            # Several calls in flight (one at a time toward EdgeCore): 10,000 devices coming
            # online are reported in seconds, not one round trip after another.
            await asyncio.gather(*(self._send_state(d, s, now) for d, s in due))

    async def _send_state(self, device: str, state: str, now: float) -> None:
        namespace, _, name = device.partition("/")
        request = api_pb2.ReportDeviceStatesRequest(
            deviceName=name, deviceNamespace=namespace, state=state
        )
        async with self._state_limit:
            await self._send_state_call(device, state, now, request)

    async def _send_state_call(
        self, device: str, state: str, now: float, request: api_pb2.ReportDeviceStatesRequest
    ) -> None:
        if self.budget is not None:
            await self.budget.acquire()
        try:
            await self._states_call(request, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as err:
            self.stats.state_errors += 1
            log.debug("state of %s not reported: %s", device, err.code().name)
            return
        self.stats.state_calls += 1
        self._sent_states[device] = (state, now)
