"""``GET /metrics``: the device manager's numbers in the Prometheus text format (0.0.4).

:func:`render_metrics` reads the counters the parts already keep (nothing is counted twice, and
nothing here runs on the hot path): the core's :class:`~twinplane.edge.core.Counters`, the
engine's ``stats()``, the twin persister's :class:`~twinplane.edge.persist.PersistStats`, DMI
admission, the mapper links, the event hub, devices by state, the engine's latency histograms
(device read → twin applied / persisted), the REST API's own request counts and, when a broker
is configured, the MQTT bridge's ``stats()`` (without one, the ``mqtt_*`` families are absent
rather than zero: a device manager with no broker is not a disconnected one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from twinplane import __version__
from twinplane.edge.core import DEVICE_STATES, EdgeCore
from twinplane.edge.dmi_server import DmiServer
from twinplane.edge.mappers import MapperDirectory
from twinplane.metrics import (
    CONTENT_TYPE,
    ENGINE_STATS,
    MetricsWriter,
    MetricType,
    Sample,
    write_stats,
)
from twinplane.twin import LatencyHistogram

if TYPE_CHECKING:
    from twinplane.edge.mqtt_bridge import MqttBridge

__all__ = ["CONTENT_TYPE", "MQTT_STATS", "MetricsWriter", "RequestCounts", "render_metrics"]

_CORE_COUNTERS: Final[tuple[tuple[str, str, str], ...]] = (
    ("dmi_reports", "dmi_reports_total", "ReportDeviceStatus calls applied."),
    ("dmi_twins_changed", "dmi_twins_changed_total", "Twin changes made by ReportDeviceStatus."),
    ("state_reports", "state_reports_total", "Device states reported (DMI or MQTT)."),
    ("desired_sets", "desired_sets_total", "Desired-value updates made on the edge."),
    ("applies", "applies_total", "Successful manifest applies (unchanged ones too)."),
    (
        "write_failures_reported",
        "write_failures_reported_total",
        "Failed desired writes mappers reported for a current desired value.",
    ),
    (
        "write_outcomes_ignored",
        "write_outcomes_ignored_total",
        "Desired-write outcomes ignored: for a value no longer desired, or an unknown twin.",
    ),
)

_PERSIST_STATS: Final[tuple[tuple[str, str, MetricType, str], ...]] = (
    ("rows", "twins_persisted_total", "counter", "Twin rows committed to SQLite."),
    ("errors", "persist_errors_total", "counter", "Twin writes to SQLite that failed."),
    ("flushes", "twin_flushes_total", "counter", "Twin writes (transactions) committed."),
    (
        "unsaved",
        "twins_unsaved",
        "gauge",
        "Twin rows of a failed write, waiting for the next one.",
    ),
)

MQTT_STATS: Final[dict[str, tuple[str, MetricType, str]]] = {
    "published": (
        "mqtt_published_total",
        "counter",
        "MQTT messages published and acknowledged by the broker (PUBACK at QoS 1).",
    ),
    "dropped": (
        "mqtt_dropped_total",
        "counter",
        "MQTT messages dropped unsent because the outbound queue was full (oldest first).",
    ),
    "reconnects": (
        "mqtt_reconnects_total",
        "counter",
        "MQTT connections made after the first one.",
    ),
    "received": ("mqtt_received_total", "counter", "MQTT messages received from the broker."),
    "rejected": (
        "mqtt_rejected_total",
        "counter",
        "MQTT requests answered with an error.",
    ),
    "pending": (
        "mqtt_pending",
        "gauge",
        "MQTT messages not yet acknowledged by the broker (queued or in flight).",
    ),
    "events_queued": (
        "mqtt_events_queued_total",
        "counter",
        "Device events queued for MQTT (…/events topics).",
    ),
    "connected": (
        "mqtt_connected",
        "gauge",
        "1 while the MQTT bridge is connected and subscribed, else 0.",
    ),
}
"""The MQTT bridge's ``stats()`` keys: metric name (without prefix), type and help."""


@dataclass(slots=True)
class RequestCounts:
    """REST requests served, by method, route template and status code."""

    counts: dict[tuple[str, str, int], int] = field(default_factory=dict)

    def add(self, method: str, route: str, code: int) -> None:
        """Counts one request."""
        key = (method, route, code)
        self.counts[key] = self.counts.get(key, 0) + 1


def render_metrics(
    core: EdgeCore,
    dmi: DmiServer,
    mappers: MapperDirectory,
    requests: RequestCounts | None = None,
    mqtt: MqttBridge | None = None,
) -> str:
    """Every metric of one device manager, as Prometheus text.

    Args:
        core: The registry, twins, engine and store.
        dmi: The DMI server (admission counters).
        mappers: The mapper links.
        requests: The REST API's request counts, if it counts them.
        mqtt: The MQTT bridge, when a broker is configured; ``None`` leaves the ``mqtt_*``
            families out.
    """
    out = MetricsWriter()
    out.family("build_info", "gauge", "The twinplane version.", [({"version": __version__}, 1)])
    for attr, name, help_text in _CORE_COUNTERS:
        out.single(name, "counter", help_text, getattr(core.counters, attr))
    write_stats(out, core.engine.stats(), ENGINE_STATS, "engine_", "Twin engine statistic")
    _write_persist(out, core)
    _write_latency(out, core)
    _write_registry(out, core)
    out.single(
        "dmi_admitted_total",
        "counter",
        "DMI calls admitted by the admission budget.",
        dmi.bucket.admitted,
    )
    out.single(
        "dmi_rejected_total",
        "counter",
        "DMI calls answered RESOURCE_EXHAUSTED by the admission budget.",
        dmi.bucket.rejected,
    )
    _write_mappers(out, mappers)
    hub = core.hub
    out.single("events_subscribers", "gauge", "Event hub subscribers (SSE clients).", len(hub))
    out.single("events_published_total", "counter", "Events published to the hub.", hub.published)
    out.single(
        "events_dropped_total",
        "counter",
        "Events dropped because a subscriber fell behind (its oldest first).",
        hub.dropped,
    )
    _write_device_events(out, core, mqtt)
    _write_alarms(out, core)
    if requests is not None:
        out.family(
            "http_requests_total",
            "counter",
            "REST API requests, by method, route and status code.",
            [
                ({"method": m, "route": r, "code": str(c)}, n)
                for (m, r, c), n in sorted(requests.counts.items())
            ],
        )
    if mqtt is not None:
        write_stats(out, mqtt.stats(), MQTT_STATS, "mqtt_", "MQTT bridge statistic")
    return out.render()


_LATENCY: Final[tuple[tuple[Literal["applied", "persisted"], str, str], ...]] = (
    (
        "applied",
        "read_to_applied",
        "Device read (the report's reported timestamp) to the value applied to the twin"
        " (changed or not), in seconds.",
    ),
    (
        "persisted",
        "read_to_persisted",
        "Device read (the twin's reported timestamp) to its twin row committed to SQLite,"
        " in seconds.",
    ),
)


def _write_persist(out: MetricsWriter, core: EdgeCore) -> None:
    stats = core.persister.stats
    for attr, name, kind, help_text in _PERSIST_STATS:
        out.single(name, kind, help_text, getattr(stats, attr))
    out.single(
        "twin_last_flush_timestamp_seconds",
        "gauge",
        "When the last twin write committed (seconds since the epoch; 0: none yet).",
        stats.last_flush_ms / 1000,
    )
    out.single(
        "twin_last_flush_duration_seconds",
        "gauge",
        "How long the last committed twin write took, in seconds.",
        stats.last_flush_s,
    )


def _write_latency(out: MetricsWriter, core: EdgeCore) -> None:
    latency = core.engine.latency()
    applied = latency["applied"]
    out.single(
        "twin_updates_total",
        "counter",
        "Reported twin values applied (changed or not) that carried a read timestamp.",
        applied.count,
    )
    for key, name, help_text in _LATENCY:
        hist: LatencyHistogram = latency[key]
        out.histogram(
            f"{name}_seconds",
            help_text,
            [b / 1000 for b in hist.bounds_ms],
            hist.counts,
            sum_=hist.sum_ms / 1000,
            count=hist.count,
        )
        out.single(
            f"{name}_max_seconds",
            "gauge",
            f"Largest {key} latency observed (since start or the last reset), in seconds.",
            hist.max_ms / 1000,
        )


def _write_registry(out: MetricsWriter, core: EdgeCore) -> None:
    out.single("device_models", "gauge", "DeviceModels in the registry.", len(core.models))
    by_state = dict.fromkeys(sorted(DEVICE_STATES), 0)
    for device_id in core.devices:
        state = core.states.get(device_id)
        key = state.state if state is not None else "unknown"
        by_state[key] = by_state.get(key, 0) + 1
    out.family(
        "devices",
        "gauge",
        "Devices in the registry, by last reported state (unknown: none reported).",
        [({"state": s}, n) for s, n in by_state.items()],
    )
    out.single(
        "twin_write_errors",
        "gauge",
        "Twin properties whose last desired write failed (the mapper gave up on it).",
        len(core.write_errors),
    )


def _write_device_events(out: MetricsWriter, core: EdgeCore, mqtt: MqttBridge | None) -> None:
    """The device events: published, stored, pruned, and dropped by each consumer."""
    counters = core.events.counters
    out.single(
        "device_events_published_total",
        "counter",
        "Device events emitted (a repeat aggregated into an event counts once per emit).",
        counters.published,
    )
    out.single(
        "device_events_stored_total",
        "counter",
        "Device event rows written to the event log.",
        counters.stored,
    )
    out.single(
        "device_events_pruned_total",
        "counter",
        "Event log rows removed by its count and age bounds.",
        counters.pruned,
    )
    out.single(
        "device_events_pending",
        "gauge",
        "Device events waiting for the event log's writer.",
        core.events.pending,
    )
    out.single(
        "device_events_invalid_total",
        "counter",
        "Device events refused (unknown type or severity), logged.",
        counters.invalid,
    )
    dropped = [({"consumer": "log"}, counters.log_dropped), ({"consumer": "sse"}, core.hub.dropped)]
    if mqtt is not None:
        dropped.append(({"consumer": "mqtt"}, mqtt.dropped))
    out.family(
        "device_events_dropped_total",
        "counter",
        "Events a consumer lost because it fell behind: the log's full queue, SSE clients' queues"
        " (all kinds), the MQTT bridge's outbound queue (all messages).",
        dropped,
    )


def _write_alarms(out: MetricsWriter, core: EdgeCore) -> None:
    """The active alarms by severity, and the alarms raised and cleared."""
    active = core.alarms.count_by_severity()
    out.family(
        "alarms_active",
        "gauge",
        "Active alarms (acknowledged or not), by the rule's severity.",
        [({"severity": severity}, count) for severity, count in active.items()],
    )
    counters = core.alarms.counters
    out.single("alarms_raised_total", "counter", "Alarms raised.", counters.raised)
    out.single("alarms_cleared_total", "counter", "Alarms cleared.", counters.cleared)
    out.single(
        "alarms_acknowledged_total", "counter", "Alarms acknowledged.", counters.acknowledged
    )
    out.single(
        "alarms_write_failures_total",
        "counter",
        "Alarm batches the store could not write (kept for the next batch).",
        counters.write_failures,
    )


def _write_mappers(out: MetricsWriter, mappers: MapperDirectory) -> None:
    links = sorted(mappers.links.values(), key=lambda link: link.info.name)
    out.single(
        "mappers_registered",
        "gauge",
        "Mappers known (registered with MapperRegister, now or before a restart).",
        len(links),
    )

    def per_link(attr: str) -> list[Sample]:
        samples: list[Sample] = []
        for link in links:
            labels = {"mapper": link.info.name, "protocol": link.info.protocol}
            value = link.pending if attr == "pending" else getattr(link.stats, attr)
            samples.append((labels, value))
        return samples

    out.family(
        "mapper_pending_ops",
        "gauge",
        "Lifecycle operations waiting to be sent to a mapper.",
        per_link("pending"),
    )
    out.family(
        "mapper_ops_sent_total",
        "counter",
        "Lifecycle calls a mapper accepted.",
        per_link("sent"),
    )
    out.family(
        "mapper_ops_failed_total",
        "counter",
        "Lifecycle calls to a mapper that failed.",
        per_link("failed"),
    )
    out.family(
        "mapper_op_retries_total",
        "counter",
        "Lifecycle calls to a mapper retried after a failure.",
        per_link("retries"),
    )
    out.family(
        "mapper_ops_skipped_unchanged_total",
        "counter",
        "Device updates not sent to a mapper because the device message did not change.",
        per_link("skipped_unchanged"),
    )
