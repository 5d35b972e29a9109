"""``twinplane firmware push FILE``, ``firmware get [NAME [VERSION]]``, ``firmware delete``.

``push`` hashes the file first and sends its sha256 with it, so the device manager stores it only
if the bytes it received are those; the file is streamed, never read whole into memory.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import urllib.parse
from pathlib import Path
from typing import Any, Final

from twinplane.cli.client import ApiClient, CliError
from twinplane.cli.output import print_data, table

__all__ = ["HEADERS", "add_parser", "delete", "get", "push"]

HEADERS: Final = ["NAME", "VERSION", "MODELS", "SIZE", "SHA256", "CREATED"]
_READ: Final = 1024 * 1024


def _path(name: str, version: str | None = None) -> str:
    path = f"/api/v1/firmware/{urllib.parse.quote(name, safe='')}"
    return path if version is None else f"{path}/{urllib.parse.quote(version, safe='')}"


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    """Adds ``firmware`` (push, get, delete) to the subcommands; ``parents``: server, output."""
    fw = commands.add_parser("firmware", help="firmware artifacts stored on the device manager")
    actions = fw.add_subparsers(dest="firmware_command", required=True, metavar="ACTION")
    p = actions.add_parser(
        "push",
        parents=parents,
        help="upload a firmware image (FILE) as NAME VERSION for the models it fits",
        description="Upload FILE as the artifact NAME VERSION. Its sha256 is computed here and "
        "checked by the device manager; an artifact is immutable: the same bytes again change "
        "nothing, other bytes under the same version are refused.",
    )
    p.add_argument("file", type=Path)
    p.add_argument("--name", required=True)
    p.add_argument("--version", required=True)
    p.add_argument(
        "--model", dest="models", action="append", required=True, metavar="MODEL",
        help="a DeviceModel it fits, NAME or NAMESPACE/NAME (repeatable)",
    )  # fmt: skip
    p.add_argument("--description", default="")
    p.set_defaults(run=push)
    p = actions.add_parser("get", parents=parents, help="list the artifacts, or show one")
    p.add_argument("name", nargs="?")
    p.add_argument("version", nargs="?")
    p.set_defaults(run=get)
    p = actions.add_parser("delete", parents=parents, help="delete an artifact")
    p.add_argument("name")
    p.add_argument("version")
    p.set_defaults(run=delete)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_READ):
            digest.update(chunk)
    return digest.hexdigest()


def push(args: argparse.Namespace, client: ApiClient) -> int:
    """``twinplane firmware push FILE --name N --version V --model M``."""
    path: Path = args.file
    try:
        size = path.stat().st_size
        digest = _sha256(path)
    except OSError as err:
        raise CliError(f"{path}: {err.strerror or err}") from None
    query = [("model", m) for m in args.models] + [("sha256", digest)]
    if args.description:
        query.append(("description", args.description))
    with path.open("rb") as body:
        answer = client.upload("PUT", _path(args.name, args.version), body, size, query=query)
    if args.output != "table":
        print_data(answer, args.output)
        return 0
    print(
        f"firmware {answer.get('name')} {answer.get('version')}: {answer.get('size')} bytes, "
        f"sha256 {answer.get('sha256')}"
    )
    return 0


def _rows(items: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            str(i.get("name", "")),
            str(i.get("version", "")),
            ",".join(str(m) for m in i.get("models") or []),
            str(i.get("size", "")),
            str(i.get("sha256", ""))[:12],
            str(i.get("created", "")),
        ]
        for i in items
    ]


def get(args: argparse.Namespace, client: ApiClient) -> int:
    """``twinplane firmware get [NAME [VERSION]]``."""
    if args.name and args.version:
        data = client.get(_path(args.name, args.version))
        items = [data]
    else:
        data = client.get("/api/v1/firmware")
        items = [i for i in data.get("items", []) if not args.name or i.get("name") == args.name]
        data = {**data, "items": items}
    if args.output != "table":
        print_data(data, args.output)
        return 0
    if not items:
        print("No firmware found.", file=sys.stderr)
        return 0
    print(table(HEADERS, _rows(items)))
    return 0


def delete(args: argparse.Namespace, client: ApiClient) -> int:
    """``twinplane firmware delete NAME VERSION``."""
    client.request("DELETE", _path(args.name, args.version))
    print(f"firmware {args.name} {args.version} deleted")
    return 0
