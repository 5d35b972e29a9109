"""The method-call routes of the edge REST API (mounted by the edge's ``RestServer``).

- ``POST /api/v1/namespaces/{ns}/devices/{name}/methods/{method}``: a JSON object of
  arguments (for a property-writing method ``{"<property>": <value>}``; an empty body is ``{}``).
  Query: ``wait`` (e.g. ``5s``: answer ``200`` with the finished call, or ``202`` if it is still
  running when the wait ends), ``ttl`` (how long a call to an offline device may wait;
  without it such a call fails fast), ``timeout`` (its deadline once sent), ``id`` (the caller's
  call id: a retried request with the same id answers the same call). Without ``wait`` the
  answer is ``202`` with ``Location`` (the call's URL). The call is stored before any answer.
- ``GET …/devices/{name}/calls/{id}``: one call.
- ``GET …/devices/{name}/calls?limit=N``: the device's recent calls, newest first.

Unknown device, method or call: ``404`` naming it. A refused argument: ``422`` with one
``cause`` per argument (``field`` ``args.<name>``, the reason, the message). A bad ``wait``,
``ttl``, ``timeout``: ``400``. A call id used by another call: ``409``.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from aiohttp import web

from twinplane.edge.calls import (
    Call,
    CallArgumentError,
    CallConflictError,
    CallService,
    UnknownCallError,
    UnknownMethodError,
)
from twinplane.edge.methods import MethodError
from twinplane.edge.resources import ApiError
from twinplane.errors import UnknownDeviceError
from twinplane.rest.call_query import call_arguments, query_duration
from twinplane.rest.echo import clip

__all__ = ["CallRoutes"]

MAX_WAIT_S: Final = 60.0
"""Longest ``?wait=`` a request may hold its connection."""
MAX_LIMIT: Final = 500
_ENCODER: Final = msgspec.json.Encoder()
_NS: Final = "/api/v1/namespaces/{ns}/devices/{name}"


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:  # noqa: ANN401
    return web.Response(
        body=_ENCODER.encode(body), status=status, content_type="application/json", headers=headers
    )


def call_path(call: Call) -> str:
    """The call's URL path."""
    return f"/api/v1/namespaces/{call.namespace}/devices/{call.device}/calls/{call.id}"


class CallRoutes:
    """The call routes over one :class:`CallService`."""

    def __init__(self, calls: CallService) -> None:
        self.calls = calls

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Adds the routes of the module."""
        router.add_post(f"{_NS}/methods/{{method}}", self.post_call)
        router.add_get(f"{_NS}/calls", self.list_calls)
        router.add_get(f"{_NS}/calls/{{id}}", self.get_call)

    async def post_call(self, request: web.Request) -> web.Response:
        """``POST …/methods/{method}``."""
        ns, name, method = (request.match_info[k] for k in ("ns", "name", "method"))
        wait = query_duration(request, "wait", MAX_WAIT_S, _bad)
        ttl = query_duration(request, "ttl", None, _bad)
        timeout = query_duration(request, "timeout", None, _bad)
        args = await call_arguments(request, _bad)
        try:
            call = await self.calls.submit_call(
                ns,
                name,
                method,
                args,
                source="rest",
                timeout_s=timeout,
                ttl_s=ttl,
                call_id=request.query.get("id") or None,
            )
        except UnknownDeviceError:
            raise ApiError.not_found("devices", ns, name) from None
        except UnknownMethodError as err:
            raise ApiError(
                404, err.message, details={"name": clip(method), "kind": "methods"}
            ) from None
        except CallArgumentError as err:
            causes = [
                {
                    "field": f"args.{i.argument}" if i.argument else "args",
                    "reason": i.reason,
                    "message": clip(i.message, 500),
                }
                for i in err.issues
            ]
            raise ApiError.invalid(err.message, causes) from None
        except MethodError as err:
            causes = [{"field": err.path or "", "message": err.message}]
            raise ApiError.invalid(err.message, causes) from None
        except CallConflictError as err:
            raise ApiError(
                409, err.message, details={"causes": [{"field": "id", "message": err.message}]}
            ) from None
        if wait:
            call = await self.calls.wait(call, wait)
        status = 200 if call.finished else 202
        return _json(call.to_json(), status, {"Location": call_path(call)})

    async def get_call(self, request: web.Request) -> web.Response:
        """``GET …/calls/{id}``."""
        ns, name, call_id = (request.match_info[k] for k in ("ns", "name", "id"))
        try:
            call = await self.calls.get_call(ns, name, call_id)
        except UnknownCallError as err:
            raise ApiError(
                404, clip(err.message), details={"name": clip(call_id), "kind": "calls"}
            ) from None
        return _json(call.to_json())

    async def list_calls(self, request: web.Request) -> web.Response:
        """``GET …/calls?limit=N``: newest first."""
        ns, name = request.match_info["ns"], request.match_info["name"]
        if f"{ns}/{name}" not in self.calls.core.devices:
            raise ApiError.not_found("devices", ns, name)
        text = request.query.get("limit", "50")
        if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
            raise _bad(
                "limit", f"limit must be a number from 1 to {MAX_LIMIT} (got {clip(text)!r})"
            )
        calls = await self.calls.list_calls(ns, name, int(text))
        return _json(
            {"kind": "CallList", "apiVersion": "v1", "items": [c.to_json() for c in calls]}
        )


def _bad(field: str, message: str) -> ApiError:
    return ApiError(400, message, details={"causes": [{"field": field, "message": message}]})
