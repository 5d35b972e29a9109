"""The last failed desired write of each twin property, as the mappers report it.

A twinplane mapper reports how each desired-value write ended
(``twinplane.v1.TwinStream/ReportWriteOutcomes``): written, or given up with a reason after some
attempts. The device manager keeps, per twin property, the last failure that still matters:

- a failure for the property's current desired value is kept, replacing an older one;
- a success for the current desired value clears it;
- an outcome for a value that is no longer the desired one is ignored: a newer value's write is
  on its way, and its own outcome decides;
- setting a new desired value keeps the error (it names the value it was for) until that
  value's outcome arrives — the user sees what failed last, not a blank while the new write is
  in flight; clearing the desired value clears the error, as no write is coming.

The errors live in memory for the API and in SQLite (the ``write_errors`` table), written before
the mapper's call is answered, so they survive a restart. A KubeEdge mapper reports no outcomes:
its devices never show a write error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from twinplane.edge.store import AsyncEdgeStore, StoredWriteError
from twinplane.stream.v1 import stream_pb2

__all__ = ["MAX_REASON_CHARS", "Verdict", "WriteError", "WriteErrors", "WriteOutcome"]

MAX_REASON_CHARS: Final = 1024
"""Longest reason kept (a longer one from a mapper is cut)."""

Key = tuple[str, str]
"""``(device_id, property)``."""


class WriteError(msgspec.Struct, frozen=True):
    """A twin property's last failed desired write.

    Attributes:
        value: The desired value the write was for.
        reason: Why the mapper gave up.
        attempts: Attempts the mapper made.
        time: When the last attempt ended (ms since the epoch, the mapper's clock).
    """

    value: str
    reason: str
    attempts: int
    time: int

    def to_json(self) -> dict[str, Any]:
        """The API's shape: ``{"reason", "time", "attempts", "value"}``."""
        return {
            "reason": self.reason,
            "time": self.time,
            "attempts": self.attempts,
            "value": self.value,
        }


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """How a mapper's write of one desired value ended (a ``WriteOutcome`` message)."""

    device_id: str
    property: str
    value: str
    ok: bool
    reason: str
    attempts: int
    time_ms: int

    @classmethod
    def from_proto(cls, msg: stream_pb2.WriteOutcome) -> WriteOutcome:
        """The outcome of a message (an empty namespace is ``default``, as in DMI)."""
        reason = msg.reason
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[: MAX_REASON_CHARS - 3] + "..."
        return cls(
            f"{msg.device_namespace or 'default'}/{msg.device_name}",
            msg.property,
            msg.value,
            msg.ok,
            reason,
            max(1, msg.attempts),
            msg.time_ms,
        )

    def error(self) -> WriteError:
        """The outcome as a write error (for a failed one)."""
        return WriteError(self.value, self.reason or "write failed", self.attempts, self.time_ms)


@dataclass(slots=True)
class Verdict:
    """What a batch of outcomes does (:meth:`WriteErrors.judge`).

    Attributes:
        changes: Errors to store, and ``None`` for errors to clear.
        applied: Outcomes for a current desired value.
        ignored: Outcomes for another value, an unknown device or property.
        failed: Applied outcomes that are failures.
    """

    changes: dict[Key, WriteError | None] = field(default_factory=dict)
    applied: int = 0
    ignored: int = 0
    failed: int = 0


class WriteErrors:
    """Every twin property's last failed desired write, in memory and in the store.

    Args:
        store: Where the errors are kept.
    """

    def __init__(self, store: AsyncEdgeStore) -> None:
        self._store = store
        self._errors: dict[str, dict[str, WriteError]] = {}

    async def load(self) -> None:
        """Reads the stored errors (at start)."""
        self._errors.clear()
        for row in await self._store.list_write_errors():
            self._errors.setdefault(row.device_id, {})[row.property] = WriteError(
                row.value, row.reason, row.attempts, row.time_ms
            )

    def of(self, device_id: str) -> Mapping[str, WriteError]:
        """A device's errors by property (empty when none)."""
        return self._errors.get(device_id, {})

    def get(self, device_id: str, prop: str) -> WriteError | None:
        """A property's error, if any."""
        return self._errors.get(device_id, {}).get(prop)

    def __len__(self) -> int:
        return sum(len(props) for props in self._errors.values())

    async def update(self, changes: Mapping[Key, WriteError | None]) -> None:
        """Stores errors and clears those mapped to ``None``; in memory once committed.

        Raises:
            StoreError: The store could not be written; nothing changed.
        """
        errors = [
            StoredWriteError(dev, prop, e.value, e.reason, e.attempts, e.time)
            for (dev, prop), e in changes.items()
            if e is not None
        ]
        cleared = [key for key, e in changes.items() if e is None]
        if not errors and not cleared:
            return
        await self._store.put_write_errors(errors, cleared)
        for (dev, prop), error in changes.items():
            if error is not None:
                self._errors.setdefault(dev, {})[prop] = error
            elif dev in self._errors:
                self._errors[dev].pop(prop, None)
                if not self._errors[dev]:
                    del self._errors[dev]

    def judge(
        self, outcomes: Iterable[WriteOutcome], desired_of: Callable[[str], Mapping[str, str]]
    ) -> Verdict:
        """What ``outcomes`` change, by the rule above; nothing is changed here.

        Args:
            outcomes: The mapper's outcomes.
            desired_of: A device's current desired values by property (empty when unknown).
        """
        verdict = Verdict()
        desired: dict[str, Mapping[str, str]] = {}
        for outcome in outcomes:
            device_id, prop = outcome.device_id, outcome.property
            if device_id not in desired:
                desired[device_id] = desired_of(device_id)
            if desired[device_id].get(prop) != outcome.value:
                verdict.ignored += 1  # stale: a newer value's own outcome decides
                continue
            verdict.applied += 1
            key = (device_id, prop)
            if not outcome.ok:
                verdict.failed += 1
                verdict.changes[key] = outcome.error()
            elif key in verdict.changes or self.get(device_id, prop) is not None:
                verdict.changes[key] = None
        return verdict

    def forget(self, device_id: str) -> None:
        """Drops a deleted device's errors from memory (the store's trigger drops its rows)."""
        self._errors.pop(device_id, None)

    def clearable(self, device_id: str, props: Iterable[str]) -> dict[Key, None]:
        """The changes that clear the errors of ``props`` that have one."""
        errors = self._errors.get(device_id, {})
        return {(device_id, p): None for p in props if p in errors}
