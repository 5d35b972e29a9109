"""``twinplane bench scale``: the Prometheus parser, the window math, and short real runs.

The run with ``--mqtt`` uses a real ``mosquitto`` on a free loopback port (it fails when ``CI`` is
set and the binary is missing, and skips otherwise).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interop_tools import interop_binary
from mqtt_broker import running_mosquitto
from twinplane.loadtest import plots, report
from twinplane.loadtest.baselines import IMITATION, MAPPER_FRAMEWORK, Baseline
from twinplane.loadtest.procs import ProcUsage
from twinplane.loadtest.prom import Histogram, histogram_quantile, parse
from twinplane.loadtest.scale import write_results
from twinplane.loadtest.window import (
    MQTT_PUBLISHED,
    Tick,
    WindowLoad,
    expected_polls,
    on_time_pct,
    quantile_ms,
    summarize,
)

EXPOSITION = """\
# HELP twinplane_mapper_bus_polls_total Device polls that succeeded on a bus.
# TYPE twinplane_mapper_bus_polls_total counter
twinplane_mapper_bus_polls_total{bus="tcp://127.0.0.1:5020"} 100
twinplane_mapper_bus_polls_total{bus="tcp://127.0.0.1:5021"} 50 1700000000000
twinplane_devices{state="online"} 7
twinplane_devices{state="offline"} 3
odd_labels{a="x,y}=\\"q\\"",b="line\\nbreak"} +Inf
# a comment, and a line that is not a sample:
not a sample
twinplane_read_to_persisted_seconds_bucket{le="0.1"} 10
twinplane_read_to_persisted_seconds_bucket{le="0.2"} 20
twinplane_read_to_persisted_seconds_bucket{le="0.5"} 30
twinplane_read_to_persisted_seconds_bucket{le="+Inf"} 30
twinplane_read_to_persisted_seconds_count 30
twinplane_read_to_persisted_seconds_sum 4.5
"""

BUCKETS = ((0.1, 10.0), (0.2, 20.0), (0.5, 30.0), (math.inf, 30.0))


def test_parse_sums_counters_over_labels() -> None:
    """Samples are summed over their label sets; label matching selects some; timestamps go."""
    snap = parse(EXPOSITION)
    assert snap.total("twinplane_mapper_bus_polls_total") == 150
    assert snap.total("twinplane_devices", state="online") == 7
    assert snap.total("twinplane_devices") == 10
    assert snap.total("twinplane_absent_total") is None
    assert "not" not in snap


def test_parse_unescapes_label_values() -> None:
    """Quotes, commas, braces and newlines in label values are read back as they were."""
    ((labels, value),) = parse(EXPOSITION).samples["odd_labels"]
    assert labels == {"a": 'x,y}="q"', "b": "line\nbreak"}
    assert value == math.inf


def test_parse_reads_histograms() -> None:
    """A histogram's cumulative buckets come back sorted, ``+Inf`` last, with count and sum."""
    hist = parse(EXPOSITION).histogram("twinplane_read_to_persisted_seconds")
    assert hist is not None
    assert hist.buckets == BUCKETS
    assert (hist.count, hist.sum) == (30, 4.5)
    assert parse(EXPOSITION).histogram("twinplane_absent_seconds") is None


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.25, 0.075),  # first bucket: from 0 to 0.1
        (0.5, 0.15),  # rank 15: halfway through (0.1, 0.2]
        (0.99, 0.2 + 0.3 * 9.7 / 10),  # rank 29.7 in (0.2, 0.5]
        (1.0, 0.5),
    ],
)
def test_histogram_quantile_interpolates_like_prometheus(q: float, expected: float) -> None:
    """The quantile is linear within the bucket holding its rank."""
    assert histogram_quantile(q, BUCKETS) == pytest.approx(expected)


def test_histogram_quantile_edges() -> None:
    """A rank in +Inf gives the largest finite bound; no observations or no +Inf give None."""
    assert histogram_quantile(0.9, [(0.1, 5.0), (math.inf, 10.0)]) == 0.1
    assert histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None
    assert histogram_quantile(0.5, [(0.1, 5.0)]) is None
    assert histogram_quantile(0.5, []) is None


def test_histogram_delta_is_the_window() -> None:
    """The delta of two scrapes holds only the observations made between them."""
    before = Histogram(((0.1, 8.0), (0.2, 10.0), (0.5, 10.0), (math.inf, 10.0)), 10, 1.0)
    after = Histogram(BUCKETS, 30, 4.5)
    delta = after.delta(before)
    assert delta.buckets == ((0.1, 2.0), (0.2, 10.0), (0.5, 20.0), (math.inf, 20.0))
    assert (delta.count, delta.sum) == (20, 3.5)
    assert delta.quantile(0.5) == pytest.approx(0.2)
    assert after.delta(None) is after


def test_expected_polls_per_device_and_per_property() -> None:
    """Our mapper polls each device once a cycle; the mapper-framework imitation each property."""
    ours = WindowLoad(devices=1000, properties=10, cycle_ms=1000)
    theirs = WindowLoad(devices=1000, properties=10, cycle_ms=1000, per_property=True)
    assert expected_polls(ours, 60) == 60_000
    assert expected_polls(theirs, 60) == 600_000
    assert expected_polls(WindowLoad(20, 4, 500), 4) == 160
    assert (ours.samples_per_poll, theirs.samples_per_poll) == (10, 1)


def test_on_time_pct_is_capped() -> None:
    """On-time polls are a percentage of the expected ones, at most 100; unknown stays None."""
    assert on_time_pct(59_400, 60_000) == pytest.approx(99.0)
    assert on_time_pct(61_000, 60_000) == 100.0
    assert on_time_pct(None, 60_000) is None
    assert on_time_pct(10, 0) is None


def test_ratios_point_the_same_way() -> None:
    """Every ratio is above 1 when twinplane is better; unknown figures give None."""
    ours = {
        "samples_per_s": 100_000.0,
        "twin_updates_per_s": 5_000.0,
        "cpu_s_per_sample": 1e-6,
        "read_to_stored_p99_ms": 50.0,
        "polls_on_time_pct": 100.0,
    }
    base = {
        "samples_per_s": 50_000.0,
        "twin_updates_per_s": 2_500.0,
        "cpu_s_per_sample": 8e-6,
        "read_to_stored_p99_ms": None,
        "polls_on_time_pct": 61.0,
    }
    found = report.ratios(ours, base)
    assert found["samples_per_s"] == pytest.approx(2.0)
    assert found["twin_updates_per_s"] == pytest.approx(2.0)
    assert found["cpu_s_per_sample"] == pytest.approx(8.0)
    assert found["read_to_stored_p99_ms"] is None
    assert found["polls_on_time_pct"] == {"twinplane": 100.0, "baseline": 61.0}


def test_targets_judge_each_figure() -> None:
    """Each target has its threshold and a verdict; a missing figure has none."""
    checks = report.targets(
        {"polls_on_time_pct": 98.9, "read_to_stored_p99_ms": 999.0, "duration_s": 60}
    )
    assert checks["polls_on_time_pct"]["pass"] is False
    assert checks["read_to_stored_p99_ms"] == {
        "op": "<",
        "threshold": 1000.0,
        "value": 999.0,
        "pass": True,
    }
    assert checks["rss_mb_edge_plus_mapper"]["pass"] is None
    assert checks["duration_s"]["pass"] is True


def _tick(  # noqa: PLR0913 - one argument per figure of the scrape
    t: float, polls: int, on_time: int, updates: int, cpu: float, *, edge_extra: str = ""
) -> Tick:
    mapper = parse(
        f'twinplane_mapper_bus_polls_total{{bus="a"}} {polls}\n'
        f"twinplane_mapper_polls_on_time_total {on_time}\n"
    )
    edge = parse(f"twinplane_twin_updates_total {updates}\n{edge_extra}")
    usage = {p: ProcUsage(cpu, 10.0, 20.0 + t) for p in ("sim", "edge", "mapper")}
    return Tick(t, mapper, edge, usage)


def test_summarize_computes_window_figures() -> None:
    """Rates, on-time share, CPU and peak memory come from the window's first and last scrape."""
    ticks = [_tick(0, 1000, 1000, 50, 1.0), _tick(1, 1100, 1100, 70, 1.5)]
    ticks.append(_tick(2, 1200, 1190, 90, 2.0))
    found = summarize(ticks, WindowLoad(devices=100, properties=4, cycle_ms=1000), mqtt=False)
    assert found["polls_per_s"] == pytest.approx(100)
    assert found["samples_per_s"] == pytest.approx(400)
    assert found["polls_on_time_pct"] == pytest.approx(95.0)
    assert found["twin_updates_per_s"] == pytest.approx(20)
    assert found["cpu_s_per_process"] == {"sim": 1.0, "edge": 1.0, "mapper": 1.0}
    assert found["cpu_s_per_sample"] == pytest.approx(2.0 / 800)
    assert found["rss_mb_edge_plus_mapper"] == pytest.approx(44.0)
    assert found["read_to_stored_p99_ms"] is None
    assert "twinplane_read_to_persisted_seconds_bucket" in found["missing_metrics"]
    assert found["series"]["polls_on_time_pct"] == [100.0, 90.0]
    assert found["mqtt_publishes_per_s"] is None
    assert MQTT_PUBLISHED not in found["missing_metrics"]


def test_summarize_records_on_time_polls_uncapped() -> None:
    """More polls on time than expected (a window edge) caps the share, not the count."""
    ticks = [_tick(0, 0, 0, 0, 1.0), _tick(2, 210, 210, 0, 1.0)]
    found = summarize(ticks, WindowLoad(devices=100, properties=4, cycle_ms=1000), mqtt=False)
    assert found["polls_expected"] == pytest.approx(200)
    assert found["polls_on_time"] == 210
    assert found["polls_on_time_pct"] == 100.0


def _stored(counts: tuple[int, int, int], max_s: float) -> str:
    """A ``read_to_persisted`` histogram (bounds 0.1, 0.2, +Inf) and its max gauge."""
    name = "twinplane_read_to_persisted_seconds"
    a, b, c = counts
    return (
        f'{name}_bucket{{le="0.1"}} {a}\n{name}_bucket{{le="0.2"}} {a + b}\n'
        f'{name}_bucket{{le="+Inf"}} {a + b + c}\n{name}_count {a + b + c}\n'
        f"{name}_sum 1\ntwinplane_read_to_persisted_max_seconds {max_s}\n"
    )


def test_quantile_never_exceeds_the_observed_max() -> None:
    """A quantile interpolated above the largest observation is clamped to it."""
    hist = Histogram(((0.1, 0.0), (0.2, 10.0), (math.inf, 10.0)), 10, 1.2)
    assert quantile_ms(hist, 0.99) == pytest.approx(199.0)  # interpolated in (0.1, 0.2]
    assert quantile_ms(hist, 0.99, 0.12) == pytest.approx(120.0)
    assert quantile_ms(hist, 0.5, 0.12) == pytest.approx(120.0)
    assert quantile_ms(hist, 0.05, 0.12) == pytest.approx(105.0)  # below the max: unchanged
    assert quantile_ms(None, 0.5, 0.12) is None


def test_summarize_clamps_latency_quantiles_to_the_max_gauge() -> None:
    """Window and per-second read→stored quantiles stay at or below the max gauge."""
    ticks = [
        _tick(0, 0, 0, 0, 1.0, edge_extra=_stored((0, 0, 0), 0.0)),
        _tick(1, 0, 0, 0, 1.0, edge_extra=_stored((0, 10, 0), 0.13)),
        _tick(2, 0, 0, 0, 1.0, edge_extra=_stored((0, 20, 0), 0.13)),
    ]
    found = summarize(ticks, WindowLoad(devices=1, properties=1, cycle_ms=1000), mqtt=False)
    assert found["read_to_stored_max_ms"] == pytest.approx(130.0)
    assert found["read_to_stored_p50_ms"] == pytest.approx(130.0)  # interpolated: 150
    assert found["read_to_stored_p99_ms"] == pytest.approx(130.0)  # interpolated: 199
    assert found["series"]["read_to_stored_p99_ms"] == pytest.approx([130.0, 130.0])


def test_summarize_reads_the_mqtt_publish_counter() -> None:
    """With ``--mqtt`` the rate comes from ``twinplane_mqtt_published_total`` and no other name."""
    load = WindowLoad(devices=1, properties=1, cycle_ms=1000)
    ticks = [
        _tick(0, 0, 0, 0, 1.0, edge_extra=f"{MQTT_PUBLISHED} 10\n"),
        _tick(2, 0, 0, 0, 1.0, edge_extra=f"{MQTT_PUBLISHED} 110\n"),
    ]
    found = summarize(ticks, load, mqtt=True)
    assert MQTT_PUBLISHED == "twinplane_mqtt_published_total"
    assert found["mqtt_publishes_per_s"] == pytest.approx(50.0)
    assert MQTT_PUBLISHED not in found["missing_metrics"]
    assert summarize(ticks, load, mqtt=False)["mqtt_publishes_per_s"] is None

    guessed = "twinplane_mqtt_publishes_total"
    other = [_tick(t, 0, 0, 0, 1.0, edge_extra=f"{guessed} {t * 50}\n") for t in (0, 2)]
    found = summarize(other, load, mqtt=True)
    assert found["mqtt_publishes_per_s"] is None
    assert MQTT_PUBLISHED in found["missing_metrics"]


PNG = b"\x89PNG\r\n\x1a\n"


def _window_results() -> dict[str, Any]:
    """What a run's results hold, from three scrapes (no processes)."""
    ticks = [_tick(t, 100 * t, 100 * t, 50 * t, 1.0 + t) for t in range(3)]
    load = WindowLoad(devices=100, properties=4, cycle_ms=1000)
    results: dict[str, Any] = {
        "devices": 100,
        "properties": 4,
        "cycle_ms": 1000,
        "duration_s": 2.0,
        "warmup_s": 0.0,
        "devices_per_port": 10,
        **summarize(ticks, load, mqtt=False),
        "baseline": None,
    }
    results["targets"] = report.targets(results)
    return results


def test_results_are_written_and_plots_drawn(tmp_path: Path) -> None:
    """With matplotlib: results.json (what the run returns), results.md and two PNGs."""
    results = _window_results()
    run = write_results(tmp_path, results)
    assert [p.name for p in run.files] == ["results.json", "results.md", *plots.FILES]
    assert run.warnings == ()
    assert json.loads((tmp_path / "results.json").read_text()) == results
    assert "| polls on time |" in (tmp_path / "results.md").read_text()
    for name in plots.FILES:
        assert (tmp_path / name).read_bytes()[:8] == PNG


def test_without_matplotlib_the_results_are_written_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an importable matplotlib: results.json and results.md written, a warning.

    Plots an earlier run left in the directory are removed, so none is taken for this run's.
    """
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib: ImportError
    for name in plots.FILES:
        (tmp_path / name).write_bytes(PNG + b"an earlier run's")
    results = _window_results()
    run = write_results(tmp_path, results)
    assert [p.name for p in run.files] == ["results.json", "results.md"]
    (warning,) = run.warnings
    assert warning.startswith("plots not written: matplotlib is not installed")
    assert "pip install 'twinplane[bench]'" in warning
    assert json.loads((tmp_path / "results.json").read_text()) == results
    assert (tmp_path / "results.md").read_text() == report.markdown(results)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json", "results.md"]


def test_when_matplotlib_fails_the_results_are_written_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When matplotlib raises while it draws, the results stand; the warning names the error."""
    from matplotlib.figure import Figure  # noqa: PLC0415 - the bench extra

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no backend today")

    monkeypatch.setattr(Figure, "savefig", broken)
    run = write_results(tmp_path, _window_results())
    assert [p.name for p in run.files] == ["results.json", "results.md"]
    assert run.warnings == ("plots not written: matplotlib failed: RuntimeError: no backend today",)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json", "results.md"]


def _with_baseline(known: Baseline) -> dict[str, Any]:
    """Window results with a baseline phase of ``known``, as run_scale writes them."""
    results = _window_results()
    base = {**_window_results(), "mapper": known.name}
    results.update(
        baseline=base,
        baseline_name=known.name,
        baseline_description=known.description,
        ratios=report.ratios(results, base),
    )
    return results


def test_reports_name_the_baseline_for_what_it_is(tmp_path: Path) -> None:
    """Table, results.md and the plots call the baseline a Python imitation, never KubeEdge."""
    results = _with_baseline(IMITATION)
    text, markdown = report.table(results), report.markdown(results)
    assert IMITATION.label in text.splitlines()[1]  # the column
    assert f"baseline: {IMITATION.description}; {IMITATION.provenance}" in text
    assert IMITATION.provenance.endswith("not KubeEdge's own code")
    assert f"## Ratios against {IMITATION.description} (same run)" in markdown
    assert f"| twinplane | {IMITATION.label} | target |" in markdown
    assert "python imitation of mapper-framework" in IMITATION.description.lower()
    for shown in (text, markdown):
        assert "kubeedge-style" not in shown.lower()
        assert "kubeedge's own code" in shown.lower()  # the only mention: what it is not
    run = write_results(tmp_path, results)
    assert run.warnings == ()
    saved = json.loads((tmp_path / "results.json").read_text())
    assert (saved["baseline_name"], saved["baseline_description"]) == (
        IMITATION.name,
        IMITATION.description,
    )


def test_reports_say_the_mapper_framework_baseline_is_kubeedges_code() -> None:
    """The Go baseline is named as KubeEdge's mapper-framework, with what is written here."""
    results = _with_baseline(MAPPER_FRAMEWORK)
    text, markdown = report.table(results), report.markdown(results)
    assert MAPPER_FRAMEWORK.label in text.splitlines()[1]
    assert f"baseline: {MAPPER_FRAMEWORK.description}; {MAPPER_FRAMEWORK.provenance}" in text
    assert "not KubeEdge's own code" not in text + markdown
    assert "written in interop/go" in markdown
    assert "mapper CPU per sample, baseline / twinplane" in text


def _run_bench(
    out: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[str, dict[str, Any]]:
    """A short real ``python -m twinplane bench scale`` run: its output and ``results.json``."""
    cmd = [sys.executable, "-m", "twinplane", "bench", "scale", "--devices", "20"]
    cmd += ["--properties", "4", "--cycle-ms", "100", "--duration", "3", "--warmup", "1"]
    cmd += ["--out", str(out), *extra]
    done = subprocess.run(  # noqa: S603 - our own command
        cmd, capture_output=True, text=True, timeout=80, check=False, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr, json.loads((out / "results.json").read_text())


def _assert_complete(results: dict[str, Any]) -> None:
    """Every figure of a twinplane run is there, now that every metric is exported."""
    assert results["missing_metrics"] == []
    assert results["twin_updates_metric"] == "twinplane_twin_updates_total"
    assert results["twin_updates_per_s"] > 0
    assert results["polls"] > 0
    assert results["samples_per_s"] > 0
    assert 0 < results["polls_on_time_pct"] <= 100
    # every poll the mapper counted succeeded and is on time or late, none twice
    assert 0 < results["polls_on_time"] <= results["polls"]
    assert results["polls_on_time"] + results["polls_late"] == results["polls"]
    assert results["polls_expected"] > 0
    assert isinstance(results["poll_lateness_p99_ms"], float)
    for path in ("stored", "applied"):
        p50, p99 = results[f"read_to_{path}_p50_ms"], results[f"read_to_{path}_p99_ms"]
        top = results[f"read_to_{path}_max_ms"]
        assert isinstance(p50, float), path
        assert isinstance(p99, float), path
        assert 0 <= p50 <= p99 <= top, (path, p50, p99, top)
    for key in ("cpu_s_per_process", "rss_mb_per_process"):
        per = results[key]
        assert set(per) == {"sim", "edge", "mapper"}
        assert all(v is not None and v > 0 for v in per.values()), (key, per)
    assert results["rss_mb_edge_plus_mapper"] > 0


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_bench_scale_runs_end_to_end(tmp_path: Path) -> None:
    """A short real run writes complete results.json, results.md and two PNG plots."""
    out = tmp_path / "out"
    stdout, results = _run_bench(out)
    assert "polls on time" in stdout

    assert (results["devices"], results["properties"], results["cycle_ms"]) == (20, 4, 100)
    assert results["duration_s"] == 3
    assert results["window_s"] >= 2.5
    _assert_complete(results)
    assert results["mqtt"] is None
    assert results["mqtt_publishes_per_s"] is None
    assert set(results["targets"]) == {
        "polls_on_time_pct",
        "read_to_stored_p99_ms",
        "rss_mb_edge_plus_mapper",
        "duration_s",
    }
    assert results["targets"]["duration_s"]["pass"] is False  # 3 s < 60 s: reported, exit 0
    assert results["hardware"]["cores"] >= 1
    assert results["command"][:3] == ["twinplane", "bench", "scale"]
    assert results["baseline"] is None

    assert "| polls on time |" in (out / "results.md").read_text()
    for name in ("latency.png", "throughput.png"):
        assert (out / name).read_bytes()[:8] == PNG


@pytest.fixture
def broker_url(tmp_path: Path) -> Iterator[str]:
    """A mosquitto on a loopback port; missing, a failure under CI and a skip elsewhere."""
    with running_mosquitto(tmp_path) as server:
        yield server.mqtt_url


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_bench_scale_with_mqtt_reports_publishes(tmp_path: Path, broker_url: str) -> None:
    """With ``--mqtt`` the device manager publishes twin changes; the bench reports the rate."""
    _, results = _run_bench(tmp_path / "out", "--mqtt", broker_url)
    assert results["mqtt"] == broker_url
    _assert_complete(results)
    assert results["mqtt_publishes_per_s"] > 0


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_bench_scale_without_matplotlib_exits_0_with_results_and_a_warning(
    tmp_path: Path,
) -> None:
    """A real run where matplotlib cannot be imported: exit 0, results written, a warning."""
    blocked = tmp_path / "blocked" / "matplotlib"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text('raise ImportError("matplotlib blocked by the test")\n')
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(blocked.parent), *filter(None, [env.get("PYTHONPATH")])]
    )
    out = tmp_path / "out"
    output, results = _run_bench(out, "--devices", "5", "--duration", "2", env=env)
    assert results["devices"] == 5
    assert results["polls"] > 0
    assert "twinplane bench scale: warning: plots not written: matplotlib is not installed" in (
        output
    )
    assert "matplotlib blocked by the test" in output
    assert f"results: {out}/results.json, results.md\n" in output
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "results.md", "work"]


def test_bench_scale_runs_kubeedges_mapper_framework_as_the_baseline(tmp_path: Path) -> None:
    """``--baseline mapper-framework``: the Go mapper runs as the second phase.

    Its figures, CPU per sample split between mapper and device manager, land under
    ``baseline``.
    """
    interop_binary("mapper-framework-modbus")  # built (or Go missing: fails under CI)
    _, results = _run_bench(
        tmp_path / "out", "--devices", "5", "--cycle-ms", "1000", "--baseline", "mapper-framework"
    )
    base = results["baseline"]
    assert results["baseline_name"] == MAPPER_FRAMEWORK.name
    assert base["mapper"] == MAPPER_FRAMEWORK.name
    assert base["onboarding"]["online"] == 5  # its state reports arrived (spec.stateReport)
    assert base["polls"] > 0
    assert base["dmi_reports_per_s"] > 0  # one unary report per sample
    assert isinstance(base["mapper_report_p50_ms"], float)
    for side in (results, base):
        assert side["mapper_cpu_us_per_sample"] > 0
        assert side["edge_cpu_us_per_sample"] > 0
    assert results["ratios"]["mapper_cpu_us_per_sample"] is not None
    assert results["edgecore_admission"] is False
