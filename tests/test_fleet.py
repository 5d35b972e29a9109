"""The simulated thermostat fleet's manifests (``twinplane up``, ``twinplane bench scale``)."""

from __future__ import annotations

import json

from twinplane.edge.core import engine_specs
from twinplane.fleet import (
    MAX_PROPERTIES,
    MODEL_NAME,
    TEMPERATURE_RAMP,
    device_manifests,
    registers_for,
)
from twinplane.manifests.load import load_strict
from twinplane.sim.modbus import Ramp
from twinplane.twin import Engine


def test_manifests_cover_every_property() -> None:
    """Generated manifests have one Device per address and the requested properties."""
    doc = json.loads(device_manifests([(5020, 1), (5020, 2)], properties=6))
    model, *devices = doc["items"]
    assert [p["name"] for p in model["spec"]["properties"]][-2:] == ["reg-1", "reg-2"]
    assert [d["spec"]["protocol"]["configData"]["slaveID"] for d in devices] == [1, 2]
    assert all(len(d["spec"]["properties"]) == 6 for d in devices)


def test_the_largest_fleet_is_valid_and_fits_the_simulator() -> None:
    """At MAX_PROPERTIES the manifests validate, and every register is within registers_for."""
    text = device_manifests([(5020, 1)], properties=MAX_PROPERTIES)
    loaded = load_strict(text)
    (model,) = loaded.models
    (device,) = loaded.devices
    assert model.name == MODEL_NAME
    assert len(device.spec.properties) == MAX_PROPERTIES
    props = json.loads(text)["items"][1]["spec"]["properties"]
    offsets = [p["visitors"]["configData"]["offset"] for p in props]
    assert max(offsets) < registers_for(MAX_PROPERTIES)
    assert registers_for(4) == 100


def test_the_sample_alarm_rule_raises_and_clears_on_the_temperature_ramp() -> None:
    """The fleet's too-hot rule, in the edge engine, raises and clears as make run's ramp moves."""
    loaded = load_strict(device_manifests([(5020, 1)], properties=4))
    (model,) = loaded.models
    (device,) = loaded.devices
    engine = Engine()
    engine.upsert_device(device.id, engine_specs(device, model))
    ramp = Ramp(*TEMPERATURE_RAMP)
    edges: list[tuple[str, bool]] = []
    for second in range(41):  # one whole wave: 28.0 up to 32.0 and back
        value = ramp.at(float(second)) * 0.1
        changes = engine.apply_reported(device.id, [("temperature", f"{value:.1f}", second + 1)])
        edges += [(rule, raised) for _, rule, _, raised, _, _, _ in changes.alarms()]
    assert edges == [("too-hot", True), ("too-hot", False)]
