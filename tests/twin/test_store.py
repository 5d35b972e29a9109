"""The twin store on the reported side: change detection, heartbeats, devices at run time."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
from twinplane.twin import Engine, PropertySpec

from .engine_strategies import (
    assert_same_changes,
    both,
    device_ids,
    property_specs,
    reported_batches,
    same_outcome,
    snapshot,
)

pytestmark = pytest.mark.engine


@given(property_specs(), device_ids, st.data())
def test_reported_batches_match_reference(
    specs: list[PropertySpec], device: str, data: st.DataObject
) -> None:
    """Random reports through random policies give the reference's changes and twins."""
    engine, model = both(specs, device)
    ts = 0
    for _ in range(data.draw(st.integers(1, 6), label="batches")):
        batch = data.draw(reported_batches(specs, ts, raw_text=True))
        ts = max([ts, *(t for _, _, t in batch)])
        outcome = same_outcome(
            lambda b=batch: engine.apply_reported(device, b),  # type: ignore[misc]
            lambda b=batch: model.apply_reported(device, b),  # type: ignore[misc]
        )
        if outcome is not None:
            assert_same_changes(*outcome)
        assert snapshot(engine) == snapshot(model)


@pytest.mark.parametrize(
    ("policy", "values", "emitted"),
    [
        ({}, ["1", "1", "2", "2", "1"], ["1", "2", "1"]),
        ({"deadband": 0.5}, ["1", "1.5", "1.6", "2.2", "1.9"], ["1", "1.6", "2.2"]),
        ({"deadband_relative": 0.1}, ["100", "110", "111", "100", "99"], ["100", "111", "99"]),
        ({"heartbeat_ms": 10}, ["1", "1", "1", "1", "1"], ["1", "1", "1"]),
        ({}, ["NaN", "NaN", "inf", "NaN"], ["NaN", "inf", "NaN"]),
        ({"deadband": 1.0}, ["0", "NaN", "NaN", "5"], ["0", "NaN", "5"]),
    ],
)
def test_change_policy_examples(
    policy: dict[str, float], values: list[str], emitted: list[str]
) -> None:
    """Exact change, absolute and relative deadbands and the heartbeat, on reads 5 ms apart."""
    specs: list[PropertySpec] = [{"name": "x", "type": "DOUBLE", **policy}]  # type: ignore[typeddict-item]
    engine, model = both(specs)
    got, want = [], []
    for i, text in enumerate(values):
        got += [c["value"] for c in engine.apply_reported("ns/dev", [("x", text, 5 * i)]).to_list()]
        want += [c["value"] for c in model.apply_reported("ns/dev", [("x", text, 5 * i)]).to_list()]
    assert got == want == [ref.canonical("DOUBLE", float(v)) for v in emitted]


def test_each_reported_change_bumps_the_edge_version() -> None:
    """A reported change bumps the reported edge version by one; no change, no bump."""
    engine, _ = both([{"name": "x", "type": "INT"}])
    for value, edge in [("1", 1), ("1", 1), ("2", 2), ("3", 3), ("3", 3)]:
        engine.apply_reported("ns/dev", [("x", value, 0)])
        assert engine.twins("ns/dev")["x"]["reported_version"] == {"cloud": 0, "edge": edge}


@st.composite
def fleet_operations(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """A run of device additions, reconfigurations, removals and reports over a few ids."""
    ids = ["a/one", "a/two", "b/three", "four"]
    ops: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(1, 12))):
        op = draw(st.sampled_from(["upsert", "upsert", "remove", "report"]))
        device = draw(st.sampled_from(ids))
        if op == "upsert":
            ops.append((op, (device, draw(property_specs(max_size=3, types=("INT", "STRING"))))))
        elif op == "remove":
            ops.append((op, device))
        else:
            ops.append((op, (device, draw(st.integers(0, 3)), draw(st.integers(-2, 2)))))
    return ops


@given(fleet_operations())
def test_devices_added_changed_and_removed_at_run_time(ops: list[tuple[str, Any]]) -> None:
    """Devices come and go at run time as in the reference (slots, shapes, kept twins)."""
    engine, model = Engine(), ref.ReferenceEngine()
    for op, arg in ops:
        if op == "upsert":
            device, specs = arg
            assert engine.upsert_device(device, specs) == model.upsert_device(device, specs)
        elif op == "remove":
            same_outcome(partial(engine.remove_device, arg), partial(model.remove_device, arg))
        else:
            device, index, value = arg
            outcome = same_outcome(
                partial(engine.properties, device), partial(model.properties, device)
            )
            if outcome is None or not outcome[1]:
                continue
            name, ty = outcome[1][index % len(outcome[1])]
            batch = [(name, str(value) if ty == "INT" else f"v{value}", value)]
            assert_same_changes(
                engine.apply_reported(device, batch), model.apply_reported(device, batch)
            )
        assert snapshot(engine) == snapshot(model)
        assert len(engine) == len(model)
        for device in engine.device_ids():
            assert engine.device_index(device) == model.device_index(device)
            assert engine.properties(device) == model.properties(device)


def test_reconfiguring_keeps_twins_of_unchanged_properties() -> None:
    """A device reconfigured with a property of another type loses that twin only."""
    engine, model = both([{"name": "a", "type": "INT"}, {"name": "b", "type": "INT"}])
    for e in (engine, model):
        e.apply_reported("ns/dev", [("a", "1", 1), ("b", "2", 1)])
        e.upsert_device("ns/dev", [{"name": "b", "type": "STRING"}, {"name": "a", "type": "INT"}])
    assert engine.twins("ns/dev") == model.twins("ns/dev")
    assert engine.twins("ns/dev")["a"]["reported"] == {"value": "1", "timestamp": 1}
    assert engine.twins("ns/dev")["b"]["reported"] is None


def test_devices_of_one_shape_share_a_layout() -> None:
    """A fleet of one model shares one compiled layout; removing the last user frees it."""
    engine = Engine()
    specs: list[PropertySpec] = [{"name": "t", "type": "DOUBLE", "deadband": 0.5}]
    for i in range(10):
        engine.upsert_device(f"ns/d{i}", specs)
    engine.upsert_device("ns/other", [{"name": "t", "type": "INT"}])
    assert engine.stats()["layouts"] == 2
    engine.remove_device("ns/other")
    assert engine.stats() == {
        "devices": 10,
        "properties": 10,
        "layouts": 1,
        "queued": 0,
        "dropped": 0,
    }
