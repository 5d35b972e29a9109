"""Method calls over MQTT on a real mosquitto: ``…/method/call`` in, ``…/method/result`` out.

The device's state and reported values arrive over MQTT too (``…/state/update``,
``…/twin/update`` actual values), so the whole call runs on the broker.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge.test_mqtt_bridge import (  # noqa: F401 - the session broker's fixtures
    WAIT,
    Inbox,
    bridge_of,
    broker,
    inbox_on,
    mosquitto_binary,
)
from edge_helpers import model_yaml, running_app
from mqtt_broker import Mosquitto
from twinplane.edge.app import EdgeApp

NODE = "node-a"
DEVICE = "$hw/events/device/default/thermo-1"
CALL, RESULT = f"{DEVICE}/method/call", f"{DEVICE}/method/result"
METHODS = json.dumps({"setTemp": {"parameters": {"temp": {"minimum": 5, "maximum": 30}}}})
MANIFESTS = "---\n".join(
    [
        model_yaml("thermo", "modbus", "{name: temp, type: INT, accessMode: ReadWrite}"),
        f"""\
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata:
  name: thermo-1
  annotations: {{twinplane.io/methods: {json.dumps(METHODS)}}}
spec:
  deviceModelRef: {{name: thermo}}
  nodeName: {NODE}
  protocol: {{protocolName: modbus}}
  properties:
  - name: temp
  methods:
  - {{name: setTemp, propertyNames: [temp]}}
""",
    ]
)


@pytest.fixture
async def edge(tmp_path: Path, broker: Mosquitto) -> AsyncIterator[EdgeApp]:  # noqa: F811
    """A device manager with thermo-1 (method setTemp) bridged to the session broker."""
    async with running_app(tmp_path, MANIFESTS, mqtt_url=broker.url, node_name=NODE) as app:
        async with asyncio.timeout(WAIT):
            await bridge_of(app).wait_connected()
        yield app


@pytest.fixture
async def mqtt(broker: Mosquitto) -> AsyncIterator[Inbox]:  # noqa: F811
    """A test client on the session broker."""
    async with inbox_on(broker.port) as inbox:
        yield inbox


def with_id(call_id: str) -> Any:  # noqa: ANN401 - a predicate on decoded JSON
    """A predicate: the answer is about call ``call_id``."""
    return lambda body: body.get("id") == call_id


async def online(mqtt: Inbox) -> None:
    """The device reports itself online over MQTT (and the edge has taken it)."""
    await mqtt.send(f"{DEVICE}/state/update", {"event_id": "s-1", "state": "online"})
    await mqtt.get(f"{DEVICE}/state/update/result", lambda b: b.get("event_id") == "s-1")


async def test_call_is_acknowledged_then_answered_with_its_outcome(
    edge: EdgeApp, mqtt: Inbox
) -> None:
    """A call is acknowledged Pending, then answered Succeeded once the device reports the value."""
    await online(mqtt)
    await mqtt.send(
        CALL, {"id": "m-1", "method": "setTemp", "args": {"temp": 22}, "timeout": "10s"}
    )
    ack = await mqtt.get(RESULT, with_id("m-1"))
    assert ack["state"] == "Pending"
    assert ack["source"] == "mqtt"
    assert ack["timeoutMs"] == 10_000
    twin = {"event_id": "t-1", "twin": {"temp": {"actual": {"value": "22"}}}}
    await mqtt.send(f"{DEVICE}/twin/update", twin)
    outcome = await mqtt.get(RESULT, with_id("m-1"))
    assert outcome["state"] == "Succeeded"
    assert outcome["result"] == {"reported": {"temp": "22"}}
    assert isinstance(outcome["timestamp"], int)


async def test_offline_device_without_ttl_is_answered_failed_at_once(
    edge: EdgeApp, mqtt: Inbox
) -> None:
    """A call to a device that is not online, without ttl, gets one answer: Failed Offline."""
    await mqtt.send(CALL, {"id": "m-2", "method": "setTemp", "args": {"temp": 20}})
    outcome = await mqtt.get(RESULT, with_id("m-2"))
    assert outcome["state"] == "Failed"
    assert outcome["error"]["code"] == "Offline"


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        (b"{not json", "BadRequest", ""),
        (b"[1]", "BadRequest", ""),
        (json.dumps({"id": "r", "args": {}}).encode(), "BadRequest", "method"),
        (json.dumps({"id": "r", "method": "setTemp", "args": [1]}).encode(), "BadRequest", "args"),
        (json.dumps({"id": "r", "method": "setTemp", "ttl": "soon"}).encode(), "BadRequest", "ttl"),
        (json.dumps({"id": "r", "method": "setTemp", "x": 1}).encode(), "BadRequest", "x"),
        (json.dumps({"id": "r", "method": "nope"}).encode(), "NotFound", "method"),
        (
            json.dumps({"id": "r", "method": "setTemp", "args": {"temp": 99}}).encode(),
            "InvalidArgument",
            "args.temp",
        ),
    ],
)
async def test_garbled_requests_are_answered_rejected_naming_the_field(
    edge: EdgeApp, mqtt: Inbox, payload: bytes, code: str, field: str
) -> None:
    """A request that is not a call is answered Rejected, naming the field; the bridge goes on."""
    await mqtt.send(CALL, payload)
    answer = await mqtt.get(RESULT, lambda b: b.get("state") == "Rejected")
    assert answer["error"]["code"] == code
    assert answer["error"]["field"] == field
    assert answer["device"] == "thermo-1"
    assert bridge_of(edge).connected
