"""The batch entry points: many planned frames in one call, and a report with its encodings."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
from twinplane.errors import FrameError, SpecError, UnknownDeviceError
from twinplane.twin import Engine, PropertySpec

from .engine_strategies import (
    UUID4,
    assert_same_changes,
    ordered,
    policies,
    snapshot,
    values,
)
from .test_modbus import modbus_devices

pytestmark = pytest.mark.engine

Read = tuple[int, int]
"""A device index and the index of a read in its plan."""


@st.composite
def fleets(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """Specs of one to three Modbus devices, each property with a random change policy."""
    fleet = []
    for _ in range(draw(st.integers(1, 3))):
        specs = draw(modbus_devices())
        fleet.append([{**s, **draw(policies(s["type"]))} for s in specs])
    return fleet


def frame_size(kind: str, count: int) -> int:
    """Bytes of the reply to a read of ``count`` registers or bits."""
    return (count + 7) // 8 if kind in ref.BIT_KINDS else 2 * count


def build(fleet: list[list[dict[str, Any]]]) -> tuple[Engine, ref.ReferenceEngine, list[Read]]:
    """The fleet in an engine and in the reference, and every planned read."""
    engine, model = Engine(), ref.ReferenceEngine()
    reads = []
    for d, specs in enumerate(fleet):
        assert engine.upsert_device(f"ns/d{d}", specs) == d  # type: ignore[arg-type]
        assert model.upsert_device(f"ns/d{d}", specs) == d
        reads += [(d, r) for r in range(len(engine.read_plan(d)))]
    return engine, model, reads


def ingest(
    engine: Engine, batch: list[Read], frames: list[bytes], ts: int, split: list[bool]
) -> int:
    """Feeds the frames in order, and returns the properties sampled.

    Runs of frames go in one ``ingest_frames`` call each; the frames where ``split`` is True go
    through ``ingest_frame``, one by one.
    """
    sampled, run = 0, 0
    for end in range(len(batch) + 1):
        if end < len(batch) and not split[end]:
            continue
        if end > run:
            reads = batch[run:end]
            sampled += engine.ingest_frames(
                [d for d, _ in reads], frames[run:end], ts, [r for _, r in reads]
            )
        if end < len(batch):
            device, read = batch[end]
            kind, start, count = engine.read_plan(device)[read]
            sampled += engine.ingest_frame(device, kind, start, frames[end], ts, count)  # type: ignore[arg-type]
        run = end + 1
    return sampled


@given(fleets(), st.data())
def test_planned_frames_match_the_reference(
    fleet: list[list[dict[str, Any]]], data: st.DataObject
) -> None:
    """ingest_frames of any reads, repeats included, samples as the reference frame by frame.

    Frames often repeat the previous reply of their read, byte for byte; some go through
    ingest_frame or ingest_values in between; batches may come twice before a report, or
    around a mapper report of the same device.
    """
    engine, model, reads = build(fleet)
    if not reads:
        return
    last: dict[Read, bytes] = {}
    ts = 1_700_000_000_000
    for _ in range(data.draw(st.integers(1, 6), label="cycles")):
        ts += data.draw(st.sampled_from([0, 1, 5, 100, 1000]))
        batch = data.draw(st.lists(st.sampled_from(reads), max_size=6), label="reads")
        frames = []
        for device, read in batch:
            kind, _, count = engine.read_plan(device)[read]
            size = frame_size(kind, count)
            fresh = st.binary(min_size=size, max_size=size)
            repeat = st.just(last[device, read]) if (device, read) in last else fresh
            frames.append(data.draw(st.one_of(repeat, repeat, fresh)))
            last[device, read] = frames[-1]
        split = data.draw(st.lists(st.booleans(), min_size=len(batch), max_size=len(batch)))
        sampled = ingest(engine, batch, frames, ts, split)
        want = 0
        for (device, read), frame in zip(batch, frames, strict=True):
            kind, start, count = model.read_plan(device)[read]
            want += model.ingest_frame(device, kind, start, frame, ts, count)
        assert sampled == want
        if data.draw(st.booleans(), label="a driver's own value"):
            device, _ = data.draw(st.sampled_from(reads))
            index = data.draw(st.integers(0, len(fleet[device]) - 1))
            value = data.draw(values(fleet[device][index]["type"]))
            engine.ingest_values(device, [(index, value)], ts)
            model.ingest_values(device, [(index, value)], ts)
        assert engine.stats() == model.stats()
        step = data.draw(st.sampled_from(["report", "encoded", "apply", "later"]))
        if step == "apply":  # a mapper report of the same twins before the samples settle
            device, _ = data.draw(st.sampled_from(reads))
            spec = data.draw(st.sampled_from(fleet[device]))
            text = ref.canonical(spec["type"], data.draw(values(spec["type"])))
            mapper = [(spec["name"], text, ts)]
            assert_same_changes(
                engine.apply_reported(f"ns/d{device}", mapper),
                model.apply_reported(f"ns/d{device}", mapper),
            )
        if step == "encoded":
            assert_same_changes(engine.report_encoded(ts).changes, model.report())
        elif step != "later":
            assert_same_changes(engine.report(), model.report())
        assert snapshot(engine) == snapshot(model)


def test_one_read_time_or_one_per_frame() -> None:
    """ts_ms is one time for every frame, or one per frame."""
    engine, _, _ = build([[{"name": "a", "type": "INT", "visitor": {"register": "InputRegister"}}]])
    engine.ingest_frames([0, 0], [b"\x00\x01", b"\x00\x02"], [5, 9])
    [change] = engine.report().to_list()
    assert (change["value"], change["timestamp"]) == ("2", 9)
    engine.ingest_frames([0], [b"\x00\x03"], 11)
    assert engine.report().to_list()[0]["timestamp"] == 11


TWO_READS: list[PropertySpec] = [
    {"name": "speed", "type": "INT", "visitor": {"register": "HoldingRegister", "offset": 0}},
    {"name": "on", "type": "BOOLEAN", "visitor": {"register": "CoilRegister", "offset": 3}},
]
"""A device read in two reads: read 0 the coil (coils come first in a plan), read 1 the
holding register."""


@pytest.mark.parametrize(
    ("devices", "frames", "reads", "error", "path", "fields"),
    [
        ([0, 7], [b"\x01", b"\x00\x01"], [0, 1], UnknownDeviceError, "devices[1]", {}),
        ([0, 0], [b"\x01", b"\x00\x01"], [0, 2], SpecError, "reads[1]", {}),
        ([0, 0], [b"\x01", b"\x00"], [0, 1], FrameError, "frames[1]", {"needed": 2, "got": 1}),
        ([0], [b"\x01\x00"], [0], FrameError, "frames[0]", {"needed": 1, "got": 2}),
        ([0, 0], [b"\x01"], [0, 1], SpecError, "frames", {}),
        ([0, 0], [b"\x01", b"\x00\x01"], [0], SpecError, "reads", {}),
    ],
)
def test_a_bad_frame_is_named_and_nothing_is_queued(  # noqa: PLR0913, PLR0917 - the columns
    devices: list[int],
    frames: list[bytes],
    reads: list[int],
    error: type[Exception],
    path: str,
    fields: dict[str, int],
) -> None:
    """Every frame is checked first: the error names the bad one, and no sample is queued."""
    engine = Engine()
    engine.upsert_device("ns/pump", TWO_READS)
    assert engine.read_plan(0) == [("CoilRegister", 3, 1), ("HoldingRegister", 0, 1)]
    with pytest.raises(error) as info:
        engine.ingest_frames(devices, frames, 1, reads)
    assert getattr(info.value, "path", None) == path, info.value
    for name, value in fields.items():
        assert getattr(info.value, name) == value
    assert engine.stats()["queued"] == 0
    assert not engine.report()


def test_the_default_read_is_the_first_of_the_plan() -> None:
    """Without reads, every frame is the reply to read 0 of its device's plan."""
    engine = Engine()
    engine.upsert_device("ns/pump", TWO_READS)
    assert engine.ingest_frames([0], [b"\x08"], 1) == 1
    assert [c["property"] for c in engine.report().to_list()] == ["on"]


def mqtt_bodies(messages: list[tuple[str, bytes]]) -> list[tuple[str, Any]]:
    """MQTT messages as topic and body without the event id, which must be a fresh UUID."""
    out, ids = [], set()
    for topic, payload in messages:
        body = json.loads(payload)
        event_id = body.pop("event_id")
        assert UUID4.fullmatch(event_id), event_id
        assert event_id not in ids
        ids.add(event_id)
        out.append((topic, ordered(body)))
    return out


@given(fleets(), st.data())
def test_report_encoded_gives_the_encoders_outputs(
    fleet: list[list[dict[str, Any]]], data: st.DataObject
) -> None:
    """report_encoded's DMI and MQTT bytes are what Changes.to_dmi and to_mqtt give."""
    engines = [build(fleet)[0], build(fleet)[0]]
    for cycle in range(data.draw(st.integers(1, 3), label="cycles")):
        batch: list[tuple[int, int, bytes]] = []
        for d, _ in enumerate(fleet):
            for r, (kind, _, count) in enumerate(engines[0].read_plan(d)):
                size = frame_size(kind, count)
                batch.append((d, r, data.draw(st.binary(min_size=size, max_size=size))))
        for engine in engines:
            engine.ingest_frames(
                [b[0] for b in batch], [b[2] for b in batch], cycle, [b[1] for b in batch]
            )
        now = 1_700_000_000_000 + cycle
        report = engines[0].report_encoded(now)
        changes = engines[1].report()
        assert report.changes.to_list() == changes.to_list()
        assert report.dmi == changes.to_dmi()
        assert mqtt_bodies(report.mqtt) == mqtt_bodies(changes.to_mqtt(now))


def test_report_encoded_encodes_only_what_is_asked() -> None:
    """dmi=False or mqtt=False leave that list empty; the changes are there either way."""
    engine = Engine()
    engine.upsert_device("ns/pump", TWO_READS)
    for value, (options, dmi, mqtt) in enumerate(
        [
            ({}, 1, 2),
            ({"mqtt": False}, 1, 0),
            ({"dmi": False}, 0, 2),
            ({"dmi": False, "mqtt": False}, 0, 0),
        ]
    ):
        engine.ingest_frames([0], [bytes([0, value])], 1, [1])
        report = engine.report_encoded(**options)
        assert (len(report.changes), len(report.dmi), len(report.mqtt)) == (1, dmi, mqtt)
    assert repr(report).startswith("<EncodedReport changes=1 dmi=0 mqtt=0")


@pytest.mark.parametrize("between", ["apply", "restore", "values", "frame"])
def test_a_repeated_reply_settles_again_after_another_path_moved_the_twin(between: str) -> None:
    """A reply that repeats the last one is settled again once anything else moved the twin.

    A mapper report, a restored twin, a driver's own value or a single frame in between: the
    repeated reply's value is then a change again (as the reference says; it has no restore).
    """
    engine, model, _ = build([TWO_READS])  # type: ignore[list-item]
    engines: list[Any] = [engine] if between == "restore" else [engine, model]
    engine.ingest_frames([0, 0], [b"\x01", b"\x00\x05"], 1, [0, 1])  # every property read
    model.ingest_frame(0, "CoilRegister", 3, b"\x01", 1, 1)
    model.ingest_frame(0, "HoldingRegister", 0, b"\x00\x05", 1, 1)
    for e in engines:
        e.report()
    for e in engines:
        if between == "apply":
            e.apply_reported("ns/d0", [("speed", "9", 2)])
        elif between == "restore":
            e.restore("ns/d0", "speed", {**e.twins("ns/d0")["speed"], "reported": None})
        elif between == "values":
            e.ingest_values(0, [(0, 9)], 2)
        else:
            e.ingest_frame(0, "HoldingRegister", 0, b"\x00\x09", 2)
        e.report()
    assert engine.ingest_frames([0, 0], [b"\x01", b"\x00\x05"], 3, [0, 1]) == 2
    got = engine.report()
    assert [(c["property"], c["value"]) for c in got.to_list()] == [("speed", "5")]
    if between != "restore":
        model.ingest_frame(0, "CoilRegister", 3, b"\x01", 3, 1)
        model.ingest_frame(0, "HoldingRegister", 0, b"\x00\x05", 3, 1)
        assert_same_changes(got, model.report())


def test_a_first_reply_is_reported_whatever_it_reads() -> None:
    """A property's first reply is a change even when it decodes to what an unused ring holds.

    (An empty coil reads ``false``; so does a ring that never had a sample.)
    """
    engine, model, _ = build([TWO_READS])  # type: ignore[list-item]
    engine.ingest_frames([0], [b"\x00\x05"], 1, [1])
    model.ingest_frame(0, "HoldingRegister", 0, b"\x00\x05", 1, 1)
    assert_same_changes(engine.report(), model.report())
    engine.ingest_frames([0], [b"\x00"], 2, [0])
    model.ingest_frame(0, "CoilRegister", 3, b"\x00", 2, 1)
    got = engine.report()
    assert [(c["property"], c["value"]) for c in got.to_list()] == [("on", "false")]
    assert_same_changes(got, model.report())
