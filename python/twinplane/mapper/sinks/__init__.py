"""The mapper's data plane: batched, bounded, retried sinks fed from the engine's changes.

See ``docs/sinks.md``. :class:`DataPlane` routes each property's samples to the sinks of its
DMI ``pushMethod``; :class:`SinkRunner` gives every sink its queue, batching, retries and
counters; the sinks themselves live one per module (``http``, ``mqtt``, ``parquet``, ...).
"""

from __future__ import annotations

from twinplane.mapper.sinks.base import (
    PermanentSinkError,
    RetryLaterError,
    RunnerSettings,
    Sink,
    SinkRunner,
    SinkStats,
)
from twinplane.mapper.sinks.plane import DataPlane, apply_push_heartbeats

__all__ = [
    "DataPlane",
    "PermanentSinkError",
    "RetryLaterError",
    "RunnerSettings",
    "Sink",
    "SinkRunner",
    "SinkStats",
    "apply_push_heartbeats",
]
