"""The kubectl-like commands: ``apply``, ``get``, ``describe``, ``delete``, ``twin get|set``.

Devices and device models live in namespaces; mappers (``get mappers``, ``delete mapper``) do
not, so ``-n`` and ``-A`` mean nothing for them.

Each command takes the parsed arguments and an :class:`~twinplane.cli.client.ApiClient`, prints
its result on stdout (warnings on stderr) and returns the exit status; failures are raised as
:class:`~twinplane.cli.client.CliError` and printed by :func:`twinplane.cli.main.main`.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from twinplane.cli.alarms import get_alarms
from twinplane.cli.calls import get_calls
from twinplane.cli.client import ApiClient, CliError
from twinplane.cli.describe import describe_device, describe_model
from twinplane.cli.events import get_events
from twinplane.cli.output import NONE, age, clip, print_data, table, timestamp
from twinplane.manifests.parse import parse_documents

__all__ = [
    "RESOURCES",
    "apply",
    "delete",
    "describe",
    "format_cause",
    "get",
    "resource_arg",
    "twin_get",
    "twin_set",
]

GROUP: Final = "devices.kubeedge.io"

RESOURCES: Final = {
    "device": "devices",
    "devices": "devices",
    "dev": "devices",
    f"devices.{GROUP}": "devices",
    "devicemodel": "devicemodels",
    "devicemodels": "devicemodels",
    "dm": "devicemodels",
    f"devicemodels.{GROUP}": "devicemodels",
    "mapper": "mappers",
    "mappers": "mappers",
    "event": "events",
    "events": "events",
    "ev": "events",
    "call": "calls",
    "calls": "calls",
    "alarm": "alarms",
    "alarms": "alarms",
}
"""Accepted resource names (singular, plural, short, full) and the plural each means."""

_SINGULAR: Final = {"devices": "device", "devicemodels": "devicemodel", "mappers": "mapper"}
_MANIFEST_SUFFIXES: Final = (".yaml", ".yml", ".json")


def resource_arg(text: str) -> str:
    """An argparse type: a resource name as its plural (``devices``, ``devicemodels``)."""
    try:
        return RESOURCES[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"unknown resource {text!r}: use device(s), devicemodel(s), mapper(s), events, calls"
            " or alarms"
        ) from None


def _q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _object_path(resource: str, namespace: str, name: str) -> str:
    if resource == "mappers":  # not namespaced
        return f"/api/v1/mappers/{_q(name)}"
    return f"/api/v1/namespaces/{_q(namespace)}/{resource}/{_q(name)}"


def format_cause(cause: dict[str, Any]) -> str:
    """One Status cause as ``file: doc 1 Device default/x: spec.properties[0].name: message``."""
    head = []
    if cause.get("source"):
        head.append(str(cause["source"]) + ":")
    document = cause.get("document")
    if isinstance(document, int) and document >= 0:
        head.append(f"doc {document}")
    if cause.get("kind"):
        head.append(str(cause["kind"]))
    if cause.get("name"):
        head.append(f"{cause.get('namespace') or 'default'}/{cause['name']}")
    where = f"{cause['field']}: " if cause.get("field") else ""
    lead = " ".join(head)
    lead = lead if not lead or lead.endswith(":") else lead + ":"
    return f"{lead} {where}{cause.get('message', '')}".strip()


# -- apply -------------------------------------------------------------------------------------


def _read_inputs(names: list[str]) -> list[tuple[str, bytes]]:
    inputs: list[tuple[str, bytes]] = []
    for name in names:
        if name == "-":
            inputs.append(("<stdin>", sys.stdin.buffer.read()))
            continue
        path = Path(name)
        files = (
            sorted(p for p in path.iterdir() if p.suffix.lower() in _MANIFEST_SUFFIXES)
            if path.is_dir()
            else [path]
        )
        for file in files:
            try:
                inputs.append((str(file), file.read_bytes()))
            except OSError as err:
                raise CliError(f"cannot read {file}: {err.strerror or err}") from None
    if not inputs:
        raise CliError(f"no manifests (*.yaml, *.yml, *.json) in {', '.join(names)}")
    return inputs


def _content_type(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix == ".json":
        return "application/json"
    if suffix in (".yaml", ".yml"):
        return "application/yaml"
    return "application/octet-stream"  # stdin: the server tells YAML from JSON


def _locate(causes: list[dict[str, Any]], inputs: list[tuple[str, bytes]]) -> None:
    """Turns a document index of the joined input into its file and index there."""
    bounds: list[tuple[int, str]] = []
    first = 0
    for name, data in inputs:
        bounds.append((first, name))
        first += len(parse_documents(data))
    for cause in causes:
        document = cause.get("document")
        if not isinstance(document, int) or document < 0:
            continue
        for start, name in reversed(bounds):
            if document >= start:
                cause["source"], cause["document"] = name, document - start
                break


def apply(args: argparse.Namespace, client: ApiClient) -> int:
    """``twinplane apply -f FILE...``: one request, so all documents apply or none does."""
    inputs = _read_inputs(args.filename)
    if len(inputs) == 1:
        source, body = inputs[0]
        ctype = _content_type(source)
    else:
        source = f"{len(inputs)} files"
        body = b"\n---\n".join(data for _, data in inputs)
        ctype = "application/yaml"
    try:
        result = client.request(
            "POST", "/api/v1/apply", body=body, content_type=ctype, query={"source": source}
        )
    except CliError as err:
        if err.causes:
            _attribute(err.causes, inputs, source)
            count = sum(_counted(cause) for cause in err.causes)
            err.message = f"{count} error{'s' if count != 1 else ''}; nothing was applied"
        raise
    warnings = result.get("warnings", [])
    _attribute(warnings, inputs, source)
    for warning in warnings:
        print(f"Warning: {format_cause(warning)}", file=sys.stderr)
    for item in result.get("items", []):
        kind = str(item["kind"]).lower()
        print(f"{kind}.{GROUP}/{item['namespace']}/{item['name']} {item['outcome']}")
    return 0


def _counted(cause: dict[str, Any]) -> int:
    """Errors a cause stands for: one, or the count of those the server did not list."""
    count = cause.get("count")
    return count if cause.get("reason") == "truncated" and isinstance(count, int) else 1


def _attribute(causes: list[dict[str, Any]], inputs: list[tuple[str, bytes]], source: str) -> None:
    """Names the file of each cause (its document index becomes the file's own)."""
    if len(inputs) > 1:
        _locate(causes, inputs)
        return
    for cause in causes:
        cause.setdefault("source", source)


# -- get ---------------------------------------------------------------------------------------


def get(args: argparse.Namespace, client: ApiClient) -> int:
    """``twinplane get devices|devicemodels|mappers [NAME] | calls DEVICE [-n NS | -A] [-o …]``."""
    resource: str = args.resource
    if resource == "events":
        return get_events(args, client)
    if args.watch or args.type:
        raise CliError("--watch and --type are for get events")
    per_resource = {"alarms": get_alarms, "mappers": _get_mappers, "calls": get_calls}
    if resource in per_resource:
        return per_resource[resource](args, client)
    if args.name and args.all_namespaces:
        raise CliError("a NAME cannot be looked up across all namespaces: drop -A or NAME")
    if args.name:
        data = client.get(_object_path(resource, args.namespace, args.name))
        items = [data]
    else:
        path = (
            f"/api/v1/{resource}"
            if args.all_namespaces
            else f"/api/v1/namespaces/{_q(args.namespace)}/{resource}"
        )
        data = client.get(path)
        items = data.get("items", [])
    if args.output != "table":
        print_data(data, args.output)
        return 0
    if not items:
        where = "any namespace" if args.all_namespaces else f"namespace {args.namespace}"
        print(f"No {resource} found in {where}.", file=sys.stderr)
        return 0
    headers, rows = (_device_rows if resource == "devices" else _model_rows)(items)
    if args.all_namespaces:
        headers = ["NAMESPACE", *headers]
        rows = [
            [item["metadata"].get("namespace", "default"), *row]
            for item, row in zip(items, rows, strict=True)
        ]
    print(table(headers, rows))
    return 0


def _get_mappers(args: argparse.Namespace, client: ApiClient) -> int:
    if args.name:
        data = client.get(_object_path("mappers", "", args.name))
        items = [data]
    else:
        data = client.get("/api/v1/mappers")
        items = data.get("items", [])
    if args.output != "table":
        print_data(data, args.output)
        return 0
    if not items:
        print("No mappers registered.", file=sys.stderr)
        return 0
    headers = ["NAME", "PROTOCOL", "ADDRESS", "VERSION", "STATE", "DEVICES", "AGE"]
    rows = [
        [
            item["name"],
            item.get("protocol") or NONE,
            item.get("address") or NONE,
            item.get("version") or NONE,
            item.get("state") or NONE,
            str(len(item.get("devices", []))),
            _age_of(item.get("registeredAt")),
        ]
        for item in items
    ]
    print(table(headers, rows))
    return 0


def _age_of(rfc3339: str | None) -> str:
    if not rfc3339:
        return NONE
    try:
        when = datetime.fromisoformat(rfc3339)
    except ValueError:
        return rfc3339
    return age(int(when.timestamp() * 1000))


def _device_rows(items: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    headers = ["NAME", "MODEL", "PROTOCOL", "NODE", "STATE", "PROPERTIES", "LAST-ONLINE"]
    rows = []
    for item in items:
        spec, status = item.get("spec", {}), item.get("status", {})
        rows.append(
            [
                item["metadata"]["name"],
                spec.get("deviceModelRef", {}).get("name", NONE),
                spec.get("protocol", {}).get("protocolName", NONE),
                spec.get("nodeName") or NONE,
                status.get("state") or "unknown",
                str(len(status.get("twins", []))),
                status.get("lastOnlineTime") or NONE,
            ]
        )
    return headers, rows


def _model_rows(items: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    headers = ["NAME", "PROTOCOL", "PROPERTIES"]
    rows = []
    for item in items:
        props = item.get("spec", {}).get("properties", [])
        names = ", ".join(f"{p['name']}:{p.get('type', '?')}" for p in props)
        rows.append(
            [
                item["metadata"]["name"],
                item.get("spec", {}).get("protocol", NONE),
                clip(names, 60) or NONE,
            ]
        )
    return headers, rows


# -- describe, delete --------------------------------------------------------------------------


def describe(args: argparse.Namespace, client: ApiClient) -> int:
    """``twinplane describe device|devicemodel NAME [-n NS]``."""
    if args.resource in ("events", "alarms"):
        raise CliError(
            f"describe takes a device or a devicemodel; for {args.resource}: twinplane get"
            f" {args.resource}"
        )
    if args.resource == "calls":
        raise CliError(
            f"describe takes a device or a devicemodel; calls: twinplane get calls {args.name}"
        )
    if args.resource == "mappers":
        raise CliError(
            f"describe takes a device or a devicemodel; for a mapper: twinplane get mapper"
            f" {args.name} -o yaml"
        )
    if args.resource == "devices":
        print(describe_device(client, args.namespace, args.name), end="")
    else:
        print(describe_model(client, args.namespace, args.name), end="")
    return 0


def delete(args: argparse.Namespace, client: ApiClient) -> int:
    """``twinplane delete device|devicemodel NAME [-n NS]``, ``twinplane delete mapper NAME``."""
    if args.resource == "events":
        raise CliError("events cannot be deleted: the log bounds itself (docs/events.md)")
    if args.resource == "calls":
        raise CliError("calls are not deleted: the edge keeps the newest of each device")
    if args.resource == "alarms":
        raise CliError("alarms cannot be deleted: they clear; acknowledge one with twinplane ack")
    client.request("DELETE", _object_path(args.resource, args.namespace, args.name))
    if args.resource == "mappers":
        print(f'mapper "{args.name}" deleted')
    else:
        print(f'{_SINGULAR[args.resource]}.{GROUP} "{args.name}" deleted')
    return 0


# -- twin --------------------------------------------------------------------------------------


def _versions(twin: dict[str, Any]) -> str:
    d, r = twin.get("desired_version", {}), twin.get("reported_version", {})
    return f"d={d.get('cloud', 0)}/{d.get('edge', 0)} r={r.get('cloud', 0)}/{r.get('edge', 0)}"


def _write_error_text(error: dict[str, Any] | None) -> str:
    """A twin's ``last_write_error`` in one line: value, attempts and reason."""
    if not error:
        return NONE
    attempts = int(error.get("attempts", 1))
    plural = "" if attempts == 1 else "s"
    return f"{error.get('value')} after {attempts} attempt{plural}: {error.get('reason')}"


def twin_rows(twins: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The ``twin get`` table of a ``{property: TwinDict}`` map."""
    headers = ["PROPERTY", "TYPE", "DESIRED", "REPORTED", "REPORTED-AT", "VERSIONS", "WRITE-ERROR"]
    rows = []
    for prop, twin in twins.items():
        desired, reported = twin.get("desired"), twin.get("reported")
        rows.append(
            [
                prop,
                str(twin.get("type", "")),
                clip(desired["value"]) if desired else NONE,
                clip(reported["value"]) if reported else NONE,
                timestamp(reported["timestamp"]) if reported else NONE,
                _versions(twin),
                clip(_write_error_text(twin.get("last_write_error")), 64),
            ]
        )
    return headers, rows


def twin_get(args: argparse.Namespace, client: ApiClient) -> int:
    """``twinplane twin get DEVICE [-n NS] [-o table|json|yaml]``."""
    data = client.get(_object_path("devices", args.namespace, args.device) + "/twin")
    if args.output != "table":
        print_data(data, args.output)
        return 0
    print(table(*twin_rows(data.get("twins", {}))))
    return 0


def _parse_assignments(items: list[str]) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for item in items:
        value: str | None
        if "=" in item:
            prop, _, value = item.partition("=")
        elif item.endswith("-"):
            prop, value = item[:-1], None  # PROP- clears the desired value (kubectl's syntax)
        else:
            raise CliError(f"{item!r} is not PROPERTY=VALUE (or PROPERTY- to clear it)")
        if not prop:
            raise CliError(f"{item!r} has no property name")
        values[prop] = value
    return values


def twin_set(args: argparse.Namespace, client: ApiClient) -> int:
    """``twinplane twin set DEVICE PROP=VALUE... [-n NS]``: prints the delta."""
    values = _parse_assignments(args.assignments)
    body = json.dumps({"desired": values}).encode()
    path = _object_path("devices", args.namespace, args.device) + "/twin"
    data = client.request("PATCH", path, body=body, content_type="application/json")
    if args.output != "table":
        print_data(data, args.output)
        return 0
    shown = ", ".join(f"{k}={v}" if v is not None else f"{k} cleared" for k, v in values.items())
    changed = len(data.get("twins", {}))
    print(f"twin {data['device']}: desired {shown} ({changed} changed)")
    delta: dict[str, str] = data.get("delta", {})
    if not delta:
        print("no delta: the device reports every desired value")
        return 0
    twins = client.get(path).get("twins", {})
    rows = []
    for prop, want in delta.items():
        reported = (twins.get(prop) or {}).get("reported")
        if reported:
            rows.append([prop, clip(want), clip(reported["value"]), age(reported["timestamp"])])
        else:
            rows.append([prop, clip(want), NONE, NONE])
    print("delta (desired values the device does not report yet):")
    print(table(["PROPERTY", "DESIRED", "REPORTED", "REPORTED-AGO"], rows))
    return 0
