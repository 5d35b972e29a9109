"""``twinplane up``: its options, and running the embedded default (:mod:`twinplane.up`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import TextIO, cast

from twinplane import up
from twinplane.cli.args import (
    add_cloud_options,
    add_device_manager_options,
    cloud_token,
    positive_int,
)
from twinplane.cli.console import LiveConsole, keys_stop
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
            "With --cloud the fleet is applied in twinplane cloud for --node-name and reaches "
            "the device manager down its cloud link, as devices made in the cloud do. "
            "Stops cleanly on Ctrl-C or q (on a terminal), SIGINT or SIGTERM, and exits 0."
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
    add_cloud_options(parser)
    parser.add_argument(
        "--sim-port",
        type=int,
        default=0,
        help="first simulator port (default: 0: where the stored devices are, else free ports)",
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


def run(args: argparse.Namespace) -> int:  # noqa: PLR0911 - one exit per failure
    """Runs ``twinplane up``; returns the exit status."""
    from twinplane.edge.rest import parse_addr  # noqa: PLC0415 - fast CLI start
    from twinplane.rest.guard import allowed_host  # noqa: PLC0415

    if args.properties > MAX_PROPERTIES:
        print(f"twinplane up: error: --properties: at most {MAX_PROPERTIES}", file=sys.stderr)
        return 2
    try:
        parse_addr(args.rest_addr)
        allowed = tuple(allowed_host(name) for name in args.allowed_hosts)
    except TwinplaneError as err:
        flag = "--rest-addr: " if err.path == "rest_addr" else ""
        print(f"twinplane up: error: {flag}{err.message}", file=sys.stderr)
        return 2
    token = cloud_token(args, "twinplane up")
    if token is None:
        return 2
    console = LiveConsole(sys.stdout) if sys.stdout.isatty() else None
    out = sys.stdout if console is None else cast("TextIO", console)
    # On a terminal, log lines go above the live summary, through the same console.
    handler = configure_logging(args.log_level, stream=None if console is None else out)
    if not args.mqtt:  # the device manager's "no broker" warning: off is the default here
        logging.getLogger("twinplane.edge.app").setLevel(logging.ERROR)
    home: Path = (args.home or up.default_home()).expanduser()
    config = up.UpConfig(
        home=home,
        devices=args.devices,
        properties=args.properties,
        rest_addr=args.rest_addr,
        mqtt_url=args.mqtt,
        allowed_hosts=allowed,
        max_event_streams=args.max_event_streams,
        sim_port=args.sim_port,
        mapper_port=args.mapper_port,
        node_name=args.node_name,
        cloud_url=args.cloud,
        cloud_token=token,
        cloud_ca=args.cloud_ca,
        out=out,
        on_tick=handler.flush_repeats,
    )

    async def main() -> None:
        stop = asyncio.Event()
        with keys_stop(stop):  # Ctrl-C is a key, not a SIGINT to make as well
            await up.run_up(config, stop=stop)

    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(main())
    except TimeoutError:
        print("twinplane up: error: the mapper did not register in time", file=sys.stderr)
        return 1
    except (TwinplaneError, OSError) as err:
        message = err.message if isinstance(err, TwinplaneError) else str(err)
        print(f"twinplane up: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown (no terminal keys)
        return 130
    finally:
        handler.close()  # the counts of collapsed log lines still held back
        if console is not None:
            console.release()
    return 0
