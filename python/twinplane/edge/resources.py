"""The REST API's JSON shapes: objects with status, lists, and Kubernetes ``Status`` errors.

A Device is served as its manifest (``to_dict()``) plus a ``status`` like KubeEdge's
DeviceStatus (v1.23): one entry per twin with ``reported`` and ``observedDesired`` values whose
``metadata`` holds the timestamp (milliseconds, as a string) and the type, and a twin's
``lastWriteError`` when its desired value could not be written; the device ``state`` and
``lastOnlineTime``. The deprecated ``Device.status`` fields of a manifest (``reportToCloud``,
``reportCycle``) are kept beside them.

A twin of ``GET …/twin`` is the engine's (``type``, ``desired``, ``reported``, versions) plus
``last_write_error``: ``{"reason", "time", "attempts", "value"}`` or ``null``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from twinplane.edge.core import EdgeCore
from twinplane.edge.write_errors import WriteError
from twinplane.errors import UnknownDeviceError
from twinplane.manifests import API_VERSION, Device, DeviceModel, ManifestIssue
from twinplane.rest.echo import clip
from twinplane.twin import TwinDict, TwinSideDict

__all__ = [
    "GROUP",
    "MAX_CAUSES",
    "ApiError",
    "device_json",
    "issue_cause",
    "list_json",
    "model_json",
    "status_body",
    "twin_json",
    "twins_json",
]

GROUP: Final = "devices.kubeedge.io"

MAX_CAUSES: Final = 100
"""Causes one failure lists; the rest are counted in a last cause (``reason: truncated``)."""

_REASONS: Final[dict[int, str]] = {
    400: "BadRequest",
    404: "NotFound",
    403: "Forbidden",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}


def status_body(
    code: int, message: str, *, reason: str | None = None, details: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A Kubernetes ``Status`` of a failed request."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason or _REASONS.get(code, "Unknown"),
        "code": code,
        "details": dict(details or {}),
    }


class ApiError(Exception):
    """A request that fails with a Kubernetes ``Status`` answer.

    Args:
        code: The HTTP status.
        message: What went wrong, for a person.
        reason: The machine-readable reason (derived from ``code`` when not given).
        details: ``details`` of the Status (``name``, ``kind``, ``causes``...).
        headers: Headers of the answer (``Retry-After``).
    """

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.body = status_body(code, message, reason=reason, details=details)
        self.headers = dict(headers or {})

    @classmethod
    def not_found(cls, resource: str, namespace: str, name: str) -> ApiError:
        """``<resource>.devices.kubeedge.io "<name>" not found`` (kubectl's wording)."""
        name, namespace = clip(name), clip(namespace)
        return cls(
            404,
            f'{resource}.{GROUP} "{name}" not found in namespace "{namespace}"',
            details={"name": name, "namespace": namespace, "group": GROUP, "kind": resource},
        )

    @classmethod
    def invalid(
        cls,
        message: str,
        causes: Iterable[Mapping[str, Any]],
        details: Mapping[str, Any] | None = None,
    ) -> ApiError:
        """422 with the causes (``field``, ``message``, ...) beside ``details``.

        At most :data:`MAX_CAUSES` are listed; a last one (``reason: truncated``) counts the rest
        (``count``).
        """
        listed = list(causes)
        if len(listed) > MAX_CAUSES:
            rest = len(listed) - MAX_CAUSES
            more = {
                "reason": "truncated",
                "field": "",
                "message": f"and {rest} more not listed",
                "count": rest,
            }
            listed = [*listed[:MAX_CAUSES], more]
        return cls(422, message, details={**(details or {}), "causes": listed})


def issue_cause(issue: ManifestIssue) -> dict[str, Any]:
    """One manifest error or warning as a Status cause (``field`` is the path).

    The texts are clipped (:func:`~twinplane.rest.echo.clip`): they quote the input.
    """
    return {
        "reason": issue.code,
        "field": clip(issue.path),
        "message": clip(issue.message, 500),
        "document": issue.document,
        "kind": clip(issue.kind),
        "namespace": clip(issue.namespace),
        "name": clip(issue.name),
    }


def list_json(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """A ``<kind>List`` of items."""
    return {"kind": f"{kind}List", "apiVersion": API_VERSION, "metadata": {}, "items": items}


def model_json(model: DeviceModel) -> dict[str, Any]:
    """A DeviceModel as applied."""
    return model.to_dict()


def device_json(core: EdgeCore, device: Device) -> dict[str, Any]:
    """A Device as applied, with its twins, state and last online time as ``status``."""
    body = device.to_dict()
    status: dict[str, Any] = dict(device.status or {})
    errors = core.write_errors.of(device.id)
    status["twins"] = [
        _status_twin(name, twin, errors.get(name)) for name, twin in _twins(core, device).items()
    ]
    state = core.states.get(device.id)
    status["state"] = state.state if state is not None else "unknown"
    if state is not None and state.last_online:
        status["lastOnlineTime"] = state.last_online
    body["status"] = status
    return body


def twins_json(
    device_id: str, twins: Mapping[str, TwinDict], errors: Mapping[str, WriteError]
) -> dict[str, Any]:
    """The body of ``GET .../twin``: the device id and every twin by property."""
    return {
        "device": device_id,
        "twins": {name: twin_json(twin, errors.get(name)) for name, twin in twins.items()},
    }


def twin_json(twin: TwinDict, error: WriteError | None) -> dict[str, Any]:
    """One twin as the API shows it: the engine's twin and its ``last_write_error``."""
    return {**twin, "last_write_error": error.to_json() if error is not None else None}


def _twins(core: EdgeCore, device: Device) -> dict[str, TwinDict]:
    try:
        return core.twins(device.id)
    except UnknownDeviceError:  # its model is missing (a store edited by hand): no twins
        return {}


def _status_twin(name: str, twin: TwinDict, error: WriteError | None) -> dict[str, Any]:
    out: dict[str, Any] = {"propertyName": name}
    if twin["reported"] is not None:
        out["reported"] = _twin_value(twin["reported"], twin["type"])
    if twin["desired"] is not None:
        out["observedDesired"] = _twin_value(twin["desired"], twin["type"])
    if error is not None:
        out["lastWriteError"] = error.to_json()
    return out


def _twin_value(side: TwinSideDict, type_: str) -> dict[str, Any]:
    return {
        "value": side["value"],
        "metadata": {"timestamp": str(side["timestamp"]), "type": type_},
    }
