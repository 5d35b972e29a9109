"""Ending a child task from inside a task that may itself be cancelled meanwhile."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["cancel_and_wait"]


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
