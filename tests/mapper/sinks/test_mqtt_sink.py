"""MQTT push against a real mosquitto: KubeEdge's data-update document, own topics, reconnects."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import pytest
from sinks_helpers import changes, free_port

from mqtt_broker import running_mosquitto
from twinplane.mapper.sinks import RunnerSettings, SinkRunner
from twinplane.mapper.sinks.config import MqttSinkConfig
from twinplane.mapper.sinks.mqtt import MqttSink
from waits import WAIT_S, until

FAST = RunnerSettings(max_rows=100, interval_s=0.02, backoff_s=0.05, max_backoff_s=0.2)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A mosquitto on a free loopback port; yields the port."""
    with running_mosquitto(tmp_path_factory.mktemp("mosquitto")) as server:
        yield server.port


@pytest.fixture
async def received(broker: int) -> AsyncIterator[list[aiomqtt.Message]]:
    """Every message the broker routes (subscribed to #, $ke/# and a test topic)."""
    out: list[aiomqtt.Message] = []
    async with aiomqtt.Client("127.0.0.1", broker) as client:
        await client.subscribe("$ke/events/#", qos=1)
        await client.subscribe("plant/#", qos=1)

        async def collect() -> None:
            async for message in client.messages:  # appended as they come, not at the end
                out.append(message)  # noqa: PERF401

        task = asyncio.create_task(collect())
        try:
            yield out
        finally:
            task.cancel()


def payloads(messages: list[aiomqtt.Message]) -> list[tuple[str, dict[str, object]]]:
    """Topic and decoded JSON of each message."""
    return [(m.topic.value, json.loads(bytes(m.payload))) for m in messages]


async def test_kubeedge_data_update_document(broker: int, received: list[aiomqtt.Message]) -> None:
    """Samples go to $ke/events/device/<ns>/<name>/data/update, one message per device."""
    runner = SinkRunner("m", MqttSink(MqttSinkConfig(f"tcp://127.0.0.1:{broker}", qos=1)), FAST)
    runner.start()
    runner.offer(
        changes([("default/d1", "temp", 21.5), ("default/d1", "count", 7), ("ns2/d2", "on", True)])
    )
    await until(lambda: len(received) == 2, "two messages")
    await runner.close()
    got = dict(payloads(received))
    doc = got["$ke/events/device/default/d1/data/update"]
    assert set(doc) == {"event_id", "timestamp", "data"}
    assert isinstance(doc["timestamp"], int)
    assert doc["data"] == {
        "temp": {"value": "21.5", "metadata": {"timestamp": 1_700_000_000_000, "type": "float"}},
        "count": {"value": "7", "metadata": {"timestamp": 1_700_000_000_000, "type": "int"}},
    }
    assert got["$ke/events/device/ns2/d2/data/update"]["data"] == {
        "on": {"value": "true", "metadata": {"timestamp": 1_700_000_000_000, "type": "boolean"}}
    }


async def test_repeated_property_starts_a_new_message(
    broker: int, received: list[aiomqtt.Message]
) -> None:
    """Two samples of one property in a batch become two messages, in order."""
    runner = SinkRunner("m", MqttSink(MqttSinkConfig(f"127.0.0.1:{broker}", qos=1)), FAST)
    runner.start()
    runner.offer(changes([("default/d1", "count", 1)]))
    runner.offer(changes([("default/d1", "count", 2)]))
    await until(lambda: len(received) == 2, "two messages")
    await runner.close()
    values = [doc["data"]["count"]["value"] for _, doc in payloads(received)]  # type: ignore[index]
    assert values == ["1", "2"]


async def test_own_topic_with_qos_and_retain(broker: int) -> None:
    """A property's own topic gets one retained message per sample."""
    config = MqttSinkConfig(f"tcp://127.0.0.1:{broker}", "plant/line1", qos=1, retained=True)
    runner = SinkRunner("m", MqttSink(config), FAST)
    runner.start()
    runner.offer(changes([("default/d1", "temp", 3.5)]))
    await until(lambda: runner.stats()["written"] == 1, "the publish")
    await runner.close()
    async with aiomqtt.Client("127.0.0.1", broker) as late:  # a retained message reaches it
        await late.subscribe("plant/line1")
        async with asyncio.timeout(WAIT_S):
            message = await anext(late.messages)
    assert message.retain
    doc = json.loads(bytes(message.payload))
    assert doc["data"]["temp"]["value"] == "3.5"


async def test_broker_down_is_retried_then_counted(tmp_path: Path) -> None:
    """No broker: attempts are retried with backoff and the batch is counted as failed."""
    runner = SinkRunner("m", MqttSink(MqttSinkConfig(f"tcp://127.0.0.1:{free_port()}")), FAST)
    runner.start()
    runner.offer(changes([("default/d1", "temp", 1.0)]))
    await until(lambda: runner.stats()["failed"] == 1, "the give-up")
    assert runner.stats()["retries"] == FAST.max_attempts - 1
    await runner.close()
