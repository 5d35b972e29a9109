"""The edges' device events reach the cloud by sequence number, across a reconnect, once each.

The cloud runs the embedded registry in this process; the edge is a real device manager linked
over a real WebSocket. Events come from the edge's own sources (state changes reported to it).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from cloud_helpers import cloud_home, edge_for, running_cloud, vdevice, vmodel
from twinplane.cloud.state import CloudState
from twinplane.edge.app import EdgeApp
from twinplane.edge.core import EdgeCore
from waits import until

pytestmark = pytest.mark.slow


def core_of(edge: EdgeApp) -> EdgeCore:
    """The edge's registry and twins."""
    assert edge.core is not None
    return edge.core


async def cloud_events(http: aiohttp.ClientSession, url: str) -> list[dict[str, object]]:
    """``GET /api/v1/namespaces/default/events`` of the cloud, newest first."""
    async with http.get(f"{url}/api/v1/namespaces/default/events") as answer:
        assert answer.status == 200
        items: list[dict[str, object]] = (await answer.json())["items"]
        return items


async def test_device_events_reach_the_cloud_and_resume_after_a_partition() -> None:
    """State events of node-a's device reach the cloud; those made offline follow on reconnect."""
    with cloud_home() as c, cloud_home() as h:
        async with running_cloud(c) as cloud, aiohttp.ClientSession() as http:
            assert cloud.registry is not None
            assert cloud.controller is not None
            await cloud.registry.create("devicemodels", vmodel())
            await cloud.registry.create("devices", vdevice("pump-a", "node-a"))
            edge = edge_for(cloud, h, "node-a")
            await edge.start()
            core = core_of(edge)
            await until(lambda: "default/pump-a" in core.devices, "pump-a on node-a")
            await core.report_state("default/pump-a", "online")
            seen: list[dict[str, object]] = []

            async def has(reason: str) -> bool:
                seen[:] = await cloud_events(http, cloud.url)
                return any(e["reason"] == reason for e in seen)

            await until_true(lambda: has("DeviceOnline"), "DeviceOnline in the cloud")
            online = next(e for e in seen if e["reason"] == "DeviceOnline")
            assert (online["device"], online["node"]) == ("pump-a", "node-a")
            assert online["type"] == "state"
            await edge.stop()

            edge = edge_for(cloud, h, "node-a")  # the same home: its log, a new link
            await edge.start()
            core = core_of(edge)
            await core.report_state("default/pump-a", "offline")
            await until_true(lambda: has("DeviceOffline"), "DeviceOffline in the cloud")
            reasons = [e["reason"] for e in seen]
            assert reasons.count("DeviceOnline") == 1  # the first batch was not sent twice
            stats = cloud.controller.events.stats
            assert stats.refused == 0
            await edge.stop()


async def until_true(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Awaits ``check()`` until it is true (15 s at most)."""
    deadline = time.monotonic() + 15
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _event(seq: int, age_s: float) -> dict[str, object]:
    """An edge event as the link carries it, that last happened ``age_s`` ago."""
    last = int((time.time() - age_s) * 1000)
    return {
        "id": f"e{seq}",
        "seq": seq,
        "namespace": "default",
        "device": "d1",
        "type": "state",
        "reason": "DeviceOnline",
        "severity": "info",
        "message": f"event {seq}",
        "count": 1,
        "first_ts_ms": last,
        "last_ts_ms": last,
    }


async def test_the_cloud_keeps_events_by_count_and_by_age(tmp_path: Path) -> None:
    """The newest N are kept, none older than the age bound: not served, and gone on reopen."""
    state = CloudState(tmp_path / "cloud.db", keep_events=3, keep_events_s=3600)
    state.open()
    try:
        await state.put_events("n1", [_event(1, 7200), _event(2, 60), _event(3, 50)])
        assert [e["id"] for e in await state.events()] == ["e3", "e2"]  # e1 is too old
        await state.put_events("n1", [_event(4, 40), _event(5, 30)])
        assert [e["id"] for e in await state.events()] == ["e5", "e4", "e3"]  # the newest 3
        assert await state.events_seq("n1") == 5
    finally:
        state.close()
    state = CloudState(tmp_path / "cloud.db", keep_events=3, keep_events_s=35)
    state.open()  # a shorter bound on restart prunes at once
    try:
        assert [e["id"] for e in await state.events()] == ["e5"]
        conn = sqlite3.connect(tmp_path / "cloud.db")
        stored = conn.execute("SELECT id FROM device_events").fetchall()
        conn.close()
        assert stored == [("e5",)]
        assert await state.events_seq("n1") == 5  # pruning never moves the resume point back
    finally:
        state.close()
