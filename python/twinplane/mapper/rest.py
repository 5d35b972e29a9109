"""The mapper's REST data API: mapper-framework's routes and bodies over aiohttp.

Routes (``{namespace}/{name}`` a device; every success body starts with mapper-framework's
``apiVersion``, ``statusCode`` and ``timeStamp``):

- ``GET /api/v1/ping``: liveness.
- ``GET /api/v1/device/{namespace}/{name}/{property}``: the property's current value from the
  mapper's engine twin (no device read, no desired write first, unlike mapper-framework);
  ``?fresh=1`` polls the device now through its bus and answers after the sample reached the twin.
- ``GET /api/v1/device/{namespace}/{name}``: every property of the device at once (twinplane's).
- ``GET /api/v1/devicemethod/{namespace}/{name}``: the device's methods, their paths and
  parameters.
- ``GET|POST|PUT /api/v1/devicemethod/{namespace}/{name}/{methodname}/{property}/{data}``: writes
  ``data`` through the bus scheduler (writes pre-empt polls) once the method, the property and the
  value are checked. KubeEdge writes through ``GET``; it is kept for compatibility.
- ``GET /api/v1/meta/model/{namespace}/{name}``: the model of a device.
- ``GET /metrics``: the mapper's counters in the Prometheus text format 0.0.4 (rendered by the
  app, :mod:`twinplane.mapper.metrics`).

Every request passes :class:`~twinplane.rest.guard.RequestGuard` first: ``Host`` must name this
mapper and ``Origin`` be its own, and a write (the write route, by any method) must not come
from another site's page; the ``GET`` write route keeps working for clients that are not
browsers (curl, KubeEdge's tools), as in mapper-framework. Refused: 403.

Errors are not mapper-framework's HTTP 500 with text: 404 (unknown device, property or method),
400 (data not of the property's type), 502 (the device refused or failed the write), 503 (the
device is offline or has no value yet), each with a JSON body naming the request field, whose
texts quote the request clipped (:mod:`twinplane.rest.echo`). A request's ``X-Correlation-ID``
header is echoed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler

from twinplane.errors import ValueTypeError
from twinplane.mapper.config import DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT
from twinplane.mapper.instance import device_id
from twinplane.mapper.method_calls import MethodCallError, write_properties
from twinplane.mapper.runtime import MapperRuntime, RunningDevice
from twinplane.metrics import CONTENT_TYPE
from twinplane.rest.echo import bounded, clip, quote
from twinplane.rest.guard import RequestGuard, RequestRefused, allowed_host
from twinplane.twin import TwinDict, canonical

__all__ = ["API_VERSION", "MapperRestServer", "RestError"]

log = logging.getLogger(__name__)

API_VERSION: Final = "v1"
"""``apiVersion`` of every body, as mapper-framework."""

CORRELATION_HEADER: Final = "X-Correlation-ID"

FRESH_GRACE_S: Final = 1.0
"""Extra wait for a ``?fresh=1`` poll beyond the device's own poll deadline."""

_ENCODER: Final = msgspec.json.Encoder()
_TRUE: Final = frozenset({"1", "true", "yes", "on"})


class RestError(Exception):
    """A failed request: its HTTP status and the request field at fault.

    Attributes:
        status: The HTTP status.
        message: What went wrong.
        reason: ``NotFound``, ``BadRequest``, ``BadGateway`` or ``ServiceUnavailable``.
        field: The request field at fault (``name``, ``property``, ``methodname``, ``data``).
        value: The field's value in the request.
        extra: More fields of the body (e.g. the device ``State``).
    """

    _REASONS: Final = {
        400: "BadRequest",
        403: "Forbidden",
        404: "NotFound",
        405: "MethodNotAllowed",
        500: "InternalError",
        502: "BadGateway",
        503: "ServiceUnavailable",
    }

    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        value: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = self._REASONS.get(status, "Error")
        self.field = field
        self.value = None if value is None else clip(value)
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        """The JSON answer: mapper-framework's base fields, the message and the field."""
        return {
            **_base(self.status),
            "Message": self.message,
            "Reason": self.reason,
            "Field": self.field,
            "Value": self.value,
            **self.extra,
        }


def _timestamp() -> str:
    """Now as RFC 3339 local time with seconds, as Go's ``time.RFC3339``."""
    text = datetime.now().astimezone().isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _base(status: int = 200) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "statusCode": status, "timeStamp": _timestamp()}


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=_ENCODER.encode(body), status=status, content_type="application/json")


def _error(err: RestError) -> web.Response:
    """A failure's answer, every string in it clipped and encodable."""
    return _json(bounded(err.body()), err.status)


def _type(twin: TwinDict) -> str:
    return twin["type"].lower()


class MapperRestServer:
    """The REST data API of one mapper runtime.

    Args:
        runtime: The mapper's devices, models, buses and engine.
        metrics: Renders ``GET /metrics`` (Prometheus text).
        report_interval_s: The reporter's tick (a fresh read waits for it).
        allowed_hosts: Names (or addresses) ``Host`` may carry besides the bound address and
            loopback (``--allowed-host``; :mod:`twinplane.rest.guard`).

    Raises:
        SpecError: An allowed host is not a host name or an IP address.
    """

    def __init__(
        self,
        runtime: MapperRuntime,
        *,
        metrics: Callable[[], str],
        report_interval_s: float,
        allowed_hosts: Sequence[str] = (),
    ) -> None:
        self.runtime = runtime
        self.render_metrics = metrics
        self.report_interval_s = report_interval_s
        self.allowed_hosts = tuple(allowed_host(name) for name in allowed_hosts)
        self.url = ""
        self._guard: RequestGuard | None = None
        self._writes: web.AbstractResource | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, host: str = DEFAULT_HTTP_HOST, port: int = DEFAULT_HTTP_PORT) -> str:
        """Listens on ``host:port`` (port 0 picks a free one); returns the base URL.

        Raises:
            OSError: The address cannot be bound.
        """
        app = web.Application(middlewares=[self._middleware])
        self._routes(app.router)
        runner = web.AppRunner(app, shutdown_timeout=5.0, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_port = runner.addresses[0][1]
        self._guard = RequestGuard(host, bound_port, self.allowed_hosts)
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{bound_port}"
        log.info("REST data API listening", extra={"url": self.url})
        return self.url

    async def stop(self) -> None:
        """Stops listening and waits for requests in progress."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _routes(self, router: web.UrlDispatcher) -> None:
        dev = "{namespace}/{name}"
        router.add_get("/api/v1/ping", self.ping)
        router.add_get(f"/api/v1/device/{dev}", self.read_device)
        router.add_get(f"/api/v1/device/{dev}/{{property}}", self.read_property)
        router.add_get(f"/api/v1/devicemethod/{dev}", self.methods)
        write = router.add_resource(
            f"/api/v1/devicemethod/{dev}/{{methodname}}/{{property}}/{{data}}"
        )
        for method in ("GET", "POST", "PUT"):  # no HEAD: a HEAD must not write
            write.add_route(method, self.write)
        self._writes = write
        router.add_get(f"/api/v1/meta/model/{dev}", self.model)
        router.add_get("/metrics", self.metrics)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Guards the request, turns every failure into a JSON answer, echoes the correlation."""
        try:
            if self._guard is not None:
                writes = request.match_info.route.resource is self._writes
                self._guard.check(request, write_route=writes)
            response = await handler(request)
        except RequestRefused as refused:
            failure = RestError(403, refused.message, field=refused.header, value=refused.value)
            response = _error(failure)
        except RestError as err:
            response = _error(err)
        except web.HTTPException as exc:
            if exc.status < 400:  # noqa: PLR2004 - redirects pass through
                raise
            unknown = exc.status == 404  # noqa: PLR2004
            failure = RestError(
                exc.status,
                f"{exc.reason}: {clip(request.method)} {clip(request.path)}",
                field="path" if unknown else "method",
                value=request.path if unknown else request.method,
            )
            response = _error(failure)
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
        except Exception:  # a bug must answer 500, not drop the connection
            log.exception("%s %s failed", request.method, clip(request.path))
            response = _error(RestError(500, "internal error (see the mapper log)"))
        correlation = request.headers.get(CORRELATION_HEADER)
        if correlation is not None:
            response.headers[CORRELATION_HEADER] = correlation
        return response

    # -- lookups --------------------------------------------------------------------------

    def _device(self, request: web.Request) -> RunningDevice:
        ns, name = request.match_info["namespace"], request.match_info["name"]
        running = self.runtime.devices.get(device_id(ns, name))
        if running is None:
            raise RestError(
                404, f"device {ns}/{name} is not served by this mapper", field="name", value=name
            )
        return running

    def _twins(self, running: RunningDevice) -> dict[str, TwinDict]:
        return self.runtime.engine.twins(running.instance.id)

    @staticmethod
    def _check_online(running: RunningDevice) -> None:
        state = running.scheduled.state
        if state in ("offline", "unhealthy"):
            error = running.scheduled.error or "no answer"
            raise RestError(
                503,
                f"device {running.instance.id} is {state}: {error}",
                field="name",
                value=running.instance.name,
                extra={"State": state},
            )

    # -- routes ---------------------------------------------------------------------------

    async def ping(self, request: web.Request) -> web.Response:
        """``GET /api/v1/ping``: the server runs."""
        del request
        return _json({**_base(), "Message": "This is v1 API, the server is running normally."})

    async def read_property(self, request: web.Request) -> web.Response:
        """``GET /api/v1/device/{namespace}/{name}/{property}[?fresh=1]``: one current value."""
        running = self._device(request)
        prop = request.match_info["property"]
        if prop not in running.props:
            raise RestError(
                404,
                f"device {running.instance.id} has no property {prop!r} "
                f"(it has: {', '.join(running.props) or 'none'})",
                field="property",
                value=prop,
            )
        if request.query.get("fresh", "").lower() in _TRUE:
            await self._poll_now(running, prop)
        self._check_online(running)
        twin = self._twins(running)[prop]
        reported = twin["reported"]
        if reported is None:
            raise RestError(
                503,
                f"device {running.instance.id} has no value of {prop!r} yet",
                field="property",
                value=prop,
                extra={"State": running.scheduled.state},
            )
        data = {
            "DeviceName": running.instance.name,
            "PropertyName": prop,
            "Namespace": running.instance.namespace,
            "Value": reported["value"],
            "Type": _type(twin),
            "TimeStamp": reported["timestamp"],
        }
        return _json({**_base(), "Data": data})

    async def read_device(self, request: web.Request) -> web.Response:
        """``GET /api/v1/device/{namespace}/{name}``: every property's current value."""
        running = self._device(request)
        self._check_online(running)
        twins = self._twins(running)
        props = []
        for name in running.props:
            twin = twins[name]
            reported = twin["reported"]
            props.append(
                {
                    "PropertyName": name,
                    "Value": reported["value"] if reported else None,
                    "Type": _type(twin),
                    "TimeStamp": reported["timestamp"] if reported else None,
                }
            )
        data = {
            "DeviceName": running.instance.name,
            "Namespace": running.instance.namespace,
            "State": running.scheduled.state,
            "Properties": props,
        }
        return _json({**_base(), "Data": data})

    async def methods(self, request: web.Request) -> web.Response:
        """``GET /api/v1/devicemethod/{namespace}/{name}``: methods with path and parameters."""
        running = self._device(request)
        inst = running.instance
        types = {name: p.type.lower() for name, p in running.props.items()}
        methods = [
            {
                "Name": method.name,
                "Path": f"/api/v1/devicemethod/{inst.namespace}/{inst.name}/{method.name}"
                "/{propertyName}/{data}",
                "Parameters": [
                    {"PropertyName": p, "ValueType": types.get(p, "")} for p in method.propertyNames
                ],
            }
            for method in inst.message.spec.methods
        ]
        return _json({**_base(), "Data": {"Methods": methods}})

    async def write(self, request: web.Request) -> web.Response:
        """``GET|POST|PUT …/{methodname}/{property}/{data}``: writes through the bus."""
        running = self._device(request)
        inst = running.instance
        method_name = request.match_info["methodname"]
        prop_name = request.match_info["property"]
        data = request.match_info["data"]
        method = next((m for m in inst.message.spec.methods if m.name == method_name), None)
        if method is None:
            known = ", ".join(m.name for m in inst.message.spec.methods) or "none"
            raise RestError(
                404,
                f"device {inst.id} has no method {method_name!r} (it has: {known})",
                field="methodname",
                value=method_name,
            )
        if prop_name not in method.propertyNames:
            raise RestError(
                404,
                f"method {method_name!r} of device {inst.id} has no property {prop_name!r} "
                f"(it has: {', '.join(method.propertyNames) or 'none'})",
                field="property",
                value=prop_name,
            )
        prop = running.props.get(prop_name)
        if prop is None:
            raise RestError(
                404,
                f"device {inst.id} has no property {prop_name!r}",
                field="property",
                value=prop_name,
            )
        try:
            value = canonical(prop.type, data)
        except ValueTypeError as err:
            raise RestError(
                400,
                f"{quote(data)} is not a {prop.type.lower()} value (the type of {prop_name!r})",
                field="data",
                value=data,
            ) from err
        if running.scheduled.state == "offline":
            self._check_online(running)
        try:  # the mapper's one path for method writes (the Methods service's too)
            await write_properties(running, [(prop_name, value)])
        except MethodCallError as err:
            if err.code == "NotFound":  # removed while the write waited
                raise RestError(404, err.message, field="name", value=inst.name) from err
            if err.code == "InvalidArgument":  # the register's encoding refused it
                raise RestError(400, err.message, field="data", value=data) from err
            cause = err.__cause__ or err
            text = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
            log.warning("device %s: REST write %s=%s failed: %s", inst.id, prop_name, value, text)
            raise RestError(
                502,
                f"writing {prop_name}={value} to device {inst.id} failed: {text}",
                field="data",
                value=data,
            ) from err
        return _json({**_base(), "Message": f"Write data {data} to device {inst.id} successfully."})

    async def model(self, request: web.Request) -> web.Response:
        """``GET /api/v1/meta/model/{namespace}/{name}``: the model of the device."""
        running = self._device(request)
        model = self.runtime.model_of(running.instance.message)
        if model is None:
            ref = running.instance.model
            raise RestError(
                404,
                f"model {running.instance.namespace}/{ref} of device {running.instance.id} "
                "is not known to this mapper",
                field="model",
                value=ref,
            )
        body: dict[str, Any] = {
            **_base(),
            "id": device_id(model.namespace, model.name),
            "name": model.name,
            "namespace": model.namespace or "default",
        }
        props = []
        for p in model.spec.properties:
            fields = {
                "name": p.name,
                "dataType": p.type,
                "description": p.description,
                "accessMode": p.accessMode,
                "minimum": p.minimum,
                "maximum": p.maximum,
                "unit": p.unit,
            }
            props.append({k: v for k, v in fields.items() if v})  # Go's omitempty
        if props:
            body["properties"] = props
        return _json(body)

    async def metrics(self, request: web.Request) -> web.Response:
        """``GET /metrics``: the mapper's counters as Prometheus text (format 0.0.4)."""
        del request
        text = self.render_metrics()
        return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})

    # -- fresh reads ----------------------------------------------------------------------

    async def _poll_now(self, running: RunningDevice, prop: str) -> None:
        """Polls the device now and waits until the sample reached the twin.

        Raises:
            RestError: 503 when the poll does not end in time or the device is offline, 502
                when the device answered with an error.
        """
        scheduled = running.scheduled
        interval = self.report_interval_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + scheduled.timeout_s * 2 + FRESH_GRACE_S
        while scheduled.busy:  # a poll that started before this request does not count
            await _tick(loop, deadline, running)
        polls, failures = scheduled.polls, scheduled.failures
        started = time.time_ns() // 1_000_000
        running.bus.poll_now(running.instance.id)
        while scheduled.polls == polls and scheduled.failures == failures:
            await _tick(loop, deadline, running)
        if scheduled.failures != failures:
            status = 503 if scheduled.state == "offline" else 502
            raise RestError(
                status,
                f"reading device {running.instance.id} failed: {scheduled.error}",
                field="name",
                value=running.instance.name,
                extra={"State": scheduled.state},
            )
        # the reporter folds the sample into the twin on its next tick; an unchanged value keeps
        # its timestamp, so wait for a newer timestamp or at most two ticks
        settle = loop.time() + interval * 2
        while loop.time() < settle:
            reported = self._twins(running)[prop]["reported"]
            if reported is not None and reported["timestamp"] >= started:
                return
            await asyncio.sleep(0.005)


async def _tick(loop: asyncio.AbstractEventLoop, deadline: float, running: RunningDevice) -> None:
    if loop.time() > deadline:
        raise RestError(
            503,
            f"device {running.instance.id} did not answer a poll in time",
            field="name",
            value=running.instance.name,
            extra={"State": running.scheduled.state},
        )
    await asyncio.sleep(0.005)
