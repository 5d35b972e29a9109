"""``twinplane get alarms [DEVICE]``, ``twinplane ack DEVICE RULE`` and describe's Alarms.

Without DEVICE, the active alarms of the namespace (every namespace with ``-A``) from
``GET /api/v1/alarms``; with DEVICE, its active and recently cleared alarms from
``GET /api/v1/namespaces/{ns}/devices/{name}/alarms``. ``ack`` posts
``…/alarms/{rule}/ack`` (``--by NAME``; the device manager records the client's address
otherwise).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from typing import Any, Final

from twinplane.cli.client import ApiClient
from twinplane.cli.output import age, clip, print_data, table

__all__ = ["HEADERS", "ack", "alarm_rows", "device_alarms", "get_alarms"]

HEADERS: Final = [
    "DEVICE", "RULE", "PROPERTY", "SEVERITY", "STATE", "VALUE", "THRESHOLD", "RAISED", "ACKED BY",
]  # fmt: skip


def _q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _device_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{_q(namespace)}/devices/{_q(name)}/alarms"


def _number(value: object) -> str:
    """A value for a person: 6 significant digits (a float32 register's 30.6 is not 30.6000003)."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def alarm_rows(items: list[dict[str, Any]], *, namespace: bool = False) -> list[list[str]]:
    """Table rows of alarms, in the order given."""
    rows = []
    for a in items:
        row = [
            str(a.get("device", "")),
            str(a.get("rule", "")),
            str(a.get("property", "")),
            str(a.get("severity", "")),
            str(a.get("state", "")),
            _number(a.get("value")),
            _number(a.get("threshold")),
            age(a.get("raised_ms")),
            clip(str(a.get("acknowledged_by") or "<none>"), 40),
        ]
        rows.append([str(a.get("namespace", "")), *row] if namespace else row)
    return rows


def device_alarms(client: ApiClient, namespace: str, name: str) -> list[Any]:
    """A device's active and recently cleared alarms."""
    return list(client.get(_device_path(namespace, name)).get("items", []))


def get_alarms(args: argparse.Namespace, client: ApiClient) -> int:
    """``twinplane get alarms [DEVICE] [-n NS | -A] [-o table|json|yaml]``."""
    if args.name:
        data = client.get(_device_path(args.namespace, args.name))
    else:
        query = {} if args.all_namespaces else {"namespace": args.namespace}
        data = client.get("/api/v1/alarms", query)
    items = data.get("items", [])
    if args.output != "table":
        print_data(data, args.output)
        return 0
    if not items:
        where = (
            f"device {args.namespace}/{args.name}"
            if args.name
            else "any namespace"
            if args.all_namespaces
            else f"namespace {args.namespace}"
        )
        print(f"No alarms found in {where}.", file=sys.stderr)
        return 0
    wide = bool(args.all_namespaces)
    print(table(["NAMESPACE", *HEADERS] if wide else HEADERS, alarm_rows(items, namespace=wide)))
    return 0


def ack(args: argparse.Namespace, client: ApiClient) -> int:
    """``twinplane ack DEVICE RULE [--by NAME] [-n NS] [-o FORMAT]``."""
    body = json.dumps({"by": args.by}).encode() if args.by else b"{}"
    path = f"{_device_path(args.namespace, args.device)}/{_q(args.rule)}/ack"
    alarm = client.request("POST", path, body=body, content_type="application/json")
    if args.output != "table":
        print_data(alarm, args.output)
        return 0
    print(
        f"alarm {args.rule} of device {args.namespace}/{args.device} acknowledged by"
        f" {alarm.get('acknowledged_by')}"
    )
    return 0
