"""The ``twinplane`` command line.

Only a placeholder ``up`` exists so far; the other commands of the design (``edge``, ``mapper``,
``cloud``, ``sim``, ``apply``/``get``/..., ``bench``) arrive with the issues that build them.
"""

import argparse
from collections.abc import Sequence

from twinplane import __version__

_UP_PLACEHOLDER = (
    "twinplane up: not built yet. The embedded default (device manager + Modbus mapper + "
    "simulator + sample manifests in one command) arrives with a later issue.\n"
    "What exists today: the Rust twin engine, importable as twinplane.twin "
    "(see README.md and `make test`)."
)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="twinplane",
        description="Edge device-management data plane in KubeEdge's DMI design.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "up",
        help="run edge + mapper + simulator in one process (placeholder for now)",
        description="Run the embedded default. Not built yet: prints what exists and exits 0.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``twinplane`` command line.

    Args:
        argv: The arguments after the program name; ``None`` reads ``sys.argv``.

    Returns:
        The process exit status.
    """
    args = _build_parser().parse_args(argv)
    if args.command == "up":
        print(_UP_PLACEHOLDER)
        return 0
    return 2  # unreachable while argparse requires a known command


if __name__ == "__main__":
    raise SystemExit(main())
