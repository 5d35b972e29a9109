"""The tuned pure-Python baseline of ``bench/engine.py``.

The engine's pass as a competent engineer writes it in Python, for the bench's fleet. It does
the work the engine does in the pass, on the same frames, and must give the same outputs (the
bench compares them):

* configuration compiled once per device shape: one precompiled :class:`struct.Struct` that
  unpacks a whole holding-register frame into one raw field per property (swapped data read
  as one unsigned word and rearranged with bit operations), and one decode function and one
  canonical-text function per property, specialised to its data type, swaps and scale;
* per frame: ``bytes ==`` against the device's previous frame skips an unchanged device
  before anything is decoded; otherwise one ``unpack`` and a tuple comparison with the previous
  raw fields find the properties whose registers changed, and only those are decoded and
  compared with the reported value (exact change detection, ``NaN`` equal to ``NaN``);
* per change: the reported value, its read time and its version are kept, and the text of the
  twin before and after is formatted once (shortest round-trip floats from ``repr``/``%g`` with
  a round-trip check through ``struct``, and the exact slow path of ``tests/reference.py`` for
  the rare values where those may differ from the shortest text: ties, powers of two,
  exponents);
* per changed device: one DMI ``ReportDeviceStatusRequest`` built with the project's own
  upb-backed protobuf messages (``twinplane.dmi.v1beta1.api_pb2``) and serialized, and the
  KubeEdge MQTT ``twin/update/result`` and ``twin/update/document`` payloads encoded by
  ``msgspec.json`` with a fresh random event id each.

What it leaves out because this pass does not exercise it (the engine does it regardless):
sampling rings (a capacity-1 ring reported every pass is a value slot), deadbands and
heartbeats, desired values and deltas, bit registers, and STRING properties over numeric data
(:class:`TunedFleet` raises ``NotImplementedError`` for a spec that needs them).
"""

from __future__ import annotations

import math
import random
import re
import struct
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import msgspec

from twinplane.dmi.v1beta1 import api_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import reference  # tests/reference.py: visitor compilation and the exact float slow path

__all__ = ["PassOutput", "TunedFleet"]

Raw = int | float | bytes
"""One raw field of an unpacked frame."""

Value = int | float | bool | str | bytes
"""A decoded property value."""

I64_MAX: Final = 2**63 - 1
I64_MIN: Final = -(2**63)
EXACT_F64: Final = 2.0**53
TOPIC: Final = "$hw/events/device/{}/{}/twin/update/{}"
PLAIN: Final = re.compile(r"[a-zA-Z0-9\-_.,:/@]*")
"""Canonical STRING text that needs no escaping."""

_F32: Final = struct.Struct(">f")
_U32: Final = struct.Struct(">I")
_F64: Final = struct.Struct(">d")
_U64: Final = struct.Struct(">Q")
_ENCODE: Final = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class PassOutput:
    """What one pass produced: the number of changes and the encoded messages."""

    changes: int
    dmi: list[tuple[str, bytes]]
    mqtt: list[tuple[str, bytes]]


# -- canonical text -----------------------------------------------------------------------------


def _significant(text: str) -> int:
    """Significant digits of a plain decimal text (no exponent)."""
    return len(text.lstrip("-").replace(".", "").strip("0"))


def f64_text(x: float) -> str:
    """The canonical DOUBLE text: the shortest round trip, plain decimal, ``NaN``/``inf``."""
    r = repr(x)
    if "e" in r or "n" in r:  # an exponent, nan or inf
        return reference.float_text(x, 64)
    if r.endswith(".0"):
        return r[:-2]
    # repr breaks a tie between two shortest texts toward an even digit, the engine toward the
    # larger magnitude; a tie needs the exact value to have one more (fractional) digit.
    fraction_digits = len(r) - r.index(".") - 1
    if x.as_integer_ratio()[1].bit_length() - 2 == fraction_digits:
        return reference.float_text(x, 64)
    return r


def f32_text(x: float) -> str:
    """The canonical FLOAT text of a float holding a 32-bit value (see :func:`f64_text`)."""
    r = repr(x)  # the exact value whenever that is short
    if "e" in r or "n" in r:
        return reference.float_text(x, 32)
    digits = _significant(r)
    if digits <= 6:  # the exact value, and no shorter text is within a 32-bit rounding
        return r[:-2] if r.endswith(".0") else r
    if digits <= 10 or abs(math.frexp(x)[0]) == 0.5:  # ties, or an asymmetric interval
        return reference.float_text(x, 32)
    for precision in (6, 7, 8, 9):
        text = f"{x:.{precision}g}"
        if _F32.unpack(_F32.pack(float(text)))[0] == x:
            if "e" in text:
                return format(Decimal(text), "f")
            return text
    return reference.float_text(x, 32)  # not reached: 9 digits always read back


def string_text(text: str) -> str:
    """The canonical STRING text: bytes outside the plain set (and ``#``) as ``#XX``."""
    if PLAIN.fullmatch(text):
        return text
    return "".join(chr(b) if b in reference.KUBEEDGE_PLAIN else f"#{b:02X}" for b in text.encode())


def _to_f32(x: float) -> float:
    """``x as f32``: nearest, overflow to infinity."""
    try:
        return float(_F32.unpack(_F32.pack(x))[0])
    except OverflowError:
        return math.copysign(math.inf, x)


# -- one property, compiled ----------------------------------------------------------------------


@dataclass(frozen=True)
class Prop:
    """A compiled property: its raw field's struct code, decoder and text."""

    name: str
    twin_type: str
    code: str
    decode: Callable[[Any], Value]
    text: Callable[[Any], str]


def _word_decoder(v: reference.Visitor) -> tuple[str, Callable[[int], int]]:
    """The struct code of a swapped numeric visitor and the function that undoes its swaps."""
    width = {1: 16, 2: 32, 4: 64}[v.count]
    code = {16: "H", 32: "I", 64: "Q"}[width]
    words = v.count

    def unswap(w: int) -> int:
        regs = [(w >> (16 * (words - 1 - i))) & 0xFFFF for i in range(words)]
        if v.register_swap:
            regs.reverse()
        if v.swap:
            regs = [((r & 0xFF) << 8) | (r >> 8) for r in regs]
        out = 0
        for r in regs:
            out = (out << 16) | r
        return out

    return code, unswap


def _number(v: reference.Visitor) -> tuple[str, Callable[[Any], int | float | bool]]:  # noqa: PLR0911 - one return per data type
    """The struct code and the decoder to a number of a numeric register visitor."""
    dt = v.data_type
    if not (v.swap or v.register_swap):
        code = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "int64": "q"}
        code |= {"uint64": "Q", "float32": "f", "float64": "d", "boolean": "H"}
        if dt == "boolean":
            return "H", lambda w: w != 0
        return code[dt], lambda w: w
    word, unswap = _word_decoder(v)
    if dt == "float32":
        return word, lambda w: float(_F32.unpack(_U32.pack(unswap(w)))[0])
    if dt == "float64":
        return word, lambda w: float(_F64.unpack(_U64.pack(unswap(w)))[0])
    if dt == "boolean":
        return word, lambda w: unswap(w) != 0
    bits = {"int16": 16, "int32": 32, "int64": 64}.get(dt)
    if bits is None:
        return word, unswap
    sign, wrap = 1 << (bits - 1), 1 << bits
    return word, lambda w: (x - wrap) if (x := unswap(w)) & sign else x


def _scaler(v: reference.Visitor) -> Callable[[int | float | bool], float]:
    """The scaled number as a float; integers round to the scale's decimals."""
    scale = v.scale
    if v.decimals is not None and v.scale != 1.0:
        p = 10.0**v.decimals
        m = reference.rust_round(scale * p)
        if m / p == scale:

            def decimal(x: int | float | bool) -> float:
                if isinstance(x, float):
                    return x * scale
                product = x * m
                return product / p if abs(product) < EXACT_F64 else x * scale

            return decimal
    if scale == 1.0:
        return float
    return lambda x: (x * scale) if isinstance(x, float) else float(x) * scale


def compile_prop(spec: Mapping[str, Any]) -> Prop:  # noqa: PLR0911 - one return per type
    """Compiles one property of the bench's model."""
    ty = reference.parse_type(spec["type"])
    v = reference.compile_visitor(reference.visitor_config(spec["visitor"], "visitor"), ty)
    if (
        v.is_bit
        or "deadband" in spec
        or "heartbeat_ms" in spec
        or spec.get("reduce", "last") != ("last")
    ):
        raise NotImplementedError(f"the tuned baseline does not cover {spec!r}")
    twin_type = reference.TWIN_TYPE[ty]
    name = spec["name"]
    if v.data_type in {"string", "bytes"}:
        if ty == "BYTES" or v.swap or v.register_swap:
            raise NotImplementedError(f"the tuned baseline does not cover {spec!r}")
        code = f"{2 * v.count}s"

        def text_value(raw: bytes) -> str:
            return raw.rstrip(b"\x00 ").decode("utf-8", errors="replace")

        return Prop(name, twin_type, code, text_value, string_text)
    code, number = _number(v)
    scaled = _scaler(v)
    integral = v.data_type not in {"float32", "float64"}
    decode: Callable[[Any], Value]
    if ty == "INT" and integral and v.scale == 1.0:
        decode = (lambda w: min(number(w), I64_MAX)) if v.data_type == "uint64" else number
        return Prop(name, twin_type, code, decode, str)
    if ty == "INT":
        decode = lambda w: reference.f64_to_i64(scaled(number(w)))  # noqa: E731
        return Prop(name, twin_type, code, decode, str)
    if ty == "FLOAT":
        if v.data_type == "float32" and v.scale == 1.0:
            return Prop(name, twin_type, code, number, f32_text)
        decode = lambda w: _to_f32(scaled(number(w)))  # noqa: E731
        return Prop(name, twin_type, code, decode, f32_text)
    if ty == "DOUBLE":
        decode = lambda w: scaled(number(w))  # noqa: E731
        return Prop(name, twin_type, code, decode, f64_text)
    if ty == "BOOLEAN":
        decode = number if v.data_type == "boolean" else (lambda w: scaled(number(w)) != 0.0)
        return Prop(name, twin_type, code, decode, lambda b: "true" if b else "false")
    raise NotImplementedError(f"the tuned baseline does not cover {spec!r}")


# -- the fleet -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """A compiled device shape: the frame's struct and its properties in field order."""

    unpack: Callable[[bytes], tuple[Any, ...]]
    index: tuple[int, ...]
    """``0 .. n - 1``: the fields of a frame."""
    names: tuple[str, ...]
    twin_types: tuple[str, ...]
    decoders: tuple[Callable[[Any], Value], ...]
    texts: tuple[Callable[[Any], str], ...]


def compile_layout(specs: Sequence[Mapping[str, Any]]) -> Layout:
    """One struct for a whole holding-register frame read from address 0."""
    placed = sorted(
        ((reference.visitor_config(s["visitor"], "visitor").get("offset", 0), s) for s in specs),
        key=lambda item: item[0],
    )
    if [s["name"] for _, s in placed] != [s["name"] for s in specs]:
        raise NotImplementedError("the tuned baseline takes properties in register order")
    fmt, at, props = ">", 0, []
    for offset, spec in placed:
        prop = compile_prop(spec)
        if offset < at:
            raise NotImplementedError("overlapping properties")
        fmt += "x" * (2 * (offset - at)) + prop.code
        at = offset + struct.calcsize(">" + prop.code) // 2
        props.append(prop)
    return Layout(
        struct.Struct(fmt).unpack,
        tuple(range(len(props))),
        tuple(p.name for p in props),
        tuple(p.twin_type for p in props),
        tuple(p.decode for p in props),
        tuple(p.text for p in props),
    )


@dataclass(slots=True)
class Device:
    """One device: its shape, last frame and raw fields, and its reported twins."""

    id: str
    namespace: str
    name: str
    layout: Layout
    topics: tuple[str, str]
    frame: bytes = b""
    raw: tuple[Any, ...] | None = None
    values: list[Any] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    texts: list[str | None] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)


_VARIANT: Final = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def event_ids(n: int) -> list[str]:
    """``n`` random (version 4) UUIDs, drawn at once; not cryptographic, as the engine's."""
    hx = random.getrandbits(128 * n).to_bytes(16 * n, "big").hex() if n else ""
    v = _VARIANT
    return [
        f"{hx[i : i + 8]}-{hx[i + 8 : i + 12]}-4{hx[i + 13 : i + 16]}-"
        f"{v[hx[i + 16]]}{hx[i + 17 : i + 20]}-{hx[i + 20 : i + 32]}"
        for i in range(0, 32 * n, 32)
    ]


class TunedFleet:
    """The devices of the bench, and its pass (see the module docstring)."""

    def __init__(self) -> None:
        self.devices: list[Device] = []
        self._layouts: dict[str, Layout] = {}

    def upsert_device(self, device_id: str, specs: Sequence[Mapping[str, Any]]) -> int:
        """Adds a device; devices of one shape share its compiled layout."""
        key = repr(specs)
        layout = self._layouts.get(key)
        if layout is None:
            layout = self._layouts[key] = compile_layout(specs)
        namespace, name = reference.split_device_id(device_id)
        topics = (
            TOPIC.format(namespace, name, "result"),
            TOPIC.format(namespace, name, "document"),
        )
        n = len(layout.index)
        device = Device(device_id, namespace, name, layout, topics)
        device.values, device.times = [None] * n, [0] * n
        device.texts, device.versions = [None] * n, [0] * n
        self.devices.append(device)
        return len(self.devices) - 1

    def run_pass(self, frames: Sequence[bytes], ts: int, now_ms: int) -> PassOutput:
        """Every device's frame in (read at ``ts``), its changes out as DMI and MQTT bytes."""
        out = _Out(ts, now_ms)
        for dev, frame in zip(self.devices, frames, strict=True):
            if frame == dev.frame:
                continue
            layout = dev.layout
            raw = layout.unpack(frame)
            old_raw = dev.raw
            dev.frame, dev.raw = frame, raw
            if old_raw is None:
                moved: Sequence[int] = layout.index
            else:
                moved = [i for i, a, b in zip(layout.index, raw, old_raw, strict=True) if a != b]
            values, decoders = dev.values, layout.decoders
            changed = []
            for i in moved:
                value = decoders[i](raw[i])
                old = values[i]
                if old is not None and (value == old or (value != value and old != old)):  # noqa: PLR0124 - NaN
                    continue
                changed.append((i, value))
            if changed:
                out.emit(dev, changed)
        return out.finish()


class _Out:
    """The outputs of one pass being built."""

    def __init__(self, ts: int, now_ms: int) -> None:
        self.ts, self.ts_text, self.now_ms = ts, str(ts), now_ms
        self.changes = 0
        self.dmi: list[tuple[str, bytes]] = []
        self.heads: list[tuple[str, dict[str, Any]]] = []

    def emit(self, dev: Device, changed: list[tuple[int, Value]]) -> None:
        """Settles one device's changed values and encodes its DMI request and MQTT bodies."""
        self.changes += len(changed)
        ts, ts_text = self.ts, self.ts_text
        layout = dev.layout
        req = api_pb2.ReportDeviceStatusRequest(deviceName=dev.name, deviceNamespace=dev.namespace)
        add = req.reportedDevice.twins.add
        result: dict[str, Any] = {}
        document: dict[str, Any] = {}
        values, texts, times = dev.values, dev.texts, dev.times
        names, types = layout.names, layout.twin_types
        for i, value in changed:
            text = layout.texts[i](value)
            name, twin_type = names[i], types[i]
            before = texts[i]
            meta = {"type": twin_type}
            last = None
            if before is not None:
                before_value = {"value": before, "metadata": {"timestamp": times[i]}}
                last = {"actual": before_value, "optional": True, "metadata": meta}
            values[i], times[i], texts[i] = value, ts, text
            dev.versions[i] += 1
            twin = add(propertyName=name)
            m = twin.observedDesired.metadata
            m["timestamp"] = ""
            m["type"] = twin_type
            reported = twin.reported
            reported.value = text
            m = reported.metadata
            m["timestamp"] = ts_text
            m["type"] = twin_type
            after = {"value": text, "metadata": {"timestamp": ts}}
            current = {"actual": after, "optional": True, "metadata": meta}
            result[name] = current
            document[name] = {"last": last, "current": current}
        self.dmi.append((dev.id, req.SerializeToString()))
        # Event ids are drawn for the whole pass at the end; the key keeps its place.
        now_ms = self.now_ms
        self.heads.append((dev.topics[0], {"event_id": "", "timestamp": now_ms, "twin": result}))
        self.heads.append((dev.topics[1], {"event_id": "", "timestamp": now_ms, "twin": document}))

    def finish(self) -> PassOutput:
        """The pass's outputs: the MQTT bodies get their event ids and are encoded."""
        mqtt = []
        encode = _ENCODE
        for (topic, head), event_id in zip(self.heads, event_ids(len(self.heads)), strict=True):
            head["event_id"] = event_id
            mqtt.append((topic, encode(head)))
        return PassOutput(self.changes, self.dmi, mqtt)
