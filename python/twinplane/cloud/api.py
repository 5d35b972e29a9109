"""The cloud's REST API: Kubernetes' own paths for the CRDs, and the twinplane CLI's routes.

Two sets of routes share one port with the hub (``twinplane cloud --listen``):

- **Kubernetes' paths** (``/apis/devices.kubeedge.io/v1beta1/...``): list, get, watch (with
  ``resourceVersion``, ``allowWatchBookmarks``, ``timeoutSeconds``), create (POST), replace
  (PUT), JSON merge patch (PATCH with ``application/merge-patch+json``) and delete of
  ``devices``, ``devicemodels`` and ``devicestatuses`` (and ``devicecalls``, at
  ``/apis/twinplane.io/v1alpha1/...``), in one namespace or all, with the
  answers and ``Status`` errors the API server gives, plus the discovery documents (``/api``,
  ``/apis``, ``/apis/devices.kubeedge.io/v1beta1``) clients read first. Over the embedded
  registry this *is* the registry's API; over Kubernetes it passes through to the API server.
- **The CLI's routes** (``/api/v1/...``), the edge's shapes, so ``twinplane apply``, ``get``,
  ``describe``, ``delete`` and ``twin get|set`` work with ``--server <cloud>``: ``POST
  /api/v1/apply``; devices and models per namespace or all; a Device with its status from its
  DeviceStatus; ``.../devices/{name}/twin`` with the newest values the cloud holds (the edge's
  reports, ahead of the DeviceStatus by at most the status interval) and ``PATCH`` of desired
  values, which writes ``spec.properties[].desired`` of the Device, as KubeEdge's users do;
  ``.../methods/{method}`` and ``.../calls`` make and read DeviceCalls
  (:mod:`twinplane.cloud.calls_rest`), so ``twinplane call`` works too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

import msgspec
import yaml
from aiohttp import web

from twinplane.cloud.registry import (
    RESOURCES,
    AlreadyExistsError,
    ConflictError,
    InvalidError,
    NotFoundError,
    Registry,
    RegistryError,
    Resource,
)
from twinplane.cloud.registry.base import (
    GROUP,
    GROUP_VERSION,
    RESOURCE_TYPES,
    TWINPLANE_GROUP,
    VERSION,
    ResourceType,
)
from twinplane.errors import TwinplaneError
from twinplane.manifests import load_documents
from twinplane.manifests.types import DeviceModel
from twinplane.rest.echo import clip

if TYPE_CHECKING:
    from twinplane.cloud.controller import DeviceController

__all__ = ["ApiError", "CloudApi", "add_routes", "status_body"]

log = logging.getLogger(__name__)

PREFIX: Final = f"/apis/{GROUP}/{VERSION}"
"""KubeEdge's group (devices, devicemodels, devicestatuses)."""
GROUPS: Final = (GROUP, TWINPLANE_GROUP)
"""The API groups served: KubeEdge's, and twinplane's own (devicecalls)."""
MERGE_PATCH: Final = "application/merge-patch+json"
_PATCH_TYPES: Final = (
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)
_YAML_TYPES: Final = frozenset({"application/yaml", "application/x-yaml", "text/yaml"})
_WATCH_TIMEOUT: Final = 1800.0
"""The longest a watch stays open, as kube-apiserver's ``--min-request-timeout`` (1800 s)."""
_ENC = msgspec.json.Encoder()
_DEC = msgspec.json.Decoder()
_SELECTOR: Final = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)?\s*([A-Za-z0-9_.-]*)\s*$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An answer other than 2xx, with its ``Status`` body."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.body = status_body(code, message, reason=reason, details=details)


def status_body(
    code: int, message: str, *, reason: str = "", details: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A Kubernetes ``Status`` of a failed request."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason or _REASONS.get(code, ""),
        "code": code,
    }
    if details:
        body["details"] = dict(details)
    return body


_REASONS: Final = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
    503: "ServiceUnavailable",
}


def _registry_error(err: RegistryError, resource: str, name: str = "") -> ApiError:
    kind = RESOURCE_TYPES.get(resource)  # type: ignore[call-overload]
    details: dict[str, Any] = {"group": kind.group if kind else GROUP, "kind": resource}
    if name:
        details["name"] = name
    if err.causes:
        details["causes"] = err.causes
    return ApiError(err.status, err.message, reason=err.reason, details=details)


def add_routes(
    app: web.Application, registry: Registry, *, controller: DeviceController | None = None
) -> None:
    """Adds both sets of routes (and the middleware that answers failures) to ``app``."""
    api = CloudApi(registry, controller)
    app.middlewares.append(api.middleware)
    api.routes(app.router)


class CloudApi:
    """The handlers (see the module doc)."""

    def __init__(self, registry: Registry, controller: DeviceController | None) -> None:
        self.registry = registry
        self.controller = controller

    def routes(self, router: web.UrlDispatcher) -> None:
        """Registers every route."""
        router.add_get("/api", self.core_versions)
        router.add_get("/apis", self.groups)
        for group in GROUPS:
            router.add_get(f"/apis/{group}", self._bind_group(self.group, group))
        for version in {t.group_version for t in RESOURCE_TYPES.values()}:
            router.add_get(f"/apis/{version}", self._bind_group(self.resources, version))
        for resource, kind in RESOURCE_TYPES.items():
            prefix = f"/apis/{kind.group_version}"
            every = f"{prefix}/{resource}"
            listed = f"{prefix}/namespaces/{{ns}}/{resource}"
            one = f"{listed}/{{name}}"
            router.add_get(every, self._bind(self.list_or_watch, resource))
            router.add_get(listed, self._bind(self.list_or_watch, resource))
            router.add_post(listed, self._bind(self.create, resource))
            router.add_get(one, self._bind(self.get, resource))
            router.add_put(one, self._bind(self.replace, resource))
            router.add_patch(one, self._bind(self.patch, resource))
            router.add_delete(one, self._bind(self.delete, resource))
        ns = "/api/v1/namespaces/{ns}"
        router.add_post("/api/v1/apply", self.apply)
        router.add_get("/api/v1/devices", self.cli_list_devices)
        router.add_get("/api/v1/devicemodels", self.cli_list_models)
        router.add_get(f"{ns}/devices", self.cli_list_devices)
        router.add_get(f"{ns}/devicemodels", self.cli_list_models)
        router.add_get(f"{ns}/devices/{{name}}", self.cli_get_device)
        router.add_get(f"{ns}/devicemodels/{{name}}", self.cli_get_model)
        router.add_delete(f"{ns}/devices/{{name}}", self.cli_delete_device)
        router.add_delete(f"{ns}/devicemodels/{{name}}", self.cli_delete_model)
        router.add_get(f"{ns}/devices/{{name}}/twin", self.cli_get_twin)
        router.add_patch(f"{ns}/devices/{{name}}/twin", self.cli_patch_twin)
        router.add_get(f"{ns}/events", self.cli_events)
        router.add_get("/api/v1/events/log", self.cli_events)
        if self.registry.serves("devicecalls"):
            from twinplane.cloud.calls_rest import CallRoutes  # noqa: PLC0415 - imports this

            CallRoutes(self.registry).add_routes(router)

    async def cli_events(self, request: web.Request) -> web.Response:
        """``GET /api/v1/namespaces/{ns}/events?device=&type=&limit=``: the edges' events.

        Newest first, each with the ``node`` that sent it (docs/events.md, "From the cloud").
        """
        if self.controller is None:
            raise ApiError(503, "this cloud runs no device controller: no events")
        text = request.query.get("limit", "100")
        if not text.isdigit() or not 1 <= int(text) <= 1000:  # noqa: PLR2004 - documented
            message = f"limit must be a number from 1 to 1000 (got {clip(text)!r})"
            raise ApiError(
                400, message, details={"causes": [{"field": "limit", "message": message}]}
            )
        items = await self.controller.state.events(
            namespace=request.match_info.get("ns"),
            device=request.query.get("device") or None,
            type_=request.query.get("type") or None,
            limit=int(text),
        )
        return _json({"kind": "EventList", "apiVersion": "v1", "items": items})

    @staticmethod
    def _bind(
        handler: Callable[[web.Request, Resource], Awaitable[web.StreamResponse]],
        resource: Resource,
    ) -> Handler:
        async def bound(request: web.Request) -> web.StreamResponse:
            return await handler(request, resource)

        return bound

    @staticmethod
    def _bind_group(
        handler: Callable[[web.Request, str], Awaitable[web.StreamResponse]], group: str
    ) -> Handler:
        async def bound(request: web.Request) -> web.StreamResponse:
            return await handler(request, group)

        return bound

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every failure answers a ``Status`` (an unknown route too), never a dropped socket."""
        try:
            return await handler(request)
        except ApiError as err:
            return _json(err.body, err.code)
        except RegistryError as err:
            return _json(_registry_error(err, "").body, err.status)
        except web.HTTPException as exc:
            if exc.status < 400:  # noqa: PLR2004 - redirects pass through
                raise
            message = exc.text or exc.reason
            if isinstance(exc, web.HTTPNotFound):
                message = f"the server could not find the requested resource ({clip(request.path)})"
            elif isinstance(exc, web.HTTPRequestEntityTooLarge):
                message = "the request body is larger than the server takes (8 MiB)"
            response = _json(status_body(exc.status, message), exc.status)
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
            return response
        except TwinplaneError as err:
            log.exception("%s %s failed", request.method, clip(request.path))
            return _json(status_body(500, err.message), 500)

    # -- discovery ----------------------------------------------------------------------------

    async def core_versions(self, request: web.Request) -> web.Response:
        """``GET /api``: the core group's versions (a client reads it before anything else)."""
        return _json({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})

    async def groups(self, request: web.Request) -> web.Response:
        """``GET /apis``: the API groups this server serves."""
        return _json(
            {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(g) for g in GROUPS]}
        )

    async def group(self, request: web.Request, group: str) -> web.Response:
        """``GET /apis/devices.kubeedge.io`` (or ``/apis/twinplane.io``)."""
        return _json({"kind": "APIGroup", "apiVersion": "v1", **_group(group)})

    async def resources(self, request: web.Request, group_version: str) -> web.Response:
        """``GET /apis/devices.kubeedge.io/v1beta1``: its resources and their verbs."""
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
        items = [
            {
                "name": resource,
                "singularName": kind.kind.lower(),
                "namespaced": True,
                "kind": kind.kind,
                "verbs": verbs,
            }
            for resource, kind in RESOURCE_TYPES.items()
            if kind.group_version == group_version
        ]
        return _json(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": group_version,
                "resources": items,
            }
        )

    # -- Kubernetes' paths --------------------------------------------------------------------

    async def list_or_watch(self, request: web.Request, resource: Resource) -> web.StreamResponse:
        """``GET`` of a collection: a ``<Kind>List``, or with ``watch=true`` a watch stream."""
        namespace = request.match_info.get("ns")
        selector = _parse_selector(request.query.get("labelSelector", ""))
        if request.query.get("watch", "").lower() in ("1", "true"):
            return await self._watch(request, resource, namespace, selector)
        items, version = await self.registry.list(resource, namespace)
        items = [o for o in items if _selected(o, selector)]
        return _json(
            {
                "apiVersion": RESOURCE_TYPES[resource].group_version,
                "kind": f"{RESOURCES[resource]}List",
                "metadata": {"resourceVersion": version},
                "items": items,
            }
        )

    async def _watch(
        self,
        request: web.Request,
        resource: Resource,
        namespace: str | None,
        selector: list[tuple[str, str, str]],
    ) -> web.StreamResponse:
        version = request.query.get("resourceVersion", "")
        bookmarks = request.query.get("allowWatchBookmarks", "").lower() in ("1", "true")
        try:
            timeout = float(request.query.get("timeoutSeconds", "0")) or _WATCH_TIMEOUT * (
                1 + random.random()  # noqa: S311 - spread, as the API server does
            )
        except ValueError:
            raise ApiError(400, "timeoutSeconds must be a number of seconds") from None
        if not version:  # "start at most recent": what a list would see now
            _, version = await self.registry.list(resource, namespace)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        events = self.registry.watch(resource, version, namespace=namespace)
        try:
            async with asyncio.timeout(min(timeout, _WATCH_TIMEOUT * 2)):
                async for event in events:
                    if event.type == "BOOKMARK" and not bookmarks:
                        continue
                    if event.type != "BOOKMARK" and not _selected(event.object, selector):
                        continue
                    line = _ENC.encode({"type": event.type, "object": event.object}) + b"\n"
                    await response.write(line)
        except TimeoutError:
            pass  # the watch's time is up: the client watches again from its last version
        except RegistryError as err:  # 410 Gone above all: the client relists
            status = _registry_error(err, resource).body
            await response.write(_ENC.encode({"type": "ERROR", "object": status}) + b"\n")
        except (ConnectionError, asyncio.CancelledError):
            with contextlib.suppress(Exception):
                await events.aclose()  # type: ignore[attr-defined]
            raise
        finally:
            with contextlib.suppress(Exception):
                await events.aclose()  # type: ignore[attr-defined]
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    async def get(self, request: web.Request, resource: Resource) -> web.Response:
        """``GET`` of one object."""
        ns, name = request.match_info["ns"], request.match_info["name"]
        try:
            return _json(await self.registry.get(resource, ns, name))
        except RegistryError as err:
            raise _registry_error(err, resource, name) from err

    async def create(self, request: web.Request, resource: Resource) -> web.Response:
        """``POST`` of a collection: 201 with the stored object."""
        ns = request.match_info["ns"]
        obj = await _object_body(request, resource, ns)
        try:
            return _json(await self.registry.create(resource, obj), 201)
        except RegistryError as err:
            raise _registry_error(err, resource, _name_of(obj)) from err

    async def replace(self, request: web.Request, resource: Resource) -> web.Response:
        """``PUT`` of one object (conditional on its ``metadata.resourceVersion``)."""
        ns, name = request.match_info["ns"], request.match_info["name"]
        obj = await _object_body(request, resource, ns)
        if _name_of(obj) != name:
            raise ApiError(
                400,
                f"the name of the object ({clip(_name_of(obj))}) does not match the name on the "
                f"URL ({clip(name)})",
            )
        try:
            return _json(await self.registry.replace(resource, obj))
        except RegistryError as err:
            raise _registry_error(err, resource, name) from err

    async def patch(self, request: web.Request, resource: Resource) -> web.Response:
        """``PATCH`` of one object: a JSON merge patch (RFC 7386)."""
        ns, name = request.match_info["ns"], request.match_info["name"]
        if request.content_type != MERGE_PATCH:
            other = "; ".join(_PATCH_TYPES)
            raise ApiError(
                415,
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {MERGE_PATCH} (not {clip(request.content_type) or 'none'}; "
                f"{other} are not served here)",
            )
        patch = _decode_json(await request.read())
        if not isinstance(patch, dict):
            raise ApiError(400, "a merge patch must be a JSON object")
        try:
            return _json(await self.registry.merge_patch(resource, ns, name, patch))
        except RegistryError as err:
            raise _registry_error(err, resource, name) from err

    async def delete(self, request: web.Request, resource: Resource) -> web.Response:
        """``DELETE`` of one object: the object as it was."""
        ns, name = request.match_info["ns"], request.match_info["name"]
        try:
            return _json(await self.registry.delete(resource, ns, name))
        except RegistryError as err:
            raise _registry_error(err, resource, name) from err

    # -- the CLI's routes ---------------------------------------------------------------------

    async def apply(self, request: web.Request) -> web.Response:
        """``POST /api/v1/apply``: validates every document, then creates or updates each."""
        body = await request.read()
        if not body.strip():
            raise ApiError(400, "empty body: nothing to apply")
        source = clip(request.query.get("source", "<request body>"))
        loaded = await asyncio.to_thread(load_documents, body, source=source)
        models, _ = await self.registry.list("devicemodels")
        known = _models(models)
        issues = [*loaded.errors, *loaded.reference_issues(known)]
        causes = [_issue_cause(i) for i in issues]
        causes += [
            {
                "reason": "readonly",
                "field": "kind",
                "message": "DeviceStatus objects are written by the device controller from the "
                "edge's reports; apply the Device instead",
                "kind": "DeviceStatus",
                "name": s.name,
                "namespace": s.namespace,
            }
            for s in loaded.statuses
        ]
        if causes:
            count = len(causes)
            raise ApiError(
                422,
                f"{count} error{'s' if count != 1 else ''} in {source}: "
                f"{clip(causes[0]['field'])}: {clip(causes[0]['message'], 500)}",
                details={"causes": causes[:100], "source": source},
            )
        ordered = [*loaded.models, *loaded.devices]  # a model before the devices that need it
        items = []
        for obj in ordered:
            resource: Resource = "devicemodels" if isinstance(obj, DeviceModel) else "devices"
            outcome = await self._apply_one(resource, obj.to_dict())
            items.append(
                {"kind": obj.KIND, "namespace": obj.namespace, "name": obj.name, "outcome": outcome}
            )
        warnings = [_issue_cause(w) for w in loaded.warnings]
        return _json({"kind": "ApplyResult", "items": items, "warnings": warnings})

    async def _apply_one(self, resource: Resource, body: dict[str, Any]) -> str:
        meta = body["metadata"]
        for _ in range(5):  # a concurrent writer: read again and retry
            try:
                old = await self.registry.get(resource, meta["namespace"], meta["name"])
            except NotFoundError:
                try:
                    await self.registry.create(resource, body)
                except AlreadyExistsError:
                    continue
                return "created"
            old_meta = old.get("metadata", {})
            same = (
                old.get("spec") == body.get("spec")
                and (old_meta.get("labels") or {}) == (meta.get("labels") or {})
                and (old_meta.get("annotations") or {}) == (meta.get("annotations") or {})
            )
            if same:
                return "unchanged"
            merged = {**old, "spec": body.get("spec", {})}
            merged["metadata"] = {
                **old_meta,
                "labels": meta.get("labels") or {},
                "annotations": meta.get("annotations") or {},
            }
            try:
                await self.registry.replace(resource, merged)
            except ConflictError:
                continue
            return "configured"
        raise ApiError(409, f"{resource} {meta['namespace']}/{meta['name']} kept changing; retry")

    async def cli_list_devices(self, request: web.Request) -> web.Response:
        """``GET /api/v1/[namespaces/{ns}/]devices``: Devices with their status."""
        ns = request.match_info.get("ns")
        devices, _ = await self.registry.list("devices", ns)
        statuses, _ = await self.registry.list("devicestatuses", ns)
        by_key = {_key(s): s for s in statuses}
        items = [self._with_status(d, by_key.get(_key(d))) for d in _sorted(devices)]
        return _json(_list("Device", items))

    async def cli_list_models(self, request: web.Request) -> web.Response:
        """``GET /api/v1/[namespaces/{ns}/]devicemodels``."""
        models, _ = await self.registry.list("devicemodels", request.match_info.get("ns"))
        return _json(_list("DeviceModel", _sorted(models)))

    async def cli_get_device(self, request: web.Request) -> web.Response:
        """``GET …/devices/{name}``: the Device, its status from its DeviceStatus."""
        ns, name = request.match_info["ns"], request.match_info["name"]
        device = await self._object("devices", ns, name)
        with contextlib.suppress(NotFoundError):
            status = await self.registry.get("devicestatuses", ns, name)
            return _json(self._with_status(device, status))
        return _json(self._with_status(device, None))

    async def cli_get_model(self, request: web.Request) -> web.Response:
        """``GET …/devicemodels/{name}``."""
        ns, name = request.match_info["ns"], request.match_info["name"]
        return _json(await self._object("devicemodels", ns, name))

    async def cli_delete_device(self, request: web.Request) -> web.Response:
        """``DELETE …/devices/{name}``: its DeviceStatus goes with it (the controller's)."""
        ns, name = request.match_info["ns"], request.match_info["name"]
        try:
            await self.registry.delete("devices", ns, name)
        except RegistryError as err:
            raise _registry_error(err, "devices", name) from err
        return _json(_deleted("devices", ns, name))

    async def cli_delete_model(self, request: web.Request) -> web.Response:
        """``DELETE …/devicemodels/{name}``: 409 while Devices use it."""
        ns, name = request.match_info["ns"], request.match_info["name"]
        await self._object("devicemodels", ns, name)
        devices, _ = await self.registry.list("devices", ns)
        users = sorted(
            _name_of(d)
            for d in devices
            if (d.get("spec", {}).get("deviceModelRef") or {}).get("name") == name
        )
        if users:
            shown = ", ".join(users[:5]) + (", ..." if len(users) > 5 else "")  # noqa: PLR2004
            raise ApiError(
                409,
                f"DeviceModel {ns}/{name} is used by {len(users)} Device(s) ({shown}): "
                "delete them first",
                details={"name": name, "namespace": ns, "group": GROUP, "kind": "devicemodels"},
            )
        try:
            await self.registry.delete("devicemodels", ns, name)
        except RegistryError as err:
            raise _registry_error(err, "devicemodels", name) from err
        return _json(_deleted("devicemodels", ns, name))

    async def cli_get_twin(self, request: web.Request) -> web.Response:
        """``GET …/devices/{name}/twin``: each twin's desired and reported value and versions."""
        ns, name = request.match_info["ns"], request.match_info["name"]
        device = await self._object("devices", ns, name)
        model = await self._model_of(device)
        return _json({"device": f"{ns}/{name}", "twins": self._twins(device, model)})

    async def cli_patch_twin(self, request: web.Request) -> web.Response:
        """``PATCH …/twin`` ``{"desired": {prop: value|null}}``: writes the Device's spec."""
        ns, name = request.match_info["ns"], request.match_info["name"]
        data = _decode_json(await request.read())
        values = data.get("desired") if isinstance(data, dict) else None
        if not isinstance(values, dict) or not values:
            raise ApiError(
                400,
                'the body must be {"desired": {"<property>": "<value>" | null, ...}}',
                details={"causes": [{"field": "desired", "message": "missing or empty"}]},
            )
        for _ in range(5):
            device = await self._object("devices", ns, name)
            model = await self._model_of(device)
            changed = self._set_desired(device, model, values)
            if not changed:
                break
            try:
                device = await self.registry.replace("devices", device)
            except ConflictError:
                continue
            except RegistryError as err:
                raise _registry_error(err, "devices", name) from err
            break
        else:
            raise ApiError(409, f"device {ns}/{name} kept changing; retry")
        if self.controller is not None:  # take the spec change now, not on the watch event
            self.controller.observe_device(device)
        twins = self._twins(device, model)
        delta = {
            p: t["desired"]["value"]
            for p, t in twins.items()
            if t["desired"] is not None
            and (t["reported"] is None or t["reported"]["value"] != t["desired"]["value"])
        }
        return _json(
            {
                "device": f"{ns}/{name}",
                "delta": delta,
                "twins": {p: t for p, t in twins.items() if p in changed},
            }
        )

    def _set_desired(
        self,
        device: dict[str, Any],
        model: dict[str, Any] | None,
        values: Mapping[str, Any],
    ) -> set[str]:
        """Writes ``values`` into ``device`` (in place) after checking every one; the changed."""
        props = {p.get("name"): p for p in device.get("spec", {}).get("properties") or ()}
        model_props = {
            p.get("name"): p for p in (model or {}).get("spec", {}).get("properties") or ()
        }
        causes = _desired_causes(values, props, model_props)
        if causes:
            raise _invalid_desired(device, causes)
        changed: set[str] = set()
        for prop, value in values.items():
            entry = props[prop]
            old = (entry.get("desired") or {}).get("value")
            if value is None:
                if "desired" in entry:
                    del entry["desired"]
                    changed.add(prop)
            elif old != _text(value):
                entry["desired"] = {"value": _text(value)}
                changed.add(prop)
        if changed and model is not None:  # the type check of the manifest loader
            docs = _ENC.encode(model) + b"\n" + _ENC.encode(device)
            loaded = load_documents(docs, source="desired")
            issues = [*loaded.errors, *loaded.reference_issues()]
            if issues:
                raise _invalid_desired(
                    device, [{"field": i.path, "message": i.message} for i in issues]
                )
        return changed

    def _twins(
        self, device: dict[str, Any], model: dict[str, Any] | None
    ) -> dict[str, dict[str, Any]]:
        key = _key(device)
        model_props = {
            p.get("name"): p for p in (model or {}).get("spec", {}).get("properties") or ()
        }
        held = self.controller.latest.get(key) if self.controller is not None else None
        rows = self.controller.state.desired.get(key, {}) if self.controller is not None else {}
        twins: dict[str, dict[str, Any]] = {}
        for prop in device.get("spec", {}).get("properties") or ():
            name = str(prop.get("name", ""))
            twin = held.twins.get(name) if held is not None else None
            spec_value = (prop.get("desired") or {}).get("value")
            row = rows.get(name)
            desired = None
            if spec_value is not None:
                at = twin.desired.timestamp if twin and twin.desired else 0
                if not (twin and twin.desired and twin.desired.value == str(spec_value)):
                    at = self.controller.desired_seen(key, name) if self.controller else 0
                desired = {"value": str(spec_value), "timestamp": at}
            reported = None
            if twin is not None and twin.reported is not None:
                reported = {"value": twin.reported.value, "timestamp": twin.reported.timestamp}
            twins[name] = {
                "type": str(model_props.get(name, {}).get("type", "")).lower()
                or (twin.type if twin else ""),
                "desired": desired,
                "reported": reported,
                "desired_version": {
                    "cloud": row.cloud if row else 0,
                    "edge": row.edge if row else 0,
                },
                "reported_version": {"cloud": 0, "edge": 0},
                "last_write_error": None,
            }
        return twins

    def _with_status(self, device: dict[str, Any], status: dict[str, Any] | None) -> dict[str, Any]:
        body = dict(device)
        body["status"] = {"state": "unknown", "twins": [], **((status or {}).get("status") or {})}
        return body

    async def _object(self, resource: Resource, ns: str, name: str) -> dict[str, Any]:
        try:
            return await self.registry.get(resource, ns, name)
        except RegistryError as err:
            raise _registry_error(err, resource, name) from err

    async def _model_of(self, device: dict[str, Any]) -> dict[str, Any] | None:
        ref = (device.get("spec", {}).get("deviceModelRef") or {}).get("name", "")
        ns = device.get("metadata", {}).get("namespace") or "default"
        try:
            return await self.registry.get("devicemodels", ns, ref)
        except NotFoundError:
            return None


# -- helpers -----------------------------------------------------------------------------------


def _group(group: str) -> dict[str, Any]:
    kind: ResourceType = next(t for t in RESOURCE_TYPES.values() if t.group == group)
    version = {"groupVersion": kind.group_version, "version": kind.version}
    return {"name": group, "versions": [version], "preferredVersion": version}


def _json(body: Any, status: int = 200) -> web.Response:  # noqa: ANN401 - JSON-able data
    return web.Response(body=_ENC.encode(body), status=status, content_type="application/json")


def _decode_json(raw: bytes) -> Any:  # noqa: ANN401 - decoded JSON
    try:
        return _DEC.decode(raw)
    except msgspec.DecodeError as err:
        raise ApiError(400, f"the body is not JSON: {err}") from err
    except RecursionError as err:
        raise ApiError(400, "the body is not JSON this server takes: nested too deeply") from err


async def _object_body(request: web.Request, resource: Resource, ns: str) -> dict[str, Any]:
    """The object of a POST or PUT, its namespace the URL's, its kind the resource's."""
    raw = await request.read()
    if request.content_type in _YAML_TYPES:
        try:
            obj = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ApiError(400, f"the body is not YAML: {clip(str(err), 300)}") from err
    else:
        obj = _decode_json(raw)
    if not isinstance(obj, dict):
        raise ApiError(400, "the body must be an object (apiVersion, kind, metadata, spec)")
    kind, group_version = RESOURCES[resource], RESOURCE_TYPES[resource].group_version
    if obj.get("kind", kind) != kind or obj.get("apiVersion", group_version) != group_version:
        raise ApiError(
            400,
            f"the body is {clip(str(obj.get('apiVersion')))} {clip(str(obj.get('kind')))}; "
            f"this path takes {group_version} {kind}",
        )
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise InvalidError(
            "metadata: Required value",
            causes=[
                {"field": "metadata", "message": "Required value", "reason": "FieldValueRequired"}
            ],
        )
    if meta.get("namespace", ns) != ns:
        raise ApiError(
            400,
            "the namespace of the provided object does not match the namespace sent on the request",
        )
    meta["namespace"] = ns
    obj.setdefault("kind", kind)
    obj.setdefault("apiVersion", group_version)
    return obj


def _name_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"


def _sorted(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=_key)


def _list(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": f"{kind}List", "apiVersion": GROUP_VERSION, "metadata": {}, "items": items}


def _deleted(resource: str, ns: str, name: str) -> dict[str, Any]:
    kind = RESOURCE_TYPES.get(resource)  # type: ignore[call-overload]
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {
            "name": name,
            "namespace": ns,
            "group": kind.group if kind else GROUP,
            "kind": resource,
        },
    }


def _models(objects: Iterable[dict[str, Any]]) -> list[DeviceModel]:
    """The registry's models as the manifest loader reads them (for reference checks)."""
    out: list[DeviceModel] = []
    for obj in objects:
        loaded = load_documents(_ENC.encode(obj), source="registry")
        out += loaded.models
    return out


def _issue_cause(issue: Any) -> dict[str, Any]:  # noqa: ANN401 - a ManifestIssue
    return {
        "reason": issue.code,
        "field": clip(issue.path),
        "message": clip(issue.message, 500),
        "document": issue.document,
        "kind": clip(issue.kind),
        "namespace": clip(issue.namespace),
        "name": clip(issue.name),
    }


def _text(value: str | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _desired_causes(
    values: Mapping[str, Any],
    props: Mapping[str, Any],
    model_props: Mapping[str, Any],
) -> list[dict[str, str]]:
    """What is wrong with each desired value: unknown property, bad type, read-only, range."""
    causes: list[dict[str, str]] = []
    for prop, value in values.items():
        field = f"desired.{prop}"
        if prop not in props:
            causes.append({"field": field, "message": f"{prop!r} is not a property of the device"})
        elif value is not None and not isinstance(value, str | int | float | bool):
            causes.append({"field": field, "message": "a value is a string, number or boolean"})
        elif model_props.get(prop, {}).get("accessMode") == "ReadOnly":
            causes.append({"field": field, "message": f"{prop!r} is ReadOnly in its model"})
        elif value is not None:
            problem = _range_problem(_text(value), model_props.get(prop, {}))
            if problem:
                causes.append({"field": field, "message": problem})
    return causes


def _range_problem(value: str, prop: Mapping[str, Any]) -> str:
    """Why ``value`` is outside the model property's ``minimum``/``maximum`` ('' if inside)."""
    if str(prop.get("type", "")).upper() not in ("INT", "FLOAT", "DOUBLE"):
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""  # the type check says so
    for bound, outside in (("minimum", number.__lt__), ("maximum", number.__gt__)):
        limit = prop.get(bound)
        if limit in (None, ""):
            continue
        with contextlib.suppress(ValueError):
            if outside(float(limit)):
                return f"{value} is outside the property's range ({bound} {limit})"
    return ""


def _invalid_desired(device: Mapping[str, Any], causes: list[dict[str, str]]) -> ApiError:
    meta = device.get("metadata") or {}
    first = causes[0]
    more = f" (and {len(causes) - 1} more)" if len(causes) > 1 else ""
    return ApiError(
        422,
        f"{first['field']}: {clip(first['message'], 500)}{more}",
        details={
            "name": meta.get("name", ""),
            "namespace": meta.get("namespace", ""),
            "group": GROUP,
            "kind": "devices",
            "causes": causes,
        },
    )


def _parse_selector(text: str) -> list[tuple[str, str, str]]:
    """A label selector's equality terms (``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``)."""
    terms: list[tuple[str, str, str]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if part.startswith("!"):
            terms.append((part[1:].strip(), "!", ""))
            continue
        match = _SELECTOR.match(part)
        if match is None:
            raise ApiError(
                400,
                f"unable to parse requirement {clip(part)!r}: this server takes equality "
                "selectors (k=v, k!=v, k, !k)",
                details={"causes": [{"field": "labelSelector", "message": "not understood"}]},
            )
        key, op, value = match.group(1), match.group(2) or "exists", match.group(3)
        terms.append((key, "=" if op == "==" else op, value))
    return terms


def _selected(obj: Mapping[str, Any], terms: list[tuple[str, str, str]]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for key, op, value in terms:
        if op == "exists" and key not in labels:
            return False
        if op == "!" and key in labels:
            return False
        if op == "=" and labels.get(key) != value:
            return False
        if op == "!=" and labels.get(key) == value:
            return False
    return True
