"""Decoding a gRPC request's bytes, with the field and byte offset where a bad one fails.

The protobuf runtime (upb) only says that a message does not parse. :func:`decode` parses with
it, and only when that fails walks the bytes again over the message's descriptor to find the
first field that cannot be read and its offset, the way the twin engine reports a bad
``ReportDeviceStatusRequest`` (``ReportDeviceStatusRequest.deviceNamespace: length-delimited
field of 9 bytes at byte 5 runs past the end (0 bytes left)``). The walk follows upb's rules:
unknown fields of every wire type are skipped (a known field sent with another wire type is
unknown), groups must be closed by their own end tag, proto3 strings must be UTF-8, nesting is at
most 100 deep. A valid message costs nothing extra.

:func:`decode_request` is the servers' one way to decode a request: a message that does not
parse ends the call with ``INVALID_ARGUMENT`` and that text.
"""

from __future__ import annotations

from typing import Any, Final, NoReturn, TypeVar, cast

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from twinplane.errors import SpecError

__all__ = ["WireError", "decode", "decode_request", "locate_error"]

MAX_DEPTH: Final = 100
"""Deepest nesting of messages and groups (upb's default limit)."""
_MAX_FIELD: Final = (1 << 29) - 1
_VARINT, _I64, _LEN, _SGROUP, _EGROUP, _I32 = range(6)
_PACKABLE: Final = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_BOOL,
        FieldDescriptor.TYPE_ENUM,
    }
)
_FIXED_WIDTH: Final = {
    FieldDescriptor.TYPE_FIXED32: 4,
    FieldDescriptor.TYPE_SFIXED32: 4,
    FieldDescriptor.TYPE_FLOAT: 4,
    FieldDescriptor.TYPE_FIXED64: 8,
    FieldDescriptor.TYPE_SFIXED64: 8,
    FieldDescriptor.TYPE_DOUBLE: 8,
}


M = TypeVar("M", bound=Message)


class WireError(SpecError):
    """Bytes that are not a valid message of the expected type.

    Its text is ``<path>: <what> at byte <offset>...``; ``path`` names the field where decoding
    failed (``MapperRegisterRequest.mapper.name``, ``ReportBatch.#7`` for an unknown field).

    Attributes:
        offset: Byte offset in the message where decoding failed.
    """

    def __init__(self, path: str, reason: str, offset: int) -> None:
        super().__init__(f"{path}: {reason}", path=path)
        self.offset = offset


def decode(message_type: type[M], data: bytes) -> M:
    """Parses ``data`` as ``message_type``.

    Raises:
        WireError: The bytes do not parse; names the field and the byte offset.
    """
    try:
        message: M = message_type.FromString(data)
    except DecodeError:
        raise locate_error(message_type, data) from None
    return message


async def decode_request(
    message_type: type[M], data: bytes, context: grpc.aio.ServicerContext[Any, Any]
) -> M:
    """Parses a request for a server handler, or ends the call with ``INVALID_ARGUMENT``.

    The status details are the :class:`WireError` text (field path and byte offset).
    """
    try:
        return decode(message_type, data)
    except WireError as err:
        await _abort(context, err)


async def _abort(context: grpc.aio.ServicerContext[Any, Any], err: WireError) -> NoReturn:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
    raise AssertionError("unreachable")  # abort raises


def locate_error(message_type: type[Message], data: bytes) -> WireError:
    """Where ``data`` stops being a valid ``message_type`` message.

    Used once the protobuf runtime refused ``data``. Should the walk find nothing (it follows
    upb's rules, so it should not), the error names the message without an offset (-1).
    """
    descriptor = cast("Descriptor", message_type.DESCRIPTOR)
    name = descriptor.name
    try:
        _Walker(data).message(descriptor, 0, len(data), 0)
    except _Stop as stop:
        path = f"{name}.{stop.path}" if stop.path else name
        return WireError(path, stop.reason, stop.offset)
    return WireError(name, "the protobuf runtime cannot decode it", -1)


class _Stop(Exception):  # noqa: N818 - internal control flow, never escapes this module
    """Where the walk stopped: the path below the message being walked, what, and where."""

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(reason)
        self.path = ""
        self.reason = reason
        self.offset = offset

    def within(self, segment: str) -> _Stop:
        self.path = f"{segment}.{self.path}" if self.path else segment
        return self


class _Walker:
    """Walks the input field by field and raises :class:`_Stop` where upb would refuse it."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        """The varint at ``pos`` and the position after it."""
        value = 0
        for i in range(10):
            if pos + i >= end:
                raise _Stop(f"truncated varint at byte {pos}", pos)
            byte = self.data[pos + i]  # upb ignores the bits of a tenth byte past 64
            value |= (byte & 0x7F) << (7 * i)
            if byte < 0x80:  # noqa: PLR2004
                return value, pos + i + 1
        raise _Stop(f"varint at byte {pos} is longer than 10 bytes", pos)

    def tag(self, pos: int, end: int) -> tuple[int, int, int]:
        """The field number and wire type of the tag at ``pos``, and the position after it."""
        tag, after = self.varint(pos, end)
        number = tag >> 3
        if number == 0 or number > _MAX_FIELD:
            raise _Stop(f"invalid field number {number} at byte {pos}", pos)
        return number, tag & 7, after

    def message(self, desc: Descriptor | None, pos: int, end: int, depth: int) -> None:
        """Walks the message ``data[pos:end]`` (``desc`` None: of unknown fields only)."""
        if depth > MAX_DEPTH:
            raise _Stop(f"message at byte {pos} is nested deeper than {MAX_DEPTH}", pos)
        counts: dict[int, int] = {}
        while pos < end:
            at = pos
            number, wire, pos = self.tag(pos, end)
            field = desc.fields_by_number.get(number) if desc is not None else None
            name = field.name if field is not None else f"#{number}"
            if field is not None and field.is_repeated:
                index = counts.get(number, 0)
                counts[number] = index + 1
                name = f"{name}[{index}]"
            try:
                pos = self.field(field, number, wire, at=at, pos=pos, end=end, depth=depth + 1)
            except _Stop as stop:
                raise stop.within(name) from None

    def field(  # noqa: PLR0913 - the field and where it is
        self,
        field: FieldDescriptor | None,
        number: int,
        wire: int,
        *,
        at: int,
        pos: int,
        end: int,
        depth: int,
    ) -> int:
        """Walks the payload of field ``number`` (tag at ``at``); the position after it."""
        if wire == _EGROUP:
            raise _Stop(f"end-group tag at byte {at} closes no group", at)
        if wire == _SGROUP:
            return self.group(number, at, pos, end, depth)
        if wire == _VARINT:
            return self.varint(pos, end)[1]
        if wire in (_I64, _I32):
            width = 8 if wire == _I64 else 4
            if end - pos < width:
                kind = "fixed64" if wire == _I64 else "fixed32"
                raise _Stop(_past(f"{kind} value", width, pos, end - pos), pos)
            return pos + width
        if wire != _LEN:
            raise _Stop(f"invalid wire type {wire} at byte {at}", at)
        length, start = self.varint(pos, end)
        if length > end - start:
            raise _Stop(_past("length-delimited field", length, start, end - start), start)
        if field is not None:
            self.contents(field, start, start + length, depth)
        return start + length

    def contents(self, field: FieldDescriptor, start: int, stop: int, depth: int) -> None:
        """Checks a known field's length-delimited contents as upb does."""
        kind = field.type
        if kind == FieldDescriptor.TYPE_MESSAGE:
            self.message(field.message_type, start, stop, depth)
        elif kind == FieldDescriptor.TYPE_STRING:
            try:
                self.data[start:stop].decode()
            except UnicodeDecodeError as err:
                where = start + err.start
                raise _Stop(f"invalid UTF-8 at byte {where}", where) from None
        elif field.is_repeated and kind in _PACKABLE:
            pos = start
            while pos < stop:
                pos = self.varint(pos, stop)[1]
        elif field.is_repeated and (width := _FIXED_WIDTH.get(kind)) and (stop - start) % width:
            raise _Stop(f"packed field at byte {start} is not a multiple of {width}", start)

    def group(self, number: int, at: int, pos: int, end: int, depth: int) -> int:
        """Skips a group (unknown to us) up to its own end tag; the position after it."""
        if depth > MAX_DEPTH:
            raise _Stop(f"group at byte {at} is nested deeper than {MAX_DEPTH}", at)
        while pos < end:
            tag_at = pos
            inner, wire, pos = self.tag(pos, end)
            if wire == _EGROUP:
                if inner != number:
                    why = f"end-group tag #{inner} at byte {tag_at} closes group #{number}"
                    raise _Stop(why, tag_at)
                return pos
            try:
                pos = self.field(None, inner, wire, at=tag_at, pos=pos, end=end, depth=depth + 1)
            except _Stop as stop:
                raise stop.within(f"#{inner}") from None
        raise _Stop(f"group at byte {at} has no end-group tag", at)


def _past(what: str, size: int, at: int, left: int) -> str:
    return f"{what} of {size} bytes at byte {at} runs past the end ({left} bytes left)"
