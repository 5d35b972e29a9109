"""``twinplane edge``: runs the device manager until SIGINT or SIGTERM.

The device manager's modules (gRPC, aiohttp, the engine) are imported when the command runs, so
the client commands of the same CLI start quickly.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from pathlib import Path

from twinplane.cli.args import (
    add_cloud_options,
    add_device_manager_options,
    cloud_token,
    positive_int,
)
from twinplane.cli.runtime import LOG_LEVELS, configure_logging, default_home, loop_factory
from twinplane.errors import TwinplaneError

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``edge`` to the subcommands."""
    parser = commands.add_parser(
        "edge",
        help="run the device manager (DMI server, registry, twins, REST API, MQTT bridge)",
        description=(
            "Run the device manager: the DMI v1beta1 DeviceManagerService on a Unix socket, the "
            "device registry and twins in SQLite, the REST API, and the MQTT twin topics when a "
            "broker is given. Stops cleanly on SIGINT or SIGTERM."
        ),
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="state directory (default: $TWINPLANE_HOME or ~/.twinplane)",
    )
    parser.add_argument(
        "--dmi-socket", type=Path, default=None, help="DMI Unix socket (default: HOME/run/dmi.sock)"
    )
    add_device_manager_options(parser)
    add_cloud_options(parser)
    parser.add_argument(
        "--event-log-max",
        type=positive_int,
        default=None,
        metavar="N",
        help="device events the event log keeps (default: 10000)",
    )
    parser.add_argument(
        "--event-log-max-age",
        type=positive_int,
        default=None,
        metavar="SECONDS",
        help="seconds an event stays in the log after it last happened (default: 604800)",
    )
    parser.add_argument(
        "--dmi-rate",
        type=float,
        default=None,
        metavar="CALLS",
        help="DMI calls admitted per second, shared by all calls; 0: unlimited (default: "
        "200000; EdgeCore's is 1)",
    )
    parser.add_argument(
        "--dmi-burst",
        type=positive_int,
        default=None,
        metavar="N",
        help="DMI calls admitted at once above the rate (default: 20000; EdgeCore's is 100)",
    )
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, default="info", help="(default: %(default)s)"
    )


def run(args: argparse.Namespace) -> int:  # noqa: PLR0911 - one exit per failure
    """Runs ``twinplane edge``; returns the exit status."""
    from twinplane.edge.app import EdgeConfig, run_edge  # noqa: PLC0415 - see the module doc
    from twinplane.edge.rest import parse_addr  # noqa: PLC0415
    from twinplane.owner_only import make_dirs  # noqa: PLC0415
    from twinplane.rest.guard import allowed_host  # noqa: PLC0415

    try:
        parse_addr(args.rest_addr)
        allowed = tuple(allowed_host(name) for name in args.allowed_hosts)
    except TwinplaneError as err:
        flag = "--rest-addr: " if err.path == "rest_addr" else ""
        print(f"twinplane edge: error: {flag}{err.message}", file=sys.stderr)
        return 2
    token = cloud_token(args, "twinplane edge")
    if token is None:
        return 2
    configure_logging(args.log_level)
    home: Path = args.home if args.home is not None else default_home()
    config = EdgeConfig(
        home=home.expanduser(),
        dmi_socket=args.dmi_socket,
        rest_addr=args.rest_addr,
        mqtt_url=args.mqtt,
        node_name=args.node_name,
        allowed_hosts=allowed,
        cloud_url=args.cloud,
        cloud_token=token,
        cloud_ca=args.cloud_ca,
    )
    if args.max_event_streams is not None:
        config.max_event_streams = args.max_event_streams
    if args.event_log_max is not None:
        config.event_log_max = args.event_log_max
    if args.event_log_max_age is not None:
        config.event_log_max_age_s = float(args.event_log_max_age)
    if args.dmi_rate is not None:
        if not (args.dmi_rate >= 0 and math.isfinite(args.dmi_rate)):
            print("twinplane edge: error: --dmi-rate must be 0 or more", file=sys.stderr)
            return 2
        config.dmi_rate = args.dmi_rate
    if args.dmi_burst is not None:
        config.dmi_burst = args.dmi_burst
    try:
        make_dirs(config.db_path.parent)  # 0700: the state is the owner's alone
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(run_edge(config))
    except TwinplaneError as err:
        print(f"twinplane edge: error: {err.message}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"twinplane edge: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130
    return 0
