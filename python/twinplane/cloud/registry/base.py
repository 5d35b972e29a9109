"""The registry interface: Kubernetes' object model for the device CRDs and device calls.

Objects cross this interface as Kubernetes JSON (``dict``: ``apiVersion``, ``kind``,
``metadata``, ``spec``, ``status``), exactly as the API server stores them, so the embedded
registry and a real API server are interchangeable behind it and the cloud's REST API can hand
them out unchanged. ``metadata.resourceVersion`` is an opaque string; only the registry that made
it compares it.

Semantics follow the Kubernetes API (and the embedded registry reproduces them):

- :meth:`Registry.list` returns the items and the list's ``resourceVersion``; a watch from that
  version sees every later change, in order, and nothing before it.
- :meth:`Registry.watch` yields :class:`WatchEvent` s (``ADDED``, ``MODIFIED``, ``DELETED``,
  ``BOOKMARK`` — a bookmark carries only ``metadata.resourceVersion``). A version older than the
  registry keeps raises :class:`GoneError` (HTTP 410): the caller relists.
- :meth:`Registry.merge_patch` is a JSON merge patch (RFC 7386); when the patch carries
  ``metadata.resourceVersion`` the write is conditional and a stale one raises
  :class:`ConflictError`.
- :meth:`Registry.replace` is a PUT: the whole object; a ``metadata.resourceVersion`` in it makes
  the write conditional likewise.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Literal, NamedTuple, Protocol

import msgspec

from twinplane.errors import TwinplaneError

__all__ = [
    "DEVICE_RESOURCES",
    "GROUP",
    "GROUP_VERSION",
    "RESOURCES",
    "RESOURCE_TYPES",
    "TWINPLANE_GROUP",
    "TWINPLANE_GROUP_VERSION",
    "TWINPLANE_VERSION",
    "VERSION",
    "AlreadyExistsError",
    "ConflictError",
    "ForbiddenError",
    "GoneError",
    "InvalidError",
    "NotFoundError",
    "Registry",
    "RegistryError",
    "Resource",
    "ResourceType",
    "WatchEvent",
    "WatchEventType",
]

GROUP = "devices.kubeedge.io"
VERSION = "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"

TWINPLANE_GROUP = "twinplane.io"
"""twinplane's own API group: objects KubeEdge has no CRD for (device calls)."""
TWINPLANE_VERSION = "v1alpha1"
TWINPLANE_GROUP_VERSION = f"{TWINPLANE_GROUP}/{TWINPLANE_VERSION}"

Resource = Literal["devices", "devicemodels", "devicestatuses", "devicecalls"]
"""A resource's plural name, as in its REST path."""


class ResourceType(NamedTuple):
    """Where a resource lives: its API group, version and kind."""

    group: str
    version: str
    kind: str

    @property
    def group_version(self) -> str:
        """``group/version``, a manifest's ``apiVersion``."""
        return f"{self.group}/{self.version}"


RESOURCE_TYPES: Mapping[Resource, ResourceType] = {
    "devices": ResourceType(GROUP, VERSION, "Device"),
    "devicemodels": ResourceType(GROUP, VERSION, "DeviceModel"),
    "devicestatuses": ResourceType(GROUP, VERSION, "DeviceStatus"),
    "devicecalls": ResourceType(TWINPLANE_GROUP, TWINPLANE_VERSION, "DeviceCall"),
}
"""Each resource's group, version and kind."""

RESOURCES: Mapping[Resource, str] = {r: t.kind for r, t in RESOURCE_TYPES.items()}
"""Each resource's kind."""

DEVICE_RESOURCES: tuple[Resource, ...] = ("devices", "devicemodels", "devicestatuses")
"""KubeEdge's three CRDs (``devices.kubeedge.io/v1beta1``): a Kubernetes registry needs them."""

WatchEventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]

JsonObject = dict[str, Any]


class WatchEvent(msgspec.Struct, frozen=True):
    """One change seen by a watch; ``object`` is the whole object after it (before, if deleted)."""

    type: WatchEventType
    object: JsonObject

    @property
    def resource_version(self) -> str:
        """The event's ``metadata.resourceVersion``."""
        return str(self.object.get("metadata", {}).get("resourceVersion", ""))


class RegistryError(TwinplaneError):
    """A registry call failed; ``status`` is the HTTP status Kubernetes answers with.

    Attributes:
        status: 404, 409, 410, 422, 403, ...
        reason: Kubernetes' ``Status.reason`` (``NotFound``, ``AlreadyExists``, ``Conflict``,
            ``Expired``, ``Invalid``, ``Forbidden``).
        causes: ``Status.details.causes`` (``{"field", "message", "reason"}`` each) of an
            invalid object.
    """

    status = 500
    reason = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        causes: list[dict[str, str]] | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, path=path)
        self.causes = causes or []


class NotFoundError(RegistryError):
    """No such object."""

    status = 404
    reason = "NotFound"


class AlreadyExistsError(RegistryError):
    """A create of an object that exists."""

    status = 409
    reason = "AlreadyExists"


class ConflictError(RegistryError):
    """A conditional write whose ``resourceVersion`` is not the object's current one."""

    status = 409
    reason = "Conflict"


class GoneError(RegistryError):
    """A watch or list from a ``resourceVersion`` the registry no longer keeps: relist."""

    status = 410
    reason = "Expired"


class InvalidError(RegistryError):
    """The object does not validate; ``causes`` names every field."""

    status = 422
    reason = "Invalid"


class ForbiddenError(RegistryError):
    """The registry refused the caller (Kubernetes RBAC)."""

    status = 403
    reason = "Forbidden"


class Registry(Protocol):
    """Where the device controller and the cloud's REST API read and write objects.

    ``namespace=None`` in :meth:`list` and :meth:`watch` means every namespace.
    """

    name: str
    """``embedded`` or ``kubernetes``."""

    async def start(self) -> None:
        """Opens the store or the API connection; raises :class:`RegistryError` if it cannot."""
        ...

    def serves(self, resource: Resource) -> bool:
        """Whether ``resource`` is there (a Kubernetes cluster may lack twinplane's CRD)."""
        ...

    async def close(self) -> None:
        """Releases what :meth:`start` opened; ends every watch."""
        ...

    async def list(
        self, resource: Resource, namespace: str | None = None
    ) -> tuple[list[JsonObject], str]:
        """Every object of ``resource`` (in ``namespace``), and the list's resourceVersion."""
        ...

    async def get(self, resource: Resource, namespace: str, name: str) -> JsonObject:
        """One object; :class:`NotFoundError` if it does not exist."""
        ...

    async def create(self, resource: Resource, obj: Mapping[str, Any]) -> JsonObject:
        """Stores a new object (its namespace and name from ``metadata``); the stored object.

        Raises :class:`AlreadyExistsError` or :class:`InvalidError`.
        """
        ...

    async def replace(self, resource: Resource, obj: Mapping[str, Any]) -> JsonObject:
        """Replaces an object whole (PUT).

        Raises :class:`NotFoundError`, :class:`ConflictError` or :class:`InvalidError`.
        """
        ...

    async def merge_patch(
        self, resource: Resource, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> JsonObject:
        """Applies a JSON merge patch; the object after it.

        Raises :class:`NotFoundError`, :class:`ConflictError` (a stale
        ``metadata.resourceVersion`` in the patch) or :class:`InvalidError`.
        """
        ...

    async def merge_patch_many(
        self, resource: Resource, patches: Sequence[tuple[str, str, Mapping[str, Any]]]
    ) -> builtins.list[JsonObject | RegistryError]:
        """Applies many ``(namespace, name, patch)`` merge patches; per patch, the result.

        Each result is the object after its patch or the error it met (one failure does not
        stop the others).

        The device controller's coalesced DeviceStatus writes go through here: the embedded
        registry writes them in one transaction, a Kubernetes registry sends them as separate
        PATCH requests with bounded concurrency.
        """
        ...

    async def delete(self, resource: Resource, namespace: str, name: str) -> JsonObject:
        """Deletes an object; the object as it was. :class:`NotFoundError` if it did not exist."""
        ...

    def watch(
        self,
        resource: Resource,
        resource_version: str,
        *,
        namespace: str | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Every change after ``resource_version``, in order, with bookmarks now and then.

        The iterator ends when the registry closes or the server ends the watch (the caller
        watches again from the last version it saw); :class:`GoneError` when the version is too old.
        """
        ...
