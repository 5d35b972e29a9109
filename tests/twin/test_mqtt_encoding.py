"""KubeEdge MQTT twin payloads: result, document and delta messages."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
from twinplane.twin import Changes

from .engine_strategies import UUID4, both, change_sets, ordered

pytestmark = pytest.mark.engine

NOW = 1_700_000_000_123


def assert_same_mqtt(got: Changes, want: ref.ReferenceChanges) -> None:
    """The engine's publications equal the reference's, key order included.

    Same topics in the same order; each payload, parsed, equals the reference's; event ids are
    distinct version 4 UUIDs.
    """
    published = got.to_mqtt(NOW)
    expected = want.mqtt_messages(NOW)
    assert [topic for topic, _ in published] == [topic for topic, _ in expected]
    ids = []
    for (_, payload), (_, body) in zip(published, expected, strict=True):
        message = json.loads(payload)
        assert UUID4.fullmatch(message["event_id"]), message["event_id"]
        ids.append(message.pop("event_id"))
        assert ordered(message) == ordered({k: v for k, v in body.items() if k != "event_id"})
    assert len(set(ids)) == len(ids)


@given(st.data())
def test_mqtt_payloads_match_reference(data: st.DataObject) -> None:
    """to_mqtt publishes per device its result, document and delta, as the reference says."""
    for got, want in change_sets(data):
        assert_same_mqtt(got, want)


def test_mqtt_payload_example() -> None:
    """A reported value and a different desired one give KubeEdge's result/document/delta."""
    engine, model = both([{"name": "sp", "type": "INT"}], "ns/pump")
    engine.apply_reported("ns/pump", [("sp", "20", 5)])
    model.apply_reported("ns/pump", [("sp", "20", 5)])
    got = engine.set_desired("ns/pump", {"sp": 22}, 7)
    assert_same_mqtt(got, model.set_desired("ns/pump", {"sp": 22}, 7))
    topics = [topic for topic, _ in got.to_mqtt(NOW)]
    assert topics == [
        "$hw/events/device/ns/pump/twin/update/result",
        "$hw/events/device/ns/pump/twin/update/document",
        "$hw/events/device/ns/pump/twin/update/delta",
    ]
    twin = {
        "expected": {"value": "22", "metadata": {"timestamp": 7}},
        "actual": {"value": "20", "metadata": {"timestamp": 5}},
        "optional": True,
        "metadata": {"type": "int"},
    }
    delta = json.loads(got.to_mqtt(NOW)[2][1])
    assert {k: delta[k] for k in ("timestamp", "twin", "delta")} == {
        "timestamp": NOW,
        "twin": {"sp": twin},
        "delta": {"sp": "22"},
    }


def test_property_names_are_escaped_in_json() -> None:
    """Property names with quotes, backslashes and control characters stay valid JSON."""
    name = 'a"b\\c\nd\x01é'
    engine, model = both([{"name": name, "type": "STRING"}])
    got = engine.apply_reported("ns/dev", [(name, "x", 1)])
    assert_same_mqtt(got, model.apply_reported("ns/dev", [(name, "x", 1)]))
    assert name in json.loads(got.to_mqtt(NOW)[0][1])["twin"]


def test_device_without_namespace_is_in_default() -> None:
    """A device id without ``/`` publishes under namespace ``default``."""
    engine, _ = both([{"name": "x", "type": "INT"}], "pump")
    topic, _ = engine.apply_reported("pump", [("x", "1", 1)]).to_mqtt(NOW)[0]
    assert topic == "$hw/events/device/default/pump/twin/update/result"
