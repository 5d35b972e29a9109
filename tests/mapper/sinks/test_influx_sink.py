"""The InfluxDB v2 sink against a local server speaking the v2 write endpoint's protocol.

InfluxDB 2 is not a Debian package (Debian's ``influxdb`` is 1.6, without ``/api/v2/write``),
so the peer is a minimal aiohttp server implementing what ``POST /api/v2/write`` does: the token
check (401), ``org``/``bucket``/``precision`` parameters, parsing the line-protocol body with its
escaping rules (400 on a malformed line, nothing written), 204 on success, and 429 with
``Retry-After`` on demand. The parser here is written from the line-protocol reference, apart
from the sink's own escaping code.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sinks_helpers import changes

from twinplane.dmi.v1beta1 import api_pb2
from twinplane.mapper.sinks import RunnerSettings, SinkRunner
from twinplane.mapper.sinks.config import InfluxSinkConfig, sink_configs
from twinplane.mapper.sinks.influx import InfluxSink, line
from twinplane.mapper.sinks.plane import sink_name
from twinplane.mapper.sinks.rows import samples
from twinplane.twin import ValueLike
from waits import until

FAST = RunnerSettings(max_rows=100, interval_s=0.02, backoff_s=0.01, max_backoff_s=0.5)
TOKEN = "s3cr3t-token"  # noqa: S105 - the test server's token

FieldValue = float | int | bool | str


@dataclass(frozen=True)
class Point:
    """One parsed line."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    time_ms: int | None


def _scan(text: str, i: int, stops: str, escapable: str) -> tuple[str, int]:
    r"""Reads up to the first unescaped char of ``stops``; ``\\x`` for x in ``escapable``."""
    out = []
    while i < len(text) and text[i] not in stops:
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in escapable:
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out), i


def _value(text: str, i: int) -> tuple[FieldValue, int]:
    if text[i] == '"':
        out, i = [], i + 1
        while i < len(text) and text[i] != '"':
            if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
                i += 1
            out.append(text[i])
            i += 1
        if i >= len(text):
            raise ValueError("unterminated string")
        return "".join(out), i + 1
    raw, i = _scan(text, i, ", ", "")
    if raw in ("t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"):
        return raw[0] in "tT", i
    if raw.endswith("i"):
        return int(raw[:-1]), i
    return float(raw), i  # ValueError when not a number


def parse_line(text: str) -> Point:
    """One line of line protocol; raises ``ValueError`` when malformed."""
    measurement, i = _scan(text, 0, ", ", ", ")
    if not measurement:
        raise ValueError("missing measurement")
    tags: dict[str, str] = {}
    while i < len(text) and text[i] == ",":
        key, i = _scan(text, i + 1, ",= ", ",= ")
        if i >= len(text) or text[i] != "=":
            raise ValueError("missing tag value")
        value, i = _scan(text, i + 1, ", ", ",= ")
        if not key or not value:
            raise ValueError("empty tag key or value")
        tags[key] = value
    if i >= len(text) or text[i] != " ":
        raise ValueError("missing fields")
    fields: dict[str, FieldValue] = {}
    i += 1
    while True:
        key, i = _scan(text, i, "= ,", ",= ")
        if not key or i >= len(text) or text[i] != "=":
            raise ValueError("missing field value")
        fields[key], i = _value(text, i + 1)
        if i >= len(text) or text[i] == " ":
            break
        if text[i] != ",":
            raise ValueError(f"bad field value at {i}")
        i += 1
    if not fields:
        raise ValueError("no fields")
    rest = text[i:].strip()
    return Point(measurement, tags, fields, int(rest) if rest else None)


@dataclass
class InfluxV2:
    """A local ``/api/v2/write`` endpoint storing parsed points per bucket."""

    url: str = ""
    points: list[Point] = field(default_factory=list)
    params: list[dict[str, str]] = field(default_factory=list)
    throttle: list[str] = field(default_factory=list)
    """``Retry-After`` values: each answers one write with 429 first."""

    async def write(self, request: web.Request) -> web.Response:
        """InfluxDB's write handler: auth, parameters, parse all lines, then store them."""
        if request.headers.get("Authorization") != f"Token {TOKEN}":
            return web.json_response(
                {"code": "unauthorized", "message": "unauthorized"}, status=401
            )
        if self.throttle:
            after = self.throttle.pop(0)
            return web.json_response(
                {"code": "too many requests", "message": "slow down"},
                status=429,
                headers={"Retry-After": after},
            )
        query = dict(request.query)
        if not query.get("org") or not query.get("bucket"):
            return web.json_response({"code": "invalid", "message": "org and bucket"}, status=400)
        if query.get("precision", "ns") != "ms":
            return web.json_response({"code": "invalid", "message": "precision"}, status=400)
        text = (await request.read()).decode()
        try:
            points = [parse_line(ln) for ln in text.split("\n") if ln.strip()]
        except ValueError as err:
            return web.json_response({"code": "invalid", "message": str(err)}, status=400)
        self.params.append(query)
        self.points.extend(points)
        return web.Response(status=204)


@pytest.fixture
async def influx() -> AsyncIterator[InfluxV2]:
    """The endpoint on a free loopback port."""
    server = InfluxV2()
    app = web.Application()
    app.router.add_post("/api/v2/write", server.write)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    """``$TOKEN`` set to the server's token."""
    monkeypatch.setenv("TOKEN", TOKEN)


def config(
    url: str, measurement: str = "", tags: tuple[tuple[str, str], ...] = (), field_key: str = ""
) -> InfluxSinkConfig:
    """A config for org ``o``, bucket ``b``."""
    return InfluxSinkConfig(url, "o", "b", measurement, tags, field_key)


def test_line_escapes_names_and_strings() -> None:
    """Measurement: , and space; keys and tag values: , = space; strings: quote, backslash."""
    cfg = InfluxSinkConfig(
        "http://i", measurement="m 1,x=y", tags=(("site a", "b=c,d"),), field_key="f,g h=i"
    )
    (s,) = samples(changes([("default/d1", "label", 'say "hi" \\ ok')]))
    assert line(s, cfg) == (
        r"m\ 1\,x=y,site\ a=b\=c\,d f\,g\ h\=i=" + '"say \\"hi\\" \\\\ ok" 1700000000000'
    )


async def test_points_are_typed_and_stamped(influx: InfluxV2, token: None) -> None:
    """One write per batch: floats, i-suffixed ints, booleans, quoted strings, ms timestamps."""
    cfg = config(influx.url, measurement="env", tags=(("site", "lab"),), field_key="")
    runner = SinkRunner("i", InfluxSink(cfg), FAST)
    runner.start()
    rows: list[tuple[str, str, ValueLike]] = [
        ("default/d1", "temp", 21.5),
        ("default/d1", "count", 7),
        ("default/d1", "on", True),
        ("default/d1", "label", "a b"),
    ]
    runner.offer(changes(rows))
    await until(lambda: runner.stats()["written"] == 4, "four points")
    await runner.close()
    assert influx.params == [{"org": "o", "bucket": "b", "precision": "ms"}]
    fields = {k: v for p in influx.points for k, v in p.fields.items()}
    assert fields == {"temp": 21.5, "count": 7, "on": True, "label": "a b"}
    assert isinstance(fields["count"], int)
    assert isinstance(fields["temp"], float)
    assert {(p.measurement, tuple(p.tags.items()), p.time_ms) for p in influx.points} == {
        ("env", (("site", "lab"),), 1_700_000_000_000)
    }


async def test_escaped_names_round_trip(influx: InfluxV2, token: None) -> None:
    """Names with commas, equals signs, spaces and quotes reach the server as they were."""
    cfg = config(
        influx.url, measurement="my room, 2", tags=(("a b", "c=d,e"),), field_key="t e=m,p"
    )
    sink = InfluxSink(cfg)
    await sink.write(changes([("default/d1", "label", 'he said "x\\y"')], ts_ms=1_700_000_000_123))
    await sink.close()
    assert influx.points == [
        Point("my room, 2", {"a b": "c=d,e"}, {"t e=m,p": 'he said "x\\y"'}, 1_700_000_000_123)
    ]


async def test_empty_measurement_and_field_key_default_to_device_and_property(
    influx: InfluxV2, token: None
) -> None:
    """Without measurement or fieldKey the point is <device> <property>=<value>."""
    sink = InfluxSink(config(influx.url))
    await sink.write(changes([("ns/pump-1", "count", 3)]))
    await sink.close()
    assert influx.points == [Point("pump-1", {}, {"count": 3}, 1_700_000_000_000)]


async def test_non_finite_float_is_skipped(influx: InfluxV2, token: None) -> None:
    """NaN has no line-protocol form: that sample is skipped, the rest written."""
    sink = InfluxSink(config(influx.url))
    await sink.write(changes([("default/d1", "temp", float("nan")), ("default/d1", "count", 1)]))
    await sink.close()
    assert [p.fields for p in influx.points] == [{"count": 1}]


async def test_retry_after_is_honoured(influx: InfluxV2, token: None) -> None:
    """429 with Retry-After: the runner waits at least that long, then the write lands."""
    influx.throttle = ["0.3"]
    runner = SinkRunner("i", InfluxSink(config(influx.url)), FAST)
    runner.start()
    loop = asyncio.get_running_loop()
    start = loop.time()
    runner.offer(changes([("default/d1", "temp", 1.0)]))
    await until(lambda: runner.stats()["written"] == 1, "the write after 429")
    assert loop.time() - start >= 0.3
    assert runner.stats()["retries"] == 1
    await runner.close()


async def test_bad_token_is_permanent(influx: InfluxV2, monkeypatch: pytest.MonkeyPatch) -> None:
    """401 fails the batch at once, without retries."""
    monkeypatch.setenv("TOKEN", "wrong")
    runner = SinkRunner("i", InfluxSink(config(influx.url)), FAST)
    runner.start()
    runner.offer(changes([("default/d1", "temp", 1.0)]))
    await until(lambda: runner.stats()["failed"] == 1, "the refusal")
    assert runner.stats()["retries"] == 0
    assert influx.points == []
    await runner.close()


async def test_server_refuses_malformed_lines(influx: InfluxV2) -> None:
    """The test server itself: an unescaped space in a tag value is a 400 and nothing is kept."""
    headers = {"Authorization": f"Token {TOKEN}"}
    params = {"org": "o", "bucket": "b", "precision": "ms"}
    async with aiohttp.ClientSession() as session:
        for body in ("m,t=a b f=1 1", 'm f="open 1', "m f=x 1", "m,t= f=1"):
            async with session.post(
                f"{influx.url}/api/v2/write", params=params, data=body, headers=headers
            ) as r:
                assert r.status == 400, body
        async with session.post(
            f"{influx.url}/api/v2/write", params=params, data="m f=1i,g=T 5", headers=headers
        ) as r:
            assert r.status == 204
    assert influx.points == [Point("m", {}, {"f": 1, "g": True}, 5)]


def _db(**kw: Any) -> api_pb2.DeviceProperty:  # noqa: ANN401 - DBMethod's fields
    """A property with this dbMethod."""
    return api_pb2.DeviceProperty(
        name="p", pushMethod=api_pb2.PushMethod(dbMethod=api_pb2.DBMethod(**kw))
    )


INFLUX = api_pb2.DBMethodInfluxdb2(
    influxdb2ClientConfig=api_pb2.Influxdb2ClientConfig(url="http://i:8086", org="o", bucket="b"),
    influxdb2DataConfig=api_pb2.Influxdb2DataConfig(
        measurement="m", tag={"z": "1", "a": "2"}, fieldKey="f"
    ),
)


@pytest.mark.parametrize(
    ("db", "kinds"),
    [
        ({"influxdb2": INFLUX, "redis": api_pb2.DBMethodRedis()}, ["InfluxSinkConfig"]),
        ({"redis": api_pb2.DBMethodRedis(), "mysql": api_pb2.DBMethodMySQL()}, ["RedisSinkConfig"]),
        ({"tdengine": api_pb2.DBMethodTDEngine(), "mysql": api_pb2.DBMethodMySQL()}, []),
        ({"mysql": api_pb2.DBMethodMySQL()}, ["MysqlSinkConfig"]),
    ],
)
def test_database_order_is_kubeedges(db: dict[str, Any], kinds: list[str]) -> None:
    """influxdb2, then redis, then tdengine (unsupported: none), then mysql; one only."""
    assert [type(c).__name__ for c in sink_configs(_db(**db))] == kinds


def test_influx_config_from_dmi() -> None:
    """influxdb2ClientConfig and influxdb2DataConfig become one config, tags sorted."""
    (cfg,) = sink_configs(_db(influxdb2=INFLUX))
    assert cfg == InfluxSinkConfig("http://i:8086", "o", "b", "m", (("a", "2"), ("z", "1")), "f")
    assert sink_name(cfg) == "influx:http://i:8086/b/m.f"


def test_influx_config_with_an_empty_tag_value_is_ignored() -> None:
    """A tag without a value cannot be written: the dbMethod is logged and ignored."""
    bad = api_pb2.DBMethodInfluxdb2()
    bad.CopyFrom(INFLUX)
    bad.influxdb2DataConfig.tag["empty"] = ""
    assert sink_configs(_db(influxdb2=bad)) == []
