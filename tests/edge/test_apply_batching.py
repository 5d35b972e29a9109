"""An apply stores its changed objects in one transaction, before anyone sees them.

Each test runs a real :class:`~twinplane.edge.core.EdgeCore` on a real SQLite store. The store's
``put_objects`` and ``save_twins`` are spied on by wrapping the real methods (the writes still
happen); a failing store is the real method replaced by one that raises :class:`StoreError`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from twinplane.edge.core import EdgeCore
from twinplane.edge.store import AsyncEdgeStore, StoredObject, StoreError, TwinBody
from twinplane.fleet import device_manifests

DEVICES = 300

ObjectRow = tuple[str, str, str, Mapping[str, Any]]
"""What ``put_objects`` takes for one object: kind, namespace, name, body."""


def manifests(count: int) -> str:
    """The simulator's model and ``count`` thermostats (``thermostat-1`` ...), as a JSON List."""
    return device_manifests([(5020 + i // 100, i % 100 + 1) for i in range(count)])


def device_ids(count: int) -> set[str]:
    """The ids of the devices of :func:`manifests`."""
    return {f"default/thermostat-{i + 1}" for i in range(count)}


@dataclass
class Spy:
    """The arguments of every call of a wrapped store method."""

    calls: list[list[Any]] = field(default_factory=list)

    @property
    def sizes(self) -> list[int]:
        """How many rows each call carried."""
        return [len(rows) for rows in self.calls]


@dataclass
class Core:
    """A running registry on its store, with spies on its writes and lifecycle events."""

    core: EdgeCore
    store: AsyncEdgeStore
    objects: Spy = field(default_factory=Spy)
    twins: Spy = field(default_factory=Spy)
    lifecycle: list[tuple[str, str]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def running_core(db: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Core]:
    """An :class:`EdgeCore` on ``db`` whose twins are persisted only when asked (no flusher)."""
    async with AsyncEdgeStore.open(db) as store:
        core = EdgeCore(store, flush_interval=3600)
        await core.start()
        try:
            running = Core(core, store)
            core.add_lifecycle_listener(
                lambda action, oid, _: running.lifecycle.append((action, oid))
            )
            put_objects, save_twins = store.put_objects, store.save_twins

            async def spy_objects(objects: list[ObjectRow]) -> list[int]:
                running.objects.calls.append(list(objects))
                return await put_objects(objects)

            async def spy_twins(rows: list[tuple[str, str, TwinBody]]) -> None:
                running.twins.calls.append(list(rows))
                await save_twins(rows)

            monkeypatch.setattr(store, "put_objects", spy_objects)
            monkeypatch.setattr(store, "save_twins", spy_twins)
            yield running
        finally:
            await core.stop()


async def stored(db: Path, kind: str) -> list[StoredObject]:
    """The objects of ``kind`` in ``db``, read through a newly opened store."""
    async with AsyncEdgeStore.open(db) as store:
        return await store.list_objects(kind)


async def stored_twins(db: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """The twins in ``db``, read through a newly opened store."""
    async with AsyncEdgeStore.open(db) as store:
        return await store.load_twins()


async def test_an_apply_is_one_transaction_of_every_changed_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 devices and their model: one put_objects of 301 objects, one twin write, durable."""
    db = tmp_path / "edge.db"
    async with running_core(db, monkeypatch) as running:
        result = await running.core.apply(manifests(DEVICES))
        assert {outcome for _, _, outcome in result.outcomes} == {"created"}
        assert running.objects.sizes == [DEVICES + 1]
        (objects,) = running.objects.calls
        assert sorted(kind for kind, _, _, _ in objects).count("Device") == DEVICES
        assert running.twins.sizes == [DEVICES]  # each device's desired setpoint, one write
        assert set(running.core.devices) == device_ids(DEVICES)
        assert set(running.core.models) == {"default/sim-thermostat"}
        upserts = [oid for action, oid in running.lifecycle if action == "device-upsert"]
        assert sorted(upserts) == sorted(device_ids(DEVICES))
    devices = await stored(db, "Device")
    assert {f"{d.namespace}/{d.name}" for d in devices} == device_ids(DEVICES)
    assert all(d.generation == 1 for d in devices)
    assert [m.name for m in await stored(db, "DeviceModel")] == ["sim-thermostat"]
    twins = await stored_twins(db)
    assert set(twins) == device_ids(DEVICES)
    assert all(t["setpoint"]["desired"]["value"] == "21" for t in twins.values())


async def test_reapplying_the_same_text_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second apply of the same text: every object unchanged, no write, no lifecycle event."""
    text = manifests(DEVICES)
    async with running_core(tmp_path / "edge.db", monkeypatch) as running:
        await running.core.apply(text)
        writes, twin_writes, events = (
            len(running.objects.calls),
            len(running.twins.calls),
            len(running.lifecycle),
        )
        result = await running.core.apply(text)
        assert len(result.outcomes) == DEVICES + 1
        assert {outcome for _, _, outcome in result.outcomes} == {"unchanged"}
        assert len(running.objects.calls) == writes
        assert len(running.twins.calls) == twin_writes
        assert len(running.lifecycle) == events


async def test_a_failed_store_write_applies_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """put_objects fails: apply raises its error; registry, listeners and store see nothing new."""
    db = tmp_path / "edge.db"
    kept = 10
    async with running_core(db, monkeypatch) as running:
        await running.core.apply(manifests(kept))
        before = dict(running.core.devices)
        events = len(running.lifecycle)
        failure = StoreError("disk I/O error", db_path=str(db))

        async def failing(objects: list[ObjectRow]) -> list[int]:
            raise failure

        with monkeypatch.context() as patch:
            patch.setattr(running.store, "put_objects", failing)
            with pytest.raises(StoreError) as caught:
                await running.core.apply(manifests(DEVICES))
        assert caught.value is failure
        assert running.core.devices == before
        assert all(running.core.devices[i] is d for i, d in before.items())
        assert len(running.lifecycle) == events
        assert [o.name for o in await running.store.list_objects("Device")] == sorted(
            d.name for d in before.values()
        )
        # The store is back: the same apply now goes through.
        result = await running.core.apply(manifests(DEVICES))
        created = [oid for kind, oid, outcome in result.outcomes if outcome == "created"]
        assert set(created) == device_ids(DEVICES) - device_ids(kept)
        assert set(running.core.devices) == device_ids(DEVICES)
    assert len(await stored(db, "Device")) == DEVICES


async def test_a_failed_store_write_leaves_no_twins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """put_objects fails: no twin of the refused devices is stored, nor kept in the engine."""
    db = tmp_path / "edge.db"
    async with running_core(db, monkeypatch) as running:

        async def failing(objects: list[ObjectRow]) -> list[int]:
            raise StoreError("disk I/O error", db_path=str(db))

        with monkeypatch.context() as patch:
            patch.setattr(running.store, "put_objects", failing)
            with pytest.raises(StoreError):
                await running.core.apply(manifests(3))
        await running.core.persist()
    assert await stored_twins(db) == {}
