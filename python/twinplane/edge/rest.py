"""The device manager's REST API: Kubernetes-style JSON over HTTP (aiohttp).

Routes (``{ns}`` a namespace, ``{name}`` an object name):

- ``GET /api/v1/devices``, ``GET /api/v1/devicemodels``: every namespace;
  ``GET /api/v1/namespaces/{ns}/devices[/{name}]``, ``…/devicemodels[/{name}]``;
  ``DELETE`` the same single-object paths (409 for a model that devices still use).
- ``GET|PATCH /api/v1/namespaces/{ns}/devices/{name}/twin``: the twins (a GET also lists the
  device's active alarms, ``alarms``); a PATCH body
  ``{"desired": {"<property>": "<value>" | null}}`` sets (or clears) desired values and answers
  with the device's delta and the changed twins.
- ``POST /api/v1/apply``: YAML or JSON manifests, one or many documents; 422 lists every issue.
- ``GET /api/v1/events``: server-sent events (:mod:`twinplane.edge.sse`), filtered by
  :mod:`twinplane.edge.events_rest`, which also serves the event log's routes.
- ``GET …/devices/{name}/alarms``, ``GET /api/v1/alarms``, ``POST …/alarms/{rule}/ack``:
  the alarms (:mod:`twinplane.edge.alarms_rest`).
- ``GET /api/v1/mappers[/{name}]``: the registered mappers; ``DELETE /api/v1/mappers/{name}``
  forgets one (it is contacted no more; its devices go to another mapper of its protocol).
- ``POST …/devices/{name}/methods/{method}``, ``GET …/devices/{name}/calls[/{id}]``: method
  calls (:mod:`twinplane.edge.calls_rest`).
- ``GET /healthz``, ``GET /metrics`` (:mod:`twinplane.edge.metrics`).

Every request passes :class:`~twinplane.rest.guard.RequestGuard` first (``Host``, ``Origin``, how
a write says who sends it; 403 otherwise). Every failure is a Kubernetes ``Status``
(:mod:`twinplane.edge.resources`), whatever raised it, and no bigger than
:func:`~twinplane.rest.echo.bounded` lets it be: a request's 16 MiB are never repeated back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler

from twinplane import __version__
from twinplane.edge.alarms_rest import AlarmRoutes
from twinplane.edge.calls import CallService
from twinplane.edge.calls_rest import CallRoutes
from twinplane.edge.core import EdgeCore, InUseError
from twinplane.edge.desired import DesiredValueError
from twinplane.edge.dmi_server import DmiServer
from twinplane.edge.events_rest import (
    EventLogRoutes,
    EventParamError,
    param_error,
    parse_stream_filter,
)
from twinplane.edge.firmware import FirmwareStore
from twinplane.edge.firmware_rest import FirmwareRoutes
from twinplane.edge.mappers import MapperDirectory
from twinplane.edge.metrics import CONTENT_TYPE, RequestCounts, render_metrics
from twinplane.edge.resources import (
    GROUP,
    ApiError,
    device_json,
    issue_cause,
    list_json,
    model_json,
    status_body,
    twin_json,
    twins_json,
)
from twinplane.edge.sse import MAX_EVENT_STREAMS, EventStreams, parse_kinds
from twinplane.edge.store import StoredMapper, StoreError
from twinplane.errors import (
    SpecError,
    TwinplaneError,
    UnknownDeviceError,
    UnknownPropertyError,
    ValueTypeError,
)
from twinplane.manifests import ManifestError, ManifestIssue
from twinplane.manifests.parse import parse_documents
from twinplane.rest.echo import bounded, clip
from twinplane.rest.guard import RequestGuard, RequestRefused, allowed_host

if TYPE_CHECKING:
    from twinplane.edge.mqtt_bridge import MqttBridge

__all__ = ["MAX_BODY_BYTES", "RestServer", "parse_addr"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 16 * 1024 * 1024
"""Largest request body (an apply of many manifests); larger ones get 413."""

HEARTBEAT_S: Final = 15.0
"""Seconds of silence after which an event stream gets a heartbeat comment."""

_YAML_TYPES: Final = frozenset(
    {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"}
    | {"application/apply-patch+yaml"}  # what kubectl apply --server-side sends
)
_JSON_TYPES: Final = frozenset({"application/json", "application/merge-patch+json"})
_SNIFFED_TYPES: Final = frozenset(
    {"application/octet-stream", "text/plain", ""}
    | {"application/x-www-form-urlencoded"}  # what curl --data-binary sends unless told
)
_FIELD_NAME: Final = re.compile(r"[A-Za-z0-9_-]+")
_ENCODER: Final = msgspec.json.Encoder()

HealthCheck = Callable[[], Awaitable[dict[str, Any]]]
"""A component check: returns a dict with at least ``status`` (``ok`` or ``fail``)."""


def parse_addr(addr: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:7780`` for IPv6) as a host and a port.

    Raises:
        SpecError: Not ``HOST:PORT`` with a port from 0 to 65535.
    """
    host, sep, port_text = addr.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:  # noqa: PLR2004
        raise SpecError(
            f"REST address {addr!r} is not HOST:PORT (e.g. 127.0.0.1:7780; port 0 picks one)",
            path="rest_addr",
        )
    return host, int(port_text)


def _json_response(body: Any, status: int = 200) -> web.Response:  # noqa: ANN401 - JSON
    return web.Response(body=_ENCODER.encode(body), status=status, content_type="application/json")


def _error_response(body: dict[str, Any], status: int) -> web.Response:
    """A failure's ``Status``, every string in it clipped and encodable."""
    return _json_response(bounded(body), status)


def _field(prefix: str, key: str) -> str:
    if _FIELD_NAME.fullmatch(key):
        return f"{prefix}.{clip(key)}"
    return f"{prefix}[{json.dumps(clip(key))}]"


class RestServer:
    """The REST API of one device manager.

    Args:
        core: The registry, twins and event hub.
        dmi: The DMI server (admission counters, health).
        mappers: The mapper directory (link counters).
        heartbeat: Seconds of silence before an event stream gets a heartbeat comment.
        max_body: Largest accepted request body, in bytes.
        allowed_hosts: Names (or addresses) ``Host`` may carry besides the bound address and
            loopback (:mod:`twinplane.rest.guard`).
        max_event_streams: Most event streams open at once; more are answered 429.

    Raises:
        SpecError: An allowed host is not a host name or an IP address.

    Attributes:
        mqtt: The MQTT bridge whose counters ``/metrics`` exports, once one runs (the app
            starts it after the REST API), else ``None``.
    """

    def __init__(  # noqa: PLR0913 - the collaborators, then keyword-only settings
        self,
        core: EdgeCore,
        dmi: DmiServer,
        mappers: MapperDirectory,
        *,
        calls: CallService | None = None,
        firmware: FirmwareStore | None = None,
        heartbeat: float = HEARTBEAT_S,
        max_body: int = MAX_BODY_BYTES,
        allowed_hosts: Sequence[str] = (),
        max_event_streams: int = MAX_EVENT_STREAMS,
    ) -> None:
        self.core = core
        self.dmi = dmi
        self.mappers = mappers
        self.calls = calls
        self.firmware = firmware
        self.heartbeat = heartbeat
        self.max_body = max_body
        self.allowed_hosts = tuple(allowed_host(name) for name in allowed_hosts)
        self.streams = EventStreams(core.hub, limit=max_event_streams)
        self.url = ""
        self.requests = RequestCounts()
        self.mqtt: MqttBridge | None = None
        self._checks: dict[str, HealthCheck] = {"store": self._check_store, "dmi": self._check_dmi}
        self._guard: RequestGuard | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, addr: str) -> str:
        """Listens on ``HOST:PORT`` (port 0 picks a free one); returns the base URL.

        Raises:
            SpecError: ``addr`` is not ``HOST:PORT``.
            OSError: The address cannot be bound.
        """
        host, port = parse_addr(addr)
        app = web.Application(middlewares=[self._middleware], client_max_size=self.max_body)
        self._routes(app.router)
        runner = web.AppRunner(app, shutdown_timeout=5.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.streams.open()
        bound_port = runner.addresses[0][1]
        self._guard = RequestGuard(host, bound_port, self.allowed_hosts)
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{bound_port}"
        log.info("REST API listening", extra={"url": self.url})
        return self.url

    async def stop(self) -> None:
        """Ends the event streams, stops listening and waits for requests in progress."""
        await self.streams.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def add_health_check(self, name: str, check: HealthCheck) -> None:
        """Adds a component to ``/healthz`` (e.g. the MQTT bridge)."""
        self._checks[name] = check

    def _routes(self, router: web.UrlDispatcher) -> None:
        ns = "/api/v1/namespaces/{ns}"
        router.add_get("/healthz", self.healthz)
        router.add_get("/metrics", self.metrics)
        router.add_get("/api/v1/devices", self.list_devices)
        router.add_get("/api/v1/devicemodels", self.list_models)
        router.add_get(f"{ns}/devices", self.list_devices)
        router.add_get(f"{ns}/devicemodels", self.list_models)
        router.add_get(f"{ns}/devices/{{name}}", self.get_device)
        router.add_delete(f"{ns}/devices/{{name}}", self.delete_device)
        router.add_get(f"{ns}/devicemodels/{{name}}", self.get_model)
        router.add_delete(f"{ns}/devicemodels/{{name}}", self.delete_model)
        router.add_get(f"{ns}/devices/{{name}}/twin", self.get_twin)
        router.add_patch(f"{ns}/devices/{{name}}/twin", self.patch_twin)
        router.add_post("/api/v1/apply", self.apply)
        router.add_get("/api/v1/events", self.events, allow_head=False)  # a stream has no HEAD
        EventLogRoutes(self.core.events).add_routes(router)
        AlarmRoutes(self.core.alarms, self.core.devices).add_routes(router)
        router.add_get("/api/v1/mappers", self.list_mappers)
        router.add_get("/api/v1/mappers/{name}", self.get_mapper)
        router.add_delete("/api/v1/mappers/{name}", self.delete_mapper)
        if self.calls is not None:
            CallRoutes(self.calls).add_routes(router)
        if self.firmware is not None:
            FirmwareRoutes(self.firmware).add_routes(router)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Guards the request, turns every failure into a ``Status`` answer, counts it."""
        try:
            if self._guard is not None:
                self._guard.check(request)
            response = await handler(request)
        except RequestRefused as err:
            cause = {"field": err.header, "message": err.message}
            body = status_body(err.status, err.message, details={"causes": [cause]})
            response = _error_response(body, err.status)
        except ApiError as err:
            response = _error_response(err.body, err.code)
            response.headers.update(err.headers)
        except web.HTTPException as exc:
            if exc.status < 400:  # noqa: PLR2004 - redirects pass through
                raise
            message = _http_message(request, exc, self.max_body)
            response = _error_response(status_body(exc.status, message), exc.status)
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
        except TwinplaneError as err:
            code, reason = _error_status(err)
            if code >= 500:  # noqa: PLR2004
                log.exception("%s %s failed", request.method, clip(request.path))
            details = {"causes": [{"field": err.path, "message": err.message}]} if err.path else {}
            body = status_body(code, err.message, reason=reason, details=details)
            response = _error_response(body, code)
        except Exception:  # a bug must answer 500, not drop the connection
            log.exception("%s %s failed", request.method, clip(request.path))
            response = _error_response(status_body(500, "internal error (see the server log)"), 500)
        route = request.match_info.route.resource
        self.requests.add(
            request.method, route.canonical if route is not None else "unmatched", response.status
        )
        return response

    # -- registry -------------------------------------------------------------------------

    async def list_devices(self, request: web.Request) -> web.Response:
        """``GET …/devices``: a DeviceList (one namespace, or all)."""
        ns = request.match_info.get("ns")
        devices = sorted(
            (d for d in self.core.devices.values() if ns is None or d.namespace == ns),
            key=lambda d: (d.namespace, d.name),
        )
        return _json_response(list_json("Device", [device_json(self.core, d) for d in devices]))

    async def list_models(self, request: web.Request) -> web.Response:
        """``GET …/devicemodels``: a DeviceModelList (one namespace, or all)."""
        ns = request.match_info.get("ns")
        models = sorted(
            (m for m in self.core.models.values() if ns is None or m.namespace == ns),
            key=lambda m: (m.namespace, m.name),
        )
        return _json_response(list_json("DeviceModel", [model_json(m) for m in models]))

    async def get_device(self, request: web.Request) -> web.Response:
        """``GET …/devices/{name}``: the Device with its status."""
        ns, name = request.match_info["ns"], request.match_info["name"]
        device = self.core.devices.get(f"{ns}/{name}")
        if device is None:
            raise ApiError.not_found("devices", ns, name)
        return _json_response(device_json(self.core, device))

    async def get_model(self, request: web.Request) -> web.Response:
        """``GET …/devicemodels/{name}``: the DeviceModel."""
        ns, name = request.match_info["ns"], request.match_info["name"]
        model = self.core.models.get(f"{ns}/{name}")
        if model is None:
            raise ApiError.not_found("devicemodels", ns, name)
        return _json_response(model_json(model))

    async def delete_device(self, request: web.Request) -> web.Response:
        """``DELETE …/devices/{name}``: removes the device, its twins and state."""
        ns, name = request.match_info["ns"], request.match_info["name"]
        if not await self.core.delete_device(ns, name):
            raise ApiError.not_found("devices", ns, name)
        return _json_response(_deleted("devices", ns, name))

    async def delete_model(self, request: web.Request) -> web.Response:
        """``DELETE …/devicemodels/{name}``: 409 while devices use the model."""
        ns, name = request.match_info["ns"], request.match_info["name"]
        try:
            existed = await self.core.delete_model(ns, name)
        except InUseError as err:
            raise ApiError(
                409,
                err.message,
                reason="Conflict",
                details={"name": name, "namespace": ns, "group": GROUP, "kind": "devicemodels"},
            ) from err
        if not existed:
            raise ApiError.not_found("devicemodels", ns, name)
        return _json_response(_deleted("devicemodels", ns, name))

    async def apply(self, request: web.Request) -> web.Response:
        """``POST /api/v1/apply``: validates everything, then applies (all or nothing)."""
        ctype = request.content_type
        if ctype not in _YAML_TYPES | _JSON_TYPES | _SNIFFED_TYPES:
            raise ApiError(
                415,
                f"Content-Type {ctype} is not accepted: send application/yaml or "
                "application/json (or no Content-Type)",
            )
        body = await request.read()  # 413 past client_max_size
        if not body.strip():
            raise ApiError(400, "empty body: nothing to apply")
        source = clip(request.query.get("source", "<request body>"))
        try:
            result = await self.core.apply(body, source=source)
        except ManifestError as err:
            issues = await asyncio.to_thread(_with_documents, err.issues, body)
            count, first = len(issues), clip(str(issues[0]), 500)
            raise ApiError.invalid(
                f"{count} error{'s' if count != 1 else ''} in {source}: {first}",
                [issue_cause(i) for i in issues],
                {"source": source},
            ) from err
        items = []
        for kind, object_id, outcome in result.outcomes:
            namespace, _, name = object_id.partition("/")
            items.append({"kind": kind, "namespace": namespace, "name": name, "outcome": outcome})
        warnings = [issue_cause(w) for w in result.warnings]
        return _json_response({"kind": "ApplyResult", "items": items, "warnings": warnings})

    # -- mappers --------------------------------------------------------------------------

    def _mapper_json(self, mapper: StoredMapper) -> dict[str, Any]:
        devices = self.mappers.devices_of(mapper.name)
        return {
            "name": mapper.name,
            "protocol": mapper.protocol,
            "address": mapper.address,
            "version": mapper.version,
            "apiVersion": mapper.api_version,
            "state": mapper.state,
            "registeredAt": _rfc3339(mapper.registered_ms),
            "devices": devices,
        }

    async def list_mappers(self, request: web.Request) -> web.Response:
        """``GET /api/v1/mappers``: a MapperList (by name) with the devices each one owns."""
        items = [self._mapper_json(m) for m in await self.core.store.list_mappers()]
        return _json_response({"kind": "MapperList", "apiVersion": "v1", "items": items})

    async def get_mapper(self, request: web.Request) -> web.Response:
        """``GET /api/v1/mappers/{name}``: one registered mapper; 404."""
        name = request.match_info["name"]
        mapper = await self.core.store.get_mapper(name)
        if mapper is None:
            raise _mapper_not_found(name)
        return _json_response(self._mapper_json(mapper))

    async def delete_mapper(self, request: web.Request) -> web.Response:
        """``DELETE /api/v1/mappers/{name}``: forgets the mapper and contacts it no more; 404."""
        name = request.match_info["name"]
        if not await self.dmi.delete_mapper(name):
            raise _mapper_not_found(name)
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        return _json_response({**body, "details": {"name": name, "kind": "mappers"}})

    # -- twins ----------------------------------------------------------------------------

    def _device_id(self, request: web.Request) -> str:
        ns, name = request.match_info["ns"], request.match_info["name"]
        device_id = f"{ns}/{name}"
        if device_id not in self.core.devices:
            raise ApiError.not_found("devices", ns, name)
        return device_id

    async def get_twin(self, request: web.Request) -> web.Response:
        """``GET …/twin``: every twin of the device (desired, reported, versions), its alarms."""
        device_id = self._device_id(request)
        errors = self.core.write_errors.of(device_id)
        body = twins_json(device_id, self.core.twins(device_id), errors)
        body["alarms"] = [a.to_json() for a in self.core.alarms.active(device_id)]
        return _json_response(body)

    async def patch_twin(self, request: web.Request) -> web.Response:
        """``PATCH …/twin``: sets desired values; answers the delta and the changed twins."""
        device_id = self._device_id(request)
        raw = await request.read()
        try:
            data = msgspec.json.decode(raw)
        except msgspec.DecodeError as err:
            raise ApiError(400, f"the body is not JSON: {err}") from err
        except RecursionError as err:  # the decoder's own depth limit
            raise ApiError(400, "the body is not JSON a PATCH takes: nested too deeply") from err
        values = _desired_values(data)
        self._check_desired(device_id, values)
        changes = await self.core.set_desired(device_id, values)
        changed = {c["property"] for c in changes.to_list()}
        twins = self.core.twins(device_id)
        errors = self.core.write_errors.of(device_id)
        return _json_response(
            {
                "device": device_id,
                "delta": changes.deltas().get(device_id, {}),
                "twins": {p: twin_json(t, errors.get(p)) for p, t in twins.items() if p in changed},
            }
        )

    def _check_desired(self, device_id: str, values: Mapping[str, str | None]) -> None:
        """Every refused desired value (property, type, range, register), in one 422."""
        try:
            self.core.check_desired(device_id, values)
        except DesiredValueError as err:
            causes = [
                {
                    "reason": i.reason,
                    "field": _field("desired", i.property),
                    "message": clip(i.message, 500),
                }
                for i in err.issues
            ]
            namespace, _, name = device_id.partition("/")
            raise ApiError.invalid(
                f"{causes[0]['field']}: {causes[0]['message']}"
                + (f" (and {len(causes) - 1} more)" if len(causes) > 1 else ""),
                causes,
                {"name": name, "namespace": namespace, "group": GROUP, "kind": "devices"},
            ) from err

    # -- events, health, metrics ----------------------------------------------------------

    async def events(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/events[?kinds=&device=&namespace=&type=&severity=]``: SSE."""
        try:
            kinds = parse_kinds(request.query.get("kinds"))
        except ValueError as err:
            raise ApiError(400, str(err), details={"causes": [{"field": "kinds"}]}) from err
        try:
            accept = parse_stream_filter(request.query)
        except EventParamError as err:
            raise param_error(err) from err
        if self.streams.full:
            raise ApiError(
                429,
                f"{len(self.streams)} event streams are open, the most this server keeps "
                "(--max-event-streams); try again when one has ended",
                headers={"Retry-After": "5"},
            )
        return await self.streams.serve(
            request, kinds=kinds, accept=accept, heartbeat=self.heartbeat
        )

    async def healthz(self, request: web.Request) -> web.Response:
        """``GET /healthz``: 200 when every component check passes, else 503."""
        names = list(self._checks)
        results = await asyncio.gather(*(self._run_check(self._checks[n]) for n in names))
        checks = dict(zip(names, results, strict=True))
        ok = all(c.get("status") == "ok" for c in checks.values())
        body = {
            "status": "ok" if ok else "fail",
            "version": __version__,
            "node": self.core.node_name,
            "devices": len(self.core.devices),
            "deviceModels": len(self.core.models),
            "mappers": len(self.mappers.links),
            "eventSubscribers": len(self.core.hub),
            "checks": checks,
        }
        return _json_response(body, 200 if ok else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        """``GET /metrics``: Prometheus text format 0.0.4."""
        text = render_metrics(self.core, self.dmi, self.mappers, self.requests, mqtt=self.mqtt)
        return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})

    @staticmethod
    async def _run_check(check: HealthCheck) -> dict[str, Any]:
        try:
            async with asyncio.timeout(2.0):
                return await check()
        except TimeoutError:
            return {"status": "fail", "error": "no answer within 2 s"}
        except (TwinplaneError, OSError) as err:
            return {"status": "fail", "error": str(err)}

    async def _check_store(self) -> dict[str, Any]:
        pragmas = await self.core.store.pragmas()
        stats = self.core.persister.stats
        journal = str(pragmas.get("journal_mode", ""))
        last = stats.last_flush_ms
        return {
            "status": "ok" if journal.lower() == "wal" else "fail",
            "path": str(self.core.store.path),
            "journalMode": journal,
            "schemaVersion": pragmas.get("user_version"),
            "twinsPersisted": stats.rows,
            "persistErrors": stats.errors,
            "unsavedTwins": stats.unsaved,
            "lastFlush": _rfc3339(last) if last else None,
            "lastFlushSeconds": round(stats.last_flush_s, 6),
        }

    async def _check_dmi(self) -> dict[str, Any]:
        path = self.dmi.socket_path
        if self.dmi.server is None or path is None:
            return {"status": "fail", "error": "DMI server not started"}
        _, writer = await asyncio.open_unix_connection(path)  # it accepts connections
        writer.close()
        await writer.wait_closed()
        return {"status": "ok", "socket": str(path)}


def _rfc3339(ms: int) -> str:
    """Milliseconds since the epoch as RFC 3339 UTC text, to the millisecond."""
    text = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z"


def _http_message(request: web.Request, exc: web.HTTPException, max_body: int) -> str:
    if isinstance(exc, web.HTTPNotFound):
        return f"the server could not find the requested resource ({clip(request.path)})"
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        where = clip(request.path)
        return f"method {clip(request.method)} is not allowed on {where} (allowed: {allowed})"
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return f"the request body is larger than the limit of {max_body / 2**20:g} MiB"
    return exc.text or exc.reason


def _error_status(err: TwinplaneError) -> tuple[int, str]:
    if isinstance(err, UnknownDeviceError):
        return 404, "NotFound"
    if isinstance(err, InUseError):
        return 409, "Conflict"
    if isinstance(err, UnknownPropertyError | ValueTypeError | SpecError):
        return 422, "Invalid"
    if isinstance(err, StoreError):
        return 503, "ServiceUnavailable"
    return 500, "InternalError"


def _mapper_not_found(name: str) -> ApiError:
    name = clip(name)
    details = {"name": name, "kind": "mappers"}
    return ApiError(404, f'mapper "{name}" not found', details=details)


def _deleted(resource: str, namespace: str, name: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "namespace": namespace, "group": GROUP, "kind": resource},
    }


def _with_documents(issues: Sequence[ManifestIssue], body: bytes) -> list[ManifestIssue]:
    """Issues with the document index filled in where the core checked whole objects.

    Reference checks run over the registry and the batch together, so their issues carry
    ``document == -1``; the object they name is found again among the request's documents
    (only on this error path, so a valid apply never parses twice).
    """
    if all(i.document >= 0 for i in issues):
        return list(issues)
    where: dict[tuple[str, str, str], int] = {}
    for raw in parse_documents(body):
        if isinstance(raw.data, dict) and isinstance(raw.data.get("metadata"), dict):
            meta = raw.data["metadata"]
            key = (str(raw.data.get("kind")), str(meta.get("namespace") or "default"))
            where[(*key, str(meta.get("name")))] = raw.index
    return [
        msgspec.structs.replace(
            i, document=where.get((i.kind, i.namespace or "default", i.name), -1)
        )
        if i.document < 0
        else i
        for i in issues
    ]


def _desired_values(data: Any) -> dict[str, str | None]:  # noqa: ANN401 - decoded JSON
    """The ``desired`` map of a PATCH body, values as text; 422 naming the bad field."""
    if not isinstance(data, dict):
        raise ApiError.invalid(
            'the body must be a JSON object: {"desired": {"<property>": "<value>" | null}}',
            [{"field": "", "message": "expected an object"}],
        )
    extra = sorted(k for k in data if k != "desired")
    if extra:
        raise ApiError.invalid(
            f"unknown field {extra[0]!r}: the body has only 'desired'",
            [{"field": k, "message": "unknown field"} for k in extra],
        )
    desired = data.get("desired")
    if not isinstance(desired, dict):
        raise ApiError.invalid(
            'desired: expected an object {"<property>": "<value>" | null}',
            [{"field": "desired", "message": "expected an object"}],
        )
    values: dict[str, str | None] = {}
    causes = []
    for prop, value in desired.items():
        if value is None or isinstance(value, str):
            values[prop] = value
        elif isinstance(value, bool):
            values[prop] = "true" if value else "false"
        elif isinstance(value, int | float):
            values[prop] = json.dumps(value)
        else:
            where = _field("desired", prop)
            causes.append({"field": where, "message": "expected a string, a number or null"})
    if causes:
        raise ApiError.invalid(f"{causes[0]['field']}: {causes[0]['message']}", causes)
    return values
