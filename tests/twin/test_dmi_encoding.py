"""DMI v1beta1 ``ReportDeviceStatusRequest``: encoding changes and applying mappers' reports."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
from twinplane.dmi.v1beta1 import api_pb2
from twinplane.errors import SpecError
from twinplane.twin import Engine, PropertySpec

from .engine_strategies import (
    assert_same_changes,
    both,
    change_sets,
    property_specs,
    same_outcome,
    snapshot,
    values,
)

pytestmark = pytest.mark.engine


def from_generated_protobuf(payload: bytes) -> dict[str, Any]:
    """A request parsed by the generated protobuf module, as the reference's fields."""
    request = api_pb2.ReportDeviceStatusRequest.FromString(payload)

    def side(twin: Any, name: str) -> dict[str, Any] | None:  # noqa: ANN401 - a message
        if not twin.HasField(name):
            return None
        prop = getattr(twin, name)
        return {"value": prop.value, "metadata": dict(prop.metadata)}

    return {
        "deviceName": request.deviceName,
        "deviceNamespace": request.deviceNamespace,
        "twins": [
            {
                "propertyName": t.propertyName,
                "observedDesired": side(t, "observedDesired"),
                "reported": side(t, "reported"),
            }
            for t in request.reportedDevice.twins
        ],
    }


@given(st.data())
def test_dmi_requests_match_reference_field_by_field(data: st.DataObject) -> None:
    """to_dmi encodes reported twins as the reference and the generated protobuf read them."""
    for got, want in change_sets(data):
        encoded = got.to_dmi()
        assert [device for device, _ in encoded] == [device for device, _ in want.dmi_requests()]
        for (_, payload), (_, fields) in zip(encoded, want.dmi_requests(), strict=True):
            assert ref.read_report_request(payload) == fields
            assert from_generated_protobuf(payload) == fields
        assert encoded == want.to_dmi()


def test_dmi_request_golden_bytes() -> None:
    """One INT twin read at 1000 ms encodes to the bytes the spec's field numbers give."""

    def field(number: int, body: bytes) -> bytes:  # length-delimited, short
        return bytes([number << 3 | 2, len(body)]) + body

    def entry(key: bytes, value: bytes) -> bytes:  # TwinProperty.metadata = 2
        return field(2, field(1, key) + field(2, value))

    observed = entry(b"timestamp", b"") + entry(b"type", b"int")  # no value: omitted
    reported = field(1, b"5") + entry(b"timestamp", b"1000") + entry(b"type", b"int")
    twin = field(1, b"t") + field(2, observed) + field(3, reported)
    expected = field(1, b"dev") + field(2, field(1, twin)) + field(3, b"ns1")
    engine, _ = both([{"name": "t", "type": "INT"}], "ns1/dev")
    changes = engine.apply_reported("ns1/dev", [("t", "5", 1000)])
    assert changes.to_dmi() == [("ns1/dev", expected)]
    assert len(expected) == 84


@st.composite
def mapper_reports(draw: st.DrawFn, specs: list[PropertySpec]) -> bytes:
    """A mapper's serialized report for device ``ns/dev``.

    Some twins have reported values (canonical text or not, with or without a timestamp),
    some have none.
    """
    twins = []
    for spec in draw(st.lists(st.sampled_from(specs), max_size=5)):
        ty = spec["type"]
        text = ref.canonical(ty, draw(values(ty)))
        if draw(st.integers(0, 9)) == 0:
            text = draw(st.text(max_size=4))
        stamp = draw(st.sampled_from(["", "17", "-3", "x", str(2**63)]))
        reported = {"value": text, "metadata": {"timestamp": stamp, "type": "string"}}
        twins.append(
            {
                "propertyName": draw(st.sampled_from([spec["name"], spec["name"], "nope"])),
                "observedDesired": None,
                "reported": None if draw(st.integers(0, 5)) == 0 else reported,
            }
        )
    return ref.write_report_request({"deviceName": "dev", "deviceNamespace": "ns", "twins": twins})


@given(property_specs(), st.data())
def test_applying_dmi_reports_matches_reference(
    specs: list[PropertySpec], data: st.DataObject
) -> None:
    """apply_dmi_report applies a mapper's report (or refuses it whole) as the reference."""
    engine, model = both(specs)
    for receive in range(data.draw(st.integers(1, 4))):
        payload = data.draw(mapper_reports(specs))
        outcome = same_outcome(
            lambda p=payload, t=receive: engine.apply_dmi_report(p, t),  # type: ignore[misc]
            lambda p=payload, t=receive: model.apply_dmi_report(p, t),  # type: ignore[misc]
        )
        if outcome is not None:
            assert_same_changes(*outcome)
        assert snapshot(engine) == snapshot(model)


@given(st.data())
def test_dmi_round_trip_from_mapper_to_device_manager(data: st.DataObject) -> None:
    """What a mapper's engine encodes, a device manager's engine applies unchanged."""
    specs = data.draw(property_specs())
    mapper, manager = Engine(), Engine()
    mapper.upsert_device("ns/dev", specs)
    manager.upsert_device("ns/dev", specs)
    for ts in range(data.draw(st.integers(1, 4))):
        batch = [
            (s["name"], ref.canonical(s["type"], data.draw(values(s["type"]))), ts) for s in specs
        ]
        for _, payload in mapper.apply_reported("ns/dev", batch).to_dmi():
            manager.apply_dmi_report(payload, 0)

    def reported(e: Engine) -> dict[str, object]:
        return {k: t["reported"] for k, t in e.twins("ns/dev").items()}

    assert reported(manager) == reported(mapper)


@given(st.data())
def test_malformed_dmi_reports_raise_spec_error(data: st.DataObject) -> None:
    """A damaged report is applied as the reference reads it, or refused with SpecError."""
    specs: list[PropertySpec] = [{"name": "a", "type": "INT"}, {"name": "b", "type": "STRING"}]
    engine, model = both(specs)
    payload = bytearray(data.draw(mapper_reports(specs)))
    at = data.draw(st.integers(0, len(payload)))
    how = data.draw(st.sampled_from(["cut", "change", "insert"]))
    if how == "cut":
        del payload[at:]
    elif how == "change" and at < len(payload):
        payload[at] = data.draw(st.integers(0, 255))
    else:
        payload[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    before = snapshot(engine)
    try:
        ref.read_report_request(bytes(payload))
    except ValueError:
        with pytest.raises(SpecError) as info:
            engine.apply_dmi_report(bytes(payload), 0)
        assert (info.value.path or "").startswith("ReportDeviceStatusRequest")
        assert snapshot(engine) == before
        return
    outcome = same_outcome(
        lambda: engine.apply_dmi_report(bytes(payload), 0),
        lambda: model.apply_dmi_report(bytes(payload), 0),
    )
    if outcome is not None:
        assert_same_changes(*outcome)
    assert snapshot(engine) == snapshot(model)
