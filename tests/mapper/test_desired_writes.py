"""The desired-write policy: transient failures retried with backoff, refusals not, newer wins.

A real engine and bus scheduler; the device is a value client double whose writes fail as each
test scripts them, with the errors the Modbus driver raises (the end-to-end behaviour against a
Modbus server that is not ours is in ``test_desired_write_outcomes.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from functools import partial

import pytest

from twinplane.drivers.base import PropertyVisitor, ValueClient, is_transient
from twinplane.drivers.modbus.errors import (
    ExceptionCode,
    ModbusConnectionError,
    ModbusExceptionError,
    ModbusRequestError,
    ModbusTimeoutError,
)
from twinplane.mapper.desired_writes import DesiredWriter, WritePolicy, WriteResult
from twinplane.mapper.scheduler import BusScheduler, ScheduledDevice
from twinplane.twin import Engine, ValueLike
from waits import until

pytestmark = pytest.mark.timeout(30)

DEVICE = "default/d"
PROP = PropertyVisitor(name="setpoint", index=0, type="INT")


class Device(ValueClient):
    """One INT property; each write takes the next scripted failure (none left: it succeeds)."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.tried: list[str] = []
        self.written: list[str] = []
        self.gate: asyncio.Event | None = None
        """When set to an unset event, writes wait for it."""

    async def read(self, batch: Sequence[PropertyVisitor]) -> list[ValueLike]:
        """The last written value (0 before)."""
        return [int(self.written[-1]) if self.written else 0 for _ in batch]

    async def write(self, prop: PropertyVisitor, value: str) -> None:
        """Fails with the next scripted error, else takes the value."""
        self.tried.append(value)
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            raise self.failures.pop(0)
        self.written.append(value)


class Rig:
    """A bus with one device, a writer and the results it reported."""

    def __init__(self, client: Device, policy: WritePolicy) -> None:
        self.client = client
        engine = Engine()
        index = engine.upsert_device(DEVICE, [{"name": "setpoint", "type": "INT"}])
        self.bus = BusScheduler("test", engine)
        self.bus.add(
            ScheduledDevice(DEVICE, index, client, [PROP], [], cycle_s=0.05, timeout_s=1.0)
        )
        self.writer = DesiredWriter(policy)
        self.results: list[WriteResult] = []
        self.writer.on_result = self.results.append

    def set(self, value: str) -> None:
        """A new desired value."""
        self.writer.submit(DEVICE, PROP.name, value, partial(self.bus.write, DEVICE, PROP, value))


@contextlib.asynccontextmanager
async def rig(client: Device, policy: WritePolicy) -> AsyncIterator[Rig]:
    """A started :class:`Rig`, stopped afterwards."""
    r = Rig(client, policy)
    r.bus.start()
    try:
        yield r
    finally:
        await r.writer.stop()
        await r.bus.stop()


FAST = WritePolicy(attempts=3, backoff_s=0.01)
"""Three attempts, 10 ms then 20 ms apart."""


@pytest.fixture
async def refused() -> AsyncIterator[Rig]:
    """A device that answers its first write with ILLEGAL_DATA_VALUE."""
    error = ModbusExceptionError(6, ExceptionCode.ILLEGAL_DATA_VALUE, 1)
    async with rig(Device(error), FAST) as r:
        yield r


async def test_a_refusal_is_not_tried_again(refused: Rig) -> None:
    """A Modbus exception response ends the value after one attempt, with the device's reason."""
    refused.set("500")
    await until(lambda: refused.results, "the outcome")
    (result,) = refused.results
    assert (result.device_id, result.property, result.value) == (DEVICE, "setpoint", "500")
    assert not result.ok
    assert result.attempts == 1
    assert result.reason.startswith("ModbusExceptionError: Modbus exception 3 (ILLEGAL_DATA_VALUE)")
    assert result.time_ms > 0
    assert refused.client.tried == ["500"]
    assert (refused.writer.stats.failed, refused.writer.stats.retries) == (1, 0)


async def test_transient_failures_are_tried_up_to_the_limit() -> None:
    """Timeouts and lost connections are tried again; after the last attempt the value fails."""
    failures = (ModbusTimeoutError("no answer"), ModbusConnectionError("lost"), TimeoutError())
    async with rig(Device(*failures), FAST) as r:
        r.set("42")
        await until(lambda: r.results, "the outcome")
        (result,) = r.results
        assert not result.ok
        assert result.attempts == 3
        assert result.reason == "TimeoutError"  # the last attempt's error
        assert r.client.tried == ["42", "42", "42"]
        assert (r.writer.stats.failed, r.writer.stats.retries) == (1, 2)


async def test_a_transient_failure_then_success_reports_the_attempts() -> None:
    """A timeout, then the device takes the value: a success after two attempts."""
    async with rig(Device(ModbusTimeoutError("no answer")), FAST) as r:
        r.set("42")
        await until(lambda: r.results, "the outcome")
        (result,) = r.results
        assert result.ok
        assert (result.attempts, result.reason) == (2, "")
        assert r.client.written == ["42"]
        assert r.writer.stats.written == 1


async def test_a_newer_value_supersedes_a_pending_retry() -> None:
    """A value waiting for its retry is dropped for a newer one: only the newer one reports."""
    slow = WritePolicy(attempts=3, backoff_s=60.0)  # the retry never comes within the test
    async with rig(Device(ModbusTimeoutError("no answer")), slow) as r:
        r.set("41")
        await until(lambda: r.client.tried == ["41"], "the first attempt")
        await until(lambda: r.writer.stats.retries == 1, "the retry to be pending")
        r.set("42")
        await until(lambda: r.results, "the newer value's outcome")
        (result,) = r.results
        assert (result.value, result.ok, result.attempts) == ("42", True, 1)
        assert r.client.tried == ["41", "42"]
        assert r.writer.stats.superseded == 1
        assert r.writer.pending == 0


async def test_a_newer_value_supersedes_a_write_in_flight() -> None:
    """A value whose attempt is on the wire is replaced: its outcome is not reported."""
    client = Device()
    client.gate = asyncio.Event()
    async with rig(client, FAST) as r:
        r.set("41")
        await until(lambda: client.tried == ["41"], "the first write on the wire")
        r.set("42")
        client.gate.set()
        await until(lambda: r.results, "the newer value's outcome")
        await until(lambda: client.written == ["41", "42"], "both writes through the bus")
        (result,) = r.results
        assert (result.value, result.ok) == ("42", True)


async def test_forgetting_a_device_cancels_its_writes_without_outcome() -> None:
    """A device that stops takes its pending retries with it."""
    slow = WritePolicy(attempts=3, backoff_s=60.0)
    async with rig(Device(ModbusTimeoutError("no answer")), slow) as r:
        r.set("41")
        await until(lambda: r.writer.stats.retries == 1, "the retry to be pending")
        r.writer.forget(DEVICE)
        await asyncio.sleep(0)
        assert r.writer.pending == 0
        assert r.results == []


def test_which_errors_are_transient() -> None:
    """Timeouts, lost connections and "busy" answers are worth a retry; refusals are not."""
    assert is_transient(TimeoutError())
    assert is_transient(ModbusTimeoutError("no answer"))
    assert is_transient(ModbusConnectionError("refused"))
    assert is_transient(ConnectionResetError())
    for code in (
        ExceptionCode.ACKNOWLEDGE,
        ExceptionCode.SERVER_DEVICE_BUSY,
        ExceptionCode.GATEWAY_PATH_UNAVAILABLE,
        ExceptionCode.GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND,
    ):
        assert is_transient(ModbusExceptionError(6, code, 1)), code
    for code in (
        ExceptionCode.ILLEGAL_FUNCTION,
        ExceptionCode.ILLEGAL_DATA_ADDRESS,
        ExceptionCode.ILLEGAL_DATA_VALUE,
        ExceptionCode.SERVER_DEVICE_FAILURE,
    ):
        assert not is_transient(ModbusExceptionError(6, code, 1)), code
    assert not is_transient(ModbusRequestError("value out of range"))
    assert not is_transient(LookupError("device is not on this bus"))


def test_the_backoff_doubles_up_to_its_cap() -> None:
    """The wait after attempt n is backoff * 2**(n-1), never above max_backoff_s."""
    policy = WritePolicy(attempts=6, backoff_s=0.2, max_backoff_s=1.0)
    assert [policy.delay_s(n) for n in range(1, 6)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    with pytest.raises(ValueError, match="at least 1 attempt"):
        WritePolicy(attempts=0)
