"""PostgreSQL / TimescaleDB: one narrow table, one binary ``COPY`` per batch (asyncpg).

The table (``PostgresSinkConfig.table``, default ``twinplane_samples``) is created if missing::

    CREATE TABLE IF NOT EXISTS twinplane_samples (
        ts timestamptz NOT NULL, namespace text, device text, property text,
        value double precision, value_text text)

and, only when the ``timescaledb`` extension is installed in the database, made a hypertable on
``ts`` (``create_hypertable(..., if_not_exists => TRUE)``). Numbers go to ``value`` (booleans as
1/0); strings and bytes (lower-case hex) go to ``value_text``, and so do integers a double cannot
hold exactly. A batch is one ``copy_records_to_table`` (binary COPY, all or nothing). After any
failure the connection is dropped; the next attempt reconnects and checks the table again, so a
table dropped under a running mapper comes back. Bad credentials, missing privileges and values
the server refuses are permanent (not retried).
"""

from __future__ import annotations

import contextlib
import logging
import os
from datetime import UTC, datetime

import asyncpg
import pyarrow as pa

from twinplane.mapper.sinks.base import PermanentSinkError
from twinplane.mapper.sinks.config import PostgresSinkConfig
from twinplane.mapper.sinks.rows import Sample, samples

__all__ = ["COLUMNS", "PostgresSink", "record"]

log = logging.getLogger(__name__)

COLUMNS = ("ts", "namespace", "device", "property", "value", "value_text")
"""The table's columns, in COPY order."""

_EXACT = 1 << 53
_TIMEOUT_S = 30.0
_PERMANENT = (
    asyncpg.InvalidAuthorizationSpecificationError,  # SQLSTATE 28: bad user or password
    asyncpg.InsufficientPrivilegeError,
    asyncpg.DataError,  # SQLSTATE 22: a value the server refuses
)

Record = tuple[datetime, str, str, str, float | None, str | None]


def record(s: Sample) -> Record:
    """The table row of a sample."""
    ts = datetime.fromtimestamp(s.timestamp_ms / 1000, UTC)
    value: float | None = None
    text: str | None = None
    if isinstance(s.value, bool | float):
        value = float(s.value)
    elif isinstance(s.value, int):
        value = float(s.value)
        if abs(s.value) > _EXACT:
            text = s.text
    else:
        text = s.text
    return (ts, s.namespace, s.name, s.property, value, text)


class PostgresSink:
    """Writes batches to one table of one PostgreSQL database (see the module docstring)."""

    def __init__(self, config: PostgresSinkConfig) -> None:
        self.config = config
        self._conn: asyncpg.Connection | None = None

    async def write(self, batch: pa.RecordBatch) -> None:
        """COPYs every sample of ``batch`` into the table in one statement."""
        records = [record(s) for s in samples(batch)]
        try:
            conn = await self._connect()
            await conn.copy_records_to_table(
                self.config.table, records=records, columns=COLUMNS, timeout=_TIMEOUT_S
            )
        except _PERMANENT as err:
            await self._drop()
            raise PermanentSinkError(f"postgres {self.config.table}: {err}") from err
        except BaseException:
            await self._drop()
            raise

    async def close(self) -> None:
        """Closes the connection."""
        await self._drop()

    async def _connect(self) -> asyncpg.Connection:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        conn = await asyncpg.connect(
            self.config.dsn, password=os.environ.get("PASSWORD") or None, timeout=10
        )
        try:
            await self._create_table(conn)
        except BaseException:
            await conn.close(timeout=5)
            raise
        self._conn = conn
        return conn

    async def _create_table(self, conn: asyncpg.Connection) -> None:
        table = self.config.table  # a checked plain identifier (config.py)
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{table}" ('
            "ts timestamptz NOT NULL, namespace text, device text, property text,"
            " value double precision, value_text text)"
        )
        timescale = await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
        if timescale:
            await conn.execute(
                "SELECT create_hypertable($1::regclass, 'ts', if_not_exists => TRUE)",
                f'"{table}"',
            )
            log.info("postgres: %s is a TimescaleDB hypertable", table)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # the connection is being discarded anyway
                await conn.close(timeout=5)
