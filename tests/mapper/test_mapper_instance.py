"""Decoding a DMI Device for the mapper: Any configData, cycles, queue capacity, spec keys."""

from __future__ import annotations

import logging

import pytest
from google.protobuf import any_pb2, wrappers_pb2

from twinplane.dmi.v1beta1 import api_pb2
from twinplane.mapper.instance import DeviceInstance, spec_key


def packed(value: float | str) -> any_pb2.Any:
    """A value wrapped the way EdgeCore wraps it (numbers as FloatValue)."""
    out = any_pb2.Any()
    if isinstance(value, str):
        out.Pack(wrappers_pb2.StringValue(value=value))
    else:
        out.Pack(wrappers_pb2.FloatValue(value=value))
    return out


def device(collect: int, report: int, desired: str = "") -> api_pb2.Device:
    """A modbus Device as EdgeCore sends it."""
    pb = api_pb2.Device(name="d", namespace="ns")
    pb.spec.deviceModelReference = "m"
    pb.spec.protocol.protocolName = "modbus"
    pb.spec.protocol.configData.data["port"].CopyFrom(packed(502.0))
    pb.spec.protocol.configData.data["ip"].CopyFrom(packed("10.0.0.1"))
    prop = pb.spec.properties.add(name="t", collectCycle=collect, reportCycle=report)
    prop.desired.value = desired
    prop.visitors.configData.data["offset"].CopyFrom(packed(3.0))
    prop.visitors.configData.data["scale"].CopyFrom(packed(0.1))
    return pb


MODEL = api_pb2.DeviceModel(
    name="m",
    namespace="ns",
    spec=api_pb2.DeviceModelSpec(
        properties=[api_pb2.ModelProperty(name="t", type="float", accessMode="ReadWrite")]
    ),
)


def test_float_integers_are_coerced_and_types_come_from_the_model() -> None:
    """FloatValue 502.0 becomes 502; 0.1 stays 0.1; the model's lower-case type is upper-cased."""
    inst = DeviceInstance.from_proto(device(1000, 1000), MODEL)
    assert inst.id == "ns/d"
    assert inst.protocol.config == {"port": 502, "ip": "10.0.0.1"}
    assert inst.properties[0].visitor == {"offset": 3, "scale": 0.1}
    assert inst.properties[0].type == "FLOAT"


def test_queue_capacity_is_report_over_collect_cycles() -> None:
    """ceil(reportCycle / collectCycle), at least 1; a zero cycle is the 1 s default."""
    assert DeviceInstance.from_proto(device(300, 1000), MODEL).properties[0].queue_capacity == 4
    assert DeviceInstance.from_proto(device(1000, 100), MODEL).properties[0].queue_capacity == 1
    assert DeviceInstance.from_proto(device(0, 0), MODEL).collect_cycle_ms == 1000


def test_each_property_keeps_its_own_cycle_and_ring() -> None:
    """Properties at 200 and 600 ms: rings of their own samples per report; polls at 200 ms."""
    pb = device(200, 1200)
    slow = pb.spec.properties.add(name="u", collectCycle=600, reportCycle=1200)
    slow.visitors.configData.data["offset"].CopyFrom(packed(4.0))
    inst = DeviceInstance.from_proto(pb, MODEL)
    assert [p.collect_cycle_ms for p in inst.properties] == [200, 600]
    capacities = [spec.get("queue_capacity") for spec in inst.engine_specs(frames=True)]
    assert capacities == [6, 2]
    assert inst.collect_cycle_ms == 200


def test_nanosecond_cycles_are_converted_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A pre-1.18 cycle of 10_000_000_000 ns is 10 s, and a warning says so."""
    with caplog.at_level(logging.WARNING):
        inst = DeviceInstance.from_proto(device(10_000_000_000, 10_000_000_000), MODEL)
    assert inst.collect_cycle_ms == 10_000
    assert "nanoseconds" in caplog.text


def test_spec_key_ignores_desired_values_only() -> None:
    """Two devices that differ only in desired values share a key; another cycle does not."""
    assert spec_key(device(100, 100, "1")) == spec_key(device(100, 100, "2"))
    assert spec_key(device(100, 100)) != spec_key(device(200, 100))
