"""The alarm lifecycle on the edge: raise, acknowledge, clear, persistence, REST and /metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from edge.store.helpers import raw
from edge_helpers import device_yaml, running_app
from twinplane.edge.app import EdgeApp
from twinplane.edge.core import EdgeCore
from twinplane.edge.store import EdgeStore, StoreError, migrations
from twinplane.rest.guard import CLIENT_HEADER

HOT = {
    "name": "too-hot",
    "property": "temperature",
    "condition": "above",
    "threshold": 30,
    "hysteresis": 1,
    "raiseAfter": 2,
    "severity": "critical",
    "message": "the room is too hot",
}
LOW = {"name": "too-cold", "property": "temperature", "condition": "below", "threshold": 5}


def model(*rules: dict[str, Any]) -> str:
    """``alarm-model`` (temperature, setpoint) carrying ``rules`` in twinplane.io/alarms."""
    annotation = json.dumps(json.dumps(list(rules)))
    return (
        "apiVersion: devices.kubeedge.io/v1beta1\n"
        "kind: DeviceModel\n"
        "metadata:\n"
        "  name: alarm-model\n"
        "  namespace: default\n"
        f"  annotations: {{twinplane.io/alarms: {annotation}}}\n"
        "spec:\n"
        "  protocol: modbus\n"
        "  properties:\n"
        "  - {name: temperature, type: FLOAT, accessMode: ReadOnly}\n"
        "  - {name: setpoint, type: INT, accessMode: ReadWrite}\n"
    )


def fleet(*rules: dict[str, Any]) -> str:
    """The model and two devices, d1 and d2."""
    devices = [device_yaml(n, "alarm-model") for n in ("d1", "d2")]
    return "---\n".join([model(*rules), *devices])


def core_of(app: EdgeApp) -> EdgeCore:
    """The app's core."""
    assert app.core is not None
    return app.core


def report(core: EdgeCore, device: str, *values: float, start_ms: int = 1000) -> None:
    """Reported temperatures of ``default/<device>``, one a second from ``start_ms``."""
    for i, v in enumerate(values):
        core.apply_reported(f"default/{device}", [("temperature", f"{v}", start_ms + i * 1000)])


async def call(
    app: EdgeApp,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """A request against the app's REST API: status and decoded JSON."""
    sent = {CLIENT_HEADER: "tests"} if headers is None else headers
    async with (
        aiohttp.ClientSession(headers=sent) as http,
        http.request(method, app.rest_url + path, data=body) as resp,
    ):
        return resp.status, await resp.json()


async def alarm_events(app: EdgeApp) -> list[str]:
    """The reasons of the alarm events in the log, oldest first (after a flush)."""
    await core_of(app).events.flush()
    _, body = await call(app, "GET", "/api/v1/namespaces/default/events?type=alarm")
    return [f"{e['reason']}x{e['count']}" for e in reversed(body["items"])]


def metric(text: str, name: str) -> float:
    """One sample of Prometheus text, by its full name with labels."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


async def test_an_alarm_raises_is_acknowledged_and_clears(home: Path) -> None:
    """Raise after raiseAfter samples, ack by name (kept on a second ack), clear past hysteresis."""
    async with running_app(home, fleet(HOT)) as app:
        core = core_of(app)
        report(core, "d1", 25, 31)
        assert core.alarms.active() == []
        report(core, "d1", 31.5, start_ms=3000)
        (alarm,) = core.alarms.active()
        assert (alarm.device, alarm.rule, alarm.prop, alarm.severity) == (
            "d1", "too-hot", "temperature", "critical",
        )  # fmt: skip
        assert (alarm.value, alarm.threshold, alarm.raised_ms) == (31.5, 30.0, 3000)

        status, body = await call(app, "GET", "/api/v1/alarms?severity=critical")
        assert status == 200
        assert body["kind"] == "AlarmList"
        assert [(a["device"], a["rule"], a["state"]) for a in body["items"]] == [
            ("d1", "too-hot", "active")
        ]
        _, body = await call(app, "GET", "/api/v1/alarms?severity=info,warning")
        assert body["items"] == []
        _, body = await call(app, "GET", "/api/v1/namespaces/default/devices/d1/twin")
        assert [a["rule"] for a in body["alarms"]] == ["too-hot"]
        _, body = await call(app, "GET", "/api/v1/namespaces/default/devices/d2/twin")
        assert body["alarms"] == []

        ack = "/api/v1/namespaces/default/devices/d1/alarms/too-hot/ack"
        status, body = await call(app, "POST", ack, json.dumps({"by": "alice"}).encode())
        assert status == 200, body
        assert (body["state"], body["acknowledged_by"]) == ("acknowledged", "alice")
        first_ms = body["acknowledged_ms"]
        status, body = await call(app, "POST", ack, json.dumps({"by": "bob"}).encode())
        assert (status, body["acknowledged_by"], body["acknowledged_ms"]) == (
            200,
            "alice",
            first_ms,
        )

        report(core, "d1", 29.5, start_ms=4000)  # inside the hysteresis band: still active
        assert len(core.alarms.active()) == 1
        report(core, "d1", 28.9, start_ms=5000)
        assert core.alarms.active() == []
        _, body = await call(app, "GET", "/api/v1/namespaces/default/devices/d1/alarms")
        (cleared,) = body["items"]
        assert (cleared["state"], cleared["cleared_ms"], cleared["acknowledged_by"]) == (
            "cleared", 5000, "alice",
        )  # fmt: skip
        assert await alarm_events(app) == ["AlarmRaisedx1", "AlarmAcknowledgedx1", "AlarmClearedx1"]
        _, body = await call(app, "GET", "/api/v1/namespaces/default/events?type=alarm")
        raised = body["items"][-1]
        assert raised["severity"] == "critical"
        assert raised["body"] | {"alarm": ""} == {
            "rule": "too-hot", "property": "temperature", "value": 31.5, "threshold": 30.0,
            "alarm": "",
        }  # fmt: skip


async def test_an_active_alarm_survives_a_restart_and_is_not_raised_again(home: Path) -> None:
    """An EdgeApp restarted on the same home keeps the alarm and its ack, raises it once only."""
    async with running_app(home, fleet(HOT)) as app:
        core = core_of(app)
        report(core, "d1", 31, 32)
        assert len(core.alarms.active()) == 1
        ack = "/api/v1/namespaces/default/devices/d1/alarms/too-hot/ack"
        status, _ = await call(app, "POST", ack, b'{"by": "night shift"}')
        assert status == 200
    with EdgeStore.open(home / "state" / "edge.db") as store:
        (row,) = store.list_alarms()
        assert (row.rule, row.acknowledged_by, row.cleared_ms) == ("too-hot", "night shift", None)
    async with running_app(home) as app:
        core = core_of(app)
        (alarm,) = core.alarms.active("default/d1")
        assert (alarm.rule, alarm.acknowledged_by, alarm.raised_ms) == (
            "too-hot", "night shift", 2000,
        )  # fmt: skip
        assert core.engine.active_alarms("default/d1") == [("too-hot", "temperature")]
        report(core, "d1", 33, 34, 35, start_ms=10_000)
        assert core.alarms.counters.raised == 0
        report(core, "d1", 20, start_ms=20_000)
        assert core.alarms.active() == []
        assert await alarm_events(app) == ["AlarmRaisedx1", "AlarmAcknowledgedx1", "AlarmClearedx1"]


async def test_a_deleted_device_or_removed_rule_drops_its_alarms(home: Path) -> None:
    """Deleting d2 drops its alarm and rows; a model without too-cold drops d1's too-cold alarm."""
    async with running_app(home, fleet(HOT, LOW)) as app:
        core = core_of(app)
        report(core, "d1", 1)
        report(core, "d2", 1)
        assert [(a.device, a.rule) for a in core.alarms.active()] == [
            ("d1", "too-cold"), ("d2", "too-cold"),
        ]  # fmt: skip
        assert await core.delete_device("default", "d2")
        await core.apply(model(HOT))
        assert core.alarms.active() == []
        assert core.engine.active_alarms("default/d1") == []
        await core.alarms.flush()
    with EdgeStore.open(home / "state" / "edge.db") as store:
        assert store.list_alarms() == []


async def test_alarms_of_a_rule_gone_while_stopped_are_dropped_on_start(home: Path) -> None:
    """A stored alarm whose rule the restarted edge does not know is dropped, not restored."""
    async with running_app(home, fleet(HOT)) as app:
        report(core_of(app), "d1", 31, 32)
    with EdgeStore.open(home / "state" / "edge.db") as store:
        (row,) = store.list_alarms()
        store.put_alarms([msgspec.structs.replace(row, rule="renamed")], max_cleared=10)
    async with running_app(home) as app:
        assert core_of(app).alarms.active() == []
    with EdgeStore.open(home / "state" / "edge.db") as store:
        assert store.list_alarms() == []


async def test_rest_errors_are_statuses_naming_what_is_wrong(home: Path) -> None:
    """404 for an unknown device or an alarm not active, 400 for a bad body or severity."""
    async with running_app(home, fleet(HOT)) as app:
        base = "/api/v1/namespaces/default/devices"
        status, body = await call(app, "POST", f"{base}/d1/alarms/too-hot/ack", b"")
        assert (status, body["kind"], body["reason"]) == (404, "Status", "NotFound")
        assert 'alarm "too-hot" is not active on device default/d1' in body["message"]
        status, body = await call(app, "GET", f"{base}/nope/alarms")
        assert (status, body["reason"]) == (404, "NotFound")
        assert '"nope" not found' in body["message"]
        status, body = await call(app, "POST", f"{base}/nope/alarms/too-hot/ack", b"{}")
        assert status == 404
        report(core_of(app), "d1", 31, 32)
        ack = f"{base}/d1/alarms/too-hot/ack"
        for sent, field in (
            (b"{", None),
            (b"[1]", None),
            (b'{"who": 1}', "who"),
            (b'{"by": 3}', "by"),
        ):
            status, body = await call(app, "POST", ack, sent)
            assert (status, body["kind"]) == (400, "Status"), sent
            if field is not None:
                assert body["details"]["causes"][0]["field"] == field
        status, body = await call(app, "GET", "/api/v1/alarms?severity=loud")
        assert status == 400
        assert body["details"]["causes"][0]["field"] == "severity"
        status, body = await call(app, "POST", ack, b"by=x", {"Content-Type": "text/plain"})
        assert (status, body["kind"]) == (403, "Status")
        assert core_of(app).alarms.active()[0].acknowledged_by is None
        status, body = await call(app, "POST", ack, None)
        assert (status, body["acknowledged_by"]) == (200, "127.0.0.1")


async def test_metrics_count_active_alarms_by_severity(home: Path) -> None:
    """twinplane_alarms_active{severity} follows raises and clears; the totals only grow."""
    async with running_app(home, fleet(HOT, LOW)) as app:
        core = core_of(app)
        report(core, "d1", 31, 32)
        report(core, "d2", 1)
        async with aiohttp.ClientSession() as http, http.get(app.rest_url + "/metrics") as resp:
            text = await resp.text()
        assert metric(text, 'twinplane_alarms_active{severity="critical"}') == 1
        assert metric(text, 'twinplane_alarms_active{severity="warning"}') == 1
        assert metric(text, 'twinplane_alarms_active{severity="info"}') == 0
        report(core, "d2", 10, start_ms=9000)
        async with aiohttp.ClientSession() as http, http.get(app.rest_url + "/metrics") as resp:
            text = await resp.text()
        assert metric(text, 'twinplane_alarms_active{severity="warning"}') == 0
        assert metric(text, "twinplane_alarms_raised_total") == 2
        assert metric(text, "twinplane_alarms_cleared_total") == 1


async def test_a_failing_alarm_write_keeps_the_rows_and_never_stops_ingestion(home: Path) -> None:
    """With the alarms table gone, raises and clears go on in memory; the rows land later."""
    async with running_app(home, fleet(HOT)) as app:
        core = core_of(app)
        db = app.config.db_path
        with raw(db) as conn:
            conn.execute("DROP TABLE alarms")
        report(core, "d1", 31, 32)
        assert len(core.alarms.active()) == 1
        with pytest.raises(StoreError):
            await core.alarms.flush()
        assert core.alarms.counters.write_failures == 1
        report(core, "d1", 20, start_ms=5000)
        assert core.alarms.active() == []
        create = next(s for m in migrations.MIGRATIONS for s in m.statements if "TABLE alarms" in s)
        with raw(db) as conn:
            conn.execute(create)
        await core.alarms.flush()
    with EdgeStore.open(db) as store:
        (row,) = store.list_alarms()
        assert (row.rule, row.raised_ms, row.cleared_ms) == ("too-hot", 2000, 5000)
