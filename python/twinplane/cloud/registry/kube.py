"""The registry on a Kubernetes API server: KubeEdge's three CRDs, through kubernetes_asyncio.

Objects go to and from the API server unchanged (``CustomObjectsApi``, JSON dicts); an error
answer's ``Status`` becomes the registry error of its code (409 split by ``reason``), with the
server's message and, for 422, its ``details.causes``. Lists are read in pages of
:data:`LIST_PAGE` (one ``resourceVersion`` for all pages, as client-go's pager). A watch is one
``?watch=1`` request with ``allowWatchBookmarks``; an ``ERROR`` event raises the error its
``Status`` names (410: :class:`GoneError`, how the server says a version was compacted).

The ``status`` of an object is written with the object unless the server serves a ``status``
subresource for it, which :meth:`KubeRegistry.start` finds out through discovery (the API
server then ignores ``status`` in writes to the object itself). KubeEdge's CRDs in
``deploy/crds/`` have none; with CRDs that have one, the ``status`` of a create, replace or merge
patch goes to ``/status`` in a second request (see :meth:`KubeRegistry.merge_patch`).

Nothing blocks the event loop but what kubernetes_asyncio does itself: the configuration is read
in a thread, and each page or event is decoded as it arrives (an object is at most 1.5 MiB, etcd's
request limit).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, cast

import aiohttp
import msgspec
from kubernetes_asyncio.client import (
    ApiClient,
    Configuration,
    CoreV1Api,
    CustomObjectsApi,
    V1DeleteOptions,
    V1Preconditions,
)
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config import ConfigException, load_incluster_config
from kubernetes_asyncio.config.kube_config import KubeConfigLoader, KubeConfigMerger

from twinplane.cloud.registry.base import (
    DEVICE_RESOURCES,
    GROUP_VERSION,
    RESOURCE_TYPES,
    RESOURCES,
    TWINPLANE_GROUP_VERSION,
    AlreadyExistsError,
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidError,
    NotFoundError,
    RegistryError,
    Resource,
    WatchEvent,
    WatchEventType,
)

__all__ = ["KubeRegistry", "status_error"]

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]

MERGE_PATCH: Final = "application/merge-patch+json"
"""A JSON merge patch's content type. Sent explicitly: kubernetes_asyncio picks the first type
its API lists for a ``dict`` body, which for custom objects is ``application/json-patch+json``."""

REQUEST_TIMEOUT_S: Final = 30.0
"""Longest wait for the answer to one request (a watch excepted)."""

WATCH_GRACE_S: Final = 30.0
"""How much longer than its ``timeoutSeconds`` a watch may go silent before it is an error."""

DELETE_ATTEMPTS: Final = 3
"""Reads before a delete gives up on an object that keeps changing (ConflictError)."""

LIST_PAGE: Final = 500
"""Objects per list request (client-go's pager uses the same)."""

_BY_CODE: Final[Mapping[int, type[RegistryError]]] = {
    403: ForbiddenError,
    404: NotFoundError,
    410: GoneError,
    422: InvalidError,
}

_EVENT_TYPES: Final[Mapping[str, WatchEventType]] = {
    "ADDED": "ADDED",
    "MODIFIED": "MODIFIED",
    "DELETED": "DELETED",
    "BOOKMARK": "BOOKMARK",
}


class _RawEvent(msgspec.Struct, frozen=True):
    """One line of a watch answer."""

    type: str
    object: JsonObject


_decode_event = msgspec.json.Decoder(_RawEvent).decode


def status_error(status: Mapping[str, Any], code: int | None = None) -> RegistryError:
    """The registry error for a Kubernetes ``Status``: an error answer, or a watch's ERROR.

    Args:
        status: The ``Status`` object (``code``, ``reason``, ``message``, ``details.causes``).
        code: The HTTP status, when ``status`` carries none.
    """
    number = int(status.get("code") or code or 500)
    reason = str(status.get("reason") or "")
    message = str(status.get("message") or reason or f"HTTP {number}")
    details = status.get("details")
    raw_causes = details.get("causes") if isinstance(details, Mapping) else None
    causes = [
        {key: str(cause.get(key, "")) for key in ("field", "message", "reason")}
        for cause in raw_causes or []
        if isinstance(cause, Mapping)
    ]
    if number == 409:  # noqa: PLR2004 - HTTP Conflict, split by reason below
        kind: type[RegistryError] = (
            AlreadyExistsError if reason == "AlreadyExists" else ConflictError
        )
    else:
        kind = _BY_CODE.get(number, RegistryError)
    error = kind(
        message, causes=causes, path=next((c["field"] for c in causes if c["field"]), None)
    )
    if kind is RegistryError:  # keep what the server said; the subclasses say it themselves
        error.status = number
        error.reason = reason or "Unknown"
    return error


def _answer_error(code: int, reason: str | None, body: bytes | str | None) -> RegistryError:
    """The registry error for an error answer: its ``Status`` body, or its code and text."""
    try:
        status = msgspec.json.decode(body) if body else None
    except msgspec.DecodeError:
        status = None
    if not isinstance(status, Mapping) or status.get("kind") != "Status":
        text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
        status = {"code": code, "reason": reason, "message": text.strip() or reason}
    return status_error(status, code)


def _unreachable(what: str, exc: BaseException) -> RegistryError:
    error = RegistryError(f"Kubernetes API server: {what}: {str(exc) or type(exc).__name__}")
    error.status = 503
    error.reason = "ServiceUnavailable"
    return error


def _gv(resource: Resource) -> tuple[str, str]:
    """``(group, version)`` of ``resource``, as CustomObjectsApi takes them."""
    kind = RESOURCE_TYPES[resource]
    return kind.group, kind.version


def _kubeconfig_loader(path: Path) -> KubeConfigLoader:
    """Reads a kubeconfig file (relative paths in it are relative to it); blocking."""
    merged = KubeConfigMerger(str(path))
    return KubeConfigLoader(config_dict=merged.config, config_base_path=None)


def _only_precondition(patch: Mapping[str, Any]) -> bool:
    """The patch changes nothing, at most it carries ``metadata.resourceVersion``."""
    if not patch:
        return True
    metadata = patch.get("metadata")
    return (
        patch.keys() == {"metadata"}
        and isinstance(metadata, Mapping)
        and (metadata.keys() <= {"resourceVersion"})
    )


class KubeRegistry:
    """Device, DeviceModel and DeviceStatus objects on a Kubernetes API server.

    Args:
        kubeconfig: A kubeconfig file (its current context); ``None``: the in-cluster
            configuration of a pod's ServiceAccount.
        patch_concurrency: PATCH requests :meth:`merge_patch_many` keeps in flight at most.
        watch_timeout_s: The ``timeoutSeconds`` of each watch: the server ends it then (and
            sends a bookmark 2 s before), and the caller watches again from the last version.
    """

    name = "kubernetes"

    def __init__(
        self,
        kubeconfig: Path | None = None,
        *,
        patch_concurrency: int = 8,
        watch_timeout_s: int = 300,
    ) -> None:
        if patch_concurrency < 1:
            raise ValueError(f"patch_concurrency must be at least 1, not {patch_concurrency}")
        if watch_timeout_s < 1:
            raise ValueError(f"watch_timeout_s must be at least 1, not {watch_timeout_s}")
        self._kubeconfig = kubeconfig
        self._patch_concurrency = patch_concurrency
        self._watch_timeout_s = watch_timeout_s
        self._client: ApiClient | None = None
        self._api: CustomObjectsApi | None = None
        self._status_subresources: frozenset[str] = frozenset()
        self._served: frozenset[Resource] = frozenset()
        self._watches: set[aiohttp.ClientResponse] = set()
        self._closing = False

    @property
    def status_subresources(self) -> frozenset[str]:
        """The resources whose ``status`` the server writes only through ``/status``."""
        return self._status_subresources

    # -- lifecycle

    async def start(self) -> None:
        """Reads the configuration, connects, and checks that the three resources are served.

        Raises:
            RegistryError: The configuration cannot be read or the server cannot be reached.
            NotFoundError: The server does not serve the CRDs (``kubectl apply -f deploy/``).
        """
        config = Configuration()
        try:
            if self._kubeconfig is None:
                await asyncio.to_thread(load_incluster_config, client_configuration=config)
            else:
                loader = await asyncio.to_thread(_kubeconfig_loader, self._kubeconfig)
                await loader.load_and_set(config)
        except (ConfigException, OSError) as exc:
            where = self._kubeconfig or "in-cluster configuration"
            raise RegistryError(
                f"cannot load the Kubernetes configuration ({where}): {exc}"
            ) from exc
        self._closing = False
        self._client = ApiClient(configuration=config)
        self._api = CustomObjectsApi(self._client)
        try:
            served = await self._discover(GROUP_VERSION, required=True)
            served |= await self._discover(TWINPLANE_GROUP_VERSION, required=False)
        except BaseException:
            await self.close()
            raise
        missing = [resource for resource in DEVICE_RESOURCES if resource not in served]
        if missing:
            await self.close()
            raise NotFoundError(
                f"{GROUP_VERSION} does not serve {', '.join(missing)}: install KubeEdge's CRDs "
                "(kubectl apply -f deploy/ -R)"
            )
        self._served = frozenset(r for r in RESOURCE_TYPES if r in served)
        self._status_subresources = frozenset(r for r in RESOURCES if f"{r}/status" in served)
        log.info(
            "kubernetes registry connected",
            extra={
                "server": config.host,
                "status_subresources": sorted(self._status_subresources),
                "unserved": sorted(set(RESOURCE_TYPES) - self._served),
            },
        )

    def serves(self, resource: Resource) -> bool:
        """Whether the server has ``resource``'s CRD (twinplane's own are optional)."""
        return resource in self._served

    async def _discover(self, group_version: str, *, required: bool) -> set[str]:
        group, version = group_version.split("/")
        try:
            resources = await self._call(
                self._objects().get_api_resources(
                    group, version, _request_timeout=REQUEST_TIMEOUT_S
                )
            )
        except NotFoundError as exc:
            if not required:
                log.warning(
                    "the server does not serve %s: device calls through Kubernetes are off "
                    "(kubectl apply -f deploy/ -R installs its CRD)",
                    group_version,
                )
                return set()
            raise NotFoundError(
                f"the server does not serve {group_version}: install KubeEdge's CRDs "
                "(kubectl apply -f deploy/ -R)"
            ) from exc
        # Resource names are unique across the two groups (devices..., devicecalls).
        return {str(resource.name) for resource in resources.resources}

    async def close(self) -> None:
        """Ends every watch (their iterators end) and closes the connections."""
        self._closing = True
        for response in list(self._watches):
            response.content.feed_eof()  # wakes a pending read: the watch ends
            response.close()
        client, self._client, self._api = self._client, None, None
        if client is not None:
            await client.close()

    # -- reads

    async def list(
        self, resource: Resource, namespace: str | None = None
    ) -> tuple[builtins.list[JsonObject], str]:
        """Every object of ``resource`` (in ``namespace``), and the list's resourceVersion."""
        api = self._objects()
        kind, api_version = RESOURCES[resource], RESOURCE_TYPES[resource].group_version
        items: builtins.list[JsonObject] = []
        token: str | None = None
        while True:
            page: dict[str, Any] = {"limit": LIST_PAGE, "_request_timeout": REQUEST_TIMEOUT_S}
            if token:
                page["_continue"] = token
            if namespace is None:
                request = api.list_cluster_custom_object(*_gv(resource), resource, **page)
            else:
                request = api.list_namespaced_custom_object(
                    *_gv(resource), namespace, resource, **page
                )
            answer = await self._call(request)
            items.extend({"apiVersion": api_version, "kind": kind, **o} for o in answer["items"])
            metadata = answer.get("metadata", {})
            token = metadata.get("continue")
            if not token:
                return items, str(metadata.get("resourceVersion", ""))

    async def get(self, resource: Resource, namespace: str, name: str) -> JsonObject:
        """One object; :class:`NotFoundError` if it does not exist."""
        request = self._objects().get_namespaced_custom_object(
            *_gv(resource), namespace, resource, name, _request_timeout=REQUEST_TIMEOUT_S
        )
        return cast("JsonObject", await self._call(request))

    # -- writes

    async def create(self, resource: Resource, obj: Mapping[str, Any]) -> JsonObject:
        """Stores a new object in its ``metadata.namespace`` (``default`` if it has none)."""
        body = self._body(resource, obj)
        namespace = str(body["metadata"].get("namespace") or "default")
        request = self._objects().create_namespaced_custom_object(
            *_gv(resource), namespace, resource, body, _request_timeout=REQUEST_TIMEOUT_S
        )
        created = cast("JsonObject", await self._call(request))
        return await self._write_status(resource, created, obj)

    async def replace(self, resource: Resource, obj: Mapping[str, Any]) -> JsonObject:
        """Replaces an object whole (PUT); conditional when it carries a resourceVersion."""
        body = self._body(resource, obj)
        metadata = body["metadata"]
        namespace = str(metadata.get("namespace") or "default")
        request = self._objects().replace_namespaced_custom_object(
            *_gv(resource), namespace, resource, str(metadata.get("name", "")), body,
            _request_timeout=REQUEST_TIMEOUT_S,
        )  # fmt: skip
        replaced = cast("JsonObject", await self._call(request))
        return await self._write_status(resource, replaced, obj)

    async def merge_patch(
        self, resource: Resource, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> JsonObject:
        """Applies a JSON merge patch (``application/merge-patch+json``); the object after it.

        Where the server serves ``status`` as a subresource, a patch that touches ``status``
        goes there: alone, with the patch's ``metadata.resourceVersion`` precondition, when the
        rest of the patch changes nothing; otherwise the rest first (with the precondition),
        then ``status`` in a second PATCH. The two writes are then not atomic.
        """
        if resource not in self._status_subresources or "status" not in patch:
            return await self._patch(resource, namespace, name, patch, status=False)
        rest = {key: value for key, value in patch.items() if key != "status"}
        status_patch: JsonObject = {"status": patch["status"]}
        if _only_precondition(rest):
            status_patch.update(rest)
        else:
            await self._patch(resource, namespace, name, rest, status=False)
        return await self._patch(resource, namespace, name, status_patch, status=True)

    async def merge_patch_many(
        self, resource: Resource, patches: Sequence[tuple[str, str, Mapping[str, Any]]]
    ) -> builtins.list[JsonObject | RegistryError]:
        """Applies many merge patches, at most ``patch_concurrency`` at a time; results in order.

        Each result is the object after its patch or the :class:`RegistryError` it met.
        """
        results: dict[int, JsonObject | RegistryError] = {}
        pending = iter(enumerate(patches))

        async def worker() -> None:
            for index, (namespace, name, patch) in pending:
                try:
                    results[index] = await self.merge_patch(resource, namespace, name, patch)
                except RegistryError as exc:
                    results[index] = exc

        async with asyncio.TaskGroup() as group:
            for _ in range(min(self._patch_concurrency, len(patches))):
                group.create_task(worker())
        return [results[index] for index in range(len(patches))]

    async def delete(self, resource: Resource, namespace: str, name: str) -> JsonObject:
        """Deletes an object; the object as it was.

        The API server answers a custom object's DELETE with a ``Status``, not the object; so
        the object is read first and deleted on the condition that it is still that version
        (read again if it moved meanwhile, up to :data:`DELETE_ATTEMPTS` times). An object with
        finalizers is not gone yet: then the answer is the object, marked for deletion.
        """
        api = self._objects()
        for attempt in range(1, DELETE_ATTEMPTS + 1):
            current = await self.get(resource, namespace, name)
            version = current["metadata"]["resourceVersion"]
            request = api.delete_namespaced_custom_object(
                *_gv(resource), namespace, resource, name,
                body=V1DeleteOptions(preconditions=V1Preconditions(resource_version=version)),
                _request_timeout=REQUEST_TIMEOUT_S,
            )  # fmt: skip
            try:
                answer = cast("JsonObject", await self._call(request))
            except ConflictError:
                if attempt == DELETE_ATTEMPTS:
                    raise
                continue
            return current if answer.get("kind") == "Status" else answer
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def write_event(self, namespace: str, event: JsonObject, *, update: bool) -> None:
        """Creates a core/v1 Event (``update``: merge-patches count, times and message).

        A create that finds the Event there (a cloud restarted) patches it instead.
        """
        if self._client is None:
            raise RegistryError("the Kubernetes registry is not started (or closed)")
        core = CoreV1Api(self._client)
        name = str(event["metadata"]["name"])
        if not update:
            # The API takes the JSON as is; the stubs ask for its model class.
            request = core.create_namespaced_event(
                namespace,
                event,  # type: ignore[arg-type]
                _request_timeout=REQUEST_TIMEOUT_S,
            )
            try:
                await self._call(request)
            except AlreadyExistsError:
                pass
            else:
                return
        patch = {k: event[k] for k in ("count", "lastTimestamp", "message", "type")}
        # The package's stubs omit _content_type, which its code takes (see MERGE_PATCH).
        await self._call(
            core.patch_namespaced_event(  # type: ignore[call-arg]
                name, namespace, patch, _content_type=MERGE_PATCH,
                _request_timeout=REQUEST_TIMEOUT_S,
            )
        )  # fmt: skip

    # -- watch

    async def watch(
        self,
        resource: Resource,
        resource_version: str,
        *,
        namespace: str | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Every change after ``resource_version``, with bookmarks, until the server ends it.

        Raises:
            GoneError: The version is older than the server keeps (a 410 ERROR event).
            RegistryError: Any other ERROR event or failed request, mapped by its code.
        """
        api = self._objects()
        options: dict[str, Any] = {
            "watch": True,
            "resource_version": resource_version,
            "allow_watch_bookmarks": True,
            "timeout_seconds": self._watch_timeout_s,
            "_preload_content": False,
            "_request_timeout": aiohttp.ClientTimeout(
                sock_connect=REQUEST_TIMEOUT_S, sock_read=self._watch_timeout_s + WATCH_GRACE_S
            ),
        }
        if namespace is None:
            request = api.list_cluster_custom_object(*_gv(resource), resource, **options)
        else:
            request = api.list_namespaced_custom_object(
                *_gv(resource), namespace, resource, **options
            )
        response = cast("aiohttp.ClientResponse", await self._call(request))
        self._watches.add(response)
        try:
            if response.status >= 300:  # noqa: PLR2004 - not preloaded: nothing checked it
                body = await response.read()
                raise _answer_error(response.status, response.reason, body)
            while line := await self._read_line(response):
                if line.strip():
                    yield self._event(line)
        finally:
            self._watches.discard(response)
            response.close()

    async def _read_line(self, response: aiohttp.ClientResponse) -> bytes:
        """The next line of a watch; ``b""`` when it ended (or :meth:`close` ended it)."""
        try:
            # kubernetes_asyncio's session reads 2 MiB buffers: a line of the largest object fits.
            return await response.content.readline()
        except (aiohttp.ClientError, OSError) as exc:
            if self._closing:
                return b""
            raise _unreachable("the watch broke off", exc) from exc
        except TimeoutError as exc:
            raise _unreachable(
                f"the watch was silent for {WATCH_GRACE_S:.0f} s past its end", exc
            ) from exc

    @staticmethod
    def _event(line: bytes) -> WatchEvent:
        try:
            raw = _decode_event(line)
        except msgspec.DecodeError as exc:
            raise RegistryError(f"a watch event that is not one: {line[:200]!r}") from exc
        kind = _EVENT_TYPES.get(raw.type)
        if kind is not None:
            return WatchEvent(kind, raw.object)
        if raw.type == "ERROR":
            raise status_error(raw.object)
        raise RegistryError(f"a watch event of unknown type {raw.type!r}")

    # -- plumbing

    def _objects(self) -> CustomObjectsApi:
        if self._api is None:
            raise RegistryError("the Kubernetes registry is not started (or closed)")
        return self._api

    async def _call(self, request: Awaitable[Any]) -> Any:  # noqa: ANN401 - the API's own types
        """Awaits one request; its error as the registry error."""
        try:
            return await request
        except ApiException as exc:
            raise _answer_error(exc.status, exc.reason, exc.body) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise _unreachable("unreachable", exc) from exc
        except TimeoutError as exc:
            raise _unreachable(f"no answer within {REQUEST_TIMEOUT_S:.0f} s", exc) from exc

    @staticmethod
    def _body(resource: Resource, obj: Mapping[str, Any]) -> JsonObject:
        """``obj`` with ``apiVersion`` and ``kind`` where it has none."""
        kind = RESOURCE_TYPES[resource]
        body: JsonObject = {"apiVersion": kind.group_version, "kind": kind.kind, **obj}
        body["metadata"] = dict(body.get("metadata") or {})
        return body

    async def _patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        status: bool,
    ) -> JsonObject:
        api = self._objects()
        send = (
            api.patch_namespaced_custom_object_status
            if status
            else api.patch_namespaced_custom_object
        )
        # The package's stubs omit _content_type, which its code takes (see MERGE_PATCH).
        request = send(  # type: ignore[call-arg]
            *_gv(resource), namespace, resource, name, dict(patch),
            _content_type=MERGE_PATCH, _request_timeout=REQUEST_TIMEOUT_S,
        )  # fmt: skip
        return cast("JsonObject", await self._call(request))

    async def _write_status(
        self, resource: Resource, stored: JsonObject, obj: Mapping[str, Any]
    ) -> JsonObject:
        """After a create or replace: ``obj``'s status through ``/status``, if it is there."""
        if resource not in self._status_subresources or "status" not in obj:
            return stored
        metadata = stored["metadata"]
        request = self._objects().replace_namespaced_custom_object_status(
            *_gv(resource), metadata["namespace"], resource, metadata["name"],
            {**stored, "status": obj["status"]}, _request_timeout=REQUEST_TIMEOUT_S,
        )  # fmt: skip
        return cast("JsonObject", await self._call(request))
