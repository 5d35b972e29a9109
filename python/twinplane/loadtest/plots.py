"""``latency.png`` and ``throughput.png`` of a ``twinplane bench scale`` run (matplotlib, Agg).

matplotlib is the ``bench`` extra: it is imported when plotting, and its absence is a
:class:`~twinplane.loadtest.procs.BenchError` saying what to install.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twinplane.loadtest.procs import BenchError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot"]

Series = Mapping[str, Sequence[float | None]]


def _pyplot() -> Any:  # noqa: ANN401 - the matplotlib.pyplot module
    try:
        import matplotlib as mpl  # noqa: PLC0415 - optional: the bench extra

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError as err:
        raise BenchError(f"plots need matplotlib ({err}): pip install 'twinplane[bench]'") from None
    return plt


def _line(ax: Axes, series: Series, key: str, label: str, style: str = "-") -> None:
    t = [float("nan") if v is None else v for v in series.get("t") or []]
    values = series.get(key) or []
    ys = [float("nan") if v is None else v for v in values]
    if any(v is not None for v in values):
        ax.plot(t, ys, style, label=label, linewidth=1.2)


def plot(out: Path, ours: Series, baseline: Series | None = None) -> list[Path]:
    """Writes ``latency.png`` and ``throughput.png`` into ``out``; their paths.

    Raises:
        BenchError: matplotlib is not installed.
    """
    plt = _pyplot()
    runs: list[tuple[str, Series, str]] = [("twinplane", ours, "-")]
    if baseline is not None:
        runs.append(("kubeedge-style", baseline, "--"))

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, series, style in runs:
        for key, label in (
            ("read_to_stored_p50_ms", "read→stored p50"),
            ("read_to_stored_p99_ms", "read→stored p99"),
            ("read_to_applied_p50_ms", "read→applied p50"),
            ("read_to_applied_p99_ms", "read→applied p99"),
        ):
            _line(ax, series, key, f"{label} ({name})", style)
    ax.set(xlabel="seconds into the window", ylabel="ms", title="Latency per second")
    ax.grid(visible=True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "no latency histograms exported", ha="center", transform=ax.transAxes)
    latency = out / "latency.png"
    fig.tight_layout()
    fig.savefig(latency, dpi=110)
    plt.close(fig)

    fig, (rates, pct) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    for name, series, style in runs:
        _line(rates, series, "polls_per_s", f"polls/s ({name})", style)
        _line(rates, series, "twin_updates_per_s", f"twin updates/s ({name})", style)
        _line(pct, series, "polls_on_time_pct", f"polls on time ({name})", style)
    rates.set(ylabel="per second", title="Throughput per second")
    pct.set(xlabel="seconds into the window", ylabel="%", ylim=(0, 105))
    for ax_ in (rates, pct):
        ax_.grid(visible=True, alpha=0.3)
        if ax_.get_legend_handles_labels()[0]:
            ax_.legend(fontsize="small")
    throughput = out / "throughput.png"
    fig.tight_layout()
    fig.savefig(throughput, dpi=110)
    plt.close(fig)
    return [latency, throughput]
