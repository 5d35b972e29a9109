"""Reading the rows of a change batch for sinks that speak row by row (JSON, SQL, Redis).

Columns of a batch (the engine's changes, ``docs/engine.md``): ``device`` (``<ns>/<name>``),
``property``, ``kind``, ``timestamp`` (ms, UTC), ``type``, ``value`` (canonical text),
``value_int``, ``value_float``, ``value_bool``, ``value_string``, ``value_bytes``, ``version``.
"""

from __future__ import annotations

from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["Sample", "samples"]


class Sample(NamedTuple):
    """One reported value."""

    namespace: str
    name: str
    property: str
    type: str
    timestamp_ms: int
    value: int | float | bool | str | None
    text: str
    """The value as plain text: a string as it is, anything else canonical."""


def samples(batch: pa.RecordBatch) -> list[Sample]:
    """The rows of ``batch`` in order; ``BYTES`` values become lower-case hex text."""
    ts = pc.cast(batch.column("timestamp"), pa.int64()).to_pylist()
    cols = {
        n: batch.column(n).to_pylist()
        for n in ("device", "property", "type", "value", "value_int", "value_float")
    }
    bools = batch.column("value_bool").to_pylist()
    strings = batch.column("value_string").to_pylist()
    out = []
    for i in range(batch.num_rows):
        ns, _, name = cols["device"][i].partition("/")
        text = cols["value"][i] or ""
        value: int | float | bool | str | None
        if cols["value_int"][i] is not None:
            value = cols["value_int"][i]
        elif cols["value_float"][i] is not None:
            value = cols["value_float"][i]
        elif bools[i] is not None:
            value = bools[i]
        elif strings[i] is not None:
            value = text = strings[i]
        else:
            value = text or None
        out.append(Sample(ns, name, cols["property"][i], cols["type"][i], ts[i] or 0, value, text))
    return out
