"""``twinplane sim modbus``: a fleet of simulated Modbus TCP devices, until SIGINT or SIGTERM.

The simulator's module is imported when the command runs, so the other commands of the CLI start
quickly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sys
from typing import TYPE_CHECKING, Final

from twinplane.cli.args import positive_int
from twinplane.cli.runtime import LOG_LEVELS, configure_logging, loop_factory
from twinplane.errors import SpecError, TwinplaneError
from twinplane.service import stop_on_signals

if TYPE_CHECKING:
    from twinplane.sim.modbus import ModbusSimulator, Ramp

__all__ = ["add_parser", "run"]

_RANGE: Final = re.compile(r"^(\d+)-(\d+)$")
_LAYOUT_LINES: Final = 8
"""Ports listed one per line at start; more are summed up."""


def _port_range(text: str) -> tuple[int, int]:
    match = _RANGE.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected FIRST-LAST, like 5020-5029, not {text!r}")
    first, last = int(match.group(1)), int(match.group(2))
    if not 0 < first <= last <= 0xFFFF:  # noqa: PLR2004
        raise argparse.ArgumentTypeError(f"bad port range {text!r}")
    return first, last


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``sim`` (with ``sim modbus``) to the subcommands."""
    sim = commands.add_parser("sim", help="run simulated devices")
    kinds = sim.add_subparsers(dest="sim_command", required=True, metavar="PROTOCOL")
    parser = kinds.add_parser(
        "modbus",
        help="a fleet of Modbus TCP devices with changing values and faults on demand",
        description=(
            "Serve many Modbus TCP devices from one process: unit ids 1..247 on a port, and "
            "more ports as needed (or spread over --port-range). Every device has --registers "
            "coils, discrete inputs, input and holding registers whose values change --rate "
            "times a second; coils and holding registers are writable. Stops on SIGINT/SIGTERM."
        ),
        epilog=(
            "faults: comma-separated entries of colon-separated fields, e.g. "
            "unit=5:slow=200ms,unit=6:dead,unit=7:exception=4,unit=8:garble=0.1,"
            "port=5021:garble=tid+truncated@0.5 (see docs/modbus.md); firmware transfers: "
            "unit=3:powerloss=2048:reboot=5s,unit=4:badchunk=3,unit=5:bootfail "
            "(see docs/upgrades.md)"
        ),
    )
    parser.add_argument("--devices", type=positive_int, default=1, help="(default: 1)")
    parser.add_argument("--host", default="127.0.0.1", help="(default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=5020, help="first port; 0 picks free ports (default: 5020)"
    )
    spread = parser.add_mutually_exclusive_group()
    spread.add_argument(
        "--unit-ids-per-port",
        "--ports-per-unit-ids",
        dest="units_per_port",
        type=positive_int,
        default=247,
        metavar="K",
        help="devices per port, as unit ids 1..K; more devices take the next ports (default: 247)",
    )
    spread.add_argument(
        "--port-range",
        type=_port_range,
        default=None,
        metavar="A-B",
        help="spread the devices evenly over ports A..B instead",
    )
    parser.add_argument(
        "--registers",
        type=positive_int,
        default=100,
        help="addresses per register kind and device (default: 100)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=1.0,
        metavar="HZ",
        help="how often values change per second; 0 freezes them (default: 1)",
    )
    parser.add_argument(
        "--max-in-flight",
        type=positive_int,
        default=None,
        metavar="N",
        help=(
            "answer at most N requests of a connection at once and drop the others, like "
            "devices that take one transaction at a time (1); default: answer every "
            "pipelined request"
        ),
    )
    parser.add_argument(
        "--pace-ms",
        type=float,
        default=1.0,
        metavar="MS",
        help=(
            "when busy, turn the event loop at most once per MS, so the requests of many "
            "connections are read in one wake-up; 0 answers each at once (default: 1)"
        ),
    )
    parser.add_argument("--faults", default=None, metavar="SPEC", help="faults to inject")
    parser.add_argument(
        "--firmware-base",
        type=int,
        default=60000,
        metavar="ADDRESS",
        help=(
            "first holding register of each device's firmware transfer block, answered "
            "whatever --registers is (default: 60000; see docs/upgrades.md)"
        ),
    )
    parser.add_argument(
        "--firmware-version",
        type=lambda text: int(text, 0),
        default=0x0001_0000,
        metavar="VERSION",
        help="every device's ACTIVE_VERSION at start, major<<16|minor (default: 0x10000, 1.0)",
    )
    parser.add_argument(
        "--ramp",
        action="append",
        default=[],
        metavar="UNIT:ADDRESS=LOW..HIGH@RATE",
        help=(
            "make a holding register of a unit rise from LOW to HIGH at RATE raw units a "
            "second and fall back, over and over (e.g. 1:0=280..320@1); repeatable"
        ),
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault injection")
    parser.add_argument(
        "--stats",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="print the counters every SECONDS (default: only at exit)",
    )
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, default="warning", help="(default: %(default)s)"
    )


def _describe_layout(sim: ModbusSimulator) -> list[str]:
    layout = sim.layout()
    lines = [f"  {sim.host}:{port}  unit ids {first}-{last}" for port, first, last in layout]
    if len(lines) > _LAYOUT_LINES:
        hidden = len(lines) - _LAYOUT_LINES + 1
        lines[_LAYOUT_LINES - 1 :] = [f"  ... and {hidden} more ports, up to {layout[-1][0]}"]
    return lines


async def _serve(sim: ModbusSimulator, stats: float) -> None:
    stop = stop_on_signals()
    async with sim:
        faults = sim.faults.describe() or "none"
        window = (
            "pipelined requests answered"
            if sim.max_in_flight is None
            else f"{sim.max_in_flight} request(s) answered at once per connection"
        )
        print(
            f"twinplane sim modbus: {sim.devices} devices, {sim.registers} registers each, "
            f"values change {sim.rate:g}/s, {window}, faults: {faults}",
            *_describe_layout(sim),
            sep="\n",
            flush=True,
        )
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=stats or None)
            if stats:
                print(f"counters: {_counters(sim)}", flush=True)
    print(f"twinplane sim modbus: stopped; {_counters(sim)}", flush=True)


def _counters(sim: ModbusSimulator) -> str:
    return " ".join(f"{k}={v}" for k, v in sim.counters.as_dict().items())


_RAMP = re.compile(r"(\d+):(\d+)=(\d+)\.\.(\d+)@([0-9.]+)")


def parse_ramp(text: str) -> tuple[int, int, Ramp]:
    """``UNIT:ADDRESS=LOW..HIGH@RATE`` as (unit, address, ramp); a bad text is a SpecError."""
    from twinplane.sim.modbus import Ramp  # noqa: PLC0415 - see the module doc

    m = _RAMP.fullmatch(text.strip())
    if m is None:
        msg = f"--ramp {text!r}: expected UNIT:ADDRESS=LOW..HIGH@RATE, e.g. 1:0=280..320@1"
        raise SpecError(msg, path="ramp")
    unit, address, low, high = (int(g) for g in m.groups()[:4])
    try:
        rate = float(m.group(5))
    except ValueError as e:
        raise SpecError(f"--ramp {text!r}: bad rate", path="ramp") from e
    return unit, address, Ramp(low, high, rate)


def run(args: argparse.Namespace) -> int:
    """Runs ``twinplane sim modbus``; returns the exit status."""
    from twinplane.sim.modbus import ModbusSimulator  # noqa: PLC0415 - see the module doc

    configure_logging(args.log_level)
    try:
        sim = ModbusSimulator(
            args.devices,
            host=args.host,
            port=args.port,
            units_per_port=args.units_per_port,
            port_range=args.port_range,
            registers=args.registers,
            rate=args.rate,
            faults=args.faults,
            seed=args.seed,
            max_in_flight=args.max_in_flight,
            pace=args.pace_ms / 1000,
            firmware_base=args.firmware_base,
            firmware_version=args.firmware_version,
        )
        for text in args.ramp:
            unit, address, ramp = parse_ramp(text)
            sim.ramp(unit, address, ramp)
    except (TwinplaneError, IndexError, LookupError) as err:
        message = err.message if isinstance(err, TwinplaneError) else str(err)
        path = err.path if isinstance(err, TwinplaneError) else None
        where = f" ({path})" if path else ""
        print(f"twinplane sim modbus: error{where}: {message}", file=sys.stderr)
        return 2
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(_serve(sim, args.stats))
    except OSError as err:
        print(f"twinplane sim modbus: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130
    return 0
