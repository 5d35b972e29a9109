"""The engine's latency histograms: read → applied, read → persisted, quantiles and reset."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dmi_helpers import report_request
from twinplane.twin import Engine, LatencyHistogram, PropertySpec

pytestmark = pytest.mark.engine

BOUNDS_MS = [
    1, 2, 3, 4, 5, 7, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 100, 125, 150, 175, 200, 250,
    300, 350, 400, 450, 500, 600, 700, 800, 900, 1000, 1250, 1500, 2000, 2500, 3000, 4000, 5000,
    7500, 10000, 15000, 30000, 60000,
]  # fmt: skip
"""The documented bucket bounds."""

SPECS: list[PropertySpec] = [{"name": "temp", "type": "INT"}, {"name": "rpm", "type": "INT"}]
NOW = 1_700_000_000_000


def engine(*, track_dirty: bool = False) -> Engine:
    """An engine with ``default/pump`` (two INT properties)."""
    e = Engine(track_dirty=track_dirty)
    e.upsert_device("default/pump", SPECS)
    return e


def dmi(values: dict[str, str], read_ts: int | None) -> bytes:
    """A mapper's DMI report for ``default/pump``, reported timestamp ``read_ts`` (or empty)."""
    metadata = {"timestamp": "" if read_ts is None else str(read_ts)}
    return report_request("pump", values, metadata=metadata).SerializeToString()


def bucket(ms: float) -> int:
    """The index of the bucket holding ``ms`` (``le`` semantics)."""
    return next((i for i, b in enumerate(BOUNDS_MS) if ms <= b), len(BOUNDS_MS))


def reference_quantile(q: float, values: Sequence[int]) -> float | None:
    """Prometheus' ``histogram_quantile`` over the documented buckets, capped at the max."""
    if not values:
        return None
    clamped = [max(v, 0) for v in values]
    counts = [0] * (len(BOUNDS_MS) + 1)
    for v in clamped:
        counts[bucket(v)] += 1
    rank, below, top = q * len(values), 0, float(max(clamped))
    for i, n in enumerate(counts):
        if n and below + n >= rank:
            lower = 0.0 if i == 0 else float(BOUNDS_MS[i - 1])
            upper = max(float(BOUNDS_MS[i]) if i < len(BOUNDS_MS) else top, lower)
            return min(lower + (upper - lower) * min(max((rank - below) / n, 0.0), 1.0), top)
        below += n
    return top


def test_dmi_report_records_read_to_applied() -> None:
    """Each reported twin with a read timestamp counts ``now - ts``, changed or not."""
    e = engine()
    payload = dmi({"temp": "20", "rpm": "900"}, NOW - 42)
    assert len(e.apply_dmi_report(payload, NOW)) == 2
    assert not e.apply_dmi_report(payload, NOW + 58)  # same values: no change, still recorded
    applied = e.latency()["applied"]
    assert applied.count == 4
    assert applied.sum_ms == 42 * 2 + 100 * 2
    assert applied.max_ms == 100
    assert applied.counts[bucket(42)] == 2
    assert applied.counts[bucket(100)] == 2
    assert sum(applied.counts) == applied.count
    assert e.latency()["persisted"].count == 0


def test_dmi_report_without_timestamp_is_not_recorded() -> None:
    """No or an empty ``timestamp`` (mapper-framework's) is applied but not measured."""
    e = engine()
    e.apply_dmi_report(dmi({"temp": "1"}, None), NOW)
    e.apply_dmi_report(report_request("pump", {"rpm": "2"}).SerializeToString(), NOW)
    reported = e.twins("default/pump")["temp"]["reported"]
    assert reported is not None
    assert reported["value"] == "1"
    assert e.latency()["applied"].count == 0


def test_clock_skew_counts_as_zero() -> None:
    """A read timestamp after ``now`` (clock skew) lands in the first bucket as 0 ms."""
    e = engine()
    e.apply_dmi_report(dmi({"temp": "1"}, NOW + 500), NOW)
    applied = e.latency()["applied"]
    assert (applied.counts[0], applied.sum_ms, applied.max_ms) == (1, 0.0, 0.0)


def test_apply_reported_records_against_the_clock() -> None:
    """``apply_reported`` measures each value's read time against the system clock."""
    e = engine()
    before = time.time_ns() // 1_000_000
    e.apply_reported("default/pump", [("temp", "3", before - 200), ("rpm", "4", before - 200)])
    after = time.time_ns() // 1_000_000
    applied = e.latency()["applied"]
    assert applied.count == 2
    assert 200 <= applied.max_ms <= 200 + (after - before) + 1


def test_persisted_waits_for_mark_persisted() -> None:
    """``take_dirty`` remembers read times; ``mark_persisted`` records and forgets them."""
    e = engine(track_dirty=True)
    e.apply_dmi_report(dmi({"temp": "20", "rpm": "7"}, NOW - 10), NOW)
    assert len(e.take_dirty()) == 2
    assert e.latency()["persisted"].count == 0
    e.mark_persisted(NOW + 990)
    persisted = e.latency()["persisted"]
    assert (persisted.count, persisted.sum_ms, persisted.max_ms) == (2, 2000.0, 1000.0)
    assert persisted.counts[bucket(1000)] == 2
    e.mark_persisted(NOW + 5000)
    assert e.latency()["persisted"].count == 2, "nothing new to mark"


def test_failed_flush_read_times_accumulate() -> None:
    """Read times of a take not marked persisted (a failed write) are kept for the next mark."""
    e = engine(track_dirty=True)
    e.apply_dmi_report(dmi({"temp": "1"}, NOW), NOW)
    e.take_dirty()  # the write fails: no mark
    e.apply_dmi_report(dmi({"temp": "2"}, NOW + 100), NOW + 100)
    e.take_dirty()
    e.mark_persisted(NOW + 300)
    persisted = e.latency()["persisted"]
    assert (persisted.count, persisted.sum_ms, persisted.max_ms) == (2, 500.0, 300.0)


def test_reset_latency_zeroes_both() -> None:
    """``reset_latency`` empties both histograms and forgets read times not yet marked."""
    e = engine(track_dirty=True)
    e.apply_dmi_report(dmi({"temp": "1"}, NOW - 5), NOW)
    e.take_dirty()
    e.reset_latency()
    e.mark_persisted(NOW)
    for hist in e.latency().values():
        assert (hist.count, hist.sum_ms, hist.max_ms, sum(hist.counts)) == (0, 0.0, 0.0, 0)
        assert hist.quantile(0.5) is None


def test_histogram_shape() -> None:
    """Bounds are the documented ones; counts have one more entry (``+Inf``)."""
    hist = engine().latency()["applied"]
    assert isinstance(hist, LatencyHistogram)
    assert hist.bounds_ms == [float(b) for b in BOUNDS_MS]
    assert hist.counts == [0] * (len(BOUNDS_MS) + 1)


@pytest.mark.parametrize("q", [-0.1, 1.5, math.nan, math.inf])
def test_quantile_outside_unit_interval_is_an_error(q: float) -> None:
    """``q`` outside [0, 1] raises ValueError naming it."""
    e = engine()
    e.apply_dmi_report(dmi({"temp": "1"}, NOW - 5), NOW)
    with pytest.raises(ValueError, match="q="):
        e.latency()["applied"].quantile(q)


def test_quantile_interpolates_inside_the_bucket() -> None:
    """Ten values in (10, 15] give a median halfway through the bucket, never above the max."""
    e = engine()
    for i in range(10):
        e.apply_dmi_report(dmi({"temp": str(i)}, NOW - 15), NOW)
    applied = e.latency()["applied"]
    assert applied.quantile(0.5) == 12.5
    assert applied.quantile(1.0) == 15.0
    assert applied.quantile(0.0) == 10.0


@given(
    st.lists(st.integers(-1_000, 200_000), min_size=1, max_size=60),
    st.lists(st.floats(0.0, 1.0), min_size=1, max_size=10),
)
def test_quantiles_match_reference(latencies: list[int], qs: list[float]) -> None:
    """Counts add up, and quantiles match the reference, grow with q and stay <= max."""
    e = engine()
    for i, latency in enumerate(latencies):
        e.apply_dmi_report(dmi({"temp": str(i)}, NOW - latency), NOW)
    applied = e.latency()["applied"]
    assert applied.count == len(latencies) == sum(applied.counts)
    assert applied.sum_ms == sum(max(v, 0) for v in latencies)
    last = 0.0
    for q in sorted(qs):
        got = applied.quantile(q)
        assert got is not None
        assert got == pytest.approx(reference_quantile(q, latencies))
        assert last <= got <= applied.max_ms
        last = got
