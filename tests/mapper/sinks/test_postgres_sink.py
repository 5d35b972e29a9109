"""The PostgreSQL sink against a real PostgreSQL: a narrow table, binary COPY per batch."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sinks_helpers import changes, find_binary, free_port, stop, wait_port

from twinplane.mapper.sinks import RunnerSettings, SinkRunner
from twinplane.mapper.sinks.config import PostgresSinkConfig
from twinplane.mapper.sinks.plane import default_factory
from twinplane.mapper.sinks.postgres import PostgresSink
from waits import until

FAST = RunnerSettings(max_rows=100, interval_s=0.02, backoff_s=0.05, max_backoff_s=0.2)


def _pg_binary(name: str) -> str:
    """A PostgreSQL server binary from Debian's layout (``/usr/lib/postgresql/<major>/bin``)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    return find_binary(name, *(str(p) for p in reversed(found)), package="postgresql")


def _as_user(work: Path) -> dict[str, Any]:
    """Popen arguments that drop root (initdb and postgres refuse it) and own ``work``."""
    if os.geteuid() != 0:
        return {}
    try:
        user = pwd.getpwnam("postgres")  # created by Debian's postgresql package
    except KeyError:
        user = pwd.getpwnam("nobody")
    os.chown(work, user.pw_uid, user.pw_gid)
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _wait_ready(proc: subprocess.Popen[bytes], log: Path, within: float = 30.0) -> None:
    """Waits for the server's "ready to accept connections" line.

    The port opens before recovery ends; until then connections are refused with "the
    database system is starting up" (seen on a busy 2-core machine).
    """
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        if "ready to accept connections" in log.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise AssertionError(f"server not ready after {within}s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def postgres_dsn() -> Iterator[str]:
    """A PostgreSQL on a free loopback port, data in a temporary folder; yields its DSN."""
    initdb, postgres = _pg_binary("initdb"), _pg_binary("postgres")
    # Not pytest's tmp_path: its parents are private to root, and the server runs as another user.
    work = Path(tempfile.mkdtemp(prefix="twinplane-pg-"))
    try:
        drop = _as_user(work)
        log = work / "postgres.log"
        data = work / "data"
        init = [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
        with log.open("wb") as out:
            done = subprocess.run(  # noqa: S603
                [*init, "--no-sync"],
                check=False,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=work,
                **drop,
            )
        assert done.returncode == 0, log.read_text()
        port = free_port()
        args = [postgres, "-D", str(data), "-k", str(work), "-p", str(port)]
        args += ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
        with log.open("ab") as out:
            proc = subprocess.Popen(  # noqa: S603
                args, stdout=out, stderr=subprocess.STDOUT, cwd=work, **drop
            )
        try:
            wait_port(proc, port, log)
            _wait_ready(proc, log)
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            proc.send_signal(signal.SIGINT)  # fast shutdown
            stop(proc)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
async def conn(postgres_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a database without sink tables."""
    connection = await asyncpg.connect(postgres_dsn)
    await connection.execute("DROP TABLE IF EXISTS twinplane_samples, other_samples")
    try:
        yield connection
    finally:
        await connection.close()


async def test_narrow_table_is_created_and_filled(
    postgres_dsn: str, conn: asyncpg.Connection
) -> None:
    """The table is created; each sample is one row with its typed value or its text."""
    runner = SinkRunner("pg", PostgresSink(PostgresSinkConfig(postgres_dsn)), FAST)
    runner.start()
    runner.offer(changes([("default/d1", "temp", 21.5), ("ns2/d2", "count", 7)]))
    runner.offer(changes([("default/d1", "label", "a b"), ("default/d1", "on", True)]))
    runner.offer(changes([("default/d1", "count", 2**60)], ts_ms=1_700_000_001_000))
    await until(lambda: runner.stats()["written"] == 5, "five samples")
    await runner.close()
    rows = await conn.fetch(
        "SELECT ts, namespace, device, property, value, value_text FROM twinplane_samples"
        " ORDER BY ts, device, property"
    )
    t0 = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    t1 = datetime(2023, 11, 14, 22, 13, 21, tzinfo=UTC)
    assert [tuple(r) for r in rows] == [
        (t0, "default", "d1", "label", None, "a b"),
        (t0, "default", "d1", "on", 1.0, None),
        (t0, "default", "d1", "temp", 21.5, None),
        (t0, "ns2", "d2", "count", 7.0, None),
        (t1, "default", "d1", "count", float(2**60), str(2**60)),
    ]
    kinds = await conn.fetch(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
        " WHERE table_name = 'twinplane_samples' ORDER BY ordinal_position"
    )
    assert [tuple(k) for k in kinds] == [
        ("ts", "timestamp with time zone", "NO"),
        ("namespace", "text", "YES"),
        ("device", "text", "YES"),
        ("property", "text", "YES"),
        ("value", "double precision", "YES"),
        ("value_text", "text", "YES"),
    ]


async def test_table_name_is_configurable_and_plain(
    postgres_dsn: str, conn: asyncpg.Connection
) -> None:
    """A configured table is used; without TimescaleDB it stays a plain table."""
    sink = default_factory(PostgresSinkConfig(postgres_dsn, table="other_samples"))
    await sink.write(changes([("default/d1", "temp", 1.0)]))
    await sink.close()
    assert await conn.fetchval("SELECT count(*) FROM other_samples") == 1
    assert await conn.fetchval("SELECT to_regclass('twinplane_samples')") is None
    assert not await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")


async def test_dropped_table_comes_back_on_retry(
    postgres_dsn: str, conn: asyncpg.Connection
) -> None:
    """A failed COPY drops the connection; the retry reconnects and recreates the table."""
    runner = SinkRunner("pg", PostgresSink(PostgresSinkConfig(postgres_dsn)), FAST)
    runner.start()
    runner.offer(changes([("default/d1", "temp", 1.0)]))
    await until(lambda: runner.stats()["written"] == 1, "the first sample")
    await conn.execute("DROP TABLE twinplane_samples")
    runner.offer(changes([("default/d1", "temp", 2.0)], ts_ms=1_700_000_001_000))
    await until(lambda: runner.stats()["written"] == 2, "the second sample")
    await runner.close()
    assert runner.stats()["retries"] >= 1
    assert await conn.fetchval("SELECT value FROM twinplane_samples") == 2.0


async def test_unknown_user_is_permanent(postgres_dsn: str) -> None:
    """A role the server does not know fails the batch at once, without retries."""
    dsn = postgres_dsn.replace("postgres@", "nobody_here@")
    runner = SinkRunner("pg", PostgresSink(PostgresSinkConfig(dsn)), FAST)
    runner.start()
    runner.offer(changes([("default/d1", "temp", 1.0)]))
    await until(lambda: runner.stats()["failed"] == 1, "the give-up")
    await runner.close()
    assert runner.stats()["retries"] == 0


async def test_unreachable_server_is_counted_as_failed() -> None:
    """No server: retried, then counted as failed."""
    config = PostgresSinkConfig(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    runner = SinkRunner("pg", PostgresSink(config), FAST)
    runner.start()
    runner.offer(changes([("default/d1", "temp", 1.0)]))
    await until(lambda: runner.stats()["failed"] == 1, "the give-up")
    await runner.close()
    assert runner.stats()["retries"] == FAST.max_attempts - 1


@pytest.mark.parametrize(
    ("dsn", "table"),
    [
        ("postgresql://u:secret@h/db", "t"),
        ("mysql://u@h/db", "t"),
        ("postgresql://u@h/db", 'x"; DROP TABLE y; --'),
    ],
)
def test_config_refuses_passwords_and_odd_names(dsn: str, table: str) -> None:
    """A password in the DSN, another scheme or a non-identifier table name is refused."""
    with pytest.raises(ValueError, match="postgres"):
        PostgresSinkConfig(dsn, table)
