"""The sink framework: batching, bounded queues, retries, counters and the data plane's routing."""

from __future__ import annotations

import asyncio

import pyarrow as pa
import pytest
from sinks_helpers import changes

from twinplane.dmi.v1beta1 import api_pb2
from twinplane.mapper.sinks import (
    DataPlane,
    PermanentSinkError,
    RetryLaterError,
    RunnerSettings,
    SinkRunner,
    apply_push_heartbeats,
)
from twinplane.mapper.sinks.config import HttpSinkConfig, SinkConfig, sink_configs
from twinplane.twin import PropertySpec, ValueLike
from waits import until

FAST = RunnerSettings(max_rows=3, interval_s=0.05, backoff_s=0.01, max_backoff_s=0.02)


class ListSink:
    """Records what it is given; fails the first ``fail`` writes with ``error``."""

    def __init__(self, fail: int = 0, error: Exception | None = None) -> None:
        self.batches: list[pa.RecordBatch] = []
        self.fail = fail
        self.error = error or ConnectionError("down")
        self.closed = False
        self.gate: asyncio.Event | None = None

    async def write(self, batch: pa.RecordBatch) -> None:
        """Records a batch (after the gate opens), or fails."""
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            self.fail -= 1
            raise self.error
        self.batches.append(batch)

    async def close(self) -> None:
        """Remembers the close."""
        self.closed = True

    @property
    def rows(self) -> list[tuple[str, str]]:
        """(device, property) of every written row."""
        return [(r["device"], r["property"]) for b in self.batches for r in b.to_pylist()]


def one(device: str = "default/d1", prop: str = "temp", value: float = 1.5) -> pa.RecordBatch:
    """A one-row batch."""
    return changes([(device, prop, value)])


async def test_flushes_by_size_in_one_concatenated_batch() -> None:
    """Three queued one-row batches reach the sink as one write of three rows."""
    sink = ListSink()
    runner = SinkRunner("t", sink, RunnerSettings(max_rows=3, interval_s=10))
    runner.start()
    for i in range(3):
        runner.offer(one(value=float(i)))
    await until(lambda: sink.batches, "a write")
    assert [b.num_rows for b in sink.batches] == [3]
    await runner.close()
    assert sink.closed
    assert runner.stats()["written"] == 3


async def test_flushes_by_interval() -> None:
    """A single row is written after the interval even though the batch is not full."""
    sink = ListSink()
    runner = SinkRunner("t", sink, RunnerSettings(max_rows=100, interval_s=0.05))
    runner.start()
    runner.offer(one())
    await until(lambda: sink.batches, "the interval flush", within=2)
    await runner.close()


async def test_full_queue_drops_oldest_and_counts() -> None:
    """A full queue drops its oldest batch, counts the rows, and never blocks the offer."""
    sink = ListSink()
    sink.gate = asyncio.Event()
    runner = SinkRunner("t", sink, RunnerSettings(max_rows=1, interval_s=0, max_batches=2))
    runner.start()
    runner.offer(one(value=0.0))
    await until(lambda: runner.stats()["queue_batches"] == 0, "the first batch taken")
    results = [runner.offer(one(value=float(v))) for v in (1, 2, 3, 4)]
    assert results == [True, True, False, False]
    stats = runner.stats()
    assert (stats["dropped"], stats["queue_batches"], stats["queue_rows"]) == (2, 2, 2)
    sink.gate.set()
    await until(lambda: runner.stats()["written"] == 3, "the rest written")
    values = [r["value_float"] for b in sink.batches for r in b.to_pylist()]
    assert values == [0.0, 3.0, 4.0]
    await runner.close()


async def test_retries_with_backoff_then_writes() -> None:
    """Two failed attempts are retried; the batch is written once, retries are counted."""
    sink = ListSink(fail=2)
    runner = SinkRunner("t", sink, FAST)
    runner.start()
    runner.offer(one())
    await until(lambda: runner.stats()["written"] == 1, "the write after retries")
    assert (runner.stats()["retries"], runner.stats()["failed"]) == (2, 0)
    await runner.close()


async def test_gives_up_after_max_attempts_and_on_permanent_errors() -> None:
    """A batch failing every attempt, or refused for good, is counted as failed."""
    sink = ListSink(fail=100)
    runner = SinkRunner("t", sink, FAST)
    runner.start()
    runner.offer(one())
    await until(lambda: runner.stats()["failed"] == 1, "the give-up")
    assert runner.stats()["retries"] == FAST.max_attempts - 1
    await runner.close()
    refused = ListSink(fail=1, error=PermanentSinkError("400"))
    runner = SinkRunner("p", refused, FAST)
    runner.start()
    runner.offer(one())
    await until(lambda: runner.stats()["failed"] == 1, "the refusal")
    assert runner.stats()["retries"] == 0
    await runner.close()


async def test_retry_after_is_honoured() -> None:
    """A RetryLaterError waits at least its delay (capped by max_backoff_s)."""
    sink = ListSink(fail=1, error=RetryLaterError("429", 0.2))
    runner = SinkRunner("t", sink, RunnerSettings(interval_s=0, backoff_s=0.001, max_backoff_s=1))
    runner.start()
    loop = asyncio.get_running_loop()
    start = loop.time()
    runner.offer(one())
    await until(lambda: sink.batches, "the write")
    assert loop.time() - start >= 0.2
    await runner.close()


async def test_close_flushes_the_queue() -> None:
    """Closing writes what is still queued."""
    sink = ListSink()
    runner = SinkRunner("t", sink, RunnerSettings(max_rows=1000, interval_s=60))
    runner.start()
    runner.offer(one())
    await runner.close()
    assert sink.rows == [("default/d1", "temp")]


def device(push: dict[str, api_pb2.PushMethod], cycle: int = 500) -> api_pb2.Device:
    """A device with properties temp/count/label/on; ``push`` by property name."""
    dev = api_pb2.Device(name="d1", namespace="default")
    for name in ("temp", "count", "label", "on"):
        prop = dev.spec.properties.add(name=name, reportCycle=cycle)
        if name in push:
            prop.pushMethod.CopyFrom(push[name])
    return dev


def http_push(host: str) -> api_pb2.PushMethod:
    """A pushMethod.http to ``host`` port 8080."""
    return api_pb2.PushMethod(
        http=api_pb2.PushMethodHTTP(hostname=host, port=8080, requestpath="/data")
    )


async def test_data_plane_routes_dedupes_and_closes() -> None:
    """Equal configs share one sink; each sink gets only its properties; removal closes it."""
    made: dict[SinkConfig, ListSink] = {}

    def factory(config: SinkConfig) -> ListSink:
        made[config] = ListSink()
        return made[config]

    plane = DataPlane(factory=factory, settings=RunnerSettings(max_rows=1, interval_s=0))
    plane.add_device(
        device({"temp": http_push("a"), "count": http_push("a"), "label": http_push("b")})
    )
    assert len(made) == 2
    rows: list[tuple[str, str, ValueLike]] = [
        ("default/d1", "temp", 1.0),
        ("default/d1", "count", 2),
        ("default/d1", "label", "x"),
        ("default/d1", "on", True),
        ("default/other", "temp", 3.0),
    ]
    batch = changes(rows)
    plane.offer(batch)
    a = made[HttpSinkConfig("http://a:8080/data")]
    b = made[HttpSinkConfig("http://b:8080/data")]
    await until(lambda: len(a.rows) == 2 and len(b.rows) == 1, "both sinks written")
    assert sorted(a.rows) == [("default/d1", "count"), ("default/d1", "temp")]
    assert b.rows == [("default/d1", "label")]
    assert set(plane.stats()) == {"http:http://a:8080/data", "http:http://b:8080/data"}
    await plane.remove_device("default/d1")
    assert a.closed
    assert b.closed
    assert plane.stats() == {}
    await plane.close()


def test_push_properties_get_a_heartbeat_of_their_report_cycle() -> None:
    """Pushed properties get heartbeat_ms = reportCycle; the others keep none."""
    specs: list[PropertySpec] = [{"name": n, "type": "INT"} for n in ("temp", "count")]
    apply_push_heartbeats(specs, device({"temp": http_push("a")}, cycle=750))
    assert specs[0].get("heartbeat_ms") == 750
    assert "heartbeat_ms" not in specs[1]


@pytest.mark.parametrize(
    ("push", "kinds"),
    [
        (api_pb2.PushMethod(), []),
        (
            api_pb2.PushMethod(
                http=api_pb2.PushMethodHTTP(hostname="https://h"),
                mqtt=api_pb2.PushMethodMQTT(address="tcp://b:1883"),
                dbMethod=api_pb2.DBMethod(
                    redis=api_pb2.DBMethodRedis(), mysql=api_pb2.DBMethodMySQL()
                ),
            ),
            ["HttpSinkConfig", "RedisSinkConfig"],
        ),
        (api_pb2.PushMethod(otel=api_pb2.PushMethodOTEL(endpointURL="http://o")), []),
    ],
)
def test_sink_selection_follows_mapper_framework(
    push: api_pb2.PushMethod, kinds: list[str]
) -> None:
    """The first push method (http, mqtt) and the first database are used, as in KubeEdge."""
    prop = api_pb2.DeviceProperty(name="p", pushMethod=push)
    assert [type(c).__name__ for c in sink_configs(prop)] == kinds
