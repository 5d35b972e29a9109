"""``twinplane bench``: load scenarios against real processes.

``bench scale`` runs :mod:`twinplane.loadtest.scale`; ``bench imitation-mapper`` runs the load
test's baseline mapper (:mod:`twinplane.cli.baseline`: a Python imitation of mapper-framework's
design, against twinplane's device manager), which ``bench scale --baseline
mapper-framework-imitation`` starts. Both are imported when their command runs, so the rest of
the CLI starts quickly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Final

from twinplane.cli import baseline
from twinplane.cli.args import positive_int
from twinplane.cli.baseline import IMITATION_MAPPER
from twinplane.fleet import MAX_PROPERTIES
from twinplane.loadtest.baselines import BASELINES, IMITATION, MAPPER_FRAMEWORK

__all__ = ["IMITATION_MAPPER", "add_parser", "run"]

_PRESET: Final = {"properties": 10, "cycle_ms": 1000, "duration": 60.0, "warmup": 10.0}
_DEFAULT_DEVICES: Final = 1000
_DEFAULT_PER_PORT: Final = 10
_MAX_UNITS_PER_PORT: Final = 247


def _int_up_to(limit: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = positive_int(text)
        if value > limit:
            raise argparse.ArgumentTypeError(f"must be at most {limit}, not {value}")
        return value

    return parse


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {text}")
    return value


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``bench`` (``bench scale``, ``bench imitation-mapper``) to the subcommands."""
    bench = commands.add_parser("bench", help="run load benchmarks against real processes")
    kinds = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
    parser = kinds.add_parser(
        "scale",
        help="N simulated Modbus devices through a real mapper and device manager",
        description=(
            "Start a Modbus simulator, the device manager and a mapper as three processes, "
            "apply N generated devices, wait until they are online, warm up, then measure: polls "
            "on time, read-to-stored latency, twin updates/s, CPU and memory per process. Writes "
            "results.json, results.md, latency.png and throughput.png into --out (without "
            "matplotlib, the bench extra, the plots are left out with a warning). Exits 0 when "
            "it ran (missed targets are reported, not errors)."
        ),
        epilog=(
            "scenarios: 1k, 5k, 10k = 1,000 / 5,000 / 10,000 devices x 10 properties x 1,000 ms, "
            "60 s after a 10 s warm-up; explicit flags override them"
        ),
    )
    parser.add_argument(
        "--scenario", choices=("1k", "5k", "10k"), default=None, help="a preset (see below)"
    )
    parser.add_argument(
        "--devices", type=positive_int, default=None, help=f"(default: {_DEFAULT_DEVICES:,})"
    )
    parser.add_argument(
        "--properties",
        type=_int_up_to(MAX_PROPERTIES),
        default=None,
        help=f"per device, at most {MAX_PROPERTIES} (default: 10)",
    )
    parser.add_argument(
        "--cycle-ms", type=positive_int, default=None, help="collect cycle (default: 1000)"
    )
    parser.add_argument(
        "--duration", type=_seconds, default=None, help="measured seconds (default: 60)"
    )
    parser.add_argument("--warmup", type=_seconds, default=None, help="seconds (default: 10)")
    parser.add_argument(
        "--devices-per-port",
        type=_int_up_to(_MAX_UNITS_PER_PORT),
        default=_DEFAULT_PER_PORT,
        metavar="K",
        help="devices per simulator port, as unit ids 1..K (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="results directory (default: bench-results/scale-<devices>-<timestamp>)",
    )
    parser.add_argument(
        "--mqtt", default=None, metavar="URL", help="MQTT broker for the device manager"
    )
    parser.add_argument(
        "--pipelined",
        action="store_true",
        help=(
            "pipeline the Modbus requests (the simulator answers them, the devices ask for "
            "maxInFlight 16); default: one transaction at a time per connection, as many real "
            "devices need"
        ),
    )
    parser.add_argument(
        "--baseline",
        choices=tuple(BASELINES),
        default=None,
        help=(
            "measure a baseline too, in a second phase with the same load: "
            f"{MAPPER_FRAMEWORK.name} is {MAPPER_FRAMEWORK.description} (built from interop/go "
            f"with Go); {IMITATION.name} is {IMITATION.description}, not KubeEdge's own code"
        ),
    )
    parser.add_argument(
        "--edgecore-admission",
        action="store_true",
        help="run the device manager with EdgeCore's DMI admission: 1 call/s, burst 100, "
        "shared by all calls (default: twinplane's budget)",
    )
    kinds.add_parser(
        IMITATION_MAPPER,
        add_help=False,
        help=(f"run {IMITATION.description} (what bench scale --baseline {IMITATION.name} starts)"),
    )


def _config(args: argparse.Namespace, command: Sequence[str]) -> object:
    from twinplane.loadtest.scale import SCENARIOS, ScaleConfig  # noqa: PLC0415 - fast CLI start

    scenario: str | None = args.scenario
    devices = args.devices or (SCENARIOS[scenario] if scenario else _DEFAULT_DEVICES)
    stamp = datetime.now().astimezone().strftime("%Y%m%d-%H%M%S")
    out: Path = args.out or Path("bench-results") / f"scale-{devices}-{stamp}"

    def pick(value: float | None, key: str) -> float:
        return _PRESET[key] if value is None else value

    return ScaleConfig(
        devices=devices,
        properties=int(pick(args.properties, "properties")),
        cycle_ms=int(pick(args.cycle_ms, "cycle_ms")),
        duration_s=pick(args.duration, "duration"),
        warmup_s=pick(args.warmup, "warmup"),
        devices_per_port=args.devices_per_port,
        out=out,
        mqtt=args.mqtt,
        baseline=args.baseline,
        scenario=scenario,
        command=tuple(command),
        tty=sys.stdout.isatty(),
        pipelined=args.pipelined,
        edgecore_admission=args.edgecore_admission,
    )


async def _main(config: object) -> None:
    from twinplane.loadtest.progress import Progress  # noqa: PLC0415
    from twinplane.loadtest.report import table  # noqa: PLC0415
    from twinplane.loadtest.scale import ScaleConfig, run_scale  # noqa: PLC0415

    assert isinstance(config, ScaleConfig)  # noqa: S101
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
    progress = Progress(sys.stdout, tty=config.tty)
    run = await run_scale(config, progress)
    print()
    print(table(run.results))
    print(f"\nresults: {config.out}/" + ", ".join(path.name for path in run.files))
    for warning in run.warnings:
        print(f"twinplane bench scale: warning: {warning}", file=sys.stderr)


def run(args: argparse.Namespace, command: Sequence[str] = ()) -> int:
    """Runs ``twinplane bench scale``; returns the exit status.

    Args:
        args: The parsed arguments.
        command: The command line, recorded in the results.
    """
    if args.bench_command == IMITATION_MAPPER:  # reached only through main()'s parser
        return baseline.run([])
    from twinplane.loadtest.procs import BenchError  # noqa: PLC0415

    config = _config(args, command or ["twinplane", *sys.argv[1:]])
    try:
        with asyncio.Runner() as runner:
            runner.run(_main(config))
    except (BenchError, OSError) as err:
        print(f"\ntwinplane bench scale: error: {err}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\ntwinplane bench scale: interrupted; the processes are stopped", file=sys.stderr)
        return 130
    return 0
