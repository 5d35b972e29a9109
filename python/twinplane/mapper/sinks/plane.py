"""The data plane: routes the engine's reported changes to the sinks of their properties.

The mapper's reporter hands every drained :class:`~twinplane.twin.Changes` to
:meth:`DataPlane.offer` on the event loop. The changes are exported once to Arrow, filtered to
``kind == "reported"`` and, per sink, to the ``(device, property)`` pairs routed to it (vectorised
``is_in`` over a ``device NUL property`` key column), then queued with the runner's non-blocking
``offer``. Sinks are deduplicated by config and closed when their last property goes away.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from twinplane.dmi.v1beta1 import api_pb2
from twinplane.mapper.instance import cycle_ms, device_id
from twinplane.mapper.sinks.base import RunnerSettings, Sink, SinkRunner
from twinplane.mapper.sinks.config import HttpFormat, SinkConfig, sink_configs
from twinplane.redact import redact_url
from twinplane.twin import PropertySpec

__all__ = ["DataPlane", "SinkFactory", "apply_push_heartbeats", "default_factory", "sink_name"]

log = logging.getLogger(__name__)

SinkFactory = Callable[[SinkConfig], Sink]
"""Builds the sink of a config."""

_SEP = "\x00"


def sink_name(config: SinkConfig) -> str:
    """A short name for logs and metrics: the kind and the destination.

    The destination is the config's ``label`` when it has one, else its first field; a password
    in it (``http://user:secret@host/``) is shown as ``***``.
    """
    kind = type(config).__name__.removesuffix("SinkConfig").lower()
    label = getattr(config, "label", None)
    if label is None:
        label = getattr(config, dataclasses.fields(config)[0].name)
    return f"{kind}:{redact_url(str(label))}"


def default_factory(config: SinkConfig) -> Sink:  # noqa: PLR0911 - one return per kind
    """The built-in sink for a config (modules imported on first use)."""
    from twinplane.mapper.sinks import config as c  # noqa: PLC0415

    if isinstance(config, c.HttpSinkConfig):
        from twinplane.mapper.sinks.http import HttpSink  # noqa: PLC0415

        return HttpSink(config)
    if isinstance(config, c.MqttSinkConfig):
        from twinplane.mapper.sinks.mqtt import MqttSink  # noqa: PLC0415

        return MqttSink(config)
    if isinstance(config, c.InfluxSinkConfig):
        from twinplane.mapper.sinks.influx import InfluxSink  # noqa: PLC0415

        return InfluxSink(config)
    if isinstance(config, c.ParquetSinkConfig):
        from twinplane.mapper.sinks.parquet import ParquetSink  # noqa: PLC0415

        return ParquetSink(config)
    if isinstance(config, c.RedisSinkConfig):
        from twinplane.mapper.sinks.redis import RedisSink  # noqa: PLC0415

        return RedisSink(config)
    if isinstance(config, c.MysqlSinkConfig):
        from twinplane.mapper.sinks.mysql import MysqlSink  # noqa: PLC0415

        return MysqlSink(config)
    if isinstance(config, c.PostgresSinkConfig):
        from twinplane.mapper.sinks.postgres import PostgresSink  # noqa: PLC0415

        return PostgresSink(config)
    raise NotImplementedError(f"no sink for {type(config).__name__}")


def push_cycles(device: api_pb2.Device) -> dict[str, int]:
    """Properties with a push or database method, and their ``reportCycle`` in ms."""
    dev_id = device_id(device.namespace, device.name)
    return {
        p.name: cycle_ms(p.reportCycle, "reportCycle", dev_id)
        for p in device.spec.properties
        if p.HasField("pushMethod") and (p.pushMethod.ListFields())
    }


def apply_push_heartbeats(specs: list[PropertySpec], device: api_pb2.Device) -> None:
    """Sets ``heartbeat_ms = reportCycle`` on pushed properties: one point per cycle at least."""
    cycles = push_cycles(device)
    for spec in specs:
        cycle = cycles.get(spec["name"])
        if cycle is not None:
            spec["heartbeat_ms"] = cycle


@dataclass(slots=True)
class _Route:
    runner: SinkRunner
    members: set[str] = field(default_factory=set)
    value_set: pa.Array | None = None


class DataPlane:
    """Every sink of a mapper and which properties feed each.

    Args:
        settings: Batching, bound and retry settings of every runner.
        http_format: The body of HTTP push (``json`` batched, or KubeEdge's ``form``).
        factory: Builds a sink from its config (tests pass their own).
        extra: Sinks fed by every property of every device (for example a local Parquet
            history), whether or not it has a ``pushMethod``.
    """

    def __init__(
        self,
        *,
        settings: RunnerSettings | None = None,
        http_format: HttpFormat = "json",
        factory: SinkFactory = default_factory,
        extra: Iterable[SinkConfig] = (),
    ) -> None:
        self.settings = settings or RunnerSettings()
        self.http_format: HttpFormat = http_format
        self.factory = factory
        self.extra = tuple(extra)
        self._routes: dict[SinkConfig, _Route] = {}
        self._by_device: dict[str, set[SinkConfig]] = {}

    def add_device(self, device: api_pb2.Device) -> None:
        """Routes a started device's properties to their sinks (creating sinks as needed)."""
        dev_id = device_id(device.namespace, device.name)
        self._drop(dev_id)
        used: set[SinkConfig] = set()
        for prop in device.spec.properties:
            configs = [*sink_configs(prop, http_format=self.http_format), *self.extra]
            for config in configs:
                route = self._routes.get(config)
                if route is None:
                    try:
                        sink = self.factory(config)
                    except Exception:  # a bad sink config must not stop the device
                        log.exception("device %s: sink %s cannot start", dev_id, sink_name(config))
                        continue
                    route = _Route(SinkRunner(sink_name(config), sink, self.settings))
                    route.runner.start()
                    self._routes[config] = route
                route.members.add(f"{dev_id}{_SEP}{prop.name}")
                route.value_set = None
                used.add(config)
        if used:
            self._by_device[dev_id] = used

    async def remove_device(self, dev_id: str) -> None:
        """Unroutes a device; sinks left without properties are flushed and closed."""
        for config in self._drop(dev_id):
            route = self._routes.pop(config)
            await route.runner.close()

    def _drop(self, dev_id: str) -> list[SinkConfig]:
        prefix = f"{dev_id}{_SEP}"
        empty = []
        for config in self._by_device.pop(dev_id, set()):
            route = self._routes[config]
            route.members = {m for m in route.members if not m.startswith(prefix)}
            route.value_set = None
            if not route.members:
                empty.append(config)
        return empty

    def offer(self, changes: object) -> None:
        """Queues the reported rows of ``changes`` (an Arrow-exportable batch) to their sinks."""
        if not self._routes:
            return
        batch = pa.record_batch(changes)
        if batch.num_rows == 0:
            return
        batch = batch.filter(pc.equal(batch.column("kind"), "reported"))
        if batch.num_rows == 0:
            return
        keys = pc.binary_join_element_wise(batch.column("device"), batch.column("property"), _SEP)
        for route in self._routes.values():
            if route.value_set is None:
                route.value_set = pa.array(sorted(route.members), pa.string())
            rows = batch.filter(pc.is_in(keys, value_set=route.value_set))
            if rows.num_rows:
                route.runner.offer(rows)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per sink name: written, dropped, failed, retries, queue depth."""
        return {route.runner.name: route.runner.stats() for route in self._routes.values()}

    async def close(self) -> None:
        """Flushes and closes every sink."""
        routes, self._routes, self._by_device = list(self._routes.values()), {}, {}
        for route in routes:
            await route.runner.close()
