"""The one twin persistence path: the engine's dirty set in one transaction, and its numbers.

``EdgeCore.persist`` (:class:`~twinplane.edge.persist.TwinPersister`) takes the changed twins
out of the engine; when the store's transaction fails they are kept and merged under the next
flush's newer rows. A real EdgeCore on a real SQLite store; the failing store is ``save_twins``
replaced by one that raises. ``/metrics`` and ``/healthz`` count this path.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge_helpers import running_app
from twinplane.edge.core import EdgeCore
from twinplane.edge.store import AsyncEdgeStore, StoreError
from twinplane.fleet import device_manifests


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


def break_store(monkeypatch: pytest.MonkeyPatch, store: AsyncEdgeStore) -> Callable[[], None]:
    """Makes ``store.save_twins`` fail with "disk full"; returns what mends it."""
    real = store.save_twins

    async def broken(rows: object) -> None:
        raise StoreError("disk full", db_path=str(store.path))

    monkeypatch.setattr(store, "save_twins", broken)
    return lambda: monkeypatch.setattr(store, "save_twins", real)


@contextlib.asynccontextmanager
async def after_a_failed_flush(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[EdgeCore]:
    """A core on ``db`` whose flush of two new counter values (7, 8) failed; the store works again.

    The core flushes only when the test asks, and is stopped (its last flush done) on leaving.
    """
    async with AsyncEdgeStore.open(db) as store:
        core = EdgeCore(store, flush_interval=3600)
        await core.start()
        try:
            await core.apply(device_manifests([(5020, 1), (5020, 2)]))
            mend = break_store(monkeypatch, store)
            core.apply_reported("default/thermostat-1", [("counter", "7", 1_000)])
            core.apply_reported("default/thermostat-2", [("counter", "8", 1_000)])
            with pytest.raises(StoreError, match="disk full"):
                await core.persist()
            mend()
            yield core
        finally:
            await core.stop()


async def test_rows_of_a_failed_flush_are_written_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed flush loses nothing: its rows, and newer values, are stored by the next one."""
    db = tmp_path / "edge.db"
    async with after_a_failed_flush(db, monkeypatch) as core:
        stats = core.persister.stats
        flushes = stats.flushes
        assert (stats.errors, stats.unsaved) == (1, 2)
        core.apply_reported("default/thermostat-2", [("counter", "9", 2_000)])  # newer
        assert await core.persist() == 2
        assert (stats.errors, stats.unsaved, stats.flushes) == (1, 0, flushes + 1)
    stored = await stored_reported(db)
    assert stored[("default/thermostat-1", "counter")] == "7"
    assert stored[("default/thermostat-2", "counter")] == "9"


async def test_rows_of_a_deleted_device_are_not_written_after_a_failed_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A device deleted between a failed flush and the next gets no twin rows back."""
    db = tmp_path / "edge.db"
    async with after_a_failed_flush(db, monkeypatch) as core:
        assert await core.delete_device("default", "thermostat-2")
        assert await core.persist() == 1
    stored = await stored_reported(db)
    assert stored[("default/thermostat-1", "counter")] == "7"
    assert not any(device == "default/thermostat-2" for device, _ in stored)


async def _get(rest_url: str, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession(base_url=rest_url) as http, http.get(path) as resp:
        body = await resp.json() if path == "/healthz" else await resp.text()
        return resp.status, body


def _samples(text: str) -> dict[str, float]:
    return {
        line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


async def test_metrics_and_health_count_the_real_persistence_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows persisted, failed writes, unsaved rows and the last flush, in /metrics and /healthz.

    The background loop writes too (every 0.1 s), so the counts are read from the persister.
    """
    async with running_app(tmp_path, device_manifests([(5020, 1), (5020, 2)])) as app:
        core = app.core
        assert core is not None
        before = time.time()
        core.apply_reported("default/thermostat-1", [("counter", "7", 1_000)])
        await core.persist()  # this one, or the background loop's, wrote it
        _, text = await _get(app.rest_url, "/metrics")
        samples = _samples(text)
        assert samples["twinplane_twins_persisted_total"] == core.persister.stats.rows >= 1
        assert samples["twinplane_twin_flushes_total"] == core.persister.stats.flushes >= 1
        assert samples["twinplane_persist_errors_total"] == 0
        assert samples["twinplane_twins_unsaved"] == 0
        assert samples["twinplane_twin_last_flush_timestamp_seconds"] >= before - 1
        took = core.persister.stats.last_flush_s  # a real SQLite commit: not instant
        assert samples["twinplane_twin_last_flush_duration_seconds"] == took > 0
        assert not any(k.startswith("twinplane_store_") for k in samples)

        mend = break_store(monkeypatch, core.store)
        core.apply_reported("default/thermostat-2", [("counter", "8", 1_000)])
        with pytest.raises(StoreError):
            await core.persist()
        status, health = await _get(app.rest_url, "/healthz")
        check = health["checks"]["store"]
        assert status == 200
        assert check["persistErrors"] >= 1
        assert check["unsavedTwins"] == 1
        assert check["twinsPersisted"] == core.persister.stats.rows
        assert check["lastFlush"].endswith("Z")
        assert check["lastFlushSeconds"] == round(took, 6) > 0  # the failed write changed nothing
        _, text = await _get(app.rest_url, "/metrics")
        assert _samples(text)["twinplane_twins_unsaved"] == 1
        mend()
        await core.persist()
        assert core.persister.stats.unsaved == 0
