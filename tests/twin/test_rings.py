"""Sampling rings: bounded, drop-oldest and counted; drained at report with an aggregate."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
from twinplane.twin import PropertySpec

from .engine_strategies import assert_same_changes, both, clock_steps, property_specs, values

pytestmark = pytest.mark.engine


@given(property_specs(max_size=4), st.data())
def test_rings_and_aggregates_match_reference(
    specs: list[PropertySpec], data: st.DataObject
) -> None:
    """Rings fill, overflow and drain to the reference's values, queued and dropped counts."""
    engine, model = both(specs)
    dev = engine.device_index("ns/dev")
    ts = 0
    for _ in range(data.draw(st.integers(1, 4), label="report cycles")):
        for _ in range(data.draw(st.integers(0, 8), label="ingest calls")):
            ts += data.draw(clock_steps)
            batch = []
            for index in data.draw(st.lists(st.integers(0, len(specs) - 1), max_size=4)):
                ty = specs[index]["type"]
                value = data.draw(values(ty))
                text = data.draw(st.booleans())
                batch.append(
                    (index, ref.canonical(ty, value) if text and ty != "STRING" else value)
                )
            engine.ingest_values(dev, batch, ts)
            model.ingest_values(dev, batch, ts)
            assert engine.stats() == model.stats()
        assert_same_changes(engine.report(), model.report())
        assert engine.stats() == model.stats()
    assert engine.twins("ns/dev") == model.twins("ns/dev")


@given(st.integers(0, 6), st.integers(0, 20))
def test_a_full_ring_drops_its_oldest_sample(capacity: int, pushes: int) -> None:
    """A full ring drops (and counts) its oldest samples; aggregates see the kept ones."""
    kept = min(pushes, capacity or ref.DEFAULT_QUEUE_CAPACITY)
    for reduce in ref.REDUCES:
        specs: list[PropertySpec] = [
            {"name": "x", "type": "DOUBLE", "reduce": reduce, "queue_capacity": capacity}  # type: ignore[typeddict-item]
        ]
        engine, model = both(specs)
        for i in range(pushes):
            engine.ingest_values(0, [(0, float(i))], i)
            model.ingest_values(0, [(0, float(i))], i)
        assert engine.stats()["dropped"] == model.stats()["dropped"] == pushes - kept
        assert engine.stats()["queued"] == kept
        got, want = engine.report(), model.report()
        assert_same_changes(got, want)
        if kept:
            newest = [float(i) for i in range(pushes - kept, pushes)]
            expected = {
                "last": newest[-1],
                "min": min(newest),
                "max": max(newest),
                "mean": sum(newest) / kept,
                "count": float(kept),
            }[reduce]
            assert got.to_list()[0]["value"] == ref.canonical("DOUBLE", expected)
            assert got.to_list()[0]["timestamp"] == pushes - 1
        assert engine.stats()["queued"] == 0
        assert engine.stats()["dropped"] == pushes - kept  # drops are counted since creation


def test_aggregates_convert_to_the_property_type() -> None:
    """An INT mean truncates toward zero; a FLOAT mean rounds to 32 bits; count is a number."""
    specs: list[PropertySpec] = [
        {"name": "i", "type": "INT", "reduce": "mean", "queue_capacity": 4},
        {"name": "f", "type": "FLOAT", "reduce": "mean", "queue_capacity": 4},
        {"name": "n", "type": "INT", "reduce": "count", "queue_capacity": 4},
    ]
    engine, model = both(specs)
    for e in (engine, model):
        e.ingest_values(0, [(0, -1), (0, -2), (1, 0.1), (1, 0.2), (2, 7), (2, 7), (2, 7)], 5)
    got = engine.report()
    assert_same_changes(got, model.report())
    assert [c["value"] for c in got.to_list()] == ["-1", "0.15", "3"]
