"""Argument types and options shared by the subcommands' parsers."""

from __future__ import annotations

import argparse

__all__ = ["add_device_manager_options", "positive_int"]


def add_device_manager_options(parser: argparse.ArgumentParser) -> None:
    """Adds the device manager's ``--rest-addr`` and ``--mqtt`` (``edge``, ``up``)."""
    parser.add_argument(
        "--rest-addr",
        default="127.0.0.1:7780",
        metavar="HOST:PORT",
        help="REST API address; port 0 picks a free port (default: %(default)s)",
    )
    parser.add_argument(
        "--mqtt", default=None, metavar="URL", help="MQTT broker, mqtt://host:port (default: off)"
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
