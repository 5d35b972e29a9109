"""The configData codec (spec §1.3): scalars packed in google.protobuf.Any like EdgeCore does."""

from __future__ import annotations

import math
import struct

import pytest
from google.protobuf import any_pb2, struct_pb2, wrappers_pb2
from hypothesis import given
from hypothesis import strategies as st

from twinplane.dmi.anyvalue import (
    TYPE_URL_PREFIX,
    decode_config,
    decode_value,
    encode_config,
    encode_value,
    fill_customized_value,
)
from twinplane.dmi.v1beta1 import api_pb2
from twinplane.errors import SpecError

PATH = "spec.properties[0].visitors.configData"
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _wrapper_name(value: any_pb2.Any) -> str:
    assert value.type_url.startswith("type.googleapis.com/google.protobuf.")
    return value.type_url.rpartition(".")[2]


def _round_trip(value: object) -> object:
    return decode_config(encode_config({"k": value}, PATH), PATH)["k"]


def _f32(value: float) -> float:
    """``value`` narrowed to float32 and widened back, as the wire carries a FloatValue."""
    result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return result


# --- encoding: which wrapper ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "wrapper"),
    [
        ("modbus", "StringValue"),
        ("", "StringValue"),
        ("502", "StringValue"),
        (True, "BoolValue"),
        (False, "BoolValue"),
        (0, "Int32Value"),
        (1, "Int32Value"),
        (INT32_MAX, "Int32Value"),
        (INT32_MIN, "Int32Value"),
        (INT32_MAX + 1, "Int64Value"),
        (INT32_MIN - 1, "Int64Value"),
        (INT64_MAX, "Int64Value"),
        (INT64_MIN, "Int64Value"),
        (1.5, "FloatValue"),
        (502.0, "FloatValue"),
        (-0.0, "FloatValue"),
    ],
)
def test_wrapper_per_kind(value: object, wrapper: str) -> None:
    """Each scalar kind is packed in the wrapper EdgeCore uses, with the standard type URL."""
    packed = encode_value(value, PATH)
    assert packed.type_url == f"type.googleapis.com/google.protobuf.{wrapper}"
    assert TYPE_URL_PREFIX == "type.googleapis.com/"
    assert _wrapper_name(packed) == wrapper


def test_bool_is_not_an_int() -> None:
    """True is a BoolValue holding true, not an Int32Value holding 1."""
    packed = encode_value(True, PATH)
    unpacked = wrappers_pb2.BoolValue()
    assert packed.Unpack(unpacked)
    assert unpacked.value is True
    assert _round_trip(True) is True


def test_golden_bytes_of_each_wrapper() -> None:
    """The packed bytes are the wrapper's field 1 with the expected wire type."""
    encoded = encode_config({"s": "ab", "b": True, "i": 502, "l": 2**32, "f": 0.5}, PATH)
    assert encoded["s"].value == b"\x0a\x02ab"
    assert encoded["b"].value == b"\x08\x01"
    assert encoded["i"].value == b"\x08\xf6\x03"
    assert encoded["l"].value == b"\x08\x80\x80\x80\x80\x10"
    assert encoded["f"].value == b"\x0d" + struct.pack("<f", 0.5)


# --- round trips -------------------------------------------------------------------------------


@given(st.integers(min_value=INT64_MIN, max_value=INT64_MAX))
def test_int_round_trip(value: int) -> None:
    """Every 64-bit integer comes back exactly, as an int."""
    decoded = _round_trip(value)
    assert type(decoded) is int
    assert decoded == value


@given(st.text())
def test_string_round_trip(value: str) -> None:
    """Every string comes back exactly."""
    assert _round_trip(value) == value


@given(st.booleans())
def test_bool_round_trip(value: bool) -> None:
    """Booleans come back as booleans."""
    assert _round_trip(value) is value


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_float32_round_trip(value: float) -> None:
    """A float32 comes back as a float naming the same float32, in its shortest decimal form."""
    decoded = _round_trip(value)
    assert type(decoded) is float
    assert _f32(decoded) == value or (value == 0 and decoded == 0)
    assert math.copysign(1.0, decoded) == math.copysign(1.0, value)
    assert len(repr(decoded)) <= len(repr(value))


@given(st.floats(min_value=-3.4e38, max_value=3.4e38))
def test_float64_narrows_to_float32(value: float) -> None:
    """A double is narrowed to the nearest float32, as EdgeCore's float32(m) does."""
    decoded = _round_trip(value)
    assert isinstance(decoded, float)
    assert _f32(decoded) == _f32(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.1, 0.1), (502.0, 502.0), (0.001, 0.001), (1e-45, 1e-45), (3.4028235e38, 3.4028235e38)],
)
def test_float_decodes_to_shortest_decimal(value: float, expected: float) -> None:
    """0.1 arrives as 0.1, as a Go mapper reads it, not as float32's 0.10000000149011612."""
    decoded = _round_trip(value)
    assert decoded == expected
    assert repr(decoded) == repr(expected)


def test_float32_precision_loss_like_go() -> None:
    """2**24 + 1 sent as a number loses precision, as float32(16777217.0) does in Go."""
    assert _round_trip(float(2**24 + 1)) == float(2**24)
    assert _round_trip(float(2**24)) == float(2**24)
    # As an integer it travels in an Int32Value and keeps every digit.
    assert _round_trip(2**24 + 1) == 2**24 + 1


def test_integral_float_stays_float() -> None:
    """EdgeCore's port: 502 (a FloatValue) decodes to the float 502.0; callers coerce."""
    packed = any_pb2.Any(
        type_url="type.googleapis.com/google.protobuf.FloatValue",
        value=b"\x0d" + struct.pack("<f", 502.0),
    )
    decoded = decode_config({"port": packed}, PATH)
    assert decoded == {"port": 502.0}
    assert type(decoded["port"]) is float


def test_config_round_trip_keeps_every_key() -> None:
    """A whole visitor config round-trips key by key."""
    config = {
        "register": "HoldingRegister",
        "offset": 2,
        "limit": 1,
        "scale": 0.1,
        "isSwap": True,
        "isRegisterSwap": False,
        "big": 2**40,
    }
    assert decode_config(encode_config(config, PATH), PATH) == config


# --- decoding what other peers send -------------------------------------------------------------


@pytest.mark.parametrize(
    ("wrapper", "expected"),
    [
        (wrappers_pb2.DoubleValue(value=0.1), 0.1),
        (wrappers_pb2.UInt32Value(value=2**32 - 1), 2**32 - 1),
        (wrappers_pb2.UInt64Value(value=2**64 - 1), 2**64 - 1),
        (wrappers_pb2.Int64Value(value=-5), -5),
        (wrappers_pb2.StringValue(value="x"), "x"),
    ],
)
def test_liberal_decoding(wrapper: wrappers_pb2.DoubleValue, expected: object) -> None:
    """DoubleValue, UInt32Value and UInt64Value are accepted besides EdgeCore's five."""
    packed = any_pb2.Any()
    packed.Pack(wrapper)
    assert decode_value(packed, PATH) == expected


def test_type_url_host_is_ignored() -> None:
    """Only the name after the last slash counts, as in mapper-framework."""
    packed = any_pb2.Any(type_url="example.com/types/google.protobuf.Int32Value", value=b"\x08\x07")
    assert decode_value(packed, PATH) == 7


@pytest.mark.parametrize(
    "type_url",
    [
        "type.googleapis.com/google.protobuf.Struct",
        "type.googleapis.com/google.protobuf.ListValue",
        "type.googleapis.com/v1beta1.Device",
        "",
    ],
)
def test_unknown_type_url_names_the_key(type_url: str) -> None:
    """A wrapper outside the accepted set raises SpecError with the key's path."""
    packed = any_pb2.Any(type_url=type_url, value=b"")
    with pytest.raises(SpecError, match="accepted are") as caught:
        decode_config({"ok": encode_value(1, PATH), "nested": packed}, PATH)
    assert caught.value.path == f"{PATH}.nested"


@pytest.mark.parametrize(
    ("type_name", "raw"),
    [
        ("Int32Value", b"\x08"),  # varint cut short
        ("FloatValue", b"\x0d\x00\x00"),  # fixed32 cut short
        ("StringValue", b"\x0a\x01\xff"),  # not UTF-8
        ("BoolValue", b"\xff"),  # a tag that never ends
    ],
)
def test_undecodable_value_names_the_key(type_name: str, raw: bytes) -> None:
    """Bytes that do not parse as the named wrapper raise SpecError with the key's path."""
    packed = any_pb2.Any(type_url=f"type.googleapis.com/google.protobuf.{type_name}", value=raw)
    with pytest.raises(SpecError, match=f"not a valid google.protobuf.{type_name}") as caught:
        decode_config({"offset": packed}, PATH)
    assert caught.value.path == f"{PATH}.offset"


def test_struct_value_is_refused() -> None:
    """A google.protobuf.Struct (a nested object) is not decoded: Go mappers refuse it too."""
    packed = any_pb2.Any()
    packed.Pack(struct_pb2.Struct())
    with pytest.raises(SpecError):
        decode_value(packed, PATH)


# --- encoding errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [({"ip": "127.0.0.1"}, "dict"), ([1, 2], "list"), (None, "null"), (b"\x00", "bytes")],
)
def test_non_scalar_is_refused_with_its_path(value: object, kind: str) -> None:
    """Nested values, lists, null and bytes raise SpecError naming the key and the Go rule."""
    with pytest.raises(SpecError) as caught:
        encode_config({"port": 502, "tcp": value}, PATH)
    assert caught.value.path == f"{PATH}.tcp"
    assert "Go mappers accept only scalar configData values" in str(caught.value)
    assert kind in str(caught.value)


def test_nested_path_is_the_callers() -> None:
    """The error path is the caller's path plus the key, at any depth the caller reports."""
    with pytest.raises(SpecError) as caught:
        encode_config({"common": {"com": {}}}, "spec.protocol.configData")
    assert caught.value.path == "spec.protocol.configData.common"


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**64])
def test_int_beyond_64_bits_is_refused(value: int) -> None:
    """An integer that fits no wrapper raises SpecError."""
    with pytest.raises(SpecError, match="64 bits") as caught:
        encode_config({"n": value}, PATH)
    assert caught.value.path == f"{PATH}.n"


@pytest.mark.parametrize("value", [1e39, -1e39, math.inf, -math.inf, math.nan])
def test_float_that_float32_cannot_carry_is_refused(value: float) -> None:
    """Overflowing or non-finite numbers raise SpecError instead of sending an infinity."""
    with pytest.raises(SpecError) as caught:
        encode_config({"scale": value}, PATH)
    assert caught.value.path == f"{PATH}.scale"


def test_lone_surrogate_is_refused() -> None:
    """A string that is not valid Unicode text raises SpecError, not UnicodeEncodeError."""
    with pytest.raises(SpecError) as caught:
        encode_config({"name": "\ud800"}, PATH)
    assert caught.value.path == f"{PATH}.name"


# --- fill_customized_value ----------------------------------------------------------------------


def test_fill_sets_the_map() -> None:
    """The message's data holds exactly the encoded values."""
    visitor = api_pb2.VisitorConfig(protocolName="modbus")
    fill_customized_value(visitor.configData, {"offset": 2, "register": "HoldingRegister"}, PATH)
    assert decode_config(visitor.configData.data, PATH) == {
        "offset": 2,
        "register": "HoldingRegister",
    }


def test_fill_marks_empty_config_present() -> None:
    """An empty configData is still sent, so a Go mapper never sees a nil pointer (§1.4)."""
    visitor = api_pb2.VisitorConfig(protocolName="modbus")
    fill_customized_value(visitor.configData, {}, PATH)
    assert visitor.HasField("configData")
    assert visitor.SerializeToString() == b"\x0a\x06modbus\x12\x00"


def test_fill_replaces_previous_content() -> None:
    """Keys from an earlier fill do not survive a new one."""
    config = api_pb2.CustomizedValue()
    fill_customized_value(config, {"a": 1, "b": 2}, PATH)
    fill_customized_value(config, {"b": 3}, PATH)
    assert decode_config(config.data, PATH) == {"b": 3}


def test_fill_leaves_message_unchanged_on_error() -> None:
    """A bad value raises before anything is written."""
    config = api_pb2.CustomizedValue()
    fill_customized_value(config, {"a": 1}, PATH)
    with pytest.raises(SpecError):
        fill_customized_value(config, {"b": 2, "c": [3]}, PATH)
    assert decode_config(config.data, PATH) == {"a": 1}


def test_fill_anomaly_detection() -> None:
    """AnomalyDetection.data, the other Any map of the contract, is filled the same way."""
    push = api_pb2.PushMethod()
    fill_customized_value(push.anomalyDetection, {"algorithm": "zscore", "window": 10}, PATH)
    assert push.HasField("anomalyDetection")
    assert decode_config(push.anomalyDetection.data, PATH) == {"algorithm": "zscore", "window": 10}
