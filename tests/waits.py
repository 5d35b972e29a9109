"""Bounded waits for the tests: poll a condition, fail with what was awaited.

Importable as ``waits`` from every test module (``tests/`` is on ``sys.path``, see
``tests/conftest.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

WAIT_S = 5.0
"""Longest wait for any condition, unless a test says otherwise."""


async def until(predicate: Callable[[], object], what: str, within: float = WAIT_S) -> None:
    """Polls ``predicate`` every 10 ms until it is true; fails the test after ``within`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.01)
