"""Device state changes are committed in groups, and each report returns once its group is.

Each test runs a real :class:`~twinplane.edge.core.EdgeCore` on a real SQLite store; the store's
``put_states`` is spied on by wrapping the real method, and a failing store is that method
replaced by one that raises :class:`StoreError`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from twinplane.edge.core import DeviceState, EdgeCore
from twinplane.edge.store import AsyncEdgeStore, StoredState, StoreError
from twinplane.fleet import device_manifests

DEVICES = 500


def device_ids(count: int) -> list[str]:
    """The ids of the devices of :func:`running_core`'s manifests."""
    return [f"default/thermostat-{i + 1}" for i in range(count)]


@dataclass
class Core:
    """A running registry on its store, with every ``put_states`` batch recorded."""

    core: EdgeCore
    store: AsyncEdgeStore
    batches: list[list[tuple[str, str, str]]] = field(default_factory=list)

    async def report(self, devices: list[str], state: str) -> list[DeviceState | BaseException]:
        """``report_state`` of every device at once; what each returned or raised."""
        return await asyncio.gather(
            *(self.core.report_state(d, state) for d in devices), return_exceptions=True
        )


@contextlib.asynccontextmanager
async def running_core(
    db: Path, monkeypatch: pytest.MonkeyPatch, devices: int = DEVICES
) -> AsyncIterator[Core]:
    """An :class:`EdgeCore` on ``db`` holding ``devices`` thermostats; put_states is spied on."""
    async with AsyncEdgeStore.open(db) as store:
        core = EdgeCore(store)
        await core.start()
        try:
            await core.apply(
                device_manifests([(5020 + i // 100, i % 100 + 1) for i in range(devices)])
            )
            running = Core(core, store)
            put_states = store.put_states

            async def spy(states: list[tuple[str, str, str]]) -> None:
                running.batches.append(list(states))
                await put_states(states)

            monkeypatch.setattr(store, "put_states", spy)
            yield running
        finally:
            await core.stop()


async def stored_states(db: Path) -> dict[str, StoredState]:
    """The device states in ``db``, read through a newly opened store."""
    async with AsyncEdgeStore.open(db) as store:
        return {s.device_id: s for s in await store.list_states()}


async def test_concurrent_state_changes_share_a_few_transactions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """500 devices coming online at once: every report returns, in a few put_states, durable."""
    db = tmp_path / "edge.db"
    devices = device_ids(DEVICES)
    async with running_core(db, monkeypatch) as running:
        results = await running.report(devices, "online")
        assert all(isinstance(r, DeviceState) and r.state == "online" for r in results), results
        assert 1 <= len(running.batches) <= 10
        written = [device for batch in running.batches for device, _, _ in batch]
        assert sorted(written) == sorted(devices)  # each once
        # A report of the state a device is already in writes nothing.
        again = await running.report(devices[:50], "online")
        assert all(isinstance(r, DeviceState) for r in again), again
        assert sum(len(batch) for batch in running.batches) == DEVICES
    states = await stored_states(db)
    assert set(states) == set(devices)
    assert {s.state for s in states.values()} == {"online"}
    assert all(s.last_online for s in states.values())


async def test_a_failed_write_fails_its_reports_and_a_later_one_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """put_states fails: every waiting report raises the store's error; then the store is back."""
    db = tmp_path / "edge.db"
    devices = device_ids(100)
    async with running_core(db, monkeypatch, len(devices)) as running:
        await running.report(devices, "online")
        failure = StoreError("disk I/O error", db_path=str(db))
        attempts = 0

        async def failing(states: list[tuple[str, str, str]]) -> None:
            nonlocal attempts
            attempts += 1
            await asyncio.sleep(0)  # reports keep arriving while the write is under way
            raise failure

        with monkeypatch.context() as patch:
            patch.setattr(running.store, "put_states", failing)
            results = await running.report(devices, "offline")
        assert attempts >= 1
        assert all(r is failure for r in results), results
        # Back: a new state change is written and returns.
        back = await running.report(devices, "unhealthy")
        assert all(isinstance(r, DeviceState) and r.state == "unhealthy" for r in back), back
        assert sorted(d for d, _, _ in running.batches[-1]) == sorted(devices)
    states = await stored_states(db)
    assert {states[d].state for d in devices} == {"unhealthy"}


async def test_a_state_whose_write_failed_is_written_when_reported_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report whose write failed is not remembered as stored: reported again, it is written."""
    db = tmp_path / "edge.db"
    devices = device_ids(3)
    async with running_core(db, monkeypatch, len(devices)) as running:

        async def failing(states: list[tuple[str, str, str]]) -> None:
            raise StoreError("disk I/O error", db_path=str(db))

        with monkeypatch.context() as patch:
            patch.setattr(running.store, "put_states", failing)
            await running.report(devices, "online")
        await running.report(devices, "online")
    assert {s.state for s in (await stored_states(db)).values()} == {"online"}
    assert set(await stored_states(db)) == set(devices)
