"""The MQTT bridge against a real mosquitto: KubeEdge's $hw/events topics, field by field.

A session fixture starts ``mosquitto`` on a free loopback port (it fails when ``CI`` is set and
the binary is missing, and skips otherwise); each test runs a real :class:`EdgeApp` (SQLite,
DMI over a Unix socket, REST) with the bridge, and talks to it through an aiomqtt client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from dmi_helpers import manager_stub, reported_twin, status_request
from edge_helpers import THERMO_PROPERTIES, device_yaml, free_port, model_yaml, running_app
from mqtt_broker import Mosquitto, running_mosquitto
from mqtt_broker import mosquitto_binary as find_mosquitto
from twinplane.edge.app import EdgeApp
from twinplane.edge.mqtt_bridge import MqttBridge
from twinplane.edge.write_errors import WriteOutcome

NODE = "node-a"
DEVICE = "$hw/events/device/default/thermo-1"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
WAIT = 10.0
"""Seconds any single wait may take before the test fails."""

MANIFESTS = "---\n".join(
    [
        model_yaml(
            "thermo",
            "modbus",
            "{name: temp, type: INT, accessMode: ReadWrite}",
            THERMO_PROPERTIES["enabled"],
            THERMO_PROPERTIES["label"],
        ),
        device_yaml("thermo-1", "thermo", node="node-a"),
        device_yaml("thermo-2", "thermo"),
        device_yaml("thermo-3", "thermo", node="node-b"),
    ]
)


# --- the broker --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mosquitto_binary() -> str:
    """The mosquitto binary; missing, the test fails under CI and is skipped elsewhere."""
    return find_mosquitto()


@pytest.fixture(scope="session")
def broker(mosquitto_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One mosquitto for the session."""
    with running_mosquitto(tmp_path_factory.mktemp("mosquitto"), mosquitto_binary) as server:
        yield server


# --- the device manager and a test client -------------------------------------------------------


@contextlib.asynccontextmanager
async def running_edge(home: Path, url: str) -> AsyncIterator[EdgeApp]:
    """A started device manager with the test devices, its bridge connected."""
    async with running_app(home, MANIFESTS, mqtt_url=url, node_name=NODE) as app:
        async with asyncio.timeout(WAIT):
            await bridge_of(app).wait_connected()
        yield app


def bridge_of(app: EdgeApp) -> MqttBridge:
    """The app's MQTT bridge."""
    assert isinstance(app.mqtt, MqttBridge)
    return app.mqtt


async def delivered(bridge: MqttBridge) -> dict[str, int]:
    """Waits until the bridge is connected and has published its queue; its counters then."""
    async with asyncio.timeout(WAIT):
        await bridge.wait_connected()
        await bridge.flush()
    return bridge.stats()


@pytest.fixture
async def edge(tmp_path: Path, broker: Mosquitto) -> AsyncIterator[EdgeApp]:
    """A device manager bridged to the session broker."""
    async with running_edge(tmp_path, broker.url) as app:
        yield app


class Inbox:
    """A test client subscribed to ``$hw/events/#``, keeping every message it receives."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.messages: list[tuple[str, Any]] = []
        self._arrived = asyncio.Event()

    async def run(self) -> None:
        """Receives until cancelled."""
        async for message in self.client.messages:
            payload = message.payload
            assert isinstance(payload, bytes)
            try:
                body: Any = json.loads(payload)
            except ValueError:  # our own malformed requests
                body = payload
            self.messages.append((message.topic.value, body))
            self._arrived.set()

    async def send(self, topic: str, body: object) -> None:
        """Publishes ``body`` (bytes as they are, anything else as JSON) with QoS 1."""
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        await self.client.publish(topic, payload, qos=1)

    async def get(
        self, topic: str, where: Callable[[Any], bool] = lambda _: True
    ) -> dict[str, Any]:
        """The first (oldest) message on ``topic`` matching ``where``, waiting for it."""
        async with asyncio.timeout(WAIT):
            while True:
                for i, (t, body) in enumerate(self.messages):
                    if t == topic and where(body):
                        del self.messages[i]
                        assert isinstance(body, dict)
                        return body
                self._arrived.clear()
                await self._arrived.wait()

    async def ask(self, topic: str, body: dict[str, Any]) -> dict[str, Any]:
        """Sends a request and returns the answer on ``topic/result`` echoing its event id."""
        await self.send(topic, body)
        event_id = body["event_id"]
        return await self.get(f"{topic}/result", lambda b: b.get("event_id") == event_id)

    def on(self, topic: str) -> list[Any]:
        """Bodies received on ``topic`` and not taken yet."""
        return [body for t, body in self.messages if t == topic]


@contextlib.asynccontextmanager
async def inbox_on(port: int) -> AsyncIterator[Inbox]:
    """A connected, subscribed test client."""
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"test-{uuid.uuid4()}") as client:
        await client.subscribe("$hw/events/#", qos=1)
        inbox = Inbox(client)
        task = asyncio.create_task(inbox.run())
        try:
            yield inbox
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.fixture
async def mqtt(broker: Mosquitto) -> AsyncIterator[Inbox]:
    """A test client on the session broker."""
    async with inbox_on(broker.port) as inbox:
        yield inbox


def event_id() -> str:
    """A fresh request event id."""
    return f"req-{uuid.uuid4()}"


def assert_msg_twin(twin: dict[str, Any], twin_type: str, **values: str) -> None:
    """``twin`` is a MsgTwin of type ``twin_type`` with exactly the sides given (values)."""
    sides = {"expected", "actual"} & set(values)
    assert set(twin) == {*sides, "optional", "metadata"}
    assert twin["optional"] is True
    assert twin["metadata"] == {"type": twin_type}
    for side in sides:
        assert set(twin[side]) == {"value", "metadata"}
        assert twin[side]["value"] == values[side]
        assert set(twin[side]["metadata"]) == {"timestamp"}
        assert isinstance(twin[side]["metadata"]["timestamp"], int)


def assert_base(body: dict[str, Any], *keys: str, event: str | None = None) -> None:
    """``body`` has ``event_id``, an int ``timestamp`` and exactly ``keys`` besides."""
    assert set(body) == {"event_id", "timestamp", *keys}
    assert isinstance(body["timestamp"], int)
    assert body["timestamp"] > 1_600_000_000_000  # milliseconds
    if event is not None:
        assert body["event_id"] == event


# --- twin/update --------------------------------------------------------------------------------


async def test_twin_update_answers_result_document_and_delta(edge: EdgeApp, mqtt: Inbox) -> None:
    """twin/update with expected and actual gets a result, a document and a delta in spec shape."""
    topic = f"{DEVICE}/twin/update"
    req = event_id()
    twin = {"expected": {"value": "25"}, "actual": {"value": "20"}, "metadata": {"type": "int"}}
    result = await mqtt.ask(topic, {"event_id": req, "timestamp": 1, "twin": {"temp": twin}})

    assert_base(result, "twin", event=req)
    assert set(result["twin"]) == {"temp"}
    current = result["twin"]["temp"]
    assert_msg_twin(current, "int", expected="25", actual="20")

    document = await mqtt.get(f"{topic}/document", lambda b: b["event_id"] == req)
    assert_base(document, "twin")
    assert document["twin"] == {"temp": {"last": None, "current": current}}

    delta = await mqtt.get(f"{topic}/delta")
    assert_base(delta, "twin", "delta")
    assert UUID.match(delta["event_id"])
    assert delta["delta"] == {"temp": "25"}
    assert delta["twin"] == {"temp": current}

    assert edge.core is not None
    stored = edge.core.twins("default/thermo-1")["temp"]
    assert stored["desired"] is not None
    assert stored["desired"]["value"] == "25"
    assert stored["reported"] is not None
    assert stored["reported"]["value"] == "20"


async def test_twin_update_in_sync_sends_no_delta(edge: EdgeApp, mqtt: Inbox) -> None:
    """An update that makes actual equal expected is answered without a delta."""
    del edge
    topic = f"{DEVICE}/twin/update"
    first = event_id()
    await mqtt.ask(topic, {"event_id": first, "twin": {"temp": {"expected": {"value": "7"}}}})
    before = await mqtt.get(f"{topic}/document", lambda b: b["event_id"] == first)
    await mqtt.get(f"{topic}/delta")

    second = event_id()
    result = await mqtt.ask(
        topic, {"event_id": second, "twin": {"temp": {"actual": {"value": "7"}}}}
    )
    assert_msg_twin(result["twin"]["temp"], "int", expected="7", actual="7")
    document = await mqtt.get(f"{topic}/document", lambda b: b["event_id"] == second)
    assert document["twin"]["temp"]["last"] == before["twin"]["temp"]["current"]
    assert document["twin"]["temp"]["current"] == result["twin"]["temp"]
    # Answers leave in order: once a later answer is in, a delta would have been too.
    await mqtt.ask(f"{DEVICE}/twin/get", {"event_id": event_id()})
    assert mqtt.on(f"{topic}/delta") == []


async def test_twin_update_null_deletes_desired(edge: EdgeApp, mqtt: Inbox) -> None:
    """A null twin value deletes the desired value; the result and document say null."""
    del edge
    topic = f"{DEVICE}/twin/update"
    await mqtt.ask(
        topic, {"event_id": event_id(), "twin": {"enabled": {"expected": {"value": "true"}}}}
    )
    req = event_id()
    result = await mqtt.ask(topic, {"event_id": req, "timestamp": 0, "twin": {"enabled": None}})
    assert_base(result, "twin", event=req)
    assert result["twin"] == {"enabled": None}
    document = await mqtt.get(f"{topic}/document", lambda b: b["event_id"] == req)
    entry = document["twin"]["enabled"]
    assert_msg_twin(entry["last"], "boolean", expected="true")
    assert entry["current"] is None


async def test_changes_from_dmi_report_are_published(edge: EdgeApp, mqtt: Inbox) -> None:
    """A DMI ReportDeviceStatus over the Unix socket produces result and document messages."""
    request = status_request(
        "thermo-1",
        reported_twin("temp", "21", {"type": "int"}),
        reported_twin("label", "hall", {"type": "string"}),
    )
    async with manager_stub(f"unix://{edge.config.socket_path}") as stub:
        await stub.ReportDeviceStatus(request, timeout=WAIT)

    result = await mqtt.get(f"{DEVICE}/twin/update/result")
    assert_base(result, "twin")
    assert UUID.match(result["event_id"])
    assert set(result["twin"]) == {"temp", "label"}
    assert_msg_twin(result["twin"]["temp"], "int", actual="21")
    assert_msg_twin(result["twin"]["label"], "string", actual="hall")
    document = await mqtt.get(f"{DEVICE}/twin/update/document")
    assert_base(document, "twin")
    assert document["twin"]["temp"] == {"last": None, "current": result["twin"]["temp"]}
    assert document["twin"]["label"] == {"last": None, "current": result["twin"]["label"]}


# --- twin/get, state, membership ---------------------------------------------------------------


async def test_twin_get_answers_every_twin(edge: EdgeApp, mqtt: Inbox) -> None:
    """twin/get is answered on twin/get/result with every twin as MsgTwin, values as strings."""
    assert edge.core is not None
    edge.core.apply_reported("default/thermo-1", [("temp", "19", 1_700_000_000_000)])
    req = event_id()
    result = await mqtt.ask(f"{DEVICE}/twin/get", {"event_id": req})
    assert_base(result, "twin", event=req)
    assert list(result["twin"]) == ["temp", "enabled", "label"]
    assert_msg_twin(result["twin"]["temp"], "int", actual="19")
    assert result["twin"]["temp"]["actual"]["metadata"]["timestamp"] == 1_700_000_000_000
    assert_msg_twin(result["twin"]["enabled"], "boolean")
    assert_msg_twin(result["twin"]["label"], "string")


def write_error(body: dict[str, Any]) -> object:
    """The ``last_write_error`` of temp in a result (``"absent"`` when it has none)."""
    return ((body.get("twin") or {}).get("temp") or {}).get("last_write_error", "absent")


async def test_a_write_error_is_published_and_answered_with_the_twin(
    edge: EdgeApp, mqtt: Inbox
) -> None:
    """A failed desired write is a twin/update/result with last_write_error; twin/get shows it."""
    assert edge.core is not None
    await edge.core.set_desired("default/thermo-1", {"temp": "25"})
    failed = WriteOutcome("default/thermo-1", "temp", "25", False, "refused", 1, 1_700_000_000_000)
    assert await edge.core.record_write_outcomes([failed]) == (1, 0)
    error = {"reason": "refused", "time": 1_700_000_000_000, "attempts": 1, "value": "25"}
    result = await mqtt.get(f"{DEVICE}/twin/update/result", lambda b: write_error(b) != "absent")
    assert_base(result, "twin")
    assert UUID.match(result["event_id"])
    assert list(result["twin"]) == ["temp"]
    assert result["twin"]["temp"]["last_write_error"] == error
    assert result["twin"]["temp"]["expected"]["value"] == "25"
    got = await mqtt.ask(f"{DEVICE}/twin/get", {"event_id": event_id()})
    assert got["twin"]["temp"]["last_write_error"] == error
    assert "last_write_error" not in got["twin"]["enabled"]
    ok = WriteOutcome("default/thermo-1", "temp", "25", True, "", 1, 1_700_000_000_001)
    await edge.core.record_write_outcomes([ok])
    cleared = await mqtt.get(f"{DEVICE}/twin/update/result", lambda b: write_error(b) is None)
    assert cleared["twin"]["temp"]["last_write_error"] is None
    got = await mqtt.ask(f"{DEVICE}/twin/get", {"event_id": event_id()})
    assert "last_write_error" not in got["twin"]["temp"]


async def test_state_update_answers_device_state(edge: EdgeApp, mqtt: Inbox) -> None:
    """state/update (``State`` or ``state``) is recorded and answered with the device's state."""
    topic = f"{DEVICE}/state/update"
    req = event_id()
    result = await mqtt.ask(topic, {"event_id": req, "timestamp": 1, "State": "online"})
    assert_base(result, "device", event=req)
    assert set(result["device"]) == {"name", "state", "lastOnlineTime"}
    assert result["device"]["name"] == "thermo-1"
    assert result["device"]["state"] == "online"
    assert RFC3339.match(result["device"]["lastOnlineTime"])

    result = await mqtt.ask(topic, {"event_id": event_id(), "state": "Unhealthy"})
    assert result["device"]["state"] == "unhealthy"
    assert edge.core is not None
    assert edge.core.states["default/thermo-1"].state == "unhealthy"

    refused = await mqtt.ask(topic, {"event_id": event_id(), "state": "exploded"})
    assert refused["code"] == 400


async def test_membership_get_lists_this_nodes_devices(edge: EdgeApp, mqtt: Inbox) -> None:
    """membership/get lists the devices of this node or of no node, without twins."""
    assert edge.core is not None
    await edge.core.report_state("default/thermo-1", "online")
    req = event_id()
    result = await mqtt.ask(f"$hw/events/node/{NODE}/membership/get", {"event_id": req})
    assert_base(result, "devices", event=req)
    devices = {d["id"]: d for d in result["devices"]}
    assert set(devices) == {"default/thermo-1", "default/thermo-2"}
    for device in devices.values():
        assert set(device) == {"id", "name", "description", "state", "last_online", "attributes"}
        assert device["attributes"] == {}
    assert devices["default/thermo-1"]["name"] == "thermo-1"
    assert devices["default/thermo-1"]["state"] == "online"
    assert RFC3339.match(devices["default/thermo-1"]["last_online"])
    assert devices["default/thermo-2"]["state"] == "unknown"


# --- errors ------------------------------------------------------------------------------------


def assert_error(body: dict[str, Any], code: int, event: str) -> None:
    """``body`` is an error answer with ``code`` for request ``event``."""
    assert_base(body, "code", "reason", event=event)
    assert body["code"] == code
    assert isinstance(body["reason"], str)
    assert body["reason"]


async def test_unknown_device_answers_404(edge: EdgeApp, mqtt: Inbox) -> None:
    """Requests about a device the manager does not know are answered with code 404."""
    del edge
    ghost = "$hw/events/device/default/ghost"
    requests: list[tuple[str, dict[str, Any]]] = [
        (f"{ghost}/twin/update", {"twin": {"temp": {"actual": {"value": "1"}}}}),
        (f"{ghost}/twin/get", {}),
        (f"{ghost}/state/update", {"state": "online"}),
    ]
    for topic, body in requests:
        req = event_id()
        assert_error(await mqtt.ask(topic, {"event_id": req, **body}), 404, req)


async def test_bad_requests_answer_400_and_change_nothing(edge: EdgeApp, mqtt: Inbox) -> None:
    """Malformed JSON, unknown properties and ill-typed values get 400; the bridge goes on."""
    assert edge.core is not None
    topic = f"{DEVICE}/twin/update"
    before = edge.core.twins("default/thermo-1")

    await mqtt.send(topic, b"{not json")
    assert_error(await mqtt.get(f"{topic}/result"), 400, "")
    await mqtt.send(f"{DEVICE}/twin/get", b"[1, 2]")
    assert_error(await mqtt.get(f"{DEVICE}/twin/get/result"), 400, "")

    bad: list[dict[str, Any]] = [
        {"nope": {"expected": {"value": "1"}}},
        {"temp": {"expected": {"value": "hot"}}},
        {"temp": {"expected": {"value": 25}}},
        {"temp": {"expected": {"value": "25"}}, "enabled": {"actual": {"value": "maybe"}}},
    ]
    for twin in bad:
        req = event_id()
        assert_error(await mqtt.ask(topic, {"event_id": req, "twin": twin}), 400, req)
    req = event_id()
    assert_error(await mqtt.ask(topic, {"event_id": req, "timestamp": 1}), 400, req)
    assert edge.core.twins("default/thermo-1") == before

    req = event_id()
    result = await mqtt.ask(topic, {"event_id": req, "twin": {"temp": {"actual": {"value": "3"}}}})
    assert_msg_twin(result["twin"]["temp"], "int", actual="3")
    stats = bridge_of(edge).stats()
    assert stats["rejected"] == 7
    assert stats["received"] >= 8


# --- delivery ----------------------------------------------------------------------------------


async def test_full_queue_drops_oldest_and_counts(edge: EdgeApp) -> None:
    """Without a broker, messages beyond the queue limit drop the oldest, counted."""
    assert edge.core is not None
    unreachable = MqttBridge(
        edge.core, f"mqtt://127.0.0.1:{free_port()}", node_name="other", queue_limit=3
    )
    await unreachable.start()
    try:
        for value in range(5):  # each report makes a result and a document
            edge.core.apply_reported("default/thermo-2", [("temp", str(value), 1)])
        stats = unreachable.stats()
        assert stats["dropped"] == 7
        assert stats["pending"] == 3
        assert stats["published"] == 0
        assert stats["connected"] == 0
    finally:
        await unreachable.stop()
    edge.core.apply_reported("default/thermo-2", [("temp", "9", 1)])
    assert unreachable.stats()["pending"] == 3  # a stopped bridge takes nothing more


async def test_bridge_survives_broker_restart(mosquitto_binary: str, tmp_path: Path) -> None:
    """After a broker restart on the same port the bridge reconnects and delivers everything."""
    server = Mosquitto(mosquitto_binary, tmp_path)
    server.start()
    try:
        async with running_edge(tmp_path / "edge", server.url) as app:
            assert app.core is not None
            bridge = bridge_of(app)
            server.stop()
            async with asyncio.timeout(WAIT):
                while bridge.connected:  # noqa: ASYNC110 - polling a flag the test cannot await
                    await asyncio.sleep(0.01)
            published = bridge.stats()["published"]
            app.core.apply_reported("default/thermo-1", [("temp", "11", 1)])
            assert bridge.stats()["pending"] == 2  # result and document, waiting

            server.start()
            stats = await delivered(bridge)
            assert stats["reconnects"] == 1
            assert stats["published"] == published + 2

            async with inbox_on(server.port) as mqtt:
                req = event_id()
                result = await mqtt.ask(f"{DEVICE}/twin/get", {"event_id": req})
                assert_msg_twin(result["twin"]["temp"], "int", actual="11")
                app.core.apply_reported("default/thermo-1", [("temp", "12", 2)])
                result = await mqtt.get(f"{DEVICE}/twin/update/result")
                assert_msg_twin(result["twin"]["temp"], "int", actual="12")
    finally:
        server.stop()


async def test_edge_starts_without_broker_and_connects_later(
    mosquitto_binary: str, tmp_path: Path
) -> None:
    """The device manager starts while the broker is down; the bridge connects once it is up."""
    server = Mosquitto(mosquitto_binary, tmp_path)
    try:
        async with running_app(tmp_path / "edge", MANIFESTS, mqtt_url=server.url) as app:
            assert app.core is not None
            bridge = bridge_of(app)
            assert not bridge.connected
            app.core.apply_reported("default/thermo-1", [("temp", "5", 1)])
            server.start()
            stats = await delivered(bridge)
            assert stats["published"] == 2
            assert stats["reconnects"] == 0
    finally:
        server.stop()


# --- device events ------------------------------------------------------------------------------


async def test_device_events_are_published_on_the_devices_events_topic(
    edge: EdgeApp, mqtt: Inbox
) -> None:
    """A state change is a device event on …/<ns>/<name>/events; a mapper's on the node's topic."""
    assert edge.core is not None
    await edge.core.report_state("default/thermo-1", "online")
    edge.core.events.emit(type="mapper", reason="MapperLost", severity="warning", device="m1")
    event = await mqtt.get("$hw/events/device/default/thermo-1/events")
    assert (event["type"], event["reason"], event["device"]) == (
        "state",
        "DeviceOnline",
        "thermo-1",
    )
    assert event["count"] == 1
    assert {"id", "seq", "first_ts_ms", "last_ts_ms", "body", "message"} <= set(event)
    mapper = await mqtt.get(f"$hw/events/node/{NODE}/events")
    assert (mapper["reason"], mapper["device"]) == ("MapperLost", "m1")


async def test_an_alarm_from_an_mqtt_report_is_published_on_the_events_topic(
    edge: EdgeApp, mqtt: Inbox
) -> None:
    """An actual value over MQTT past a rule raises AlarmRaised on …/events; back, AlarmCleared."""
    assert edge.core is not None
    rules = [{"name": "hot", "property": "temp", "condition": "above", "threshold": 30}]
    annotated = MANIFESTS.split("---\n")[0].replace(
        "metadata: {name: thermo, namespace: default}",
        "metadata: {name: thermo, namespace: default, annotations: {twinplane.io/alarms: "
        + json.dumps(json.dumps(rules))
        + "}}",
    )
    await edge.core.apply(annotated)
    topic = f"{DEVICE}/twin/update"
    for value in ("35", "20"):
        twin = {"actual": {"value": value}, "metadata": {"type": "int"}}
        await mqtt.send(topic, {"event_id": event_id(), "timestamp": 1, "twin": {"temp": twin}})
        event = await mqtt.get(f"{DEVICE}/events", lambda b: b["type"] == "alarm")
        reason = "AlarmRaised" if value == "35" else "AlarmCleared"
        assert (event["reason"], event["body"]["rule"], event["body"]["value"]) == (
            reason,
            "hot",
            35.0,
        )


async def test_events_toward_an_unreachable_broker_are_dropped_and_counted(edge: EdgeApp) -> None:
    """With no broker, emits still return at once; the bridge's queue drops the oldest, counted."""
    assert edge.core is not None
    unreachable = MqttBridge(
        edge.core, f"mqtt://127.0.0.1:{free_port()}", node_name="other", queue_limit=2
    )
    await unreachable.start()
    try:
        for i in range(5):
            assert edge.core.events.emit(type="comm", reason="CommunicationError", device=f"d{i}")
        stats = unreachable.stats()
        assert stats["events_queued"] == 5
        assert stats["dropped"] == 3
        assert stats["pending"] == 2
        assert edge.core.events.counters.published == 5
    finally:
        await unreachable.stop()
