"""The Prometheus text writer: escaping, number formats, one HELP/TYPE per family."""

from __future__ import annotations

import math

import pytest

from twinplane.edge.metrics import MetricsWriter, RequestCounts


def test_escapes_help_and_label_values() -> None:
    """Backslashes, quotes and newlines are escaped as text format 0.0.4 requires."""
    out = MetricsWriter(prefix="x_")
    out.family("m", "gauge", "a \\ help\nline", [({"l": 'q"b\\n\nz'}, 1)])
    assert out.render() == (
        '# HELP x_m a \\\\ help\\nline\n# TYPE x_m gauge\nx_m{l="q\\"b\\\\n\\nz"} 1\n'
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3, "3"),
        (2.0, "2"),
        (0.25, "0.25"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
    ],
)
def test_number_formats(value: float, text: str) -> None:
    """Integers print without a fraction; infinities and NaN use the format's spelling."""
    out = MetricsWriter(prefix="")
    out.single("v", "gauge", "h", value)
    assert out.render().splitlines()[-1] == f"v {text}"


def test_a_family_is_written_once() -> None:
    """Writing the same family twice is a bug, caught at once."""
    out = MetricsWriter()
    out.single("a_total", "counter", "h", 1)
    with pytest.raises(ValueError, match="twinplane_a_total"):
        out.single("a_total", "counter", "h", 2)


def test_a_family_without_samples_keeps_help_and_type() -> None:
    """A family with no samples yet (no mapper registered) still declares itself."""
    out = MetricsWriter(prefix="")
    out.family("mapper_pending_ops", "gauge", "h", [])
    assert out.render() == "# HELP mapper_pending_ops h\n# TYPE mapper_pending_ops gauge\n"


def test_request_counts_add_up() -> None:
    """Requests are counted per method, route and code."""
    counts = RequestCounts()
    counts.add("GET", "/healthz", 200)
    counts.add("GET", "/healthz", 200)
    counts.add("GET", "/healthz", 503)
    assert counts.counts == {("GET", "/healthz", 200): 2, ("GET", "/healthz", 503): 1}
