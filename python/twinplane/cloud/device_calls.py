"""The ``DeviceCall`` object: a method call on a device, made through the cloud.

KubeEdge has no API object for a command, and a CRD cannot add a custom subresource to
``devices`` (only ``status`` and ``scale``), so a call from Kubernetes is an object of its own in
twinplane's API group, ``twinplane.io/v1alpha1``, as a Job is for a run to completion::

    apiVersion: twinplane.io/v1alpha1
    kind: DeviceCall
    metadata: {name: thermo-1-setpoint-1, namespace: default}
    spec:
      deviceRef: {name: thermo-1}      # a Device in the call's namespace
      method: setpoint                 # spec.methods[] or the twinplane.io/methods annotation
      arguments: {setpoint: 22.5}      # checked by the edge against the method
      timeoutSeconds: 10               # after delivery, how long the device may take
      ttlSeconds: 300                  # how long to wait for an offline device (0: fail fast)
    status:
      state: Succeeded                 # Pending, Sent, Succeeded, Failed, TimedOut, Expired
      node: node-a
      result: {...}
      error: {code: ..., message: ...}
      acceptedTime / sentTime / finishedTime

``spec`` is immutable (the CRD says so with a CEL rule; the embedded registry checks it too).
The call's identity on the edge is the object's ``metadata.uid``: a call delivered twice (a
replayed link message, a resync after a partition) is still one call.
"""

from __future__ import annotations

import re
from typing import Any, Final

__all__ = [
    "FINAL_STATES",
    "MAX_TIMEOUT_S",
    "MAX_TTL_S",
    "STATES",
    "device_call_causes",
    "spec_change_causes",
]

STATES: Final = ("Pending", "Sent", "Succeeded", "Failed", "TimedOut", "Expired")
"""A call's states, in KubeEdge's CamelCase."""

FINAL_STATES: Final = frozenset({"Succeeded", "Failed", "TimedOut", "Expired"})
"""States a call never leaves."""

MAX_TIMEOUT_S: Final = 3600
"""The longest ``spec.timeoutSeconds``."""

MAX_TTL_S: Final = 7 * 24 * 3600
"""The longest ``spec.ttlSeconds`` (a week)."""

NAME: Final = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
"""A Kubernetes object name (a DNS subdomain)."""

Cause = tuple[str, str]
"""``(field path, message)``."""


def device_call_causes(body: dict[str, Any]) -> list[Cause]:
    """Every problem of a DeviceCall object, each with the path of its field."""
    spec = body.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value: an object")]
    causes: list[Cause] = []
    ref = spec.get("deviceRef")
    if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
        causes.append(("spec.deviceRef.name", "Required value: the Device's name"))
    elif not NAME.fullmatch(ref["name"]):
        causes.append(("spec.deviceRef.name", f"{ref['name']!r} is not a valid name"))
    method = spec.get("method")
    if not isinstance(method, str) or not method:
        causes.append(("spec.method", "Required value: a method name"))
    if "arguments" in spec and not isinstance(spec["arguments"], dict):
        causes.append(("spec.arguments", "must be an object of argument names to values"))
    for key, high in (("timeoutSeconds", MAX_TIMEOUT_S), ("ttlSeconds", MAX_TTL_S)):
        value = spec.get(key)
        if value is None:
            continue
        low = 1 if key == "timeoutSeconds" else 0
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            causes.append((f"spec.{key}", f"must be an integer from {low} to {high}"))
    status = body.get("status")
    if status is not None:
        if not isinstance(status, dict):
            causes.append(("status", "must be an object"))
        elif "state" in status and status["state"] not in STATES:
            causes.append(("status.state", f"must be one of {', '.join(STATES)}"))
    return causes


def spec_change_causes(old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
    """A change of ``spec`` (immutable once created), as Kubernetes' CEL rule answers it."""
    if old.get("spec") != new.get("spec"):
        return [("spec", "Invalid value: spec is immutable: create a new DeviceCall")]
    return []
