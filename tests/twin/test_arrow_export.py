"""Arrow export of changes through the PyCapsule interface (``pyarrow.record_batch``)."""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
from twinplane.twin import Changes

from .engine_strategies import both, change_sets

pytestmark = pytest.mark.engine

SCHEMA = pa.schema(
    [
        pa.field("device", pa.string(), nullable=False),
        pa.field("property", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("ms", tz="UTC")),
        pa.field("type", pa.string(), nullable=False),
        pa.field("value", pa.string()),
        pa.field("value_int", pa.int64()),
        pa.field("value_float", pa.float64()),
        pa.field("value_bool", pa.bool_()),
        pa.field("value_string", pa.string()),
        pa.field("value_bytes", pa.binary()),
        pa.field("version", pa.uint64(), nullable=False),
    ]
)
"""The columns of the export: names, types and nullability."""


def comparable(column: str, values: list[Any]) -> list[Any]:
    """Column values made comparable: NaN as a marker (NaN != NaN), floats with their sign."""
    if column != "value_float":
        return values
    return [v if v is None or not math.isnan(v) else "NaN" for v in values] + [
        math.copysign(1.0, v) for v in values if v is not None and not math.isnan(v)
    ]


def assert_same_batch(got: Changes, want: ref.ReferenceChanges) -> None:
    """The record batch has the export's schema and the reference's rows."""
    batch = pa.record_batch(got)
    assert batch.schema == SCHEMA
    rows = want.arrow_rows()
    assert batch.num_rows == len(rows) == len(got)
    for column in SCHEMA.names:
        array = batch.column(column)
        if column == "timestamp":
            array = array.cast(pa.int64())
        assert comparable(column, array.to_pylist()) == comparable(
            column, [row[column] for row in rows]
        ), column


@given(st.data())
def test_arrow_batches_match_reference(data: st.DataObject) -> None:
    """pyarrow.record_batch(changes) has one row per change with the reference's columns."""
    for got, want in change_sets(data):
        assert_same_batch(got, want)


def test_empty_changes_export_an_empty_batch() -> None:
    """A batch without changes exports zero rows with the full schema."""
    engine, _ = both([{"name": "x", "type": "INT"}])
    batch = pa.record_batch(engine.report())
    assert (batch.num_rows, batch.schema) == (0, SCHEMA)


def test_cleared_desired_value_has_null_value_columns() -> None:
    """A removed desired value is a row with null timestamp and values and its edge version."""
    engine, _ = both([{"name": "x", "type": "DOUBLE"}])
    engine.set_desired("ns/dev", {"x": 1.5}, 10)
    row = pa.record_batch(engine.set_desired("ns/dev", {"x": None}, 20)).to_pylist()[0]
    assert row["kind"] == "desired"
    assert (row["timestamp"], row["value"], row["value_float"]) == (None, None, None)
    assert row["version"] == 2
