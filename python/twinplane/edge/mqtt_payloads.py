"""KubeEdge's ``$hw/events`` MQTT topics and JSON payloads, as the MQTT bridge speaks them.

Shapes follow EdgeCore's Go structs (spec §3.5, §3.8, §3.9, §4): ``timestamp`` is an integer
(ms since the epoch), twin values are strings, a ``MsgTwin`` is
``{"expected"?: TwinValue, "actual"?: TwinValue, "optional": bool, "metadata": {"type"}}`` and a
``TwinValue`` is ``{"value": "<canonical text>", "metadata": {"timestamp": <ms>}}``. The twin
messages of engine changes are encoded in Rust (``Changes.to_mqtt()``); this module builds the
replies the engine does not: results echoing a request's ``event_id``, ``twin/get`` results,
results of desired-write outcomes, state and membership results, and error answers
``{"event_id","timestamp","code","reason"}``.

A twin whose desired value could not be written carries ``last_write_error``
(``{"reason","time","attempts","value"}``) in the results built here; a write-outcome result
sets it to ``null`` when a success cleared it. EdgeCore's ``MsgTwin`` has no such field, and Go
decoders ignore it, so KubeEdge clients read these payloads as before.

Requests are decoded in two steps: JSON first (so the ``event_id`` of a request whose fields are
wrong can still be echoed), then :func:`msgspec.convert` into the request struct, whose
validation error names the field (``$.twin.temp.expected.value``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import msgspec

from twinplane.edge.write_errors import WriteError
from twinplane.twin import TwinDict

DEVICE_PREFIX = "$hw/events/device/"
"""Prefix of device topics: ``$hw/events/device/<namespace>/<name>/<suffix>``."""

NODE_PREFIX = "$hw/events/node/"
"""Prefix of node topics: ``$hw/events/node/<node>/<suffix>``."""

BAD_REQUEST = 400
NOT_FOUND = 404
INTERNAL_ERROR = 500

TWIN_OPTIONAL = True
"""The ``optional`` flag of every twin (as the engine's encoder writes it)."""

_TWIN_TYPES = {
    "INT": "int",
    "FLOAT": "float",
    "DOUBLE": "float",
    "BOOLEAN": "boolean",
    "STRING": "string",
    "BYTES": "string",
    "STREAM": "string",
}
"""Property type → the twin ``metadata.type`` EdgeCore's ``ValidateValue`` accepts."""

RequestKind = Literal["twin/update", "twin/get", "state/update", "method/call", "membership/get"]

_DEVICE_SUFFIXES: tuple[RequestKind, ...] = (
    "twin/update",
    "twin/get",
    "state/update",
    "method/call",
)


UPLOAD_PREFIX = "$hw/events/upload/"
"""Where edge applications publish what goes to the cloud (EdgeCore's ``$hw/events/upload/#``)."""


def subscriptions(node: str, *, uploads: bool = False) -> list[str]:
    """The topic filters the bridge subscribes to for node ``node``.

    ``uploads``: also ``$hw/events/upload/#`` (when a cloud link takes them).
    """
    return [
        *(f"{DEVICE_PREFIX}+/+/{suffix}" for suffix in _DEVICE_SUFFIXES),
        f"{NODE_PREFIX}{node}/membership/get",
        *([f"{UPLOAD_PREFIX}#"] if uploads else []),
    ]


@dataclass(frozen=True, slots=True)
class Request:
    """Where a request arrived: its kind and who it is about.

    Attributes:
        kind: Which request.
        topic: The topic it arrived on.
        identity: The device id (``<namespace>/<name>``) or, for membership, the node.
    """

    kind: RequestKind
    topic: str
    identity: str

    @property
    def result_topic(self) -> str:
        """Where the answer goes: the request topic plus ``/result``."""
        return f"{self.topic}/result"

    @property
    def name(self) -> str:
        """The device name (the last segment of the identity)."""
        return self.identity.rpartition("/")[2]

    @classmethod
    def from_topic(cls, topic: str, node: str) -> Request | None:
        """The request a topic carries, or ``None`` for a topic the bridge does not serve."""
        parts = topic.split("/")
        if topic.startswith(DEVICE_PREFIX) and len(parts) == 7:  # noqa: PLR2004 - the shape
            suffix = f"{parts[5]}/{parts[6]}"
            for kind in _DEVICE_SUFFIXES:
                if suffix == kind and parts[3] and parts[4]:
                    return cls(kind, topic, f"{parts[3]}/{parts[4]}")
            return None
        if topic == f"{NODE_PREFIX}{node}/membership/get":
            return cls("membership/get", topic, node)
        return None


# --- requests --------------------------------------------------------------------------------


class RequestError(Exception):
    """A request that is answered with an error payload.

    Attributes:
        code: 400, 404 or 500.
        reason: What is wrong, for the requester.
        event_id: The request's ``event_id`` (``""`` when it could not be read).
    """

    def __init__(self, code: int, reason: str, event_id: str = "") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.event_id = event_id


class TwinValueIn(msgspec.Struct, frozen=True):
    """A requested twin side. ``metadata`` is ignored (mapper-framework sends a string there)."""

    value: str | None = None
    metadata: dict[str, Any] | None = None


class TwinMetaIn(msgspec.Struct, frozen=True):
    """A requested twin's metadata; ``type`` is ignored: the model's property type decides."""

    type: str | None = None


class MsgTwinIn(msgspec.Struct, frozen=True):
    """One twin of a ``twin/update`` request."""

    expected: TwinValueIn | None = None
    actual: TwinValueIn | None = None
    optional: bool | None = None
    metadata: TwinMetaIn | None = None


class TwinUpdateIn(msgspec.Struct, frozen=True):
    """``…/twin/update``: ``{"event_id","timestamp","twin":{<prop>: MsgTwin|null}}``."""

    event_id: str | None = None
    timestamp: int | None = None
    twin: dict[str, MsgTwinIn | None] | None = None


class EventIn(msgspec.Struct, frozen=True):
    """``…/twin/get`` and ``…/membership/get``: ``{"event_id"}``."""

    event_id: str | None = None
    timestamp: int | None = None


class StateUpdateIn(msgspec.Struct, frozen=True):
    """``…/state/update``: ``{"event_id","timestamp","state"}`` (``State`` and any casing too)."""

    event_id: str | None = None
    timestamp: int | None = None
    state: str | None = None


_Req = TypeVar("_Req", TwinUpdateIn, EventIn, StateUpdateIn)

_json_decoder = msgspec.json.Decoder()


def decode_request(payload: bytes, kind: type[_Req]) -> _Req:
    """Decodes a request payload into ``kind``.

    Keys are matched case-insensitively for :class:`StateUpdateIn` only (EdgeCore's own
    injection writes ``State``; Go's decoder matches any casing).

    Raises:
        RequestError: 400, for JSON that does not parse or does not fit ``kind``; the
            ``event_id`` is set when the payload has a readable one.
    """
    try:
        raw = _json_decoder.decode(payload)
    except msgspec.DecodeError as err:
        raise RequestError(BAD_REQUEST, f"malformed JSON: {err}") from None
    if not isinstance(raw, dict):
        raise RequestError(BAD_REQUEST, f"expected a JSON object, got {type(raw).__name__}")
    event_id = raw.get("event_id")
    event_id = event_id if isinstance(event_id, str) else ""
    if kind is StateUpdateIn:
        raw = {k.lower() if k.lower() == "state" else k: v for k, v in raw.items()}
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as err:
        raise RequestError(BAD_REQUEST, f"invalid payload: {err}", event_id) from None


# --- replies ---------------------------------------------------------------------------------


def twin_type(property_type: str) -> str:
    """The twin ``metadata.type`` of a property type (``INT`` → ``int``)."""
    return _TWIN_TYPES.get(property_type, "string")


def msg_twin(twin: TwinDict, error: WriteError | None = None) -> dict[str, Any]:
    """A twin as ``MsgTwin`` without versions (what the engine's MQTT encoder writes).

    With ``error``, its ``last_write_error`` too.
    """
    out: dict[str, Any] = {}
    if twin["desired"] is not None:
        side = twin["desired"]
        out["expected"] = {"value": side["value"], "metadata": {"timestamp": side["timestamp"]}}
    if twin["reported"] is not None:
        side = twin["reported"]
        out["actual"] = {"value": side["value"], "metadata": {"timestamp": side["timestamp"]}}
    out["optional"] = TWIN_OPTIONAL
    out["metadata"] = {"type": twin_type(twin["type"])}
    if error is not None:
        out["last_write_error"] = error.to_json()
    return out


def msg_twin_or_null(twin: TwinDict, error: WriteError | None = None) -> dict[str, Any] | None:
    """A twin as ``MsgTwin``, or ``None`` when it has neither side (a deleted twin)."""
    if twin["desired"] is None and twin["reported"] is None:
        return None
    return msg_twin(twin, error)


_NO_ERRORS: Mapping[str, WriteError] = {}


def twin_result(
    event_id: str,
    ts_ms: int,
    twins: Mapping[str, TwinDict],
    keys: Iterable[str],
    errors: Mapping[str, WriteError] = _NO_ERRORS,
) -> dict[str, Any]:
    """``…/twin/update/result``: the twins of ``keys`` after the update (``null`` if deleted)."""
    return {
        "event_id": event_id,
        "timestamp": ts_ms,
        "twin": {key: msg_twin_or_null(twins[key], errors.get(key)) for key in keys},
    }


def twin_write_result(
    event_id: str,
    ts_ms: int,
    twins: Mapping[str, TwinDict],
    errors: Mapping[str, WriteError | None],
) -> dict[str, Any]:
    """``…/twin/update/result`` of desired-write outcomes.

    The twins whose write error changed, each with ``last_write_error``: the error, or
    ``null`` when a success (or a cleared desired value) cleared it.
    """
    twin: dict[str, Any] = {}
    for key, error in errors.items():
        if key in twins:
            body = msg_twin(twins[key])
            body["last_write_error"] = error.to_json() if error is not None else None
            twin[key] = body
    return {"event_id": event_id, "timestamp": ts_ms, "twin": twin}


def twin_get_result(
    event_id: str,
    ts_ms: int,
    twins: Mapping[str, TwinDict],
    errors: Mapping[str, WriteError] = _NO_ERRORS,
) -> dict[str, Any]:
    """``…/twin/get/result``: every twin of the device, in property order."""
    return {
        "event_id": event_id,
        "timestamp": ts_ms,
        "twin": {key: msg_twin(twin, errors.get(key)) for key, twin in twins.items()},
    }


def error_result(event_id: str, ts_ms: int, code: int, reason: str) -> dict[str, Any]:
    """An error answer: ``{"event_id","timestamp","code","reason"}``."""
    return {"event_id": event_id, "timestamp": ts_ms, "code": code, "reason": reason}


def state_result(
    event_id: str, ts_ms: int, name: str, state: str, last_online: str
) -> dict[str, Any]:
    """``…/state/update/result``: ``{"event_id","timestamp","device":{…}}``."""
    return {
        "event_id": event_id,
        "timestamp": ts_ms,
        "device": {"name": name, "state": state, "lastOnlineTime": last_online},
    }


def membership_device(
    device_id: str, name: str, state: str, last_online: str, description: str = ""
) -> dict[str, Any]:
    """One device of a membership list (no twins, as EdgeCore answers)."""
    return {
        "id": device_id,
        "name": name,
        "description": description,
        "state": state,
        "last_online": last_online,
        "attributes": {},
    }


def membership_result(event_id: str, ts_ms: int, devices: list[dict[str, Any]]) -> dict[str, Any]:
    """``…/membership/get/result``: ``{"event_id","timestamp","devices":[…]}``."""
    return {"event_id": event_id, "timestamp": ts_ms, "devices": devices}


def merge_documents(event_id: str, ts_ms: int, payloads: Iterable[bytes]) -> dict[str, Any]:
    """One ``…/twin/update/document`` from several, oldest first, as one update's document.

    For a property in several documents, ``last`` is from the first and ``current`` from the
    last one, so ``last`` is the twin before the whole update.
    """
    merged: dict[str, dict[str, Any]] = {}
    for payload in payloads:
        for key, entry in _json_decoder.decode(payload)["twin"].items():
            if key in merged:
                merged[key]["current"] = entry["current"]
            else:
                merged[key] = {"last": entry["last"], "current": entry["current"]}
    return {"event_id": event_id, "timestamp": ts_ms, "twin": merged}


encode = msgspec.json.Encoder().encode
"""JSON bytes of a payload (keys in insertion order, like Go's struct order)."""
