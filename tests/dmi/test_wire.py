"""Decoding with the failing field and byte offset.

The walk agrees with upb on what parses, and with the twin engine's ``ReportDeviceStatusRequest``
decoder on the words.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from google.protobuf.message import DecodeError, Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twinplane.dmi.v1beta1 import api_pb2
from twinplane.dmi.wire import WireError, decode, locate_error
from twinplane.errors import SpecError
from twinplane.stream.v1 import stream_pb2
from twinplane.twin import Engine

MESSAGES: list[type[Message]] = [
    api_pb2.MapperRegisterRequest,
    api_pb2.ReportDeviceStatesRequest,
    api_pb2.ReportDeviceStatusRequest,
    stream_pb2.ReportBatch,
    stream_pb2.CapabilitiesRequest,
]

_text = st.text(max_size=12)


def _register(with_data: bool, name: str, protocol: str, address: bytes) -> bytes:
    mapper = api_pb2.MapperInfo(name=name, protocol=protocol, address=address, state="ok")
    return api_pb2.MapperRegisterRequest(withData=with_data, mapper=mapper).SerializeToString()


def _status(device: str, namespace: str, twins: dict[str, str]) -> bytes:
    return api_pb2.ReportDeviceStatusRequest(
        deviceName=device,
        deviceNamespace=namespace,
        reportedDevice=api_pb2.DeviceStatus(
            twins=[
                api_pb2.Twin(
                    propertyName=p,
                    reported=api_pb2.TwinProperty(value=v, metadata={"timestamp": "1"}),
                )
                for p, v in twins.items()
            ]
        ),
    ).SerializeToString()


VALID = st.one_of(
    st.builds(_register, st.booleans(), _text, _text, st.binary(max_size=8)),
    st.builds(
        lambda n, ns, s: api_pb2.ReportDeviceStatesRequest(
            deviceName=n, deviceNamespace=ns, state=s
        ).SerializeToString(),
        _text,
        _text,
        _text,
    ),
    st.builds(_status, _text, _text, st.dictionaries(_text, _text, max_size=3)),
    st.builds(
        lambda seq, reports: stream_pb2.ReportBatch(seq=seq, reports=reports).SerializeToString(),
        st.integers(0, 2**64 - 1),
        st.lists(st.binary(max_size=6), max_size=3),
    ),
)
"""Valid messages of every type, to be damaged."""


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """A valid message cut, overwritten, or with bytes inserted or appended (or pure noise)."""
    data = bytearray(draw(VALID))
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["cut", "set", "insert"]))
        if action == "cut":
            del data[where:]
        elif action == "set" and where < len(data):
            data[where] = draw(st.integers(0, 255))
        else:
            data[where:where] = draw(st.binary(min_size=1, max_size=4))
    if draw(st.booleans()):
        data += draw(st.binary(max_size=12))
    return bytes(data)


def _upb_refuses(message_type: type[Message], data: bytes) -> bool:
    try:
        message_type.FromString(data)
    except DecodeError:
        return True
    return False


@settings(max_examples=3000, suppress_health_check=[HealthCheck.too_slow])
@given(data=damaged(), message_type=st.sampled_from(MESSAGES))
def test_the_walk_finds_a_failure_exactly_when_upb_refuses(
    data: bytes, message_type: type[Message]
) -> None:
    """For any bytes, the walk over the descriptor fails iff upb refuses, within the input."""
    found = locate_error(message_type, data)
    if _upb_refuses(message_type, data):
        assert 0 <= found.offset <= len(data), found
        assert found.path is not None
        assert found.path.startswith(message_type.DESCRIPTOR.name)
        with pytest.raises(WireError) as info:
            decode(message_type, data)
        assert str(info.value) == str(found)
    else:
        assert found.offset == -1
        assert decode(message_type, data) == message_type.FromString(data)


@pytest.mark.parametrize(
    ("message_type", "data", "text"),
    [
        (
            api_pb2.MapperRegisterRequest,
            b"\x08\x01\x12\x04\x0a\x03ab",
            "MapperRegisterRequest.mapper.name: length-delimited field of 3 bytes at byte 6"
            " runs past the end (2 bytes left)",
        ),
        (
            api_pb2.MapperRegisterRequest,
            b"\x12\x04\x22\x02\xc3\x28",
            "MapperRegisterRequest.mapper.protocol: invalid UTF-8 at byte 4",
        ),
        (
            api_pb2.MapperRegisterRequest,
            b"\x12\x02\x2a\x05",
            "MapperRegisterRequest.mapper.address: length-delimited field of 5 bytes at byte 4"
            " runs past the end (0 bytes left)",
        ),
        (
            api_pb2.ReportDeviceStatesRequest,
            b"\x0a\x01d\x1a\x80",
            "ReportDeviceStatesRequest.state: truncated varint at byte 4",
        ),
        (
            stream_pb2.ReportBatch,
            b"\x08\x07\x12\x02\x0a\x01\x12\x09",
            "ReportBatch.reports[1]: length-delimited field of 9 bytes at byte 8 runs past the"
            " end (0 bytes left)",
        ),
        (stream_pb2.ReportBatch, b"\x08\x01\x3f", "ReportBatch.#7: invalid wire type 7 at byte 2"),
        (
            stream_pb2.ReportBatch,
            b"\x5b\x08\x01\x64",
            "ReportBatch.#11: end-group tag #12 at byte 3 closes group #11",
        ),
        (
            stream_pb2.ReportBatch,
            b"\x5b\x08\x01",
            "ReportBatch.#11: group at byte 0 has no end-group tag",
        ),
        (
            stream_pb2.ReportBatch,
            b"\x0c",
            "ReportBatch.seq: end-group tag at byte 0 closes no group",
        ),
    ],
)
def test_errors_name_the_field_and_the_byte_offset(
    message_type: type[Message], data: bytes, text: str
) -> None:
    """A bad message's error is ``<path>: <what> at byte N``, a SpecError with path and offset."""
    with pytest.raises(WireError) as info:
        decode(message_type, data)
    err = info.value
    assert str(err) == text
    assert isinstance(err, SpecError)
    assert err.path == text.partition(":")[0]
    assert f"at byte {err.offset}" in text


@pytest.mark.parametrize(
    ("message_type", "wrap", "deepest_ok"),
    [
        (stream_pb2.ReportBatch, lambda groups: groups, 100),
        # Inside MapperRegisterRequest.mapper the message itself is one level.
        (
            api_pb2.MapperRegisterRequest,
            lambda groups: b"\x12" + _varint(len(groups)) + groups,
            99,
        ),
    ],
)
def test_nesting_limit_is_upb_s_to_the_level(
    message_type: type[Message], wrap: Callable[[bytes], bytes], deepest_ok: int
) -> None:
    """Groups nested one level past upb's limit are refused by both, with the offset."""
    for depth in (deepest_ok, deepest_ok + 1):
        data = wrap(b"\x5b" * depth + b"\x5c" * depth)  # unknown group #11 inside itself
        refused = depth > deepest_ok
        assert _upb_refuses(message_type, data) is refused
        err = locate_error(message_type, data)
        assert (err.offset >= 0) is refused, err
        if refused:
            assert "nested deeper than 100" in str(err)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@pytest.mark.engine
@pytest.mark.parametrize(
    "data",
    [
        bytes([0x0A, 1, 0x61, 0x1A, 9]),  # deviceNamespace runs past the end
        bytes([0x1A, 1, 0xFF]),  # deviceNamespace not UTF-8
        bytes([0x0E]),  # wire type 6
        bytes([0x80]),  # truncated tag
        bytes([0x00, 0x00]),  # field number 0
        bytes([0x12, 3, 0x0A, 1, 0x0A]),  # reportedDevice.twins[0] past the end
        bytes([0x12, 6, 0x0A, 4, 0x0A, 2, 0xC3, 0x28]),  # a twin's propertyName not UTF-8
    ],
)
def test_words_match_the_engine_decoder(data: bytes) -> None:
    """For ReportDeviceStatusRequest the text is the twin engine's, word for word."""
    with pytest.raises(SpecError) as engine:
        Engine().apply_dmi_report(data, 0)
    with pytest.raises(WireError) as wire:
        decode(api_pb2.ReportDeviceStatusRequest, data)
    assert str(wire.value) == str(engine.value)
