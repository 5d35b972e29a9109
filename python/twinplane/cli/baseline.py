"""``twinplane bench imitation-mapper``: the load test's baseline mapper as a process.

The baseline is a Python imitation of mapper-framework's design (per-property tickers, one unary
report per property), against twinplane's device manager — not KubeEdge's own code.
``twinplane bench scale --baseline mapper-framework-imitation`` starts it beside the product's
mapper; the mapper itself is :mod:`twinplane.loadtest.imitation`, imported when the command runs
(the rest of the CLI starts quickly). Its options are ``twinplane mapper``'s that it uses.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from twinplane.cli.runtime import LOG_LEVELS, configure_logging, loop_factory
from twinplane.errors import SpecError, TwinplaneError

if TYPE_CHECKING:
    from twinplane.mapper.config import MapperConfig

__all__ = ["IMITATION_MAPPER", "add_arguments", "run"]

IMITATION_MAPPER: Final = "imitation-mapper"  # baselines.IMITATION.command[1]
"""The subcommand of ``twinplane bench`` that runs the imitation of mapper-framework."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the flags of ``twinplane mapper`` that the baseline uses."""
    parser.add_argument("--config-file", type=Path, default=None, help="mapper-framework YAML")
    parser.add_argument("--socket", type=Path, default=None, help="the mapper's own Unix socket")
    parser.add_argument(
        "--edgecore-sock", type=Path, default=None, help="the device manager's DMI socket"
    )
    parser.add_argument("--name", default=None, help="mapper name (default: modbus-mapper)")
    parser.add_argument("--http-port", type=int, default=None, help="/metrics port (default: 7777)")
    parser.add_argument("--http-host", default=None, help="/metrics address (default: 127.0.0.1)")
    parser.add_argument("--home", type=Path, default=None, help="state directory of defaults")
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, default="info", help="(default: %(default)s)"
    )


def _load(args: argparse.Namespace) -> MapperConfig:
    """The config file with the flags over it; protocol ``modbus`` unless the file says one."""
    from twinplane.mapper.config import load_config  # noqa: PLC0415 - fast CLI start

    def load(protocol: str | None) -> MapperConfig:
        return load_config(
            args.config_file,
            protocol=protocol,
            socket_path=args.socket,
            edgecore_sock=args.edgecore_sock,
            name=args.name,
            http_port=args.http_port,
            home=getattr(args, "home", None),
        ).with_overrides(http_host=args.http_host)

    try:
        config = load(None)
    except SpecError as err:
        if err.path != "common.protocol" or not str(err).startswith("no protocol"):
            raise
        config = load("modbus")
    if config.protocol != "modbus":
        raise SpecError(
            f"protocol {config.protocol!r}: the mapper-framework imitation serves modbus only",
            path="common.protocol",
        )
    return config


def run(argv: Sequence[str]) -> int:
    """``twinplane bench imitation-mapper ARGS``: parses ``argv``, runs the imitation.

    Returns:
        The exit status: 0 after a clean stop, 1 when it failed, 2 for a bad config.
    """
    from twinplane.loadtest.baselines import IMITATION  # noqa: PLC0415
    from twinplane.loadtest.imitation import run_imitation_mapper  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog=f"twinplane bench {IMITATION_MAPPER}",
        description=f"The load test's baseline mapper: {IMITATION.description}. "
        "Not KubeEdge's own code.",
    )
    add_arguments(parser)
    args = parser.parse_args(list(argv))

    try:
        config = _load(args)
    except (TwinplaneError, OSError) as err:
        print(f"twinplane bench {IMITATION_MAPPER}: error: {err}", file=sys.stderr)
        return 2
    configure_logging(args.log_level)
    print(
        f"twinplane bench {IMITATION_MAPPER} {config.name}: socket unix://{config.socket_path}"
        f"  device manager unix://{config.edgecore_sock}"
        f"  metrics http://{config.http_host}:{config.http_port}/metrics",
        flush=True,
    )
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(run_imitation_mapper(config))
    except (TwinplaneError, OSError) as err:
        print(f"twinplane bench {IMITATION_MAPPER}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
