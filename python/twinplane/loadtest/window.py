"""From the scrapes of a measurement window to its figures: totals, rates, quantiles, series.

A :class:`Tick` is one second's scrape of the mapper's and the device manager's ``/metrics`` and
of the three processes' ``/proc`` usage. :func:`summarize` turns the ticks of one window into the
figures ``results.json`` holds; every figure whose metric is missing is ``None`` ("n/a") and its
name is listed under ``missing_metrics``.

Latency quantiles are Prometheus' ``histogram_quantile`` (linear within a bucket), clamped to the
largest latency the device manager observed (its ``*_max_seconds`` gauge): interpolation can land
above every observation in the top bucket, and a quantile above the maximum reads as a bug.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from twinplane.loadtest.procs import ProcUsage
from twinplane.loadtest.prom import Histogram, Snapshot

__all__ = [
    "PROCESSES",
    "Tick",
    "WindowLoad",
    "expected_polls",
    "on_time_pct",
    "quantile_ms",
    "ratio",
    "summarize",
]

PROCESSES: Final = ("sim", "edge", "mapper")

# The mapper's metrics.
POLLS: Final = "twinplane_mapper_bus_polls_total"
ON_TIME: Final = "twinplane_mapper_polls_on_time_total"
LATE: Final = "twinplane_mapper_polls_late_total"
POLL_ERRORS: Final = "twinplane_mapper_bus_poll_errors_total"
OVERRUNS: Final = "twinplane_mapper_bus_overruns_total"
MAPPER_CHANGES: Final = "twinplane_mapper_twin_changes_total"
LATENESS: Final = "twinplane_mapper_poll_lateness_seconds"
# The device manager's.
TWIN_UPDATES: Final = "twinplane_twin_updates_total"
DMI_CHANGES: Final = "twinplane_dmi_twins_changed_total"
TO_APPLIED: Final = "twinplane_read_to_applied_seconds"
TO_PERSISTED: Final = "twinplane_read_to_persisted_seconds"
TO_APPLIED_MAX: Final = "twinplane_read_to_applied_max_seconds"
TO_PERSISTED_MAX: Final = "twinplane_read_to_persisted_max_seconds"
MQTT_PUBLISHED: Final = "twinplane_mqtt_published_total"
DMI_REPORTS: Final = "twinplane_dmi_reports_total"
REPORT_TIME: Final = "twinplane_mapper_report_seconds"
"""How long a unary ReportDeviceStatus takes in the mapper, its dial included (the
mapper-framework baseline's; twinplane's mapper streams and has none)."""
"""The MQTT bridge's publishes acknowledged by the broker (exported only with a broker)."""


@dataclass(frozen=True, slots=True)
class Tick:
    """One scrape: seconds since the window started, both expositions and each process's usage."""

    t: float
    mapper: Snapshot
    edge: Snapshot
    usage: Mapping[str, ProcUsage | None]


@dataclass(frozen=True, slots=True)
class WindowLoad:
    """The load the window ran: devices, properties, cycle, and how the mapper polls.

    Attributes:
        per_property: The mapper polls each property on its own (the imitation of
            mapper-framework's per-property tickers), not each device once per cycle.
        mapper: Which mapper ran: ``twinplane``, or a baseline's name.
    """

    devices: int
    properties: int
    cycle_ms: int
    per_property: bool = False
    mapper: str = "twinplane"

    @property
    def polls_per_second(self) -> float:
        """Polls the load asks for per second."""
        units = self.devices * (self.properties if self.per_property else 1)
        return units * 1000 / self.cycle_ms

    @property
    def samples_per_poll(self) -> int:
        """Property values one poll reads."""
        return 1 if self.per_property else self.properties


def expected_polls(load: WindowLoad, window_s: float) -> float:
    """Polls the load asks for in ``window_s`` seconds."""
    return load.polls_per_second * window_s


def on_time_pct(on_time: float | None, expected: float) -> float | None:
    """``on_time`` as a percentage of ``expected`` polls, capped at 100; ``None`` if unknown."""
    if on_time is None or expected <= 0:
        return None
    return min(100.0, max(0.0, on_time / expected * 100))


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or ``None`` when either is unknown or the denominator 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def _delta(name: str, first: Snapshot, last: Snapshot) -> float | None:
    a, b = first.total(name), last.total(name)
    return None if a is None or b is None else b - a


def _hist_delta(name: str, first: Snapshot, last: Snapshot) -> Histogram | None:
    b = last.histogram(name)
    return None if b is None else b.delta(first.histogram(name))


def _us(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e6, 2)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def quantile_ms(hist: Histogram | None, q: float, max_s: float | None = None) -> float | None:
    """The ``q``-quantile of ``hist`` in milliseconds, at most ``max_s`` (when known).

    ``max_s`` is the largest value observed: a quantile interpolated within its bucket may exceed
    it, and a quantile is never above the observed maximum.
    """
    value = None if hist is None else hist.quantile(q)
    if value is not None and max_s is not None:
        value = min(value, max_s)
    return _ms(value)


def _twin_updates_name(snapshot: Snapshot) -> str | None:
    return next((n for n in (TWIN_UPDATES, DMI_CHANGES) if n in snapshot), None)


def _per_s(value: float | None, seconds: float) -> float | None:
    return None if value is None or seconds <= 0 else value / seconds


def summarize(ticks: Sequence[Tick], load: WindowLoad, *, mqtt: bool) -> dict[str, Any]:
    """The window's figures (see ``results.json`` in ``docs/benchmarks.md``) and its series.

    Args:
        ticks: The scrapes, the first at the window's start, at least two.
        load: The load that ran.
        mqtt: A broker was configured (``mqtt_publishes_per_s`` is ``None`` otherwise).
    """
    first, last = ticks[0], ticks[-1]
    window = last.t - first.t
    m0, m1, e0, e1 = first.mapper, last.mapper, first.edge, last.edge
    wanted = [POLLS, ON_TIME, LATE, POLL_ERRORS, OVERRUNS, MAPPER_CHANGES, LATENESS + "_bucket"]
    missing = [n for n in wanted if n not in m1]
    wanted_edge = [TO_PERSISTED + "_bucket", TO_APPLIED + "_bucket", TO_PERSISTED_MAX]
    missing += [n for n in [TWIN_UPDATES, *wanted_edge, TO_APPLIED_MAX] if n not in e1]
    polls = _delta(POLLS, m0, m1)
    twin_name = _twin_updates_name(e1)
    twin_updates = _delta(twin_name, e0, e1) if twin_name else None
    if mqtt and MQTT_PUBLISHED not in e1:
        missing.append(MQTT_PUBLISHED)
    mqtt_published = _delta(MQTT_PUBLISHED, e0, e1) if mqtt else None
    samples = None if polls is None else polls * load.samples_per_poll
    to_stored = _hist_delta(TO_PERSISTED, e0, e1)
    to_applied = _hist_delta(TO_APPLIED, e0, e1)
    lateness = _hist_delta(LATENESS, m0, m1)
    cpu = {p: _cpu(first, last, p) for p in PROCESSES}
    hwm = {p: _hwm(ticks, p) for p in PROCESSES}
    cpu_sut = None if cpu["edge"] is None or cpu["mapper"] is None else cpu["edge"] + cpu["mapper"]
    edge_mapper = (
        None if hwm["edge"] is None or hwm["mapper"] is None else hwm["edge"] + hwm["mapper"]
    )
    stored_max, applied_max = e1.total(TO_PERSISTED_MAX), e1.total(TO_APPLIED_MAX)
    on_time = _delta(ON_TIME, m0, m1)
    expected = expected_polls(load, window)
    return {
        "mapper": load.mapper,
        "window_s": round(window, 3),
        "polls": polls,
        "polls_expected": expected,
        "polls_on_time": on_time,
        "polls_per_s": _per_s(polls, window),
        "polls_on_time_pct": on_time_pct(on_time, expected),
        "polls_late": _delta(LATE, m0, m1),
        "poll_errors": _delta(POLL_ERRORS, m0, m1),
        "overruns": _delta(OVERRUNS, m0, m1),
        "mapper_twin_changes": _delta(MAPPER_CHANGES, m0, m1),
        "poll_lateness_p99_ms": quantile_ms(lateness, 0.99),
        "read_to_stored_p50_ms": quantile_ms(to_stored, 0.5, stored_max),
        "read_to_stored_p99_ms": quantile_ms(to_stored, 0.99, stored_max),
        "read_to_stored_max_ms": _ms(stored_max),
        "read_to_applied_p50_ms": quantile_ms(to_applied, 0.5, applied_max),
        "read_to_applied_p99_ms": quantile_ms(to_applied, 0.99, applied_max),
        "read_to_applied_max_ms": _ms(applied_max),
        "twin_updates_per_s": _per_s(twin_updates, window),
        "dmi_reports_per_s": _per_s(_delta(DMI_REPORTS, e0, e1), window),
        "mapper_report_p50_ms": quantile_ms(_hist_delta(REPORT_TIME, m0, m1), 0.5),
        "mapper_report_p99_ms": quantile_ms(_hist_delta(REPORT_TIME, m0, m1), 0.99),
        "twin_updates_metric": twin_name,
        "samples_per_s": _per_s(samples, window),
        "mqtt_publishes_per_s": _per_s(mqtt_published, window),
        "cpu_s_per_process": cpu,
        "cpu_s_per_sample": ratio(cpu_sut, samples),
        "mapper_cpu_us_per_sample": _us(ratio(cpu["mapper"], samples)),
        "edge_cpu_us_per_sample": _us(ratio(cpu["edge"], samples)),
        "rss_mb_per_process": hwm,
        "rss_mb_edge_plus_mapper": edge_mapper,
        "missing_metrics": missing,
        "series": series(ticks, load),
    }


def _cpu(first: Tick, last: Tick, proc: str) -> float | None:
    a, b = first.usage.get(proc), last.usage.get(proc)
    return None if a is None or b is None else round(b.cpu_s - a.cpu_s, 3)


def _hwm(ticks: Sequence[Tick], proc: str) -> float | None:
    peaks = [u.hwm_mb for t in ticks if (u := t.usage.get(proc)) is not None]
    return round(max(peaks), 1) if peaks else None


def series(ticks: Sequence[Tick], load: WindowLoad) -> dict[str, list[float | None]]:
    """Per-second figures between consecutive ticks, keyed by name (``t``: seconds)."""
    out: dict[str, list[float | None]] = {
        k: []
        for k in (
            "t",
            "polls_per_s",
            "twin_updates_per_s",
            "polls_on_time_pct",
            "read_to_stored_p50_ms",
            "read_to_stored_p99_ms",
            "read_to_applied_p50_ms",
            "read_to_applied_p99_ms",
        )
    }
    for prev, cur in itertools.pairwise(ticks):
        dt = cur.t - prev.t
        twin_name = _twin_updates_name(cur.edge)
        to_stored = _hist_delta(TO_PERSISTED, prev.edge, cur.edge)
        to_applied = _hist_delta(TO_APPLIED, prev.edge, cur.edge)
        on_time = _delta(ON_TIME, prev.mapper, cur.mapper)
        stored_max = cur.edge.total(TO_PERSISTED_MAX)
        applied_max = cur.edge.total(TO_APPLIED_MAX)
        out["t"].append(round(cur.t, 3))
        out["polls_per_s"].append(_per_s(_delta(POLLS, prev.mapper, cur.mapper), dt))
        twins = _delta(twin_name, prev.edge, cur.edge) if twin_name else None
        out["twin_updates_per_s"].append(_per_s(twins, dt))
        out["polls_on_time_pct"].append(on_time_pct(on_time, expected_polls(load, dt)))
        out["read_to_stored_p50_ms"].append(quantile_ms(to_stored, 0.5, stored_max))
        out["read_to_stored_p99_ms"].append(quantile_ms(to_stored, 0.99, stored_max))
        out["read_to_applied_p50_ms"].append(quantile_ms(to_applied, 0.5, applied_max))
        out["read_to_applied_p99_ms"].append(quantile_ms(to_applied, 0.99, applied_max))
    return out
