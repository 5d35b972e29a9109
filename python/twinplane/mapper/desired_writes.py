"""Desired-value writes: retried while the failure is transient, superseded by a newer value.

Every desired value the device manager sets (``UpdateDevice``, or a device's values when it
starts) is written by its own task, keyed by device and property, so the ``UpdateDevice`` call
answers at once and a slow or dead device never holds it. The write goes through the device's
bus (ahead of any due poll). A failure that trying again may cure (a timeout, a lost
connection, a device that says it is busy: :func:`~twinplane.drivers.base.is_transient`) is
tried again after a backoff, up to :attr:`WritePolicy.attempts` attempts; a refusal (a Modbus
exception response such as an illegal address or value) is given up at once. A newer desired
value for the same property cancels the older value's task, pending retry included: only the
newer value's outcome is reported.

Each value ends in one :class:`WriteResult` (written, or given up with the reason, the attempts
and the time), handed to :attr:`DesiredWriter.on_result` — the mapper's composition root sends
it to the device manager when the device manager takes it
(:mod:`twinplane.mapper.write_outcomes`). A value given up is also logged, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Final

from twinplane.drivers.base import is_transient
from twinplane.mapper.scheduler import now_ms

__all__ = [
    "MAX_REASON_CHARS",
    "DesiredWriter",
    "DesiredWriterStats",
    "WritePolicy",
    "WriteResult",
]

log = logging.getLogger(__name__)

MAX_REASON_CHARS: Final = 512
"""Longest reason text a result carries (a driver's message is cut there)."""


@dataclass(frozen=True, slots=True)
class WritePolicy:
    """How often and how patiently a desired value is written.

    Attributes:
        attempts: Most attempts per value when its failures are transient (at least 1).
        backoff_s: Wait before the second attempt; it doubles for each further one.
        max_backoff_s: Longest wait between two attempts.
    """

    attempts: int = 3
    backoff_s: float = 0.2
    max_backoff_s: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"a desired value needs at least 1 attempt, not {self.attempts}")
        if self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError("write backoffs cannot be negative")

    def delay_s(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1 is the first)."""
        return min(self.backoff_s * 2.0 ** max(attempt - 1, 0), self.max_backoff_s)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """How the write of one desired value ended.

    Attributes:
        device_id: ``<namespace>/<name>``.
        property: The property written.
        value: The desired value (canonical text, as the device manager sent it).
        ok: Whether the device took it.
        reason: Why the last attempt failed (``""`` when ``ok``).
        attempts: Attempts made for this value.
        time_ms: When the last attempt ended (ms since the epoch).
    """

    device_id: str
    property: str
    value: str
    ok: bool
    reason: str
    attempts: int
    time_ms: int


@dataclass(slots=True)
class DesiredWriterStats:
    """Counters of the desired writes (``/metrics``).

    Attributes:
        written: Values the devices took.
        failed: Values given up (refused, or transient failures on every attempt).
        retries: Attempts after a value's first.
        superseded: Values replaced by a newer one before their write ended.
    """

    written: int = 0
    failed: int = 0
    retries: int = 0
    superseded: int = 0


Attempt = Callable[[], Awaitable[None]]
"""One write attempt (through the device's bus); raises what the driver raised."""


class DesiredWriter:
    """The desired-value writes of one mapper, one task per device property.

    Args:
        policy: Attempts and backoff.

    Attributes:
        on_result: Called with every value's :class:`WriteResult` (superseded values have
            none); must not block.
    """

    def __init__(self, policy: WritePolicy | None = None) -> None:
        self.policy = policy or WritePolicy()
        self.stats = DesiredWriterStats()
        self.on_result: Callable[[WriteResult], None] | None = None
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}

    def submit(self, device_id: str, prop: str, value: str, attempt: Attempt) -> None:
        """Writes ``value`` in the background; a pending write of the property is superseded."""
        key = (device_id, prop)
        older = self._tasks.pop(key, None)
        if older is not None and not older.done():
            older.cancel()
            self.stats.superseded += 1
        task = asyncio.create_task(
            self._write(device_id, prop, value, attempt), name=f"desired {device_id} {prop}"
        )
        self._tasks[key] = task
        task.add_done_callback(partial(self._finished, key))

    @property
    def pending(self) -> int:
        """Values being written or waiting for their next attempt."""
        return len(self._tasks)

    def forget(self, device_id: str) -> None:
        """Cancels a device's pending writes (it stops or restarts): they report nothing."""
        for key in [k for k in self._tasks if k[0] == device_id]:
            self._tasks.pop(key).cancel()

    async def stop(self) -> None:
        """Cancels every pending write and waits for the tasks to end."""
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _finished(self, key: tuple[str, str], task: asyncio.Task[None]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled() and task.exception() is not None:  # a bug in on_result
            log.error("desired write of %s %s failed", *key, exc_info=task.exception())

    async def _write(self, device_id: str, prop: str, value: str, attempt: Attempt) -> None:
        policy = self.policy
        attempts = 0
        while True:
            attempts += 1
            try:
                await attempt()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the driver's error: retried, or the value's outcome
                if is_transient(err) and attempts < policy.attempts:
                    self.stats.retries += 1
                    delay = policy.delay_s(attempts)
                    log.debug(
                        "device %s: writing %s=%s failed (%s); attempt %d of %d in %.2fs",
                        device_id,
                        prop,
                        value,
                        _reason(err),
                        attempts + 1,
                        policy.attempts,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    continue
                self.stats.failed += 1
                reason = _reason(err)
                log.warning(
                    "device %s: writing %s=%s failed after %d attempt%s: %s",
                    device_id,
                    prop,
                    value,
                    attempts,
                    "" if attempts == 1 else "s",
                    reason,
                    extra={"device": device_id, "property": prop},
                )
                self._result(WriteResult(device_id, prop, value, False, reason, attempts, now_ms()))
                return
            self.stats.written += 1
            self._result(WriteResult(device_id, prop, value, True, "", attempts, now_ms()))
            return

    def _result(self, result: WriteResult) -> None:
        if self.on_result is not None:
            self.on_result(result)


def _reason(err: BaseException) -> str:
    """An error as one bounded line: its class and message."""
    text = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."
