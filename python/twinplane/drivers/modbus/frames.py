"""Modbus frames: the MBAP header and the PDUs of functions 1-6, 15 and 16.

Requests are encoded and decoded for both sides (a client, and the simulator); responses are
decoded strictly: the function echo, the byte count, the PDU length and a write's echo must all
be what the request asks for, or the response is a :class:`ModbusFrameError`. An exception
response becomes a :class:`ModbusExceptionError`.

Register data stays in wire form: a read of registers yields their bytes big-endian, a read of
coils or discrete inputs yields the packed bits (LSB first), which is exactly what
:meth:`twinplane.twin.Engine.ingest_frame` takes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from twinplane.drivers.modbus.errors import (
    ExceptionCode,
    ModbusExceptionError,
    ModbusFrameError,
    ModbusRequestError,
)

__all__ = [
    "COIL_OFF",
    "COIL_ON",
    "MAX_COUNT",
    "MAX_MBAP_LENGTH",
    "MAX_PDU_SIZE",
    "MBAP",
    "MBAP_SIZE",
    "READ_ADU",
    "READ_FUNCTIONS",
    "Function",
    "Request",
    "check_write_response",
    "decode_mbap",
    "decode_read_response",
    "decode_request",
    "encode_adu",
    "encode_exception_response",
    "encode_read_request",
    "encode_read_response",
    "encode_write",
    "encode_write_coils",
    "encode_write_registers",
    "encode_write_response",
    "encode_write_single_coil",
    "encode_write_single_register",
    "pack_bits",
    "pack_registers",
    "read_function",
    "read_size",
    "unpack_bits",
    "unpack_registers",
]


class Function(IntEnum):
    """The Modbus function codes this driver speaks."""

    READ_COILS = 1
    READ_DISCRETE_INPUTS = 2
    READ_HOLDING_REGISTERS = 3
    READ_INPUT_REGISTERS = 4
    WRITE_SINGLE_COIL = 5
    WRITE_SINGLE_REGISTER = 6
    WRITE_MULTIPLE_COILS = 15
    WRITE_MULTIPLE_REGISTERS = 16


READ_FUNCTIONS: Final[Mapping[str, int]] = {
    "CoilRegister": Function.READ_COILS,
    "DiscreteInputRegister": Function.READ_DISCRETE_INPUTS,
    "HoldingRegister": Function.READ_HOLDING_REGISTERS,
    "InputRegister": Function.READ_INPUT_REGISTERS,
}
"""The read function of each register kind (a visitor's ``register``)."""

MAX_COUNT: Final[Mapping[int, int]] = {1: 2000, 2: 2000, 3: 125, 4: 125, 15: 1968, 16: 123}
"""The most bits or registers one request of a function may carry."""

COIL_ON: Final = 0xFF00
COIL_OFF: Final = 0x0000

MBAP: Final = struct.Struct(">HHHB")
"""The MBAP header: transaction id, protocol id (0), length (unit + PDU), unit id."""
MBAP_SIZE: Final = MBAP.size
MAX_PDU_SIZE: Final = 253
MAX_MBAP_LENGTH: Final = MAX_PDU_SIZE + 1
READ_ADU: Final = struct.Struct(">HHHBBHH")
"""A whole read request in one pack: MBAP (length 6), function, address, count."""

_FN_ADDR_COUNT: Final = struct.Struct(">BHH")
_FN_ADDR_COUNT_BYTES: Final = struct.Struct(">BHHB")
_ADDRESS_SPACE: Final = 0x10000
_BIT_FUNCTIONS: Final = frozenset({1, 2, 15})
_WRITE_ECHO_SIZE: Final = 5


def _check_address(address: int) -> None:
    if not 0 <= address < _ADDRESS_SPACE:
        raise ModbusRequestError(f"address {address} is outside 0..65535")


def read_function(kind: str) -> int:
    """The read function of a register kind name (``HoldingRegister`` is 3)."""
    try:
        return READ_FUNCTIONS[kind]
    except KeyError:
        allowed = ", ".join(READ_FUNCTIONS)
        raise ModbusRequestError(f"unknown register kind {kind!r} (allowed: {allowed})") from None


def read_size(function: int, address: int, count: int) -> int:
    """Validates a read request and returns the data bytes its response carries.

    Raises:
        ModbusRequestError: The function is not a read, or the address or count is outside
            Modbus limits (1..2000 bits, 1..125 registers, within 0..65535).
    """
    limit = MAX_COUNT.get(function) if 1 <= function <= 4 else None  # noqa: PLR2004 - reads
    if limit is None:
        raise ModbusRequestError(f"function {function} is not a read", function=function)
    _check_address(address)
    if not 1 <= count <= limit:
        raise ModbusRequestError(
            f"count {count} is outside 1..{limit} for function {function}", function=function
        )
    if address + count > _ADDRESS_SPACE:
        raise ModbusRequestError(
            f"address {address} + count {count} runs past 65535", function=function
        )
    return (count + 7) >> 3 if function in _BIT_FUNCTIONS else count << 1


# --- requests ----------------------------------------------------------------------------------


def encode_read_request(function: int, address: int, count: int) -> bytes:
    """The PDU of a read (functions 1-4)."""
    read_size(function, address, count)
    return _FN_ADDR_COUNT.pack(function, address, count)


def encode_write_single_coil(address: int, value: bool | int) -> bytes:
    """The PDU of function 5: ``0xFF00`` turns the coil on, ``0x0000`` off."""
    _check_address(address)
    return _FN_ADDR_COUNT.pack(Function.WRITE_SINGLE_COIL, address, COIL_ON if value else COIL_OFF)


def encode_write_single_register(address: int, value: int) -> bytes:
    """The PDU of function 6 (``value`` is an unsigned 16-bit register)."""
    _check_address(address)
    if not 0 <= value <= 0xFFFF:  # noqa: PLR2004 - a 16-bit register
        raise ModbusRequestError(
            f"register value {value} is outside 0..65535", function=Function.WRITE_SINGLE_REGISTER
        )
    return _FN_ADDR_COUNT.pack(Function.WRITE_SINGLE_REGISTER, address, value)


def _check_write_count(function: int, address: int, count: int) -> None:
    _check_address(address)
    limit = MAX_COUNT[function]
    if not 1 <= count <= limit:
        raise ModbusRequestError(
            f"{count} values is outside 1..{limit} for function {function}", function=function
        )
    if address + count > _ADDRESS_SPACE:
        raise ModbusRequestError(
            f"address {address} + {count} values runs past 65535", function=function
        )


def encode_write_coils(address: int, values: Sequence[bool | int]) -> bytes:
    """The PDU of function 15 (write multiple coils)."""
    _check_write_count(Function.WRITE_MULTIPLE_COILS, address, len(values))
    data = pack_bits(values)
    head = _FN_ADDR_COUNT_BYTES.pack(Function.WRITE_MULTIPLE_COILS, address, len(values), len(data))
    return head + data


def encode_write_registers(address: int, values: Sequence[int]) -> bytes:
    """The PDU of function 16 (write multiple registers, each unsigned 16-bit)."""
    _check_write_count(Function.WRITE_MULTIPLE_REGISTERS, address, len(values))
    try:
        data = pack_registers(values)
    except struct.error as exc:
        raise ModbusRequestError(
            f"a register value is outside 0..65535: {list(values)}",
            function=Function.WRITE_MULTIPLE_REGISTERS,
        ) from exc
    head = _FN_ADDR_COUNT_BYTES.pack(
        Function.WRITE_MULTIPLE_REGISTERS, address, len(values), len(data)
    )
    return head + data


def encode_write(function: int, address: int, values: Sequence[bool | int]) -> bytes:
    """The PDU of a write given as the engine's ``(function, offset, values)`` tuple."""
    if function == Function.WRITE_SINGLE_COIL and len(values) == 1:
        return encode_write_single_coil(address, values[0])
    if function == Function.WRITE_SINGLE_REGISTER and len(values) == 1:
        return encode_write_single_register(address, int(values[0]))
    if function == Function.WRITE_MULTIPLE_COILS:
        return encode_write_coils(address, values)
    if function == Function.WRITE_MULTIPLE_REGISTERS:
        return encode_write_registers(address, [int(v) for v in values])
    raise ModbusRequestError(
        f"function {function} with {len(values)} values is not a write this driver speaks",
        function=function,
    )


def encode_adu(transaction_id: int, unit: int, pdu: bytes) -> bytes:
    """A Modbus TCP frame: the MBAP header and the PDU."""
    return MBAP.pack(transaction_id, 0, len(pdu) + 1, unit) + pdu


def decode_mbap(frame: bytes | bytearray, offset: int = 0) -> tuple[int, int, int]:
    """Reads an MBAP header: ``(transaction id, length, unit)``.

    Raises:
        ModbusFrameError: The protocol id is not 0, or the length is outside 2..254, so the
            stream cannot be framed.
    """
    transaction_id, protocol, length, unit = MBAP.unpack_from(frame, offset)
    if protocol != 0 or not 2 <= length <= MAX_MBAP_LENGTH:  # noqa: PLR2004 - unit + function
        raise ModbusFrameError(
            f"bad MBAP header: protocol id {protocol}, length {length}",
            unit=unit,
            transaction_id=transaction_id,
        )
    return transaction_id, length, unit


# --- the server side ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """A decoded request PDU.

    Attributes:
        function: The function code.
        address: The first address.
        count: Bits or registers read or written.
        values: What a write writes (booleans for coils, 16-bit integers for registers).
    """

    function: int
    address: int
    count: int
    values: tuple[bool, ...] | tuple[int, ...] = ()


def _illegal(function: int, code: ExceptionCode) -> ModbusExceptionError:
    return ModbusExceptionError(function, code)


def decode_request(pdu: bytes | bytearray | memoryview) -> Request:
    """Decodes a request PDU as a server must.

    Raises:
        ModbusExceptionError: What the server answers: ``ILLEGAL_FUNCTION`` for a function
            outside 1-6, 15, 16; ``ILLEGAL_DATA_VALUE`` for a bad count, byte count, length or
            coil value; ``ILLEGAL_DATA_ADDRESS`` when the range runs past 65535.
        ModbusFrameError: The PDU is empty.
    """
    if not pdu:
        raise ModbusFrameError("empty request PDU")
    function = pdu[0]
    if function not in MAX_COUNT and function not in (5, 6):
        raise _illegal(function & 0x7F, ExceptionCode.ILLEGAL_FUNCTION)
    if len(pdu) < _WRITE_ECHO_SIZE:
        raise _illegal(function, ExceptionCode.ILLEGAL_DATA_VALUE)
    _, address, count = _FN_ADDR_COUNT.unpack_from(pdu)
    if function <= Function.WRITE_SINGLE_REGISTER:
        return _decode_fixed(pdu, function, address, count)
    # 15, 16: a byte count and the data follow
    size = (count + 7) >> 3 if function == Function.WRITE_MULTIPLE_COILS else count << 1
    if (
        not 1 <= count <= MAX_COUNT[function]
        or len(pdu) != _FN_ADDR_COUNT_BYTES.size + size
        or pdu[_WRITE_ECHO_SIZE] != size
    ):
        raise _illegal(function, ExceptionCode.ILLEGAL_DATA_VALUE)
    if address + count > _ADDRESS_SPACE:
        raise _illegal(function, ExceptionCode.ILLEGAL_DATA_ADDRESS)
    data = bytes(pdu[_FN_ADDR_COUNT_BYTES.size :])
    if function == Function.WRITE_MULTIPLE_COILS:
        return Request(function, address, count, tuple(unpack_bits(data, count)))
    return Request(function, address, count, tuple(unpack_registers(data)))


def _decode_fixed(
    pdu: bytes | bytearray | memoryview, function: int, address: int, count: int
) -> Request:
    """A request of functions 1-6: function, address, and a count or a value."""
    if len(pdu) != _WRITE_ECHO_SIZE:
        raise _illegal(function, ExceptionCode.ILLEGAL_DATA_VALUE)
    if function == Function.WRITE_SINGLE_COIL:
        if count not in (COIL_ON, COIL_OFF):
            raise _illegal(function, ExceptionCode.ILLEGAL_DATA_VALUE)
        return Request(function, address, 1, (count == COIL_ON,))
    if function == Function.WRITE_SINGLE_REGISTER:
        return Request(function, address, 1, (count,))
    if not 1 <= count <= MAX_COUNT[function]:
        raise _illegal(function, ExceptionCode.ILLEGAL_DATA_VALUE)
    if address + count > _ADDRESS_SPACE:
        raise _illegal(function, ExceptionCode.ILLEGAL_DATA_ADDRESS)
    return Request(function, address, count)


def encode_read_response(function: int, data: bytes) -> bytes:
    """The PDU answering a read: function, byte count, data."""
    return bytes((function, len(data))) + data


def encode_write_response(request: Request) -> bytes:
    """The PDU answering a write: the echo of function, address and value or count."""
    if request.function == Function.WRITE_SINGLE_COIL:
        value = COIL_ON if request.values[0] else COIL_OFF
    elif request.function == Function.WRITE_SINGLE_REGISTER:
        value = int(request.values[0])
    else:
        value = request.count
    return _FN_ADDR_COUNT.pack(request.function, request.address, value)


def encode_exception_response(function: int, code: int) -> bytes:
    """The PDU of an exception response: ``function | 0x80`` and the exception code."""
    return bytes((function | 0x80, code))


# --- the client side ---------------------------------------------------------------------------


def _response_error(
    pdu: bytes | bytearray, function: int, unit: int | None, what: str
) -> ModbusExceptionError | ModbusFrameError:
    """The error a response that is not the expected one stands for."""
    if pdu and pdu[0] == function | 0x80:
        if len(pdu) == 2:  # noqa: PLR2004 - function and exception code
            return ModbusExceptionError(function, pdu[1], unit)
        return ModbusFrameError(
            f"exception response of {len(pdu)} bytes (expected 2)", unit=unit, function=function
        )
    if not pdu:
        return ModbusFrameError("empty response PDU", unit=unit, function=function)
    if pdu[0] != function:
        return ModbusFrameError(
            f"response to function {pdu[0]} for a request of function {function}",
            unit=unit,
            function=function,
        )
    return ModbusFrameError(what, unit=unit, function=function)


def decode_read_response(
    pdu: bytes | bytearray, function: int, size: int, unit: int | None = None
) -> bytes:
    """The data bytes of a read response, checked against the request.

    Args:
        pdu: The response PDU.
        function: The request's function (1-4).
        size: The data bytes the request asks for (:func:`read_size`).
        unit: The unit id, for the error.

    Raises:
        ModbusExceptionError: The device answered with an exception.
        ModbusFrameError: The function echo, byte count or length is not what was asked.
    """
    if len(pdu) == size + 2 and pdu[0] == function and pdu[1] == size:
        return bytes(pdu[2:])
    if len(pdu) >= 2 and pdu[0] == function:  # noqa: PLR2004
        what = (
            f"byte count {pdu[1]} with {len(pdu) - 2} data bytes, expected {size}"
            if pdu[1] != size or len(pdu) - 2 < size
            else f"{len(pdu) - 2 - size} bytes after the data"
        )
    else:
        what = f"response PDU of {len(pdu)} bytes"
    raise _response_error(pdu, function, unit, what)


def check_write_response(
    pdu: bytes | bytearray, request_pdu: bytes, unit: int | None = None
) -> None:
    """Checks a write response is the echo the request calls for.

    Raises:
        ModbusExceptionError: The device answered with an exception.
        ModbusFrameError: The echo differs from the request (function, address, value or count).
    """
    if pdu == request_pdu[:_WRITE_ECHO_SIZE]:
        return
    function = request_pdu[0]
    raise _response_error(
        pdu, function, unit, f"write echo {bytes(pdu).hex()} for request {request_pdu.hex()}"
    )


# --- data --------------------------------------------------------------------------------------


def pack_bits(values: Iterable[bool | int]) -> bytes:
    """Packs bits LSB first, as coils travel (``[1, 0, 1]`` is one byte, 5)."""
    out = bytearray()
    byte = shift = 0
    for value in values:
        if value:
            byte |= 1 << shift
        shift += 1
        if shift == 8:  # noqa: PLR2004
            out.append(byte)
            byte = shift = 0
    if shift:
        out.append(byte)
    return bytes(out)


def unpack_bits(data: bytes | bytearray, count: int) -> list[bool]:
    """The first ``count`` bits of packed coil data."""
    bits = int.from_bytes(data, "little")
    return [bool(bits >> i & 1) for i in range(count)]


def pack_registers(values: Sequence[int]) -> bytes:
    """16-bit registers as big-endian bytes (raises :class:`struct.error` out of 0..65535)."""
    return struct.pack(f">{len(values)}H", *values)


def unpack_registers(data: bytes | bytearray) -> list[int]:
    """Big-endian bytes as 16-bit registers."""
    return list(struct.unpack(f">{len(data) >> 1}H", data))
