"""``twinplane mapper``: runs a mapper (DMI ``DeviceMapperService`` + a driver) until a signal.

Reads mapper-framework's ``config.yaml`` (``--config-file``); flags override its keys.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from twinplane.cli.args import add_allowed_host_option
from twinplane.cli.runtime import LOG_LEVELS, configure_logging, loop_factory
from twinplane.errors import SpecError, TwinplaneError

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``mapper`` to the subcommands."""
    parser = commands.add_parser(
        "mapper",
        help="run a mapper: a protocol driver serving DMI DeviceMapperService",
        description=(
            "Run a mapper: register with the device manager (DMI v1beta1 MapperRegister), poll "
            "its devices through the protocol driver and report their twins and states. Reads "
            "mapper-framework's config.yaml keys; flags override them."
        ),
    )
    parser.add_argument("--config-file", type=Path, default=None, help="mapper-framework YAML")
    parser.add_argument("--protocol", default=None, help="protocol (virtual, modbus, ...)")
    parser.add_argument("--socket", type=Path, default=None, help="the mapper's own Unix socket")
    parser.add_argument(
        "--edgecore-sock", type=Path, default=None, help="the device manager's DMI socket"
    )
    parser.add_argument("--name", default=None, help="mapper name (default: <protocol>-mapper)")
    parser.add_argument(
        "--http-port", type=int, default=None, help="REST data API port (default: 7777)"
    )
    parser.add_argument(
        "--http-host", default=None, help="REST data API address (default: 127.0.0.1)"
    )
    add_allowed_host_option(parser, "the REST data API")
    parser.add_argument(
        "--edgecore-compat",
        action="store_true",
        help="the device manager is KubeEdge EdgeCore: at most ~1 DMI call/s, all batched",
    )
    parser.add_argument(
        "--report-interval-ms", type=int, default=None, help="report tick (default: 200)"
    )
    parser.add_argument(
        "--write-attempts",
        type=int,
        default=None,
        help="attempts per desired value while its write times out or loses the connection"
        " (default: 3)",
    )
    parser.add_argument(
        "--write-backoff-ms",
        type=int,
        default=None,
        help="wait before a desired value's second attempt, doubling (default: 200)",
    )
    parser.add_argument(
        "--comm-error-interval-ms",
        type=int,
        default=None,
        help="how often counted communication errors go to the device manager (default: 5000)",
    )
    parser.add_argument("--home", type=Path, default=None, help="state directory of defaults")
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, default="info", help="(default: %(default)s)"
    )
    parser.add_argument("-v", "--v", dest="verbosity", default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Runs ``twinplane mapper``; returns the exit status."""
    from twinplane.drivers.registry import get_driver  # noqa: PLC0415 - fast CLI start
    from twinplane.mapper.app import run_mapper  # noqa: PLC0415
    from twinplane.mapper.config import load_config  # noqa: PLC0415
    from twinplane.rest.guard import allowed_host  # noqa: PLC0415

    try:
        config = load_config(
            args.config_file,
            protocol=args.protocol,
            socket_path=args.socket,
            edgecore_sock=args.edgecore_sock,
            name=args.name,
            http_port=args.http_port,
            home=args.home,
        ).with_overrides(
            http_host=args.http_host,
            edgecore_compat=args.edgecore_compat or None,
            report_interval_ms=args.report_interval_ms,
            allowed_hosts=tuple(allowed_host(name) for name in args.allowed_hosts) or None,
            write_attempts=args.write_attempts,
            write_backoff_ms=args.write_backoff_ms,
            comm_error_interval_ms=args.comm_error_interval_ms,
        )
        if config.comm_error_interval_ms < 1:
            raise SpecError(
                "--comm-error-interval-ms must be at least 1", path="comm_error_interval_ms"
            )
        if config.write_attempts < 1 or config.write_backoff_ms < 0:
            raise SpecError(
                "--write-attempts must be at least 1 and --write-backoff-ms not negative",
                path="write_attempts",
            )
        driver = get_driver(config.protocol)
    except (TwinplaneError, LookupError, OSError) as err:
        print(f"twinplane mapper: error: {err}", file=sys.stderr)
        return 2
    configure_logging(args.log_level)
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(run_mapper(config, driver))
    except (TwinplaneError, OSError) as err:
        print(f"twinplane mapper: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
