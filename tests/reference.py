"""A plain, pure-Python reference of the twin engine: the specification in executable form.

Every behaviour of ``twinplane._engine`` is restated here as simply as possible, so the tests can
check the engine against it on generated inputs and the benchmark can measure the engine against
a fair baseline doing the same work. Nothing here is optimised; when this file and the engine
disagree, one of them has a bug and the docstring here says which behaviour is meant.

Contents, in data-flow order:

1. values: the KubeEdge property types, parsing text into values, the canonical string form;
2. Modbus visitors: compiling ``visitors.configData``, decoding register and coil frames,
   encoding writes, read planning;
3. change policy (exact, absolute/relative deadband, heartbeat) and sampling rings;
4. the twin store (:class:`ReferenceEngine`) with KubeEdge's desired/reported/version rules;
5. encoders of a batch of changes: DMI ``ReportDeviceStatusRequest`` protobuf (a tiny writer and
   reader), KubeEdge MQTT twin payloads (``json.dumps``) and the rows of the Arrow export.

Values are plain Python objects whose kind follows from the property type: INT ``int``, FLOAT and
DOUBLE ``float`` (a FLOAT holds a number exactly representable in 32 bits), BOOLEAN ``bool``,
STRING ``str``, BYTES ``bytes``.
"""

from __future__ import annotations

import json
import math
import re
import struct
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal
from fractions import Fraction
from typing import Any

from twinplane.errors import (
    FrameError,
    SpecError,
    UnknownDeviceError,
    UnknownPropertyError,
    ValueTypeError,
    VersionConflictError,
)

Value = int | float | bool | str | bytes
"""A typed twin value; which of these it is follows from the property type."""

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
U64_MAX = 2**64 - 1
EXACT_F64 = 2.0**53
"""Integers below this magnitude are exact in a float."""

# ---------------------------------------------------------------------------------------------
# 1. Values
# ---------------------------------------------------------------------------------------------

TYPES = ("INT", "FLOAT", "DOUBLE", "STRING", "BOOLEAN", "BYTES")
"""The KubeEdge property types, in the order of the CRD enum (STREAM is held as STRING)."""

NUMERIC = frozenset({"INT", "FLOAT", "DOUBLE"})
"""Types whose values are numbers (deadbands and the aggregates other than last apply)."""

_TYPE_ALIASES = {
    "INT": "INT",
    "INTEGER": "INT",
    "FLOAT": "FLOAT",
    "DOUBLE": "DOUBLE",
    "STRING": "STRING",
    "STREAM": "STRING",
    "BOOLEAN": "BOOLEAN",
    "BOOL": "BOOLEAN",
    "BYTES": "BYTES",
}

TWIN_TYPE = {
    "INT": "int",
    "FLOAT": "float",
    "DOUBLE": "float",
    "BOOLEAN": "boolean",
    "STRING": "string",
    "BYTES": "string",
}
"""The twin ``metadata.type`` EdgeCore's ValidateValue accepts for each property type."""

KUBEEDGE_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,:/@")
"""Bytes a canonical STRING keeps as they are; ``#`` is KubeEdge's last allowed character and
starts an escape."""

# Characters Rust's str::trim removes (Unicode White_Space), which differ from str.strip()'s.
_WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
_WHITE_SPACE += "\u2028\u2029\u202f\u205f\u3000"

# Rust's grammar for f64/f32 text: no underscores, no inner blanks, `inf`/`infinity`/`nan`.
_FLOAT_TEXT = re.compile(
    r"[+-]?(?:inf|infinity|nan|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?)", re.IGNORECASE
)
_INT_TEXT = re.compile(r"[+-]?[0-9]+")


def type_error(expected: str, got: str) -> ValueTypeError:
    """The error for a value that does not fit ``expected`` (device/property filled by callers)."""
    return ValueTypeError(f"expected a {expected} value, got {got}", expected=expected)


def parse_type(text: str) -> str:
    """The property type of a CRD spelling (any case; INTEGER, BOOL and STREAM are aliases)."""
    found = _TYPE_ALIASES.get(ascii_upper(text))
    if found is None:
        raise SpecError(f"unknown property type {text!r}", path="type")
    return found


def ascii_upper(text: str) -> str:
    """Upper-cases ASCII letters only (as Rust's ``to_ascii_uppercase``)."""
    if text.isascii():
        return text.upper()
    return "".join(c.upper() if c.isascii() else c for c in text)


def ascii_lower(text: str) -> str:
    """Lower-cases ASCII letters only (as Rust's ``to_ascii_lowercase``)."""
    if text.isascii():
        return text.lower()
    return "".join(c.lower() if c.isascii() else c for c in text)


def rust_trim(text: str) -> str:
    """Strips Unicode White_Space from both ends (Rust's ``str::trim``)."""
    return text.strip(_WHITE_SPACE)


def parse_f64(text: str) -> float | None:
    """Rust's ``str::parse::<f64>``: correctly rounded, or None when not a float literal."""
    if not _FLOAT_TEXT.fullmatch(text):
        return None
    return float(text)


def parse_f32(text: str) -> float | None:
    """Rust's ``str::parse::<f32>``: the decimal text rounded once, straight to 32 bits."""
    if not _FLOAT_TEXT.fullmatch(text):
        return None
    lower = text.lower().lstrip("+-")
    negative = text.startswith("-")
    if lower in {"inf", "infinity", "nan"}:
        return float(text)
    exact = Fraction(Decimal(text))
    return -round_f32(-exact) if negative else round_f32(exact)


def round_f32(q: Fraction) -> float:
    """The 32-bit float nearest to ``q`` (ties to even), as an exact float; overflow is inf."""
    if q == 0:
        return 0.0
    sign, a = (-1.0, -q) if q < 0 else (1.0, q)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    quantum = Fraction(2) ** (max(e, -126) - 23)
    m = round(a / quantum)  # Fraction.__round__ rounds half to even
    result = m * quantum
    if result >= 2**128:
        return sign * math.inf
    return sign * float(result)


def to_f32(x: float) -> float:
    """``x as f32`` in Rust: round to nearest even, overflow to infinity, NaN stays NaN."""
    if math.isnan(x) or math.isinf(x):
        return x
    try:
        return float(struct.unpack("<f", struct.pack("<f", x))[0])
    except OverflowError:
        return math.copysign(math.inf, x)


def f64_to_i64(x: float) -> int:
    """``x as i64`` in Rust: truncate toward zero, saturate, NaN is 0."""
    if math.isnan(x):
        return 0
    if math.isinf(x):
        return I64_MAX if x > 0 else I64_MIN
    return max(I64_MIN, min(I64_MAX, math.trunc(x)))


def rust_round(x: float) -> float:
    """Rust's ``f64::round``: halfway cases away from zero (Python's round() goes to even)."""
    if math.isnan(x) or math.isinf(x):
        return x
    t = float(math.trunc(x))
    if abs(x - t) >= 0.5:  # x - t is exact: it is the fraction part of x
        t += math.copysign(1.0, x)
    return t


def from_f64(ty: str, x: float) -> Value:
    """A value of numeric type ``ty`` from a float (aggregates): INT truncates and saturates."""
    if ty == "INT":
        return f64_to_i64(x)
    if ty == "FLOAT":
        return to_f32(x)
    if ty == "DOUBLE":
        return x
    return x != 0.0  # BOOLEAN


def as_f64(value: Value) -> float | None:
    """A numeric value (or a boolean) as a float, None for text and bytes."""
    if isinstance(value, str | bytes):
        return None
    return float(value)


def _hex_pairs(text: str) -> bytes | None:
    """Hex text (either case, even length) as bytes, None when it is not that."""
    if len(text) % 2 or any(c not in "0123456789abcdefABCDEF" for c in text):
        return None
    return bytes.fromhex(text)


def parse_value(ty: str, text: str) -> Value:
    """Parses user-facing text (REST, MQTT, a manifest's desired value) as a value of ``ty``.

    Numbers may carry surrounding white space; INT also takes an integral float below 2^53
    (``"3.0"``); BOOLEAN takes ``true``/``false`` in any case and ``1``/``0``; STRING is taken as
    it is; BYTES is hex.
    """
    t = rust_trim(text)
    result: Value | None = None
    if ty == "STRING":
        return text
    if ty == "INT":
        if _INT_TEXT.fullmatch(t) and I64_MIN <= int(t) <= I64_MAX:
            result = int(t)
        else:
            x = parse_f64(t)
            if x is not None and math.isfinite(x) and x == int(x) and abs(x) < EXACT_F64:
                result = int(x)
    elif ty == "FLOAT":
        result = parse_f32(t)
    elif ty == "DOUBLE":
        result = parse_f64(t)
    elif ty == "BOOLEAN":
        result = {"true": True, "1": True, "false": False, "0": False}.get(ascii_lower(t))
    else:  # BYTES
        result = _hex_pairs(t)
    if result is None:
        raise type_error(ty, repr(text[:40]))
    return result


def parse_canonical(ty: str, text: str) -> Value:
    """Reads a canonical string back (the inverse of :func:`canonical`).

    STRING un-escapes ``#XX``; a ``#`` without two hex digits, or escapes that do not form UTF-8,
    are kept literally (so ``#FF0000`` written by another mapper survives). BYTES is hex without
    surrounding blanks; the other types parse as user text.
    """
    if ty == "STRING":
        return unescape(text)
    if ty == "BYTES":
        data = _hex_pairs(text)
        if data is None:
            raise type_error(ty, repr(text[:40]))
        return data
    return parse_value(ty, text)


def unescape(text: str) -> str:
    """Reverses the ``#XX`` escapes of a canonical STRING (see :func:`parse_canonical`)."""
    if "#" not in text:
        return text
    raw = text.encode()
    out = bytearray()
    i = 0
    while i < len(raw):
        pair = raw[i + 1 : i + 3].decode("latin-1")
        if raw[i] == ord("#") and len(pair) == 2 and _hex_pairs(pair) is not None:
            out.append(int(pair, 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    try:
        return out.decode()
    except UnicodeDecodeError:
        return text


def canonical(ty: str, value: Value) -> str:
    """The one canonical string form of a value (DMI ``TwinProperty.value``, MQTT, twins).

    INT in decimal; FLOAT and DOUBLE as the shortest decimal that reads back to the same 32- or
    64-bit number, never with an exponent (``NaN``, ``inf``, ``-inf``, ``-0``); BOOLEAN
    ``true``/``false``; STRING the text with every UTF-8 byte outside
    ``[a-zA-Z0-9-_.,:/@]`` written ``#XX`` (upper-case hex); BYTES lower-case hex. Every
    canonical string is inside KubeEdge's twin value character set.
    """
    if ty == "INT":
        return str(value)
    if ty in {"FLOAT", "DOUBLE"}:
        assert isinstance(value, float)
        return float_text(value, 32 if ty == "FLOAT" else 64)
    if ty == "BOOLEAN":
        return "true" if value else "false"
    if ty == "STRING":
        assert isinstance(value, str)
        return escape(value)
    assert isinstance(value, bytes)
    return value.hex()


def escape(text: str) -> str:
    """A STRING's canonical text: bytes outside the plain set (and ``#``) as ``#XX``."""
    return "".join(chr(b) if b in KUBEEDGE_PLAIN else f"#{b:02X}" for b in text.encode())


def is_kubeedge_safe(text: str) -> bool:
    """Whether ``text`` stays inside KubeEdge's twin value characters ``[a-zA-Z0-9-_.,:/@#]``."""
    return all(b in KUBEEDGE_PLAIN or b == ord("#") for b in text.encode())


def float_text(x: float, bits: int) -> str:
    """Plain decimal text of a 32- or 64-bit float (Rust's ``Display``), see :func:`shortest`."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    return format(shortest(x, bits).normalize(), "f")


def shortest(x: float, bits: int) -> Decimal:
    """The shortest decimal that reads back as the 32- or 64-bit float ``x``.

    Of the (at most two) decimals of that length that read back, the nearer one; of two equally
    near, the one of larger magnitude (``1710678.75`` as a FLOAT is ``1710678.8``). ``x`` is
    finite and non-zero.
    """
    if bits == 64:
        # Python's repr is this same shortest round trip, except that it breaks a tie toward an
        # even last digit; a tie needs x's exact expansion to be one digit longer, ending in 5.
        short = Decimal(repr(x))
        exact = Decimal(x).as_tuple().digits
        if len(exact) != len(short.normalize().as_tuple().digits) + 1 or exact[-1] != 5:
            return short
    low, high, inclusive = _rounding_interval(x, bits)
    target = Fraction(abs(x))

    def reads_back(d: Decimal) -> bool:
        q = Fraction(d)
        return low < q < high or (inclusive and q in (low, high))

    for precision in range(1, 18):
        candidates = [
            Context(prec=precision, rounding=rounding).create_decimal(Decimal(abs(x)))
            for rounding in (ROUND_CEILING, ROUND_FLOOR)
        ]
        good = [d for d in candidates if reads_back(d)]
        if good:
            best = min(good, key=lambda d: abs(Fraction(d) - target))  # ties: the first, larger
            return -best if x < 0 else best
    raise AssertionError(f"no shortest form of {x!r}")  # 9 or 17 digits always suffice


def _rounding_interval(x: float, bits: int) -> tuple[Fraction, Fraction, bool]:
    """The numbers that read back as ``|x|``.

    They lie between the midpoints to both neighbours, the midpoints included when the mantissa
    is even (ties go to even).
    """
    a = abs(x)
    if bits == 32:
        pattern = _f32_bits(a)
        below = Fraction(_f32_from_bits(pattern - 1))
        top = pattern + 1 == 0x7F800000
        above = Fraction(2**128) if top else Fraction(_f32_from_bits(pattern + 1))
    else:
        pattern = int(struct.unpack("<Q", struct.pack("<d", a))[0])
        below = Fraction(math.nextafter(a, 0.0))
        top = math.isinf(math.nextafter(a, math.inf))
        above = Fraction(2**1024) if top else Fraction(math.nextafter(a, math.inf))
    exact = Fraction(a)
    return (below + exact) / 2, (exact + above) / 2, pattern % 2 == 0


def _f32_bits(x: float) -> int:
    return int(struct.unpack("<I", struct.pack("<f", x))[0])


def _f32_from_bits(bits: int) -> float:
    return float(struct.unpack("<f", struct.pack("<I", bits))[0])


# ---------------------------------------------------------------------------------------------
# 2. Modbus visitors
# ---------------------------------------------------------------------------------------------

REGISTER_KINDS = ("CoilRegister", "DiscreteInputRegister", "InputRegister", "HoldingRegister")
"""Register kinds in declaration order (the order of read plans)."""

BIT_KINDS = frozenset({"CoilRegister", "DiscreteInputRegister"})
MAX_READ = {"CoilRegister": 2000, "DiscreteInputRegister": 2000}  # registers: 125

DATA_TYPES = {
    # name: (registers, integer range or None)
    "int16": (1, (-(2**15), 2**15 - 1)),
    "uint16": (1, (0, 2**16 - 1)),
    "int32": (2, (-(2**31), 2**31 - 1)),
    "uint32": (2, (0, 2**32 - 1)),
    "int64": (4, (I64_MIN, I64_MAX)),
    "uint64": (4, (0, U64_MAX)),
    "float32": (2, None),
    "float64": (4, None),
    "boolean": (1, None),
}
"""The fixed-width data types: width in registers and, for integers, their range."""

GENERIC_ON_REGISTERS = {
    ("int", 0): "uint16",
    ("int", 1): "uint16",
    ("int", 2): "uint32",
    ("int", 4): "uint64",
    ("float", 0): "float32",
    ("float", 2): "float32",
    ("float", 1): "int16",
    ("double", 1): "int16",
    ("double", 2): "int32",
    ("double", 0): "float64",
    ("double", 4): "float64",
}
"""KubeEdge's generic dataType names on 16-bit registers, by limit: ``int`` is unsigned
(legacy TransferData), ``float``/``double`` with ``limit: 1`` is a scaled int16 (the upstream
sample), ``double`` with ``limit: 2`` a scaled int32."""

_CONFIG = "visitors.configData."


def max_read(kind: str) -> int:
    """The protocol limit of one read: 2000 bits or 125 registers."""
    return MAX_READ.get(kind, 125)


def frame_size(kind: str, count: int) -> int:
    """Bytes of a read response holding ``count`` bits or registers."""
    return (count + 7) // 8 if kind in BIT_KINDS else 2 * count


def _config_error(key: str, message: str) -> SpecError:
    return SpecError(f"{_CONFIG}{key}: {message}", path=f"{_CONFIG}{key}")


def parse_register_kind(text: str) -> str:
    """A register kind from its manifest spelling (any case, surrounding blanks ignored)."""
    for kind in REGISTER_KINDS:
        if kind.lower() == ascii_lower(rust_trim(text)):
            return kind
    raise _config_error("register", f"unknown register {text!r}")


@dataclass(frozen=True)
class Visitor:
    """A compiled Modbus visitor: where a property lives and how its bits read."""

    kind: str
    offset: int
    count: int
    """Registers, or bits for coils and discrete inputs."""
    data_type: str
    scale: float
    """1.0 when there is none."""
    swap: bool
    register_swap: bool
    property_type: str
    decimals: int | None = None
    """Decimals of the scale's shortest text (see :func:`scale_decimals`), found once."""

    @property
    def is_bit(self) -> bool:
        """Whether the visitor reads coils or discrete inputs."""
        return self.kind in BIT_KINDS

    @property
    def scaled(self) -> bool:
        """Whether a scale other than 1 applies."""
        return self.scale != 1.0


def compile_visitor(config: Mapping[str, Any], ty: str) -> Visitor:
    """Compiles a visitor ``configData`` for a property of type ``ty``, checking every field.

    The keys are validated in this order, the first bad one raising :class:`SpecError` at
    ``visitors.configData.<key>``: register, limit (0..65535), dataType and limit together,
    dataType against the property type, scale, swaps (none on bit registers), offset.
    ``config`` holds converted values: register, offset, limit, dataType, scale, isSwap,
    isRegisterSwap (see :func:`visitor_config`).
    """
    kind = parse_register_kind(config["register"])
    limit = config.get("limit", 0)
    if not 0 <= limit <= 0xFFFF:
        raise _config_error("limit", f"limit must be in 0..={max_read(kind)}, got {limit}")
    name = ascii_lower(rust_trim(config.get("dataType", "")))
    if not name:
        name = _generic_name(ty, kind in BIT_KINDS)
    if kind in BIT_KINDS:
        data_type, count = _resolve_bits(kind, name, limit)
    else:
        data_type, count = _resolve_registers(name, limit)
    _check_compatible(data_type, ty)
    scale = float(config.get("scale", 1.0))
    if not math.isfinite(scale):
        raise _config_error("scale", f"scale must be a finite number, got {scale}")
    if scale in (0.0, 1.0):
        scale = 1.0
    elif data_type in {"string", "bytes", "boolean"}:
        raise _config_error("scale", f"scale applies only to numeric data types, not {data_type}")
    swap, register_swap = bool(config.get("isSwap")), bool(config.get("isRegisterSwap"))
    if kind in BIT_KINDS and (swap or register_swap):
        raise _config_error("isSwap" if swap else "isRegisterSwap", f"{kind} holds bits")
    if count > max_read(kind):
        raise _config_error("limit", f"{kind} reads at most {max_read(kind)} at once")
    offset = config.get("offset", 0)
    if not 0 <= offset <= 0xFFFF:
        raise _config_error("offset", f"offset must be in 0..=65535, got {offset}")
    if offset + count > 0x10000:
        raise _config_error("offset", f"offset {offset} + {count} run past address 65535")
    decimals = scale_decimals(scale)
    return Visitor(kind, offset, count, data_type, scale, swap, register_swap, ty, decimals)


def _generic_name(ty: str, bits: bool) -> str:
    """The dataType an empty name stands for."""
    if ty == "BOOLEAN":
        return "boolean"
    if bits:
        return "int"
    return ty.lower()


def _concrete(name: str) -> str | None:
    name = "boolean" if name == "bool" else name
    return name if name in DATA_TYPES else None


def _resolve_registers(name: str, limit: int) -> tuple[str, int]:
    """The data type and register count of a (lower-case) name on 16-bit registers."""
    if name in {"int", "float", "double"}:
        found = GENERIC_ON_REGISTERS.get((name, limit))
        if found is None:
            raise _config_error("limit", f"dataType {name} does not come in limit {limit}")
        return found, DATA_TYPES[found][0]
    if name in {"string", "bytes"}:
        if limit == 0:
            raise _config_error("limit", f"dataType {name} needs its length in registers")
        return name, limit
    found = _concrete(name)
    if found is None:
        raise _config_error("dataType", f"unknown dataType {name!r}")
    width = DATA_TYPES[found][0]
    if limit not in (0, width):
        raise _config_error("limit", f"dataType {found} needs limit {width} (or 0)")
    return found, width


def _resolve_bits(kind: str, name: str, limit: int) -> tuple[str, int]:
    """The data type and bit count of a (lower-case) name on coils or discrete inputs.

    Bit registers hold ``limit`` bits (default 1) packed LSB-first into an integer; ``int``
    widens to uint16/32/64 as needed; only integer types and boolean (one bit) are allowed.
    """
    bits = max(limit, 1)
    found = _concrete(name)
    if name == "int":
        data_type = "uint16" if bits <= 16 else "uint32" if bits <= 32 else "uint64"
    elif found is not None and found not in {"float32", "float64"}:
        data_type = found
    elif found is not None or name in {"float", "double", "string", "bytes"}:
        raise _config_error("dataType", f"{kind} holds bits: not {name}")
    else:
        raise _config_error("dataType", f"unknown dataType {name!r}")
    width = 1 if data_type == "boolean" else 16 * DATA_TYPES[data_type][0]
    if bits > width:
        raise _config_error("limit", f"dataType {data_type} holds at most {width} bits")
    return data_type, bits


def _check_compatible(data_type: str, ty: str) -> None:
    """Which data types may feed which property types."""
    text = data_type in {"string", "bytes"}
    if (
        (ty == "STRING" and data_type == "bytes")
        or (ty == "BYTES" and not text)
        or (ty not in {"STRING", "BYTES"} and text)
    ):
        raise _config_error("dataType", f"dataType {data_type} cannot feed a {ty} property")


def scale_decimals(scale: float) -> int | None:
    """Decimals of the scale's shortest text, or None when rounding to them cannot be exact."""
    text = float_text(abs(scale), 64)
    decimals = len(text) - text.index(".") - 1 if "." in text else 0
    if decimals <= 22 and abs(rust_round(scale * 10.0**decimals)) < EXACT_F64:
        return decimals
    return None


def scaled_number(v: Visitor, x: float, integral: bool) -> float:
    """``x`` times the visitor's scale.

    An integer read rounds to the scale's decimals, as if multiplied in decimal: 123 x 0.1 is
    12.3 (not 12.300000000000001). A float read is simply multiplied.
    """
    if not v.scaled:
        return x
    if integral and v.decimals is not None:
        p = 10.0**v.decimals
        m = rust_round(v.scale * p)
        product = x * m
        if abs(product) < EXACT_F64 and m / p == v.scale:
            return product / p
    return x * v.scale


def _short(needed: int, got: int) -> FrameError:
    return FrameError(f"frame too short ({got} bytes, needs {needed})", needed=needed, got=got)


def visitor_bytes(v: Visitor, start: int, frame: bytes) -> bytes:
    """The frame bytes of a register visitor's registers (2 per register, big-endian)."""
    length = 2 * v.count
    if v.offset < start:
        raise _short(length, 0)
    begin = 2 * (v.offset - start)
    if len(frame) < begin + length:
        raise _short(begin + length, len(frame))
    return frame[begin : begin + length]


def visitor_bits(v: Visitor, start: int, frame: bytes) -> int:
    """A bit visitor's bits as an integer.

    A bit visitor's bits (bit i of the result is address offset + i), from a frame packed
    LSB-first as a read-coils response; bit 0 of the frame is address ``start``.
    """
    if v.offset < start:
        raise _short((v.count + 7) // 8, 0)
    rel = v.offset - start
    needed = (rel + v.count + 7) // 8
    if len(frame) < needed:
        raise _short(needed, len(frame))
    return sum(((frame[(rel + i) // 8] >> ((rel + i) % 8)) & 1) << i for i in range(v.count))


def swapped(v: Visitor, data: bytes) -> bytes:
    """Applies the swaps to whole registers.

    Applies the swaps to whole registers: ``isRegisterSwap`` reverses the register order,
    ``isSwap`` the two bytes inside each register (both are their own inverse).
    """
    registers = [data[i : i + 2] for i in range(0, len(data) - 1, 2)]
    if v.register_swap:
        registers.reverse()
    if v.swap:
        registers = [r[::-1] for r in registers]
    return b"".join(registers)


def decode(v: Visitor, start: int, frame: bytes) -> Value:
    """Decodes the visitor's property out of a frame of its kind read from address ``start``.

    Register data is big-endian after the swaps. A BYTES property takes the raw bytes; string
    data trims trailing NULs and blanks and replaces invalid UTF-8. Integer types read two's
    complement or unsigned, float32/float64 IEEE-754, boolean "not zero". The number then
    becomes the property type: INT keeps an unscaled integer exactly (a uint64 above the INT
    range saturates) and otherwise truncates the scaled number; FLOAT rounds it to 32 bits;
    BOOLEAN is "not zero"; STRING shows the exact integer, or the canonical FLOAT (float32 data)
    or DOUBLE text of the scaled number.
    """
    if v.is_bit:
        raw = visitor_bits(v, start, frame)
    else:
        data = swapped(v, visitor_bytes(v, start, frame))
        if v.property_type == "BYTES":
            return data
        if v.data_type == "string":
            return data.rstrip(b"\x00 ").decode("utf-8", errors="replace")
        raw = int.from_bytes(data, "big")
    return _to_property_type(v, _interpret(v.data_type, raw))


def _interpret(data_type: str, raw: int) -> int | float | bool:
    """The number held by the raw bits under a data type."""
    if data_type == "float32":
        return float(struct.unpack(">f", raw.to_bytes(4, "big"))[0])
    if data_type == "float64":
        return float(struct.unpack(">d", raw.to_bytes(8, "big"))[0])
    if data_type == "boolean":
        return raw != 0
    width = {"int16": 16, "int32": 32, "int64": 64}.get(data_type)
    if width is not None and raw >> (width - 1):
        return raw - (1 << width)
    return raw


def _to_property_type(v: Visitor, number: int | float | bool) -> Value:  # noqa: PLR0911
    """A decoded number as a value of the property type (see :func:`decode`)."""
    ty = v.property_type
    if isinstance(number, bool):
        scaled = 1.0 if number else 0.0
    else:
        scaled = scaled_number(v, float(number), isinstance(number, int))
    if ty == "INT":
        if isinstance(number, int) and not isinstance(number, bool) and not v.scaled:
            return min(number, I64_MAX)
        return f64_to_i64(scaled)
    if ty == "FLOAT":
        return to_f32(scaled)
    if ty == "DOUBLE":
        return scaled
    if ty == "BOOLEAN":
        return number if isinstance(number, bool) else scaled != 0.0
    # STRING
    if isinstance(number, bool):
        return "true" if number else "false"
    if isinstance(number, int) and not v.scaled:
        return str(number)
    if v.data_type == "float32":
        return float_text(to_f32(scaled), 32)
    return float_text(scaled, 64)


WriteOp = tuple[int, int, list[int] | list[bool]]
"""A Modbus write: (function code, first address, register words or coil states)."""


def encode_write(v: Visitor, value: Value) -> WriteOp:
    """The write that sets the visitor's property to ``value``.

    The write that sets the visitor's property to ``value``: the reverse scale, the same swaps.
    Coils use function 5 (one) or 15 (several), holding registers 6 (one) or 16.

    Raises :class:`SpecError` for read-only kinds and :class:`ValueTypeError` (naming the data
    type) when the value does not fit it after the reverse scale.
    """
    if v.kind not in {"CoilRegister", "HoldingRegister"}:
        raise _config_error("register", f"{v.kind} is read-only")
    if v.data_type in {"string", "bytes"}:
        data = value.encode() if isinstance(value, str) else value
        assert isinstance(data, bytes)
        if len(data) > 2 * v.count:
            raise type_error(f"{v.property_type} of at most {2 * v.count} bytes", "longer")
        data = swapped(v, data.ljust(2 * v.count, b"\x00"))
        words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
        return (6 if len(words) == 1 else 16, v.offset, words)
    pattern = _pattern(v, _write_number(v, value))
    if v.is_bit:
        if v.count < 64 and pattern >> v.count:
            raise type_error(v.data_type, f"more than {v.count} bits")
        bits = [bool((pattern >> i) & 1) for i in range(v.count)]
        return (5 if len(bits) == 1 else 15, v.offset, bits)
    data = swapped(v, pattern.to_bytes(8, "big")[8 - 2 * v.count :])
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return (6 if len(words) == 1 else 16, v.offset, words)


def _write_number(v: Visitor, value: Value) -> int | float | bool:
    """The number a value stands for; a STRING property's text parses as the data type's."""
    if isinstance(value, bytes):
        raise type_error(v.data_type, "BYTES value")
    if not isinstance(value, str):
        return value
    if v.data_type == "boolean":
        return parse_value("BOOLEAN", value) is True
    t = rust_trim(value)
    if DATA_TYPES[v.data_type][1] is not None and not v.scaled and _INT_TEXT.fullmatch(t):
        return int(t)
    number = parse_value("DOUBLE", value)
    assert isinstance(number, float)
    return number


def _pattern(v: Visitor, number: int | float | bool) -> int:
    """The data type's bit pattern of a number after the reverse scale, range checked."""
    if v.data_type == "boolean":
        return int(number != 0)
    unscaled = float(number) if isinstance(number, bool) else float(number) / v.scale
    if v.data_type == "float64":
        return int.from_bytes(struct.pack(">d", unscaled), "big")
    if v.data_type == "float32":
        narrow = to_f32(unscaled)
        if math.isfinite(unscaled) and math.isinf(narrow):
            raise type_error("float32", "a number outside the float32 range")
        return int.from_bytes(struct.pack(">f", narrow), "big")
    low, high = DATA_TYPES[v.data_type][1] or (0, 0)
    if isinstance(number, bool):
        raw = int(number)
    elif isinstance(number, int) and not v.scaled:
        raw = number
    elif math.isnan(unscaled):
        raise type_error(v.data_type, "NaN")
    elif math.isinf(unscaled):
        raw = 2**127 - 1 if unscaled > 0 else -(2**127)
    else:
        raw = int(rust_round(unscaled))
    if not low <= raw <= high:
        raise type_error(v.data_type, f"{raw} outside {low}..={high}")
    return raw & ((1 << (16 * DATA_TYPES[v.data_type][0])) - 1)


def plan_reads(
    visitors: Sequence[Visitor], max_registers: int = 125, max_bits: int = 2000, max_gap: int = 0
) -> list[tuple[str, int, int]]:
    """Coalesces visitors into few reads ``(kind, start, count)``.

    Coalesces visitors into few reads ``(kind, start, count)``: by kind, then offset, a visitor
    joins the previous read of its kind when the gap is at most ``max_gap`` and the merged span
    stays within the limit; otherwise it starts a new read.
    """
    ordered = sorted(
        range(len(visitors)),
        key=lambda i: (REGISTER_KINDS.index(visitors[i].kind), visitors[i].offset, i),
    )
    reads: list[tuple[str, int, int]] = []
    for i in ordered:
        v = visitors[i]
        limit = min(max_bits if v.is_bit else max_registers, max_read(v.kind))
        if reads:
            kind, start, count = reads[-1]
            merged = max(start + count, v.offset + v.count) - start
            if kind == v.kind and v.offset <= start + count + max_gap and merged <= limit:
                reads[-1] = (kind, start, merged)
                continue
        reads.append((v.kind, v.offset, v.count))
    return reads


# ---------------------------------------------------------------------------------------------
# Converting what crosses from Python (the engine's `convert.rs`)
# ---------------------------------------------------------------------------------------------


def _spec_error(path: str, message: str) -> SpecError:
    return SpecError(f"{path}: {message}", path=path)


def as_int(obj: object, path: str) -> int:
    """An integer given as int, integral float or numeric text (manifests quote numbers)."""
    if isinstance(obj, bool):
        raise _spec_error(path, "expected an integer, got a boolean")
    if isinstance(obj, int) and I64_MIN <= obj <= I64_MAX:
        return obj
    x = as_float(obj, path)
    if math.isfinite(x) and x == int(x) and abs(x) < 9.0e15:
        return int(x)
    raise _spec_error(path, f"expected an integer, got {x}")


def as_float(obj: object, path: str) -> float:
    """A number given as int, float or numeric text."""
    if isinstance(obj, bool):
        raise _spec_error(path, "expected a number, got a boolean")
    if isinstance(obj, int | float):
        return float(obj)
    if isinstance(obj, str):
        x = parse_f64(rust_trim(obj))
        if x is not None:
            return x
    raise _spec_error(path, f"expected a number, got {obj!r}")


def as_bool(obj: object, path: str) -> bool:
    """A boolean given as bool or ``"true"``/``"false"`` text."""
    if isinstance(obj, bool):
        return obj
    if isinstance(obj, str) and ascii_lower(obj) in {"true", "false"}:
        return ascii_lower(obj) == "true"
    raise _spec_error(path, f"expected true or false, got {obj!r}")


def as_text(obj: object, path: str) -> str:
    """A string, nothing else."""
    if not isinstance(obj, str):
        raise _spec_error(path, "expected a string")
    return obj


def visitor_config(raw: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Converts a ``configData`` mapping.

    Converts a ``configData`` mapping; a key set to None counts as absent, other keys are
    ignored (as mapper-framework drivers do).
    """
    given = {k: v for k, v in raw.items() if v is not None}
    if "register" not in given:
        raise _spec_error(f"{path}.register", "required")
    out: dict[str, Any] = {"register": as_text(given["register"], f"{path}.register")}
    for key, convert in (
        ("offset", as_int),
        ("limit", as_int),
        ("dataType", as_text),
        ("scale", as_float),
        ("isSwap", as_bool),
        ("isRegisterSwap", as_bool),
    ):
        if key in given:
            out[key] = convert(given[key], f"{path}.{key}")
    return out


def py_value(obj: object, ty: str) -> Value:
    """A Python object as a value of ``ty``.

    A Python object as a value of ``ty``: text parses (:func:`parse_value`); bool only for
    BOOLEAN; int for INT (64 bits) or FLOAT/DOUBLE; float for FLOAT/DOUBLE; bytes for BYTES.
    """
    if isinstance(obj, str):
        return parse_value(ty, obj)
    if isinstance(obj, bool):
        if ty == "BOOLEAN":
            return obj
        raise type_error(ty, "a bool")
    if isinstance(obj, int):
        if not I64_MIN <= obj <= I64_MAX:
            raise type_error(ty, "an int outside 64 bits")
        if ty == "INT":
            return obj
        if ty in {"FLOAT", "DOUBLE"}:
            return from_f64(ty, float(obj))
        raise type_error(ty, "an int")
    if isinstance(obj, float):
        if ty in {"FLOAT", "DOUBLE"}:
            return from_f64(ty, obj)
        raise type_error(ty, "a float")
    if isinstance(obj, bytes):
        if ty == "BYTES":
            return obj
        raise type_error(ty, "bytes")
    raise type_error(ty, f"a {type(obj).__name__}")


# ---------------------------------------------------------------------------------------------
# 3. Change policy and sampling rings
# ---------------------------------------------------------------------------------------------

REDUCES = ("last", "min", "max", "mean", "count")
DEFAULT_QUEUE_CAPACITY = 1
"""A ring's capacity when the spec says 0: one sample, the newest.

A twin reported every collect cycle needs no more; a report cycle spanning several collect
cycles sets ``queue_capacity`` to its samples per report cycle.
"""


@dataclass(frozen=True)
class Policy:
    """When a new reported value counts as a change.

    ``deadband`` is ``("exact", 0)``: any difference (NaN equals NaN, 0 equals -0);
    ``("absolute", x)``: ``|new - old| > x``; ``("relative", x)``: ``|new - old| > x * |old|``
    (numbers compared as floats; NaN on one side only is always a change).
    ``heartbeat_ms`` > 0 re-reports an unchanged value once it is that old.
    """

    deadband: tuple[str, float] = ("exact", 0.0)
    heartbeat_ms: int = 0

    def is_change(self, old: Value, new: Value) -> bool:
        """Whether ``new`` differs from ``old`` by this policy."""
        kind, x = self.deadband
        o, n = as_f64(old), as_f64(new)
        if kind == "exact" or o is None or n is None:
            return not _same(old, new)
        if math.isnan(o) or math.isnan(n):
            return not (math.isnan(o) and math.isnan(n))
        if kind == "absolute":
            return abs(n - o) > x
        return abs(n - o) > x * abs(o)

    def heartbeat_due(self, last_ts: int, now: int) -> bool:
        """Whether an unchanged value last reported at ``last_ts`` is due again at ``now``."""
        return self.heartbeat_ms > 0 and max(I64_MIN, min(I64_MAX, now - last_ts)) >= (
            self.heartbeat_ms
        )


def _same(a: Value, b: Value) -> bool:
    """Exact sameness; a stuck NaN sensor is not a change every cycle."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _ignoring_nan(pick: Callable[[float, float], float], a: float, b: float) -> float:
    """``pick(a, b)``, except that a NaN operand is ignored (IEEE minNum/maxNum)."""
    if math.isnan(b):
        return a
    if math.isnan(a):
        return b
    return pick(a, b)


def _fmin(a: float, b: float) -> float:
    """IEEE minNum (Rust's ``f64::min``): a NaN operand is ignored."""
    return _ignoring_nan(min, a, b)


def _fmax(a: float, b: float) -> float:
    """IEEE maxNum (Rust's ``f64::max``): a NaN operand is ignored."""
    return _ignoring_nan(max, a, b)


@dataclass
class Ring:
    """A bounded sampling ring: a full ring drops its oldest sample and counts the drop."""

    capacity: int
    samples: deque[tuple[int, Value]] = field(default_factory=deque)
    dropped: int = 0

    def push(self, ts: int, value: Value) -> None:
        """Queues a sample, dropping (and counting) the oldest when full."""
        if len(self.samples) == self.capacity:
            self.samples.popleft()
            self.dropped += 1
        self.samples.append((ts, value))

    def drain(self, ty: str, reduce: str) -> tuple[int, Value] | None:
        """Empties the ring into one sample.

        Empties the ring into one sample: the newest sample's time and the ``reduce`` aggregate
        of the values (min/max ignore NaN; mean sums oldest first; count is how many were
        drained), converted to the property type. None when the ring is empty.
        """
        if not self.samples:
            return None
        samples = list(self.samples)
        self.samples.clear()
        ts, last = samples[-1]
        if reduce == "last" or ty not in NUMERIC:
            return ts, last
        numbers = [float(v) for _, v in samples]
        if reduce == "count":
            return ts, from_f64(ty, float(len(numbers)))
        if reduce == "mean":
            total = 0.0
            for x in numbers:
                total += x
            return ts, from_f64(ty, total / len(numbers))
        pick, acc = (_fmin, math.inf) if reduce == "min" else (_fmax, -math.inf)
        for x in numbers:
            acc = pick(acc, x)
        return ts, from_f64(ty, acc)


# ---------------------------------------------------------------------------------------------
# 4. The twin store
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Version:
    """A twin side's version as KubeEdge writes it: ``edge`` grows with each edge change."""

    cloud: int = 0
    edge: int = 0


@dataclass(frozen=True)
class Side:
    """One side of a twin: a value and when it was set (ms since the epoch)."""

    value: Value
    ts: int


@dataclass(frozen=True)
class TwinState:
    """A whole twin: desired (KubeEdge's expected) and reported (actual) with versions."""

    desired: Side | None = None
    reported: Side | None = None
    desired_version: Version = Version()
    reported_version: Version = Version()


@dataclass(frozen=True)
class PropertyConfig:
    """A compiled property spec."""

    name: str
    type: str
    visitor: Visitor | None
    policy: Policy
    reduce: str
    capacity: int


@dataclass
class Property:
    """A property of one device: its config, twin and ring."""

    config: PropertyConfig
    twin: TwinState
    ring: Ring


@dataclass
class Device:
    """One device: its id, its compiled shape (``layout``) and its properties in spec order."""

    id: str
    layout: tuple[PropertyConfig, ...]
    properties: list[Property]
    by_name: dict[str, int]
    by_kind: dict[str, list[tuple[int, int]]]
    """Per register kind: (offset, property index) of the Modbus properties, sorted."""


@dataclass(frozen=True)
class Change:
    """One changed twin property, with the whole twin before and after."""

    device: str
    name: str
    """The property's name."""
    type: str
    kind: str
    """``reported`` or ``desired``."""
    before: TwinState
    after: TwinState

    @property
    def side(self) -> Side | None:
        """The side that changed, after the change."""
        return self.after.reported if self.kind == "reported" else self.after.desired


@dataclass(frozen=True)
class DeviceDelta:
    """A device's delta.

    A device's delta: every twin with a desired value, and the desired values that differ from
    the reported ones.
    """

    device: str
    twins: tuple[tuple[str, str, TwinState], ...]
    delta: tuple[tuple[str, str], ...]
    """(property, canonical desired value)."""


def has_delta(ty: str, twin: TwinState) -> bool:
    """KubeEdge's delta rule.

    KubeEdge's delta rule: a non-empty desired value whose canonical text differs from the
    reported one (a missing reported value counts as different).
    """
    if twin.desired is None:
        return False
    desired = canonical(ty, twin.desired.value)
    if desired == "":
        return False
    return twin.reported is None or desired != canonical(ty, twin.reported.value)


def compile_properties(properties: Iterable[Mapping[str, Any]]) -> tuple[PropertyConfig, ...]:
    """Converts and validates property specs; errors name ``properties[i].<field>``."""
    out: list[PropertyConfig] = []
    seen: dict[str, int] = {}
    for i, spec in enumerate(properties):
        path = f"properties[{i}]"
        out.append(_compile_property({k: v for k, v in spec.items() if v is not None}, path))
        name = out[-1].name
        if not name:
            raise _spec_error(f"{path}.name", "a property name must not be empty")
        if name in seen:
            raise _spec_error(f"{path}.name", f"{name!r} is also properties[{seen[name]}]")
        seen[name] = i
    return tuple(out)


def _compile_property(spec: Mapping[str, Any], path: str) -> PropertyConfig:  # noqa: PLR0912
    for key in ("name", "type"):
        if key not in spec:
            raise _spec_error(f"{path}.{key}", "required")
    ty_text = as_text(spec["type"], f"{path}.type")
    try:
        ty = parse_type(ty_text)
    except SpecError as e:
        raise _spec_error(f"{path}.type", e.message) from None
    name = as_text(spec["name"], f"{path}.name")
    raw_visitor = spec.get("visitor")
    visitor_raw = (
        visitor_config(raw_visitor, f"{path}.visitors.configData")
        if raw_visitor is not None
        else None
    )
    absolute = spec.get("deadband")
    relative = spec.get("deadband_relative")
    if absolute is not None and relative is not None:
        raise _spec_error(f"{path}.deadband", "give deadband or deadband_relative, not both")
    deadband: tuple[str, float] = ("exact", 0.0)
    if absolute is not None:
        deadband = ("absolute", as_float(absolute, f"{path}.deadband"))
    elif relative is not None:
        deadband = ("relative", as_float(relative, f"{path}.deadband_relative"))
    heartbeat = as_int(spec.get("heartbeat_ms", 0), f"{path}.heartbeat_ms")
    if heartbeat < 0:
        raise _spec_error(f"{path}.heartbeat_ms", "must be >= 0")
    reduce = as_text(spec.get("reduce", "last"), f"{path}.reduce")
    if reduce not in REDUCES:
        raise _spec_error(f"{path}.reduce", f"unknown aggregate {reduce!r}")
    capacity = as_int(spec.get("queue_capacity", 0), f"{path}.queue_capacity")
    if not 0 <= capacity <= 0xFFFF:
        raise _spec_error(f"{path}.queue_capacity", "must be between 0 and 65535")
    # Validation of the converted spec, in the engine's order.
    kind, x = deadband
    if kind != "exact":
        if not (math.isfinite(x) and x >= 0):
            raise _spec_error(f"{path}.deadband", f"must be a finite number >= 0, got {x}")
        if ty not in NUMERIC:
            raise _spec_error(f"{path}.deadband", f"a deadband needs a numeric property, not {ty}")
    if reduce != "last" and ty not in NUMERIC:
        raise _spec_error(f"{path}.reduce", f"{reduce} needs a numeric property, not {ty}")
    visitor = None
    if visitor_raw is not None:
        try:
            visitor = compile_visitor(visitor_raw, ty)
        except SpecError as e:
            raise _spec_error(f"{path}.{e.path}", e.message) from None
    return PropertyConfig(
        name=name,
        type=ty,
        visitor=visitor,
        policy=Policy(deadband, heartbeat),
        reduce=reduce,
        capacity=capacity or DEFAULT_QUEUE_CAPACITY,
    )


class ReferenceEngine:
    """The twin engine in plain Python, with the shape of :class:`twinplane.twin.Engine`.

    Devices live in numbered slots; a removed device's slot is reused by the next new device
    (last freed first), and batch calls visit devices in slot order. Every call validates its
    whole input before changing anything, so an error leaves the engine as it was.
    """

    def __init__(self, *, max_registers: int = 125, max_bits: int = 2000, max_gap: int = 0) -> None:
        if not (1 <= max_registers <= 125 and 1 <= max_bits <= 2000):
            raise _spec_error("max_registers", "must be 1..=125 (and max_bits 1..=2000)")
        self.limits = (max_registers, max_bits, max_gap)
        self.slots: list[Device | None] = []
        self.free: list[int] = []
        self.index: dict[str, int] = {}

    # -- configuration ------------------------------------------------------------------------

    def upsert_device(self, device_id: str, properties: Iterable[Mapping[str, Any]]) -> int:
        """Adds a device or reconfigures it; returns the device's slot.

        Adds a device or reconfigures it. A reconfigured device keeps the twins of the
        properties that keep their name and type; when its compiled shape changes at all, its
        queued samples (and drop counters) start afresh. Returns the device's slot.
        """
        try:
            layout = compile_properties(properties)
        except SpecError as e:
            raise SpecError(e.message, device=device_id, path=e.path) from None
        if not device_id:
            raise _spec_error("id", "a device id must not be empty")
        if device_id in self.index:
            slot = self.index[device_id]
            old = self.slots[slot]
            assert old is not None
            if repr(old.layout) != repr(layout):
                self.slots[slot] = _new_device(device_id, layout, old)
            return slot
        slot = self.free.pop() if self.free else len(self.slots)
        if slot == len(self.slots):
            self.slots.append(None)
        self.slots[slot] = _new_device(device_id, layout, None)
        self.index[device_id] = slot
        return slot

    def remove_device(self, device_id: str) -> None:
        """Removes a device and its twins."""
        slot = self._slot(device_id)
        del self.index[device_id]
        self.slots[slot] = None
        self.free.append(slot)

    def device_index(self, device_id: str) -> int:
        """The slot of a device."""
        return self._slot(device_id)

    def device_ids(self) -> list[str]:
        """Device ids in slot order."""
        return [d.id for d in self.slots if d is not None]

    def properties(self, device: int | str) -> list[tuple[str, str]]:
        """Names and types of a device's properties, in spec order."""
        return [(p.config.name, p.config.type) for p in self._device(device).properties]

    def property_index(self, device: int | str, name: str) -> int:
        """The index of a property of a device."""
        d = self._device(device)
        if name not in d.by_name:
            # An empty name is no name: the error's property field stays empty (None).
            raise UnknownPropertyError(f"no property {name!r}", device=d.id, property=name or None)
        return d.by_name[name]

    def read_plan(
        self, device: int | str, properties: Sequence[int] | None = None
    ) -> list[tuple[str, int, int]]:
        """The coalesced reads covering the Modbus properties of a device.

        The coalesced reads covering every Modbus property of a device, or only those at the
        indices ``properties`` (each counted once); an index the device does not have is an
        error.
        """
        d = self._device(device)
        if properties is None:
            chosen = d.properties
        else:
            for index in properties:
                if not 0 <= index < len(d.properties):
                    raise UnknownPropertyError(
                        "no such property", device=d.id, property=f"#{index}"
                    )
            chosen = [d.properties[i] for i in sorted(set(properties))]
        visitors = [p.config.visitor for p in chosen]
        return plan_reads([v for v in visitors if v is not None], *self.limits)

    def __len__(self) -> int:
        return len(self.index)

    # -- mapper side: samples in, changes out ------------------------------------------------

    def ingest_frame(  # noqa: PLR0913, PLR0917 - the engine's signature
        self,
        device: int,
        register: str,
        start: int,
        frame: bytes,
        ts_ms: int,
        count: int | None = None,
    ) -> int:
        """Decodes a read frame into the rings; returns how many properties were sampled.

        Decodes a read frame of ``register`` kind from address ``start`` into the rings of every
        property whose visitor starts inside it (``count`` registers or bits; None: as many as
        the frame holds). A property that starts inside but is not covered, or does not decode,
        is an error, and then nothing is queued. Returns how many were sampled.

        A bit frame's bytes round its bit count up, so without ``count`` the inferred count is
        an upper bound: the real count is more than the bits of all bytes but the last. A
        property that starts after that (in what may be the last byte's padding) and is not
        covered is skipped, not an error; one that starts before it is an error as usual.
        """
        d = self._device(device)
        kind = parse_register_kind(register)
        padded = count is None and kind in BIT_KINDS
        if count is None:
            count = min(len(frame) * 8 if kind in BIT_KINDS else len(frame) // 2, 0xFFFF)
        first_padding = start + 8 * (len(frame) - 1) + 1  # bits before it are in the frame
        inside = [(o, i) for o, i in d.by_kind.get(kind, []) if start <= o < start + count]
        decoded: list[tuple[int, Value]] = []
        for _, i in inside:
            v = d.properties[i].config.visitor
            assert v is not None
            try:
                if v.offset + v.count > start + count:
                    if padded and v.offset >= first_padding:
                        continue
                    size = frame_size(kind, v.offset + v.count - start)
                    raise _short(size, frame_size(kind, count))
                decoded.append((i, decode(v, start, frame)))
            except (FrameError, ValueTypeError) as e:
                e.device, e.property = d.id, d.properties[i].config.name
                raise
        for i, value in decoded:
            d.properties[i].ring.push(ts_ms, value)
        return len(decoded)

    def ingest_values(self, device: int, values: Iterable[tuple[int, object]], ts_ms: int) -> None:
        """Queues values of a driver that decodes them itself.

        Queues values of a driver that decodes them itself (converted as :func:`py_value`); on
        any error nothing is queued.
        """
        d = self._device(device)
        batch: list[tuple[int, Value]] = []
        for index, obj in values:
            if not 0 <= index < len(d.properties):
                raise UnknownPropertyError("no such property", device=d.id, property=f"#{index}")
            config = d.properties[index].config
            batch.append((index, _named(d, config, py_value, obj, config.type)))
        for index, value in batch:
            d.properties[index].ring.push(ts_ms, value)

    def report(self) -> ReferenceChanges:
        """Drains every ring into reported values.

        Drains every ring (devices in slot order, properties in spec order), reduces each
        property's samples to one value and settles it on the reported side.
        """
        return self.report_devices([i for i, d in enumerate(self.slots) if d is not None])

    def report_devices(self, devices: Sequence[int]) -> ReferenceChanges:
        """Like :meth:`report` for some devices only."""
        chosen = [self._device(i) for i in devices]
        out = ReferenceChanges()
        for d in chosen:
            before = len(out.changes)
            for p in d.properties:
                drained = p.ring.drain(p.config.type, p.config.reduce)
                if drained is not None:
                    self._settle(d, p, drained[1], drained[0], out)
            if len(out.changes) > before:
                self._delta(d, out)
        return out

    def apply_reported(
        self, device: str, values: Sequence[tuple[str, str, int]]
    ) -> ReferenceChanges:
        """Applies a mapper's report ``(property, canonical value, read time)``.

        Applies a mapper's report ``(property, canonical value, read time)`` in the given order,
        each through its change policy; the device's delta follows.
        """
        d = self._device(device)
        batch: list[tuple[Property, Value, int]] = []
        for name, text, ts in values:
            p = d.properties[self.property_index(d.id, name)]
            batch.append((p, _named(d, p.config, parse_canonical, p.config.type, text), ts))
        out = ReferenceChanges()
        for p, value, ts in batch:
            self._settle(d, p, value, ts, out)
        self._delta(d, out)
        return out

    def apply_dmi_report(self, payload: bytes, ts_ms: int) -> ReferenceChanges:
        """Applies a DMI ``ReportDeviceStatusRequest``.

        Applies a DMI ``ReportDeviceStatusRequest``: the device ``<namespace>/<name>``
        (``default`` when the namespace is empty), each twin's reported value at its
        ``timestamp`` metadata (``ts_ms`` when that is missing or not a number).
        """
        request = read_report_request(payload)
        namespace = request["deviceNamespace"] or "default"
        values = []
        for twin in request["twins"]:
            if twin["reported"] is None:
                continue
            stamp = twin["reported"]["metadata"].get("timestamp", "")
            ts = int(stamp) if _INT_TEXT.fullmatch(stamp) else ts_ms
            ts = ts if I64_MIN <= ts <= I64_MAX else ts_ms
            values.append((twin["propertyName"], twin["reported"]["value"], ts))
        return self.apply_reported(f"{namespace}/{request['deviceName']}", values)

    # -- device-manager side: desired values ---------------------------------------------------

    def set_desired(
        self, device: str, values: Mapping[str, object], ts_ms: int
    ) -> ReferenceChanges:
        """Sets (None: removes) desired values from the edge.

        Sets (None: removes) desired values from the edge: each actual change bumps the desired
        edge version; setting the same value again changes nothing.
        """
        d = self._device(device)
        batch: list[tuple[Property, Value | None]] = []
        for name, obj in values.items():
            p = d.properties[self.property_index(d.id, name)]
            value = None if obj is None else _named(d, p.config, py_value, obj, p.config.type)
            batch.append((p, value))
        out = ReferenceChanges()
        for p, value in batch:
            self._set_desired(d, p, None if value is None else Side(value, ts_ms), None, out)
        self._delta(d, out)
        return out

    def sync_desired(
        self, device: str, values: Mapping[str, tuple[str | None, int, int]], ts_ms: int
    ) -> ReferenceChanges:
        """Applies desired values synced from the cloud with their versions.

        Applies desired values synced from the cloud with their versions: rejected when the
        local version is ahead on either counter (KubeEdge's sync rule); otherwise the value and
        the cloud's version are taken.
        """
        d = self._device(device)
        batch: list[tuple[Property, Value | None, Version]] = []
        for name, (text, cloud, edge) in values.items():
            p = d.properties[self.property_index(d.id, name)]
            value = None if text is None else _named(d, p.config, parse_value, p.config.type, text)
            batch.append((p, value, Version(cloud, edge)))
        for p, _, version in batch:
            local = p.twin.desired_version
            if local.cloud > version.cloud or local.edge > version.edge:
                raise VersionConflictError(
                    f"local version {local} is ahead of {version}",
                    device=d.id,
                    property=p.config.name,
                )
        out = ReferenceChanges()
        for p, value, version in batch:
            self._set_desired(d, p, None if value is None else Side(value, ts_ms), version, out)
        self._delta(d, out)
        return out

    def twins(self, device: str) -> dict[str, dict[str, Any]]:
        """Every twin of a device as :class:`twinplane.twin.TwinDict`, in spec order."""
        d = self._device(device)
        return {p.config.name: twin_dict(p.config.type, p.twin) for p in d.properties}

    def encode_write(self, device: int | str, prop: int | str, value: object) -> WriteOp:
        """The Modbus write that sets a property (see :func:`encode_write`)."""
        d = self._device(device)
        index = prop if isinstance(prop, int) else self.property_index(d.id, prop)
        config = d.properties[index].config
        typed = _named(d, config, py_value, value, config.type)
        if config.visitor is None:
            raise SpecError("no Modbus visitor", device=d.id, path=f"properties[{index}].visitors")
        return self._typed_write(d, config, config.visitor, typed)

    def stats(self) -> dict[str, int]:
        """Counters: devices, properties, distinct shapes, queued and dropped samples."""
        devices = [d for d in self.slots if d is not None]
        properties = [p for d in devices for p in d.properties]
        return {
            "devices": len(devices),
            "properties": len(properties),
            "layouts": len({repr(d.layout) for d in devices}),
            "queued": sum(len(p.ring.samples) for p in properties),
            "dropped": sum(p.ring.dropped for p in properties),
        }

    # -- internals ------------------------------------------------------------------------------

    def _slot(self, device_id: str) -> int:
        if device_id not in self.index:
            raise UnknownDeviceError(f"unknown device {device_id}", device=device_id)
        return self.index[device_id]

    def _device(self, device: int | str) -> Device:
        if isinstance(device, str):
            found = self.slots[self._slot(device)]
        else:
            found = self.slots[device] if 0 <= device < len(self.slots) else None
        if found is None:
            raise UnknownDeviceError(f"unknown device #{device}", device=f"#{device}")
        return found

    @staticmethod
    def _typed_write(d: Device, config: PropertyConfig, v: Visitor, value: Value) -> WriteOp:
        try:
            return encode_write(v, value)
        except (ValueTypeError, SpecError) as e:
            e.device = d.id
            if isinstance(e, ValueTypeError):
                e.property = config.name
            raise

    @staticmethod
    def _settle(d: Device, p: Property, value: Value, ts: int, out: ReferenceChanges) -> None:
        """Applies one reported value through the property's change policy.

        Applies one reported value: a change when there was none yet, when the policy sees a
        change, or when the heartbeat is due; each change bumps the reported edge version.
        """
        old = p.twin.reported
        policy = p.config.policy
        if old is not None and not (
            policy.is_change(old.value, value) or policy.heartbeat_due(old.ts, ts)
        ):
            return
        before = p.twin
        version = replace(before.reported_version, edge=before.reported_version.edge + 1)
        p.twin = replace(before, reported=Side(value, ts), reported_version=version)
        out.changes.append(Change(d.id, p.config.name, p.config.type, "reported", before, p.twin))

    @staticmethod
    def _set_desired(
        d: Device, p: Property, side: Side | None, version: Version | None, out: ReferenceChanges
    ) -> None:
        """Sets or removes the desired side.

        Sets or removes the desired side; ``version`` is the cloud's (sync) or None (an edge
        change: bump the edge counter). The version is kept when the value is removed.
        """
        current = p.twin.desired
        same = (current is None and side is None) or (
            current is not None and side is not None and current.value == side.value
        )
        if same:
            if version is not None:
                p.twin = replace(p.twin, desired_version=version)
            return
        before = p.twin
        if version is None:
            version = replace(before.desired_version, edge=before.desired_version.edge + 1)
        p.twin = replace(before, desired=side, desired_version=version)
        out.changes.append(Change(d.id, p.config.name, p.config.type, "desired", before, p.twin))

    @staticmethod
    def _delta(d: Device, out: ReferenceChanges) -> None:
        """Appends the device's delta when at least one property has one."""
        with_desired = [p for p in d.properties if p.twin.desired is not None]
        delta = tuple(
            (p.config.name, canonical(p.config.type, p.twin.desired.value))
            for p in with_desired
            if p.twin.desired is not None and has_delta(p.config.type, p.twin)
        )
        if delta:
            twins = tuple((p.config.name, p.config.type, p.twin) for p in with_desired)
            out.device_deltas.append(DeviceDelta(d.id, twins, delta))


def _named(
    d: Device, config: PropertyConfig, convert: Callable[..., Value], *args: object
) -> Value:
    """Runs a value conversion, naming the device and property in its error."""
    try:
        value: Value = convert(*args)
    except ValueTypeError as e:
        e.device, e.property = d.id, config.name
        raise
    return value


def _new_device(device_id: str, layout: tuple[PropertyConfig, ...], old: Device | None) -> Device:
    """A device of shape ``layout``, adopting the twins of ``old`` that keep name and type."""
    properties = []
    for config in layout:
        twin = TwinState()
        if old is not None and config.name in old.by_name:
            previous = old.properties[old.by_name[config.name]]
            if previous.config.type == config.type:
                twin = previous.twin
        properties.append(Property(config, twin, Ring(config.capacity)))
    by_kind: dict[str, list[tuple[int, int]]] = {}
    for i, config in enumerate(layout):
        if config.visitor is not None:
            by_kind.setdefault(config.visitor.kind, []).append((config.visitor.offset, i))
    for visitors in by_kind.values():
        visitors.sort()
    by_name = {c.name: i for i, c in enumerate(layout)}
    return Device(device_id, layout, properties, by_name, by_kind)


def twin_dict(ty: str, twin: TwinState) -> dict[str, Any]:
    """A twin as the engine's ``TwinDict``: canonical values, timestamps and versions."""

    def side(s: Side | None) -> dict[str, Any] | None:
        return None if s is None else {"value": canonical(ty, s.value), "timestamp": s.ts}

    def version(v: Version) -> dict[str, int]:
        return {"cloud": v.cloud, "edge": v.edge}

    return {
        "type": ty,
        "desired": side(twin.desired),
        "reported": side(twin.reported),
        "desired_version": version(twin.desired_version),
        "reported_version": version(twin.reported_version),
    }


# ---------------------------------------------------------------------------------------------
# 5. A batch of changes and its encoders
# ---------------------------------------------------------------------------------------------


def split_device_id(device_id: str) -> tuple[str, str]:
    """``<namespace>/<name>``; an id without ``/`` is in namespace ``default``."""
    namespace, slash, name = device_id.partition("/")
    return (namespace, name) if slash else ("default", device_id)


def _groups(changes: Sequence[Change], key: str) -> list[list[Change]]:
    """Runs of adjacent changes with the same device (or property)."""
    runs: list[list[Change]] = []
    for c in changes:
        if runs and getattr(runs[-1][-1], key) == getattr(c, key):
            runs[-1].append(c)
        else:
            runs.append([c])
    return runs


@dataclass
class ReferenceChanges:
    """What one call changed, with the encoders of :class:`twinplane.twin.Changes`.

    A device's changes are adjacent; where an encoder has one entry per property, a run of
    adjacent changes of the same property is one entry: the first change's ``before`` and the
    last change's ``after``.
    """

    changes: list[Change] = field(default_factory=list)
    device_deltas: list[DeviceDelta] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.changes)

    def __bool__(self) -> bool:
        return bool(self.changes or self.device_deltas)

    def devices(self) -> list[str]:
        """Device ids with changes, in order."""
        return [run[0].device for run in _groups(self.changes, "device")]

    def deltas(self) -> dict[str, dict[str, str]]:
        """Per device with a delta: property -> canonical desired value."""
        return {d.device: dict(d.delta) for d in self.device_deltas}

    def to_list(self) -> list[dict[str, Any]]:
        """Each change as the engine's dict.

        Each change as the engine's dict (device, property, kind, value, timestamp, before,
        after).
        """
        return [
            {
                "device": c.device,
                "property": c.name,
                "kind": c.kind,
                "value": None if c.side is None else canonical(c.type, c.side.value),
                "timestamp": None if c.side is None else c.side.ts,
                "before": twin_dict(c.type, c.before),
                "after": twin_dict(c.type, c.after),
            }
            for c in self.changes
        ]

    # -- DMI ----------------------------------------------------------------------------------

    def dmi_requests(self) -> list[tuple[str, dict[str, Any]]]:
        """The ``ReportDeviceStatusRequest`` fields of each device with reported changes.

        The ``ReportDeviceStatusRequest`` of each device with reported changes, as the fields
        :func:`read_report_request` returns: one twin per reported property (its last state),
        ``observedDesired`` always present (EdgeCore dereferences it), metadata ``timestamp``
        (empty when there is no value) and ``type`` (the twin type).
        """
        out = []
        for run in _groups(self.changes, "device"):
            if not any(c.kind == "reported" for c in run):
                continue
            namespace, name = split_device_id(run[0].device)
            twins = []
            for prop in _groups(run, "name"):
                if any(c.kind == "reported" for c in prop):
                    last = prop[-1]
                    twins.append(
                        {
                            "propertyName": last.name,
                            "observedDesired": _twin_property(last.type, last.after.desired),
                            "reported": _twin_property(last.type, last.after.reported),
                        }
                    )
            out.append(
                (run[0].device, {"deviceName": name, "deviceNamespace": namespace, "twins": twins})
            )
        return out

    def to_dmi(self) -> list[tuple[str, bytes]]:
        """One serialized ``ReportDeviceStatusRequest`` per device with reported changes."""
        return [(device, write_report_request(fields)) for device, fields in self.dmi_requests()]

    # -- MQTT ---------------------------------------------------------------------------------

    def mqtt_messages(self, now_ms: int, event_id: str = "") -> list[tuple[str, dict[str, Any]]]:
        """KubeEdge's twin publications as (topic, payload dict).

        KubeEdge's twin publications: per device with changes its ``twin/update/result`` (each
        changed property's twin after, ``null`` when it has no side), its
        ``twin/update/document`` (``last``/``current``) and its deltas; then the deltas of
        devices without changes. Versions are never included; ``optional`` is always true.
        """
        out: list[tuple[str, dict[str, Any]]] = []
        pending = list(self.device_deltas)
        for run in _groups(self.changes, "device"):
            device = run[0].device
            props = _groups(run, "name")
            result = {p[-1].name: _msg_twin_or_null(p[-1].type, p[-1].after) for p in props}
            document = {
                p[-1].name: {
                    "last": _msg_twin_or_null(p[-1].type, p[0].before),
                    "current": _msg_twin_or_null(p[-1].type, p[-1].after),
                }
                for p in props
            }
            out.append(_message(device, "twin/update/result", event_id, now_ms, {"twin": result}))
            out.append(
                _message(device, "twin/update/document", event_id, now_ms, {"twin": document})
            )
            for delta in [d for d in pending if d.device == device]:
                out.append(_delta_message(delta, event_id, now_ms))
                pending.remove(delta)
        out.extend(_delta_message(d, event_id, now_ms) for d in pending)
        return out

    def to_mqtt(self, now_ms: int) -> list[tuple[str, bytes]]:
        """The publications of :meth:`mqtt_messages` as JSON bytes, each with a fresh event id."""
        return [
            (
                topic,
                json.dumps({**body, "event_id": str(uuid.uuid4())}, separators=(",", ":")).encode(),
            )
            for topic, body in self.mqtt_messages(now_ms)
        ]

    # -- Arrow --------------------------------------------------------------------------------

    def arrow_rows(self) -> list[dict[str, Any]]:
        """One row per change: the columns of the engine's Arrow export.

        ``timestamp``, ``value`` and ``version`` (the edge counter) describe the changed side;
        one typed column holds the value, the others are None.
        """
        rows = []
        for c in self.changes:
            side = c.side
            value = None if side is None else side.value
            version = c.after.reported_version if c.kind == "reported" else c.after.desired_version
            rows.append(
                {
                    "device": c.device,
                    "property": c.name,
                    "kind": c.kind,
                    "timestamp": None if side is None else side.ts,
                    "type": c.type,
                    "value": None if side is None else canonical(c.type, side.value),
                    "value_int": value if c.type == "INT" and side else None,
                    "value_float": value if c.type in {"FLOAT", "DOUBLE"} and side else None,
                    "value_bool": value if c.type == "BOOLEAN" and side else None,
                    "value_string": value if c.type == "STRING" and side else None,
                    "value_bytes": value if c.type == "BYTES" and side else None,
                    "version": version.edge,
                }
            )
        return rows


def _twin_property(ty: str, side: Side | None) -> dict[str, Any]:
    if side is None:
        return {"value": "", "metadata": {"timestamp": "", "type": TWIN_TYPE[ty]}}
    return {
        "value": canonical(ty, side.value),
        "metadata": {"timestamp": str(side.ts), "type": TWIN_TYPE[ty]},
    }


def _twin_value(ty: str, side: Side) -> dict[str, Any]:
    return {"value": canonical(ty, side.value), "metadata": {"timestamp": side.ts}}


def msg_twin(ty: str, twin: TwinState) -> dict[str, Any]:
    """KubeEdge's ``MsgTwin`` without versions: expected/actual when present, optional, type."""
    out: dict[str, Any] = {}
    if twin.desired is not None:
        out["expected"] = _twin_value(ty, twin.desired)
    if twin.reported is not None:
        out["actual"] = _twin_value(ty, twin.reported)
    out["optional"] = True
    out["metadata"] = {"type": TWIN_TYPE[ty]}
    return out


def _msg_twin_or_null(ty: str, twin: TwinState) -> dict[str, Any] | None:
    return None if twin.desired is None and twin.reported is None else msg_twin(ty, twin)


def _message(
    device: str, suffix: str, event_id: str, now_ms: int, body: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    namespace, name = split_device_id(device)
    topic = f"$hw/events/device/{namespace}/{name}/{suffix}"
    return topic, {"event_id": event_id, "timestamp": now_ms, **body}


def _delta_message(delta: DeviceDelta, event_id: str, now_ms: int) -> tuple[str, dict[str, Any]]:
    twins = {name: msg_twin(ty, twin) for name, ty, twin in delta.twins}
    body = {"twin": twins, "delta": dict(delta.delta)}
    return _message(delta.device, "twin/update/delta", event_id, now_ms, body)


# -- a tiny protobuf writer and reader for ReportDeviceStatusRequest ---------------------------
#
# ReportDeviceStatusRequest { string deviceName = 1; DeviceStatus reportedDevice = 2;
#                             string deviceNamespace = 3; }
# DeviceStatus { repeated Twin twins = 1; bool reportToCloud = 2; int64 reportCycle = 3; }
# Twin { string propertyName = 1; TwinProperty observedDesired = 2; TwinProperty reported = 3; }
# TwinProperty { string value = 1; map<string, string> metadata = 2; }


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _string(number: int, text: str) -> bytes:
    """A proto3 string field: omitted when empty."""
    return _field(number, text.encode()) if text else b""


def write_report_request(fields: Mapping[str, Any]) -> bytes:
    """Serializes a ``ReportDeviceStatusRequest``.

    Serializes a ``ReportDeviceStatusRequest`` (proto3: fields in ascending order, empty strings
    omitted, map entries with both key and value, map keys sorted).
    """
    twins = b""
    for twin in fields["twins"]:
        body = _string(1, twin["propertyName"])
        for number, key in ((2, "observedDesired"), (3, "reported")):
            prop = twin.get(key)
            if prop is None:
                continue
            inner = _string(1, prop["value"])
            for k, v in sorted(prop["metadata"].items()):
                inner += _field(2, _field(1, k.encode()) + _field(2, v.encode()))
            body += _field(number, inner)
        twins += _field(1, body)
    return (
        _string(1, fields["deviceName"]) + _field(2, twins) + _string(3, fields["deviceNamespace"])
    )


def _read_fields(data: bytes) -> list[tuple[int, int, bytes | int]]:
    """The fields of one message: (number, wire type, payload or scalar).

    Raises ValueError for what no protobuf runtime accepts: truncated or over-long varints,
    payloads past the end, field number 0 or above 2^29 - 1, group and unknown wire types.
    """
    out: list[tuple[int, int, bytes | int]] = []
    pos = 0

    def varint() -> int:
        nonlocal pos
        result = 0
        for shift in range(0, 70, 7):
            if pos >= len(data):
                raise ValueError("truncated varint")
            b = data[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                if result >= 1 << 64:
                    raise ValueError("varint over 64 bits")
                return result
        raise ValueError("varint longer than 10 bytes")

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(data):
            raise ValueError("field runs past the end")
        pos += n
        return data[pos - n : pos]

    while pos < len(data):
        tag = varint()
        number, wire = tag >> 3, tag & 7
        if not 1 <= number < 1 << 29:
            raise ValueError(f"invalid field number {number}")
        if wire == 0:
            out.append((number, wire, varint()))
        elif wire in (1, 2, 5):
            out.append((number, wire, take({1: 8, 5: 4}.get(wire) or varint())))
        else:
            raise ValueError(f"wire type {wire}")
    return out


def _text(payload: bytes | int) -> str:
    assert isinstance(payload, bytes)
    return payload.decode()


def _bytes(payload: bytes | int) -> bytes:
    assert isinstance(payload, bytes)
    return payload


def _merge_twin_property(data: bytes, prop: dict[str, Any]) -> None:
    """Reads a ``TwinProperty`` into ``prop`` (a repeated message merges into the first)."""
    for number, wire, payload in _read_fields(data):
        if wire != 2:
            continue
        if number == 1:
            prop["value"] = _text(payload)
        elif number == 2:
            entry = {
                n: _text(p) for n, w, p in _read_fields(_bytes(payload)) if n in (1, 2) and w == 2
            }
            prop["metadata"][entry.get(1, "")] = entry.get(2, "")


def _read_twin(data: bytes) -> dict[str, Any]:
    twin: dict[str, Any] = {"propertyName": "", "observedDesired": None, "reported": None}
    for number, wire, payload in _read_fields(data):
        if wire != 2:
            continue
        if number == 1:
            twin["propertyName"] = _text(payload)
        elif number in (2, 3):
            key = "observedDesired" if number == 2 else "reported"
            if twin[key] is None:
                twin[key] = {"value": "", "metadata": {}}
            _merge_twin_property(_bytes(payload), twin[key])
    return twin


def read_report_request(data: bytes) -> dict[str, Any]:
    """Parses a ``ReportDeviceStatusRequest`` into its fields.

    Absent messages are None and absent strings empty; unknown fields, and known fields of
    another wire type, are skipped; the last string wins and repeated messages merge, as
    protobuf does. Malformed input raises ValueError (or UnicodeDecodeError for a string).
    """
    out: dict[str, Any] = {"deviceName": "", "deviceNamespace": "", "twins": []}
    for number, wire, payload in _read_fields(data):
        if wire != 2:
            continue
        if number == 1:
            out["deviceName"] = _text(payload)
        elif number == 3:
            out["deviceNamespace"] = _text(payload)
        elif number == 2:
            for n, w, twin in _read_fields(_bytes(payload)):
                if n == 1 and w == 2:
                    out["twins"].append(_read_twin(_bytes(twin)))
    return out
