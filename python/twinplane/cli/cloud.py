"""``twinplane cloud``: runs the hub and device controller; ``cloud token``, ``cloud certs``.

``twinplane cloud --home DIR`` runs until SIGINT or SIGTERM (the embedded registry unless
``--kubeconfig`` or ``--in-cluster``); ``twinplane cloud token create NODE --home DIR`` prints a
new token for an edge node; ``twinplane cloud certs --home DIR --host NAME`` makes a self-signed
certificate for a trial over TLS.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from twinplane.cli.args import positive_int
from twinplane.cli.runtime import LOG_LEVELS, configure_logging, default_home, loop_factory
from twinplane.errors import TwinplaneError

__all__ = ["add_parser", "run"]


def _home(args: argparse.Namespace) -> Path:
    home: Path = args.home if args.home is not None else default_home() / "cloud"
    return home.expanduser()


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``cloud`` to the subcommands."""
    parser = commands.add_parser(
        "cloud",
        help="run the cloud: the hub edges connect to, the device controller, the registry API",
        description=(
            "Run the cloud: the hub edge nodes connect to (WebSocket), the device controller, "
            "and the Device/DeviceModel/DeviceStatus REST API at Kubernetes' own paths (the "
            "embedded registry, in SQLite), or the controller over a Kubernetes API server "
            "(--kubeconfig, --in-cluster). Stops cleanly on SIGINT or SIGTERM."
        ),
    )
    home_help = "state directory (default: $TWINPLANE_HOME/cloud or ~/.twinplane/cloud)"
    # Before or after the action (`cloud --home D token list`, `cloud token list --home D`);
    # the action's own option has no default, so it never hides the one given before it.
    home = argparse.ArgumentParser(add_help=False)
    home.add_argument("--home", type=Path, default=argparse.SUPPRESS, help=home_help)
    parser.add_argument("--home", type=Path, default=None, help=home_help)
    parser.add_argument(
        "--listen", default="127.0.0.1:10000", help="HOST:PORT (default: %(default)s)"
    )
    parser.add_argument("--kubeconfig", type=Path, default=None, help="use this Kubernetes API")
    parser.add_argument(
        "--in-cluster", action="store_true", help="use the pod's Kubernetes service account"
    )
    parser.add_argument("--tls-cert", type=Path, default=None, help="certificate (PEM) for TLS")
    parser.add_argument("--tls-key", type=Path, default=None, help="its key (PEM)")
    parser.add_argument(
        "--status-interval",
        type=float,
        default=1.0,
        help="seconds between DeviceStatus writes of one device, at most (default: %(default)s)",
    )
    parser.add_argument(
        "--allowed-host",
        dest="allowed_hosts",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name or address that the REST API answers to besides its own address and "
        "loopback (a proxy's or DNS name; repeatable; default: none)",
    )
    parser.add_argument(
        "--event-log-max",
        type=positive_int,
        default=None,
        metavar="N",
        help="the edges' device events kept (default: 50000)",
    )
    parser.add_argument(
        "--event-log-max-age",
        type=positive_int,
        default=None,
        metavar="SECONDS",
        help="seconds an event is kept after it last happened (default: 604800)",
    )
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, default="info", help="(default: %(default)s)"
    )
    sub = parser.add_subparsers(dest="cloud_command", metavar="ACTION")
    token = sub.add_parser("token", help="node tokens")
    token_cmds = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    p = token_cmds.add_parser("create", parents=[home], help="print a new token for NODE")
    p.add_argument("node")
    p = token_cmds.add_parser("revoke", parents=[home], help="remove NODE's token")
    p.add_argument("node")
    token_cmds.add_parser("list", parents=[home], help="the nodes that have a token")
    p = sub.add_parser("certs", parents=[home], help="make a self-signed certificate for a trial")
    p.add_argument(
        "--host", dest="hosts", action="append", default=[], help="a name or address (repeat)"
    )
    p.add_argument("--days", type=int, default=365)


def run(args: argparse.Namespace) -> int:
    """Runs ``twinplane cloud ...``; returns the exit status."""
    try:
        if args.cloud_command == "token":
            return _token(args)
        if args.cloud_command == "certs":
            return _certs(args)
    except TwinplaneError as err:
        print(f"twinplane cloud: error: {err.message}", file=sys.stderr)
        return 1
    return _serve(args)


def _token(args: argparse.Namespace) -> int:
    from twinplane.cloud.tokens import TokenBook  # noqa: PLC0415

    book = TokenBook(_home(args))
    action = args.token_command
    if action == "create":
        print(book.create(args.node))
        print(
            f"# node {args.node}: keep this token in a file readable only by the edge's user "
            "and start it with --token-file FILE",
            file=sys.stderr,
        )
    elif action == "revoke":
        if not book.revoke(args.node):
            print(f"twinplane cloud: error: node {args.node} has no token", file=sys.stderr)
            return 1
    else:
        for node in book.nodes():
            print(node)
    return 0


def _certs(args: argparse.Namespace) -> int:
    from twinplane.cloud.certs import make_self_signed  # noqa: PLC0415

    hosts = args.hosts or ["localhost", "127.0.0.1"]
    crt, key = make_self_signed(_home(args) / "tls", hosts, days=args.days)
    print(f"certificate {crt}\nkey         {key}")
    print(
        f"# twinplane cloud --tls-cert {crt} --tls-key {key}\n"
        f"# twinplane edge --cloud wss://{hosts[0]}:10000 --cloud-ca {crt} ...",
        file=sys.stderr,
    )
    return 0


def _serve(args: argparse.Namespace) -> int:  # noqa: PLR0911 - one exit per refusal
    from twinplane.cloud.app import CloudConfig, run_cloud  # noqa: PLC0415 - see the module doc
    from twinplane.rest.guard import allowed_host  # noqa: PLC0415

    if (args.tls_cert is None) != (args.tls_key is None):
        print("twinplane cloud: error: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    if args.status_interval <= 0 or args.status_interval > 3600:  # noqa: PLR2004
        print(
            "twinplane cloud: error: --status-interval must be in (0, 3600] seconds",
            file=sys.stderr,
        )
        return 2
    try:
        allowed = tuple(allowed_host(name) for name in args.allowed_hosts)
    except TwinplaneError as err:
        print(f"twinplane cloud: error: --allowed-host: {err.message}", file=sys.stderr)
        return 2
    configure_logging(args.log_level)
    config = CloudConfig(
        home=_home(args),
        listen=args.listen,
        kubeconfig=args.kubeconfig,
        in_cluster=args.in_cluster,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        status_interval=args.status_interval,
        allowed_hosts=allowed,
    )
    if args.event_log_max is not None:
        config.event_log_max = args.event_log_max
    if args.event_log_max_age is not None:
        config.event_log_max_age_s = float(args.event_log_max_age)
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(run_cloud(config))
    except TwinplaneError as err:
        print(f"twinplane cloud: error: {err.message}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"twinplane cloud: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
