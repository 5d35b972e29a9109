"""Hypothesis strategies and comparison helpers shared by the twin engine tests."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import pytest
from hypothesis import strategies as st

import reference as ref
from twinplane.errors import TwinplaneError
from twinplane.twin import Changes, Engine, PropertySpec

T = TypeVar("T")
U = TypeVar("U")

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
"""A version 4 UUID in lower-case hex, as KubeEdge's event ids."""

EngineLike = Engine | ref.ReferenceEngine


def values(ty: str) -> st.SearchStrategy[ref.Value]:
    """Values of a property type: a small pool of common values, and the whole range.

    A small pool makes repeats and small moves common; empty text and bytes are in the pool.
    """
    if ty == "INT":
        return st.one_of(st.integers(-3, 3), st.integers(ref.I64_MIN, ref.I64_MAX))
    if ty in {"FLOAT", "DOUBLE"}:
        pool = st.sampled_from([0.0, -0.0, 0.5, 1.0, 1.25, 100.0, -2.5, math.nan])
        return st.one_of(pool, st.floats(width=32 if ty == "FLOAT" else 64))
    if ty == "BOOLEAN":
        return st.booleans()
    if ty == "STRING":
        text = st.one_of(st.sampled_from(["a", "b c", "#41", "ä"]), st.text(max_size=12))
        return st.one_of(st.just(""), text)
    return st.one_of(st.sampled_from([b"", b"\x00", b"ab"]), st.binary(max_size=8))


names = st.one_of(
    st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True),
    st.text(min_size=1, max_size=6),
)
"""Property names: mostly plain, sometimes any text (quotes, control characters, emoji)."""

device_ids = st.one_of(
    st.from_regex(r"[a-z0-9-]{1,8}/[a-z0-9-]{1,8}", fullmatch=True),
    st.from_regex(r"[a-z0-9-]{1,8}", fullmatch=True),
)
"""Device ids: ``<namespace>/<name>``, or a bare name (namespace ``default``)."""


@st.composite
def policies(draw: st.DrawFn, ty: str) -> dict[str, Any]:
    """The change-policy keys of a property spec for type ``ty``."""
    out: dict[str, Any] = {}
    if ty in ref.NUMERIC:
        kind = draw(st.sampled_from(["exact", "absolute", "relative"]))
        if kind == "absolute":
            out["deadband"] = draw(
                st.one_of(st.sampled_from([0.0, 0.5, 1.0, 10.0]), st.floats(0, 1e6))
            )
        elif kind == "relative":
            out["deadband_relative"] = draw(st.sampled_from([0.0, 0.01, 0.1, 1.0]))
        out["reduce"] = draw(st.sampled_from(ref.REDUCES))
    heartbeat = draw(st.sampled_from([None, 0, 1, 5, 100]))
    if heartbeat is not None:
        out["heartbeat_ms"] = heartbeat
    capacity = draw(st.sampled_from([None, 0, 1, 2, 3, 5]))
    if capacity is not None:
        out["queue_capacity"] = capacity
    return out


@st.composite
def property_specs(
    draw: st.DrawFn, *, min_size: int = 1, max_size: int = 6, types: tuple[str, ...] = ref.TYPES
) -> list[PropertySpec]:
    """Specs of a device's properties (no visitors), unique names, random types and policies."""
    chosen = draw(st.lists(names, min_size=min_size, max_size=max_size, unique=True))
    specs: list[PropertySpec] = []
    for name in chosen:
        ty = draw(st.sampled_from(types))
        spec: dict[str, Any] = {"name": name, "type": ty, **draw(policies(ty))}
        specs.append(spec)  # type: ignore[arg-type]  # keys are PropertySpec's
    return specs


def type_of(specs: list[PropertySpec], name: str) -> str:
    """The type of the property ``name``."""
    return next(s["type"] for s in specs if s["name"] == name)


clock_steps = st.sampled_from([0, 1, 2, 5, 100, 1000])
"""How far time moves between two reads (heartbeats of 1, 5 and 100 ms fall due or not)."""


@st.composite
def reported_batches(
    draw: st.DrawFn, specs: list[PropertySpec], start_ts: int, *, raw_text: bool = False
) -> list[tuple[str, str, int]]:
    """A mapper's report: ``(property, canonical text, read time)``.

    With ``raw_text`` some texts are arbitrary (they may not parse).
    """
    chosen = draw(st.lists(st.sampled_from([s["name"] for s in specs]), max_size=6))
    ts = start_ts
    batch = []
    for name in chosen:
        ty = type_of(specs, name)
        text = ref.canonical(ty, draw(values(ty)))
        if raw_text and draw(st.integers(0, 9)) == 0:
            text = draw(st.text(max_size=6))
        ts += draw(clock_steps)
        batch.append((name, text, ts))
    return batch


def same_outcome(
    engine_call: Callable[[], T], reference_call: Callable[[], U]
) -> tuple[T, U] | None:
    """Runs both calls and returns both results, or None when both raised alike.

    When the reference raises, the engine must raise the same class with the same device,
    property and path.
    """
    try:
        want = reference_call()
    except TwinplaneError as e:
        expected = e
    else:
        return engine_call(), want
    with pytest.raises(type(expected)) as info:
        engine_call()
    got = info.value
    assert (got.device, got.property, got.path) == (
        expected.device,
        expected.property,
        expected.path,
    ), got
    return None


def assert_same_changes(got: Changes, want: ref.ReferenceChanges) -> None:
    """The engine's batch equals the reference's: every change, the deltas, the devices."""
    assert got.to_list() == want.to_list()
    assert got.deltas() == want.deltas()
    assert got.devices() == want.devices()
    assert (len(got), bool(got)) == (len(want), bool(want))


def snapshot(engine: EngineLike) -> dict[str, Any]:
    """Everything observable about an engine's state: devices, twins and counters."""
    return {
        "devices": engine.device_ids(),
        "twins": {d: engine.twins(d) for d in engine.device_ids()},
        "stats": engine.stats(),
    }


def both(specs: list[PropertySpec], device: str = "ns/dev") -> tuple[Engine, ref.ReferenceEngine]:
    """An engine and a reference engine with one device of these properties."""
    engine, model = Engine(), ref.ReferenceEngine()
    assert engine.upsert_device(device, specs) == model.upsert_device(device, specs)
    return engine, model


def ordered(value: Any) -> Any:  # noqa: ANN401 - any JSON value
    """A JSON value with every object turned into its list of (key, value) pairs.

    Comparing two such values also compares the key order.
    """
    if isinstance(value, dict):
        return [(k, ordered(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [ordered(v) for v in value]
    return value


def change_sets(
    data: st.DataObject, *, steps: int = 6
) -> list[tuple[Changes, ref.ReferenceChanges]]:
    """Batches of changes of a random run over a few devices, from engine and reference.

    The run reports ingested samples (several devices at once), applies mapper reports, and
    makes edge updates and cloud syncs of desired values (some of them removals).
    """
    engine, model = Engine(), ref.ReferenceEngine()
    fleet = data.draw(st.lists(device_ids, min_size=1, max_size=3, unique=True), label="devices")
    specs = {}
    for device in fleet:
        specs[device] = data.draw(property_specs(max_size=4), label=f"specs of {device}")
        assert engine.upsert_device(device, specs[device]) == model.upsert_device(
            device, specs[device]
        )
    out: list[tuple[Changes, ref.ReferenceChanges]] = []
    ts = 1_700_000_000_000
    for _ in range(data.draw(st.integers(1, steps), label="steps")):
        ts += data.draw(clock_steps)
        device = data.draw(st.sampled_from(fleet))
        props = specs[device]
        step = data.draw(st.sampled_from(["ingest", "report", "set", "sync"]))
        if step == "ingest":
            for d in fleet:
                index = data.draw(st.integers(0, len(specs[d]) - 1))
                value = data.draw(values(specs[d][index]["type"]))
                engine.ingest_values(engine.device_index(d), [(index, value)], ts)
                model.ingest_values(model.device_index(d), [(index, value)], ts)
            out.append((engine.report(), model.report()))
        elif step == "report":
            batch = data.draw(reported_batches(props, ts))
            out.append((engine.apply_reported(device, batch), model.apply_reported(device, batch)))
        elif step == "set":
            name = data.draw(st.sampled_from([s["name"] for s in props]))
            desired = data.draw(st.one_of(st.none(), values(type_of(props, name))))
            out.append(
                (
                    engine.set_desired(device, {name: desired}, ts),
                    model.set_desired(device, {name: desired}, ts),
                )
            )
        else:
            name = data.draw(st.sampled_from([s["name"] for s in props]))
            ty = type_of(props, name)
            twin = model.twins(device)[name]
            version = twin["desired_version"]
            text = data.draw(st.one_of(st.none(), values(ty).map(partial(ref.canonical, ty))))
            synced: dict[str, tuple[str | None, int, int]] = {
                name: (
                    text,
                    version["cloud"] + 1,
                    version["edge"],
                )
            }
            out.append(
                (engine.sync_desired(device, synced, ts), model.sync_desired(device, synced, ts))
            )
    return out


DesiredUpdate = dict[str, str | int | float | bool | bytes | None]
"""What set_desired takes: property -> value (None removes it)."""
