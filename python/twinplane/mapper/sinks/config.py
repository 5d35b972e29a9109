"""Sink configs: one frozen value per destination, read from a property's DMI ``pushMethod``.

Equal configs are one sink: every property that pushes to the same HTTP URL, broker, database or
directory shares one :class:`~twinplane.mapper.sinks.base.SinkRunner`. As in mapper-framework
(spec §7.5) a property uses the first present push method of ``http``, ``mqtt`` and the first
present database of ``influxdb2``, ``redis``, ``tdengine``, ``mysql``; ``otel`` and
``tdengine`` are logged once and ignored. PostgreSQL has no DMI field: it is a mapper-level
sink (``DataPlane(extra=[PostgresSinkConfig(...)])``). Secrets come from the environment as in
mapper-framework (``PASSWORD``, ``TOKEN``), never from a config value.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Literal

from twinplane.dmi.v1beta1 import api_pb2

__all__ = [
    "HttpFormat",
    "HttpSinkConfig",
    "InfluxSinkConfig",
    "MqttSinkConfig",
    "MysqlSinkConfig",
    "ParquetSinkConfig",
    "PostgresSinkConfig",
    "RedisSinkConfig",
    "SinkConfig",
    "http_url",
    "sink_configs",
]

log = logging.getLogger(__name__)

HttpFormat = Literal["json", "form"]
"""``json``: twinplane's batched document; ``form``: KubeEdge's one form POST per sample."""


@dataclass(frozen=True, slots=True)
class HttpSinkConfig:
    """HTTP push: ``POST url``."""

    url: str
    format: HttpFormat = "json"
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class MqttSinkConfig:
    """MQTT push to ``address``; an empty ``topic`` means KubeEdge's data-update topic."""

    address: str
    topic: str = ""
    qos: int = 0
    retained: bool = False


@dataclass(frozen=True, slots=True)
class RedisSinkConfig:
    """Redis ZADD layout (``dbMethod.redis``)."""

    addr: str
    db: int = 0
    pool_size: int = 0


@dataclass(frozen=True, slots=True)
class MysqlSinkConfig:
    """MySQL/MariaDB, one table per property (``dbMethod.mysql``); password from ``$PASSWORD``."""

    addr: str
    database: str = ""
    user: str = ""


_LINE_BREAKS = ("\n", "\r")


@dataclass(frozen=True, slots=True)
class InfluxSinkConfig:
    """InfluxDB v2 line protocol (``dbMethod.influxdb2``); the token from ``$TOKEN``.

    Attributes:
        url: The server, ``http://host:8086`` (``influxdb2ClientConfig.url``).
        org: ``influxdb2ClientConfig.org``.
        bucket: ``influxdb2ClientConfig.bucket``.
        measurement: ``influxdb2DataConfig.measurement``; empty: the device name.
        tags: ``influxdb2DataConfig.tag`` as sorted ``(key, value)`` pairs.
        field_key: ``influxdb2DataConfig.fieldKey``; empty: the property name.
    """

    url: str
    org: str = ""
    bucket: str = ""
    measurement: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    field_key: str = ""

    def __post_init__(self) -> None:
        if not self.url:
            raise ValueError("influxdb2 url is empty")
        names = [self.measurement, self.field_key, *(t for kv in self.tags for t in kv)]
        if any(b in n for n in names for b in _LINE_BREAKS):
            raise ValueError("influxdb2 measurement, tags and fieldKey cannot hold line breaks")
        if any(not k or not v for k, v in self.tags):
            raise ValueError("influxdb2 tag keys and values cannot be empty")

    @property
    def label(self) -> str:
        """The destination for logs and metrics: url, bucket, measurement and field."""
        return f"{self.url}/{self.bucket}/{self.measurement}.{self.field_key}"


@dataclass(frozen=True, slots=True)
class ParquetSinkConfig:
    """Local rolling Parquet files (twinplane's own sink; not in the DMI)."""

    directory: str
    max_bytes: int = 64 << 20
    max_age_s: float = 3600.0
    max_files: int = 0
    """Finished files kept (oldest deleted first); 0 keeps every file."""


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass(frozen=True, slots=True)
class PostgresSinkConfig:
    """PostgreSQL/TimescaleDB narrow table (twinplane's own sink; the DMI has no such field).

    Attributes:
        dsn: ``postgresql://user@host:port/database`` (asyncpg's URI form). It must not hold a
            password: sink names and logs show it. The password comes from ``$PASSWORD`` (as
            mapper-framework's databases) or libpq's ``$PGPASSWORD``.
        table: The table, created if missing; a plain identifier (letters, digits, ``_``).
    """

    dsn: str
    table: str = "twinplane_samples"

    def __post_init__(self) -> None:
        from urllib.parse import urlsplit  # noqa: PLC0415 - only here

        url = urlsplit(self.dsn)
        if url.scheme not in ("postgres", "postgresql"):
            raise ValueError(f"postgres dsn {self.dsn!r}: expected postgresql://user@host/db")
        if url.password is not None:
            raise ValueError("postgres dsn: put the password in $PASSWORD, not in the dsn")
        if not _IDENTIFIER.fullmatch(self.table):
            raise ValueError(f"postgres table {self.table!r}: expected [A-Za-z_][A-Za-z0-9_]*")


SinkConfig = (
    HttpSinkConfig
    | MqttSinkConfig
    | InfluxSinkConfig
    | RedisSinkConfig
    | MysqlSinkConfig
    | ParquetSinkConfig
    | PostgresSinkConfig
)
"""Any sink's config."""

_warned: set[str] = set()


def _warn_once(what: str) -> None:
    if what not in _warned:
        _warned.add(what)
        log.warning("pushMethod %s is not supported by this mapper; ignored", what)


def http_url(http: api_pb2.PushMethodHTTP) -> str:
    """mapper-framework's URL: ``<hostName>:<port><requestPath>`` (``http://`` if no scheme)."""
    host = http.hostname if "://" in http.hostname else f"http://{http.hostname}"
    port = f":{http.port}" if http.port else ""
    path = (
        http.requestpath
        if not http.requestpath or http.requestpath.startswith("/")
        else (f"/{http.requestpath}")
    )
    return f"{host}{port}{path}"


def _push_config(push: api_pb2.PushMethod, http_format: HttpFormat) -> SinkConfig | None:
    if push.HasField("http") and push.http.hostname:
        timeout = push.http.timeout / 1000 if push.http.timeout > 0 else 10.0
        return HttpSinkConfig(http_url(push.http), http_format, timeout)
    if push.HasField("mqtt") and push.mqtt.address:
        m = push.mqtt
        return MqttSinkConfig(m.address, m.topic, max(0, min(2, m.qos)), m.retained)
    if push.HasField("otel"):
        _warn_once("otel")
    return None


def _influx_config(influx: api_pb2.DBMethodInfluxdb2) -> InfluxSinkConfig | None:
    c, d = influx.influxdb2ClientConfig, influx.influxdb2DataConfig
    try:
        return InfluxSinkConfig(
            c.url, c.org, c.bucket, d.measurement, tuple(sorted(d.tag.items())), d.fieldKey
        )
    except ValueError as err:  # a bad property config must not stop its device
        log.warning("dbMethod.influxdb2 ignored: %s", err)
        return None


def _db_config(db: api_pb2.DBMethod) -> SinkConfig | None:
    """mapper-framework's order (spec §7.5): influxdb2, redis, tdengine, mysql; one only."""
    if db.HasField("influxdb2"):
        return _influx_config(db.influxdb2)
    if db.HasField("redis"):
        r = db.redis.redisClientConfig
        return RedisSinkConfig(r.addr or "127.0.0.1:6379", r.db, r.poolsize)
    if db.HasField("tdengine"):
        _warn_once("dbMethod.tdengine")
        return None
    if db.HasField("mysql"):
        m = db.mysql.mysqlClientConfig
        return MysqlSinkConfig(m.addr or "127.0.0.1:3306", m.database, m.userName)
    return None


def sink_configs(
    prop: api_pb2.DeviceProperty, *, http_format: HttpFormat = "json"
) -> list[SinkConfig]:
    """The sinks of one property: at most one push method and one database."""
    if not prop.HasField("pushMethod"):
        return []
    push = prop.pushMethod
    out = [c for c in (_push_config(push, http_format),) if c is not None]
    if push.HasField("dbMethod"):
        db = _db_config(push.dbMethod)
        if db is not None:
            out.append(db)
    return out
