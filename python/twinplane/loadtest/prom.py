"""Reading the Prometheus text exposition format (0.0.4), and histogram quantiles.

:func:`parse` turns a ``/metrics`` answer into a :class:`Snapshot`; a snapshot sums counters over
their labels (:meth:`Snapshot.total`) and collects histograms (:meth:`Snapshot.histogram`).
:meth:`Histogram.delta` and :func:`histogram_quantile` compute a quantile over a window the way
Prometheus' ``histogram_quantile`` does (linear within a bucket). Missing metrics are ``None``,
never errors: the processes measured may not export every name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

__all__ = ["Histogram", "Snapshot", "histogram_quantile", "parse"]

_SAMPLE: Final = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?\s*$")
_LABEL: Final = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_UNESCAPE: Final = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}

Labels = dict[str, str]


def _unescape(text: str) -> str:
    return re.sub(r'\\[\\"n]', lambda m: _UNESCAPE[m.group(0)], text)


def _labels(text: str | None) -> Labels:
    if not text:
        return {}
    labels: Labels = {}
    pos = 0
    while pos < len(text):
        match = _LABEL.match(text, pos)
        if match is None or match.end() == pos:
            break
        labels[match.group(1)] = _unescape(match.group(2))
        pos = match.end()
    return labels


def _float(text: str) -> float | None:
    try:
        return float(text)  # also +Inf, -Inf, NaN
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Histogram:
    """A histogram's cumulative buckets ``(le, count)`` (ascending, ``+Inf`` last), count, sum."""

    buckets: tuple[tuple[float, float], ...]
    count: float
    sum: float

    def delta(self, earlier: Histogram | None) -> Histogram:
        """The observations made since ``earlier`` (bucket by bucket; ``None``: since start)."""
        if earlier is None:
            return self
        before = dict(earlier.buckets)
        buckets = tuple((le, max(0.0, n - before.get(le, 0.0))) for le, n in self.buckets)
        return Histogram(buckets, max(0.0, self.count - earlier.count), self.sum - earlier.sum)

    def quantile(self, q: float) -> float | None:
        """:func:`histogram_quantile` of these buckets."""
        return histogram_quantile(q, self.buckets)


def histogram_quantile(  # noqa: PLR0911 - one return per case of Prometheus' function
    q: float, buckets: Sequence[tuple[float, float]]
) -> float | None:
    """The ``q``-quantile of cumulative ``buckets``, as Prometheus' ``histogram_quantile``.

    The bucket holding the quantile's rank is found and the value interpolated linearly between
    its lower and upper bounds (the first bucket starts at 0 unless its bound is negative). A
    rank in the ``+Inf`` bucket gives the largest finite bound.

    Returns:
        The quantile, or ``None`` without observations or without a ``+Inf`` bucket.
    """
    if not buckets or not math.isinf(buckets[-1][0]):
        return None
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    total = buckets[-1][1]
    if total <= 0 or math.isnan(total):
        return None
    rank = q * total
    index = next((i for i, (_, n) in enumerate(buckets[:-1]) if n >= rank), len(buckets) - 1)
    if index == len(buckets) - 1:
        return buckets[-2][0] if len(buckets) >= 2 else None  # noqa: PLR2004
    upper, count = buckets[index]
    if index == 0:
        if upper <= 0:
            return upper
        lower, below = 0.0, 0.0
    else:
        lower, below = buckets[index - 1]
    in_bucket = count - below
    if in_bucket <= 0:
        return upper
    return lower + (upper - lower) * ((rank - below) / in_bucket)


@dataclass(slots=True)
class Snapshot:
    """One scrape: every sample by metric name, as ``(labels, value)`` pairs."""

    samples: dict[str, list[tuple[Labels, float]]] = field(default_factory=dict)

    def __contains__(self, name: object) -> bool:
        return name in self.samples

    def names(self) -> list[str]:
        """Every metric name seen (histogram series by their ``_bucket``/``_count`` names)."""
        return sorted(self.samples)

    def total(self, name: str, **match: str) -> float | None:
        """The sum of ``name`` over every label set that has the ``match`` labels; or ``None``."""
        series = self.samples.get(name)
        if series is None:
            return None
        return sum(v for labels, v in series if _matches(labels, match))

    def histogram(self, name: str) -> Histogram | None:
        """Histogram ``name`` (without ``_bucket``), its series summed over other labels."""
        series = self.samples.get(name + "_bucket")
        if series is None:
            return None
        by_le: dict[float, float] = {}
        for labels, value in series:
            le = _float(labels.get("le", ""))
            if le is not None:
                by_le[le] = by_le.get(le, 0.0) + value
        count = self.total(name + "_count")
        total = self.total(name + "_sum")
        buckets = tuple(sorted(by_le.items()))
        if count is None:
            count = buckets[-1][1] if buckets else 0.0
        return Histogram(buckets, count, total or 0.0)


def _matches(labels: Mapping[str, str], match: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in match.items())


def parse(text: str) -> Snapshot:
    """Parses Prometheus text; lines it cannot read are skipped."""
    snapshot = Snapshot()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        value = _float(match.group(3))
        if value is None:
            continue
        snapshot.samples.setdefault(match.group(1), []).append((_labels(match.group(2)), value))
    return snapshot
