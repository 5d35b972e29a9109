"""One task per bus: polls every device's coalesced read plan each collect cycle.

A bus is what devices share: a Modbus TCP endpoint, a serial line, the virtual driver. Its
task keeps a heap of due times and

- staggers buses across the cycle: each bus gets a phase (a golden-ratio fraction of the
  cycle, so 1,000 buses at 1 s do not all fire at once). On a bus that pipelines, every device
  is polled at that phase of its own cycle — so a Modbus TCP gateway's units are polled
  together, their requests going out in one write and one wake-up. On a bus that carries one
  transaction at a time (``spread``: a serial line, a gateway without pipelining) polls due
  together would wait for each other, so each device gets a phase of its own (the bus's, plus
  the next golden-ratio step): ten units behind one connection are polled about a tenth of a
  cycle apart, each read waiting for at most its own poll's others;
- reads a device's properties at their own collect cycles when they differ
  (:mod:`twinplane.mapper.cycles`): each poll reads the properties that are due, coalesced in
  one plan; a device whose properties share one cycle is read whole every cycle;
- runs at most ``max_in_flight`` requests at once (1 on a serial line); a device with a poll
  still running is not polled again (the overrun is counted);
- runs pending writes and method calls' driver commands before any due poll (they pre-empt
  polls, in the order they came), then polls a written device at once so its reported value
  follows;
- isolates a failing or slow device: every poll has a deadline, and a device that fails is
  retried after an exponential backoff (a cycle, doubling, up to :data:`MAX_BACKOFF_S`), so it
  never holds the bus for its neighbours; its first error is logged once, a different error
  again, and a recovery line when it answers.

Raw frames go straight into the engine (``ingest_frame``) with the read's timestamp; value
drivers' results go in with ``ingest_values``. No Python object per sample survives the poll.

The task is driven by callbacks, not a coroutine: a timer at the earliest due time, and the
completion of each poll. There is one poll path: every poll is a future, and one completion
callback (:meth:`BusScheduler._polled`) applies every rule once — the busy flag and the
in-flight count, ingest, counting, failure and backoff, recovery. The future is the client's own
when it has a cheap path (:meth:`FrameClient.submit_read`, Modbus TCP: the reads go out in one
write, no coroutine and no task per poll); otherwise (other clients, and a device's first poll,
which initialises it) it is a task reading through the client's coroutine. A device is
initialised in one place, before its first read or write.

Every poll is timed against its due time: it is *on time* when it starts at most
:data:`ON_TIME_TOLERANCE` of a cycle late and its read succeeds before the next one is due;
``BusStats`` counts on-time and late polls and keeps a histogram of how late polls start.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, TypeVar

from twinplane.drivers.base import (
    DeviceClient,
    FrameClient,
    FrameRead,
    PropertyVisitor,
    ValueClient,
)
from twinplane.drivers.commands import RunCommand
from twinplane.mapper.cycles import PropertyCycles
from twinplane.twin import Engine, RegisterKindName, ValueLike

__all__ = [
    "LATENESS_BOUNDS_S",
    "MAX_BACKOFF_S",
    "ON_TIME_TOLERANCE",
    "TIMER_GRID_S",
    "BusScheduler",
    "BusStats",
    "ScheduledDevice",
]

log = logging.getLogger(__name__)

MAX_BACKOFF_S: Final = 30.0
"""Longest wait before a failing device is tried again."""

ON_TIME_TOLERANCE: Final = 0.1
"""A poll is on time when it starts at most this fraction of its cycle after its due time
(and its read succeeds before the next poll is due)."""

TIMER_GRID_S: Final = 0.005
"""Poll timers fire on a grid of this many seconds, shared by every bus: the polls of many
buses that fall due within one step start in one wake-up of the event loop, not one each (a
wake-up costs tens of microseconds of CPU on a small virtual gateway, more than a poll's own
work). A poll starts at most this late; :data:`ON_TIME_TOLERANCE` of a 1 s cycle is 20 times
more."""

LATENESS_BOUNDS_S: Final = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
"""Upper bounds (seconds) of the start-lateness histogram's buckets; one more is +Inf."""

_GOLDEN: Final = 0.618_033_988_749_895
_BUS_NUMBERS: Final = itertools.count()
_R = TypeVar("_R")


def now_ms() -> int:
    """Milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


@dataclass(slots=True, eq=False)
class ScheduledDevice:
    """A device on a bus: its client, read plan and health.

    Attributes:
        device_id: ``<namespace>/<name>``.
        index: The device's index in the engine.
        client: The driver's client.
        props: The properties a poll reads, in engine order: all of them, or with ``cycles``
            those of the current poll.
        plan: The coalesced reads of ``props`` (frame drivers).
        cycle_s: The poll period (with ``cycles``, the shortest of them).
        state: ``online``, ``offline`` (timeouts, connection errors) or ``unhealthy`` (other
            errors), ``unknown`` before the first poll.
        cycles: The properties' own collect cycles when they differ (each poll then reads
            the properties due); ``None`` when they are one, and every poll reads the whole
            device.
    """

    device_id: str
    index: int
    client: DeviceClient
    props: list[PropertyVisitor]
    plan: list[FrameRead]
    cycle_s: float
    timeout_s: float
    state: str = "unknown"
    initialized: bool = False
    failures: int = 0
    polls: int = 0
    overruns: int = 0
    busy: bool = False
    removed: bool = False
    error: str | None = None
    due: float = 0.0
    generation: int = 0
    cycles: PropertyCycles | None = None

    def backoff_s(self) -> float:
        """The wait after ``failures`` consecutive failures."""
        return min(self.cycle_s * 2.0 ** min(self.failures - 1, 16), MAX_BACKOFF_S)


@dataclass(slots=True)
class BusStats:
    """Counters of one bus.

    Attributes:
        polls: Polls that succeeded.
        poll_errors: Polls that failed.
        polls_on_time: Succeeded polls that started within :data:`ON_TIME_TOLERANCE` of a
            cycle after their due time and finished before the next one was due.
        polls_late: Succeeded polls that did not.
        writes: Property writes that succeeded (desired values, method calls, REST).
        write_errors: Property writes that failed.
        commands: Driver commands (:meth:`BusScheduler.run`) that succeeded.
        command_errors: Driver commands that failed.
        overruns: Polls skipped because the device's previous poll was still running.
        lateness: Polls by how late they started (buckets of :data:`LATENESS_BOUNDS_S`, then
            +Inf); ``lateness_sum_s`` the seconds summed.
    """

    polls: int = 0
    poll_errors: int = 0
    writes: int = 0
    write_errors: int = 0
    commands: int = 0
    command_errors: int = 0
    overruns: int = 0
    polls_on_time: int = 0
    polls_late: int = 0
    lateness: list[int] = field(default_factory=lambda: [0] * (len(LATENESS_BOUNDS_S) + 1))
    lateness_sum_s: float = 0.0


def _future() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


@dataclass(slots=True)
class _Write:
    device: ScheduledDevice
    prop: PropertyVisitor
    value: str
    done: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass(slots=True)
class _Command:
    device: ScheduledDevice
    run: RunCommand
    done: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class BusScheduler:
    """The task of one bus.

    Args:
        key: The bus identity (for logs).
        engine: Where samples go.
        max_in_flight: Requests in flight at once on this bus.
        spread: Give each device a phase of its own (a bus that carries one transaction at a
            time); may be turned on later, for the devices added from then on.
        on_error: Called with ``(device_id, error)`` for each failed poll (must not block).
    """

    def __init__(
        self,
        key: str,
        engine: Engine,
        *,
        max_in_flight: int = 1,
        spread: bool = False,
        on_error: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        self.key = key
        self.on_error = on_error
        self.engine = engine
        self.max_in_flight = max(1, max_in_flight)
        self.spread = spread
        self._slots = 0
        self.devices: dict[str, ScheduledDevice] = {}
        self.stats = BusStats()
        self.phase = (next(_BUS_NUMBERS) * _GOLDEN) % 1.0
        """Where in each cycle this bus's devices are polled (a fraction of the cycle)."""
        self._heap: list[tuple[float, int, ScheduledDevice]] = []
        self._seq = 0
        self._writes: deque[_Write | _Command] = deque()
        """Writes and commands, run before any due poll in the order they came."""
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._polls: set[asyncio.Future[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self._kicked = False
        self._in_tick = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    # -- membership ------------------------------------------------------------------------

    def add(self, device: ScheduledDevice) -> None:
        """Adds a device; its first poll is at the bus's phase of its cycle (or its own)."""
        old = self.devices.get(device.device_id)
        if old is not None:
            old.removed = True
        self.devices[device.device_id] = device
        now = time.monotonic()
        cycle = device.cycle_s
        phase = self.phase
        if self.spread:
            phase = (phase + self._slots * _GOLDEN) % 1.0
            self._slots += 1
        offset = phase * cycle
        if device.cycles is not None:
            due = device.cycles.start(offset, now)
        else:
            due = offset + math.ceil((now - offset) / cycle) * cycle if cycle > 0 else now
        self._push(device, due)

    def remove(self, device_id: str) -> ScheduledDevice | None:
        """Removes a device: no poll starts for it from now on."""
        device = self.devices.pop(device_id, None)
        if device is not None:
            device.removed = True
            for write in self._writes:
                if write.device is device and not write.done.done():
                    write.done.cancel()
            self._writes = deque(w for w in self._writes if w.device is not device)
        return device

    def poll_now(self, device_id: str) -> None:
        """Polls a device as soon as the bus is free."""
        device = self.devices.get(device_id)
        if device is not None:
            self._poll_soon(device)

    def _poll_soon(self, device: ScheduledDevice) -> None:
        """Polls the whole device as soon as the bus is free."""
        now = time.monotonic()
        if device.cycles is not None:
            device.cycles.due_all(now)
        self._push(device, now)

    def _push(self, device: ScheduledDevice, due: float) -> None:
        device.generation += 1
        device.due = due
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, device))
        if not self._in_tick and (self._timer is None or due < self._timer_at):
            self._kick()

    # -- writes ----------------------------------------------------------------------------

    async def write(self, device_id: str, prop: PropertyVisitor, value: str) -> None:
        """Writes through the device's client ahead of any due poll; waits for the result.

        Raises:
            LookupError: The device is not on this bus.
            Exception: What the driver raised.
        """
        device = self.devices.get(device_id)
        if device is None:
            raise LookupError(f"device {device_id} is not on bus {self.key}")
        write = _Write(device, prop, value)
        self._writes.append(write)
        self._kick()
        await write.done

    async def run(self, device_id: str, command: RunCommand) -> Any:  # noqa: ANN401 - JSON
        """Runs a driver command of the device ahead of any due poll; returns its result.

        The device is initialised first if it was not yet. The caller bounds the wait (a
        command cancelled while it waits is dropped unsent; one already running is cancelled
        as the driver allows). The device is not polled afterwards: a command that writes
        registers of properties shows in the next regular poll.

        Raises:
            LookupError: The device is not on this bus.
            Exception: What the driver raised.
        """
        device = self.devices.get(device_id)
        if device is None:
            raise LookupError(f"device {device_id} is not on bus {self.key}")
        job = _Command(device, command)
        self._writes.append(job)
        self._kick()
        return await job.done

    # -- the task --------------------------------------------------------------------------

    def start(self) -> None:
        """Starts polling (from the running loop)."""
        if not self._running:
            self._loop = asyncio.get_running_loop()
            self._running = True
            self._kick()

    async def stop(self) -> None:
        """Stops polling and every request in flight."""
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        polls, self._polls = self._polls, set()
        tasks = [*self._tasks, *(p for p in polls if isinstance(p, asyncio.Task))]
        for fut in polls:
            fut.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # their errors were counted
        self._tasks.clear()

    def _kick(self) -> None:
        """Runs the dispatcher soon (once, however often it is asked before it runs)."""
        if self._running and not self._kicked and self._loop is not None:
            self._kicked = True
            self._loop.call_soon(self._tick)

    def _tick(self) -> None:
        self._kicked = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._running:
            return
        self._in_tick = True
        try:
            self._dispatch()
        finally:
            self._in_tick = False
        if self._heap and self._in_flight < self.max_in_flight and self._loop is not None:
            due = self._heap[0][0]
            self._timer_at = due
            now = time.monotonic()
            at = math.ceil(due / TIMER_GRID_S) * TIMER_GRID_S  # the grid step due falls in
            self._timer = self._loop.call_later(max(at - now, 0.0), self._tick)

    def _dispatch(self) -> None:
        while self._writes and self._in_flight < self.max_in_flight:
            job = self._writes.popleft()
            if job.done.done():  # its caller gave up while it waited: not sent
                continue
            self._spawn(self._do_write(job) if isinstance(job, _Write) else self._do_command(job))
        now = time.monotonic()
        heap = self._heap
        while heap and self._in_flight < self.max_in_flight and heap[0][0] <= now:
            due, _, device = heapq.heappop(heap)
            if device.removed or due != device.due:
                continue  # removed, or rescheduled since
            cycles = device.cycles
            if device.busy:
                device.overruns += 1
                self.stats.overruns += 1
                self._push(device, due + device.cycle_s if cycles is None else cycles.after(now))
                continue
            if cycles is None:
                self._push(device, max(due + device.cycle_s, now))
            else:  # the properties due now
                device.plan, device.props = cycles.take(now)
                self._push(device, cycles.next_due())
            self._start_poll(device, due, now)

    # -- the poll path ------------------------------------------------------------------------

    def _start_poll(self, device: ScheduledDevice, due: float, now: float) -> None:
        """Starts one poll as a future: the client's cheap path, else a task."""
        client = device.client
        try:
            if isinstance(client, FrameClient):
                fut = (
                    client.submit_read(device.plan, device.timeout_s)
                    if device.initialized
                    else None
                )
                if fut is None:
                    fut = asyncio.create_task(self._read_frames(device, client))
                self._watch(device, fut, self._ingest_frames, due, now)
            else:
                task = asyncio.create_task(self._read_values(device))
                self._watch(device, task, self._ingest_values, due, now)
        except Exception as err:  # a request the driver cannot send fails this poll
            self._failed(device, err)

    def _watch(
        self,
        device: ScheduledDevice,
        fut: asyncio.Future[_R],
        ingest: Callable[[ScheduledDevice, _R, int], None],
        due: float,
        started: float,
    ) -> None:
        device.busy = True
        self._in_flight += 1
        self._polls.add(fut)
        fut.add_done_callback(partial(self._polled, device, ingest, due, started))

    def _polled(
        self,
        device: ScheduledDevice,
        ingest: Callable[[ScheduledDevice, _R, int], None],
        due: float,
        started: float,
        fut: asyncio.Future[_R],
    ) -> None:
        """The end of every poll: samples into the engine, or the device's failure."""
        self._polls.discard(fut)
        device.busy = False
        self._in_flight -= 1
        if fut.cancelled():
            return
        err = fut.exception()
        if err is None and not device.removed:
            try:
                ingest(device, fut.result(), now_ms())
            except Exception as bad:  # samples the engine refuses fail the poll
                err = bad
        if err is not None:
            self._failed(device, err)
        else:
            if not device.removed:
                self._count(device, due, started)
            self._recovered(device)
        if self._writes or self._timer is None:
            # a write waits, or a due poll waited for room: the dispatcher runs now; else its
            # timer is set for the next due poll already (one wake-up per poll, not two)
            self._kick()

    async def _initialized(self, device: ScheduledDevice) -> None:
        """Initialises the device once, before its first read or write."""
        if not device.initialized:
            await device.client.init_device()
            device.initialized = True

    async def _read_frames(self, device: ScheduledDevice, client: FrameClient) -> list[bytes]:
        """A frame client's poll as a task: its first, or every one without a cheap path.

        The first poll initialises the device; then the cheap path takes the reads where the
        client has one. A client that ``queues`` times each request out itself; the others are
        bounded here.
        """
        async with asyncio.timeout(device.timeout_s):
            await self._initialized(device)
            fut = client.submit_read(device.plan, device.timeout_s)
            if fut is None and not client.queues:
                return await client.read(device.plan)
        return await (client.read(device.plan) if fut is None else fut)

    async def _read_values(self, device: ScheduledDevice) -> list[ValueLike]:
        """One poll through a value client's coroutine."""
        async with asyncio.timeout(device.timeout_s):
            await self._initialized(device)
            client = device.client
            if not isinstance(client, ValueClient):
                name = type(client).__name__
                raise TypeError(f"{name} is neither a FrameClient nor a ValueClient")
            return await client.read(device.props)

    # -- writes --------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._in_flight += 1
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._in_flight -= 1
        self._kick()

    async def _do_write(self, write: _Write) -> None:
        device = write.device
        client = device.client
        try:
            async with asyncio.timeout(device.timeout_s):
                await self._initialized(device)  # a write may come before the first poll
                if not client.queues:
                    await client.write(write.prop, write.value)
            if client.queues:  # it times the write out once sent
                await client.write(write.prop, write.value)
        except Exception as err:  # the driver's error goes to the caller
            self.stats.write_errors += 1
            if not write.done.done():
                write.done.set_exception(err)
            return
        self.stats.writes += 1
        if not write.done.done():
            write.done.set_result(None)
        if not device.removed:
            self._poll_soon(device)  # the reported value follows at once

    async def _do_command(self, job: _Command) -> None:
        device = job.device
        task = asyncio.current_task()

        def abandoned(done: asyncio.Future[Any]) -> None:
            if done.cancelled() and task is not None:
                task.cancel()  # the caller's deadline passed: the command stops where it is

        job.done.add_done_callback(abandoned)
        try:
            async with asyncio.timeout(device.timeout_s):
                await self._initialized(device)  # a command may come before the first poll
            result = await job.run()
        except Exception as err:  # the driver's error goes to the caller
            self.stats.command_errors += 1
            if not job.done.done():
                job.done.set_exception(err)
            return
        self.stats.commands += 1
        if not job.done.done():
            job.done.set_result(result)

    # -- the rules of a finished poll ----------------------------------------------------------

    def _ingest_frames(self, device: ScheduledDevice, frames: list[bytes], ts: int) -> None:
        ingest, index = self.engine.ingest_frame, device.index
        for (kind, start, count), frame in zip(device.plan, frames, strict=True):
            ingest(index, _kind(kind), start, frame, ts, count)

    def _ingest_values(self, device: ScheduledDevice, values: list[ValueLike], ts: int) -> None:
        self.engine.ingest_values(
            device.index, [(p.index, v) for p, v in zip(device.props, values, strict=True)], ts
        )

    def _count(self, device: ScheduledDevice, due: float, started: float) -> None:
        """Counts a succeeded poll, on time or late."""
        device.polls += 1
        stats = self.stats
        stats.polls += 1
        late = max(started - due, 0.0)
        stats.lateness[bisect.bisect_left(LATENESS_BOUNDS_S, late)] += 1
        stats.lateness_sum_s += late
        cycle = device.cycle_s
        if late <= ON_TIME_TOLERANCE * cycle and time.monotonic() <= due + cycle:
            stats.polls_on_time += 1
        else:
            stats.polls_late += 1

    def _failed(self, device: ScheduledDevice, err: BaseException) -> None:
        self.stats.poll_errors += 1
        if device.cycles is not None:
            device.cycles.failed()  # the retry reads what this poll did not
        device.failures += 1
        timeout = isinstance(err, TimeoutError | ConnectionError | OSError)
        device.state = "offline" if timeout or not device.initialized else "unhealthy"
        text = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        if device.removed:
            return
        if self.on_error is not None:
            self.on_error(device.device_id, err)
        if text != device.error:  # log once per kind of error, not per poll
            device.error = text
            log.warning(
                "device %s on %s: %s; backing off (up to %.0fs between tries)",
                device.device_id,
                self.key,
                text,
                MAX_BACKOFF_S,
                extra={"device": device.device_id, "bus": self.key},
            )
        self._push(device, time.monotonic() + device.backoff_s())

    def _recovered(self, device: ScheduledDevice) -> None:
        if device.error is not None:
            log.info(
                "device %s on %s recovered after %d failed polls",
                device.device_id,
                self.key,
                device.failures,
                extra={"device": device.device_id, "bus": self.key},
            )
        device.error = None
        device.failures = 0
        device.state = "online"


def _kind(kind: str) -> RegisterKindName:
    return kind  # type: ignore[return-value]
