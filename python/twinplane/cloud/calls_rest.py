"""The cloud's call routes: the edge's call API, answered with DeviceCall objects.

So ``twinplane call DEVICE METHOD ... --server <cloud>`` and ``twinplane get calls DEVICE
--server <cloud>`` work against the cloud as they do against an edge:

- ``POST /api/v1/namespaces/{ns}/devices/{name}/methods/{method}`` creates a DeviceCall
  (``twinplane.io/v1alpha1``; named ``<device>-<method>-<random>``) with the JSON body as its
  arguments and ``?timeout=`` / ``?ttl=`` as ``timeoutSeconds`` / ``ttlSeconds``; ``?wait=5s``
  answers ``200`` with the finished call, or ``202`` if it is still running then (with
  ``Location``). The edge of the device checks the arguments: a refused one ends the call
  ``Failed`` (``InvalidArguments``) rather than a ``422`` here.
- ``GET …/calls/{id}`` (the DeviceCall's name) and ``GET …/calls`` (newest first).

A call's JSON is the edge's (``id``, ``namespace``, ``device``, ``method``, ``args``,
``source``, ``state``, ``result``, ``error``, ``createdMs``, ``sentMs``, ``finishedMs``), plus
``uid``, the call's id on the edge.
"""

from __future__ import annotations

import asyncio
import math
import re
import secrets
import time
from datetime import datetime
from typing import Any, Final

import msgspec
from aiohttp import web

from twinplane.cloud.api import ApiError
from twinplane.cloud.device_calls import FINAL_STATES, MAX_TIMEOUT_S, MAX_TTL_S
from twinplane.cloud.registry import NotFoundError, Registry
from twinplane.cloud.registry.base import TWINPLANE_GROUP_VERSION
from twinplane.rest.call_query import call_arguments, query_duration
from twinplane.rest.echo import clip

__all__ = ["CallRoutes", "call_json"]

MAX_WAIT_S: Final = 60.0
"""Longest ``?wait=`` a request may hold its connection."""

POLL_S: Final = 0.05
"""How often a waiting request reads the call again."""

_NS: Final = "/api/v1/namespaces/{ns}/devices/{name}"
_NOT_NAME: Final = re.compile(r"[^a-z0-9-]+")
_ENC: Final = msgspec.json.Encoder()


class CallRoutes:
    """The routes over one registry."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Adds the routes of the module."""
        router.add_post(f"{_NS}/methods/{{method}}", self.post_call)
        router.add_get(f"{_NS}/calls", self.list_calls)
        router.add_get(f"{_NS}/calls/{{id}}", self.get_call)

    async def post_call(self, request: web.Request) -> web.Response:
        """``POST …/methods/{method}``: a new DeviceCall."""
        ns, name, method = (request.match_info[k] for k in ("ns", "name", "method"))
        wait = query_duration(request, "wait", MAX_WAIT_S, _bad)
        timeout = query_duration(request, "timeout", MAX_TIMEOUT_S, _bad)
        ttl = query_duration(request, "ttl", MAX_TTL_S, _bad)
        args = await call_arguments(request, _bad)
        await self._device(ns, name)
        spec: dict[str, Any] = {"deviceRef": {"name": name}, "method": method, "arguments": args}
        if timeout is not None:
            spec["timeoutSeconds"] = max(1, math.ceil(timeout))
        if ttl is not None:
            spec["ttlSeconds"] = math.ceil(ttl)
        obj = await self.registry.create(
            "devicecalls",
            {
                "apiVersion": TWINPLANE_GROUP_VERSION,
                "kind": "DeviceCall",
                "metadata": {"name": _call_name(name, method), "namespace": ns},
                "spec": spec,
            },
        )
        if wait:
            obj = await self._wait(obj, wait)
        body = call_json(obj)
        status = 200 if body["state"] in FINAL_STATES else 202
        location = f"/api/v1/namespaces/{ns}/devices/{name}/calls/{body['id']}"
        return _json(body, status, {"Location": location})

    async def get_call(self, request: web.Request) -> web.Response:
        """``GET …/calls/{id}``."""
        ns, name, call_id = (request.match_info[k] for k in ("ns", "name", "id"))
        try:
            obj = await self.registry.get("devicecalls", ns, call_id)
        except NotFoundError:
            obj = None
        if obj is None or (obj.get("spec") or {}).get("deviceRef", {}).get("name") != name:
            message = f"call {clip(call_id)} of device {ns}/{clip(name)} not found"
            raise _error(404, message, "NotFound", {"name": clip(call_id), "kind": "calls"})
        return _json(call_json(obj))

    async def list_calls(self, request: web.Request) -> web.Response:
        """``GET …/calls?limit=N``: the device's DeviceCalls, newest first."""
        ns, name = request.match_info["ns"], request.match_info["name"]
        await self._device(ns, name)
        text = request.query.get("limit", "50")
        if not text.isdigit() or not 1 <= int(text) <= 1000:  # noqa: PLR2004 - documented
            raise _bad("limit", f"limit must be a number from 1 to 1000 (got {clip(text)!r})")
        items, _ = await self.registry.list("devicecalls", ns)
        mine = [o for o in items if (o.get("spec") or {}).get("deviceRef", {}).get("name") == name]
        calls = sorted((call_json(o) for o in mine), key=lambda c: -c["createdMs"])
        return _json({"kind": "CallList", "apiVersion": "v1", "items": calls[: int(text)]})

    async def _device(self, ns: str, name: str) -> None:
        try:
            await self.registry.get("devices", ns, name)
        except NotFoundError:
            message = f'devices "{clip(name)}" not found in namespace {ns}'
            raise _error(
                404, message, "NotFound", {"name": clip(name), "kind": "devices"}
            ) from None

    async def _wait(self, obj: dict[str, Any], wait: float) -> dict[str, Any]:
        meta = obj["metadata"]
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if ((obj.get("status") or {}).get("state")) in FINAL_STATES:
                return obj
            await asyncio.sleep(POLL_S)
            try:
                obj = await self.registry.get("devicecalls", meta["namespace"], meta["name"])
            except NotFoundError:
                return obj  # deleted meanwhile: the last word we have
        return obj


def call_json(obj: dict[str, Any]) -> dict[str, Any]:
    """A DeviceCall in the edge's call shape."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    status = obj.get("status") or {}
    return {
        "id": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "namespace": meta.get("namespace", "default"),
        "device": (spec.get("deviceRef") or {}).get("name", ""),
        "method": spec.get("method", ""),
        "args": spec.get("arguments") or {},
        "source": "cloud",
        "node": status.get("node"),
        "state": status.get("state") or "Pending",
        "result": status.get("result"),
        "error": status.get("error"),
        "timeoutMs": None if spec.get("timeoutSeconds") is None else spec["timeoutSeconds"] * 1000,
        "ttlMs": None if spec.get("ttlSeconds") is None else spec["ttlSeconds"] * 1000,
        "createdMs": _ms(meta.get("creationTimestamp")) or 0,
        "sentMs": _ms(status.get("sentTime")),
        "finishedMs": _ms(status.get("finishedTime")),
    }


def _call_name(device: str, method: str) -> str:
    """``<device>-<method>-<6 random>``, a valid object name of at most 253 characters."""
    stem = _NOT_NAME.sub("-", f"{device}-{method}".lower()).strip("-")[:240] or "call"
    return f"{stem}-{secrets.token_hex(3)}"


def _ms(stamp: object) -> int | None:
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _bad(field: str, message: str) -> ApiError:
    return ApiError(400, message, details={"causes": [{"field": field, "message": message}]})


def _error(code: int, message: str, reason: str, details: dict[str, Any]) -> ApiError:
    return ApiError(code, message, reason=reason, details=details)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:  # noqa: ANN401
    return web.Response(
        body=_ENC.encode(body), status=status, content_type="application/json", headers=headers
    )
