"""The real KubeEdge samples and CRD schemas from ``../shared/fixtures/kubeedge``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import manifest_cases
import pytest
import yaml
from manifest_cases import fixtures, sample_names

from twinplane.manifests import (
    Device,
    DeviceModel,
    DeviceStatus,
    load_documents,
    load_file,
    overridden_device,
    validate_references,
)
from twinplane.manifests.schema import (
    BoolNode,
    FreeNode,
    IntNode,
    ListNode,
    MapNode,
    Node,
    ObjectNode,
    StrNode,
    compile_type,
)

SAMPLES: list[str | None] = [*sample_names("samples")] or [None]
CRDS = {
    Device: "devices_v1beta1_device.yaml",
    DeviceModel: "devices_v1beta1_devicemodel.yaml",
    DeviceStatus: "devices_v1beta1_devicestatus.yaml",
}


def _sample(name: str | None) -> Path:
    folder = fixtures("samples")
    if name is None:  # pragma: no cover - only when the folder is there but empty
        pytest.fail(f"no samples in {folder}")
    return folder / name


def test_missing_fixtures_fail_under_ci_and_skip_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ../shared the fixture tests fail when CI is set and skip otherwise, saying why."""
    monkeypatch.setattr(manifest_cases, "KUBEEDGE", tmp_path / "nowhere")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="KubeEdge fixtures not found"):
        fixtures("samples")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="KubeEdge fixtures not found"):
        fixtures("samples")
    assert sample_names("samples") == []


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_loads_without_errors(name: str | None) -> None:
    """Every KubeEdge sample loads into v1beta1 objects with no error."""
    result = load_file(_sample(name))
    assert result.errors == []
    assert result.objects
    assert {w.code for w in result.warnings} <= {"nanoseconds", "indentation"}


def test_sample_quirks_are_read_with_warnings() -> None:
    """The samples' nanosecond cycles and broken indentation are read as meant, and said so."""
    mqtt = load_file(fixtures("samples") / "mqttdevice-instance.yaml")
    assert [(w.path, w.code) for w in mqtt.warnings] == [
        ("", "indentation"),
        ("spec.properties[0].collectCycle", "nanoseconds"),
        ("spec.properties[0].reportCycle", "nanoseconds"),
    ]
    assert "read as 10000 ms" in mqtt.warnings[1].message
    (device,) = mqtt.devices
    assert device.id == "default/beta1-device"
    prop = device.spec.properties[0]
    assert (prop.collect_cycle, prop.report_cycle) == (10000, 10000)
    assert device.spec.protocol.config_data == {"ip": "101.133.150.110", "port": 1883}

    onvif = load_file(fixtures("samples") / "onvifdevice-instance.yaml")
    assert sorted(w.path for w in onvif.warnings) == [
        "spec.properties[0].collectCycle",
        "spec.properties[0].reportCycle",
    ]


def test_all_samples_load_as_one_multi_document_stream() -> None:
    """The samples joined with --- load as one stream, one object per document, in order."""
    paths = [_sample(n) for n in SAMPLES]
    text = "\n---\n".join(p.read_text() for p in paths)
    result = load_documents(text)
    assert result.errors == []
    assert result.documents == list(range(len(paths)))


def _pairs() -> list[tuple[Device, DeviceModel]]:
    result = load_documents("\n---\n".join(_sample(n).read_text() for n in SAMPLES))
    models = {m.id: m for m in result.models}
    return [(d, models[d.model_id]) for d in result.devices]


def test_onvif_sample_pair_references_resolve() -> None:
    """The onvif instance refers only to what its model defines."""
    pairs = {d.name: (d, m) for d, m in _pairs()}
    device, model = pairs["onvif-device-01"]
    assert validate_references([device], [model]) == []


def test_mqtt_sample_pair_has_its_upstream_typo_reported() -> None:
    """The mqtt instance's 'temperature' is not its model's 'temperture': the one error found."""
    pairs = {d.name: (d, m) for d, m in _pairs()}
    device, model = pairs["beta1-device"]
    issues = validate_references([device], [model])
    assert [(i.path, i.code) for i in issues] == [("spec.properties[0].name", "reference")]
    assert "did you mean 'temperture'?" in issues[0].message


def test_sample_pairs_override_without_model_defaults_keeps_the_instance() -> None:
    """With no model visitors or protocolConfigData, the overridden device equals the instance."""
    for device, model in _pairs():
        assert overridden_device(device, model) == device


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_round_trips_through_to_dict(name: str | None) -> None:
    """to_dict() of a loaded sample loads again to the same object, with no warning."""
    result = load_file(_sample(name))
    for obj in result.objects:
        again = load_documents(yaml.safe_dump(obj.to_dict()))
        assert again.warnings == []
        assert again.objects == [obj]


# --- the validator against the CRD schemas ----------------------------------------------------

INT_FORMATS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}

NOT_REQUIRED_ALTHOUGH_DESCRIBED_REQUIRED = {
    (Device, "spec.properties[].visitors"),  # a v1.22 model may supply the visitors
    (Device, "spec.properties[].visitors.protocolName"),  # idem, merged per key
    (Device, "spec.properties[].visitors.configData"),
    (Device, "spec.methods[].propertyNames"),  # an empty method is harmless
    (DeviceModel, "spec.properties"),  # a model may have no properties yet
    (DeviceModel, "spec.properties[].visitors.protocolName"),  # optional defaults
    (DeviceModel, "spec.properties[].visitors.configData"),
    (DeviceStatus, "status.twins[].reported"),  # devicecontroller first writes {propertyName}
}
"""Fields KubeEdge's Go comments call required that twinplane does not require (and why)."""

ROOT_REQUIRED = {Device: ["spec"], DeviceModel: ["spec"], DeviceStatus: []}
"""Required at the top beyond the CRD: a Device or DeviceModel without a spec says nothing."""


def _crd_schema(kind: type[Device | DeviceModel | DeviceStatus]) -> dict[str, Any]:
    document = yaml.safe_load((fixtures("crds") / CRDS[kind]).read_text())
    (version,) = (v for v in document["spec"]["versions"] if v["name"] == "v1beta1")
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def _compare(crd: dict[str, Any], node: Node, path: str, relaxed: set[str]) -> list[str]:  # noqa: PLR0911, PLR0912
    """Differences between a CRD schema node and a compiled one (empty when they agree)."""
    kind = crd.get("type")
    if kind == "string":
        if not isinstance(node, StrNode):
            return [f"{path}: string in the CRD, {node!r} here"]
        if node.enum != (tuple(crd["enum"]) if "enum" in crd else None):
            return [f"{path}: enum {crd.get('enum')} in the CRD, {node.enum} here"]
        return []
    if kind == "integer":
        low, high = INT_FORMATS[crd.get("format", "int64")]
        if not isinstance(node, IntNode) or not low <= node.minimum <= node.maximum <= high:
            return [f"{path}: {crd.get('format', 'int64')} in the CRD, {node!r} here"]
        return []
    if kind == "boolean":
        return [] if isinstance(node, BoolNode) else [f"{path}: boolean in the CRD, {node!r} here"]
    if kind == "array":
        if not isinstance(node, ListNode):
            return [f"{path}: array in the CRD, {node!r} here"]
        return _compare(crd["items"], node.item, f"{path}[]", relaxed)
    if kind != "object":
        return [f"{path}: unexpected CRD type {kind!r}"]
    if "additionalProperties" in crd:
        if not isinstance(node, MapNode):
            return [f"{path}: map in the CRD, {node!r} here"]
        return _compare(crd["additionalProperties"], node.value, f"{path}.*", relaxed)
    if crd.get("x-kubernetes-preserve-unknown-fields"):
        if not isinstance(node, FreeNode):
            return [f"{path}: free-form in the CRD, {node!r} here"]
        if "properties" not in crd:
            return [] if node.known is None else [f"{path}: no typed keys in the CRD"]
        if node.known is None:
            return [f"{path}: typed keys in the CRD, none here"]
        return _compare(
            {**crd, "x-kubernetes-preserve-unknown-fields": False}, node.known, path, relaxed
        )
    if not isinstance(node, ObjectNode):
        return [f"{path}: object in the CRD, {node!r} here"]
    props: dict[str, Any] = crd.get("properties", {})
    problems = [f"{path}: fields {sorted(set(props) ^ set(node.fields))} differ"] * (
        set(props) != set(node.fields)
    )
    for key in sorted(set(props) & set(node.fields)):
        sub = f"{path}.{key}" if path else key
        described = "required" in props[key].get("description", "").lower()
        if key in crd.get("required", ()) and not node.fields[key].required:
            problems.append(f"{sub}: required in the CRD schema, optional here")
        if node.fields[key].required and key not in crd.get("required", ()) and not described:
            problems.append(f"{sub}: required here, not in the CRD nor its description")
        if described and not node.fields[key].required and key not in crd.get("required", ()):
            relaxed.add(sub)
        problems += _compare(props[key], node.fields[key].node, sub, relaxed)
    return problems


@pytest.mark.parametrize("kind", list(CRDS), ids=lambda k: k.__name__)
def test_validator_schema_matches_the_crd(kind: type[Device | DeviceModel | DeviceStatus]) -> None:
    """Fields, types, enums, integer widths and required fields agree with the real CRD."""
    crd = _crd_schema(kind)
    crd_props = dict(crd["properties"])
    assert crd_props.pop("apiVersion")["type"] == crd_props.pop("kind")["type"] == "string"
    assert crd_props.pop("metadata") == {"type": "object"}  # Kubernetes ObjectMeta, typed here
    root = compile_type(kind)
    body = {k: v for k, v in root.fields.items() if k != "metadata"}
    relaxed: set[str] = set()
    top = {"type": "object", "properties": crd_props, "required": ROOT_REQUIRED[kind]}
    problems = _compare(top, ObjectNode(root.name, body), "", relaxed)
    assert problems == []
    expected = {path for k, path in NOT_REQUIRED_ALTHOUGH_DESCRIBED_REQUIRED if k is kind}
    assert relaxed == expected


def test_enums_are_the_crd_enums_in_the_crd_order() -> None:
    """Property type and access mode enums are exactly the CRD's."""
    item = _crd_schema(DeviceModel)["properties"]["spec"]["properties"]["properties"]["items"]
    fields = compile_type(DeviceModel).fields["spec"].node
    assert isinstance(fields, ObjectNode)
    props = fields.fields["properties"].node
    assert isinstance(props, ListNode)
    assert isinstance(props.item, ObjectNode)
    type_node = props.item.fields["type"].node
    mode_node = props.item.fields["accessMode"].node
    assert isinstance(type_node, StrNode)
    assert isinstance(mode_node, StrNode)
    assert type_node.enum == tuple(item["properties"]["type"]["enum"])
    assert mode_node.enum == tuple(item["properties"]["accessMode"]["enum"])


def test_the_crd_cross_check_notices_differences() -> None:
    """A CRD with one field more, a narrower integer or another enum is reported."""
    crd = _crd_schema(DeviceModel)
    spec = crd["properties"]["spec"]
    item = spec["properties"]["properties"]["items"]
    item["properties"]["type"]["enum"] = ["INT", "FLOAT"]
    item["properties"]["colour"] = {"type": "string"}
    spec["properties"]["protocol"] = {"type": "integer", "description": "Required: a number"}
    node = compile_type(DeviceModel).fields["spec"].node
    problems = _compare(spec, node, "spec", set())
    assert sorted(problems) == [
        "spec.properties[].type: enum ['INT', 'FLOAT'] in the CRD, ('INT', 'FLOAT', 'DOUBLE', "
        "'STRING', 'BOOLEAN', 'BYTES', 'STREAM') here",
        "spec.properties[]: fields ['colour'] differ",
        "spec.protocol: int64 in the CRD, StrNode(enum=None, pattern=None, max_length=None, "
        "why=None) here",
    ]
