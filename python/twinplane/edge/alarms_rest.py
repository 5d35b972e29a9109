"""The alarms' REST routes (:mod:`twinplane.edge.alarms`).

- ``GET /api/v1/namespaces/{ns}/devices/{name}/alarms``: the device's active alarms and its
  recently cleared ones (an ``AlarmList``, active first);
- ``GET /api/v1/alarms``: every active alarm of the node; ``?severity=warning,critical`` and
  ``?namespace=`` narrow it;
- ``POST /api/v1/namespaces/{ns}/devices/{name}/alarms/{rule}/ack``: acknowledges the active
  alarm of ``rule``; an optional JSON body ``{"by": "<who>"}`` (default: the client's address,
  or ``anonymous``). Acknowledging again answers the alarm with its first acknowledgement.

An ``AlarmList`` is ``{"kind": "AlarmList", "apiVersion": "v1", "metadata": {}, "items": [...]}``,
each item :meth:`~twinplane.edge.alarms.Alarm.to_json`. Errors are Kubernetes ``Status``
answers naming the field (400 for a bad parameter or body, 404 for an unknown device or an alarm
that is not active).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec
from aiohttp import web

from twinplane.edge.alarms import Alarm, AlarmBook
from twinplane.edge.events import SEVERITIES
from twinplane.edge.resources import ApiError
from twinplane.rest.echo import clip

__all__ = ["MAX_BY", "AlarmRoutes"]

MAX_BY: Final = 256
"""Longest ``by`` an acknowledgement takes."""

_ENCODER: Final = msgspec.json.Encoder()


def _list(alarms: list[Alarm]) -> web.Response:
    body = {
        "kind": "AlarmList",
        "apiVersion": "v1",
        "metadata": {},
        "items": [a.to_json() for a in alarms],
    }
    return web.Response(body=_ENCODER.encode(body), content_type="application/json")


def _severities(query: Mapping[str, str]) -> frozenset[str] | None:
    text = query.get("severity")
    if not text:
        return None
    values = frozenset(v.strip() for v in text.split(",") if v.strip())
    unknown = sorted(values - SEVERITIES)
    if unknown:
        raise ApiError(
            400,
            f"severity: unknown value(s) {clip(', '.join(unknown))}; allowed:"
            f" {', '.join(sorted(SEVERITIES))}",
            details={"causes": [{"field": "severity"}]},
        )
    return values or None


def _by(raw: bytes, fallback: str) -> str:
    """The ``by`` of an acknowledgement's body (empty body: ``fallback``)."""
    if not raw.strip():
        return fallback
    try:
        data: Any = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError) as err:
        raise ApiError(400, f"the body is not JSON: {clip(str(err))}") from err
    if not isinstance(data, dict):
        raise ApiError(400, 'the body must be a JSON object such as {"by": "operator"}')
    unknown = sorted(set(data) - {"by"})
    if unknown:
        field = clip(unknown[0])
        raise ApiError(400, f"{field}: unknown field", details={"causes": [{"field": field}]})
    by = data.get("by")
    if by is None:
        return fallback
    if not isinstance(by, str) or not by.strip() or len(by) > MAX_BY:
        raise ApiError(
            400,
            f"by: expected a non-empty string of at most {MAX_BY} characters",
            details={"causes": [{"field": "by"}]},
        )
    return by.strip()


class AlarmRoutes:
    """The alarms' routes over one :class:`~twinplane.edge.alarms.AlarmBook`.

    Args:
        alarms: The book.
        devices: The registry's devices by id (an unknown device is a 404).
    """

    def __init__(self, alarms: AlarmBook, devices: Mapping[str, object]) -> None:
        self.alarms = alarms
        self.devices = devices

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Adds the three routes."""
        device = "/api/v1/namespaces/{ns}/devices/{name}"
        router.add_get(f"{device}/alarms", self.list_device)
        router.add_post(f"{device}/alarms/{{rule}}/ack", self.acknowledge)
        router.add_get("/api/v1/alarms", self.list_active)

    def _device_id(self, request: web.Request) -> str:
        ns, name = request.match_info["ns"], request.match_info["name"]
        device_id = f"{ns}/{name}"
        if device_id not in self.devices:
            raise ApiError.not_found("devices", ns, name)
        return device_id

    async def list_device(self, request: web.Request) -> web.Response:
        """``GET …/devices/{name}/alarms``: active, then recently cleared (newest first)."""
        device_id = self._device_id(request)
        return _list(self.alarms.active(device_id) + self.alarms.cleared(device_id))

    async def list_active(self, request: web.Request) -> web.Response:
        """``GET /api/v1/alarms``: every active alarm (``?severity=``, ``?namespace=``)."""
        severities = _severities(request.query)
        namespace = request.query.get("namespace") or None
        found = [
            a
            for a in self.alarms.active()
            if (severities is None or a.severity in severities)
            and (namespace is None or a.namespace == namespace)
        ]
        return _list(found)

    async def acknowledge(self, request: web.Request) -> web.Response:
        """``POST …/alarms/{rule}/ack``: the alarm, acknowledged (the first ack is kept)."""
        device_id = self._device_id(request)
        rule = request.match_info["rule"]
        by = _by(await request.read(), request.remote or "anonymous")
        alarm = await self.alarms.acknowledge(device_id, rule, by)
        if alarm is None:
            ns, name = request.match_info["ns"], request.match_info["name"]
            raise ApiError(
                404,
                f'alarm "{clip(rule)}" is not active on device {clip(ns)}/{clip(name)}',
                details={"name": clip(rule), "namespace": clip(ns), "kind": "alarms"},
            )
        return web.Response(body=_ENCODER.encode(alarm.to_json()), content_type="application/json")
