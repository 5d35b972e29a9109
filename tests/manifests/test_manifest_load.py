"""Loading: YAML and JSON, one document or many, lists, dispatch, and how issues are reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from manifest_cases import device_doc, model_doc, status_doc

from twinplane.errors import SpecError, TwinplaneError
from twinplane.manifests import (
    API_VERSION,
    Device,
    DeviceModel,
    DeviceStatus,
    ManifestError,
    ManifestIssue,
    load_documents,
    load_file,
    load_strict,
)

MODEL_YAML = yaml.safe_dump(model_doc())
DEVICE_YAML = yaml.safe_dump(device_doc())
STATUS_YAML = yaml.safe_dump(status_doc())


def test_yaml_multi_document_stream_loads_every_kind_in_order() -> None:
    """A ---separated YAML stream gives one object per document, in order, with its index."""
    result = load_documents(f"{MODEL_YAML}---\n{DEVICE_YAML}---\n{STATUS_YAML}")
    assert result.errors == []
    assert result.warnings == []
    assert [type(o) for o in result.objects] == [DeviceModel, Device, DeviceStatus]
    assert result.documents == [0, 1, 2]
    assert [o.id for o in result.objects] == ["default/temperature-model"] + [
        "default/temperature-instance"
    ] * 2
    assert result.models[0].spec.properties[0].type == "FLOAT"
    assert result.statuses[0].status is not None
    reported = result.statuses[0].status.twins[0].reported
    assert reported is not None
    assert reported.value == "21.5"


def test_empty_and_comment_only_documents_are_skipped_and_not_counted() -> None:
    """Leading ---, empty documents and comment-only documents take no document index."""
    text = f"---\n# just a comment\n---\n\n---\n{MODEL_YAML}...\n---\n---\n{DEVICE_YAML}---\n"
    result = load_documents(text)
    assert result.errors == []
    assert result.documents == [0, 1]


def test_yaml_directive_stays_with_its_document() -> None:
    """A %YAML directive before --- belongs to the next document."""
    result = load_documents(f"%YAML 1.1\n---\n{MODEL_YAML}")
    assert result.errors == []
    assert len(result.models) == 1


def test_json_single_document() -> None:
    """One JSON object loads."""
    result = load_documents(json.dumps(device_doc()))
    assert result.errors == []
    assert [o.id for o in result.devices] == ["default/temperature-instance"]


def test_json_stream_of_documents() -> None:
    """Concatenated or one-per-line JSON values load as separate documents."""
    text = (
        json.dumps(model_doc())
        + "\n"
        + json.dumps(device_doc(), indent=2)
        + json.dumps(status_doc())
    )
    result = load_documents(text.encode())
    assert result.errors == []
    assert result.documents == [0, 1, 2]


def test_json_documents_separated_by_yaml_markers() -> None:
    """JSON documents between --- lines load as YAML (JSON is YAML)."""
    result = load_documents(json.dumps(model_doc()) + "\n---\n" + json.dumps(device_doc()))
    assert result.errors == []
    assert result.documents == [0, 1]


def test_invalid_json_names_the_place() -> None:
    """A JSON syntax error is one parse error giving line and column."""
    result = load_documents('{"apiVersion": "x",\n  "kind": "Device" "metadata": {}}')
    assert [(e.path, e.code) for e in result.errors] == [("", "parse")]
    assert "not valid JSON" in result.errors[0].message
    assert "line 2, column 20" in result.errors[0].message


def test_a_broken_value_in_a_json_stream_keeps_the_ones_before() -> None:
    """In a JSON stream, the values before a syntax error load; the error has its index."""
    text = json.dumps(model_doc()) + "\n" + json.dumps(device_doc()) + '\n{"kind": }\n'
    result = load_documents(text)
    assert result.documents == [0, 1]
    assert [(e.document, e.code) for e in result.errors] == [(2, "parse")]
    assert "at line 3, column 10" in result.errors[0].message


def test_v1_list_items_are_read_one_by_one_with_item_paths() -> None:
    """A kubectl-style v1 List loads its items; an item's issues start with items[i]."""
    bad = device_doc()
    del bad["spec"]["protocol"]
    doc = {"apiVersion": "v1", "kind": "List", "items": [model_doc(), bad, status_doc()]}
    result = load_documents(yaml.safe_dump(doc))
    assert [type(o) for o in result.objects] == [DeviceModel, DeviceStatus]
    assert [(e.document, e.kind, e.name, e.path) for e in result.errors] == [
        (0, "Device", "temperature-instance", "items[1].spec.protocol")
    ]


def test_typed_list_items_may_omit_api_version_and_kind() -> None:
    """A DeviceList's items without apiVersion/kind are Devices."""
    item = {k: v for k, v in device_doc().items() if k not in ("apiVersion", "kind")}
    doc = {"apiVersion": API_VERSION, "kind": "DeviceList", "items": [item], "metadata": {}}
    result = load_documents(json.dumps(doc))
    assert result.errors == []
    assert len(result.devices) == 1


def test_list_items_must_be_an_array() -> None:
    """A List whose items is not an array is an error at items."""
    result = load_documents("apiVersion: v1\nkind: List\nitems: {}\n")
    assert [(e.path, e.code) for e in result.errors] == [("items", "document")]


def test_bytes_with_a_bom_load() -> None:
    """UTF-8 bytes with a byte-order mark load."""
    result = load_documents(b"\xef\xbb\xbf" + MODEL_YAML.encode())
    assert result.errors == []


def test_bytes_that_are_not_utf8_are_one_parse_error() -> None:
    """Non-UTF-8 input is one parse error, not an exception."""
    result = load_documents(b"kind: \xff\xfe")
    assert [(e.document, e.code) for e in result.errors] == [(0, "parse")]
    assert "not UTF-8" in result.errors[0].message


def test_a_syntax_error_hides_no_other_document_and_gives_the_input_line() -> None:
    """A broken document is one error with its line in the whole input; the others load."""
    text = f"{MODEL_YAML}---\nkind: [Device\n---\n{DEVICE_YAML}"
    result = load_documents(text)
    assert [o.id for o in result.objects] == [
        "default/temperature-model",
        "default/temperature-instance",
    ]
    assert result.documents == [0, 2]
    (error,) = result.errors
    assert (error.document, error.code) == (1, "parse")
    broken_line = MODEL_YAML.count("\n") + 2
    assert f"(while parsing a flow sequence started at line {broken_line}, column 7)" in (
        error.message
    )


@pytest.mark.parametrize(
    ("text", "path", "code", "phrase"),
    [
        ("- a\n- b\n", "", "document", "not an array"),
        ("just text\n", "", "document", "not str"),
        ("kind: Device\nmetadata: {name: a}\n", "apiVersion", "required", "required"),
        (f"apiVersion: {API_VERSION}\nmetadata: {{name: a}}\n", "kind", "required", "required"),
        ("apiVersion: v1\nkind: ConfigMap\n", "apiVersion", "api-version", "not supported"),
        (f"apiVersion: {API_VERSION}\nkind: Mapper\n", "kind", "api-version", "not supported"),
        ("apiVersion: devices.kubeedge.io/v2\nkind: Device\n", "apiVersion", "api-version", "v2"),
    ],
    ids=["array", "scalar", "no-apiVersion", "no-kind", "configmap", "unknown-kind", "v2"],
)
def test_documents_that_are_not_v1beta1_objects(
    text: str, path: str, code: str, phrase: str
) -> None:
    """Non-objects, missing apiVersion/kind and unknown kinds are errors naming the field."""
    result = load_documents(text)
    assert [(e.path, e.code) for e in result.errors] == [(path, code)]
    assert phrase in result.errors[0].message
    assert result.objects == []


V1ALPHA2_DEVICE = """
apiVersion: devices.kubeedge.io/v1alpha2
kind: Device
metadata: {name: sensor-tag01}
spec:
  deviceModelRef: {name: sensor-tag-model}
  protocol:
    modbus: {slaveID: 1}
    common: {tcp: {ip: 192.168.1.3, port: 502}}
  nodeSelector:
    nodeSelectorTerms:
    - matchExpressions: [{key: '', operator: In, values: [edge-node]}]
  propertyVisitors:
  - propertyName: temperature
    collectCycle: 500000000
    modbus: {register: CoilRegister, offset: 2, limit: 1, scale: 1}
status:
  twins:
  - propertyName: temperature
    desired: {value: '1'}
    reported: {value: '0'}
"""

V1ALPHA2_MODEL = """
apiVersion: devices.kubeedge.io/v1alpha2
kind: DeviceModel
metadata: {name: sensor-tag-model}
spec:
  protocol: modbus
  properties:
  - name: temperature
    type:
      int: {accessMode: ReadWrite, maximum: 100, unit: degree celsius}
"""


def test_v1alpha2_device_gets_a_message_saying_what_to_change() -> None:
    """A v1alpha2 Device is an error at apiVersion naming each v1beta1 replacement it needs."""
    result = load_documents(V1ALPHA2_DEVICE)
    (error,) = result.errors
    assert (error.path, error.code, error.kind, error.name) == (
        "apiVersion",
        "api-version",
        "Device",
        "sensor-tag01",
    )
    for phrase in (
        "set apiVersion: devices.kubeedge.io/v1beta1",
        "spec.deviceModelRef stays",
        "spec.propertyVisitors[] became spec.properties[]",
        "visitors: {protocolName: <protocol>, configData: {<its keys>}}",
        "milliseconds now",
        "spec.protocol: {protocolName: <protocol>, configData: {<flat keys>}}",
        "spec.nodeSelector became spec.nodeName",
        "This document uses: spec.propertyVisitors, spec.protocol.modbus, "
        "spec.protocol.common, spec.nodeSelector, status.twins.",
    ):
        assert phrase in error.message


def test_v1alpha2_model_gets_a_message_about_the_flat_type_enum() -> None:
    """A v1alpha2 DeviceModel's message explains the flat type enum and names the nested type."""
    (error,) = load_documents(V1ALPHA2_MODEL).errors
    assert error.code == "api-version"
    assert "type: INT|FLOAT|DOUBLE|STRING|BOOLEAN|BYTES|STREAM (upper case), accessMode" in (
        error.message
    )
    assert "This document uses: spec.properties[0].type.int." in error.message


def test_v1alpha2_fields_inside_a_v1beta1_document_are_explained() -> None:
    """A v1alpha2 field left in a v1beta1 Device is pruned with a note saying where it went."""
    doc = device_doc()
    doc["spec"]["propertyVisitors"] = []
    result = load_documents(json.dumps(doc))
    assert result.errors == []
    (warning,) = result.warnings
    assert warning.path == "spec.propertyVisitors"
    assert "spec.propertyVisitors is v1alpha2" in warning.message


def test_namespace_defaults_to_default() -> None:
    """A document without metadata.namespace is in namespace default."""
    doc = device_doc()
    del doc["metadata"]["namespace"]
    (device,) = load_documents(json.dumps(doc)).devices
    assert device.metadata.namespace == "default"
    assert device.id == "default/temperature-instance"


def test_the_same_object_twice_is_a_warning_and_both_are_kept() -> None:
    """An object repeated in one input is warned about; the later one comes last."""
    result = load_documents(f"{MODEL_YAML}---\n{MODEL_YAML}")
    assert len(result.models) == 2
    assert [(w.document, w.code) for w in result.warnings] == [(1, "repeated")]
    assert "also in document 0" in result.warnings[0].message


def test_a_key_given_twice_is_a_warning_with_its_line() -> None:
    """A YAML key written twice warns with the line; the last value is used, as in YAML."""
    text = MODEL_YAML + "metadata: {name: other}\n"
    result = load_documents(text)
    assert result.errors == []
    assert result.models[0].name == "other"
    (warning,) = result.warnings
    assert warning.code == "duplicate-key"
    assert f"line {text.count(chr(10))}" in warning.message


def test_merge_keys_are_not_repeated_keys() -> None:
    """YAML merge keys (<<) override without a warning."""
    text = f"""
apiVersion: {API_VERSION}
kind: DeviceModel
metadata: {{name: m}}
spec:
  protocol: modbus
  properties:
  - &base {{name: a, type: INT, accessMode: ReadWrite}}
  - <<: *base
    name: b
"""
    result = load_documents(text)
    assert result.errors == []
    assert result.warnings == []
    assert [p.name for p in result.models[0].spec.properties] == ["a", "b"]


def test_recursive_aliases_are_refused() -> None:
    """A document whose YAML alias contains itself is a parse error, not a hang."""
    result = load_documents("a: &a [*a]\n")
    assert [(e.code, e.message) for e in result.errors] == [
        ("parse", "a YAML alias refers to itself (a recursive document)")
    ]


def test_alias_bombs_are_refused() -> None:
    """A document expanding to millions of values through aliases is a parse error."""
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdef", "bcdefg", strict=True):
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]")
    result = load_documents("\n".join(lines))
    assert [e.code for e in result.errors] == ["parse"]
    assert "once YAML aliases are expanded" in result.errors[0].message


def test_deep_nesting_is_refused() -> None:
    """A document nested deeper than the limit is a parse error, not a RecursionError."""
    result = load_documents("a: " + "[" * 150 + "]" * 150)
    assert [e.code for e in result.errors] == ["parse"]
    assert "nested deeper" in result.errors[0].message


def test_load_strict_raises_one_error_carrying_every_issue() -> None:
    """load_strict raises ManifestError (a SpecError) holding every error of every document."""
    bad_device = device_doc()
    del bad_device["spec"]["deviceModelRef"]
    bad_model = model_doc()
    bad_model["spec"]["properties"][0]["type"] = "NUMBER"
    text = json.dumps(bad_device) + json.dumps(bad_model)
    with pytest.raises(ManifestError) as caught:
        load_strict(text, source="mixed.json")
    error = caught.value
    assert isinstance(error, SpecError)
    assert isinstance(error, TwinplaneError)
    assert [(i.document, i.path) for i in error.issues] == [
        (0, "spec.deviceModelRef"),
        (1, "spec.properties[0].type"),
    ]
    assert error.source == "mixed.json"
    assert error.path == "spec.deviceModelRef"
    assert error.device == "default/temperature-instance"
    assert str(error).startswith("mixed.json: doc 0 Device default/temperature-instance: ")
    assert str(error).endswith("(and 1 more)")


def test_load_strict_returns_the_result_when_there_is_no_error() -> None:
    """Without errors load_strict returns the objects and the warnings."""
    doc = model_doc()
    doc["spec"]["properties"][0]["type"] = "float"
    result = load_strict(json.dumps(doc))
    assert len(result.models) == 1
    assert [w.code for w in result.warnings] == ["coerced"]


def test_load_file_reads_a_file_and_names_it(tmp_path: Path) -> None:
    """load_file reads YAML from disk; the source is the path; strict raises."""
    good = tmp_path / "good.yaml"
    good.write_text(f"{MODEL_YAML}---\n{DEVICE_YAML}")
    assert len(load_file(good).objects) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Device\n")
    assert load_file(bad).source == str(bad)
    with pytest.raises(ManifestError, match=r"bad\.yaml"):
        load_file(bad, strict=True)
    with pytest.raises(FileNotFoundError):
        load_file(tmp_path / "missing.yaml")


def test_issue_string_forms() -> None:
    """An issue prints with or without its document index; -1 never prints."""
    issue = ManifestIssue(2, "Device", "d", "spec.properties[1].name", "bad", "pattern", "ns")
    assert str(issue) == "doc 2 Device ns/d: spec.properties[1].name: bad"
    assert issue.format(with_document=False) == "Device ns/d: spec.properties[1].name: bad"
    assert issue.object_id == "ns/d"
    registry = ManifestIssue(-1, "Device", "d", "", "gone", "reference", "ns")
    assert str(registry) == "Device ns/d: gone"
    assert str(ManifestIssue(0, "", "", "", "not YAML", "parse")) == "doc 0: not YAML"


def test_manifest_error_needs_an_issue() -> None:
    """ManifestError without issues is a programming error."""
    with pytest.raises(ValueError, match="at least one issue"):
        ManifestError([])
