"""Real-world quirks: read as meant, each with a warning naming its path."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from manifest_cases import device_doc, model_doc

from twinplane.manifests import NANOSECOND_CYCLE_THRESHOLD, load_documents
from twinplane.manifests.quirks import (
    cycle_from_nanoseconds,
    dedent_after_first_line,
    integer_from,
    truth_from_text,
)


def test_quoted_integers_and_booleans_at_typed_fields_are_coerced() -> None:
    """collectCycle: "1000" and reportToCloud: "true" read as 1000 and true, with warnings."""
    doc = device_doc()
    prop = doc["spec"]["properties"][0]
    prop["collectCycle"] = "1000"
    prop["reportToCloud"] = "False"
    prop["pushMethod"]["http"]["port"] = " 8080 "
    prop["pushMethod"]["mqtt"]["retained"] = "TRUE"
    doc["spec"]["stateReport"]["reportCycle"] = "2e3"
    result = load_documents(json.dumps(doc))
    assert result.errors == []
    assert [(w.path, w.code, w.message) for w in result.warnings] == [
        ("spec.properties[0].collectCycle", "coerced", "'1000' read as the integer 1000"),
        ("spec.properties[0].reportToCloud", "coerced", "'False' read as the boolean false"),
        (
            "spec.properties[0].pushMethod.mqtt.retained",
            "coerced",
            "'TRUE' read as the boolean true",
        ),
        ("spec.properties[0].pushMethod.http.port", "coerced", "' 8080 ' read as the integer 8080"),
        ("spec.stateReport.reportCycle", "coerced", "'2e3' read as the integer 2000"),
    ]
    (device,) = result.devices
    got = device.spec.properties[0]
    assert (got.collect_cycle, got.report_to_cloud) == (1000, False)
    assert got.push_method is not None
    assert got.push_method.http is not None
    assert got.push_method.http.port == 8080
    assert device.spec.state_report is not None
    assert device.spec.state_report.report_cycle == 2000


def test_quoted_numbers_inside_config_data_are_left_alone() -> None:
    """ConfigData is free-form: port: "5502" stays a string, without a warning."""
    result = load_documents(json.dumps(device_doc()))
    assert result.warnings == []
    (device,) = result.devices
    assert device.spec.protocol.config_data is not None
    assert device.spec.protocol.config_data["port"] == "5502"


def test_bare_numbers_and_booleans_at_string_fields_are_coerced() -> None:
    """desired.value: 30, minimum: 0, a label 1, state: true read as strings, with warnings."""
    device = device_doc()
    device["spec"]["properties"][1]["desired"]["value"] = 30
    device["metadata"]["labels"]["version"] = 1.5
    model = model_doc()
    model["spec"]["properties"][0]["minimum"] = 0
    model["spec"]["properties"][0]["maximum"] = True
    result = load_documents(json.dumps(device) + json.dumps(model))
    assert result.errors == []
    assert [(w.path, w.message) for w in result.warnings] == [
        (
            "metadata.labels.version",
            "1.5 read as the string '1.5' (the schema wants a string: quote it)",
        ),
        (
            "spec.properties[1].desired.value",
            "30 read as the string '30' (the schema wants a string: quote it)",
        ),
        (
            "spec.properties[0].minimum",
            "0 read as the string '0' (the schema wants a string: quote it)",
        ),
        (
            "spec.properties[0].maximum",
            "True read as the string 'true' (the schema wants a string: quote it)",
        ),
    ]
    desired = result.devices[0].spec.properties[1].desired
    assert desired is not None
    assert desired.value == "30"
    assert result.models[0].spec.properties[0].maximum == "true"


def test_enum_values_in_another_case_are_coerced() -> None:
    """type: float and accessMode: readonly read as FLOAT and ReadOnly, with warnings."""
    model = model_doc()
    model["spec"]["properties"][0]["type"] = "float"
    model["spec"]["properties"][2]["accessMode"] = "readonly"
    result = load_documents(json.dumps(model))
    assert [(w.path, w.message) for w in result.warnings] == [
        ("spec.properties[0].type", "'float' read as 'FLOAT' (enum values are case-sensitive)"),
        (
            "spec.properties[2].accessMode",
            "'readonly' read as 'ReadOnly' (enum values are case-sensitive)",
        ),
    ]
    props = result.models[0].spec.properties
    assert (props[0].type, props[2].access_mode) == ("FLOAT", "ReadOnly")


CYCLE_PATHS = [
    ("spec", "properties", 0, "collectCycle"),
    ("spec", "properties", 0, "reportCycle"),
    ("spec", "stateReport", "reportCycle"),
    ("status", "reportCycle"),
]


def _with_cycle(path: tuple[str | int, ...], value: object) -> dict[str, object]:
    doc = device_doc()
    node = doc
    for part in path[:-1]:
        node = node[part]  # type: ignore[index]
    node[path[-1]] = value  # type: ignore[index]
    return doc


def _dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(f"properties[{p}]" if isinstance(p, int) else p for p in path).replace(
        "properties.properties", "properties"
    )


@given(
    path=st.sampled_from(CYCLE_PATHS),
    nanoseconds=st.integers(NANOSECOND_CYCLE_THRESHOLD, 2**63 - 1),
)
def test_nanosecond_cycles_are_read_as_milliseconds(
    path: tuple[str | int, ...], nanoseconds: int
) -> None:
    """Any cycle >= the threshold is read as nanoseconds, rounded to ms, and said so."""
    result = load_documents(json.dumps(_with_cycle(path, nanoseconds)))
    assert result.errors == []
    millis = (nanoseconds + 500_000) // 1_000_000
    (warning,) = result.warnings
    assert (warning.path, warning.code) == (_dotted(path), "nanoseconds")
    assert warning.message == (
        f"{nanoseconds} looks like nanoseconds (pre-1.18 mapper-framework); read as {millis} ms"
    )
    assert abs(millis * 1_000_000 - nanoseconds) <= 500_000
    assert _cycle_of(result.devices[0].to_dict(), path) == millis


@given(path=st.sampled_from(CYCLE_PATHS), millis=st.integers(0, NANOSECOND_CYCLE_THRESHOLD - 1))
def test_millisecond_cycles_below_the_threshold_are_kept(
    path: tuple[str | int, ...], millis: int
) -> None:
    """Any cycle below the threshold is milliseconds already: kept, no warning."""
    result = load_documents(json.dumps(_with_cycle(path, millis)))
    assert result.errors == []
    assert result.warnings == []
    assert _cycle_of(result.devices[0].to_dict(), path) == millis


def _cycle_of(doc: dict[str, object], path: tuple[str | int, ...]) -> object:
    node: object = doc
    for part in path:
        node = node[part]  # type: ignore[index]
    return node


def test_a_quoted_nanosecond_cycle_gets_both_warnings() -> None:
    """collectCycle: "10000000000" is unquoted, then converted: two warnings, 10000 ms."""
    result = load_documents(json.dumps(_with_cycle(CYCLE_PATHS[0], "10000000000")))
    assert [w.code for w in result.warnings] == ["coerced", "nanoseconds"]
    assert result.devices[0].spec.properties[0].collect_cycle == 10000


def test_the_threshold_is_ten_million() -> None:
    """9,999,999 is milliseconds (2.8 h); 10,000,000 is nanoseconds (10 ms)."""
    assert NANOSECOND_CYCLE_THRESHOLD == 10_000_000
    assert cycle_from_nanoseconds(9_999_999) is None
    assert cycle_from_nanoseconds(10_000_000) == 10
    assert cycle_from_nanoseconds(10_000_000_000) == 10_000
    assert cycle_from_nanoseconds(1_500_499_999) == 1500
    assert cycle_from_nanoseconds(1_500_500_000) == 1501


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1000", 1000),
        (" -7 ", -7),
        ("+3", 3),
        ("1e4", 10000),
        ("2.0", 2),
        ("1.5", None),
        ("ten", None),
        ("", None),
        ("0x10", None),
        ("nan", None),
        ("1e999", None),
    ],
)
def test_integer_from_text(text: str, expected: int | None) -> None:
    """Quoted integers read as integers; fractions and words do not."""
    assert integer_from(text) == expected


def test_integer_from_float() -> None:
    """Integral floats read as integers; others and non-finite ones do not."""
    assert integer_from(3.0) == 3
    assert integer_from(3.5) is None
    assert integer_from(float("inf")) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("False", False), (" TRUE ", True), ("yes", None), ("1", None)],
)
def test_truth_from_text(text: str, expected: bool | None) -> None:
    """Only true/false in any case read as booleans."""
    assert truth_from_text(text) is expected


PASTED = """apiVersion: devices.kubeedge.io/v1beta1
   kind: DeviceModel
   metadata:
     name: pasted
   # a comment
   spec:
     protocol: modbus
"""


def test_a_document_pasted_with_its_first_line_flush_left_is_repaired() -> None:
    """First line in column 0, the rest indented: re-indented with a warning, as meant."""
    result = load_documents(PASTED)
    assert result.errors == []
    assert [o.id for o in result.objects] == ["default/pasted"]
    (warning,) = result.warnings
    assert (warning.path, warning.code, warning.kind, warning.name) == (
        "",
        "indentation",
        "DeviceModel",
        "pasted",
    )
    assert "indented by 3 spaces" in warning.message


def test_dedent_only_applies_to_that_shape() -> None:
    """Uniform indentation, one line, or a flush-left second line are left alone."""
    assert dedent_after_first_line("a: 1\n  b: 2\n") == ("a: 1\nb: 2\n", 2)
    assert dedent_after_first_line("---\na: 1\n  b: 2\n\n  # c\n") == (
        "---\na: 1\nb: 2\n\n# c\n",
        2,
    )
    assert dedent_after_first_line("  a: 1\n  b: 2\n") is None
    assert dedent_after_first_line("a: 1\n") is None
    assert dedent_after_first_line("a: 1\nb: 2\n  c: 3\n") is None


def test_a_broken_document_that_dedenting_does_not_fix_stays_an_error() -> None:
    """When the repair does not parse either, the original syntax error is reported."""
    result = load_documents("a: 1\n  b: [\n")
    assert [e.code for e in result.errors] == ["parse"]


def test_unquoted_timestamps_stay_strings() -> None:
    """Unquoted timestamps (lastOnlineTime, dates in extensions) stay strings, as in Kubernetes."""
    text = """
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceStatus
metadata: {name: s}
status:
  lastOnlineTime: 2024-05-01T10:00:00Z
  extensions: {installed: 2024-05-01}
"""
    result = load_documents(text)
    assert result.errors == []
    assert result.warnings == []
    status = result.statuses[0].status
    assert status is not None
    assert status.last_online_time == "2024-05-01T10:00:00Z"
    assert status.extensions == {"installed": "2024-05-01"}


def test_non_string_keys_in_config_data_become_strings() -> None:
    """A YAML key like 1 or 2.5 in configData is read as a string, with a warning."""
    text = """
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: m}
spec:
  protocol: modbus
  protocolConfigData: {1: one, 2.5: yes}
"""
    result = load_documents(text)
    assert result.errors == []
    assert [w.path for w in result.warnings] == [
        'spec.protocolConfigData["1"]',
        'spec.protocolConfigData["2.5"]',
    ]
    assert result.models[0].spec.protocol_config_data == {"1": "one", "2.5": True}
