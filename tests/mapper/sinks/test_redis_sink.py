"""The Redis sink against a real redis-server: KubeEdge's ZADD layout, pipelined per batch."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from typing import cast

import pytest
from redis.asyncio import Redis
from sinks_helpers import changes, find_binary, free_port, stop, wait_port

from twinplane.mapper.sinks import RunnerSettings, SinkRunner
from twinplane.mapper.sinks.config import RedisSinkConfig
from twinplane.mapper.sinks.redis import RedisSink
from waits import until

FAST = RunnerSettings(max_rows=100, interval_s=0.02, backoff_s=0.05, max_backoff_s=0.2)


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A redis-server on a free loopback port in a temporary folder; yields the port."""
    binary = find_binary("redis-server", "/usr/bin/redis-server", package="redis-server")
    work = tmp_path_factory.mktemp("redis")
    port = free_port()
    log = work / "redis.log"
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(work)]
    args += ["--save", "", "--appendonly", "no"]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        wait_port(proc, port, log)
        yield port
    finally:
        stop(proc)


@pytest.fixture
async def client(redis_port: int) -> AsyncIterator[Redis]:
    """A client on a flushed database 0."""
    redis = Redis(port=redis_port)
    await redis.flushdb()
    try:
        yield redis
    finally:
        await redis.aclose()


async def test_zadd_layout_of_kubeedge(redis_port: int, client: Redis) -> None:
    """Each sample is a ZADD on the device name, scored by its ms timestamp, member JSON."""
    sink = RedisSink(RedisSinkConfig(f"127.0.0.1:{redis_port}"))
    runner = SinkRunner("r", sink, FAST)
    runner.start()
    runner.offer(changes([("default/d1", "temp", 21.5), ("ns2/d2", "count", 7)]))
    runner.offer(changes([("default/d1", "temp", 22.0)], ts_ms=1_700_000_001_000))
    await until(lambda: runner.stats()["written"] == 3, "three samples")
    await runner.close()
    rows = await client.zrange("d1", 0, -1, withscores=True)
    members = [(json.loads(m), s) for m, s in cast("list[tuple[bytes, float]]", rows)]
    assert members == [
        (
            {
                "DeviceName": "d1",
                "PropertyName": "temp",
                "Namespace": "default",
                "Value": "21.5",
                "Type": "float",
                "TimeStamp": 1_700_000_000_000,
            },
            1_700_000_000_000.0,
        ),
        (
            {
                "DeviceName": "d1",
                "PropertyName": "temp",
                "Namespace": "default",
                "Value": "22",
                "Type": "float",
                "TimeStamp": 1_700_000_001_000,
            },
            1_700_000_001_000.0,
        ),
    ]
    (only,) = cast("list[bytes]", await client.zrange("d2", 0, -1))
    assert json.loads(only)["Value"] == "7"


async def test_retried_batch_adds_nothing_twice(redis_port: int, client: Redis) -> None:
    """Writing the same batch twice leaves one member per sample (ZADD is idempotent)."""
    sink = RedisSink(RedisSinkConfig(f"127.0.0.1:{redis_port}", db=0))
    batch = changes([("default/d1", "count", 1), ("default/d1", "temp", 2.0)])
    await sink.write(batch)
    await sink.write(batch)
    await sink.close()
    assert await client.zcard("d1") == 2


async def test_unreachable_server_is_counted_as_failed() -> None:
    """No server: retried, then counted as failed."""
    runner = SinkRunner("r", RedisSink(RedisSinkConfig(f"127.0.0.1:{free_port()}")), FAST)
    runner.start()
    runner.offer(changes([("default/d1", "temp", 1.0)]))
    await until(lambda: runner.stats()["failed"] == 1, "the give-up")
    await runner.close()
