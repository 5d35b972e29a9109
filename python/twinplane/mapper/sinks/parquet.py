"""Local rolling Parquet files: the engine's change columns, as they are, readable by pyarrow.

Rows are appended as row groups to ``<directory>/samples-<first ms>-<seq>.parquet.part``; the
file is closed and renamed to ``.parquet`` when it reaches ``max_bytes`` or ``max_age_s``, and at
close. Only finished ``.parquet`` files are complete (a Parquet footer is written last); with
``max_files`` set, the oldest finished files beyond it are deleted. File I/O runs in a worker
thread, so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from twinplane.mapper.sinks.config import ParquetSinkConfig

__all__ = ["ParquetSink", "finished_files"]


def finished_files(directory: Path | str) -> list[Path]:
    """The finished files of a directory, oldest first."""
    return sorted(Path(directory).glob("samples-*.parquet"))


class ParquetSink:
    """Appends batches to rolling Parquet files (see the module docstring)."""

    def __init__(self, config: ParquetSinkConfig) -> None:
        self.config = config
        self.directory = Path(config.directory)
        self._writer: pq.ParquetWriter | None = None
        self._path: Path | None = None
        self._opened = 0.0
        self._seq = 0

    async def write(self, batch: pa.RecordBatch) -> None:
        """Appends the batch as one row group, rolling the file when due."""
        await asyncio.to_thread(self._write, batch)

    def _write(self, batch: pa.RecordBatch) -> None:
        if self._writer is not None and self._due():
            self._finish()
        if self._writer is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._seq += 1
            stamp = int(time.time() * 1000)
            self._path = self.directory / f"samples-{stamp:013d}-{self._seq:06d}.parquet.part"
            self._writer = pq.ParquetWriter(self._path, batch.schema, compression="zstd")
            self._opened = time.monotonic()
        self._writer.write_batch(batch)

    def _due(self) -> bool:
        assert self._path is not None  # noqa: S101 - a writer has a path
        too_old = time.monotonic() - self._opened >= self.config.max_age_s
        return too_old or self._path.stat().st_size >= self.config.max_bytes

    def _finish(self) -> None:
        if self._writer is None or self._path is None:
            return
        self._writer.close()
        self._path.rename(self._path.with_suffix(""))
        self._writer = self._path = None
        if self.config.max_files > 0:
            for old in finished_files(self.directory)[: -self.config.max_files]:
                old.unlink(missing_ok=True)

    async def close(self) -> None:
        """Finishes the open file."""
        await asyncio.to_thread(self._finish)
