"""Local rolling Parquet files, read back with pyarrow."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow.parquet as pq
from sinks_helpers import changes

from twinplane.dmi.v1beta1 import api_pb2
from twinplane.mapper.sinks import DataPlane, RunnerSettings
from twinplane.mapper.sinks.config import ParquetSinkConfig
from twinplane.mapper.sinks.parquet import ParquetSink, finished_files


async def test_rows_read_back_with_their_columns(tmp_path: Path) -> None:
    """Written rows come back from the finished file with the engine's columns and types."""
    sink = ParquetSink(ParquetSinkConfig(str(tmp_path)))
    await sink.write(changes([("default/d1", "temp", 21.5), ("default/d1", "count", 7)]))
    await sink.write(changes([("ns/d2", "label", "x y")]))
    assert finished_files(tmp_path) == []  # still being written
    await sink.close()
    (path,) = finished_files(tmp_path)
    table = pq.read_table(path)
    assert table.num_rows == 3
    rows = {(r["device"], r["property"]): r for r in table.to_pylist()}
    assert rows["default/d1", "temp"]["value_float"] == 21.5
    assert rows["default/d1", "count"]["value_int"] == 7
    assert rows["ns/d2", "label"]["value_string"] == "x y"
    assert str(table.schema.field("timestamp").type) == "timestamp[ms, tz=UTC]"


async def test_files_roll_by_size_and_age_and_are_bounded(tmp_path: Path) -> None:
    """A tiny size bound rolls every write; max_files keeps the newest; age rolls too."""
    sink = ParquetSink(ParquetSinkConfig(str(tmp_path / "s"), max_bytes=1, max_files=2))
    for i in range(4):
        await sink.write(changes([("default/d1", "count", i)]))
    await sink.close()
    files = finished_files(tmp_path / "s")
    assert len(files) == 2
    assert [pq.read_table(f).column("value_int").to_pylist() for f in files] == [[2], [3]]

    aged = ParquetSink(ParquetSinkConfig(str(tmp_path / "a"), max_age_s=0.05))
    await aged.write(changes([("default/d1", "count", 1)]))
    await asyncio.sleep(0.1)
    await aged.write(changes([("default/d1", "count", 2)]))
    await aged.close()
    assert len(finished_files(tmp_path / "a")) == 2


async def test_data_plane_extra_sink_records_every_property(tmp_path: Path) -> None:
    """An extra Parquet sink receives every property of every device, pushMethod or not."""
    config = ParquetSinkConfig(str(tmp_path))
    plane = DataPlane(extra=[config], settings=RunnerSettings(interval_s=0.01))
    device = api_pb2.Device(name="d1", namespace="default")
    for name in ("temp", "count"):
        device.spec.properties.add(name=name)
    plane.add_device(device)
    plane.offer(changes([("default/d1", "temp", 1.0), ("default/d1", "count", 2)]))
    await plane.close()
    (path,) = finished_files(tmp_path)
    assert sorted(pq.read_table(path).column("property").to_pylist()) == ["count", "temp"]
