"""MQTT push (``pushMethod.mqtt``) over one long-lived aiomqtt connection per broker.

Without a ``topic``, samples go to KubeEdge's data topic
``$ke/events/device/<namespace>/<name>/data/update``, one message per device and batch (a new
message starts when a property repeats, so no sample is lost) with mapper-framework's document
(spec §7.7)::

    {"event_id": "<uuid4>", "timestamp": <ms now>,
     "data": {"<property>": {"value": "<text>",
                             "metadata": {"timestamp": <sample ms>, "type": "<type>"}}}}

With a ``topic``, each sample is one message on that topic, the same document with one property,
published with the property's ``qos`` and ``retained``. QoS 1 and 2 publishes complete only on
the broker's acknowledgement. A failed connection is dropped and made again on the next attempt.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator

import aiomqtt
import msgspec
import pyarrow as pa

from twinplane.mapper.sinks.config import MqttSinkConfig
from twinplane.mapper.sinks.rows import Sample, samples
from twinplane.mqtt_url import BrokerUrl

__all__ = ["MqttSink", "data_topic", "messages"]


def data_topic(namespace: str, name: str) -> str:
    """KubeEdge's data-update topic of a device."""
    return f"$ke/events/device/{namespace}/{name}/data/update"


def _document(group: list[Sample]) -> bytes:
    data = {
        s.property: {
            "value": s.text,
            "metadata": {"timestamp": s.timestamp_ms, "type": s.type.lower()},
        }
        for s in group
    }
    doc = {"event_id": str(uuid.uuid4()), "timestamp": int(time.time() * 1000), "data": data}
    return msgspec.json.encode(doc)


def messages(batch: pa.RecordBatch, topic: str = "") -> Iterator[tuple[str, bytes]]:
    """The ``(topic, payload)`` messages of a batch (see the module docstring)."""
    rows = samples(batch)
    if topic:
        for s in rows:
            yield topic, _document([s])
        return
    groups: dict[tuple[str, str], list[Sample]] = {}
    for s in rows:
        key = (s.namespace, s.name)
        group = groups.setdefault(key, [])
        if any(g.property == s.property for g in group):
            yield data_topic(*key), _document(group)
            group = groups[key] = []
        group.append(s)
    for key, group in groups.items():
        yield data_topic(*key), _document(group)


class MqttSink:
    """Publishes batches to one broker (see the module docstring)."""

    def __init__(self, config: MqttSinkConfig) -> None:
        self.config = config
        self.broker = BrokerUrl.parse(config.address)
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: aiomqtt.Client | None = None

    async def _connected(self) -> aiomqtt.Client:
        if self._client is None:
            b = self.broker
            stack = contextlib.AsyncExitStack()
            client = aiomqtt.Client(
                b.host, b.port, username=b.username, password=b.password, timeout=10
            )
            await stack.enter_async_context(client)
            self._stack, self._client = stack, client
        return self._client

    async def write(self, batch: pa.RecordBatch) -> None:
        """Publishes every message of the batch; a failure drops the connection."""
        try:
            client = await self._connected()
            for topic, payload in messages(batch, self.config.topic):
                await client.publish(
                    topic, payload, qos=self.config.qos, retain=self.config.retained
                )
        except aiomqtt.MqttError:
            await self.close()
            raise

    async def close(self) -> None:
        """Disconnects."""
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await stack.aclose()
