"""cancel_and_wait: a caller cancelled while it ends a child stays cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest

from twinplane.tasks import cancel_and_wait, thread_to_end


async def _slow_to_end(cancelled: asyncio.Event) -> None:
    """A child that takes a while to clean up once cancelled (a WebSocket closing, say)."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        cancelled.set()
        await asyncio.sleep(0.2)
        raise


async def test_a_caller_cancelled_while_it_waits_for_the_child_is_not_swallowed() -> None:
    """The old ``suppress(CancelledError): await child`` would have run on after the cancel."""
    cancelled = asyncio.Event()
    child = asyncio.create_task(_slow_to_end(cancelled))
    ran_on = False

    async def caller() -> None:
        nonlocal ran_on
        await cancel_and_wait(child)
        ran_on = True

    task = asyncio.create_task(caller())
    await cancelled.wait()  # the caller now waits for the child to end
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert not ran_on
    await asyncio.wait({child})
    assert child.cancelled()


async def test_the_old_pattern_swallows_that_cancellation() -> None:
    """What the helper replaces, shown failing the same way (why the link would not stop)."""
    cancelled = asyncio.Event()
    child = asyncio.create_task(_slow_to_end(cancelled))

    async def caller() -> str:
        child.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await child
        return "ran on"

    task = asyncio.create_task(caller())
    await cancelled.wait()
    task.cancel()
    assert await task == "ran on"


async def test_a_child_failure_is_returned_not_raised() -> None:
    """It cannot replace a cancellation the caller is propagating."""

    async def fails_on_cancel() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise ConnectionResetError("closed while cancelled") from None

    child = asyncio.create_task(fails_on_cancel())
    await asyncio.sleep(0)
    failure = await cancel_and_wait(child)
    assert isinstance(failure, ConnectionResetError)
    assert str(failure) == "closed while cancelled"


async def test_an_ended_child_gives_none() -> None:
    """A child that already returned: nothing to cancel, no failure."""
    child = asyncio.create_task(asyncio.sleep(0))
    await child
    assert await cancel_and_wait(child) is None


@pytest.mark.parametrize("delay", [0.0, 0.01])
async def test_a_plain_cancel_gives_none(delay: float) -> None:
    """A child that ends by its cancellation: None."""
    child = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(delay)
    assert await cancel_and_wait(child) is None
    assert child.cancelled()


async def test_thread_to_end_holds_a_cancelled_caller_until_the_thread_is_done() -> None:
    """A caller cancelled while its thread works leaves only after the thread has finished."""
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def work() -> int:
        started.set()
        release.wait(5)
        finished.set()
        return 1

    task = asyncio.create_task(thread_to_end(work))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done()  # still waiting for the thread, cancellation pending
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()
    assert await thread_to_end(lambda: 2) == 2
