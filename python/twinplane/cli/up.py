"""``twinplane up``: its options, and running the embedded default (:mod:`twinplane.up`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from twinplane import up
from twinplane.cli.args import add_device_manager_options, positive_int
from twinplane.cli.runtime import LOG_LEVELS, configure_logging, loop_factory
from twinplane.errors import TwinplaneError
from twinplane.fleet import MAX_PROPERTIES

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``up`` to the subcommands."""
    parser = commands.add_parser(
        "up",
        help="run a simulated Modbus fleet, a mapper and the device manager in one process",
        description=(
            "Run the embedded default: a Modbus simulator with --devices devices, the device "
            "manager (SQLite state in --home), a Modbus mapper registered with it, and generated "
            "DeviceModel/Device manifests. No external service needed; MQTT only with --mqtt. "
            "Stops cleanly on SIGINT or SIGTERM."
        ),
    )
    parser.add_argument("--devices", type=positive_int, default=100, help="(default: 100)")
    parser.add_argument(
        "--properties",
        type=positive_int,
        default=4,
        help=f"properties per device, at most {MAX_PROPERTIES} (default: 4)",
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="state directory (default: $TWINPLANE_HOME or ~/.twinplane/up)",
    )
    add_device_manager_options(parser)
    parser.add_argument(
        "--sim-port", type=int, default=0, help="first simulator port (default: 0, free ports)"
    )
    parser.add_argument(
        "--mapper-port",
        type=int,
        default=up.MAPPER_PORT,
        help="mapper REST port; a free one when taken (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, default="warning", help="(default: %(default)s)"
    )


def run(args: argparse.Namespace) -> int:
    """Runs ``twinplane up``; returns the exit status."""
    from twinplane.edge.rest import parse_addr  # noqa: PLC0415 - fast CLI start

    if args.properties > MAX_PROPERTIES:
        print(f"twinplane up: error: --properties: at most {MAX_PROPERTIES}", file=sys.stderr)
        return 2
    try:
        parse_addr(args.rest_addr)
    except TwinplaneError as err:
        print(f"twinplane up: error: --rest-addr: {err.message}", file=sys.stderr)
        return 2
    configure_logging(args.log_level)
    if not args.mqtt:  # the device manager's "no broker" warning: off is the default here
        logging.getLogger("twinplane.edge.app").setLevel(logging.ERROR)
    home: Path = (args.home or up.default_home()).expanduser()
    config = up.UpConfig(
        home=home,
        devices=args.devices,
        properties=args.properties,
        rest_addr=args.rest_addr,
        mqtt_url=args.mqtt,
        sim_port=args.sim_port,
        mapper_port=args.mapper_port,
        tty=sys.stdout.isatty(),
    )
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(up.run_up(config))
    except TimeoutError:
        print("twinplane up: error: the mapper did not register in time", file=sys.stderr)
        return 1
    except (TwinplaneError, OSError) as err:
        message = err.message if isinstance(err, TwinplaneError) else str(err)
        print(f"twinplane up: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130
    return 0
