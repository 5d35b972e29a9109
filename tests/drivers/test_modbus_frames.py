"""Modbus frames: round trips of every request and response, and every malformed response."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twinplane.drivers.modbus.errors import (
    ExceptionCode,
    ModbusExceptionError,
    ModbusFrameError,
    ModbusRequestError,
)
from twinplane.drivers.modbus.frames import (
    MAX_COUNT,
    MBAP,
    READ_ADU,
    READ_FUNCTIONS,
    Function,
    Request,
    check_write_response,
    decode_mbap,
    decode_read_response,
    decode_request,
    encode_adu,
    encode_exception_response,
    encode_read_request,
    encode_read_response,
    encode_write,
    encode_write_coils,
    encode_write_registers,
    encode_write_response,
    encode_write_single_coil,
    encode_write_single_register,
    pack_bits,
    pack_registers,
    read_function,
    read_size,
    unpack_bits,
    unpack_registers,
)
from twinplane.errors import TwinplaneError

READS = [1, 2, 3, 4]
registers = st.integers(0, 0xFFFF)


@st.composite
def reads(draw: st.DrawFn) -> tuple[int, int, int]:
    """A valid read: function, address, count."""
    function = draw(st.sampled_from(READS))
    count = draw(st.integers(1, MAX_COUNT[function]))
    address = draw(st.integers(0, 0x10000 - count))
    return function, address, count


@st.composite
def writes(draw: st.DrawFn) -> tuple[int, int, list[bool] | list[int]]:
    """A valid write as the engine's tuple: function, address, values."""
    function = draw(st.sampled_from([5, 6, 15, 16]))
    count = 1 if function in (5, 6) else draw(st.integers(1, 40))  # the largest: below
    address = draw(st.integers(0, 0x10000 - count))
    values: list[bool] | list[int]
    if function in (5, 15):
        values = draw(st.lists(st.booleans(), min_size=count, max_size=count))
    else:
        values = draw(st.lists(registers, min_size=count, max_size=count))
    return function, address, values


# --- round trips ------------------------------------------------------------------------------


@given(reads())
def test_read_request_round_trip(read: tuple[int, int, int]) -> None:
    """A read request decodes, on the server side, to what was encoded."""
    function, address, count = read
    assert decode_request(encode_read_request(function, address, count)) == Request(
        function, address, count
    )


@given(reads(), st.integers(0, 0xFFFF), st.integers(0, 0xFF))
def test_read_adu_is_the_mbap_and_the_pdu(read: tuple[int, int, int], tid: int, unit: int) -> None:
    """The one-pack read ADU is the MBAP header followed by the read PDU."""
    function, address, count = read
    pdu = encode_read_request(function, address, count)
    adu = READ_ADU.pack(tid, 0, 6, unit, function, address, count)
    assert adu == encode_adu(tid, unit, pdu)
    assert decode_mbap(adu) == (tid, 6, unit)


@given(writes())
def test_write_request_round_trip(write: tuple[int, int, list[bool] | list[int]]) -> None:
    """A write request decodes to the function, address and values that were encoded."""
    function, address, values = write
    request = decode_request(encode_write(function, address, values))
    assert (request.function, request.address, request.count) == (function, address, len(values))
    assert list(request.values) == list(values)


@pytest.mark.parametrize(("function", "count"), [(15, 1968), (16, 123), (1, 2000), (3, 125)])
def test_largest_requests_round_trip(function: int, count: int) -> None:
    """The largest request of each function encodes, decodes and is answered in one frame."""
    if function in (1, 3):
        pdu = encode_read_request(function, 0x10000 - count, count)
        assert decode_request(pdu) == Request(function, 0x10000 - count, count)
        size = read_size(function, 0, count)
        assert len(encode_read_response(function, bytes(size))) <= 253
        return
    values: list[bool] | list[int] = (
        [i % 3 == 0 for i in range(count)] if function == 15 else list(range(count))
    )
    pdu = encode_write(function, 0x10000 - count, values)
    assert len(pdu) <= 253
    assert list(decode_request(pdu).values) == values
    check_write_response(encode_write_response(decode_request(pdu)), pdu)


@given(writes())
def test_write_echo_round_trip(write: tuple[int, int, list[bool] | list[int]]) -> None:
    """The server's echo of a write is the response the client accepts."""
    function, address, values = write
    pdu = encode_write(function, address, values)
    check_write_response(encode_write_response(decode_request(pdu)), pdu, unit=1)


@given(reads(), st.data())
def test_read_response_round_trip(read: tuple[int, int, int], data: st.DataObject) -> None:
    """A read response yields exactly its data bytes."""
    function, address, count = read
    size = read_size(function, address, count)
    payload = data.draw(st.binary(min_size=size, max_size=size))
    assert decode_read_response(encode_read_response(function, payload), function, size) == (
        payload
    )


@given(st.lists(st.booleans(), max_size=2000))
def test_bits_round_trip(bits: list[bool]) -> None:
    """Bits pack LSB first into whole bytes and unpack to the same bits."""
    packed = pack_bits(bits)
    assert len(packed) == (len(bits) + 7) // 8
    assert unpack_bits(packed, len(bits)) == bits


@given(st.lists(registers, max_size=125))
def test_registers_round_trip(values: list[int]) -> None:
    """Registers pack big-endian, two bytes each."""
    data = pack_registers(values)
    assert data == b"".join(v.to_bytes(2, "big") for v in values)
    assert unpack_registers(data) == values


def test_coils_pack_lsb_first() -> None:
    """The first coil is the lowest bit of the first byte, as in a read-coils response."""
    assert pack_bits([True, False, True]) == b"\x05"
    assert pack_bits([False] * 8 + [True]) == b"\x00\x01"
    assert encode_write_coils(19, [True, False, True, True, False, False, True, True, True, False])[
        -2:
    ] == bytes([0xCD, 0x01])  # the example of the Modbus specification


def test_known_encodings() -> None:
    """Requests are byte for byte as the Modbus specification's examples."""
    assert encode_read_request(3, 0x6B, 3) == bytes.fromhex("03006b0003")
    assert encode_write_single_coil(0xAC, True) == bytes.fromhex("0500acff00")
    assert encode_write_single_coil(0xAC, False) == bytes.fromhex("0500ac0000")
    assert encode_write_single_register(1, 3) == bytes.fromhex("0600010003")
    assert encode_write_registers(1, [0x000A, 0x0102]) == bytes.fromhex("10000100020400 0a0102")
    assert encode_exception_response(3, 2) == b"\x83\x02"
    assert encode_adu(1, 17, b"\x03\x00\x6b\x00\x03") == bytes.fromhex("000100000006110300 6b0003")


def test_engine_write_tuples_encode() -> None:
    """The engine's ``(function, offset, values)`` tuples encode to the matching function."""
    assert encode_write(5, 3, [True]) == encode_write_single_coil(3, True)
    assert encode_write(6, 3, [65534]) == encode_write_single_register(3, 65534)
    assert encode_write(15, 3, [True, False]) == encode_write_coils(3, [True, False])
    assert encode_write(16, 3, [16320, 0]) == encode_write_registers(3, [16320, 0])


def test_read_functions_by_kind() -> None:
    """Each register kind reads with its function; an unknown kind is refused."""
    assert {k: read_function(k) for k in READ_FUNCTIONS} == {
        "CoilRegister": 1,
        "DiscreteInputRegister": 2,
        "HoldingRegister": 3,
        "InputRegister": 4,
    }
    with pytest.raises(ModbusRequestError, match="unknown register kind 'Holding'"):
        read_function("Holding")


# --- malformed responses ------------------------------------------------------------------------


def test_exception_response_is_typed() -> None:
    """An exception response raises the typed error with function, code, name and unit."""
    with pytest.raises(ModbusExceptionError) as info:
        decode_read_response(b"\x83\x02", 3, 20, unit=7)
    err = info.value
    assert (err.function, err.code, err.unit) == (3, 2, 7)
    assert err.code_name == "ILLEGAL_DATA_ADDRESS"
    assert isinstance(err, TwinplaneError)
    assert "ILLEGAL_DATA_ADDRESS" in str(err)


@pytest.mark.parametrize("code", list(ExceptionCode))
def test_every_standard_exception_code_has_its_name(code: ExceptionCode) -> None:
    """Every standard exception code carries its standard name."""
    assert ModbusExceptionError(4, code).code_name == code.name


def test_unknown_exception_code_is_named_unknown() -> None:
    """A non-standard exception code keeps its number in its name."""
    assert ModbusExceptionError(3, 0x42).code_name == "UNKNOWN_0x42"


@pytest.mark.parametrize(
    ("pdu", "match"),
    [
        (b"", "empty response PDU"),
        (b"\x03", "response PDU of 1 bytes"),
        (b"\x04\x04\x00\x01\x00\x02", "response to function 4 for a request of function 3"),
        (b"\x03\x02\x00\x01", "byte count 2 with 2 data bytes, expected 4"),
        (b"\x03\x06\x00\x01\x00\x02\x00\x03", "byte count 6 with 6 data bytes, expected 4"),
        (b"\x03\x04\x00\x01", "byte count 4 with 2 data bytes, expected 4"),
        (b"\x03\x04\x00\x01\x00\x02\x00", "1 bytes after the data"),
        (b"\x83\x02\x00", "exception response of 3 bytes"),
        (b"\x83", "exception response of 1 bytes"),
        (b"\x90\x02", "response to function 144 for a request of function 3"),
    ],
    ids=[
        "empty",
        "function-only",
        "wrong-function",
        "short-byte-count",
        "long-byte-count",
        "truncated-data",
        "trailing-byte",
        "long-exception",
        "short-exception",
        "other-exception",
    ],
)
def test_malformed_read_response(pdu: bytes, match: str) -> None:
    """A read response with anything but the data asked for is a frame error."""
    with pytest.raises(ModbusFrameError, match=match) as info:
        decode_read_response(pdu, 3, 4, unit=9)
    assert (info.value.function, info.value.unit) == (3, 9)


def test_malformed_bit_response() -> None:
    """A bit read checks the byte count of packed bits, not of registers."""
    assert decode_read_response(b"\x01\x02\xff\x03", 1, 2) == b"\xff\x03"
    with pytest.raises(ModbusFrameError):
        decode_read_response(b"\x01\x01\xff", 1, 2)


@pytest.mark.parametrize(
    ("request_pdu", "response"),
    [
        (encode_write_single_coil(5, True), encode_write_single_coil(5, False)),
        (encode_write_single_coil(5, True), encode_write_single_coil(6, True)),
        (encode_write_single_register(5, 9), encode_write_single_register(5, 8)),
        (encode_write_registers(5, [1, 2]), b"\x10\x00\x05\x00\x03"),
        (encode_write_registers(5, [1, 2]), b"\x10\x00\x06\x00\x02"),
        (encode_write_coils(5, [True]), b"\x0f\x00\x05\x00\x01\x00"),
        (encode_write_coils(5, [True]), b"\x10\x00\x05\x00\x01"),
        (encode_write_single_register(5, 9), b"\x06\x00\x05"),
        (encode_write_single_register(5, 9), b""),
    ],
    ids=[
        "coil-value",
        "coil-address",
        "register-value",
        "registers-count",
        "registers-address",
        "coils-trailing",
        "coils-function",
        "truncated",
        "empty",
    ],
)
def test_malformed_write_echo(request_pdu: bytes, response: bytes) -> None:
    """A write response that is not the exact echo is a frame error."""
    with pytest.raises(ModbusFrameError):
        check_write_response(response, request_pdu, unit=1)


def test_write_exception_is_typed() -> None:
    """An exception answer to a write raises the typed error with the write's function."""
    with pytest.raises(ModbusExceptionError) as info:
        check_write_response(b"\x90\x04", encode_write_registers(0, [1]), unit=3)
    assert (info.value.function, info.value.code, info.value.unit) == (16, 4, 3)


@pytest.mark.parametrize(
    ("protocol", "length"), [(1, 6), (0xBEEF, 6), (0, 0), (0, 1), (0, 255), (0, 0xFFFF)]
)
def test_unframeable_mbap_header(protocol: int, length: int) -> None:
    """An MBAP header with a protocol id other than 0 or an impossible length is refused."""
    header = MBAP.pack(0x1234, protocol, length, 5)
    with pytest.raises(ModbusFrameError, match="bad MBAP header") as info:
        decode_mbap(header)
    assert (info.value.transaction_id, info.value.unit) == (0x1234, 5)


# --- requests that cannot be encoded ----------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "address", "count"),
    [
        (3, 0, 0),
        (3, 0, 126),
        (4, 0, 126),
        (1, 0, 2001),
        (2, 0, 0),
        (3, -1, 1),
        (3, 0x10000, 1),
        (3, 0xFFFF, 2),
        (5, 0, 1),
        (7, 0, 1),
    ],
)
def test_read_outside_limits_is_refused(function: int, address: int, count: int) -> None:
    """Reads outside Modbus limits never reach the wire."""
    with pytest.raises(ModbusRequestError):
        encode_read_request(function, address, count)


def test_writes_outside_limits_are_refused() -> None:
    """Writes outside Modbus limits never reach the wire."""
    with pytest.raises(ModbusRequestError):
        encode_write_single_register(0, 0x10000)
    with pytest.raises(ModbusRequestError):
        encode_write_single_register(0, -1)
    with pytest.raises(ModbusRequestError):
        encode_write_registers(0, [])
    with pytest.raises(ModbusRequestError):
        encode_write_registers(0, [0] * 124)
    with pytest.raises(ModbusRequestError):
        encode_write_registers(0, [0x10000])
    with pytest.raises(ModbusRequestError):
        encode_write_coils(0, [True] * 1969)
    with pytest.raises(ModbusRequestError):
        encode_write_coils(0xFFFF, [True, True])
    with pytest.raises(ModbusRequestError):
        encode_write_single_coil(0x10000, True)
    with pytest.raises(ModbusRequestError, match="function 3 with 1 values is not a write"):
        encode_write(3, 0, [1])
    with pytest.raises(ModbusRequestError):
        encode_write(5, 0, [True, False])


# --- requests a server refuses ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("pdu", "code"),
    [
        (b"\x07", ExceptionCode.ILLEGAL_FUNCTION),
        (b"\x2b\x0e\x01\x00", ExceptionCode.ILLEGAL_FUNCTION),
        (b"\x03\x00\x00\x00", ExceptionCode.ILLEGAL_DATA_VALUE),
        (b"\x03\x00\x00\x00\x00", ExceptionCode.ILLEGAL_DATA_VALUE),
        (b"\x03\x00\x00\x00\x7e", ExceptionCode.ILLEGAL_DATA_VALUE),
        (b"\x03\x00\x00\x00\x01\x00", ExceptionCode.ILLEGAL_DATA_VALUE),
        (b"\x03\xff\xff\x00\x02", ExceptionCode.ILLEGAL_DATA_ADDRESS),
        (b"\x05\x00\x00\x12\x34", ExceptionCode.ILLEGAL_DATA_VALUE),
        (b"\x10\x00\x00\x00\x02\x03\x00\x01\x00", ExceptionCode.ILLEGAL_DATA_VALUE),
        (b"\x10\x00\x00\x00\x02\x04\x00\x01\x00", ExceptionCode.ILLEGAL_DATA_VALUE),
        (b"\x0f\x00\x00\x00\x09\x01\xff", ExceptionCode.ILLEGAL_DATA_VALUE),
        (b"\x10\xff\xff\x00\x02\x04\x00\x01\x00\x02", ExceptionCode.ILLEGAL_DATA_ADDRESS),
    ],
    ids=[
        "function-7",
        "function-43",
        "short-read",
        "zero-count",
        "count-126",
        "long-read",
        "past-65535",
        "coil-value",
        "byte-count",
        "short-data",
        "coil-bytes",
        "write-past-65535",
    ],
)
def test_server_side_refusals(pdu: bytes, code: ExceptionCode) -> None:
    """A server-side decode raises the exception the server must answer with."""
    with pytest.raises(ModbusExceptionError) as info:
        decode_request(pdu)
    assert info.value.code == code
    assert info.value.function == pdu[0] & 0x7F


def test_empty_request_is_a_frame_error() -> None:
    """An empty request PDU cannot be answered at all."""
    with pytest.raises(ModbusFrameError):
        decode_request(b"")


def test_function_enum_matches_wire_codes() -> None:
    """The function enum carries the wire codes."""
    assert [int(f) for f in Function] == [1, 2, 3, 4, 5, 6, 15, 16]
    assert struct.calcsize(">HHHB") == 7
