"""Typed device events: aggregation, the bounded SQLite log, its query API and the SSE filters.

The log tests run :class:`EdgeEvents` on a real SQLite store; the API tests run a whole
device manager in process and talk to it over HTTP.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge_helpers import device_yaml, running_app, thermo_model
from twinplane.edge.app import EdgeApp
from twinplane.edge.device_events import EdgeEvents
from twinplane.edge.events import EventHub
from twinplane.edge.store import AsyncEdgeStore
from twinplane.edge.store.connection import now_ms
from twinplane.edge.store.device_events import EventQuery
from twinplane.rest.guard import CLIENT_HEADER
from waits import until


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AsyncEdgeStore]:
    """An open edge store in a fresh folder."""
    async with AsyncEdgeStore.open(tmp_path / "edge.db") as opened:
        yield opened


def comm(events: EdgeEvents, device: str, reason: str = "timeout", count: int = 1) -> Any:  # noqa: ANN401
    """A communication error event for ``default/<device>``."""
    return events.emit(
        type="comm",
        reason="CommunicationError",
        severity="warning",
        namespace="default",
        device=device,
        message=f"{count} poll(s) failed: {reason}",
        key=reason,
        count=count,
    )


async def test_repeats_within_the_window_are_one_event_with_a_count(
    store: AsyncEdgeStore,
) -> None:
    """The same device, type, reason and key is one stored event whose count and last time grow."""
    events = EdgeEvents(EventHub(), store)
    await events.start()
    first = comm(events, "d1", count=2)
    comm(events, "d1", count=3)
    other = comm(events, "d1", reason="exception code 2")
    await events.stop()
    rows = await events.query(EventQuery(limit=10))
    assert [(r.id, r.count) for r in rows] == [(other.id, 1), (first.id, 5)]
    assert rows[1].seq > other.seq - 2  # an aggregated event takes a new seq
    assert events.counters.published == 3


async def test_outside_the_window_a_repeat_is_a_new_event(store: AsyncEdgeStore) -> None:
    """A repeat after the aggregation window starts a new event (new id, count 1)."""
    events = EdgeEvents(EventHub(), store, window_s=1)
    base = now_ms()
    a = events.emit(type="state", reason="DeviceOffline", device="d", message="m", ts_ms=base)
    b = events.emit(
        type="state", reason="DeviceOffline", device="d", message="m", ts_ms=base + 5000
    )
    assert a is not None
    assert b is not None
    assert a.id != b.id
    assert b.count == 1


async def test_the_log_keeps_max_count_rows_and_seq_survives_pruning(
    store: AsyncEdgeStore,
) -> None:
    """Beyond max_count the oldest rows go, counted; sequence numbers never go back."""
    events = EdgeEvents(EventHub(), store, max_count=5)
    await events.start()
    for i in range(8):
        comm(events, f"d{i}")
    await events.flush()
    rows = await events.query(EventQuery(limit=100))
    assert [r.device for r in rows] == [f"d{i}" for i in range(7, 2, -1)]
    assert events.counters.pruned == 3
    await events.stop()
    again = EdgeEvents(EventHub(), store, max_count=5)
    await again.start()
    assert again.last_seq == 8
    await again.stop()


async def test_the_log_drops_events_older_than_max_age(store: AsyncEdgeStore) -> None:
    """An event last seen before max_age is pruned at the next write."""
    events = EdgeEvents(EventHub(), store, max_age_s=60)
    events.emit(type="mapper", reason="MapperLost", device="m", ts_ms=now_ms() - 120_000)
    events.emit(type="mapper", reason="MapperRegistered", device="m")
    await events.flush()
    rows = await events.query(EventQuery())
    assert [r.reason for r in rows] == ["MapperRegistered"]
    assert events.counters.pruned == 1


async def test_a_full_log_queue_drops_new_events_and_counts_them(store: AsyncEdgeStore) -> None:
    """With the writer behind, emits return and reach SSE; the log drops the excess, counted."""
    hub = EventHub()
    events = EdgeEvents(hub, store, queue_size=3)
    with hub.subscribe(maxsize=100) as sub:
        for i in range(5):
            assert comm(events, f"d{i}") is not None
        comm(events, "d0")  # a repeat of a pending event replaces it: no drop
        assert events.counters.log_dropped == 2
        assert events.pending == 3
        assert hub.published == 6
        assert sub.dropped == 0
    await events.flush()
    assert events.counters.stored == 3


async def test_a_bad_event_is_refused_without_raising(store: AsyncEdgeStore) -> None:
    """An unknown type or severity returns None and is counted; the caller never sees an error."""
    events = EdgeEvents(EventHub(), store)
    assert events.emit(type="nonsense", reason="X") is None  # type: ignore[arg-type]
    assert events.emit(type="comm", reason="X", severity="fatal") is None  # type: ignore[arg-type]
    assert events.emit(type="comm", reason="X", count=0) is None
    assert events.counters.invalid == 3
    assert events.pending == 0


async def test_a_failing_listener_does_not_fail_the_emit(store: AsyncEdgeStore) -> None:
    """A listener that raises is logged; the event is still published and queued."""
    events = EdgeEvents(EventHub(), store)

    def broken(_event: object) -> None:
        raise RuntimeError("listener bug")

    events.add_listener(broken)
    assert comm(events, "d") is not None
    assert events.pending == 1


# -- the REST API and SSE, in a running device manager ---------------------------------------------


async def get(app: EdgeApp, path: str) -> tuple[int, Any]:
    """A GET against the app's REST API: status and decoded JSON."""
    async with (
        aiohttp.ClientSession(headers={CLIENT_HEADER: "tests"}) as http,
        http.get(app.rest_url + path) as resp,
    ):
        return resp.status, await resp.json()


async def test_state_changes_are_logged_and_queried_by_device_and_type(home: Path) -> None:
    """A reported state change is a DeviceOffline/DeviceOnline event, filtered by device, type."""
    manifests = thermo_model("temperature") + "---\n" + device_yaml("d1", "thermo-model")
    manifests += "---\n" + device_yaml("d2", "thermo-model")
    async with running_app(home, manifests) as app:
        assert app.core is not None
        await app.core.report_state("default/d1", "online")
        await app.core.report_state("default/d1", "offline", reason="connection refused")
        await app.core.report_state("default/d2", "unhealthy")
        await app.core.events.flush()
        status, body = await get(app, "/api/v1/namespaces/default/events?device=d1&type=state")
        assert status == 200
        assert [e["reason"] for e in body["items"]] == ["DeviceOffline", "DeviceOnline"]
        assert "connection refused" in body["items"][0]["message"]
        assert body["items"][0]["severity"] == "warning"
        _, body = await get(app, "/api/v1/namespaces/default/events?severity=warning")
        assert {e["device"] for e in body["items"]} == {"d1", "d2"}
        _, body = await get(app, "/api/v1/namespaces/plant/events")
        assert body["items"] == []


async def test_pages_follow_the_continue_token_and_after_seq_reads_forward(home: Path) -> None:
    """Limit + continue walks the log newest first without gaps; afterSeq reads it oldest first."""
    async with running_app(home) as app:
        assert app.core is not None
        for i in range(7):
            comm(app.core.events, f"d{i}")
        await app.core.events.flush()
        seen: list[str] = []
        path = "/api/v1/namespaces/default/events?limit=3"
        token: str | None = ""
        while token is not None:
            _, body = await get(app, path + (f"&continue={token}" if token else ""))
            seen += [e["device"] for e in body["items"]]
            token = body["metadata"].get("continue")
        assert seen == [f"d{i}" for i in range(6, -1, -1)]
        _, body = await get(app, "/api/v1/events/log?afterSeq=4")
        assert [e["seq"] for e in body["items"]] == [5, 6, 7]
        assert body["metadata"]["lastSeq"] == 7


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("type=bogus", "type"),
        ("severity=loud", "severity"),
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("continue=-1", "continue"),
        ("since=yesterday", "since"),
        ("continue=5&afterSeq=1", "afterSeq"),
        ("device=other/d1", "device"),
    ],
)
async def test_a_bad_query_parameter_is_a_400_naming_it(home: Path, query: str, field: str) -> None:
    """Each invalid parameter is answered 400 with a Status whose cause names it."""
    async with running_app(home) as app:
        status, body = await get(app, f"/api/v1/namespaces/default/events?{query}")
        assert status == 400
        assert body["kind"] == "Status"
        assert body["details"]["causes"][0]["field"] == field


async def read_sse(resp: aiohttp.ClientResponse, count: int) -> list[tuple[str, dict[str, Any]]]:
    """The next ``count`` events of an SSE response: (event, data)."""
    out: list[tuple[str, dict[str, Any]]] = []
    kind = ""
    while len(out) < count:
        line = (await resp.content.readline()).decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            out.append((kind, json.loads(line.removeprefix("data: "))))
    return out


async def test_the_stream_filters_by_device_and_by_type(home: Path) -> None:
    """?device= keeps one device's events of every kind; ?type= keeps device events of that type."""
    manifests = thermo_model("temperature") + "---\n" + device_yaml("d1", "thermo-model")
    manifests += "---\n" + device_yaml("d2", "thermo-model")
    async with (
        running_app(home, manifests) as app,
        aiohttp.ClientSession(headers={CLIENT_HEADER: "tests"}) as http,
        http.get(app.rest_url + "/api/v1/events?device=d2") as by_device,
        http.get(app.rest_url + "/api/v1/events?type=comm") as by_type,
    ):
        assert app.core is not None
        await by_device.content.readline()  # ": subscribed" (the headers are out)
        await by_type.content.readline()
        await until(lambda: len(app.core.hub) == 2, "both streams subscribed")  # type: ignore[union-attr]
        await app.core.report_state("default/d1", "online")
        await app.core.report_state("default/d2", "online")
        comm(app.core.events, "d1")
        got = await asyncio.wait_for(read_sse(by_device, 2), 10)
        assert [(k, d["object"]) for k, d in got] == [
            ("state", "default/d2"),
            ("event", "default/d2"),
        ]
        assert got[1][1]["reason"] == "DeviceOnline"
        ((kind, data),) = await asyncio.wait_for(read_sse(by_type, 1), 10)
        assert (kind, data["type"], data["device"], data["count"]) == ("event", "comm", "d1", 1)


async def test_a_bad_stream_filter_is_a_400_naming_it(home: Path) -> None:
    """An unknown type on the stream is refused before it subscribes."""
    async with running_app(home) as app:
        status, body = await get(app, "/api/v1/events?severity=loud")
        assert status == 400
        assert body["details"]["causes"][0]["field"] == "severity"


async def test_slow_consumers_drops_are_in_metrics(home: Path) -> None:
    """A subscriber that does not read loses its oldest events; /metrics counts them by consumer."""
    async with running_app(home) as app:
        assert app.core is not None
        with app.core.hub.subscribe(maxsize=1):
            for i in range(5):
                comm(app.core.events, f"d{i}")
        async with (
            aiohttp.ClientSession(headers={CLIENT_HEADER: "tests"}) as http,
            http.get(app.rest_url + "/metrics") as resp,
        ):
            text = await resp.text()
        assert 'twinplane_device_events_dropped_total{consumer="sse"} 4' in text
        assert 'twinplane_device_events_dropped_total{consumer="log"} 0' in text
        assert "twinplane_device_events_published_total 5" in text


async def test_the_apps_event_log_takes_its_bounds_from_the_config(home: Path) -> None:
    """EdgeConfig's event_log_max and event_log_max_age_s bound the running edge's log."""
    async with running_app(home, event_log_max=3, event_log_max_age_s=60.0) as app:
        assert app.core is not None
        for i in range(5):
            comm(app.core.events, f"d{i}")
        await app.core.events.flush()
        _, body = await get(app, "/api/v1/namespaces/default/events")
        assert [e["device"] for e in body["items"]] == ["d4", "d3", "d2"]
        assert app.core.events.max_age_s == 60.0
