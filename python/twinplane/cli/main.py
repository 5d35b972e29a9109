"""The ``twinplane`` parser and entry point.

``edge`` runs the device manager, ``mapper`` a mapper; ``apply``, ``get``, ``describe``, ``delete``
and ``twin get|set`` talk to a running one over its REST API (``--server``, default
``$TWINPLANE_SERVER`` or ``http://127.0.0.1:7780``). ``sim modbus`` runs simulated Modbus
devices. ``up`` runs all of them in one process (:mod:`twinplane.cli.up`). ``bench scale``
measures them as separate processes under load (:mod:`twinplane.cli.bench`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from twinplane import __version__
from twinplane.cli import (
    alarms,
    baseline,
    bench,
    calls,
    cloud,
    commands,
    edge,
    firmware,
    mapper,
    sim,
    up,
)
from twinplane.cli.client import ApiClient, CliError, default_server

__all__ = ["main"]

Command = Callable[[argparse.Namespace, ApiClient], int]


def _client_options() -> argparse.ArgumentParser:
    """Options every client command takes (``--server`` also works before the command)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--server",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="device manager REST API (default: $TWINPLANE_SERVER or http://127.0.0.1:7780)",
    )
    return parent


def _namespace_options(*, all_namespaces: bool = False) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("-n", "--namespace", default="default", help="(default: %(default)s)")
    if all_namespaces:
        parent.add_argument(
            "-A", "--all-namespaces", action="store_true", help="list across all namespaces"
        )
    return parent


def _output_option() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "-o",
        "--output",
        choices=("table", "json", "yaml"),
        default="table",
        help="(default: table)",
    )
    return parent


def _build_parser() -> argparse.ArgumentParser:  # noqa: PLR0915 - one parser, every command
    parser = argparse.ArgumentParser(
        prog="twinplane",
        description="Edge device-management data plane in KubeEdge's DMI design.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--server", default=None, metavar="URL", help=argparse.SUPPRESS)
    cmds = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up.add_parser(cmds)
    edge.add_parser(cmds)
    cloud.add_parser(cmds)
    mapper.add_parser(cmds)
    sim.add_parser(cmds)
    bench.add_parser(cmds)
    server, ns, ns_all, out = (
        _client_options(),
        _namespace_options(),
        _namespace_options(all_namespaces=True),
        _output_option(),
    )
    resource = {"type": commands.resource_arg, "metavar": "RESOURCE"}

    p = cmds.add_parser(
        "apply",
        parents=[server],
        help="create or update devices and device models from manifests",
        description="Apply Device and DeviceModel manifests (YAML or JSON). All files go in "
        "one request: every document is applied, or none is.",
    )
    p.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        metavar="FILE",
        help="a manifest file, a directory of them, or - for stdin (repeatable)",
    )
    p.set_defaults(run=commands.apply)

    p = cmds.add_parser(
        "get",
        parents=[server, ns_all, out],
        help="list devices, device models, mappers, events, calls or alarms, or show one",
    )
    p.add_argument(
        "resource",
        help="devices, devicemodels, mappers, events, alarms, or calls (of the device NAME)",
        **resource,  # type: ignore[arg-type]
    )
    p.add_argument("name", nargs="?", help="one object's name (events, alarms, calls: a device's)")
    p.add_argument("--type", default=None, help="events: only these types (state,comm,...)")
    p.add_argument("--limit", type=int, default=None, help="events: at most this many")
    p.add_argument(
        "-w", "--watch", action="store_true", help="events: then follow new ones as they happen"
    )
    p.set_defaults(run=commands.get)

    p = cmds.add_parser(
        "ack",
        parents=[server, ns, out],
        help="acknowledge a device's active alarm",
        description="Acknowledge the active alarm of RULE on DEVICE. The first acknowledgement"
        " is kept: acknowledging again changes nothing.",
    )
    p.add_argument("device")
    p.add_argument("rule")
    p.add_argument("--by", default=None, metavar="NAME", help="who acknowledges (default: the"
                   " device manager records the client's address)")  # fmt: skip
    p.set_defaults(run=alarms.ack)

    p = cmds.add_parser("describe", parents=[server, ns], help="show one object in detail")
    p.add_argument("resource", help="device or devicemodel", **resource)  # type: ignore[arg-type]
    p.add_argument("name")
    p.set_defaults(run=commands.describe)

    p = cmds.add_parser(
        "delete",
        parents=[server, ns],
        help="delete a device or device model, or forget a mapper",
        description="Delete a device or a device model (-n NS), or forget a registered mapper:"
        " the device manager contacts it no more and its devices go to another mapper of its"
        " protocol, if one is registered. A mapper that registers again is known again.",
    )
    p.add_argument("resource", help="device, devicemodel or mapper", **resource)  # type: ignore[arg-type]
    p.add_argument("name")
    p.set_defaults(run=commands.delete)

    p = cmds.add_parser(
        "call",
        parents=[server, ns, out],
        help="call a device's method (KEY=VALUE arguments); prints its outcome",
        description="Call a method of a device. Values are JSON scalars when they parse as one "
        "(21, 2.5, true), text otherwise. Without --wait the call is accepted and runs on; "
        "without --ttl a call to a device that is not online fails at once.",
    )
    p.add_argument("device")
    p.add_argument("method")
    p.add_argument("arguments", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--wait", metavar="DURATION", help="wait for the outcome up to this long (5s)")
    p.add_argument("--ttl", metavar="DURATION", help="how long it may wait for an offline device")
    p.add_argument("--timeout", metavar="DURATION", help="its deadline once sent (default 10s)")
    p.set_defaults(run=calls.call)

    firmware.add_parser(cmds, [server, out])

    twin = cmds.add_parser("twin", help="read or set a device's twins")
    twin_cmds = twin.add_subparsers(dest="twin_command", required=True, metavar="ACTION")
    p = twin_cmds.add_parser("get", parents=[server, ns, out], help="show a device's twins")
    p.add_argument("device")
    p.set_defaults(run=commands.twin_get)
    p = twin_cmds.add_parser(
        "set",
        parents=[server, ns, out],
        help="set desired values (PROP=VALUE; PROP- clears one); prints the delta",
    )
    p.add_argument("device")
    p.add_argument("assignments", nargs="+", metavar="PROP=VALUE")
    p.set_defaults(run=commands.twin_set)
    return parser


def _print_error(err: CliError) -> None:
    print(f"error: {err.message}", file=sys.stderr)
    lines = [commands.format_cause(cause) for cause in err.causes]
    if len(lines) == 1 and lines[0] in err.message:
        return  # the message says it already
    for line in lines:
        print(f"  {line}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``twinplane`` command line.

    Args:
        argv: The arguments after the program name; ``None`` reads ``sys.argv``.

    Returns:
        The process exit status: 0 on success, 1 when the command failed, 2 for bad usage.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["bench", baseline.IMITATION_MAPPER]:  # its options are its own
        return baseline.run(argv[2:])
    args = _build_parser().parse_args(argv)
    if args.command == "bench":
        return bench.run(args, ["twinplane", *argv])
    process = {
        "up": up.run,
        "edge": edge.run,
        "cloud": cloud.run,
        "mapper": mapper.run,
        "sim": sim.run,
    }.get(args.command)
    if process is not None:
        return process(args)
    run: Command = args.run
    try:
        client = ApiClient(args.server or default_server())
        return run(args, client)
    except CliError as err:
        _print_error(err)
        return 1
    except BrokenPipeError:  # `twinplane get devices | head`
        return 0
