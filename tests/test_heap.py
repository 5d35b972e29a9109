"""The garbage-collector policy of long-running processes (:mod:`twinplane.heap`).

Every test runs the real collector: thresholds, ``gc.freeze()`` and ``gc.callbacks`` are
process-wide, so the autouse fixture :func:`gc_state` records them before each test and checks
(then restores) them afterwards; a test that leaves the interpreter changed fails.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from twinplane import heap
from twinplane.heap import GEN0_THRESHOLD, SLOW_GC_S, HeapSteward

QUIET = 0.05
"""The stewards' quiet period in these tests, in seconds."""

WAIT = 10.0
"""Seconds any single wait may take before the test fails."""


@pytest.fixture(autouse=True)
def gc_state() -> Iterator[None]:
    """Checks that the test leaves thresholds, freeze count, callbacks and heap users as found."""
    threshold = gc.get_threshold()
    callbacks = list(gc.callbacks)
    assert gc.get_freeze_count() == 0, "an earlier test left objects frozen"
    assert heap._STEWARD is None, "an earlier test left the process steward installed"
    assert heap._USERS == 0
    try:
        yield
    finally:
        left = (
            gc.get_threshold(),
            gc.get_freeze_count(),
            list(gc.callbacks),
            heap._STEWARD,
            heap._USERS,
        )
        gc.unfreeze()
        gc.set_threshold(*threshold)
        gc.callbacks[:] = callbacks
        heap._STEWARD = None
        heap._USERS = 0
    assert left == (threshold, 0, callbacks, None, 0), "the test changed the collector"


@pytest.fixture
def steward() -> Iterator[HeapSteward]:
    """A steward with a short quiet period (not installed); closed afterwards."""
    made = HeapSteward(quiet_s=QUIET)
    try:
        yield made
    finally:
        made.close()


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Polls ``predicate`` until it holds; fails after :data:`WAIT` seconds."""
    try:
        async with asyncio.timeout(WAIT):
            while not predicate():  # noqa: ASYNC110 - polls the collector's counters
                await asyncio.sleep(QUIET / 5)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


class Cycle:
    """An object that refers to itself: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


def cyclic_garbage_to_be() -> tuple[Cycle, weakref.ref[Cycle]]:
    """A self-referencing object and a weak reference that tells when it has been freed."""
    cycle = Cycle()
    return cycle, weakref.ref(cycle)


# -- thresholds and freezing -----------------------------------------------------------------------


async def test_install_raises_gen0_threshold_and_keeps_the_others(steward: HeapSteward) -> None:
    """install() raises generation 0 to GEN0_THRESHOLD, keeps 1 and 2, adds one gc callback."""
    gen0, gen1, gen2 = gc.get_threshold()
    callbacks = len(gc.callbacks)
    steward.install()
    assert gc.get_threshold() == (max(GEN0_THRESHOLD, gen0), gen1, gen2)
    assert len(gc.callbacks) == callbacks + 1


async def test_a_higher_gen0_threshold_is_kept() -> None:
    """A generation-0 threshold already above GEN0_THRESHOLD is not lowered, and comes back."""
    original = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD * 3, *original[1:])
    try:
        before = gc.get_threshold()
        steward = HeapSteward(quiet_s=QUIET)
        steward.install()
        try:
            assert gc.get_threshold() == before
        finally:
            steward.close()
        assert gc.get_threshold() == before
    finally:
        gc.set_threshold(*original)


async def test_install_freezes_the_heap_once_quiet(steward: HeapSteward) -> None:
    """What exists at install() is frozen after quiet_s, once; nothing more without changes."""
    steward.install()
    assert steward.freezes == 0
    await until(lambda: steward.freezes == 1, "the first freeze")
    assert gc.get_freeze_count() > 0
    await asyncio.sleep(QUIET * 4)
    assert steward.freezes == 1


async def test_a_burst_of_changes_freezes_once_after_it_is_quiet() -> None:
    """changed() postpones the freeze: a burst (gaps < quiet_s) is followed by exactly one."""
    quiet = 0.3  # the gaps below are 15 times shorter: a loaded machine still fits in
    steward = HeapSteward(quiet_s=quiet)
    loop = asyncio.get_running_loop()
    try:
        steward.install()
        last, longest_gap = loop.time(), 0.0
        burst_ends = last + 3 * quiet
        while loop.time() < burst_ends:
            await asyncio.sleep(quiet / 15)
            longest_gap = max(longest_gap, loop.time() - last)
            steward.changed()
            last = loop.time()
        # A freeze during the burst is only right after a gap of quiet_s (a stalled machine).
        assert steward.freezes == 0 or longest_gap >= quiet - 0.01
        frozen_in_burst = steward.freezes
        for _ in range(100):  # many changes without yielding: still one timer
            steward.changed()
        await until(lambda: steward.freezes == frozen_in_burst + 1, "the freeze after the burst")
        await asyncio.sleep(quiet * 2)
        assert steward.freezes == frozen_in_burst + 1
    finally:
        steward.close()


async def test_a_change_without_removal_keeps_the_heap_frozen(steward: HeapSteward) -> None:
    """changed() leaves frozen objects frozen: cyclic garbage among them is not collected."""
    cycle, ref = cyclic_garbage_to_be()
    steward.install()
    await until(lambda: steward.freezes == 1, "the first freeze")
    del cycle
    steward.changed()
    assert gc.get_freeze_count() > 0
    await until(lambda: steward.freezes == 2, "the freeze after the change")
    assert ref() is not None  # frozen when it was still alive: no collection scans it


async def test_a_removal_unfreezes_so_the_next_freeze_frees_cyclic_garbage(
    steward: HeapSteward,
) -> None:
    """changed(removed=True) unfreezes at once; the collection before the next freeze frees."""
    cycle, ref = cyclic_garbage_to_be()
    steward.install()
    await until(lambda: steward.freezes == 1, "the first freeze")
    del cycle
    gc.collect()
    assert ref() is not None  # garbage now, but frozen
    steward.changed(removed=True)
    assert gc.get_freeze_count() == 0
    await until(lambda: steward.freezes == 2, "the freeze after the removal")
    assert ref() is None
    assert gc.get_freeze_count() > 0


async def test_a_removal_before_install_only_unfreezes(steward: HeapSteward) -> None:
    """Not installed: changed(removed=True) unfreezes, and no change schedules a freeze."""
    gc.freeze()
    steward.changed(removed=True)
    assert gc.get_freeze_count() == 0
    steward.changed()
    await asyncio.sleep(QUIET * 4)
    assert steward.freezes == 0
    assert gc.get_freeze_count() == 0


# -- close -----------------------------------------------------------------------------------------


async def test_close_restores_the_collector() -> None:
    """close() restores the thresholds, unfreezes and removes its callback; later changes idle."""
    threshold, callbacks = gc.get_threshold(), list(gc.callbacks)
    steward = HeapSteward(quiet_s=QUIET)
    steward.install()
    await until(lambda: steward.freezes == 1, "the first freeze")
    steward.close()
    assert gc.get_threshold() == threshold
    assert gc.get_freeze_count() == 0
    assert list(gc.callbacks) == callbacks
    steward.changed()
    steward.changed(removed=True)
    await asyncio.sleep(QUIET * 4)
    assert steward.freezes == 1
    assert gc.get_freeze_count() == 0
    steward.close()  # twice is harmless
    assert (gc.get_threshold(), list(gc.callbacks)) == (threshold, callbacks)


async def test_close_cancels_a_pending_freeze() -> None:
    """A freeze scheduled by a change does not happen after close()."""
    steward = HeapSteward(quiet_s=QUIET)
    steward.install()
    steward.changed()
    steward.close()
    await asyncio.sleep(QUIET * 4)
    assert steward.freezes == 0
    assert gc.get_freeze_count() == 0


# -- slow collections ------------------------------------------------------------------------------


async def test_slow_collections_are_counted_and_logged(
    steward: HeapSteward, caplog: pytest.LogCaptureFixture
) -> None:
    """A collection longer than SLOW_GC_S is counted and logged at debug; a quick one is not."""
    steward.install()
    await until(lambda: steward.freezes == 1, "the first freeze")  # later collections are quick
    caplog.set_level(logging.DEBUG, logger="twinplane.heap")
    before = steward.slow_collections
    gc.collect(0)
    assert steward.slow_collections == before

    def stall(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop":  # runs before the steward's own callback: the collection looks slow
            time.sleep(SLOW_GC_S * 2)

    gc.callbacks.insert(0, stall)
    try:
        gc.collect(1)
    finally:
        gc.callbacks.remove(stall)
    assert steward.slow_collections == before + 1
    assert any(
        "garbage collection of generation 1 took" in record.getMessage()
        for record in caplog.records
    ), caplog.text


# -- the process-wide steward ----------------------------------------------------------------------


async def test_acquire_is_shared_and_the_last_release_restores() -> None:
    """acquire() installs one policy per process; it stays until the last release()."""
    threshold, callbacks = gc.get_threshold(), len(gc.callbacks)
    heap.acquire()
    heap.acquire()  # a device manager and a mapper in one process
    installed = gc.get_threshold()
    assert installed[0] == max(GEN0_THRESHOLD, threshold[0])
    assert len(gc.callbacks) == callbacks + 1  # one steward, not two
    heap.release()
    assert gc.get_threshold() == installed
    gc.freeze()
    heap.changed(removed=True)  # forwarded to the steward while a user holds it
    assert gc.get_freeze_count() == 0
    heap.release()
    assert gc.get_threshold() == threshold
    assert len(gc.callbacks) == callbacks
    heap.release()  # one too many: harmless, and the next acquire installs again
    heap.acquire()
    assert gc.get_threshold() == installed
    heap.release()
    assert gc.get_threshold() == threshold


async def test_changed_without_a_user_does_nothing() -> None:
    """heap.changed() with no acquired steward neither unfreezes nor schedules anything."""
    gc.freeze()
    try:
        heap.changed(removed=True)
        heap.changed()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
