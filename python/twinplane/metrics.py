"""A small Prometheus text-format (0.0.4) writer shared by the device manager and the mapper.

:class:`MetricsWriter` builds an exposition one family at a time (``# HELP``, ``# TYPE``, then
the samples, with the escaping the format requires; a histogram as its ``_bucket``, ``_sum`` and
``_count`` samples); :func:`write_stats` exports a ``stats()`` mapping; :data:`ENGINE_STATS`
names the twin engine's ``stats()`` keys, which both processes have.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Literal

__all__ = [
    "CONTENT_TYPE",
    "ENGINE_STATS",
    "Labels",
    "MetricType",
    "MetricsWriter",
    "Sample",
    "write_stats",
]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
"""The ``Content-Type`` of the Prometheus text exposition format."""

MetricType = Literal["counter", "gauge"]
Labels = Mapping[str, str]
Sample = tuple[Labels, float]

ENGINE_STATS: Final[dict[str, tuple[str, MetricType, str]]] = {
    "devices": ("engine_devices", "gauge", "Devices held by the twin engine."),
    "properties": ("engine_properties", "gauge", "Twin properties held by the twin engine."),
    "layouts": ("engine_layouts", "gauge", "Distinct compiled property layouts in the engine."),
    "queued": ("engine_queued_samples", "gauge", "Samples waiting in the engine's queues."),
    "dropped": ("engine_dropped_samples_total", "counter", "Samples dropped by full queues."),
}
"""The twin engine's ``stats()`` keys: metric name (without prefix), type and help."""

_PREFIX: Final = "twinplane_"


class MetricsWriter:
    """Builds a Prometheus text exposition, one metric family at a time.

    Each family gets its ``# HELP`` and ``# TYPE`` lines once, then its samples; label values
    and help texts are escaped as the format requires.
    """

    def __init__(self, prefix: str = _PREFIX) -> None:
        self._prefix = prefix
        self._lines: list[str] = []
        self._seen: set[str] = set()

    def family(
        self, name: str, kind: MetricType, help_text: str, samples: Iterable[Sample]
    ) -> None:
        """Adds one family (``name`` without the prefix) with its samples.

        Raises:
            ValueError: The family was already written.
        """
        full = self._prefix + name
        if full in self._seen:
            raise ValueError(f"metric family {full} written twice")
        self._seen.add(full)
        self._lines.append(f"# HELP {full} {_escape_help(help_text)}")
        self._lines.append(f"# TYPE {full} {kind}")
        for labels, value in samples:
            self._lines.append(f"{full}{_labels(labels)} {_number(value)}")

    def single(self, name: str, kind: MetricType, help_text: str, value: float) -> None:
        """Adds a family with one unlabelled sample."""
        self.family(name, kind, help_text, [({}, value)])

    def histogram(  # noqa: PLR0913 - one argument per part of a Prometheus histogram
        self,
        name: str,
        help_text: str,
        bounds: Sequence[float],
        counts: Sequence[int],
        *,
        sum_: float,
        count: int,
    ) -> None:
        """Adds an unlabelled histogram: cumulative ``_bucket{le=...}``, ``_sum``, ``_count``.

        Args:
            name: Family name without the prefix (and without ``_bucket``).
            help_text: The ``# HELP`` text.
            bounds: Finite upper bounds, ascending.
            counts: Non-cumulative counts per bucket, ``len(bounds) + 1`` (the last is ``+Inf``).
            sum_: Sum of the observed values.
            count: Number of observations.

        Raises:
            ValueError: The family was already written, or ``counts`` does not fit ``bounds``.
        """
        if len(counts) != len(bounds) + 1:
            raise ValueError(f"histogram {name}: {len(counts)} counts for {len(bounds)} bounds")
        full = self._prefix + name
        if full in self._seen:
            raise ValueError(f"metric family {full} written twice")
        self._seen.add(full)
        lines = self._lines
        lines.append(f"# HELP {full} {_escape_help(help_text)}")
        lines.append(f"# TYPE {full} histogram")
        cumulative = 0
        for bound, n in zip([*bounds, math.inf], counts, strict=True):
            cumulative += n
            lines.append(f'{full}_bucket{{le="{_number(bound)}"}} {cumulative}')
        lines.append(f"{full}_sum {_number(sum_)}")
        lines.append(f"{full}_count {count}")

    def render(self) -> str:
        """The exposition text (ends with a newline)."""
        return "\n".join(self._lines) + "\n"


def write_stats(
    out: MetricsWriter,
    stats: Mapping[str, int],
    known: Mapping[str, tuple[str, MetricType, str]],
    prefix: str,
    generic_help: str,
) -> None:
    """Known keys get their name, type and help; a key added later is still exported (gauge)."""
    for key, value in stats.items():
        name, kind, help_text = known.get(key, (prefix + _snake(key), "gauge", generic_help))
        out.single(name, kind, help_text if key in known else f"{generic_help} {key!r}.", value)


def _snake(key: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in key.lower())


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() else repr(value)
