"""The typed objects: wire names, accessors, immutability, and to_dict() round trips."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
import yaml
from hypothesis import given
from manifest_cases import device_doc, device_docs, model_doc, status_doc

from twinplane.manifests import (
    API_VERSION,
    Device,
    DeviceModel,
    DeviceModelRef,
    DeviceSpec,
    DeviceStatus,
    ObjectMeta,
    ProtocolConfig,
    StateReport,
    load_documents,
)


def _one(doc: dict[str, Any]) -> Device | DeviceModel | DeviceStatus:
    result = load_documents(json.dumps(doc))
    assert result.errors == []
    (obj,) = result.objects
    return obj


@pytest.mark.parametrize("doc", [device_doc(), model_doc(), status_doc()], ids=lambda d: d["kind"])
def test_to_dict_gives_back_the_loaded_document(doc: dict[str, Any]) -> None:
    """to_dict() of a loaded document equals the document, wire names and all."""
    assert _one(doc).to_dict() == doc


def test_wire_names_are_the_crd_names() -> None:
    """The irregular CRD names (endpointURL, TDEngine, poolsize...) are kept exactly."""
    push = _one(device_doc()).to_dict()["spec"]["properties"][0]["pushMethod"]
    assert set(push) == {"mqtt", "http", "otel", "dbMethod", "anomalyDetection"}
    assert set(push["otel"]) == {"endpointURL"}
    assert set(push["dbMethod"]) == {"influxdb2", "redis", "TDEngine", "mysql"}
    assert set(push["dbMethod"]["TDEngine"]) == {"TDEngineClientConfig"}
    assert set(push["dbMethod"]["redis"]["redisClientConfig"]) == {"addr", "poolsize"}
    assert set(push["dbMethod"]["influxdb2"]) == {"influxdb2ClientConfig", "influxdb2DataConfig"}


def test_typed_access_uses_python_names() -> None:
    """Fields read as snake_case attributes with their types."""
    device = _one(device_doc())
    assert isinstance(device, Device)
    prop = device.spec.properties[0]
    assert prop.collect_cycle == 10000
    assert prop.push_method is not None
    assert prop.push_method.otel is not None
    assert prop.push_method.otel.endpoint_url == "http://127.0.0.1:4318/v1/metrics"
    assert prop.push_method.db_method is not None
    assert prop.push_method.db_method.tdengine is not None
    assert prop.push_method.anomaly_detection == {"threshold": 3, "rules": [{"op": ">"}]}
    assert device.spec.methods[0].property_names == ("temperature-switch",)


def test_ids_and_lookups() -> None:
    """id, model_id, protocol_name and get_property answer what KubeEdge keys things by."""
    device = _one(device_doc())
    model = _one(model_doc())
    assert isinstance(device, Device)
    assert isinstance(model, DeviceModel)
    assert (device.id, device.name, device.namespace) == (
        "default/temperature-instance",
        "temperature-instance",
        "default",
    )
    assert device.model_id == model.id == "default/temperature-model"
    assert device.protocol_name == "modbus"
    assert device.get_property("temperature-switch") is device.spec.properties[1]
    assert device.get_property("nope") is None
    alarm = model.get_property("alarm")
    assert alarm is not None
    assert alarm.access_mode == "ReadOnly"


def test_a_device_built_in_code_is_in_namespace_default() -> None:
    """Without a namespace the id uses default, and to_dict() leaves namespace out."""
    device = Device(
        metadata=ObjectMeta(name="d"),
        spec=DeviceSpec(
            device_model_ref=DeviceModelRef(name="m"),
            protocol=ProtocolConfig(protocol_name="modbus"),
        ),
    )
    assert device.id == "default/d"
    assert device.model_id == "default/m"
    assert device.to_dict() == {
        "apiVersion": API_VERSION,
        "kind": "Device",
        "metadata": {"name": "d"},
        "spec": {"deviceModelRef": {"name": "m"}, "protocol": {"protocolName": "modbus"}},
    }


def test_state_report_prefers_spec_then_the_old_status() -> None:
    """spec.stateReport (v1.23) wins; without it the deprecated status keys are used."""
    device = _one(device_doc())
    assert isinstance(device, Device)
    assert device.state_report == StateReport(report_to_cloud=True, report_cycle=5000)
    raw = device_doc()
    del raw["spec"]["stateReport"]
    old = _one(raw)
    assert isinstance(old, Device)
    assert old.state_report == StateReport(report_to_cloud=False, report_cycle=1000)
    del raw["status"]
    bare = _one(raw)
    assert isinstance(bare, Device)
    assert bare.state_report == StateReport()


def test_the_old_status_keeps_unknown_keys() -> None:
    """Device.status is free-form (preserve-unknown): keys beyond the typed two survive."""
    device = _one(device_doc())
    assert isinstance(device, Device)
    assert device.status == {
        "reportToCloud": False,
        "reportCycle": 1000,
        "twins": [{"propertyName": "x"}],
    }


def test_objects_are_frozen() -> None:
    """Assigning a field raises; objects are values."""
    device = _one(device_doc())
    with pytest.raises(AttributeError):
        device.metadata = ObjectMeta(name="x")  # type: ignore[misc]


def test_to_dict_is_yaml_and_json_safe() -> None:
    """to_dict() holds only plain lists and dicts: yaml.safe_dump and json.dumps take it."""
    for doc in (device_doc(), model_doc(), status_doc()):
        out = _one(doc).to_dict()
        assert yaml.safe_load(yaml.safe_dump(out)) == out
        assert json.loads(json.dumps(out)) == out


@given(device_docs())
def test_generated_devices_round_trip(doc: dict[str, Any]) -> None:
    """Any valid Device: load → to_dict() is the input; YAML and JSON load the same object."""
    result = load_documents(json.dumps(doc))
    assert result.errors == []
    assert result.warnings == []
    (device,) = result.devices
    assert device.to_dict() == doc
    assert load_documents(yaml.safe_dump(doc)).devices == [device]
    assert load_documents(msgspec.json.encode(device.to_dict())).devices == [device]
