"""The KubeEdge v1.22 model → instance override (spec §3.6)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from manifest_cases import config_data, device_doc, model_doc

from twinplane.errors import SpecError
from twinplane.manifests import Device, DeviceModel, load_strict, overridden_device


def _pair(device: dict[str, Any], model: dict[str, Any]) -> tuple[Device, DeviceModel]:
    result = load_strict(json.dumps(device) + json.dumps(model))
    return result.devices[0], result.models[0]


def _visitors(device: Device, name: str) -> tuple[str | None, dict[str, Any] | None]:
    prop = device.get_property(name)
    assert prop is not None
    assert prop.visitors is not None
    return prop.visitors.protocol_name, prop.visitors.config_data


def test_model_visitors_under_instance_keys() -> None:
    """Model visitors are the base; the instance's configData keys win one by one."""
    device, model = _pair(device_doc(), model_doc())
    result = overridden_device(device, model)
    assert _visitors(result, "temperature") == (
        "modbus",
        {
            "register": "HoldingRegister",  # from the model
            "offset": 2,  # the instance's, over the model's 0
            "limit": 1,  # from the model
            "dataType": "float",  # the instance's
            "scale": 0.1,
        },
    )


def test_model_protocol_name_replaces_the_instance_one() -> None:
    """As in KubeEdge, the visitors' protocolName comes from the model when it has visitors."""
    device_raw = device_doc()
    device_raw["spec"]["properties"][0]["visitors"]["protocolName"] = "modbus-rtu"
    device, model = _pair(device_raw, model_doc())
    assert _visitors(overridden_device(device, model), "temperature")[0] == "modbus"


def test_instance_without_config_data_gets_the_model_visitors_whole() -> None:
    """A property without its own configData (or without visitors) takes the model's copy."""
    device_raw = device_doc()
    del device_raw["spec"]["properties"][0]["visitors"]
    device, model = _pair(device_raw, model_doc())
    result = overridden_device(device, model)
    expected = ("modbus", {"register": "HoldingRegister", "offset": 0, "limit": 1})
    assert _visitors(result, "temperature") == expected
    assert model.spec.properties[0].visitors is not None
    assert _visitors(result, "temperature")[1] is not model.spec.properties[0].visitors.config_data


def test_model_visitors_without_config_data_keep_the_instance_config() -> None:
    """When the model's visitors have no configData, the instance's is used as it is."""
    model_raw = model_doc()
    model_raw["spec"]["properties"][0]["visitors"] = {"protocolName": "modbus"}
    device, model = _pair(device_doc(), model_raw)
    assert _visitors(overridden_device(device, model), "temperature") == (
        "modbus",
        {"dataType": "float", "offset": 2, "scale": 0.1},
    )


def test_properties_without_model_visitors_are_unchanged() -> None:
    """A model property without visitors leaves the device property's visitors alone."""
    device, model = _pair(device_doc(), model_doc())
    result = overridden_device(device, model)
    assert result.get_property("temperature-switch") == device.get_property("temperature-switch")


def test_device_properties_not_in_the_model_are_unchanged() -> None:
    """A device property the model lacks is passed through (references check it elsewhere)."""
    device_raw = device_doc()
    device_raw["spec"]["properties"][0]["name"] = "humidity"
    device, model = _pair(device_raw, model_doc())
    assert overridden_device(device, model).get_property("humidity") == device.get_property(
        "humidity"
    )


def test_protocol_config_data_merges_model_defaults_under_instance_keys() -> None:
    """spec.protocol.configData = model protocolConfigData with the instance's keys on top."""
    device, model = _pair(device_doc(), model_doc())
    protocol = overridden_device(device, model).spec.protocol
    assert protocol.protocol_name == "modbus"
    assert protocol.config_data == {
        "communicateMode": "TCP",
        "port": "5502",
        "slaveID": 1,
        "ip": "127.0.0.1",
    }


@pytest.mark.parametrize(
    ("model_config", "device_config", "expected"),
    [
        (None, None, None),
        ({"a": 1}, None, {"a": 1}),
        (None, {"b": 2}, {"b": 2}),
        ({}, {}, {}),
        ({"a": {"x": 1, "y": 2}}, {"a": {"x": 3}}, {"a": {"x": 3}}),  # shallow, as in Go
    ],
    ids=["neither", "model-only", "instance-only", "both-empty", "shallow"],
)
def test_protocol_config_data_cases(
    model_config: dict[str, Any] | None,
    device_config: dict[str, Any] | None,
    expected: dict[str, Any] | None,
) -> None:
    """Model-only, instance-only, neither and nested values merge as KubeEdge merges them."""
    model_raw = model_doc()
    device_raw = device_doc()
    model_raw["spec"].pop("protocolConfigData")
    device_raw["spec"]["protocol"].pop("configData")
    if model_config is not None:
        model_raw["spec"]["protocolConfigData"] = model_config
    if device_config is not None:
        device_raw["spec"]["protocol"]["configData"] = device_config
    device, model = _pair(device_raw, model_raw)
    assert overridden_device(device, model).spec.protocol.config_data == expected


@given(model_config=config_data, device_config=config_data)
def test_visitor_merge_is_the_model_dict_updated_by_the_instance(
    model_config: dict[str, Any], device_config: dict[str, Any]
) -> None:
    """For any configData pair, the result is {**model, **instance}, and inputs are untouched."""
    model_raw = model_doc()
    device_raw = device_doc()
    model_raw["spec"]["properties"][0]["visitors"]["configData"] = model_config
    device_raw["spec"]["properties"][0]["visitors"]["configData"] = device_config
    device, model = _pair(device_raw, model_raw)
    before = (device.to_dict(), model.to_dict())
    result = overridden_device(device, model)
    assert _visitors(result, "temperature")[1] == {**model_config, **device_config}
    assert (device.to_dict(), model.to_dict()) == before


def test_the_result_shares_no_dict_with_its_inputs() -> None:
    """Changing the overridden device's dicts changes neither the device nor the model."""
    device, model = _pair(device_doc(), model_doc())
    result = overridden_device(device, model)
    before = (device.to_dict(), model.to_dict())
    for prop in result.spec.properties:
        assert prop.visitors is not None
        assert prop.visitors.config_data is not None
        prop.visitors.config_data["offset"] = 99
    assert result.spec.protocol.config_data is not None
    result.spec.protocol.config_data["ip"] = "10.0.0.1"
    assert result.metadata.labels is not None
    result.metadata.labels["x"] = "y"
    assert (device.to_dict(), model.to_dict()) == before


def test_everything_else_is_kept() -> None:
    """Metadata, methods, push methods, desired values and status pass through."""
    device, model = _pair(device_doc(), model_doc())
    result = overridden_device(device, model)
    assert result.metadata == device.metadata
    assert result.spec.methods == device.spec.methods
    assert result.status == device.status
    assert [p.push_method for p in result.spec.properties] == [
        p.push_method for p in device.spec.properties
    ]
    assert [p.desired for p in result.spec.properties] == [
        p.desired for p in device.spec.properties
    ]


def test_the_wrong_model_is_refused() -> None:
    """A model that is not the device's (name or namespace) is a SpecError at the model ref."""
    model_raw = model_doc()
    model_raw["metadata"]["namespace"] = "other"
    device, model = _pair(device_doc(), model_raw)
    with pytest.raises(SpecError) as caught:
        overridden_device(device, model)
    assert caught.value.path == "spec.deviceModelRef.name"
    assert caught.value.device == "default/temperature-instance"
