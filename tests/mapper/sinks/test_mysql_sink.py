"""The MySQL sink against a real MariaDB: KubeEdge's table per property, one commit per batch."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import aiomysql
import pymysql
import pytest
from sinks_helpers import changes, find_binary, free_port, stop, wait_port

from twinplane.dmi.v1beta1 import api_pb2
from twinplane.mapper.sinks import RunnerSettings, SinkRunner
from twinplane.mapper.sinks.config import MysqlSinkConfig, sink_configs
from twinplane.mapper.sinks.mysql import MysqlSink
from waits import until

FAST = RunnerSettings(max_rows=100, interval_s=0.02, backoff_s=0.05, max_backoff_s=0.2)
T0 = 1_700_000_000_000


@pytest.fixture(scope="module")
def mariadb_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A MariaDB on a free loopback port, data in a temporary folder; yields the port.

    The database ``twinplane`` exists; user ``tw`` (password ``pw``) may use it; ``root`` has no
    password.
    """
    install = find_binary(
        "mariadb-install-db", "/usr/bin/mariadb-install-db", package="mariadb-server"
    )
    server = find_binary("mariadbd", "/usr/sbin/mariadbd", package="mariadb-server")
    work = tmp_path_factory.mktemp("mariadb")
    data, sock, log = work / "data", work / "sock", work / "mariadb.log"
    as_root = ["--user=root"] if os.geteuid() == 0 else []  # mariadbd refuses root without it
    with log.open("wb") as out:
        done = subprocess.run(  # noqa: S603
            [
                install,
                "--no-defaults",
                f"--datadir={data}",
                "--skip-test-db",
                *as_root,
                "--auth-root-authentication-method=normal",
            ],
            check=False,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    assert done.returncode == 0, log.read_text()
    port = free_port()
    args = [server, "--no-defaults", f"--datadir={data}", f"--socket={sock}", f"--port={port}"]
    args += ["--bind-address=127.0.0.1", f"--pid-file={work / 'pid'}", *as_root]
    args += ["--innodb-buffer-pool-size=16M", "--skip-name-resolve"]
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        wait_port(proc, port, log)
        root = pymysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True)
        with root, root.cursor() as cur:
            cur.execute("CREATE DATABASE twinplane")
            cur.execute("CREATE USER 'tw'@'%' IDENTIFIED BY 'pw'")
            cur.execute("GRANT ALL ON twinplane.* TO 'tw'@'%'")
        yield port
    finally:
        stop(proc)


@pytest.fixture
async def db(mariadb_port: int) -> AsyncIterator[aiomysql.Cursor]:
    """A cursor on the emptied ``twinplane`` database (autocommit)."""
    conn = await aiomysql.connect(
        host="127.0.0.1", port=mariadb_port, user="root", db="twinplane", autocommit=True
    )
    cur = await conn.cursor()
    await cur.execute("SHOW TABLES")
    for (table,) in await cur.fetchall():
        await cur.execute(f"DROP TABLE `{table}`")
    try:
        yield cur
    finally:
        await cur.close()
        conn.close()


@pytest.fixture
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    """``$PASSWORD`` is the password of user ``tw``, as mapper-framework reads it."""
    monkeypatch.setenv("PASSWORD", "pw")


def _config(port: int, user: str, database: str = "twinplane") -> MysqlSinkConfig:
    return MysqlSinkConfig(f"127.0.0.1:{port}", database, user)


async def _rows(db: aiomysql.Cursor, table: str) -> list[tuple[Any, ...]]:
    await db.execute(f"SELECT id, ts, field FROM `{table}` ORDER BY id")  # noqa: S608
    return list(await db.fetchall())


@pytest.mark.usefixtures("password")
async def test_table_per_property_of_kubeedge(mariadb_port: int, db: aiomysql.Cursor) -> None:
    """Each property gets `ns/device/property` (id, ts, field); each sample one row."""
    runner = SinkRunner("m", MysqlSink(_config(mariadb_port, "tw")), FAST)
    runner.start()
    runner.offer(changes([("default/d1", "temp", 21.5), ("ns2/d2", "label", "a'b `c`")]))
    runner.offer(changes([("default/d1", "temp", 22.0)], ts_ms=T0 + 1000))
    await until(lambda: runner.stats()["written"] == 3, "three samples")
    await runner.close()
    await db.execute("SHOW TABLES")
    assert sorted(t for (t,) in await db.fetchall()) == ["default/d1/temp", "ns2/d2/label"]
    t0 = datetime.fromtimestamp(T0 / 1000)  # mapper-framework's local time
    t1 = datetime.fromtimestamp(T0 / 1000 + 1)
    assert await _rows(db, "default/d1/temp") == [(1, t0, "21.5"), (2, t1, "22")]
    assert await _rows(db, "ns2/d2/label") == [(1, t0, "a'b `c`")]
    await db.execute("SHOW CREATE TABLE `default/d1/temp`")
    (_, create) = await db.fetchone()
    assert "`id` int(11) NOT NULL AUTO_INCREMENT" in create
    assert "`ts` datetime NOT NULL" in create
    assert "`field` text" in create
    assert "PRIMARY KEY (`id`)" in create


async def test_dropped_table_comes_back_on_retry(mariadb_port: int, db: aiomysql.Cursor) -> None:
    """A failed insert drops the connection; the retry creates the table again."""
    runner = SinkRunner("m", MysqlSink(_config(mariadb_port, "root")), FAST)
    runner.start()
    runner.offer(changes([("default/d1", "count", 1)]))
    await until(lambda: runner.stats()["written"] == 1, "the first sample")
    await db.execute("DROP TABLE `default/d1/count`")
    runner.offer(changes([("default/d1", "count", 2)], ts_ms=T0 + 1000))
    await until(lambda: runner.stats()["written"] == 2, "the second sample")
    await runner.close()
    assert runner.stats()["retries"] >= 1
    assert [r[2] for r in await _rows(db, "default/d1/count")] == ["2"]


async def test_too_long_table_name_is_skipped(mariadb_port: int, db: aiomysql.Cursor) -> None:
    """A property whose table name exceeds 64 characters is skipped; the others are written."""
    sink = MysqlSink(_config(mariadb_port, "root"))
    await sink.write(changes([(f"default/{'x' * 60}", "temp", 1.0), ("default/d1", "temp", 2.0)]))
    await sink.close()
    await db.execute("SHOW TABLES")
    assert [t for (t,) in await db.fetchall()] == ["default/d1/temp"]


@pytest.mark.parametrize(
    ("user", "database"), [("tw", "twinplane"), ("root", "missing")], ids=["password", "database"]
)
async def test_wrong_password_or_database_is_permanent(
    mariadb_port: int, user: str, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Access denied or an unknown database fails the batch at once, without retries."""
    monkeypatch.setenv("PASSWORD", "wrong" if user == "tw" else "")
    sink = MysqlSink(_config(mariadb_port, user, database))
    runner = SinkRunner("m", sink, FAST)
    runner.start()
    runner.offer(changes([("default/d1", "temp", 1.0)]))
    await until(lambda: runner.stats()["failed"] == 1, "the give-up")
    await runner.close()
    assert runner.stats()["retries"] == 0


async def test_unreachable_server_is_counted_as_failed() -> None:
    """No server: retried, then counted as failed."""
    runner = SinkRunner("m", MysqlSink(MysqlSinkConfig(f"127.0.0.1:{free_port()}")), FAST)
    runner.start()
    runner.offer(changes([("default/d1", "temp", 1.0)]))
    await until(lambda: runner.stats()["failed"] == 1, "the give-up")
    await runner.close()


def test_dbmethod_mysql_becomes_a_sink_config() -> None:
    """`dbMethod.mysql.mysqlClientConfig` gives addr, database and user."""
    prop = api_pb2.DeviceProperty(name="temp")
    prop.pushMethod.dbMethod.mysql.mysqlClientConfig.addr = "db:3307"
    prop.pushMethod.dbMethod.mysql.mysqlClientConfig.database = "iot"
    prop.pushMethod.dbMethod.mysql.mysqlClientConfig.userName = "tw"
    assert sink_configs(prop) == [MysqlSinkConfig("db:3307", "iot", "tw")]
