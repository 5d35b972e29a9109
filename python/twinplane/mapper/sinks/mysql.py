"""MySQL / MariaDB (``dbMethod.mysql``) in mapper-framework's layout, one transaction per batch.

As in KubeEdge (spec §7.7) each property has its own table, named ``<ns>/<device>/<property>``
and created if missing::

    CREATE TABLE IF NOT EXISTS `default/d1/temp` (
        id INT AUTO_INCREMENT PRIMARY KEY, ts DATETIME NOT NULL, field TEXT)

with one row per sample: ``ts`` the sample time in the mapper's local time zone at second
resolution (``YYYY-MM-DD HH:MM:SS``, as mapper-framework formats it), ``field`` the value as
text. The server is ``addr`` (``host:port``), ``database`` and ``userName`` from
``mysqlClientConfig``, the password from the environment variable ``PASSWORD``.

A batch creates the tables it has not seen yet (DDL commits on its own in MySQL), then inserts
each table's rows with one ``executemany`` (PyMySQL turns it into one multi-row ``INSERT``) and
commits once: the batch is stored whole or not at all. After a failure the connection is dropped
and the table cache forgotten, so the retry starts afresh. Access denied, an unknown database and
a refused command are permanent. A table name longer than MySQL's 64 characters cannot exist;
such a property's samples are skipped, with one warning per property.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import defaultdict

import aiomysql
import pyarrow as pa
import pymysql

from twinplane.mapper.sinks.base import PermanentSinkError
from twinplane.mapper.sinks.config import MysqlSinkConfig
from twinplane.mapper.sinks.rows import samples

__all__ = ["MysqlSink", "mysql_time", "table_name"]

log = logging.getLogger(__name__)

_MAX_NAME = 64
_PERMANENT_CODES = frozenset(
    {
        1044,  # ER_DBACCESS_DENIED_ERROR
        1045,  # ER_ACCESS_DENIED_ERROR
        1049,  # ER_BAD_DB_ERROR: unknown database (mapper-framework does not create it)
        1142,  # ER_TABLEACCESS_DENIED_ERROR
    }
)


def table_name(namespace: str, name: str, prop: str) -> str:
    """mapper-framework's table of a property: ``<ns>/<device>/<property>``."""
    return f"{namespace}/{name}/{prop}"


def mysql_time(timestamp_ms: int) -> str:
    """mapper-framework's ``ts``: local time, second resolution."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp_ms / 1000))


def _quote(table: str) -> str:
    return "`" + table.replace("`", "``") + "`"


class MysqlSink:
    """Writes batches to one MySQL/MariaDB database (see the module docstring)."""

    def __init__(self, config: MysqlSinkConfig) -> None:
        self.config = config
        host, _, port = config.addr.rpartition(":")
        self._host = host or config.addr
        self._port = int(port) if host and port else 3306
        self._conn: aiomysql.Connection | None = None
        self._tables: set[str] = set()
        self._too_long: set[str] = set()

    async def write(self, batch: pa.RecordBatch) -> None:
        """Inserts every sample of ``batch`` in one transaction."""
        rows: defaultdict[str, list[tuple[str, str]]] = defaultdict(list)
        for s in samples(batch):
            table = table_name(s.namespace, s.name, s.property)
            if len(table) > _MAX_NAME:
                if table not in self._too_long:
                    self._too_long.add(table)
                    log.warning("mysql: table name %r is over 64 characters; skipped", table)
                continue
            rows[table].append((mysql_time(s.timestamp_ms), s.text))
        if not rows:
            return
        try:
            await self._insert(rows)
        except pymysql.err.MySQLError as err:
            await self._drop()
            code = err.args[0] if err.args and isinstance(err.args[0], int) else 0
            if code in _PERMANENT_CODES:
                raise PermanentSinkError(f"mysql {self.config.addr}: {err}") from err
            raise
        except BaseException:
            await self._drop()
            raise

    async def _insert(self, rows: dict[str, list[tuple[str, str]]]) -> None:
        conn = await self._connect()
        async with conn.cursor() as cur:
            for table in rows:
                if table not in self._tables:
                    await cur.execute(
                        f"CREATE TABLE IF NOT EXISTS {_quote(table)} ("
                        "id INT AUTO_INCREMENT PRIMARY KEY, ts DATETIME NOT NULL, field TEXT)"
                    )
                    self._tables.add(table)
            await conn.begin()
            for table, values in rows.items():
                await cur.executemany(
                    f"INSERT INTO {_quote(table)} (ts, field) VALUES (%s, %s)",  # noqa: S608 - quoted identifier
                    values,
                )
        await conn.commit()

    async def close(self) -> None:
        """Closes the connection."""
        await self._drop()

    async def _connect(self) -> aiomysql.Connection:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        self._conn = await aiomysql.connect(
            host=self._host,
            port=self._port,
            user=self.config.user or None,
            password=os.environ.get("PASSWORD", ""),
            db=self.config.database or None,
            charset="utf8mb4",
            autocommit=False,
            connect_timeout=10,
        )
        return self._conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._tables.clear()
        if conn is not None:
            with contextlib.suppress(Exception):  # the connection is being discarded anyway
                conn.close()
