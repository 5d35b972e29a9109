"""Per-property collect cycles inside one device: which properties each poll reads.

A device whose properties share one ``collectCycle`` is polled whole every cycle and needs
nothing of this module. When its properties' cycles differ, they are grouped by cycle, and each
group is due on its own grid: the device's phase of its shortest cycle (the bus's phase, or
the device's own on a bus that carries one transaction at a time) plus whole multiples of the
group's cycle. A poll reads every group whose time has come, so groups that fall due together
are read in one poll, with one coalesced read plan — properties at 1 s and 5 s: every fifth
poll reads both, the others only the 1 s ones.

A group is taken when a poll starts; if the poll fails, it is owed again and the retry reads
it (with whatever else fell due). A poll that the bus starts off the grid (the follow-up poll
of a write, a fresh read) reads every group. A group whose time passed while the device could
not be polled (it was busy or backing off) is read once at its next poll, not once per
missed cycle.

Each distinct set of groups read together gets its plan once, on its first poll, from the
engine (:meth:`twinplane.twin.Engine.read_plan` of those properties) and keeps it: the cycles'
least common multiple holds only a few such sets (1 s and 5 s: two).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Final, NamedTuple

from twinplane.drivers.base import FrameRead, PropertyVisitor

__all__ = ["PropertyCycles", "Reading"]

SLACK_MS: Final = 0.001
"""A time this close to a grid time (a microsecond) is at it: float rounding of the clock."""

Planner = Callable[[list[int]], list[FrameRead]]
"""The coalesced reads of some properties (by engine index)."""


class Reading(NamedTuple):
    """What one poll reads: the coalesced plan (frame drivers) and the properties."""

    plan: list[FrameRead]
    props: list[PropertyVisitor]


class PropertyCycles:
    """The collect cycles of one device's properties, and which are due at each poll.

    Args:
        props: The device's properties, in engine order.
        cycles_ms: Each property's collect cycle (ms), in the same order.
        planner: Plans the reads of some properties (frame drivers); ``None`` for value drivers
            (their plan is empty).

    Attributes:
        cycles_ms: The distinct cycles (ms), shortest first; one group of properties each.
    """

    def __init__(
        self,
        props: Sequence[PropertyVisitor],
        cycles_ms: Sequence[int],
        planner: Planner | None,
    ) -> None:
        if len(props) != len(cycles_ms):
            raise ValueError(f"{len(props)} properties but {len(cycles_ms)} cycles")
        self.props = list(props)
        self.cycles_ms = tuple(sorted(set(cycles_ms)))
        self._members = tuple(
            tuple(i for i, c in enumerate(cycles_ms) if c == cycle) for cycle in self.cycles_ms
        )
        self._planner = planner
        self._anchor = 0.0
        self._next = [0] * len(self.cycles_ms)
        """Per group, its next grid time: ms after the anchor."""
        self._taken = 0
        self._before = [0] * len(self.cycles_ms)
        self._readings: dict[int, Reading] = {}

    @classmethod
    def of(
        cls,
        props: Sequence[PropertyVisitor],
        cycles_ms: Sequence[int],
        planner: Planner | None,
    ) -> PropertyCycles | None:
        """The cycles of a device, or ``None`` when they are all one (it is polled whole)."""
        return cls(props, cycles_ms, planner) if len(set(cycles_ms)) > 1 else None

    def start(self, anchor: float, now: float) -> float:
        """Puts the groups on their grids from ``anchor``; returns the first poll's time.

        The first poll is at the first time of the shortest cycle's grid from ``now`` on, and
        it reads every group (it initialises the device).
        """
        self._anchor = anchor
        shortest = self.cycles_ms[0]
        first = math.ceil(max((now - anchor) * 1000 - SLACK_MS, 0.0) / shortest) * shortest
        self._next = [first] * len(self.cycles_ms)
        self._taken = 0
        return self._time(first)

    def take(self, now: float) -> Reading:
        """The reading of a poll starting at ``now``: every group whose time has come.

        Their next times move past ``now`` on their grids (missed ones are skipped).
        """
        at = (now - self._anchor) * 1000 + SLACK_MS
        mask = 0
        for group, cycle in enumerate(self.cycles_ms):
            due = self._next[group]
            if self._time(due) <= now:
                mask |= 1 << group
                self._before[group] = due
                self._next[group] = (math.floor(at / cycle) + 1) * cycle
        self._taken = mask
        return self._reading(mask)

    def next_due(self) -> float:
        """When the next poll is due: the earliest group's next time."""
        return self._time(min(self._next))

    def after(self, now: float) -> float:
        """The first grid time after ``now`` (a due poll the device was too busy for).

        The groups that were due stay due, so that poll reads them.
        """
        at = (now - self._anchor) * 1000 + SLACK_MS
        times = (
            due if self._time(due) > now else (math.floor(at / cycle) + 1) * cycle
            for due, cycle in zip(self._next, self.cycles_ms, strict=True)
        )
        return self._time(min(times))

    def failed(self) -> None:
        """The last poll failed: the groups it read are owed again."""
        for group in range(len(self.cycles_ms)):
            if self._taken >> group & 1:
                self._next[group] = min(self._next[group], self._before[group])
        self._taken = 0

    def due_all(self, now: float) -> None:
        """Every group is due at ``now`` (a poll off the grid reads the whole device)."""
        at = math.floor((now - self._anchor) * 1000)
        self._next = [min(due, at) for due in self._next]

    def _time(self, ms: int) -> float:
        return self._anchor + ms / 1000

    def _reading(self, mask: int) -> Reading:
        """The reading of a set of groups: planned on its first poll, then kept."""
        reading = self._readings.get(mask)
        if reading is None:
            chosen = sorted(
                i
                for group, members in enumerate(self._members)
                if mask >> group & 1
                for i in members
            )
            props = [self.props[i] for i in chosen]
            plan = self._planner([p.index for p in props]) if self._planner is not None else []
            reading = self._readings[mask] = Reading(plan, props)
        return reading
