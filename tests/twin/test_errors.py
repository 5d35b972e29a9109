"""Every error path: its ``twinplane.errors`` class and fields, and an engine left as it was."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import reference as ref
from twinplane.errors import (
    FrameError,
    SpecError,
    TwinplaneError,
    UnknownDeviceError,
    UnknownPropertyError,
    ValueTypeError,
    VersionConflictError,
)
from twinplane.twin import Engine, PropertySpec, encode_register

from .engine_strategies import EngineLike, snapshot

pytestmark = pytest.mark.engine

DEVICE = "ns/pump"
SPECS: list[PropertySpec] = [
    {"name": "speed", "type": "INT", "visitor": {"register": "HoldingRegister", "offset": 0}},
    {
        "name": "temp",
        "type": "DOUBLE",
        "visitor": {
            "register": "HoldingRegister",
            "offset": 1,
            "limit": 2,
            "dataType": "int32",
            "scale": 0.1,
        },
    },
    {"name": "on", "type": "BOOLEAN", "visitor": {"register": "CoilRegister", "offset": 0}},
    {"name": "label", "type": "STRING"},
]


def populated(engine: EngineLike) -> EngineLike:
    """An engine with twins on both sides, versions, and samples waiting in rings."""
    engine.upsert_device(DEVICE, SPECS)
    engine.upsert_device("other", [{"name": "x", "type": "INT"}])
    engine.apply_reported(DEVICE, [("speed", "5", 1), ("label", "a b", 1)])
    engine.set_desired(DEVICE, {"speed": 7, "on": True}, 2)
    engine.ingest_frame(0, "HoldingRegister", 0, b"\x00\x05\x00\x00\x01\x00", 3)
    return engine


Call = Callable[[Any], object]


def with_visitor(**config: object) -> list[Any]:
    """The device's specs with the second property's visitor replaced."""
    return [SPECS[0], {"name": "temp", "type": "DOUBLE", "visitor": config}]


CASES: list[tuple[str, Call, type[TwinplaneError], dict[str, object]]] = [
    # unknown device
    (
        "apply_reported",
        lambda e: e.apply_reported("ns/nope", [("x", "1", 1)]),
        UnknownDeviceError,
        {"device": "ns/nope"},
    ),
    (
        "set_desired",
        lambda e: e.set_desired("ns/nope", {"x": 1}, 1),
        UnknownDeviceError,
        {"device": "ns/nope"},
    ),
    (
        "sync_desired",
        lambda e: e.sync_desired("ns/nope", {"x": ("1", 1, 1)}, 1),
        UnknownDeviceError,
        {"device": "ns/nope"},
    ),
    ("twins", lambda e: e.twins("ns/nope"), UnknownDeviceError, {"device": "ns/nope"}),
    (
        "remove_device",
        lambda e: e.remove_device("ns/nope"),
        UnknownDeviceError,
        {"device": "ns/nope"},
    ),
    (
        "device_index",
        lambda e: e.device_index("ns/nope"),
        UnknownDeviceError,
        {"device": "ns/nope"},
    ),
    ("properties", lambda e: e.properties("ns/nope"), UnknownDeviceError, {"device": "ns/nope"}),
    ("read_plan", lambda e: e.read_plan(9), UnknownDeviceError, {"device": "#9"}),
    (
        "ingest_frame",
        lambda e: e.ingest_frame(9, "HoldingRegister", 0, b"\0\0", 1),
        UnknownDeviceError,
        {"device": "#9"},
    ),
    (
        "ingest_values",
        lambda e: e.ingest_values(9, [(0, 1)], 1),
        UnknownDeviceError,
        {"device": "#9"},
    ),
    ("report_devices", lambda e: e.report_devices([0, 9]), UnknownDeviceError, {"device": "#9"}),
    (
        "apply_dmi_report",
        lambda e: e.apply_dmi_report(
            ref.write_report_request({"deviceName": "nope", "deviceNamespace": "", "twins": []}), 1
        ),
        UnknownDeviceError,
        {"device": "default/nope"},
    ),
    # unknown property: the whole batch is refused
    (
        "apply_reported",
        lambda e: e.apply_reported(DEVICE, [("speed", "9", 5), ("nope", "1", 5)]),
        UnknownPropertyError,
        {"device": DEVICE, "property": "nope"},
    ),
    (
        "set_desired",
        lambda e: e.set_desired(DEVICE, {"speed": 1, "nope": 1}, 5),
        UnknownPropertyError,
        {"device": DEVICE, "property": "nope"},
    ),
    (
        "sync_desired",
        lambda e: e.sync_desired(DEVICE, {"nope": ("1", 9, 9)}, 5),
        UnknownPropertyError,
        {"device": DEVICE, "property": "nope"},
    ),
    (
        "ingest_values",
        lambda e: e.ingest_values(0, [(0, 1), (9, 1)], 5),
        UnknownPropertyError,
        {"device": DEVICE, "property": "#9"},
    ),
    (
        "property_index",
        lambda e: e.property_index(DEVICE, "nope"),
        UnknownPropertyError,
        {"device": DEVICE, "property": "nope"},
    ),
    (
        "encode_write",
        lambda e: e.encode_write(DEVICE, "nope", 1),
        UnknownPropertyError,
        {"device": DEVICE, "property": "nope"},
    ),
    # a frame shorter than a visitor needs: nothing of the frame is queued
    (
        "ingest_frame",
        lambda e: e.ingest_frame(0, "HoldingRegister", 0, b"\x00\x01\x00\x02", 5),
        FrameError,
        {"device": DEVICE, "property": "temp"},
    ),
    # a value of the wrong type
    (
        "apply_reported",
        lambda e: e.apply_reported(DEVICE, [("label", "ok", 5), ("speed", "fast", 5)]),
        ValueTypeError,
        {"device": DEVICE, "property": "speed", "expected": "INT"},
    ),
    (
        "set_desired",
        lambda e: e.set_desired(DEVICE, {"speed": 1.5}, 5),
        ValueTypeError,
        {"device": DEVICE, "property": "speed", "expected": "INT"},
    ),
    (
        "set_desired",
        lambda e: e.set_desired(DEVICE, {"on": 1}, 5),
        ValueTypeError,
        {"device": DEVICE, "property": "on", "expected": "BOOLEAN"},
    ),
    (
        "set_desired",
        lambda e: e.set_desired(DEVICE, {"label": b"x"}, 5),
        ValueTypeError,
        {"device": DEVICE, "property": "label", "expected": "STRING"},
    ),
    (
        "sync_desired",
        lambda e: e.sync_desired(DEVICE, {"speed": ("x", 9, 9)}, 5),
        ValueTypeError,
        {"device": DEVICE, "property": "speed", "expected": "INT"},
    ),
    (
        "ingest_values",
        lambda e: e.ingest_values(0, [(0, 1), (1, "warm")], 5),
        ValueTypeError,
        {"device": DEVICE, "property": "temp", "expected": "DOUBLE"},
    ),
    (
        "ingest_values",
        lambda e: e.ingest_values(0, [(0, 2**64)], 5),
        ValueTypeError,
        {"device": DEVICE, "property": "speed", "expected": "INT"},
    ),
    (
        "encode_write",
        lambda e: e.encode_write(DEVICE, "speed", 70000),
        ValueTypeError,
        {"device": DEVICE, "property": "speed", "expected": "uint16"},
    ),
    # the cloud behind the edge
    (
        "sync_desired",
        lambda e: e.sync_desired(DEVICE, {"speed": ("1", 0, 0)}, 5),
        VersionConflictError,
        {"device": DEVICE, "property": "speed"},
    ),
    # bad configuration: the device keeps its old configuration and twins
    (
        "upsert_device",
        lambda e: e.upsert_device(DEVICE, with_visitor(register="Holding")),
        SpecError,
        {"device": DEVICE, "path": "properties[1].visitors.configData.register"},
    ),
    (
        "upsert_device",
        lambda e: e.upsert_device(DEVICE, with_visitor(register="HoldingRegister", offset=-1)),
        SpecError,
        {"device": DEVICE, "path": "properties[1].visitors.configData.offset"},
    ),
    (
        "upsert_device",
        lambda e: e.upsert_device(
            DEVICE, with_visitor(register="HoldingRegister", dataType="long")
        ),
        SpecError,
        {"device": DEVICE, "path": "properties[1].visitors.configData.dataType"},
    ),
    (
        "upsert_device",
        lambda e: e.upsert_device(
            DEVICE, with_visitor(register="HoldingRegister", dataType="int32", limit=1)
        ),
        SpecError,
        {"device": DEVICE, "path": "properties[1].visitors.configData.limit"},
    ),
    (
        "upsert_device",
        lambda e: e.upsert_device(DEVICE, with_visitor(register="CoilRegister", isSwap=True)),
        SpecError,
        {"device": DEVICE, "path": "properties[1].visitors.configData.isSwap"},
    ),
    (
        "upsert_device",
        lambda e: e.upsert_device(
            DEVICE, with_visitor(register="InputRegister", scale=float("inf"))
        ),
        SpecError,
        {"device": DEVICE, "path": "properties[1].visitors.configData.scale"},
    ),
    (
        "upsert_device",
        lambda e: e.upsert_device(DEVICE, [SPECS[0], SPECS[0]]),
        SpecError,
        {"device": DEVICE, "path": "properties[1].name"},
    ),
    (
        "upsert_device",
        lambda e: e.upsert_device(DEVICE, [{"name": "s", "type": "STRING", "deadband": 1}]),
        SpecError,
        {"device": DEVICE, "path": "properties[0].deadband"},
    ),
    (
        "upsert_device",
        lambda e: e.upsert_device(DEVICE, [{"name": "s", "type": "STRING", "reduce": "max"}]),
        SpecError,
        {"device": DEVICE, "path": "properties[0].reduce"},
    ),
    ("upsert_device", lambda e: e.upsert_device("", SPECS), SpecError, {"path": "id"}),
]

# Errors found while converting what crosses from Python, before the engine sees the spec.
CONVERSION_CASES: list[tuple[str, Call, type[TwinplaneError], dict[str, object]]] = [
    (
        "upsert_device",
        lambda e: e.upsert_device(DEVICE, with_visitor(register="HoldingRegister", offset="ten")),
        SpecError,
        {"device": DEVICE, "path": "properties[1].visitors.configData.offset"},
    ),
    (
        "upsert_device",
        lambda e: e.upsert_device(DEVICE, with_visitor(offset=1)),
        SpecError,
        {"device": DEVICE, "path": "properties[1].visitors.configData.register"},
    ),
    (
        "upsert_device",
        lambda e: e.upsert_device(DEVICE, [{"name": "s", "type": "LONG"}]),
        SpecError,
        {"device": DEVICE, "path": "properties[0].type"},
    ),
    (
        "upsert_device",
        lambda e: e.upsert_device(DEVICE, [{"name": "s", "type": "INT", "reduce": "median"}]),
        SpecError,
        {"device": DEVICE, "path": "properties[0].reduce"},
    ),
    (
        "upsert_device",
        lambda e: e.upsert_device(DEVICE, [{"name": "s", "type": "INT", "heartbeat_ms": -1}]),
        SpecError,
        {"device": DEVICE, "path": "properties[0].heartbeat_ms"},
    ),
    (
        "upsert_device",
        lambda e: e.upsert_device(
            DEVICE, [{"name": "s", "type": "INT", "deadband": 1, "deadband_relative": 1}]
        ),
        SpecError,
        {"device": DEVICE, "path": "properties[0].deadband"},
    ),
    (
        "upsert_device",
        lambda e: e.upsert_device(DEVICE, [{"type": "INT"}]),
        SpecError,
        {"device": DEVICE, "path": "properties[0].name"},
    ),
]


def check_error(call: Call, error: type[TwinplaneError], fields: dict[str, object]) -> None:
    """The call raises ``error`` with ``fields`` on engine and reference, changing neither."""
    engine, model = populated(Engine()), populated(ref.ReferenceEngine())
    before = snapshot(engine)
    assert before == snapshot(model)
    for e in (model, engine):
        with pytest.raises(error) as info:
            call(e)
        got = {key: getattr(info.value, key) for key in fields}
        assert got == fields, f"{type(e).__name__}: {info.value}"
        assert snapshot(e) == before


@pytest.mark.parametrize(
    ("method", "call", "error", "fields"), CASES, ids=[f"{c[0]}-{c[2].__name__}" for c in CASES]
)
def test_error_has_class_and_fields_and_changes_nothing(
    method: str, call: Call, error: type[TwinplaneError], fields: dict[str, object]
) -> None:
    """Bad input raises its twinplane.errors class with its fields and changes nothing."""
    check_error(call, error, fields)


conversion_cases = pytest.mark.parametrize(
    ("method", "call", "error", "fields"),
    CONVERSION_CASES,
    ids=[str(c[3]["path"]) for c in CONVERSION_CASES],
)


@conversion_cases
def test_conversion_error_names_the_device(
    method: str, call: Call, error: type[TwinplaneError], fields: dict[str, object]
) -> None:
    """A spec error found while converting Python values names the device too."""
    check_error(call, error, fields)


@conversion_cases
def test_conversion_error_names_the_field(
    method: str, call: Call, error: type[TwinplaneError], fields: dict[str, object]
) -> None:
    """A spec error found while converting Python values names the field path."""
    check_error(call, error, {"path": fields["path"]})


@pytest.mark.parametrize("limits", [(0, 2000), (126, 2000), (125, 0), (1, 2001)])
def test_read_limits_are_checked(limits: tuple[int, int]) -> None:
    """Read limits outside the Modbus maxima are a SpecError naming max_registers."""
    with pytest.raises(SpecError) as info:
        Engine(max_registers=limits[0], max_bits=limits[1])
    assert info.value.path == "max_registers"


def test_restore_checks_its_input() -> None:
    """Restore refuses unknown properties and values of the wrong type, changing nothing."""
    engine = populated(Engine())
    assert isinstance(engine, Engine)
    before = snapshot(engine)
    state = {"reported": {"value": "x", "timestamp": 1}}
    with pytest.raises(UnknownPropertyError):
        engine.restore(DEVICE, "nope", state)
    with pytest.raises(ValueTypeError):
        engine.restore(DEVICE, "speed", state)
    assert snapshot(engine) == before


@pytest.mark.parametrize("side", ["reported", "desired"])
def test_restore_error_names_device_and_property(side: str) -> None:
    """Restore's ValueTypeError names the device, the property and the expected type."""
    engine = Engine()
    engine.upsert_device(DEVICE, SPECS)
    with pytest.raises(ValueTypeError) as info:
        engine.restore(DEVICE, "speed", {side: {"value": "x", "timestamp": 1}})
    fields = (info.value.device, info.value.property, info.value.expected)
    assert fields == (DEVICE, "speed", "INT")


def test_restore_round_trips_a_twin() -> None:
    """A twin saved from twins() and restored into a fresh engine is the same twin."""
    engine = populated(Engine())
    assert isinstance(engine, Engine)
    fresh = Engine()
    fresh.upsert_device(DEVICE, SPECS)
    for name, twin in engine.twins(DEVICE).items():
        fresh.restore(DEVICE, name, twin)
    assert fresh.twins(DEVICE) == engine.twins(DEVICE)


@pytest.mark.parametrize(
    ("register", "frame", "needed", "got"),
    [("HoldingRegister", b"\x00\x01\x00\x02", 6, 4), ("CoilRegister", b"\x01", 2, 1)],
    ids=["registers", "coils"],
)
def test_frame_error_counts_bytes_from_the_frame_start(
    register: str, frame: bytes, needed: int, got: int
) -> None:
    """FrameError counts bytes: needed from the frame start, got in the frame."""
    engine, model = Engine(), ref.ReferenceEngine()
    visitor = {
        "register": register,
        "offset": 1,
        "limit": 12 if register == "CoilRegister" else 2,
        "dataType": "int" if register == "CoilRegister" else "int32",
    }
    specs: list[Any] = [{"name": "a", "type": "INT", "visitor": visitor}]
    count = 8 if register == "CoilRegister" else None
    for e in (model, engine):
        e.upsert_device("d", specs)
        with pytest.raises(FrameError) as info:
            e.ingest_frame(0, register, 0, frame, 1, count)  # type: ignore[arg-type]
        assert (info.value.needed, info.value.got) == (needed, got), type(e).__name__


@pytest.mark.parametrize(
    ("visitor", "type_", "value", "data_type", "message"),
    [
        (
            {"register": "HoldingRegister", "offset": 0, "dataType": "int16"},
            "INT",
            99999,
            "int16",
            "99999 is outside what an int16 register holds: -32768..32767",
        ),
        (
            {"register": "HoldingRegister", "offset": 0, "dataType": "uint32"},
            "INT",
            -1,
            "uint32",
            "-1 is outside what a uint32 over 2 registers holds: 0..4294967295",
        ),
        (
            {"register": "HoldingRegister", "offset": 0, "dataType": "int16", "scale": 0.1},
            "DOUBLE",
            "3276.8",
            "int16",
            "3276.8 is outside what an int16 register at scale 0.1 holds: -3276.8..3276.7",
        ),
        (
            {"register": "HoldingRegister", "offset": 0, "dataType": "float32"},
            "DOUBLE",
            1e39,
            "float32",
            "1e39 is outside what a float32 over 2 registers holds: -3.4028235e38..3.4028235e38",
        ),
        (
            {"register": "CoilRegister", "offset": 0, "limit": 2, "dataType": "int"},
            "INT",
            4,
            "uint16",
            "4 is outside what 2 coils hold: 0..3",
        ),
    ],
)
def test_a_write_its_register_cannot_hold_names_the_range(
    visitor: dict[str, Any], type_: str, value: object, data_type: str, message: str
) -> None:
    """encode_register's ValueTypeError says the value, the register and its range (value units)."""
    with pytest.raises(ValueTypeError) as info:
        encode_register(visitor, type_, value)  # type: ignore[arg-type]
    assert (info.value.message, info.value.expected) == (message, data_type)


def test_an_engine_write_out_of_range_names_device_and_property() -> None:
    """Engine.encode_write's range error carries the device and property, in fields and text."""
    engine = Engine()
    dev = engine.upsert_device(DEVICE, SPECS)
    with pytest.raises(ValueTypeError) as info:
        engine.encode_write(dev, "speed", 70000)
    err = info.value
    assert (err.device, err.property, err.expected) == (DEVICE, "speed", "uint16")
    assert str(err) == (
        f"device {DEVICE}, property speed: 70000 is outside what a uint16 register holds: 0..65535"
    )
