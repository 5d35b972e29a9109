"""Method calls over MQTT: ``…/<ns>/<name>/method/call`` in, ``…/method/result`` out.

A request is ``{"id"?, "method", "args"?, "ttl"?, "timeout"?}`` (``ttl``/``timeout``: seconds or
a duration such as ``"60s"``); it goes through :meth:`~twinplane.edge.calls.CallService.submit_call`
(source ``mqtt``), as a REST call does. The answers on ``…/method/result``, correlated by ``id``:

- an acknowledgement once the call is stored (``state`` ``Pending``), unless it already ended;
- the outcome when it ends (``Succeeded``, ``Failed``, ``TimedOut``, ``Expired``), with
  ``result`` or ``error``;
- a refusal (``state`` ``Rejected``, ``error.code`` ``BadRequest`` / ``NotFound`` /
  ``InvalidArgument``, ``error.field`` naming the field) for a request that is not a call: garbled
  JSON, a missing method, a refused argument.

Each answer is the call's JSON (:meth:`~twinplane.edge.calls.Call.to_json`) plus ``timestamp``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from twinplane.durations import parse_duration
from twinplane.edge.calls import (
    Call,
    CallArgumentError,
    CallConflictError,
    CallService,
    UnknownMethodError,
)
from twinplane.edge.core import now_ms
from twinplane.edge.methods import MethodError
from twinplane.edge.mqtt_payloads import DEVICE_PREFIX
from twinplane.errors import SpecError, UnknownDeviceError

__all__ = ["MqttCalls", "result_topic"]

SOURCE: Final = "mqtt"
_KEYS: Final = frozenset({"id", "method", "args", "ttl", "timeout"})


def result_topic(namespace: str, name: str) -> str:
    """``$hw/events/device/<ns>/<name>/method/result``."""
    return f"{DEVICE_PREFIX}{namespace}/{name}/method/result"


class _RefusedError(Exception):
    def __init__(self, code: str, field: str, message: str, call_id: str | None) -> None:
        super().__init__(message)
        self.code, self.field, self.message, self.call_id = code, field, message, call_id


class MqttCalls:
    """The bridge's method-call topics over one :class:`CallService`.

    Args:
        calls: The calls.
        offer: Queues a JSON answer ``(topic, body)`` on the bridge (never blocks).
    """

    def __init__(self, calls: CallService, offer: Callable[[str, dict[str, Any]], None]) -> None:
        self.calls = calls
        self._offer = offer
        calls.add_listener(self._on_call)

    def close(self) -> None:
        """Stops answering outcomes."""
        self.calls.remove_listener(self._on_call)

    async def handle(self, device_id: str, payload: bytes) -> None:
        """Serves one ``…/method/call`` message; every failure is answered, never raised."""
        namespace, _, name = device_id.partition("/")
        try:
            request = _decode(payload)
            call = await self._submit(namespace, name, request)
        except _RefusedError as err:
            body = {
                "id": err.call_id,
                "namespace": namespace,
                "device": name,
                "state": "Rejected",
                "error": {"code": err.code, "field": err.field, "message": err.message},
                "timestamp": now_ms(),
            }
            self._offer(result_topic(namespace, name), body)
            return
        if not call.finished:  # the outcome of a finished call was answered by the listener
            self._answer(call)

    async def _submit(self, namespace: str, name: str, request: dict[str, Any]) -> Call:
        call_id = request.get("id")
        try:
            return await self.calls.submit_call(
                namespace,
                name,
                request["method"],
                request.get("args") or {},
                source=SOURCE,
                timeout_s=request.get("timeout"),
                ttl_s=request.get("ttl"),
                call_id=call_id,
            )
        except UnknownDeviceError as err:
            raise _RefusedError("NotFound", "device", err.message, call_id) from None
        except UnknownMethodError as err:
            raise _RefusedError("NotFound", "method", err.message, call_id) from None
        except CallArgumentError as err:
            raise _RefusedError(
                "InvalidArgument", err.path or "args", err.message, call_id
            ) from None
        except MethodError as err:
            raise _RefusedError("InvalidArgument", err.path or "", err.message, call_id) from None
        except CallConflictError as err:
            raise _RefusedError("Conflict", "id", err.message, call_id) from None
        except SpecError as err:
            raise _RefusedError("BadRequest", err.path or "", err.message, call_id) from None

    def _on_call(self, call: Call) -> None:
        if call.source == SOURCE and call.finished:
            self._answer(call)

    def _answer(self, call: Call) -> None:
        self._offer(
            result_topic(call.namespace, call.device), {**call.to_json(), "timestamp": now_ms()}
        )


def _decode(payload: bytes) -> dict[str, Any]:
    """The request's fields, checked; :class:`_RefusedError` names the first bad one."""
    try:
        raw = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _RefusedError("BadRequest", "", f"malformed JSON: {err}", None) from None
    if not isinstance(raw, dict):
        raise _RefusedError("BadRequest", "", "the request must be a JSON object", None)
    call_id = raw.get("id")
    if call_id is not None and (not isinstance(call_id, str) or not call_id):
        raise _RefusedError("BadRequest", "id", "id must be a non-empty string", None)
    for key in raw:
        if key not in _KEYS:
            allowed = ", ".join(sorted(_KEYS))
            raise _RefusedError(
                "BadRequest", key, f"unknown field {key!r} (allowed: {allowed})", call_id
            )
    method = raw.get("method")
    if not isinstance(method, str) or not method:
        raise _RefusedError("BadRequest", "method", "method must be a non-empty string", call_id)
    args = raw.get("args")
    if args is not None and not isinstance(args, dict):
        raise _RefusedError(
            "BadRequest", "args", "args must be a JSON object of arguments", call_id
        )
    out: dict[str, Any] = {"id": call_id, "method": method, "args": args or {}}
    for key in ("ttl", "timeout"):
        value = raw.get(key)
        if value is None:
            continue
        try:
            out[key] = parse_duration(value, key)
        except SpecError as err:
            raise _RefusedError("BadRequest", key, err.message, call_id) from None
    return out
