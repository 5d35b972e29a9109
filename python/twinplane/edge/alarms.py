"""The alarm lifecycle on the edge: raised, acknowledged (by whom, when), cleared.

The engine evaluates the rules on every reported value it applies; :class:`AlarmBook` sees only
the transitions (:meth:`~twinplane.twin.Changes.alarms`, once per applied batch) and keeps:

- the **active** alarms, one per (device, rule): the property, the rule's severity and message,
  the value and threshold at raise, when it was raised, who acknowledged it and when;
- the **recently cleared** ones, at most ``max_cleared_per_device`` per device.

Each transition is a device event (``AlarmRaised`` with the rule's severity, ``AlarmAcknowledged``
and ``AlarmCleared`` as ``info``, keyed by the rule) and a row for the ``alarms`` table, written
by one task every ``flush_interval`` seconds in one transaction: ingestion never waits on the disk.
An acknowledgement is written before :meth:`AlarmBook.acknowledge` returns.

On start the stored active alarms are restored into the engine
(:meth:`~twinplane.twin.Engine.restore_alarm`), so a restart neither raises them again nor
forgets them; those of a device or a rule that no longer exists are dropped. A device deleted, or
a rule removed from a device's rules, drops its alarms too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from twinplane.edge.device_events import EdgeEvents
from twinplane.edge.events import SEVERITIES, Severity
from twinplane.edge.store import AsyncEdgeStore
from twinplane.edge.store.alarms import StoredAlarm
from twinplane.edge.store.connection import now_ms
from twinplane.manifests.alarms import AlarmRule
from twinplane.twin import Changes, Engine

__all__ = ["Alarm", "AlarmBook", "AlarmCounters", "RulesOf"]

log = logging.getLogger(__name__)

MAX_CLEARED_PER_DEVICE: Final = 20
"""Cleared alarms each device keeps for inspection (``GET …/alarms``)."""

MAX_CLEARED: Final = 10_000
"""Cleared alarm rows the store keeps in all."""

RulesOf = Callable[[str], Mapping[str, AlarmRule]]
"""A device id -> its alarm rules by name (empty for an unknown device)."""


@dataclass(slots=True)
class Alarm:
    """One alarm, from its raise to its clear.

    Attributes:
        id: This raise's identity.
        namespace: The device's namespace.
        device: The device's name.
        rule: The rule's name.
        prop: The property the rule watches.
        severity: The rule's severity.
        message: The rule's message.
        value: The value that raised it.
        threshold: The bound it crossed.
        raised_ms: When the raising sample was taken (ms since the epoch).
        acknowledged_by: Who acknowledged it, or ``None``.
        acknowledged_ms: When it was acknowledged, or ``None``.
        cleared_ms: When the clearing sample was taken, or ``None`` while active.
    """

    id: str
    namespace: str
    device: str
    rule: str
    prop: str
    severity: Severity
    message: str
    value: float
    threshold: float
    raised_ms: int
    acknowledged_by: str | None = None
    acknowledged_ms: int | None = None
    cleared_ms: int | None = None

    @property
    def device_id(self) -> str:
        """``<namespace>/<name>``."""
        return f"{self.namespace}/{self.device}"

    @property
    def state(self) -> str:
        """``active``, ``acknowledged`` (active, acknowledged) or ``cleared``."""
        if self.cleared_ms is not None:
            return "cleared"
        return "active" if self.acknowledged_by is None else "acknowledged"

    def to_json(self) -> dict[str, Any]:
        """The alarm as the REST API shows it."""
        return {
            "id": self.id,
            "namespace": self.namespace,
            "device": self.device,
            "rule": self.rule,
            "property": self.prop,
            "severity": self.severity,
            "message": self.message,
            "state": self.state,
            "value": self.value,
            "threshold": self.threshold,
            "raised_ms": self.raised_ms,
            "acknowledged_by": self.acknowledged_by,
            "acknowledged_ms": self.acknowledged_ms,
            "cleared_ms": self.cleared_ms,
        }

    def to_stored(self) -> StoredAlarm:
        """The alarm as a store row."""
        return StoredAlarm(
            id=self.id,
            device_id=self.device_id,
            rule=self.rule,
            property=self.prop,
            severity=self.severity,
            message=self.message,
            value=self.value,
            threshold=self.threshold,
            raised_ms=self.raised_ms,
            acknowledged_by=self.acknowledged_by,
            acknowledged_ms=self.acknowledged_ms,
            cleared_ms=self.cleared_ms,
        )

    @classmethod
    def from_stored(cls, row: StoredAlarm) -> Alarm:
        """A store row as an alarm."""
        namespace, _, name = row.device_id.partition("/")
        severity: Severity = row.severity if row.severity in SEVERITIES else "warning"  # type: ignore[assignment]
        return cls(
            id=row.id,
            namespace=namespace,
            device=name,
            rule=row.rule,
            prop=row.property,
            severity=severity,
            message=row.message,
            value=row.value,
            threshold=row.threshold,
            raised_ms=row.raised_ms,
            acknowledged_by=row.acknowledged_by,
            acknowledged_ms=row.acknowledged_ms,
            cleared_ms=row.cleared_ms,
        )


@dataclass(slots=True)
class AlarmCounters:
    """What :class:`AlarmBook` did, for ``/metrics``.

    Attributes:
        raised: Alarms raised.
        cleared: Alarms cleared.
        acknowledged: Alarms acknowledged (the first acknowledgement of each).
        write_failures: Batches the store could not write (retried with the next batch).
    """

    raised: int = 0
    cleared: int = 0
    acknowledged: int = 0
    write_failures: int = 0


@dataclass(slots=True)
class _Pending:
    rows: dict[str, StoredAlarm] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)


class AlarmBook:
    """The active and recently cleared alarms of one edge node.

    Args:
        engine: The edge's engine (restored on start).
        events: Where the alarm events go.
        store: The store of the ``alarms`` table.
        rules_of: A device id -> its rules by name.
        flush_interval: Seconds between writes of changed alarms.
        max_cleared_per_device: Cleared alarms each device keeps.
        max_cleared: Cleared alarm rows the store keeps.
    """

    def __init__(  # noqa: PLR0913 - the collaborators, then keyword-only settings
        self,
        engine: Engine,
        events: EdgeEvents,
        store: AsyncEdgeStore,
        rules_of: RulesOf,
        *,
        flush_interval: float = 0.2,
        max_cleared_per_device: int = MAX_CLEARED_PER_DEVICE,
        max_cleared: int = MAX_CLEARED,
    ) -> None:
        self.engine = engine
        self.events = events
        self.store = store
        self.rules_of = rules_of
        self.flush_interval = flush_interval
        self.max_cleared_per_device = max_cleared_per_device
        self.max_cleared = max_cleared
        self.counters = AlarmCounters()
        self._active: dict[str, dict[str, Alarm]] = {}
        self._cleared: dict[str, deque[Alarm]] = {}
        self._pending = _Pending()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Loads the stored alarms, restores the active ones into the engine, starts the writer.

        Call it once the engine holds the devices. An alarm of a device or rule that no longer
        exists is dropped (from the store too).
        """
        dropped: list[str] = []
        for row in await self.store.list_alarms():
            alarm = Alarm.from_stored(row)
            rules = self.rules_of(alarm.device_id)
            if alarm.rule not in rules:
                dropped.append(alarm.id)
                continue
            if alarm.cleared_ms is not None:
                self._keep_cleared(alarm)
                continue
            try:
                self.engine.restore_alarm(alarm.device_id, alarm.rule, True)
            except Exception:  # the engine refuses it: the alarm cannot be tracked
                log.exception("alarm not restored", extra={"device": alarm.device_id})
                dropped.append(alarm.id)
                continue
            self._active.setdefault(alarm.device_id, {})[alarm.rule] = alarm
        if dropped:
            self._pending.deleted.update(dropped)
            with contextlib.suppress(Exception):  # logged; the writer retries
                await self.flush()
            log.info("alarms of removed devices or rules dropped", extra={"alarms": len(dropped)})
        self._writer = asyncio.create_task(self._write_loop(), name="alarm writer")

    async def stop(self) -> None:
        """Writes what is pending and stops the writer."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        with contextlib.suppress(Exception):  # logged: the store is going away with what is left
            await self.flush()

    # -- what the engine found ------------------------------------------------------------

    def observe(self, changes: Changes) -> None:
        """Takes the alarm transitions of one applied batch (never raises; no work without any)."""
        transitions = changes.alarms()
        if not transitions:
            return
        for device_id, rule, prop, raised, value, threshold, ts in transitions:
            try:
                if raised:
                    self._raise(device_id, rule, prop=prop, value=value, threshold=threshold, ts=ts)
                else:
                    self._clear(device_id, rule, value, ts)
            except Exception:  # an alarm bug must not break ingestion
                log.exception("alarm transition failed", extra={"device": device_id})

    def _raise(  # noqa: PLR0913 - the transition's fields
        self, device_id: str, rule: str, *, prop: str, value: float, threshold: float, ts: int
    ) -> None:
        spec = self.rules_of(device_id).get(rule)
        severity: Severity = spec.severity if spec is not None else "warning"
        message = spec.message if spec is not None else f"{prop}: rule {rule}"
        namespace, _, name = device_id.partition("/")
        alarm = Alarm(
            uuid.uuid4().hex, namespace, name, rule, prop, severity, message, value, threshold, ts
        )
        self._active.setdefault(device_id, {})[rule] = alarm
        self.counters.raised += 1
        self._queue(alarm)
        text = f"{message}: {prop} {value:g} (threshold {threshold:g})"
        self._emit(alarm, "AlarmRaised", severity, text)

    def _clear(self, device_id: str, rule: str, value: float, ts: int) -> None:
        active = self._active.get(device_id, {})
        alarm = active.pop(rule, None)
        if not active:
            self._active.pop(device_id, None)
        if alarm is None:  # the engine's state and ours disagree: nothing to clear
            log.warning("clear of an alarm not active", extra={"device": device_id, "rule": rule})
            return
        alarm.cleared_ms = ts
        self.counters.cleared += 1
        self._keep_cleared(alarm)
        self._queue(alarm)
        text = f"{alarm.message}: cleared, {alarm.prop} {value:g}"
        self._emit(alarm, "AlarmCleared", "info", text, cleared_value=value)

    def _keep_cleared(self, alarm: Alarm) -> None:
        kept = self._cleared.get(alarm.device_id)
        if kept is None:
            kept = self._cleared[alarm.device_id] = deque(maxlen=self.max_cleared_per_device)
        kept.appendleft(alarm)

    def _emit(
        self,
        alarm: Alarm,
        reason: str,
        severity: Severity,
        message: str,
        **extra: Any,  # noqa: ANN401 - JSON
    ) -> None:
        """One alarm event, timed when the edge saw it (the alarm holds the sample's time)."""
        body: dict[str, Any] = {
            "rule": alarm.rule,
            "property": alarm.prop,
            "value": alarm.value,
            "threshold": alarm.threshold,
            "alarm": alarm.id,
            **extra,
        }
        if alarm.acknowledged_by is not None:
            body["acknowledged_by"] = alarm.acknowledged_by
        self.events.emit(
            type="alarm",
            reason=reason,
            severity=severity,
            namespace=alarm.namespace,
            device=alarm.device,
            message=message,
            body=body,
            key=alarm.rule,
        )

    # -- what people do -------------------------------------------------------------------

    async def acknowledge(self, device_id: str, rule: str, by: str) -> Alarm | None:
        """Acknowledges the active alarm of ``rule``; stored before it returns.

        An alarm already acknowledged keeps its first acknowledgement (no new event).

        Returns:
            The alarm, or ``None`` when none of ``rule`` is active on the device.
        """
        alarm = self._active.get(device_id, {}).get(rule)
        if alarm is None:
            return None
        if alarm.acknowledged_by is None:
            alarm.acknowledged_by, alarm.acknowledged_ms = by, now_ms()
            self.counters.acknowledged += 1
            self._queue(alarm)
            self._emit(alarm, "AlarmAcknowledged", "info", f"{alarm.message}: acknowledged by {by}")
            await self.flush()
        return alarm

    # -- reading --------------------------------------------------------------------------

    def active(self, device_id: str | None = None) -> list[Alarm]:
        """The active alarms (of one device, or all), oldest raise first."""
        if device_id is not None:
            found: Iterable[Alarm] = self._active.get(device_id, {}).values()
        else:
            found = (a for rules in self._active.values() for a in rules.values())
        return sorted(found, key=lambda a: (a.raised_ms, a.device_id, a.rule))

    def cleared(self, device_id: str) -> list[Alarm]:
        """The device's recently cleared alarms, newest first."""
        return list(self._cleared.get(device_id, ()))

    def count_by_severity(self) -> dict[str, int]:
        """Active alarms per severity (every severity listed)."""
        counts = dict.fromkeys(sorted(SEVERITIES), 0)
        for rules in self._active.values():
            for alarm in rules.values():
                counts[alarm.severity] += 1
        return counts

    # -- registry changes -----------------------------------------------------------------

    def forget_device(self, device_id: str) -> None:
        """Drops a deleted device's alarms (the store's rows go with the Device's)."""
        self._active.pop(device_id, None)
        self._cleared.pop(device_id, None)
        for key, row in list(self._pending.rows.items()):
            if row.device_id == device_id:
                del self._pending.rows[key]

    def reconcile_rules(self, device_id: str) -> None:
        """Drops the alarms of rules a reconfigured device no longer has."""
        rules = self.rules_of(device_id)
        active = self._active.get(device_id, {})
        gone = [a for rule, a in active.items() if rule not in rules]
        gone += [a for a in self._cleared.get(device_id, ()) if a.rule not in rules]
        if not gone:
            return
        for alarm in gone:
            active.pop(alarm.rule, None)
            self._pending.rows.pop(alarm.id, None)
            self._pending.deleted.add(alarm.id)
        if not active:
            self._active.pop(device_id, None)
        kept = self._cleared.get(device_id)
        if kept is not None:
            ids = {a.id for a in gone}
            self._cleared[device_id] = deque(
                (a for a in kept if a.id not in ids), maxlen=self.max_cleared_per_device
            )
        self._wake.set()
        log.info("alarms of removed rules dropped", extra={"device": device_id})

    # -- the store ------------------------------------------------------------------------

    def _queue(self, alarm: Alarm) -> None:
        self._pending.rows[alarm.id] = alarm.to_stored()
        self._wake.set()

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.flush_interval)  # gather a batch
            with contextlib.suppress(Exception):  # logged and kept for the next batch
                await self.flush()

    async def flush(self) -> None:
        """Writes the changed alarms now (the writer calls it; an acknowledgement does)."""
        self._wake.clear()
        pending = self._pending
        if not pending.rows and not pending.deleted:
            return
        self._pending = _Pending()
        try:
            await self.store.put_alarms(
                pending.rows.values(), pending.deleted, max_cleared=self.max_cleared
            )
        except Exception:
            self.counters.write_failures += 1
            log.exception("alarm write failed; retried with the next batch")
            for key, row in pending.rows.items():  # newer states of the same alarm win
                self._pending.rows.setdefault(key, row)
            self._pending.deleted |= pending.deleted
            self._wake.set()
            raise
