"""The ``configData`` codec of DMI v1beta1: free-form scalars packed in ``google.protobuf.Any``.

``ProtocolConfig.configData``, ``VisitorConfig.configData`` and ``AnomalyDetection.data`` are
``map<string, google.protobuf.Any>``. KubeEdge's EdgeCore fills them from the CRD's JSON maps by
wrapping each scalar in a well-known wrapper message (spec §1.3), and Go mappers (mapper-framework's
``DecodeAnyValue``) accept exactly five wrappers: ``StringValue``, ``BoolValue``, ``Int32Value``,
``Int64Value`` and ``FloatValue``; nested objects, arrays and null are an error.

:func:`encode_config` sends only those five, the way EdgeCore does, so a Go mapper can register with
twinplane. :func:`decode_config` is liberal and also accepts ``DoubleValue``, ``UInt32Value`` and
``UInt64Value``.

Numbers from EdgeCore arrive as ``FloatValue`` (32 bits): Go decodes every JSON number to float64
and EdgeCore narrows it to float32, so ``port: 502`` arrives as ``502.0`` and integers above 2**24
lose precision. A ``FloatValue`` decodes to a Python ``float`` even when it holds an integral value;
callers coerce to the type their configuration field needs.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping

from google.protobuf import any_pb2, message, wrappers_pb2

from twinplane.dmi.v1beta1 import api_pb2
from twinplane.errors import SpecError

__all__ = [
    "TYPE_URL_PREFIX",
    "decode_config",
    "decode_value",
    "encode_config",
    "encode_value",
    "fill_customized_value",
]

TYPE_URL_PREFIX = "type.googleapis.com/"
"""The type URL prefix of ``Any`` values, as ``anypb.New`` writes it."""

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_FLOAT32 = struct.Struct("<f")


def _wrap(wrapper: message.Message) -> any_pb2.Any:
    """Pack a wrapper message into an ``Any`` with the standard type URL."""
    packed = any_pb2.Any()
    packed.Pack(wrapper, type_url_prefix=TYPE_URL_PREFIX)
    return packed


def _encode_int(value: int, path: str) -> any_pb2.Any:
    if _INT32_MIN <= value <= _INT32_MAX:
        return _wrap(wrappers_pb2.Int32Value(value=value))
    if _INT64_MIN <= value <= _INT64_MAX:
        return _wrap(wrappers_pb2.Int64Value(value=value))
    raise SpecError(f"integer {value} does not fit in 64 bits", path=path)


def _encode_float(value: float, path: str) -> any_pb2.Any:
    # EdgeCore narrows float64 to float32 (FloatValue); a value that overflows float32 would
    # become an infinity, which a Go mapper cannot turn back into JSON: refuse it here.
    try:
        _FLOAT32.pack(value)
    except OverflowError:
        raise SpecError(
            f"number {value!r} does not fit in a 32-bit float (Go mappers receive FloatValue)",
            path=path,
        ) from None
    if not math.isfinite(value):
        raise SpecError(f"number {value!r} is not finite", path=path)
    return _wrap(wrappers_pb2.FloatValue(value=value))


def encode_value(value: object, path: str) -> any_pb2.Any:
    """Wrap one scalar in an ``Any`` the way EdgeCore does for Go mappers.

    Args:
        value: A ``str``, ``bool``, ``int`` or ``float``.
        path: The field path of ``value``, for errors (``spec.protocol.configData.port``).

    Returns:
        ``StringValue`` for a string, ``BoolValue`` for a bool, ``Int32Value`` for an integer that
        fits in 32 bits and ``Int64Value`` for a larger one, ``FloatValue`` (32-bit) for a float.

    Raises:
        SpecError: ``value`` is not a scalar (a mapping, a list, ``None``, ...), a string with a
            lone surrogate, an integer beyond 64 bits, or a float that is not finite or does not
            fit in 32 bits.
    """
    # bool before int: True is an int in Python but a BoolValue on the wire.
    if isinstance(value, bool):
        return _wrap(wrappers_pb2.BoolValue(value=value))
    if isinstance(value, str):
        try:
            return _wrap(wrappers_pb2.StringValue(value=value))
        except UnicodeEncodeError as err:
            raise SpecError(f"string is not valid Unicode text: {err}", path=path) from err
    if isinstance(value, int):
        return _encode_int(value, path)
    if isinstance(value, float):
        return _encode_float(value, path)
    kind = "null" if value is None else type(value).__name__
    raise SpecError(
        f"configData values must be scalars (string, boolean, integer or number), got {kind}: "
        "Go mappers accept only scalar configData values",
        path=path,
    )


def encode_config(data: Mapping[str, object], path: str) -> dict[str, any_pb2.Any]:
    """Encode a ``configData`` mapping for the wire, the way EdgeCore does for Go mappers.

    Args:
        data: The configuration, as decoded from a manifest (keys are field names).
        path: The field path of ``data``, for errors (``spec.properties[1].visitors.configData``).

    Returns:
        Each key with its value wrapped by :func:`encode_value`.

    Raises:
        SpecError: A value is not an encodable scalar; ``path`` is ``f"{path}.{key}"``.

    Example:
        >>> encode_config({"port": 502}, "spec.protocol.configData")["port"].type_url
        'type.googleapis.com/google.protobuf.Int32Value'
    """
    encoded: dict[str, any_pb2.Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise SpecError(f"configData keys must be strings, got {key!r}", path=f"{path}.{key}")
        encoded[key] = encode_value(value, f"{path}.{key}")
    return encoded


def fill_customized_value(
    msg: api_pb2.CustomizedValue | api_pb2.AnomalyDetection,
    data: Mapping[str, object],
    path: str,
) -> None:
    """Replace ``msg.data`` with ``data`` encoded by :func:`encode_config`.

    ``msg`` is also marked present in its parent message even when ``data`` is empty, because Go
    mappers dereference ``visitors.configData`` without a nil check (spec §1.4).

    Args:
        msg: The message to fill, usually ``ProtocolConfig.configData`` or
            ``VisitorConfig.configData`` of a message being built.
        data: The configuration.
        path: The field path of ``data``, for errors.

    Raises:
        SpecError: A value is not an encodable scalar; ``msg`` is left unchanged.
    """
    encoded = encode_config(data, path)
    msg.SetInParent()
    msg.data.clear()
    for key, value in encoded.items():
        msg.data[key].CopyFrom(value)


def _shortest_float32(value: float) -> float:
    """The float64 of the shortest decimal that rounds to the same float32 as ``value``.

    A Go mapper turns the decoded map back into JSON before reading its config struct, and Go
    prints a float32 with the fewest digits that identify it, so the FloatValue of ``0.1`` reaches
    the driver as ``0.1``, not as ``0.10000000149011612``.
    """
    if not math.isfinite(value):
        return value
    bits = _FLOAT32.pack(value)
    for digits in range(1, 10):  # 9 significant digits identify every float32
        candidate = float(f"{value:.{digits}g}")
        try:
            if _FLOAT32.pack(candidate) == bits:
                return candidate
        except OverflowError:  # rounded up past the largest float32 (3.403e38)
            continue
    return value  # pragma: no cover - unreachable: 9 digits always suffice


def _decode_float32(raw: bytes) -> float:
    return _shortest_float32(wrappers_pb2.FloatValue.FromString(raw).value)


_DECODERS: dict[str, Callable[[bytes], object]] = {
    "google.protobuf.StringValue": lambda raw: wrappers_pb2.StringValue.FromString(raw).value,
    "google.protobuf.BoolValue": lambda raw: wrappers_pb2.BoolValue.FromString(raw).value,
    "google.protobuf.Int32Value": lambda raw: wrappers_pb2.Int32Value.FromString(raw).value,
    "google.protobuf.Int64Value": lambda raw: wrappers_pb2.Int64Value.FromString(raw).value,
    "google.protobuf.FloatValue": _decode_float32,
    # Not sent by EdgeCore; accepted from other peers.
    "google.protobuf.DoubleValue": lambda raw: wrappers_pb2.DoubleValue.FromString(raw).value,
    "google.protobuf.UInt32Value": lambda raw: wrappers_pb2.UInt32Value.FromString(raw).value,
    "google.protobuf.UInt64Value": lambda raw: wrappers_pb2.UInt64Value.FromString(raw).value,
}


def decode_value(value: any_pb2.Any, path: str) -> object:
    """Unwrap one ``Any`` holding a scalar wrapper.

    Like mapper-framework, only the part of the type URL after its last ``/`` is read.

    Args:
        value: The packed value.
        path: The field path of ``value``, for errors.

    Returns:
        ``str``, ``bool``, ``int`` or ``float``. A ``FloatValue`` gives a ``float`` even when it is
        integral (``502.0``), rounded to the shortest decimal that identifies the float32.

    Raises:
        SpecError: The type URL names no accepted wrapper, or the bytes do not decode.
    """
    type_name = value.type_url.rpartition("/")[2]
    decoder = _DECODERS.get(type_name)
    if decoder is None:
        raise SpecError(
            f"configData value has type {value.type_url!r}; accepted are the "
            f"google.protobuf wrappers {', '.join(n.rpartition('.')[2] for n in _DECODERS)}",
            path=path,
        )
    try:
        return decoder(value.value)
    except message.DecodeError as err:
        raise SpecError(f"configData value is not a valid {type_name}: {err}", path=path) from err


def decode_config(data: Mapping[str, any_pb2.Any], path: str) -> dict[str, object]:
    """Decode a ``configData`` map from the wire.

    Args:
        data: ``CustomizedValue.data`` or ``AnomalyDetection.data``.
        path: The field path of ``data``, for errors.

    Returns:
        Each key with its value unwrapped by :func:`decode_value`. Numbers sent by EdgeCore are
        ``float`` (they travel as 32-bit ``FloatValue``); coerce them to the field's type.

    Raises:
        SpecError: A value has an unknown type URL or does not decode; ``path`` is
            ``f"{path}.{key}"``.
    """
    return {key: decode_value(value, f"{path}.{key}") for key, value in data.items()}
