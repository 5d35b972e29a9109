"""Modbus visitors: decoding register and coil frames, encoding writes, read planning."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
from twinplane.errors import FrameError, SpecError, UnknownPropertyError
from twinplane.twin import Engine, decode_register, encode_register

from .engine_strategies import (
    assert_same_changes,
    same_outcome,
    values,
)

pytestmark = pytest.mark.engine

NUMERIC_DATA = ["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]
REGISTER_DATA: dict[str, list[str]] = {
    "INT": ["", "int", "float", "double", "boolean", *NUMERIC_DATA],
    "FLOAT": ["", "int", "float", "double", *NUMERIC_DATA],
    "DOUBLE": ["", "int", "float", "double", *NUMERIC_DATA],
    "BOOLEAN": ["", "boolean", "bool", "int", "int16", "uint32", "float32"],
    "STRING": ["", "string", "int", "double", "boolean", *NUMERIC_DATA],
    "BYTES": ["", "bytes", "string"],
}
"""dataType names that can feed each property type on 16-bit registers."""
BIT_DATA = ["", "int", "boolean", "bool", "int16", "uint16", "int32", "uint32", "int64", "uint64"]
ODD_NAMES = ["Float32", " INT ", "long", "float", "string", "bytes", "double"]
"""Spellings that are unusual or wrong somewhere (case, blanks, unknown, wrong kind)."""
SCALES = [None, 0.0, 1.0, 0.1, 0.01, 0.5, 2.0, 10.0, 0.001, -0.1, 3.3, 1e-7]


@st.composite
def visitors(
    draw: st.DrawFn,
    kinds: tuple[str, ...] = ref.REGISTER_KINDS,
    types: tuple[str, ...] = ref.TYPES,
    offsets: st.SearchStrategy[int] | None = None,
) -> tuple[dict[str, Any], str]:
    """A visitor configData and its property type: mostly valid, sometimes not."""
    kind = draw(st.sampled_from(kinds))
    ty = draw(st.sampled_from(types))
    bits = kind in ref.BIT_KINDS
    names = BIT_DATA if bits else REGISTER_DATA[ty]
    data_type = draw(st.one_of(st.sampled_from(names), st.sampled_from(ODD_NAMES)))
    width = ref.DATA_TYPES.get(ref.ascii_lower(data_type.strip()), (1, None))[0]
    limits = [0, 1, 2, 4, 16, 33] if bits else [0, width, 1, 2, 3, 4]
    config: dict[str, Any] = {"register": kind, "dataType": data_type}
    config["limit"] = draw(st.one_of(st.sampled_from(limits), st.integers(-1, 130)))
    if offsets is None:
        offsets = st.one_of(st.integers(0, 40), st.integers(-1, 65536))
    config["offset"] = draw(offsets)
    scale = draw(st.one_of(st.sampled_from(SCALES), st.floats()))
    if scale is not None:
        config["scale"] = scale
    if not bits or draw(st.integers(0, 9)) == 0:
        config["isSwap"] = draw(st.booleans())
        config["isRegisterSwap"] = draw(st.booleans())
    return config, ty


def compile_both(config: dict[str, Any], ty: str) -> ref.Visitor | None:
    """Compiles a visitor in a device of the engine and of the reference.

    Returns the reference's visitor, or None when both reject the config with the same error.
    """
    spec = [{"name": "p", "type": ty, "visitor": config}]
    outcome = same_outcome(
        lambda: Engine().upsert_device("d", spec),  # type: ignore[arg-type]
        lambda: (ref.ReferenceEngine().upsert_device("d", spec), ref.compile_visitor(config, ty)),
    )
    return None if outcome is None else outcome[1][1]


def reference_visitor(config: dict[str, Any], ty: str) -> ref.Visitor | None:
    """The reference's compiled visitor, or None when the reference rejects the config."""
    try:
        return ref.compile_visitor(config, ty)
    except SpecError:
        return None


def frame_len(v: ref.Visitor, rel: int) -> int:
    """Bytes of a frame from ``rel`` addresses before the visitor to its end."""
    return (rel + v.count + 7) // 8 if v.is_bit else 2 * (rel + v.count)


@given(visitors(), st.data())
def test_decode_matches_reference(case: tuple[dict[str, Any], str], data: st.DataObject) -> None:
    """decode_register decodes any frame as the reference, for any visitor config."""
    config, ty = case
    v = compile_both(config, ty)
    if v is None:
        return
    rel = data.draw(st.integers(0, min(v.offset, 3)), label="addresses before the visitor")
    frame = data.draw(st.binary(min_size=frame_len(v, rel), max_size=frame_len(v, rel) + 3))
    got = decode_register(config, ty, v.offset - rel, frame)  # type: ignore[arg-type]
    assert got == ref.canonical(ty, ref.decode(v, v.offset - rel, frame))


@given(visitors(offsets=st.integers(0, 40)), st.data())
def test_short_frames_raise_frame_error(
    case: tuple[dict[str, Any], str], data: st.DataObject
) -> None:
    """A frame that starts after the visitor or ends before its end raises FrameError."""
    config, ty = case
    v = reference_visitor(config, ty)
    if v is None:
        return
    start = data.draw(st.integers(0, 45))
    frame = data.draw(st.binary(max_size=max(frame_len(v, v.offset - start) - 1, 0)))
    outcome = same_outcome(
        lambda: decode_register(config, ty, start, frame),  # type: ignore[arg-type]
        lambda: ref.decode(v, start, frame),
    )
    if outcome is not None:  # a bit frame can be long enough in fewer bytes than asked
        assert outcome[0] == ref.canonical(ty, outcome[1])


def test_short_frame_error_counts_bytes() -> None:
    """FrameError says the bytes needed from the frame start and the bytes the frame holds."""
    config = {"register": "HoldingRegister", "offset": 10, "limit": 2, "dataType": "uint32"}
    with pytest.raises(FrameError) as info:
        decode_register(config, "INT", 9, b"\x00" * 5)  # type: ignore[arg-type]
    assert (info.value.needed, info.value.got) == (6, 5)


@given(visitors(kinds=("CoilRegister", "HoldingRegister")), st.data())
def test_encode_write_matches_reference(
    case: tuple[dict[str, Any], str], data: st.DataObject
) -> None:
    """encode_register builds the same write as the reference (or the same error)."""
    config, ty = case
    v = reference_visitor(config, ty)
    if v is None:
        return
    value = data.draw(values(ty))
    outcome = same_outcome(
        lambda: encode_register(config, ty, value),  # type: ignore[arg-type]
        lambda: ref.encode_write(v, ref.py_value(value, ty)),
    )
    if outcome is not None:
        assert outcome[0] == outcome[1]


EXACT = [
    ("INT", ["int16", "uint16", "int32", "uint32", "int64", "uint64", "int"]),
    ("FLOAT", ["float32", "float"]),
    ("DOUBLE", ["float64", "double"]),
    ("BOOLEAN", ["boolean"]),
    ("STRING", ["string"]),
    ("BYTES", ["bytes"]),
]
"""Property types with the data types that hold their values exactly."""


@st.composite
def exact_writes(draw: st.DrawFn) -> tuple[dict[str, Any], str, ref.Value]:
    """An unscaled visitor and a value its data type holds exactly."""
    ty, names = draw(st.sampled_from(EXACT))
    coil = ty in {"INT", "BOOLEAN"} and draw(st.booleans())
    config: dict[str, Any] = {
        "register": "CoilRegister" if coil else "HoldingRegister",
        "offset": draw(st.integers(0, 100)),
        "dataType": draw(st.sampled_from(names)),
    }
    if not coil:
        config["isSwap"] = draw(st.booleans())
        config["isRegisterSwap"] = draw(st.booleans())
    if ty in {"STRING", "BYTES"}:
        config["limit"] = draw(st.integers(1, 6))
    elif coil and ty == "INT":
        width = 64 if config["dataType"] == "int" else 16 * ref.DATA_TYPES[config["dataType"]][0]
        config["limit"] = draw(st.integers(1, width))
    v = ref.compile_visitor(config, ty)
    value: ref.Value
    if ty == "INT":
        low, high = ref.DATA_TYPES[v.data_type][1] or (0, 0)
        high = min(high, ref.I64_MAX, (1 << v.count) - 1 if coil else high)
        value = draw(st.integers(low if not coil else 0, high))
    elif ty == "STRING":
        value = draw(st.text(max_size=12).filter(lambda t: len(t.encode()) <= 2 * v.count))
        value = value.rstrip("\x00 ")
    elif ty == "BYTES":
        value = draw(st.binary(min_size=2 * v.count, max_size=2 * v.count))
    else:
        value = draw(
            values(ty).filter(lambda x: not (isinstance(x, float) and math.isnan(x)))
        )  # NaN payloads may change
    return config, ty, value


def write_to_frame(op: tuple[int, int, list[int] | list[bool]]) -> bytes:
    """The read frame of what a write stored: registers big-endian, coils packed LSB-first."""
    function, _, items = op
    if function in {5, 15}:
        packed = bytearray((len(items) + 7) // 8)
        for i, bit in enumerate(items):
            packed[i // 8] |= int(bit) << (i % 8)
        return bytes(packed)
    return b"".join(int(w).to_bytes(2, "big") for w in items)


@given(exact_writes())
def test_decode_of_encode_gives_the_value(case: tuple[dict[str, Any], str, ref.Value]) -> None:
    """Decoding what a write stores gives the value back, for every data type and swap."""
    config, ty, value = case
    op = encode_register(config, ty, value)  # type: ignore[arg-type]
    assert op[1] == config["offset"]
    text = decode_register(config, ty, config["offset"], write_to_frame(op))  # type: ignore[arg-type]
    assert text == ref.canonical(ty, value)


@given(visitors(types=("INT", "DOUBLE", "STRING")))
def test_generic_names_resolve_as_kubeedge(case: tuple[dict[str, Any], str]) -> None:
    """The generic names int/float/double resolve per limit as KubeEdge's, on every kind."""
    config, ty = case
    v = compile_both(config, ty)
    if v is None:
        return
    engine = Engine()
    engine.upsert_device("d", [{"name": "p", "type": ty, "visitor": config}])  # type: ignore[typeddict-item]
    assert engine.read_plan("d") == [(v.kind, v.offset, v.count)]


@st.composite
def modbus_devices(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Specs of a device whose properties all have valid visitors near each other."""
    specs: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 8))):
        config, ty = draw(visitors(offsets=st.integers(0, 30)))
        if reference_visitor(config, ty) is None:
            continue
        specs.append({"name": f"p{i}", "type": ty, "visitor": config})
    return specs


@given(modbus_devices(), st.integers(1, 125), st.integers(1, 2000), st.integers(0, 6))
def test_read_plan_matches_reference(
    specs: list[dict[str, Any]], max_registers: int, max_bits: int, max_gap: int
) -> None:
    """read_plan coalesces a device's visitors as the reference, within the read limits."""
    engine = Engine(max_registers=max_registers, max_bits=max_bits, max_gap=max_gap)
    model = ref.ReferenceEngine(max_registers=max_registers, max_bits=max_bits, max_gap=max_gap)
    engine.upsert_device("d", specs)  # type: ignore[arg-type]
    model.upsert_device("d", specs)
    assert engine.read_plan("d") == model.read_plan("d")


@given(modbus_devices(), st.integers(0, 6), st.data())
def test_read_plan_of_a_subset_matches_reference(
    specs: list[dict[str, Any]], max_gap: int, data: st.DataObject
) -> None:
    """read_plan of some properties plans only theirs, as the reference; of all, the whole plan."""
    engine, model = Engine(max_gap=max_gap), ref.ReferenceEngine(max_gap=max_gap)
    engine.upsert_device("d", specs)  # type: ignore[arg-type]
    model.upsert_device("d", specs)
    indices = list(range(len(specs)))
    chosen = data.draw(st.lists(st.sampled_from(indices), max_size=10)) if indices else []
    assert engine.read_plan("d", chosen) == model.read_plan("d", chosen)
    assert engine.read_plan("d", indices) == engine.read_plan("d")


@pytest.mark.parametrize("impl", [Engine, ref.ReferenceEngine])
def test_read_plan_of_a_subset_reads_only_its_registers(impl: type[Engine]) -> None:
    """Two adjacent registers coalesce in one read; either alone reads only its own."""
    engine = impl()
    specs = [
        {"name": "fast", "type": "INT", "visitor": {"register": "HoldingRegister", "offset": 0}},
        {"name": "slow", "type": "INT", "visitor": {"register": "HoldingRegister", "offset": 1}},
    ]
    dev = engine.upsert_device("d", specs)  # type: ignore[arg-type]
    assert engine.read_plan(dev) == [("HoldingRegister", 0, 2)]
    assert engine.read_plan(dev, [0]) == [("HoldingRegister", 0, 1)]
    assert engine.read_plan(dev, [1]) == [("HoldingRegister", 1, 1)]
    assert engine.read_plan(dev, []) == []
    with pytest.raises(UnknownPropertyError):
        engine.read_plan(dev, [2])


@given(modbus_devices(), st.integers(0, 3), st.data())
def test_coalesced_frames_match_reference(
    specs: list[dict[str, Any]], max_gap: int, data: st.DataObject
) -> None:
    """Frames read by the read plan decode into the same samples and the same report."""
    engine, model = Engine(max_gap=max_gap), ref.ReferenceEngine(max_gap=max_gap)
    dev = engine.upsert_device("ns/d", specs)  # type: ignore[arg-type]
    assert model.upsert_device("ns/d", specs) == dev
    for cycle in range(data.draw(st.integers(1, 3))):
        for kind, start, count in engine.read_plan(dev):
            size = (count + 7) // 8 if kind in ref.BIT_KINDS else 2 * count
            frame = data.draw(st.binary(min_size=size, max_size=size))
            # Without a count, a bit frame's padding may hold the start of a later read's
            # visitor: it is skipped (see test_bit_frames_skip_padding_visitors_without_count).
            given_count = count if data.draw(st.booleans()) else None
            ts = 1000 * cycle
            got = engine.ingest_frame(dev, kind, start, frame, ts, given_count)  # type: ignore[arg-type]
            assert got == model.ingest_frame(dev, kind, start, frame, ts, given_count)
        assert engine.stats() == model.stats()
        assert_same_changes(engine.report(), model.report())
    assert engine.twins("ns/d") == model.twins("ns/d")


COIL_SPECS: list[dict[str, Any]] = [
    {"name": "a", "type": "INT", "visitor": {"register": "CoilRegister", "offset": 0}},
    {"name": "b", "type": "INT", "visitor": {"register": "CoilRegister", "offset": 5, "limit": 4}},
]
"""Two coil properties read apart: ``a`` (coil 0) and ``b`` (coils 5-8)."""


@pytest.mark.parametrize("impl", [Engine, ref.ReferenceEngine])
def test_bit_frames_skip_padding_visitors_without_count(impl: type[Engine]) -> None:
    """Without a count, a visitor starting in a bit frame's padding is skipped, not an error."""
    engine = impl()
    dev = engine.upsert_device("d", COIL_SPECS)  # type: ignore[arg-type]
    assert engine.read_plan(dev) == [("CoilRegister", 0, 1), ("CoilRegister", 5, 4)]
    # The 1-coil read's byte: coil 0 and seven padding bits, where b starts.
    assert engine.ingest_frame(dev, "CoilRegister", 0, b"\x01", 0) == 1
    assert engine.stats()["queued"] == 1
    assert engine.report().to_list()[0]["property"] == "a"
    assert "b" not in {p for p, t in engine.twins("d").items() if t["reported"]}


@pytest.mark.parametrize("impl", [Engine, ref.ReferenceEngine])
def test_bit_frames_with_count_raise_for_visitors_past_it(impl: type[Engine]) -> None:
    """With an explicit count, a visitor that starts inside but ends past it is a FrameError."""
    engine = impl()
    dev = engine.upsert_device("d", COIL_SPECS)  # type: ignore[arg-type]
    assert engine.ingest_frame(dev, "CoilRegister", 0, b"\x01", 0, count=1) == 1
    with pytest.raises(FrameError) as info:
        engine.ingest_frame(dev, "CoilRegister", 0, b"\x21", 0, count=6)
    assert (info.value.device, info.value.property) == ("d", "b")
    assert (info.value.needed, info.value.got) == (2, 1)
    assert engine.stats()["queued"] == 1  # only the first frame's sample


def test_bit_frames_without_count_raise_for_visitors_they_hold_the_start_of() -> None:
    """Without a count, a visitor starting before the last byte but ending past it is short."""
    specs: list[Any] = [
        {
            "name": "w",
            "type": "INT",
            "visitor": {"register": "CoilRegister", "offset": 3, "limit": 16},
        }
    ]
    engine, model = Engine(), ref.ReferenceEngine()
    for e in (model, engine):
        e.upsert_device("d", specs)
    with pytest.raises(FrameError) as info:  # coil 3 is in the first of two bytes: it was read
        model.ingest_frame(0, "CoilRegister", 0, b"\xff\xff", 0)
    assert (info.value.needed, info.value.got) == (3, 2)
    outcome: int | FrameError
    try:
        outcome = engine.ingest_frame(0, "CoilRegister", 0, b"\xff\xff", 0)
    except FrameError as e:
        outcome = e
    assert isinstance(outcome, FrameError), f"no FrameError; {outcome} sampled"
    assert isinstance(outcome, FrameError)
    assert (outcome.property, outcome.needed, outcome.got) == ("w", 3, 2)
