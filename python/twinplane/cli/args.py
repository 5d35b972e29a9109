"""Argument types and options shared by the subcommands' parsers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = [
    "add_allowed_host_option",
    "add_cloud_options",
    "add_device_manager_options",
    "cloud_token",
    "positive_int",
]


def add_device_manager_options(parser: argparse.ArgumentParser) -> None:
    """Adds the device manager's options (``edge``, ``up``).

    ``--rest-addr``, ``--mqtt``, ``--allowed-host`` (repeatable) and ``--max-event-streams``.
    """
    parser.add_argument(
        "--rest-addr",
        default="127.0.0.1:7780",
        metavar="HOST:PORT",
        help="REST API address; port 0 picks a free port (default: %(default)s)",
    )
    parser.add_argument(
        "--mqtt", default=None, metavar="URL", help="MQTT broker, mqtt://host:port (default: off)"
    )
    add_allowed_host_option(parser, "the REST API")
    parser.add_argument(
        "--max-event-streams",
        type=positive_int,
        default=None,
        metavar="N",
        help="most event streams (GET /api/v1/events) open at once; more get 429 (default: 64)",
    )


def add_cloud_options(parser: argparse.ArgumentParser) -> None:
    """Adds the cloud link's options (``edge``, ``up``).

    ``--node-name``, ``--cloud URL``, ``--token-file`` and ``--cloud-ca``; read them with
    :func:`cloud_token`.
    """
    parser.add_argument("--node-name", default="edge", help="this node's name (default: edge)")
    parser.add_argument(
        "--cloud", default=None, metavar="URL", help="connect to twinplane cloud (ws:// or wss://)"
    )
    parser.add_argument(
        "--token-file", type=Path, default=None, help="this node's cloud token (a file)"
    )
    parser.add_argument(
        "--cloud-ca", type=Path, default=None, help="CA bundle to trust for a wss:// cloud"
    )


def cloud_token(args: argparse.Namespace, prog: str) -> str | None:
    """The token the cloud options name (``""`` without ``--cloud``); ``None`` after an error.

    The error is printed as ``PROG: error: --flag: ...``.
    """
    if not args.cloud:
        return ""
    problem = ""
    if not args.cloud.startswith(("ws://", "wss://")):
        problem = f"--cloud: {args.cloud!r} is not a ws:// or wss:// URL"
    elif args.token_file is None:
        problem = f"--cloud needs --token-file (twinplane cloud token create {args.node_name})"
    else:
        try:
            token: str = args.token_file.read_text().strip()
        except OSError as err:
            problem = f"--token-file: {err}"
        else:
            if token:
                return token
            problem = f"--token-file: {args.token_file} is empty"
    print(f"{prog}: error: {problem}", file=sys.stderr)
    return None


def add_allowed_host_option(parser: argparse.ArgumentParser, what: str) -> None:
    """Adds ``--allowed-host NAME`` (repeatable): a name ``Host`` may carry besides the address."""
    parser.add_argument(
        "--allowed-host",
        dest="allowed_hosts",
        action="append",
        default=[],
        metavar="NAME",
        help=f"a host name or address that {what} answers to besides its own address and "
        "loopback (a proxy's or DNS name; repeatable; default: none)",
    )


def positive_int(text: str) -> int:
    """An integer of at least 1 (``argparse`` type).

    Raises:
        argparse.ArgumentTypeError: Smaller than 1.
        ValueError: Not an integer (argparse reports it as an invalid int).
    """
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value
