"""Per-property collect cycles: which properties each poll of a device reads.

The clock is given, not waited for: each test names the times its polls start at. The plans
come from a real engine.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from twinplane.drivers.base import FrameRead, PropertyVisitor
from twinplane.mapper.cycles import PropertyCycles
from twinplane.twin import Engine, PropertySpec

pytestmark = pytest.mark.timeout(30)

ANCHOR = 100.25
"""The bus's grid origin (seconds of the monotonic clock)."""


def holding(name: str, offset: int) -> PropertySpec:
    """An INT property on one holding register."""
    visitor: Any = {"register": "HoldingRegister", "offset": offset}
    return cast(PropertySpec, {"name": name, "type": "INT", "visitor": visitor})


class Planner:
    """The engine's plans of a device, counting how often it is asked."""

    def __init__(self, specs: list[PropertySpec]) -> None:
        self.engine = Engine()
        self.index = self.engine.upsert_device("default/d", specs)
        self.calls = 0

    def __call__(self, props: list[int]) -> list[FrameRead]:
        """The coalesced reads of ``props``."""
        self.calls += 1
        return self.engine.read_plan(self.index, props)


def visitors(*names: str) -> list[PropertyVisitor]:
    """Properties ``names`` in engine order."""
    return [PropertyVisitor(name=n, index=i, type="INT") for i, n in enumerate(names)]


def at(ms: float) -> float:
    """The monotonic time ``ms`` after the anchor."""
    return ANCHOR + ms / 1000


def run(cycles: PropertyCycles, start_ms: float, polls: int) -> list[tuple[float, list[str]]]:
    """``polls`` polls on time from the first one at or after ``start_ms``: when, and what."""
    now = cycles.start(ANCHOR, at(start_ms))
    out = []
    for _ in range(polls):
        reading = cycles.take(now)
        out.append((round((now - ANCHOR) * 1000, 3), [p.name for p in reading.props]))
        now = cycles.next_due()
    return out


def test_one_cycle_needs_no_schedule() -> None:
    """Properties that share one cycle: the device is polled whole (no cycles object)."""
    assert PropertyCycles.of(visitors("a", "b"), [200, 200], None) is None
    assert PropertyCycles.of(visitors("a", "b"), [200, 600], None) is not None


def test_fast_and_slow_properties_are_read_at_their_own_cycles_and_coalesced() -> None:
    """200 and 600 ms on adjacent registers: every third poll reads both, in one read."""
    planner = Planner([holding("fast", 0), holding("slow", 1)])
    cycles = PropertyCycles(visitors("fast", "slow"), [200, 600], planner)
    polls = run(cycles, 1, 7)
    assert polls == [
        (200, ["fast", "slow"]),  # the first poll reads everything
        (400, ["fast"]),
        (600, ["fast", "slow"]),
        (800, ["fast"]),
        (1000, ["fast"]),
        (1200, ["fast", "slow"]),
        (1400, ["fast"]),
    ]
    now = cycles.start(ANCHOR, at(0))
    plans = []
    for _ in range(3):
        plans.append(cycles.take(now).plan)
        now = cycles.next_due()
    both, fast = [("HoldingRegister", 0, 2)], [("HoldingRegister", 0, 1)]
    assert plans == [both, fast, fast]
    assert planner.calls == 2  # one plan per set of properties read together, kept


def test_cycles_that_do_not_divide_each_other_meet_at_their_common_multiple() -> None:
    """200 and 300 ms: polls at either's times, both read together every 600 ms."""
    cycles = PropertyCycles(visitors("a", "b"), [300, 200], None)
    assert run(cycles, 0, 6) == [
        (0, ["a", "b"]),
        (200, ["b"]),
        (300, ["a"]),
        (400, ["b"]),
        (600, ["a", "b"]),
        (800, ["b"]),
    ]
    assert cycles.cycles_ms == (200, 300)


def test_value_drivers_get_the_due_properties_and_no_plan() -> None:
    """Without a planner (value drivers) a reading is the properties due, in engine order."""
    cycles = PropertyCycles(visitors("slow", "fast", "slower"), [400, 200, 800], None)
    assert run(cycles, 0, 5) == [
        (0, ["slow", "fast", "slower"]),
        (200, ["fast"]),
        (400, ["slow", "fast"]),
        (600, ["fast"]),
        (800, ["slow", "fast", "slower"]),
    ]
    assert cycles.take(cycles.next_due()).plan == []


def test_a_failed_poll_leaves_its_properties_due_for_the_retry() -> None:
    """The slow property of a failed poll is read by the retry, not a slow cycle later."""
    cycles = PropertyCycles(visitors("fast", "slow"), [200, 600], None)
    cycles.start(ANCHOR, at(0))
    cycles.take(at(0))
    cycles.take(at(200))
    cycles.take(at(400))
    assert [p.name for p in cycles.take(at(600)).props] == ["fast", "slow"]
    cycles.failed()
    retry = at(750)  # after a backoff, off the grid
    assert [p.name for p in cycles.take(retry).props] == ["fast", "slow"]
    assert cycles.next_due() == pytest.approx(at(800))
    assert [p.name for p in cycles.take(at(800)).props] == ["fast"]


def test_a_late_poll_reads_each_missed_property_once_and_skips_missed_times() -> None:
    """A poll 700 ms late reads both once; the grid goes on after it, not from it."""
    cycles = PropertyCycles(visitors("fast", "slow"), [200, 600], None)
    cycles.start(ANCHOR, at(0))
    cycles.take(at(0))
    late = at(200 + 700)
    assert [p.name for p in cycles.take(late).props] == ["fast", "slow"]
    assert cycles.next_due() == pytest.approx(at(1000))
    assert [p.name for p in cycles.take(at(1000)).props] == ["fast"]
    assert [p.name for p in cycles.take(at(1200)).props] == ["fast", "slow"]


def test_a_poll_skipped_for_a_busy_device_owes_its_properties_to_the_next() -> None:
    """A due time the device is busy at: the next grid time, and that poll reads the owed."""
    cycles = PropertyCycles(visitors("fast", "slow"), [200, 600], None)
    cycles.start(ANCHOR, at(0))
    cycles.take(at(0))
    cycles.take(at(200))
    cycles.take(at(400))
    # at 600 both are due, but the device's previous poll still runs
    assert cycles.after(at(600)) == pytest.approx(at(800))
    assert [p.name for p in cycles.take(at(800)).props] == ["fast", "slow"]
    assert cycles.next_due() == pytest.approx(at(1000))


def test_a_poll_off_the_grid_reads_the_whole_device_and_the_grid_goes_on() -> None:
    """A write's follow-up poll reads every property; the next poll is the grid's."""
    cycles = PropertyCycles(visitors("fast", "slow"), [200, 600], None)
    cycles.start(ANCHOR, at(0))
    cycles.take(at(0))
    cycles.take(at(200))
    now = at(290)
    cycles.due_all(now)
    assert cycles.next_due() <= now
    assert [p.name for p in cycles.take(now).props] == ["fast", "slow"]
    assert cycles.next_due() == pytest.approx(at(400))
    assert [p.name for p in cycles.take(at(400)).props] == ["fast"]
    assert [p.name for p in cycles.take(at(600)).props] == ["fast", "slow"]


def test_the_first_poll_is_on_the_shortest_cycles_grid() -> None:
    """Started between grid times, the first poll waits for the next one of the shortest."""
    cycles = PropertyCycles(visitors("fast", "slow"), [200, 600], None)
    assert cycles.start(ANCHOR, at(250)) == pytest.approx(at(400))
    assert cycles.start(ANCHOR, at(400)) == pytest.approx(at(400))


def test_mismatched_cycles_are_refused() -> None:
    """One cycle per property."""
    with pytest.raises(ValueError, match="2 properties but 1 cycles"):
        PropertyCycles(visitors("a", "b"), [200], None)
