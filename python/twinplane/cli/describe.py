"""``twinplane describe``: one object for a person, like ``kubectl describe``."""

from __future__ import annotations

import urllib.parse
from typing import Any

from twinplane.cli.alarms import HEADERS as ALARM_HEADERS
from twinplane.cli.alarms import alarm_rows, device_alarms
from twinplane.cli.client import ApiClient, CliError
from twinplane.cli.events import event_rows, recent_events
from twinplane.cli.output import NONE, clip, table, timestamp

__all__ = ["describe_device", "describe_model"]

_LABEL_WIDTH = 16


def _path(resource: str, namespace: str, name: str) -> str:
    q = urllib.parse.quote
    return f"/api/v1/namespaces/{q(namespace, safe='')}/{resource}/{q(name, safe='')}"


class _Text:
    """Lines of ``Label:  value`` pairs and indented blocks."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def field(self, label: str, value: object, indent: int = 0) -> None:
        text = NONE if value in (None, "", [], {}) else str(value)
        width = max(_LABEL_WIDTH - indent, len(label) + 2)
        self.lines.append(" " * indent + f"{label + ':':<{width}}{text}")

    def heading(self, label: str) -> None:
        self.lines.append(f"{label}:")

    def block(self, text: str, indent: int = 2) -> None:
        self.lines.extend(" " * indent + line for line in text.splitlines())

    def mapping(self, label: str, data: dict[str, Any] | None) -> None:
        if not data:
            self.field(label, None)
            return
        self.heading(label)
        for key, value in data.items():
            self.field(str(key), value, indent=2)

    def render(self) -> str:
        return "\n".join(self.lines) + "\n"


def _meta(out: _Text, item: dict[str, Any]) -> None:
    meta = item.get("metadata", {})
    out.field("Name", meta.get("name"))
    out.field("Namespace", meta.get("namespace", "default"))
    out.field("API Version", item.get("apiVersion"))
    out.field("Kind", item.get("kind"))
    labels = meta.get("labels") or {}
    out.field("Labels", ", ".join(f"{k}={v}" for k, v in labels.items()))
    annotations = meta.get("annotations") or {}
    out.field("Annotations", ", ".join(f"{k}={v}" for k, v in annotations.items()))


def describe_device(client: ApiClient, namespace: str, name: str) -> str:
    """A device: spec summary, state, per property its values, and failed desired writes."""
    device = client.get(_path("devices", namespace, name))
    twins: dict[str, Any] = client.get(_path("devices", namespace, name) + "/twin")["twins"]
    spec, status = device.get("spec", {}), device.get("status", {})
    model_name = spec.get("deviceModelRef", {}).get("name", "")
    try:
        model = client.get(_path("devicemodels", namespace, model_name))
    except CliError:
        model = {}
    model_props = {p["name"]: p for p in model.get("spec", {}).get("properties", [])}
    out = _Text()
    _meta(out, device)
    out.field("Model", model_name)
    protocol = spec.get("protocol", {})
    out.field("Protocol", protocol.get("protocolName"))
    out.field("Node", spec.get("nodeName"))
    out.field("State", status.get("state", "unknown"))
    out.field("Last Online", status.get("lastOnlineTime"))
    out.mapping("Protocol Config", protocol.get("configData"))
    own = {p["name"]: p for p in spec.get("properties", [])}
    rows = []
    for prop, twin in twins.items():
        desired, reported = twin.get("desired"), twin.get("reported")
        mine = own.get(prop, {})
        rows.append(
            [
                prop,
                str(twin.get("type", "")),
                model_props.get(prop, {}).get("accessMode", NONE),
                clip(desired["value"], 32) if desired else NONE,
                timestamp(desired["timestamp"]) if desired else NONE,
                clip(reported["value"], 32) if reported else NONE,
                timestamp(reported["timestamp"]) if reported else NONE,
                _cycle(mine.get("collectCycle")),
                _cycle(mine.get("reportCycle")),
            ]
        )
    if rows:
        out.heading("Properties")
        headers = ["NAME", "TYPE", "ACCESS", "DESIRED", "DESIRED-AT", "REPORTED", "REPORTED-AT"]
        out.block(table([*headers, "COLLECT", "REPORT"], rows))
    else:
        out.field("Properties", None)
    _write_errors(out, twins)
    methods = spec.get("methods", [])
    if methods:
        out.heading("Methods")
        for method in methods:
            out.field(method["name"], ", ".join(method.get("propertyNames", [])), indent=2)
    else:
        out.field("Methods", None)
    _alarms(out, client, namespace, name)
    _events(out, client, namespace, name)
    return out.render()


def _alarms(out: _Text, client: ApiClient, namespace: str, name: str) -> None:
    """The device's active alarms, then its recently cleared ones."""
    try:
        items = device_alarms(client, namespace, name)
    except CliError:  # an older device manager without alarms
        items = []
    if not items:
        out.field("Alarms", None)
        return
    out.heading("Alarms")
    out.block(table(ALARM_HEADERS[1:], [row[1:] for row in alarm_rows(items)]))


def _events(out: _Text, client: ApiClient, namespace: str, name: str) -> None:
    """The device's recent events, oldest first (kubectl describe's Events)."""
    try:
        items = recent_events(client, namespace, name)
    except CliError:  # an older device manager without the event log
        items = []
    if not items:
        out.field("Events", None)
        return
    out.heading("Events")
    headers = ["LAST SEEN", "TYPE", "SEVERITY", "REASON", "OBJECT", "COUNT", "MESSAGE"]
    out.block(table(headers, event_rows(items)))


def _write_errors(out: _Text, twins: dict[str, Any]) -> None:
    """Each property whose last desired write failed: value, when, attempts, the full reason."""
    failed = {p: t["last_write_error"] for p, t in twins.items() if t.get("last_write_error")}
    if not failed:
        out.field("Write Errors", None)
        return
    out.heading("Write Errors")
    for prop, error in failed.items():
        attempts = int(error.get("attempts", 1))
        plural = "" if attempts == 1 else "s"
        when = timestamp(error.get("time"))
        out.field(
            prop,
            f"{error.get('value')} at {when} after {attempts} attempt{plural}: "
            f"{error.get('reason')}",
            indent=2,
        )


def _cycle(ms: object) -> str:
    if not isinstance(ms, int) or ms <= 0:
        return "default"
    return f"{ms / 1000:g}s" if ms >= 1000 else f"{ms}ms"  # noqa: PLR2004 - ms per s


def describe_model(client: ApiClient, namespace: str, name: str) -> str:
    """A device model: protocol, properties, and the devices that use it."""
    model = client.get(_path("devicemodels", namespace, name))
    q = urllib.parse.quote(namespace, safe="")
    devices = client.get(f"/api/v1/namespaces/{q}/devices").get("items", [])
    spec = model.get("spec", {})
    out = _Text()
    _meta(out, model)
    out.field("Protocol", spec.get("protocol"))
    out.mapping("Protocol Config", spec.get("protocolConfigData"))
    rows = [
        [
            p["name"],
            p.get("type", ""),
            p.get("accessMode", ""),
            p.get("unit") or NONE,
            p.get("minimum") or NONE,
            p.get("maximum") or NONE,
            clip(p.get("description") or NONE, 40),
        ]
        for p in spec.get("properties", [])
    ]
    if rows:
        out.heading("Properties")
        headers = ["NAME", "TYPE", "ACCESS", "UNIT", "MIN", "MAX", "DESCRIPTION"]
        out.block(table(headers, rows))
    else:
        out.field("Properties", None)
    users = [
        d["metadata"]["name"]
        for d in devices
        if d.get("spec", {}).get("deviceModelRef", {}).get("name") == name
    ]
    out.field("Used By", ", ".join(users))
    return out.render()
