"""The device manager's core: registry, twins, states, and what happens when they change.

:class:`EdgeCore` owns the device/model registry (typed manifests), the twin engine (in
``track_dirty`` mode: every changed twin is persisted by :mod:`twinplane.edge.persist`, the one
twin persistence path), device states
and mapper records, the last failed desired write of each twin property
(:mod:`twinplane.edge.write_errors`), and fans changes out to listeners (the MQTT bridge, the
mapper lifecycle) and to the event hub (server-sent events). The DMI server, the REST API and
the MQTT bridge are thin adapters over it.

Durability: manifests, desired values, mapper records and state changes are written to SQLite
before the call that made them returns; reported values are flushed every ``flush_interval``
(a crash loses at most that window of telemetry, which the mappers report again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import msgspec

from twinplane import heap
from twinplane.dmi.convert import config_errors
from twinplane.edge.alarms import AlarmBook
from twinplane.edge.desired import DesiredValueError, desired_issues
from twinplane.edge.device_events import EdgeEvents
from twinplane.edge.events import Event, EventHub
from twinplane.edge.methods import MethodError, device_methods
from twinplane.edge.persist import TwinPersister
from twinplane.edge.store import AsyncEdgeStore
from twinplane.edge.write_errors import WriteError, WriteErrors, WriteOutcome
from twinplane.errors import SpecError, TwinplaneError, UnknownDeviceError, VersionConflictError
from twinplane.manifests import (
    Device,
    DeviceModel,
    DeviceStatus,
    LoadResult,
    ManifestError,
    ManifestIssue,
    load_documents,
    overridden_device,
    validate_references,
)
from twinplane.manifests.alarms import AlarmRule, device_rules, rules_by_property
from twinplane.protocols.modbus import protocol_issues
from twinplane.stream.v1 import stream_pb2
from twinplane.twin import Changes, Engine, PropertySpec, TwinDict, ValueLike

log = logging.getLogger(__name__)

DEVICE_STATES = frozenset({"online", "offline", "ok", "unknown", "unhealthy", "disconnected"})
"""States a mapper may report: EdgeCore's five plus mapper-framework's ``disconnected``."""

ONLINE_STATES = frozenset({"online", "ok"})

_STATE_EVENTS: dict[str, tuple[str, Literal["info", "warning", "critical"]]] = {
    "online": ("DeviceOnline", "info"),
    "ok": ("DeviceOnline", "info"),
    "offline": ("DeviceOffline", "warning"),
    "disconnected": ("DeviceOffline", "warning"),
    "unhealthy": ("DeviceUnhealthy", "warning"),
    "unknown": ("DeviceStateUnknown", "info"),
}
"""A device state's event reason and severity."""

ChangeListener = Callable[[Changes], None]

WriteListener = Callable[[str, Mapping[str, WriteError | None]], None]
"""Called with a device id and its properties whose write error was set (or cleared: ``None``)."""


def now_ms() -> int:
    """Milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


class InUseError(TwinplaneError):
    """An object cannot be deleted because others refer to it."""


@dataclass(slots=True)
class DeviceState:
    """A device's last reported state."""

    state: str = "unknown"
    last_online: str = ""
    updated_ms: int = 0


Outcome = Literal["created", "configured", "unchanged"]
"""What an apply did to one object."""


@dataclass(slots=True)
class ApplyResult:
    """What an apply did, per object: ``created``, ``configured`` or ``unchanged``."""

    outcomes: list[tuple[str, str, Outcome]] = field(default_factory=list)
    warnings: list[ManifestIssue] = field(default_factory=list)


@dataclass(slots=True)
class Counters:
    """Monotonic counters for ``/metrics``."""

    dmi_reports: int = 0
    dmi_twins_changed: int = 0
    state_reports: int = 0
    desired_sets: int = 0
    applies: int = 0
    write_failures_reported: int = 0
    write_outcomes_ignored: int = 0


def engine_specs(device: Device, model: DeviceModel) -> list[PropertySpec]:
    """The engine's property specs of a device: every model property, typed by the model.

    The device manager's engine keeps twins only (mappers read devices), so no visitors; its
    properties carry the device's alarm rules (:func:`twinplane.manifests.alarms.device_rules`,
    validated at apply), which the engine evaluates on every reported value it applies.
    """
    rules = rules_by_property(device_rules(device, model))
    specs: list[PropertySpec] = []
    for p in model.spec.properties:
        spec: PropertySpec = {"name": p.name, "type": p.type}
        if p.name in rules:
            spec["alarms"] = rules[p.name]
        specs.append(spec)
    return specs


class EdgeCore:
    """The registry, twins and states of one edge node.

    Args:
        store: The opened SQLite store.
        node_name: This node's name (``spec.nodeName`` of devices assigned here).
        hub: The event hub (one is made when not given).
        flush_interval: Seconds between flushes of changed reported twins.
        events: The device events and their log (made on ``store`` when not given).

    Attributes:
        events: Where every device event is published (:meth:`EdgeEvents.emit`).
        alarms: The active and recently cleared alarms (:mod:`twinplane.edge.alarms`), fed
            from every batch of changes the engine applies.
    """

    def __init__(
        self,
        store: AsyncEdgeStore,
        *,
        node_name: str = "edge",
        hub: EventHub | None = None,
        flush_interval: float = 0.1,
        events: EdgeEvents | None = None,
    ) -> None:
        self.store = store
        self.node_name = node_name
        self.hub = hub if hub is not None else EventHub()  # an empty hub is falsy
        self.events = events if events is not None else EdgeEvents(self.hub, store)
        self.engine = Engine(track_dirty=True)
        self.models: dict[str, DeviceModel] = {}
        self.devices: dict[str, Device] = {}
        self.states: dict[str, DeviceState] = {}
        self.counters = Counters()
        self.persister = TwinPersister(self.engine, store, interval=flush_interval)
        self.write_errors = WriteErrors(store)
        self.alarms = AlarmBook(self.engine, self.events, store, self.alarm_rules)
        self._write_lock = asyncio.Lock()  # one write-error update at a time
        self._write_listeners: list[WriteListener] = []
        self._listeners: list[ChangeListener] = []
        self._lifecycle: list[Callable[[str, str, object | None], None]] = []
        self._state_listeners: list[Callable[[str, DeviceState], None]] = []
        self._lock = asyncio.Lock()
        self._states_pending: dict[str, tuple[str, str]] = {}
        self._states_next: asyncio.Future[None] | None = None
        self._states_writer: asyncio.Task[None] | None = None
        self._heap_held = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Loads the registry, twins and states from the store and starts the twin persister."""
        for row in await self.store.list_objects("DeviceModel"):
            model = _decode_object(DeviceModel, row.body)
            self.models[model.id] = model
        for row in await self.store.list_objects("Device"):
            device = _decode_object(Device, row.body)
            self.devices[device.id] = device
            device_model = self.models.get(device.model_id)
            if device_model is not None:
                self.engine.upsert_device(device.id, engine_specs(device, device_model))
        for device_id, twins in (await self.store.load_twins()).items():
            for prop, body in twins.items():
                with contextlib.suppress(TwinplaneError):
                    self.engine.restore(device_id, prop, body)
        for st in await self.store.list_states():
            self.states[st.device_id] = DeviceState(st.state, st.last_online, st.updated_ms)
        await self.write_errors.load()
        await self.events.start()
        await self.alarms.start()  # after the devices: restores their active alarms
        self.engine.take_dirty()  # restored state is already stored
        self.engine.reset_latency()  # ... so its read times are not latencies to measure
        self.persister.start()
        heap.acquire()  # a large, stable registry: keep it out of the collector's scans
        self._heap_held = True
        log.info(
            "registry loaded", extra={"models": len(self.models), "devices": len(self.devices)}
        )

    async def stop(self) -> None:
        """Stops the twin persister, which writes what is left."""
        if self._heap_held:
            self._heap_held = False
            heap.release()
        await self.persister.stop()
        await self.alarms.stop()
        await self.events.stop()

    def add_change_listener(self, listener: ChangeListener) -> None:
        """Calls ``listener(changes)`` for every batch of twin changes (must not block)."""
        self._listeners.append(listener)

    def remove_change_listener(self, listener: ChangeListener) -> None:
        """Stops calling ``listener`` (no error if it was not registered)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def add_write_listener(self, listener: WriteListener) -> None:
        """Calls ``listener(device_id, {property: error or None})`` when write errors change."""
        self._write_listeners.append(listener)

    def remove_write_listener(self, listener: WriteListener) -> None:
        """Stops calling ``listener`` (no error if it was not registered)."""
        if listener in self._write_listeners:
            self._write_listeners.remove(listener)

    def add_lifecycle_listener(self, listener: Callable[[str, str, object | None], None]) -> None:
        """Calls ``listener(action, id, object)`` on model/device changes.

        ``action`` is one of ``model-upsert``, ``model-delete``, ``device-upsert``,
        ``device-delete`` (``object`` is the old object for deletes).
        """
        self._lifecycle.append(listener)

    def add_state_listener(self, listener: Callable[[str, DeviceState], None]) -> None:
        """Calls ``listener(device_id, state)`` when a device's state changes (stored)."""
        self._state_listeners.append(listener)

    # -- persistence ----------------------------------------------------------------------

    async def persist(self) -> int:
        """Writes every changed twin now (:meth:`TwinPersister.persist`); the rows written."""
        return await self.persister.persist()

    # -- registry -------------------------------------------------------------------------

    async def apply(
        self, text: str | bytes, *, source: str = "<input>", from_cloud: bool = False
    ) -> ApplyResult:
        """Validates and applies manifests (YAML or JSON, one or many documents).

        Everything is validated first (schema, admission rules, references against the registry
        and the batch); on any error nothing is applied and :class:`ManifestError` carries every
        issue with its path.

        ``from_cloud``: objects the cloud delivered. Their ``spec.properties[].desired`` values
        are not set as local writes; the cloud sends them with their versions
        (:meth:`sync_desired`).
        """
        loaded = await asyncio.to_thread(load_documents, text, source=source)
        if loaded.errors:
            raise ManifestError(loaded.errors, source=source)
        models = loaded.models
        devices = loaded.devices
        warnings = list(loaded.warnings)
        for status, document in zip(loaded.objects, loaded.documents, strict=True):
            if isinstance(status, DeviceStatus):
                warnings.append(_status_ignored(status, document))
        async with self._lock:
            all_models = {**self.models, **{m.id: m for m in models}}
            batch_ids = {d.id for d in devices}
            kept = [d for i, d in self.devices.items() if i not in batch_ids]
            issues = loaded.reference_issues(self.models.values())
            issues += validate_references(kept, list(all_models.values()))
            issues += _wire_issues(loaded)
            issues += _device_issues(loaded, all_models)
            issues += _alarm_issues(loaded, all_models)
            if issues:
                raise ManifestError(issues, source=source)
            result = ApplyResult(warnings=warnings)
            changed = await self._store_batch(
                models, devices, all_models, result, local_desired=not from_cloud
            )
            # Devices of a changed model get its new property list, and their mappers the
            # devices as the model now overrides them (sent only if the message changed).
            for device in kept:
                if device.model_id in changed:
                    model = all_models[device.model_id]
                    self.engine.upsert_device(device.id, engine_specs(device, model))
                    self._emit_lifecycle("device-upsert", device.id, device)
            self.counters.applies += 1
        return result

    async def _store_batch(
        self,
        models: list[DeviceModel],
        devices: list[Device],
        all_models: Mapping[str, DeviceModel],
        result: ApplyResult,
        *,
        local_desired: bool = True,
    ) -> set[str]:
        """Stores the changed models and devices of an apply; the changed models' ids.

        Every changed object is stored in one transaction, then the desired values in one
        flush: 10,000 devices are two fsyncs, not 20,000. The registry and the mappers see the
        objects only once they are durable.
        """
        writes: list[tuple[str, str, str, Mapping[str, Any]]] = []
        new_models: list[DeviceModel] = []
        new_devices: list[Device] = []
        for model in models:
            old_model = self.models.get(model.id)
            body = model.to_dict()
            if old_model is not None and old_model.to_dict() == body:
                result.outcomes.append(("DeviceModel", model.id, "unchanged"))
                continue
            writes.append(("DeviceModel", model.namespace, model.name, body))
            new_models.append(model)
            outcome: Outcome = "created" if old_model is None else "configured"
            result.outcomes.append(("DeviceModel", model.id, outcome))
        for device in devices:
            old_device = self.devices.get(device.id)
            body = device.to_dict()
            if old_device is not None and old_device.to_dict() == body:
                result.outcomes.append(("Device", device.id, "unchanged"))
                continue
            writes.append(("Device", device.namespace, device.name, body))
            new_devices.append(device)
            outcome = "created" if old_device is None else "configured"
            result.outcomes.append(("Device", device.id, outcome))
        if writes:
            await self.store.put_objects(writes)  # nothing below happens if this fails
        for device in new_devices:
            old_device = self.devices.get(device.id)
            self.engine.upsert_device(device.id, engine_specs(device, all_models[device.model_id]))
            desired = _manifest_desired(device, old_device) if local_desired else {}
            if desired:
                self._fan_out(self.engine.set_desired(device.id, dict(desired), now_ms()))
        try:
            if new_devices:
                await self.persist()  # a failure raises; the flusher retries the twins
        finally:  # the objects are stored: the registry and the mappers have them either way
            for model in new_models:
                self.models[model.id] = model
                self._emit_lifecycle("model-upsert", model.id, model)
            for device in new_devices:
                self.devices[device.id] = device
                self._emit_lifecycle("device-upsert", device.id, device)
        return {m.id for m in new_models}

    async def delete_device(self, namespace: str, name: str) -> bool:
        """Deletes a device with its twins and state; whether it existed."""
        device_id = f"{namespace}/{name}"
        async with self._lock:
            old = self.devices.pop(device_id, None)
            if old is None:
                return False
            await self.store.delete_object("Device", namespace, name)
            with contextlib.suppress(UnknownDeviceError):
                self.engine.remove_device(device_id)
            self.states.pop(device_id, None)
            self.write_errors.forget(device_id)
            self.alarms.forget_device(device_id)
            self._emit_lifecycle("device-delete", device_id, old)
            return True

    async def delete_model(self, namespace: str, name: str) -> bool:
        """Deletes a model no device uses; whether it existed.

        Raises:
            InUseError: Devices still refer to the model.
        """
        model_id = f"{namespace}/{name}"
        async with self._lock:
            if model_id not in self.models:
                return False
            users = sorted(d.id for d in self.devices.values() if d.model_id == model_id)
            if users:
                raise InUseError(
                    f"device model {model_id} is used by {len(users)} device(s): "
                    + ", ".join(users[:5]),
                    path="metadata.name",
                )
            old = self.models.pop(model_id)
            await self.store.delete_object("DeviceModel", namespace, name)
            self._emit_lifecycle("model-delete", model_id, old)
            return True

    def alarm_rules(self, device_id: str) -> dict[str, AlarmRule]:
        """A device's alarm rules by name (none for an unknown device or model).

        Rules were validated when they were applied; a rule that no longer parses counts as none.
        """
        device = self.devices.get(device_id)
        model = self.models.get(device.model_id) if device is not None else None
        if device is None or model is None:
            return {}
        try:
            return {r.name: r for r in device_rules(device, model)}
        except SpecError:
            return {}

    def devices_for_protocol(self, protocol: str) -> list[tuple[Device, DeviceModel]]:
        """Devices routed to mappers of ``protocol``, with their models."""
        out = []
        for device in self.devices.values():
            model = self.models.get(device.model_id)
            if model is not None and device.protocol_name == protocol:
                out.append((device, model))
        return out

    # -- twins ----------------------------------------------------------------------------

    def twins(self, device_id: str) -> dict[str, TwinDict]:
        """Every twin of a device.

        Raises:
            UnknownDeviceError: No such device.
        """
        if device_id not in self.devices:
            raise UnknownDeviceError(f"unknown device {device_id}", device=device_id)
        return self.engine.twins(device_id)

    def ingest_dmi_report(self, payload: bytes) -> Changes:
        """Applies a serialized DMI ``ReportDeviceStatusRequest`` (decoded in Rust)."""
        changes = self.engine.apply_dmi_report(payload, now_ms())
        self.counters.dmi_reports += 1
        if changes:
            self.counters.dmi_twins_changed += len(changes)
            self._fan_out(changes)
        return changes

    def apply_reported(self, device_id: str, values: Iterable[tuple[str, str, int]]) -> Changes:
        """Applies reported values ``(property, value, ts_ms)`` (e.g. from MQTT)."""
        changes = self.engine.apply_reported(device_id, list(values))
        if changes:
            self._fan_out(changes)
        return changes

    async def set_desired(
        self, device_id: str, values: Mapping[str, str | None], *, ts_ms: int | None = None
    ) -> Changes:
        """Sets desired values on the edge; durable before it returns.

        Every value is checked first (:func:`twinplane.edge.desired.desired_issues`: the
        property, its access mode and type, the model's range, what its register can take);
        one refused value refuses them all and nothing changes.

        Raises:
            UnknownDeviceError: No such device.
            DesiredValueError: A value is refused (``issues`` lists every one).
        """
        if device_id not in self.devices:
            raise UnknownDeviceError(f"unknown device {device_id}", device=device_id)
        self.check_desired(device_id, values)
        desired: dict[str, ValueLike | None] = dict(values)
        changes = self.engine.set_desired(device_id, desired, ts_ms or now_ms())
        self.counters.desired_sets += 1
        await self.persist()
        if changes:
            self._fan_out(changes)
            self._emit_lifecycle("desired", device_id, self.devices[device_id])
        cleared = [prop for prop, value in values.items() if value is None]
        if cleared:  # no write is coming for a cleared desired value: nor an error
            async with self._write_lock:
                await self._update_write_errors(self.write_errors.clearable(device_id, cleared))
        return changes

    async def sync_desired(
        self, device_id: str, values: Mapping[str, tuple[str | None, int, int]]
    ) -> list[str]:
        """Takes desired values from the cloud ``{property: (value, cloud, edge)}``.

        KubeEdge's sync rule (spec §3.8): a value is taken only when neither of its version
        counters is older than the edge's; otherwise the edge keeps its own (changed here while
        the cloud did not know) and the caller reports it back, so the cloud converges to it.
        Durable before it returns.

        Returns:
            The properties whose value was refused by the version rule.

        Raises:
            UnknownDeviceError: No such device.
        """
        if device_id not in self.devices:
            raise UnknownDeviceError(f"unknown device {device_id}", device=device_id)
        known = set(self.engine.twins(device_id))
        refused: list[str] = []
        changed = False
        ts = now_ms()
        for prop, value in values.items():
            if prop not in known:
                continue  # not a property of this device's model (any more)
            try:
                changes = self.engine.sync_desired(device_id, {prop: value}, ts)
            except VersionConflictError:
                refused.append(prop)
                continue
            except SpecError as exc:
                log.warning("cloud desired value refused: %s", exc, extra={"device": device_id})
                refused.append(prop)
                continue
            if changes:
                changed = True
                self._fan_out(changes)
        if changed:
            await self.persist()
            self._emit_lifecycle("desired", device_id, self.devices[device_id])
        return refused

    def check_desired(self, device_id: str, values: Mapping[str, str | None]) -> None:
        """Refuses desired values the device cannot take (see :meth:`set_desired`).

        Raises:
            UnknownDeviceError: No such device.
            DesiredValueError: A value is refused.
        """
        device = self.devices.get(device_id)
        if device is None:
            raise UnknownDeviceError(f"unknown device {device_id}", device=device_id)
        model = self.models.get(device.model_id)
        if model is None:
            return
        issues = desired_issues(device, model, values)
        if issues:
            raise DesiredValueError(device_id, issues)

    async def record_write_outcomes(self, outcomes: Iterable[WriteOutcome]) -> tuple[int, int]:
        """Records how mappers' desired writes ended (:mod:`twinplane.edge.write_errors`).

        A failure of a property's current desired value becomes its write error; a success of
        it clears the error; an outcome for another value, an unknown device or property is
        ignored. Durable before it returns.

        Returns:
            ``(applied, ignored)`` outcomes.

        Raises:
            StoreError: The store could not be written; nothing changed.
        """
        async with self._write_lock:
            verdict = self.write_errors.judge(outcomes, self._desired_of_known)
            await self._update_write_errors(verdict.changes)
        self.counters.write_failures_reported += verdict.failed
        self.counters.write_outcomes_ignored += verdict.ignored
        return verdict.applied, verdict.ignored

    def record_comm_errors(self, errors: Iterable[stream_pb2.CommError]) -> tuple[int, int]:
        """Records a mapper's counted communication errors as ``comm`` events.

        Each entry (a device, a kind of failure, its count since the mapper's last report) adds
        its count to one aggregated ``CommunicationError`` event of that device and message;
        an entry of an unknown device, or with no count, is ignored.

        Returns:
            ``(applied, ignored)`` entries.
        """
        applied = ignored = 0
        for err in errors:
            namespace = err.device_namespace or "default"
            if f"{namespace}/{err.device_name}" not in self.devices or err.count < 1:
                ignored += 1
                continue
            kind = err.kind or "protocol"
            body: dict[str, Any] = {"kind": kind, "first_ms": err.first_ms}
            if err.code:
                body["code"] = err.code
            event = self.events.emit(
                type="comm",
                reason="CommunicationError",
                severity="warning",
                namespace=namespace,
                device=err.device_name,
                message=f"{kind}: {err.message}" if err.message else kind,
                body=body,
                count=err.count,
                ts_ms=err.last_ms or None,
            )
            if event is None:
                ignored += 1
            else:
                applied += 1
        return applied, ignored

    def _desired_of_known(self, device_id: str) -> dict[str, str]:
        if device_id not in self.devices:
            return {}
        try:
            return self.desired_values(device_id)
        except UnknownDeviceError:  # its model is missing: no twins
            return {}

    async def _update_write_errors(
        self, changes: Mapping[tuple[str, str], WriteError | None]
    ) -> None:
        """Stores write-error changes, then tells the listeners and the event hub."""
        if not changes:
            return
        await self.write_errors.update(changes)
        by_device: dict[str, dict[str, WriteError | None]] = {}
        for (device_id, prop), error in changes.items():
            by_device.setdefault(device_id, {})[prop] = error
        for device_id, errors in by_device.items():
            for listener in self._write_listeners:
                try:
                    listener(device_id, errors)
                except Exception:  # a listener bug must not fail the mapper's report
                    log.exception("write listener failed")
            if self.hub.active:
                self._publish_write_events(device_id, errors)
            self._emit_write_events(device_id, errors)

    def _emit_write_events(self, device_id: str, errors: Mapping[str, WriteError | None]) -> None:
        """A ``write`` device event per property whose desired write failed or recovered."""
        namespace, _, name = device_id.partition("/")
        for prop, error in errors.items():
            if error is None:
                self.events.emit(
                    type="write",
                    reason="WriteSucceeded",
                    namespace=namespace,
                    device=name,
                    message=f"property {prop}: the desired value was written",
                    body={"property": prop},
                    key=prop,
                )
            else:
                self.events.emit(
                    type="write",
                    reason="WriteFailed",
                    severity="warning",
                    namespace=namespace,
                    device=name,
                    message=(
                        f"property {prop}: writing {error.value!r} failed after"
                        f" {error.attempts} attempt(s): {error.reason}"
                    ),
                    body={"property": prop, **error.to_json()},
                    key=prop,
                    ts_ms=error.time,
                )

    def _publish_write_events(
        self, device_id: str, errors: Mapping[str, WriteError | None]
    ) -> None:
        """One ``twin`` event (``kind: write``) per property whose write error changed."""
        desired = self.desired_values(device_id)
        for prop, error in errors.items():
            body = {
                "device": device_id,
                "property": prop,
                "kind": "write",
                "value": desired.get(prop),
                "timestamp": error.time if error is not None else now_ms(),
                "last_write_error": error.to_json() if error is not None else None,
            }
            self.hub.publish(Event("twin", device_id, body))

    def desired_values(self, device_id: str) -> dict[str, str]:
        """The current desired values of a device (canonical text), for mappers."""
        return {
            name: twin["desired"]["value"]
            for name, twin in self.engine.twins(device_id).items()
            if twin["desired"] is not None
        }

    # -- states ---------------------------------------------------------------------------

    async def report_state(self, device_id: str, state: str, reason: str = "") -> DeviceState:
        """Records a device state (lower-cased); persisted when it changes.

        A change is also a ``state`` device event (``DeviceOnline``, ``DeviceOffline``,
        ``DeviceUnhealthy``, ...), its message naming ``reason`` when the mapper gave one.

        Raises:
            UnknownDeviceError: No such device.
            SpecError: The state is not one of :data:`DEVICE_STATES`.
        """
        if device_id not in self.devices:
            raise UnknownDeviceError(f"unknown device {device_id}", device=device_id)
        norm = state.strip().lower()
        if norm not in DEVICE_STATES:
            raise SpecError(
                f"unknown device state {state!r}; allowed: {', '.join(sorted(DEVICE_STATES))}",
                device=device_id,
                path="state",
            )
        self.counters.state_reports += 1
        current = self.states.setdefault(device_id, DeviceState())
        changed = current.state != norm
        before = (current.state, current.last_online, current.updated_ms)
        current.state = norm
        current.updated_ms = now_ms()
        if norm in ONLINE_STATES:
            current.last_online = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if changed:
            try:
                await self._persist_state(device_id, norm, current.last_online)
            except BaseException:  # not stored: the next report of it is a change again
                if current.state == norm:
                    current.state, current.last_online, current.updated_ms = before
                raise
            for listener in self._state_listeners:
                try:
                    listener(device_id, current)
                except Exception:  # a listener bug must not fail the mapper's report
                    log.exception("state listener failed")
            if self.hub.active:
                body = {"state": norm, "lastOnlineTime": current.last_online}
                self.hub.publish(Event("state", device_id, body))
            self._emit_state_event(device_id, before[0], norm, reason)
        return current

    def _emit_state_event(self, device_id: str, old: str, new: str, reason: str) -> None:
        namespace, _, name = device_id.partition("/")
        event_reason, severity = _STATE_EVENTS.get(new, ("DeviceStateChanged", "info"))
        message = f"device state {old or 'unknown'} -> {new}"
        if reason:
            message += f": {reason}"
        self.events.emit(
            type="state",
            reason=event_reason,
            severity=severity,
            namespace=namespace,
            device=name,
            message=message,
            body={"state": new, "previous": old, "reason": reason},
            key=new,
        )

    async def _persist_state(self, device_id: str, state: str, last_online: str) -> None:
        """Stores a state change; returns once it is committed (group commit).

        Changes that arrive while a write runs go together in the next one, so thousands of
        devices coming online cost a few transactions, not one fsync each.
        """
        self._states_pending[device_id] = (state, last_online)
        waiter = self._states_next
        if waiter is None:
            waiter = self._states_next = asyncio.get_running_loop().create_future()
        if self._states_writer is None or self._states_writer.done():
            self._states_writer = asyncio.create_task(self._write_states(), name="state writer")
        await asyncio.shield(waiter)

    async def _write_states(self) -> None:
        while self._states_pending:
            batch, self._states_pending = self._states_pending, {}
            waiter, self._states_next = self._states_next, None
            try:
                await self.store.put_states([(d, s, lo) for d, (s, lo) in batch.items()])
            except Exception as exc:  # each caller gets the store's error
                if waiter is not None and not waiter.done():
                    waiter.set_exception(exc)
                    waiter.exception()  # retrieved here too: a caller may have gone
            else:
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

    # -- fan-out --------------------------------------------------------------------------

    def _fan_out(self, changes: Changes) -> None:
        self.alarms.observe(changes)
        for listener in self._listeners:
            try:
                listener(changes)
            except Exception:  # a listener bug must not break ingestion
                log.exception("change listener failed")
        if self.hub.active:
            for change in changes.to_list():
                self.hub.publish(Event("twin", change["device"], change))

    def _emit_lifecycle(self, action: str, object_id: str, obj: object | None) -> None:
        heap.changed(removed=action.endswith("delete"))
        if action == "device-upsert":
            self.alarms.reconcile_rules(object_id)
        for listener in self._lifecycle:
            try:
                listener(action, object_id, obj)
            except Exception:
                log.exception("lifecycle listener failed")
        if self.hub.active and action != "desired":
            self.hub.publish(Event("lifecycle", object_id, {"action": action}))


def _status_ignored(status: DeviceStatus, document: int) -> ManifestIssue:
    return ManifestIssue(
        document,
        "DeviceStatus",
        status.name,
        "",
        "DeviceStatus is written by the device manager from reported twins; "
        "an applied DeviceStatus is ignored",
        "ignored",
        status.namespace,
    )


def _wire_issues(loaded: LoadResult) -> list[ManifestIssue]:
    """Every configData value of the devices and models that a Go mapper cannot take (spec §1.3).

    Found at apply time, not at send time; a model's values reach its devices in the mapper.
    """
    issues: list[ManifestIssue] = []
    for obj, document in zip(loaded.objects, loaded.documents, strict=True):
        if isinstance(obj, Device | DeviceModel):
            kind = type(obj).__name__
            issues.extend(
                ManifestIssue(
                    document, kind, obj.name, err.path or "", err.message, "type", obj.namespace
                )
                for err in config_errors(obj)
            )
    return issues


def _alarm_issues(loaded: LoadResult, models: Mapping[str, DeviceModel]) -> list[ManifestIssue]:
    """The alarm rules of the models and devices applied that do not parse (path named)."""
    issues: list[ManifestIssue] = []
    for obj, document in zip(loaded.objects, loaded.documents, strict=True):
        if isinstance(obj, DeviceModel):
            device, model = None, obj
        elif isinstance(obj, Device) and obj.model_id in models:
            device, model = obj, models[obj.model_id]
        else:
            continue
        try:
            device_rules(device, model)
        except SpecError as exc:
            kind = type(obj).__name__
            issues.append(
                ManifestIssue(
                    document, kind, obj.name, exc.path or "", exc.message, "value", obj.namespace
                )
            )
    return issues


def _device_issues(loaded: LoadResult, models: Mapping[str, DeviceModel]) -> list[ManifestIssue]:
    """What mappers of the protocols the edge knows could not use, found at apply time.

    A Modbus device's protocol ``configData`` (``port: 99999`` is refused here, not in the
    mapper's log), and every device's manifest ``desired`` values that its model's range or its
    register cannot take (:func:`twinplane.edge.desired.desired_issues`; a desired value on a
    ``ReadOnly`` property is left to the schema's rules, as KubeEdge's samples carry some).
    """
    issues: list[ManifestIssue] = []
    for obj, document in zip(loaded.objects, loaded.documents, strict=True):
        if not isinstance(obj, Device):
            continue
        model = models.get(obj.model_id)
        if obj.protocol_name == "modbus" and model is not None:
            effective = overridden_device(obj, model)
            issues.extend(
                ManifestIssue(
                    document,
                    "Device",
                    obj.name,
                    err.path or "",
                    err.message,
                    "range",
                    obj.namespace,
                )
                for err in protocol_issues(effective.spec.protocol.config_data or {})
            )
        try:
            device_methods(obj)
        except MethodError as err:
            issues.append(
                ManifestIssue(
                    document,
                    "Device",
                    obj.name,
                    err.path or "",
                    err.message,
                    "value",
                    obj.namespace,
                )
            )
        if model is None:
            continue
        index = {p.name: i for i, p in enumerate(obj.spec.properties)}
        values = {
            p.name: p.desired.value
            for p in obj.spec.properties
            if p.desired is not None and p.desired.value
        }
        for issue in desired_issues(obj, model, values):
            if issue.reason in ("value", "range"):
                path = f"spec.properties[{index[issue.property]}].desired.value"
                issues.append(
                    ManifestIssue(
                        document,
                        "Device",
                        obj.name,
                        path,
                        issue.message,
                        issue.reason,
                        obj.namespace,
                    )
                )
    return issues


def _manifest_desired(device: Device, old: Device | None) -> dict[str, ValueLike | None]:
    """Desired values a manifest sets: those that differ from the previous manifest's."""
    before = {p.name: p.desired.value for p in (old.spec.properties if old else ()) if p.desired}
    out: dict[str, ValueLike | None] = {}
    for prop in device.spec.properties:
        if prop.desired is not None and before.get(prop.name) != prop.desired.value:
            out[prop.name] = prop.desired.value
    return out


_Obj = TypeVar("_Obj", Device, DeviceModel)


def _decode_object(kind: type[_Obj], body: Mapping[str, Any]) -> _Obj:
    """A stored manifest body back as its typed object (it was valid when stored)."""
    data = {k: v for k, v in body.items() if k not in ("apiVersion", "kind")}
    return msgspec.convert(data, kind)
