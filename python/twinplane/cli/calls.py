"""``twinplane call`` and ``twinplane get calls``: method calls over the edge REST API."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from typing import Any

from twinplane.cli.client import ApiClient, CliError
from twinplane.cli.output import NONE, clip, print_data, table, timestamp
from twinplane.durations import parse_duration
from twinplane.errors import SpecError

__all__ = ["call", "get_calls", "parse_arguments"]


def _q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def parse_arguments(items: list[str]) -> dict[str, Any]:
    """``key=value`` items as a JSON object of arguments.

    A value is a JSON scalar when it parses as one (``21``, ``2.5``, ``true``, ``null``,
    ``"21"``), else the text itself.

    Raises:
        CliError: An item is not ``key=value``.
    """
    args: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise CliError(f"{item!r} is not KEY=VALUE")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        if isinstance(value, dict | list):
            value = text  # arguments are scalars: keep what was typed
        args[key] = value
    return args


def _duration(text: str | None, what: str) -> str | None:
    if text is None:
        return None
    try:
        parse_duration(text, what)
    except SpecError as err:
        raise CliError(f"--{what}: {err.message}") from None
    return text


def call(args: argparse.Namespace, client: ApiClient) -> int:
    """``twinplane call DEVICE METHOD KEY=VALUE... [--wait 5s] [--ttl 60s] [--timeout 10s]``.

    Prints the call (its state, result or error); exits 1 when it ended other than Succeeded.
    """
    body = json.dumps(parse_arguments(args.arguments)).encode()
    query = {
        k: v
        for k, v in (
            ("wait", _duration(args.wait, "wait")),
            ("ttl", _duration(args.ttl, "ttl")),
            ("timeout", _duration(args.timeout, "timeout")),
        )
        if v is not None
    }
    if args.wait is not None:
        client.timeout = max(client.timeout, parse_duration(args.wait, "wait") + 10)
    device = f"/api/v1/namespaces/{_q(args.namespace)}/devices/{_q(args.device)}"
    path = f"{device}/methods/{_q(args.method)}"
    data = client.request("POST", path, body=body, content_type="application/json", query=query)
    if args.output != "table":
        print_data(data, args.output)
    else:
        target = f"{data['namespace']}/{data['device']}"
        print(f"call {data['id']} {data['method']} on {target}: {data['state']}")
        if data.get("result") is not None:
            print(f"result: {json.dumps(data['result'])}")
        if data.get("error"):
            print(f"error: {data['error']['code']}: {data['error']['message']}")
        if data["state"] in ("Pending", "Sent"):
            print(f"see: twinplane get calls {data['device']} -n {data['namespace']}")
    return 0 if data["state"] in ("Succeeded", "Pending", "Sent") else 1


def get_calls(args: argparse.Namespace, client: ApiClient) -> int:
    """``twinplane get calls DEVICE [-n NS] [-o table|json|yaml]``: newest first."""
    if not args.name:
        raise CliError("get calls needs a DEVICE: twinplane get calls DEVICE")
    if args.all_namespaces:
        raise CliError("calls are listed per device: drop -A")
    path = f"/api/v1/namespaces/{_q(args.namespace)}/devices/{_q(args.name)}/calls"
    data = client.get(path)
    if args.output != "table":
        print_data(data, args.output)
        return 0
    items = data.get("items", [])
    if not items:
        print(f"No calls of device {args.namespace}/{args.name}.", file=sys.stderr)
        return 0
    rows = [
        [
            item["id"],
            item["method"],
            item["state"],
            clip(json.dumps(item.get("args") or {})),
            clip(json.dumps(item["result"])) if item.get("result") is not None else NONE,
            clip(f"{item['error']['code']}: {item['error']['message']}")
            if item.get("error")
            else NONE,
            item.get("source") or NONE,
            timestamp(item.get("createdMs")),
        ]
        for item in items
    ]
    print(table(["ID", "METHOD", "STATE", "ARGS", "RESULT", "ERROR", "SOURCE", "CREATED"], rows))
    return 0


def _error_text(error: dict[str, Any] | None) -> str:
    return clip(f"{error['code']}: {error['message']}") if error else NONE
