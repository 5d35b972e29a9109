"""Validation: every error names its path; admission rules; references between objects."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from manifest_cases import device_doc, model_doc, status_doc

from twinplane.manifests import (
    Device,
    DeviceModel,
    load_documents,
    validate_references,
)

Doc = dict[str, Any]


def _set(path: str, value: object) -> Callable[[Doc], None]:
    """A mutation setting ``value`` at a dotted path (``spec.properties.0.name``)."""

    def mutate(doc: Doc) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _delete(path: str) -> Callable[[Doc], None]:
    """A mutation deleting the key at a dotted path."""

    def mutate(doc: Doc) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]

    return mutate


def _append(path: str, value: object) -> Callable[[Doc], None]:
    """A mutation appending ``value`` to the list at a dotted path."""

    def mutate(doc: Doc) -> None:
        node: Any = doc
        for part in path.split("."):
            node = node[int(part)] if isinstance(node, list) else node[part]
        node.append(value)

    return mutate


BASES: dict[str, Callable[[], Doc]] = {
    "Device": device_doc,
    "DeviceModel": model_doc,
    "DeviceStatus": status_doc,
}

BAD = [
    # (id, kind, mutation, error path, code)
    ("no-metadata", "Device", _delete("metadata"), "metadata", "required"),
    ("no-name", "Device", _delete("metadata.name"), "metadata.name", "required"),
    ("upper-name", "Device", _set("metadata.name", "Thermo_1"), "metadata.name", "pattern"),
    ("bad-namespace", "Device", _set("metadata.namespace", "a.b"), "metadata.namespace", "pattern"),
    ("label-list", "Device", _set("metadata.labels", ["a"]), "metadata.labels", "type"),
    ("no-spec", "Device", _delete("spec"), "spec", "required"),
    ("spec-list", "Device", _set("spec", []), "spec", "type"),
    ("no-model-ref", "Device", _delete("spec.deviceModelRef"), "spec.deviceModelRef", "required"),
    (
        "empty-model-ref",
        "Device",
        _set("spec.deviceModelRef", {}),
        "spec.deviceModelRef.name",
        "required",
    ),
    ("no-protocol", "Device", _delete("spec.protocol"), "spec.protocol", "required"),
    (
        "no-protocol-name",
        "Device",
        _delete("spec.protocol.protocolName"),
        "spec.protocol.protocolName",
        "required",
    ),
    (
        "protocol-config-list",
        "Device",
        _set("spec.protocol.configData", [1]),
        "spec.protocol.configData",
        "type",
    ),
    ("properties-map", "Device", _set("spec.properties", {}), "spec.properties", "type"),
    ("null-property", "Device", _set("spec.properties.0", None), "spec.properties[0]", "type"),
    (
        "no-prop-name",
        "Device",
        _delete("spec.properties.0.name"),
        "spec.properties[0].name",
        "required",
    ),
    (
        "space-in-name",
        "Device",
        _set("spec.properties.0.name", "temp erature"),
        "spec.properties[0].name",
        "pattern",
    ),
    (
        "long-name",
        "Device",
        _set("spec.properties.0.name", "t" * 129),
        "spec.properties[0].name",
        "pattern",
    ),
    (
        "plus-in-name",
        "Device",
        _set("spec.properties.1.name", "a+b"),
        "spec.properties[1].name",
        "pattern",
    ),
    (
        "desired-no-value",
        "Device",
        _set("spec.properties.1.desired", {"metadata": {}}),
        "spec.properties[1].desired.value",
        "required",
    ),
    (
        "desired-value-list",
        "Device",
        _set("spec.properties.1.desired.value", [1]),
        "spec.properties[1].desired.value",
        "type",
    ),
    (
        "config-data-string",
        "Device",
        _set("spec.properties.1.visitors.configData", "offset=1"),
        "spec.properties[1].visitors.configData",
        "type",
    ),
    (
        "config-data-nan",
        "Device",
        _set("spec.properties.1.visitors.configData.scale", float("nan")),
        "spec.properties[1].visitors.configData.scale",
        "type",
    ),
    (
        "negative-cycle",
        "Device",
        _set("spec.properties.0.collectCycle", -1),
        "spec.properties[0].collectCycle",
        "range",
    ),
    (
        "word-cycle",
        "Device",
        _set("spec.properties.0.reportCycle", "10s"),
        "spec.properties[0].reportCycle",
        "type",
    ),
    (
        "bool-cycle",
        "Device",
        _set("spec.properties.0.reportCycle", True),
        "spec.properties[0].reportCycle",
        "type",
    ),
    (
        "fraction-cycle",
        "Device",
        _set("spec.properties.0.reportCycle", 1.5),
        "spec.properties[0].reportCycle",
        "type",
    ),
    (
        "yes-report",
        "Device",
        _set("spec.properties.0.reportToCloud", "yes"),
        "spec.properties[0].reportToCloud",
        "type",
    ),
    (
        "one-report",
        "Device",
        _set("spec.properties.0.reportToCloud", 1),
        "spec.properties[0].reportToCloud",
        "type",
    ),
    (
        "qos-3",
        "Device",
        _set("spec.properties.0.pushMethod.mqtt.qos", 3),
        "spec.properties[0].pushMethod.mqtt.qos",
        "range",
    ),
    (
        "port-too-big",
        "Device",
        _set("spec.properties.0.pushMethod.http.port", 2**63),
        "spec.properties[0].pushMethod.http.port",
        "range",
    ),
    (
        "redis-db-word",
        "Device",
        _set("spec.properties.0.pushMethod.dbMethod.redis.redisClientConfig.db", "zero"),
        "spec.properties[0].pushMethod.dbMethod.redis.redisClientConfig.db",
        "type",
    ),
    (
        "influx-tag-list",
        "Device",
        _set("spec.properties.0.pushMethod.dbMethod.influxdb2.influxdb2DataConfig.tag.unit", ["C"]),
        "spec.properties[0].pushMethod.dbMethod.influxdb2.influxdb2DataConfig.tag.unit",
        "type",
    ),
    (
        "anomaly-list",
        "Device",
        _set("spec.properties.0.pushMethod.anomalyDetection", []),
        "spec.properties[0].pushMethod.anomalyDetection",
        "type",
    ),
    (
        "otel-url-number",
        "Device",
        _set("spec.properties.0.pushMethod.otel.endpointURL", {"u": 1}),
        "spec.properties[0].pushMethod.otel.endpointURL",
        "type",
    ),
    (
        "duplicate-property",
        "Device",
        _set("spec.properties.1.name", "temperature"),
        "spec.properties[1].name",
        "duplicate",
    ),
    (
        "duplicate-method",
        "Device",
        _append("spec.methods", {"name": "SwitchControl"}),
        "spec.methods[1].name",
        "duplicate",
    ),
    ("no-method-name", "Device", _append("spec.methods", {}), "spec.methods[1].name", "required"),
    (
        "method-names-string",
        "Device",
        _set("spec.methods.0.propertyNames", "temperature-switch"),
        "spec.methods[0].propertyNames",
        "type",
    ),
    (
        "state-cycle-bool",
        "Device",
        _set("spec.stateReport.reportCycle", False),
        "spec.stateReport.reportCycle",
        "type",
    ),
    (
        "old-status-report",
        "Device",
        _set("status.reportToCloud", "maybe"),
        "status.reportToCloud",
        "type",
    ),
    ("status-list", "Device", _set("status", []), "status", "type"),
    ("model-no-protocol", "DeviceModel", _delete("spec.protocol"), "spec.protocol", "required"),
    (
        "model-type-enum",
        "DeviceModel",
        _set("spec.properties.0.type", "DECIMAL"),
        "spec.properties[0].type",
        "enum",
    ),
    (
        "model-v1alpha2-type",
        "DeviceModel",
        _set("spec.properties.1.type", {"int": {"accessMode": "ReadWrite"}}),
        "spec.properties[1].type",
        "type",
    ),
    (
        "model-no-type",
        "DeviceModel",
        _delete("spec.properties.1.type"),
        "spec.properties[1].type",
        "required",
    ),
    (
        "model-access-enum",
        "DeviceModel",
        _set("spec.properties.2.accessMode", "WriteOnly"),
        "spec.properties[2].accessMode",
        "enum",
    ),
    (
        "model-no-access",
        "DeviceModel",
        _delete("spec.properties.2.accessMode"),
        "spec.properties[2].accessMode",
        "required",
    ),
    (
        "model-minimum-list",
        "DeviceModel",
        _set("spec.properties.0.minimum", [0]),
        "spec.properties[0].minimum",
        "type",
    ),
    (
        "model-visitors-config",
        "DeviceModel",
        _set("spec.properties.0.visitors.configData", 7),
        "spec.properties[0].visitors.configData",
        "type",
    ),
    (
        "model-protocol-config",
        "DeviceModel",
        _set("spec.protocolConfigData", "ip=1"),
        "spec.protocolConfigData",
        "type",
    ),
    (
        "model-duplicate",
        "DeviceModel",
        _set("spec.properties.2.name", "temperature"),
        "spec.properties[2].name",
        "duplicate",
    ),
    (
        "model-name-charset",
        "DeviceModel",
        _set("spec.properties.2.name", "alarm!"),
        "spec.properties[2].name",
        "pattern",
    ),
    (
        "twin-no-name",
        "DeviceStatus",
        _delete("status.twins.0.propertyName"),
        "status.twins[0].propertyName",
        "required",
    ),
    (
        "twin-no-value",
        "DeviceStatus",
        _delete("status.twins.0.reported.value"),
        "status.twins[0].reported.value",
        "required",
    ),
    (
        "twin-metadata-number",
        "DeviceStatus",
        _set("status.twins.0.reported.metadata", 5),
        "status.twins[0].reported.metadata",
        "type",
    ),
    (
        "extensions-list",
        "DeviceStatus",
        _set("status.extensions", []),
        "status.extensions",
        "type",
    ),
    (
        "owner-no-uid",
        "DeviceStatus",
        _delete("metadata.ownerReferences.0.uid"),
        "metadata.ownerReferences[0].uid",
        "required",
    ),
]


@pytest.mark.parametrize(
    ("kind", "mutate", "path", "code"), [case[1:] for case in BAD], ids=[case[0] for case in BAD]
)
def test_bad_manifest_is_one_error_at_its_path(
    kind: str, mutate: Callable[[Doc], None], path: str, code: str
) -> None:
    """Each broken field gives exactly one error, at its path, and no object."""
    doc = BASES[kind]()
    mutate(doc)
    result = load_documents(json.dumps(doc, allow_nan=True))
    assert [(e.path, e.code) for e in result.errors] == [(path, code)]
    assert (result.errors[0].kind, result.errors[0].document) == (kind, 0)
    assert result.objects == []


def test_every_error_of_a_document_is_reported_at_once() -> None:
    """Many broken fields in many documents give all their errors, in document order."""
    device = device_doc()
    device["spec"]["properties"][0]["collectCycle"] = -5
    device["spec"]["properties"][1]["name"] = "a b"
    del device["spec"]["protocol"]["protocolName"]
    model = model_doc()
    model["spec"]["properties"][0]["accessMode"] = "RW"
    result = load_documents(json.dumps(device) + json.dumps(model))
    assert [(e.document, e.path) for e in result.errors] == [
        (0, "spec.protocol.protocolName"),
        (0, "spec.properties[0].collectCycle"),
        (0, "spec.properties[1].name"),
        (1, "spec.properties[0].accessMode"),
    ]


def test_messages_say_what_is_allowed() -> None:
    """Enum, charset and required messages name the allowed values or the reason."""
    model = model_doc()
    model["spec"]["properties"][0]["type"] = "DECIMAL"
    model["spec"]["properties"][1]["name"] = "a b"
    del model["spec"]["properties"][2]["accessMode"]
    messages = [e.message for e in load_documents(json.dumps(model)).errors]
    assert messages == [
        "'DECIMAL' is not one of INT, FLOAT, DOUBLE, STRING, BOOLEAN, BYTES, STREAM",
        "'a b' does not match ^[a-zA-Z0-9-_.,:/@#]{1,128}$ (KubeEdge's twin key charset)",
        "required: ReadWrite or ReadOnly",
    ]


def test_duplicate_message_points_at_the_first() -> None:
    """A duplicate property name names where the first one is and KubeEdge's rule."""
    device = device_doc()
    device["spec"]["properties"][1]["name"] = "temperature"
    (error,) = load_documents(json.dumps(device)).errors
    assert error.message == (
        "duplicate property name 'temperature' (also at spec.properties[0]): "
        "property names must be unique"
    )


def test_twin_key_charset_accepts_its_whole_alphabet() -> None:
    """Every character of KubeEdge's twin key charset is accepted, up to 128 characters."""
    device = device_doc()
    device["spec"]["properties"][0]["name"] = "aZ09-_.,:/@#" + "x" * 116
    device["spec"]["methods"] = []
    result = load_documents(json.dumps(device))
    assert result.errors == []


def test_unknown_fields_are_pruned_with_a_warning_and_a_hint() -> None:
    """An unknown field is dropped with a warning; a near miss gets 'did you mean'."""
    device = device_doc()
    device["spec"]["properties"][0]["colectCycle"] = 5
    device["spec"]["properties"][0]["reporttocloud"] = False
    device["spec"]["shape"] = "round"
    result = load_documents(json.dumps(device))
    assert result.errors == []
    assert [(w.path, w.code) for w in result.warnings] == [
        ("spec.properties[0].colectCycle", "unknown-field"),
        ("spec.properties[0].reporttocloud", "unknown-field"),
        ("spec.shape", "unknown-field"),
    ]
    assert result.warnings[0].message.endswith("did you mean 'collectCycle'?")
    assert result.warnings[1].message.endswith("did you mean 'reportToCloud'?")
    assert "did you mean" not in result.warnings[2].message
    spec = result.devices[0].to_dict()["spec"]
    assert "shape" not in spec
    assert spec["properties"][0]["reportToCloud"] is True


def test_null_fields_are_unset() -> None:
    """A null optional field is unset, as in Kubernetes; a null required one is missing."""
    device = device_doc()
    device["spec"]["nodeName"] = None
    device["spec"]["properties"][0]["pushMethod"] = None
    (obj,) = load_documents(json.dumps(device)).devices
    assert obj.spec.node_name is None
    assert obj.spec.properties[0].push_method is None
    device["spec"]["protocol"] = None
    result = load_documents(json.dumps(device))
    assert [(e.path, e.code) for e in result.errors] == [("spec.protocol", "required")]


# --- references -------------------------------------------------------------------------------


def _objects(device: Doc | None = None, model: Doc | None = None) -> tuple[Device, DeviceModel]:
    result = load_documents(json.dumps(device or device_doc()) + json.dumps(model or model_doc()))
    assert result.errors == []
    return result.devices[0], result.models[0]


def test_a_consistent_pair_has_no_reference_issue() -> None:
    """The base device and model refer to each other correctly."""
    device, model = _objects()
    assert validate_references([device], [model]) == []


def test_missing_model_is_reported_at_the_model_ref() -> None:
    """A device whose model is not in its namespace is an error, with a hint where it is."""
    device_raw = device_doc()
    device_raw["metadata"]["namespace"] = "plant-1"
    device, model = _objects(device_raw)
    (issue,) = validate_references([device], [model])
    assert (issue.document, issue.kind, issue.path, issue.code) == (
        -1,
        "Device",
        "spec.deviceModelRef.name",
        "reference",
    )
    assert issue.namespace == "plant-1"
    assert "DeviceModel plant-1/temperature-model not found" in issue.message
    assert "there is one in namespace default" in issue.message
    assert validate_references([device], [])[0].message.endswith("in the Device's namespace")


def test_device_property_missing_from_the_model() -> None:
    """A device property that the model does not define is an error at its name."""
    device_raw = device_doc()
    device_raw["spec"]["properties"][0]["name"] = "temprature"
    device_raw["spec"]["methods"] = []
    device, model = _objects(device_raw)
    (issue,) = validate_references([device], [model])
    assert issue.path == "spec.properties[0].name"
    assert issue.message == (
        "property 'temprature' is not in DeviceModel default/temperature-model (it has "
        "temperature, temperature-switch, alarm); did you mean 'temperature'?"
    )


def test_method_naming_an_unknown_property() -> None:
    """A method's propertyNames entry that is not a device property is an error at that entry."""
    device_raw = device_doc()
    device_raw["spec"]["methods"][0]["propertyNames"] = ["temperature", "alarm", "fan"]
    device, model = _objects(device_raw)
    assert [i.path for i in validate_references([device], [model])] == [
        "spec.methods[0].propertyNames[1]",
        "spec.methods[0].propertyNames[2]",
    ]


def test_protocol_mismatch_between_device_and_model() -> None:
    """A device whose protocolName is not its model's protocol is an error."""
    device_raw = device_doc()
    device_raw["spec"]["protocol"]["protocolName"] = "opcua"
    device, model = _objects(device_raw)
    (issue,) = validate_references([device], [model])
    assert issue.path == "spec.protocol.protocolName"
    assert "'opcua' is not the protocol of DeviceModel default/temperature-model" in issue.message


@pytest.mark.parametrize(
    ("prop", "value", "ok"),
    [
        ("temperature-switch", "1", True),
        ("temperature-switch", "-9223372036854775808", True),
        ("temperature-switch", "9223372036854775808", False),
        ("temperature-switch", "1.5", False),
        ("temperature-switch", "on", False),
        ("temperature", "21.5", True),
        ("temperature", "-1e3", True),
        ("temperature", "warm", False),
        ("alarm", "true", True),
        ("alarm", "F", True),
        ("alarm", "yes", False),
        ("alarm", "", True),
    ],
)
def test_desired_value_must_read_as_the_model_type(prop: str, value: str, ok: bool) -> None:
    """A desired value that does not read as the model property's type is an error."""
    device_raw = device_doc()
    names = [p["name"] for p in device_raw["spec"]["properties"]]
    if prop not in names:
        device_raw["spec"]["properties"].append({"name": prop})
    index = [p["name"] for p in device_raw["spec"]["properties"]].index(prop)
    device_raw["spec"]["properties"][index]["desired"] = {"value": value}
    device, model = _objects(device_raw)
    issues = validate_references([device], [model])
    expected = [] if ok else [(f"spec.properties[{index}].desired.value", "value")]
    assert [(i.path, i.code) for i in issues] == expected


def test_load_result_reference_issues_use_document_indices_and_registry_models() -> None:
    """LoadResult.reference_issues checks against loaded plus registry models, with indices."""
    _, model = _objects()
    orphan = device_doc()
    orphan["spec"]["deviceModelRef"]["name"] = "elsewhere"
    result = load_documents(json.dumps(orphan) + json.dumps(device_doc()))
    assert result.reference_issues() != []
    assert [(i.document, i.path) for i in result.reference_issues([model])] == [
        (0, "spec.deviceModelRef.name")
    ]
