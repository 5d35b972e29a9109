"""Redis (``dbMethod.redis``) in mapper-framework's layout, one pipeline per batch.

Each sample is ``ZADD <deviceName> <timestamp ms> <member>`` with the member the JSON of
mapper-framework's ``DataModel`` (spec §7.7, v1.22+)::

    {"DeviceName": "<name>", "PropertyName": "<property>", "Namespace": "<ns>",
     "Value": "<text>", "Type": "<type>", "TimeStamp": <ms>}

The key is the device *name* only, as in KubeEdge. A batch is one non-transactional pipeline
(one round trip); ZADD of an equal member is idempotent, so a retried batch adds nothing twice.
The password comes from the environment variable ``PASSWORD``, as in mapper-framework.
"""

from __future__ import annotations

import os

import msgspec
import pyarrow as pa
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from twinplane.mapper.sinks.config import RedisSinkConfig
from twinplane.mapper.sinks.rows import Sample, samples

__all__ = ["RedisSink", "member"]


def member(s: Sample) -> bytes:
    """mapper-framework's ZADD member of a sample."""
    return msgspec.json.encode(
        {
            "DeviceName": s.name,
            "PropertyName": s.property,
            "Namespace": s.namespace,
            "Value": s.text,
            "Type": s.type.lower(),
            "TimeStamp": s.timestamp_ms,
        }
    )


class RedisSink:
    """Writes batches to one Redis server (see the module docstring)."""

    def __init__(self, config: RedisSinkConfig) -> None:
        self.config = config
        host, _, port = config.addr.rpartition(":")
        self._redis = Redis(
            host=host or config.addr,
            port=int(port) if host and port else 6379,
            db=config.db,
            password=os.environ.get("PASSWORD") or None,
            max_connections=config.pool_size or None,
            socket_timeout=10,
            socket_connect_timeout=10,
            retry=Retry(NoBackoff(), 0),  # the runner retries, with its backoff and counters
        )

    async def write(self, batch: pa.RecordBatch) -> None:
        """ZADDs every sample in one pipeline."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for s in samples(batch):
                pipe.zadd(s.name, {member(s): s.timestamp_ms})
            await pipe.execute()

    async def close(self) -> None:
        """Closes the connection pool."""
        await self._redis.aclose()
