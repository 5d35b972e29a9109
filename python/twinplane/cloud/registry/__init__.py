"""Where Device, DeviceModel and DeviceStatus objects live: one interface, two registries.

- :mod:`~twinplane.cloud.registry.base`: the :class:`Registry` protocol, its errors and watch
  events — what the device controller and the cloud's REST API are written against.
- :mod:`~twinplane.cloud.registry.embedded`: objects in SQLite (the default; no service).
- :mod:`~twinplane.cloud.registry.kube`: the three CRDs on a Kubernetes API server.
"""

from twinplane.cloud.registry.base import (
    RESOURCES,
    AlreadyExistsError,
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidError,
    NotFoundError,
    Registry,
    RegistryError,
    Resource,
    WatchEvent,
    WatchEventType,
)

__all__ = [
    "RESOURCES",
    "AlreadyExistsError",
    "ConflictError",
    "ForbiddenError",
    "GoneError",
    "InvalidError",
    "NotFoundError",
    "Registry",
    "RegistryError",
    "Resource",
    "WatchEvent",
    "WatchEventType",
]
