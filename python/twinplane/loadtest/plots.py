"""``latency.png`` and ``throughput.png`` of a ``twinplane bench scale`` run (matplotlib, Agg).

matplotlib is the ``bench`` extra: it is imported when plotting. The plots illustrate the
results, they are not the results: when matplotlib is missing or fails, :func:`plot` raises
:class:`PlotsUnavailable` saying why (and what to install), and the caller warns and goes on
(``results.json`` and ``results.md`` are written before).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["FILES", "PlotsUnavailable", "plot"]

Series = Mapping[str, Sequence[float | None]]

FILES: Final = ("latency.png", "throughput.png")
"""The plots :func:`plot` writes."""


class PlotsUnavailable(Exception):  # noqa: N818 - reads as what happened
    """The plots could not be drawn: matplotlib is missing, or it failed."""


def _pyplot() -> Any:  # noqa: ANN401 - the matplotlib.pyplot module
    try:
        import matplotlib as mpl  # noqa: PLC0415 - optional: the bench extra

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError as err:
        raise PlotsUnavailable(
            f"matplotlib is not installed ({err}): pip install 'twinplane[bench]'"
        ) from None
    return plt


def _line(ax: Axes, series: Series, key: str, label: str, style: str = "-") -> None:
    t = [float("nan") if v is None else v for v in series.get("t") or []]
    values = series.get(key) or []
    ys = [float("nan") if v is None else v for v in values]
    if any(v is not None for v in values):
        ax.plot(t, ys, style, label=label, linewidth=1.2)


def plot(
    out: Path, ours: Series, baseline: Series | None = None, baseline_label: str = "baseline"
) -> list[Path]:
    """Writes ``latency.png`` and ``throughput.png`` into ``out``; their paths.

    Plots of an earlier run in ``out`` are removed first, so a failure leaves none that could
    be taken for this run's.

    Args:
        out: The results directory.
        ours: twinplane's per-second series.
        baseline: The baseline's, if one ran.
        baseline_label: The baseline's name in the legends.

    Raises:
        PlotsUnavailable: matplotlib is not installed, or it failed (the message says how).
    """
    for name in FILES:
        (out / name).unlink(missing_ok=True)
    plt = _pyplot()
    try:
        return _draw(plt, out, ours, baseline, baseline_label)
    except Exception as err:  # whatever matplotlib raises: the run's results stand
        plt.close("all")
        for name in FILES:
            (out / name).unlink(missing_ok=True)
        raise PlotsUnavailable(f"matplotlib failed: {type(err).__name__}: {err}") from err


def _draw(
    plt: Any,  # noqa: ANN401 - the matplotlib.pyplot module
    out: Path,
    ours: Series,
    baseline: Series | None,
    baseline_label: str,
) -> list[Path]:
    runs: list[tuple[str, Series, str]] = [("twinplane", ours, "-")]
    if baseline is not None:
        runs.append((baseline_label, baseline, "--"))

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
    latency = out / FILES[0]
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
    throughput = out / FILES[1]
    fig.tight_layout()
    fig.savefig(throughput, dpi=110)
    plt.close(fig)
    return [latency, throughput]
