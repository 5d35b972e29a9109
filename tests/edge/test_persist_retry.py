"""Twin rows of a failed flush are written by the next one, not lost.

``EdgeCore.persist`` takes the changed twins out of the engine; when the store's transaction
fails they are kept and merged under the next flush's newer rows. A real EdgeCore on a real
SQLite store; the failing store is ``save_twins`` replaced by one that raises.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from twinplane.edge.core import EdgeCore
from twinplane.edge.store import AsyncEdgeStore, StoreError
from twinplane.up import device_manifests


async def stored_reported(db: Path) -> dict[tuple[str, str], str]:
    """``(device, property) → reported value`` as stored in ``db``."""
    async with AsyncEdgeStore.open(db) as store:
        twins = await store.load_twins()
    return {
        (device, prop): body["reported"]["value"]
        for device, props in twins.items()
        for prop, body in props.items()
        if body.get("reported")
    }


async def test_rows_of_a_failed_flush_are_written_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed flush loses nothing: its rows, and newer values, are stored by the next one."""
    db = tmp_path / "edge.db"
    async with AsyncEdgeStore.open(db) as store:
        core = EdgeCore(store, flush_interval=3600)  # flushes only when the test asks
        await core.start()
        try:
            await core.apply(device_manifests([(5020, 1), (5020, 2)]))
            real = store.save_twins

            async def broken(rows: object) -> None:
                raise StoreError("disk full", db_path=str(db))

            monkeypatch.setattr(store, "save_twins", broken)
            core.apply_reported("default/thermostat-1", [("counter", "7", 1_000)])
            core.apply_reported("default/thermostat-2", [("counter", "8", 1_000)])
            with pytest.raises(StoreError, match="disk full"):
                await core.persist()
            monkeypatch.setattr(store, "save_twins", real)
            core.apply_reported("default/thermostat-2", [("counter", "9", 2_000)])  # newer
            assert await core.persist() == 2
        finally:
            await core.stop()
    stored = await stored_reported(db)
    assert stored[("default/thermostat-1", "counter")] == "7"
    assert stored[("default/thermostat-2", "counter")] == "9"


async def test_rows_of_a_deleted_device_are_not_written_after_a_failed_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A device deleted between a failed flush and the next gets no twin rows back."""
    db = tmp_path / "edge.db"
    async with AsyncEdgeStore.open(db) as store:
        core = EdgeCore(store, flush_interval=3600)
        await core.start()
        try:
            await core.apply(device_manifests([(5020, 1), (5020, 2)]))
            real = store.save_twins

            async def broken(rows: object) -> None:
                raise StoreError("disk full", db_path=str(db))

            monkeypatch.setattr(store, "save_twins", broken)
            core.apply_reported("default/thermostat-1", [("counter", "7", 1_000)])
            core.apply_reported("default/thermostat-2", [("counter", "8", 1_000)])
            with pytest.raises(StoreError):
                await core.persist()
            monkeypatch.setattr(store, "save_twins", real)
            assert await core.delete_device("default", "thermostat-2")
            assert await core.persist() == 1
        finally:
            await core.stop()
    stored = await stored_reported(db)
    assert stored[("default/thermostat-1", "counter")] == "7"
    assert not any(device == "default/thermostat-2" for device, _ in stored)
