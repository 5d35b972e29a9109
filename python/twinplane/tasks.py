"""Cancellation-safe waiting: for a child task, and for thread work that must run to its end."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

__all__ = ["cancel_and_wait", "thread_to_end"]

P = ParamSpec("P")
T = TypeVar("T")


async def cancel_and_wait(task: asyncio.Task[Any]) -> BaseException | None:
    """Cancels ``task`` and waits until it has ended; what it failed with, if not cancellation.

    ``task.cancel(); with suppress(CancelledError): await task`` cannot tell the child's
    cancellation from the caller's: a caller cancelled while it waits there has its cancellation
    swallowed and runs on (a link loop that no longer stops). :func:`asyncio.wait` raises only
    the caller's cancellation, never the child's; and the child's own failure is returned, not
    raised, so it cannot replace a cancellation the caller is propagating.
    """
    task.cancel()
    await asyncio.wait({task})
    return None if task.cancelled() else task.exception()


async def thread_to_end(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``asyncio.to_thread(func, ...)`` whose caller, if cancelled, waits for the thread first.

    A thread cannot be stopped: with plain ``to_thread`` a cancelled caller leaves at once, lets
    go of the lock it held around the work, and the next holder (a ``close()`` of the SQLite
    connection the thread is writing with) runs while the thread still does. Here the caller's
    cancellation is raised only once the thread has finished.
    """
    future = asyncio.ensure_future(asyncio.to_thread(func, *args, **kwargs))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait({future})
        raise
