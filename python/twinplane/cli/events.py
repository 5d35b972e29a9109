"""``twinplane get events [DEVICE] [-n NS | -A] [--type T] [--watch]`` and describe's Events.

The log comes from ``GET /api/v1/namespaces/{ns}/events`` (``/api/v1/events/log`` with ``-A``),
newest first; ``--watch`` then follows ``GET /api/v1/events`` (SSE, ``kinds=event``) with the
same filters, one line per event as it happens (an aggregated event prints again, its count
grown). Columns as ``kubectl get events``: LAST SEEN, TYPE, REASON, OBJECT, COUNT, MESSAGE.
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from typing import Any, Final

from twinplane.cli.client import ApiClient
from twinplane.cli.output import age, clip, print_data, table

__all__ = ["event_rows", "get_events", "recent_events"]

HEADERS: Final = ["LAST SEEN", "TYPE", "SEVERITY", "REASON", "OBJECT", "COUNT", "MESSAGE"]


def _object(event: dict[str, Any]) -> str:
    if event.get("type") == "mapper" or not event.get("namespace"):
        return f"mapper/{event.get('device', '')}"
    return f"device/{event.get('device', '')}"


def event_rows(items: list[dict[str, Any]], *, namespace: bool = False) -> list[list[str]]:
    """Table rows of events (oldest first, as kubectl prints them)."""
    rows = []
    for e in reversed(items):
        row = [
            age(e.get("last_ts_ms")),
            str(e.get("type", "")),
            str(e.get("severity", "")),
            str(e.get("reason", "")),
            _object(e),
            str(e.get("count", 1)),
            clip(str(e.get("message", "")), 80),
        ]
        rows.append([str(e.get("namespace") or "-"), *row] if namespace else row)
    return rows


def _query(args: argparse.Namespace) -> dict[str, str]:
    query: dict[str, str] = {}
    if args.name:
        query["device"] = args.name
    if args.type:
        query["type"] = args.type
    if args.limit:
        query["limit"] = str(args.limit)
    return query


def recent_events(client: ApiClient, namespace: str, device: str, limit: int = 20) -> list[Any]:
    """The newest ``limit`` events of one device, newest first."""
    path = f"/api/v1/namespaces/{urllib.parse.quote(namespace, safe='')}/events"
    data = client.get(path, {"device": device, "limit": str(limit)})
    return list(data.get("items", []))


def get_events(args: argparse.Namespace, client: ApiClient) -> int:
    """``twinplane get events [DEVICE] [-n NS | -A] [--type T] [--watch] [-o FORMAT]``."""
    query = _query(args)
    if args.all_namespaces:
        data = client.get("/api/v1/events/log", query)
    else:
        ns = urllib.parse.quote(args.namespace, safe="")
        data = client.get(f"/api/v1/namespaces/{ns}/events", query)
    items = data.get("items", [])
    wide = bool(args.all_namespaces)
    headers = ["NAMESPACE", *HEADERS] if wide else HEADERS
    if args.output != "table":
        print_data(data, args.output)
    elif items:
        print(table(headers, event_rows(items, namespace=wide)), flush=True)
    elif not args.watch:
        where = "any namespace" if wide else f"namespace {args.namespace}"
        print(f"No events found in {where}.", file=sys.stderr)
    if args.watch:
        _watch(args, client, wide=wide)
    return 0


def _watch(args: argparse.Namespace, client: ApiClient, *, wide: bool) -> None:
    query = {"kinds": "event"}
    if not wide:
        query["namespace"] = args.namespace
    if args.name:
        query["device"] = args.name
    if args.type:
        query["type"] = args.type
    for kind, data in client.stream("/api/v1/events", query):
        if kind != "event":
            continue
        if args.output != "table":
            print_data(data, args.output)
        else:
            (row,) = event_rows([data], namespace=wide)
            print("   ".join(row), flush=True)
