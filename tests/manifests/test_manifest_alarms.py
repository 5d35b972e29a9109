"""Alarm rules of a model and device: the implied range rule, the annotation, errors by path."""

from __future__ import annotations

import json
from typing import Any

import pytest
from manifest_cases import device_doc, model_doc

from twinplane.edge.core import engine_specs
from twinplane.errors import SpecError
from twinplane.manifests import Device, DeviceModel, load_strict
from twinplane.manifests.alarms import ANNOTATION, device_rules
from twinplane.twin import Engine

ANN = f'metadata.annotations["{ANNOTATION}"]'


def _pair(
    model_rules: list[Any] | None = None, device_rules_: list[Any] | None = None
) -> tuple[Device, DeviceModel]:
    model, device = model_doc(), device_doc()
    if model_rules is not None:
        model["metadata"]["annotations"] = {ANNOTATION: json.dumps(model_rules)}
    if device_rules_ is not None:
        device["metadata"]["annotations"] = {ANNOTATION: json.dumps(device_rules_)}
    result = load_strict(json.dumps(device) + json.dumps(model))
    return result.devices[0], result.models[0]


def _error(model_rules: object) -> SpecError:
    model = model_doc()
    model["metadata"]["annotations"] = {ANNOTATION: json.dumps(model_rules)}
    loaded = load_strict(json.dumps(model)).models[0]
    with pytest.raises(SpecError) as info:
        device_rules(None, loaded)
    return info.value


HOT = {"name": "hot", "property": "temperature", "condition": "above", "threshold": 30}


def test_minimum_and_maximum_imply_an_outside_rule() -> None:
    """A model property with minimum and maximum gets a `<property>-range` outside rule."""
    device, model = _pair()
    rules = {r.name: r for r in device_rules(device, model)}
    assert rules["temperature-range"].spec == {
        "name": "temperature-range",
        "condition": "outside",
        "low": 0.0,
        "high": 100.0,
    }


def test_annotation_rules_with_all_fields() -> None:
    """A rule's fields map onto the engine's spec; severity and message are kept beside it."""
    rule = HOT | {"hysteresis": 1, "raiseAfter": 3, "clearAfter": 2, "severity": "critical"}
    device, model = _pair([rule])
    got = {r.name: r for r in device_rules(device, model)}["hot"]
    assert got.spec == {
        "name": "hot",
        "condition": "above",
        "threshold": 30.0,
        "hysteresis": 1.0,
        "raise_after": 3,
        "clear_after": 2,
    }
    assert (got.property, got.severity, got.message) == (
        "temperature",
        "critical",
        "temperature above 30.0",
    )


def test_a_device_overrides_a_model_rule_by_name_and_adds_its_own() -> None:
    """The Device's annotation replaces the model's rule of the same name and adds new ones."""
    rate = {"name": "jump", "property": "temperature", "condition": "rate", "threshold": 5}
    device, model = _pair([HOT], [HOT | {"threshold": 40}, rate])
    rules = {r.name: r.spec for r in device_rules(device, model)}
    assert rules["hot"].get("threshold") == 40.0
    assert rules["jump"]["condition"] == "rate"


@pytest.mark.parametrize(
    ("rules", "path"),
    [
        ([HOT, HOT | {"threshold": "x"}], f"{ANN}[1].threshold"),
        ([HOT | {"property": "nope"}], f"{ANN}[0].property"),
        ([HOT | {"condition": "sideways"}], f"{ANN}[0].condition"),
        (
            [{"name": "b", "property": "temperature", "condition": "outside", "low": 5}],
            f"{ANN}[0].high",
        ),
        ([HOT | {"raiseAfter": 0}], f"{ANN}[0].raiseAfter"),
        ([HOT | {"hysteresis": -1}], f"{ANN}[0].hysteresis"),
        ([HOT | {"severity": "loud"}], f"{ANN}[0].severity"),
        ([HOT | {"colour": "red"}], f"{ANN}[0].colour"),
        ([HOT, HOT], f"{ANN}[1].name"),
        ({"not": "a list"}, ANN),
    ],
)
def test_invalid_rules_name_the_path(rules: object, path: str) -> None:
    """Each invalid rule is refused with the path of the offending field."""
    assert _error(rules).path == path


def test_a_rule_on_a_non_numeric_property_is_refused() -> None:
    """A rule may only watch an int, float or double property."""
    model = model_doc()
    model["spec"]["properties"].append(
        {"name": "label", "type": "STRING", "accessMode": "ReadOnly"}
    )
    model["metadata"]["annotations"] = {ANNOTATION: json.dumps([HOT | {"property": "label"}])}
    loaded = load_strict(json.dumps(model)).models[0]
    with pytest.raises(SpecError, match="needs int, float or double") as info:
        device_rules(None, loaded)
    assert info.value.path == f"{ANN}[0].property"


def test_the_edge_engine_evaluates_the_rules_of_engine_specs() -> None:
    """engine_specs carries the rules; the engine returns the raise and the clear as transitions."""
    device, model = _pair([HOT | {"hysteresis": 1, "raiseAfter": 2}])
    engine = Engine()
    engine.upsert_device(device.id, engine_specs(device, model))
    seen: list[tuple[str, str, str, bool, float, float, int]] = []
    for i, x in enumerate([31.0, 31.5, 29.5, 28.0]):
        seen += engine.apply_reported(device.id, [("temperature", str(x), 1000 + i)]).alarms()
    assert [(r, raised, v) for _, r, _, raised, v, _, _ in seen] == [
        ("hot", True, 31.5),
        ("hot", False, 28.0),
    ]
    assert (seen[0][0], seen[0][5], seen[0][6]) == (device.id, 30.0, 1001)
    engine.restore_alarm(device.id, "hot", True)
    assert engine.active_alarms(device.id) == [("hot", "temperature")]
