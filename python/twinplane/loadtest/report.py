"""The results of ``twinplane bench scale``: targets, ratios, hardware, the table and Markdown.

:func:`targets` judges a run against the scale targets, :func:`ratios` compares it with a
baseline measured in the same run, :func:`hardware` says where it ran; :func:`table` renders the
figures for the terminal and :func:`markdown` for ``results.md``.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from twinplane.loadtest.baselines import BASELINES, Baseline
from twinplane.loadtest.window import ratio

__all__ = ["ROWS", "TARGETS", "hardware", "markdown", "ratios", "table", "targets"]

TARGETS: Final[tuple[tuple[str, str, float], ...]] = (
    ("polls_on_time_pct", ">=", 99.0),
    ("read_to_stored_p99_ms", "<", 1000.0),
    ("rss_mb_edge_plus_mapper", "<", 1024.0),
    ("duration_s", ">=", 60.0),
)
"""``(figure, comparison, threshold)`` of each scale target."""

_COMPARE: Final[dict[str, Callable[[float, float], bool]]] = {
    ">=": lambda v, t: v >= t,
    "<": lambda v, t: v < t,
}

ROWS: Final[tuple[tuple[str, str, str], ...]] = (
    ("onboarding.online", "devices online before the window", ""),
    ("onboarding.seconds", "onboarding (apply to all online)", "s"),
    ("polls_on_time_pct", "polls on time", "%"),
    ("polls_per_s", "polls/s", ""),
    ("samples_per_s", "samples/s", ""),
    ("twin_updates_per_s", "twin updates/s", ""),
    ("dmi_reports_per_s", "ReportDeviceStatus calls/s", ""),
    ("mapper_report_p50_ms", "ReportDeviceStatus in the mapper p50", "ms"),
    ("mapper_report_p99_ms", "ReportDeviceStatus in the mapper p99", "ms"),
    ("mqtt_publishes_per_s", "MQTT publishes/s", ""),
    ("poll_errors", "poll errors", ""),
    ("poll_lateness_p99_ms", "poll lateness p99", "ms"),
    ("read_to_stored_p50_ms", "read→stored p50", "ms"),
    ("read_to_stored_p99_ms", "read→stored p99", "ms"),
    ("read_to_stored_max_ms", "read→stored max", "ms"),
    ("read_to_applied_p50_ms", "read→applied p50", "ms"),
    ("read_to_applied_p99_ms", "read→applied p99", "ms"),
    ("cpu_s.sim", "CPU s, simulator", "s"),
    ("cpu_s.edge", "CPU s, device manager", "s"),
    ("cpu_s.mapper", "CPU s, mapper", "s"),
    ("cpu_us_per_sample", "CPU µs per sample (edge+mapper)", "µs"),
    ("mapper_cpu_us_per_sample", "CPU µs per sample, mapper", "µs"),
    ("edge_cpu_us_per_sample", "CPU µs per sample, device manager", "µs"),
    ("rss_mb.sim", "peak RSS, simulator", "MiB"),
    ("rss_mb.edge", "peak RSS, device manager", "MiB"),
    ("rss_mb.mapper", "peak RSS, mapper", "MiB"),
    ("rss_mb_edge_plus_mapper", "peak RSS, edge + mapper", "MiB"),
)
"""``(figure, label, unit)`` of each table row; ``a.b`` reads ``<a>_per_process[b]``."""

_RATIOS: Final[tuple[tuple[str, str], ...]] = (
    ("samples_per_s", "samples/s, twinplane / baseline"),
    ("twin_updates_per_s", "twin updates/s, twinplane / baseline"),
    ("cpu_s_per_sample", "CPU s per sample, baseline / twinplane"),
    ("mapper_cpu_us_per_sample", "mapper CPU per sample, baseline / twinplane"),
    ("edge_cpu_us_per_sample", "device manager CPU per sample, baseline / twinplane"),
    ("read_to_stored_p99_ms", "read→stored p99, baseline / twinplane"),
)


def targets(results: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target: its comparison, threshold, the value and ``pass`` (``None``: no value)."""
    out: dict[str, dict[str, Any]] = {}
    for name, op, threshold in TARGETS:
        value = results.get(name)
        verdict = None if value is None else _COMPARE[op](float(value), threshold)
        out[name] = {"op": op, "threshold": threshold, "value": value, "pass": verdict}
    return out


def ratios(ours: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """The run against the baseline: above 1, twinplane is better, in every ratio."""
    return {
        "samples_per_s": ratio(ours.get("samples_per_s"), base.get("samples_per_s")),
        "twin_updates_per_s": ratio(ours.get("twin_updates_per_s"), base.get("twin_updates_per_s")),
        "cpu_s_per_sample": ratio(base.get("cpu_s_per_sample"), ours.get("cpu_s_per_sample")),
        "mapper_cpu_us_per_sample": ratio(
            base.get("mapper_cpu_us_per_sample"), ours.get("mapper_cpu_us_per_sample")
        ),
        "edge_cpu_us_per_sample": ratio(
            base.get("edge_cpu_us_per_sample"), ours.get("edge_cpu_us_per_sample")
        ),
        "read_to_stored_p99_ms": ratio(
            base.get("read_to_stored_p99_ms"), ours.get("read_to_stored_p99_ms")
        ),
        "polls_on_time_pct": {
            "twinplane": ours.get("polls_on_time_pct"),
            "baseline": base.get("polls_on_time_pct"),
        },
    }


def hardware() -> dict[str, Any]:
    """CPU model, cores, memory, kernel and Python of this machine."""
    model = None
    memory_mb = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_mb = round(int(line.split()[1]) / 1024)
                break
    except OSError:
        pass
    return {
        "cpu_model": model or platform.processor() or None,
        "cores": os.cpu_count(),
        "memory_mb": memory_mb,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def _figure(results: Mapping[str, Any], key: str) -> float | None:
    if key == "cpu_us_per_sample":
        value = results.get("cpu_s_per_sample")
        return None if value is None else value * 1e6
    head, _, proc = key.partition(".")
    if head == "onboarding":
        value = (results.get("onboarding") or {}).get(proc)
    elif proc:
        per = results.get(f"{head}_per_process") or {}
        value = per.get(proc)
    else:
        value = results.get(key)
    return None if value is None else float(value)


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if unit in {"ms", "µs"}:
        text = f"{value:,.1f}" if value < 100 else f"{value:,.0f}"  # noqa: PLR2004
    elif unit == "s":
        text = f"{value:,.2f}"
    elif unit in {"%", "MiB"}:
        text = f"{value:,.1f}"
    else:
        text = f"{value:,.0f}"
    return f"{text} {unit}".rstrip() if unit else text


def _verdict(target: Mapping[str, Any] | None) -> str:
    if target is None:
        return ""
    mark = {True: "met", False: "NOT met", None: "n/a"}[target["pass"]]
    return f"{target['op']} {target['threshold']:g}: {mark}"


def _rows(results: Mapping[str, Any]) -> list[list[str]]:
    base = results.get("baseline")
    checks = results.get("targets") or {}
    rows = []
    for key, label, unit in ROWS:
        row = [label, _fmt(_figure(results, key), unit)]
        if base is not None:
            row.append(_fmt(_figure(base, key), unit))
        row.append(_verdict(checks.get(key)))
        rows.append(row)
    window = [f"window (warm-up {results['warmup_s']:g} s)", _fmt(results.get("window_s"), "s")]
    if base is not None:
        window.append(_fmt(base.get("window_s"), "s"))
    window.append(_verdict(checks.get("duration_s")))
    rows.append(window)
    return rows


def _baseline(results: Mapping[str, Any]) -> Baseline | None:
    name = results.get("baseline_name")
    return None if name is None else BASELINES.get(name)


def _baseline_label(results: Mapping[str, Any]) -> str:
    known = _baseline(results)
    return known.label if known is not None else str(results.get("baseline_name") or "baseline")


def _header(results: Mapping[str, Any]) -> list[str]:
    head = ["", "twinplane"]
    if results.get("baseline") is not None:
        head.append(_baseline_label(results))
    head.append("target")
    return head


def _title(results: Mapping[str, Any]) -> str:
    return (
        f"{results['devices']:,} devices x {results['properties']} properties, every "
        f"{results['cycle_ms']} ms, {results['devices_per_port']} devices per port, Modbus "
        f"{results.get('modbus_mode', 'one transaction at a time per connection')}"
    )


def table(results: Mapping[str, Any]) -> str:
    """The results as a plain-text table (with the ratios when a baseline ran)."""
    rows = [_header(results), *_rows(results)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [_title(results)]
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(row[1:-1], widths[1:-1], strict=True)]
        cells.append(row[-1].ljust(widths[-1]))
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines += _ratio_lines(results)
    known = _baseline(results)
    if known is not None and results.get("baseline") is not None:
        lines += ["", f"baseline: {known.description}; {known.provenance}"]
    return "\n".join(lines)


def _ratio_lines(results: Mapping[str, Any]) -> list[str]:
    found = results.get("ratios")
    if not found:
        return []
    lines = ["", "ratios (above 1: twinplane better):"]
    for key, label in _RATIOS:
        value = found.get(key)
        lines.append(f"  {label}: {'n/a' if value is None else f'{value:.2f}x'}")
    return lines


def markdown(results: Mapping[str, Any]) -> str:
    """``results.md``: the title, hardware, the table, target verdicts and ratios."""
    hw = results.get("hardware") or {}
    head = _header(results)
    lines = [
        f"# twinplane bench scale: {_title(results)}",
        "",
        f"- command: `{' '.join(results.get('command') or [])}`",
        f"- started: {results.get('started_at')}",
        f"- hardware: {hw.get('cpu_model')}, {hw.get('cores')} cores, "
        f"{hw.get('memory_mb')} MiB, Linux {hw.get('kernel')}, Python {hw.get('python')}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 2) + ["---"]) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(results)]
    checks = results.get("targets") or {}
    met = sum(1 for t in checks.values() if t["pass"])
    lines += ["", f"Targets met: {met} of {len(checks)}."]
    for name, target in checks.items():
        lines.append(f"- `{name}` {_verdict(target)} (value: {_fmt(target['value'])})")
    ratio_lines = _ratio_lines(results)
    if ratio_lines:
        known = _baseline(results)
        what = known.description if known is not None else _baseline_label(results)
        lines += ["", f"## Ratios against {what} (same run)", ""]
        if known is not None:
            lines += [
                f"The baseline column is {known.description}: {known.provenance}.",
                "",
            ]
        lines += [f"- {line.strip()}" for line in ratio_lines[2:]]
    missing = results.get("missing_metrics") or []
    if missing:
        lines += ["", "Metrics not exported by the processes (n/a): " + ", ".join(missing)]
    return "\n".join(lines) + "\n"
