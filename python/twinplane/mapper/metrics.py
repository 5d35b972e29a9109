"""``GET /metrics`` of a mapper: its numbers in the Prometheus text format (0.0.4).

:func:`render_mapper_metrics` reads the counters the parts already keep (nothing is counted on
the hot path for it): the data plane's per-sink ``stats()``, each bus scheduler's
:class:`~twinplane.mapper.scheduler.BusStats`, the reporter's
:class:`~twinplane.mapper.reporter.ReporterStats` (fast path and EdgeCore pacing included), the
driver's :meth:`~twinplane.drivers.base.Driver.stats` (the Modbus clients' counters, say),
desired writes and their outcome reports, the engine's ``stats()`` and the devices by scheduler
state. Every name starts ``twinplane_mapper_``
(``docs/mapper.md``, "Metrics").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from twinplane import __version__
from twinplane.mapper.scheduler import LATENESS_BOUNDS_S
from twinplane.metrics import ENGINE_STATS, MetricsWriter, MetricType, Sample, write_stats

if TYPE_CHECKING:
    from twinplane.mapper.comm_errors import CommErrorReporter
    from twinplane.mapper.desired_writes import DesiredWriter
    from twinplane.mapper.reporter import Reporter
    from twinplane.mapper.runtime import MapperRuntime
    from twinplane.mapper.scheduler import BusScheduler
    from twinplane.mapper.sinks import DataPlane
    from twinplane.mapper.write_outcomes import WriteOutcomeReporter

__all__ = ["PREFIX", "render_mapper_metrics"]

PREFIX: Final = "twinplane_mapper_"

DEVICE_STATES: Final = ("unknown", "online", "offline", "unhealthy")
"""The scheduler's device states, always exported (0 when no device is in one)."""

_SINK_STATS: Final[tuple[tuple[str, str, MetricType, str], ...]] = (
    ("written", "sink_written_rows_total", "counter", "Rows a sink wrote."),
    (
        "dropped",
        "sink_dropped_rows_total",
        "counter",
        "Rows dropped because a sink's queue was full (its oldest batches first).",
    ),
    ("failed", "sink_failed_rows_total", "counter", "Rows a sink gave up on after its retries."),
    ("retries", "sink_retries_total", "counter", "Batch writes a sink retried."),
    ("queue_batches", "sink_queue_batches", "gauge", "Batches waiting in a sink's queue."),
    ("queue_rows", "sink_queue_rows", "gauge", "Rows waiting in a sink's queue."),
)

_BUS_STATS: Final[tuple[tuple[str, str, MetricType, str], ...]] = (
    ("polls", "bus_polls_total", "counter", "Device polls that succeeded on a bus."),
    ("poll_errors", "bus_poll_errors_total", "counter", "Device polls that failed on a bus."),
    ("writes", "bus_writes_total", "counter", "Device writes that succeeded on a bus."),
    ("write_errors", "bus_write_errors_total", "counter", "Device writes that failed on a bus."),
    (
        "commands",
        "bus_commands_total",
        "counter",
        "Driver commands of method calls that succeeded on a bus.",
    ),
    (
        "command_errors",
        "bus_command_errors_total",
        "counter",
        "Driver commands of method calls that failed on a bus.",
    ),
    (
        "overruns",
        "bus_overruns_total",
        "counter",
        "Polls started late because the bus could not keep up with its cycle.",
    ),
)

_REPORTER_STATS: Final[tuple[tuple[str, str, str], ...]] = (
    ("status_errors", "report_errors_total", "Twin reports that failed (unary or fast path)."),
    ("twins", "twin_changes_total", "Twin changes drained from the engine for reporting."),
    ("state_calls", "state_reports_sent_total", "ReportDeviceStates calls sent."),
    ("state_errors", "state_report_errors_total", "ReportDeviceStates calls that failed."),
    ("stream_batches", "fast_path_batches_total", "Fast-path (TwinStream) batches acked."),
    (
        "stream_fallbacks",
        "fast_path_fallbacks_total",
        "Fast-path batches sent through unary DMI after a stream failure.",
    ),
)


def render_mapper_metrics(  # noqa: PLR0913 - the parts, keyword-only
    runtime: MapperRuntime,
    *,
    reporter: Reporter | None,
    data_plane: DataPlane,
    registrations: int,
    outcomes: WriteOutcomeReporter | None = None,
    comm_errors: CommErrorReporter | None = None,
) -> str:
    """Every metric of one mapper, as Prometheus text.

    Args:
        runtime: The devices, buses, desired writes and engine.
        reporter: The twin and state reporter (``None`` before it starts).
        outcomes: The desired-write outcome reporter (``None`` before it starts).
        comm_errors: The communication error reporter (``None`` before it starts).
        data_plane: The sinks.
        registrations: Successful ``MapperRegister`` calls.
    """
    out = MetricsWriter(prefix=PREFIX)
    out.family(
        "build_info",
        "gauge",
        "The twinplane version and the mapper's protocol.",
        [({"version": __version__, "protocol": runtime.config.protocol}, 1)],
    )
    out.single(
        "registrations_total",
        "counter",
        "Successful MapperRegister calls.",
        registrations,
    )
    _write_sinks(out, data_plane.stats())
    _write_buses(out, runtime.buses)
    _write_reporter(out, reporter)
    for stat in runtime.driver.stats():
        out.single(stat.name, stat.kind, stat.help, stat.value)
    _write_desired(out, runtime.writer, outcomes)
    _write_comm_errors(out, comm_errors)
    write_stats(out, runtime.engine.stats(), ENGINE_STATS, "engine_", "Twin engine statistic")
    by_state = dict.fromkeys(DEVICE_STATES, 0)
    for running in list(runtime.devices.values()):
        state = running.scheduled.state
        by_state[state] = by_state.get(state, 0) + 1
    out.family(
        "devices",
        "gauge",
        "Devices served, by the scheduler's state (unknown: not polled yet).",
        [({"state": s}, n) for s, n in by_state.items()],
    )
    return out.render()


def _write_sinks(out: MetricsWriter, stats: Mapping[str, Mapping[str, int]]) -> None:
    names = sorted(stats)
    for key, name, kind, help_text in _SINK_STATS:
        out.family(name, kind, help_text, [({"sink": n}, stats[n].get(key, 0)) for n in names])


def _write_buses(out: MetricsWriter, buses: Mapping[str, BusScheduler]) -> None:
    ordered = sorted(buses.items())
    for attr, name, kind, help_text in _BUS_STATS:
        samples: list[Sample] = [({"bus": k}, getattr(b.stats, attr)) for k, b in ordered]
        out.family(name, kind, help_text, samples)
    out.family(
        "bus_devices",
        "gauge",
        "Devices scheduled on a bus.",
        [({"bus": k}, len(b.devices)) for k, b in ordered],
    )
    stats = [b.stats for _, b in ordered]
    out.single(
        "polls_on_time_total",
        "counter",
        "Polls that started within 10% of a cycle after their due time and succeeded before "
        "the next one was due (all buses).",
        sum(s.polls_on_time for s in stats),
    )
    out.single(
        "polls_late_total",
        "counter",
        "Polls that succeeded but started later, or finished after the next one was due "
        "(all buses).",
        sum(s.polls_late for s in stats),
    )
    lateness = [sum(s.lateness[i] for s in stats) for i in range(len(LATENESS_BOUNDS_S) + 1)]
    out.histogram(
        "poll_lateness_seconds",
        "How late succeeded polls started after their due time (all buses).",
        LATENESS_BOUNDS_S,
        lateness,
        sum_=sum(s.lateness_sum_s for s in stats),
        count=sum(lateness),
    )


def _write_desired(
    out: MetricsWriter, writer: DesiredWriter, outcomes: WriteOutcomeReporter | None
) -> None:
    stats = writer.stats
    out.single("desired_writes_total", "counter", "Desired values the devices took.", stats.written)
    out.single(
        "desired_write_failures_total",
        "counter",
        "Desired values given up: refused by the device, or failing on every attempt.",
        stats.failed,
    )
    out.single(
        "desired_write_retries_total",
        "counter",
        "Desired-value write attempts after a transient failure (timeout, lost connection).",
        stats.retries,
    )
    out.single(
        "write_outcomes_reported_total",
        "counter",
        "Desired-write outcomes the device manager took (ReportWriteOutcomes).",
        outcomes.stats.sent if outcomes is not None else 0,
    )


def _write_comm_errors(out: MetricsWriter, comm: CommErrorReporter | None) -> None:
    stats = comm.stats if comm is not None else None
    out.single(
        "comm_errors_counted_total",
        "counter",
        "Failed polls counted for ReportCommErrors.",
        stats.counted if stats else 0,
    )
    out.single(
        "comm_errors_reported_total",
        "counter",
        "Communication error entries (device, kind, message, count) the device manager took.",
        stats.sent if stats else 0,
    )
    out.single(
        "comm_errors_unsent_total",
        "counter",
        "Failed polls not reported: the device manager does not take ReportCommErrors.",
        stats.unsent if stats else 0,
    )
    out.single(
        "comm_errors_overflow_total",
        "counter",
        "Failed polls not counted: too many distinct errors pending between two reports.",
        stats.overflow if stats else 0,
    )


def _write_reporter(out: MetricsWriter, reporter: Reporter | None) -> None:
    out.family(
        "reports_sent_total",
        "counter",
        "Device twin reports the device manager took, by path (unary ReportDeviceStatus, or "
        "the fast path's TwinStream).",
        [
            ({"path": "unary"}, reporter.stats.status_calls if reporter is not None else 0),
            ({"path": "fast_path"}, reporter.stats.stream_reports if reporter is not None else 0),
        ],
    )
    for attr, name, help_text in _REPORTER_STATS:
        count = int(getattr(reporter.stats, attr)) if reporter is not None else 0
        out.single(name, "counter", help_text, count)
    fast = reporter.fast_path if reporter is not None else None
    out.single(
        "fast_path_failures_total",
        "counter",
        "Fast-path stream failures (each one falls back to unary DMI for a while).",
        fast.failures if fast is not None else 0,
    )
    out.family(
        "fast_path_state",
        "gauge",
        "The fast path's negotiation state (1 for the current one; none in EdgeCore compat).",
        [({"state": fast.state.value}, 1)] if fast is not None else [],
    )
    budget = reporter.budget if reporter is not None else None
    out.single(
        "compat_waits_total",
        "counter",
        "DMI calls that waited for EdgeCore pacing (about one call per second; compat only).",
        budget.waits if budget is not None else 0,
    )
