"""The event log's REST routes and the SSE stream's filters.

- ``GET /api/v1/namespaces/{ns}/events``: the device events of one namespace;
- ``GET /api/v1/events/log``: every event of the node (mapper events included).

Both take ``device``, ``type`` and ``severity`` (comma-separated lists), ``reason``, ``since``
(ms since the epoch, or an RFC 3339 time, or a duration back from now like ``10m``), ``limit``
(1 to 1000, default 100) and ``continue`` (the token of the previous page). Pages are newest
first, by sequence number; ``afterSeq=N`` instead reads the log forward (oldest first, every
event whose ``seq`` is above ``N``: how a forwarder resumes). The answer is an ``EventList``::

    {
        "kind": "EventList",
        "apiVersion": "v1",
        "metadata": {"continue": "...", "lastSeq": N},
        "items": [
            {
                "id",
                "seq",
                "type",
                "reason",
                "severity",
                "namespace",
                "device",
                "message",
                "count",
                "first_ts_ms",
                "last_ts_ms",
                "body",
            },
            ...,
        ],
    }

A bad parameter is a 400 ``Status`` naming it (``details.causes[0].field``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import msgspec
from aiohttp import web

from twinplane.edge.device_events import EdgeEvents
from twinplane.edge.events import EVENT_TYPES, SEVERITIES, Event
from twinplane.edge.resources import ApiError
from twinplane.edge.store.connection import now_ms
from twinplane.edge.store.device_events import EventQuery

__all__ = [
    "MAX_LIMIT",
    "EventLogRoutes",
    "EventParamError",
    "StreamFilter",
    "parse_event_query",
    "parse_stream_filter",
]

MAX_LIMIT: Final = 1000
"""Most events one page holds."""

DEFAULT_LIMIT: Final = 100

_DURATION: Final = re.compile(r"(\d+)(ms|s|m|h|d)")
_ENCODER: Final = msgspec.json.Encoder()
_UNIT_MS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


class EventParamError(ValueError):
    """A query parameter is not valid; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _choices(query: Mapping[str, str], name: str, allowed: frozenset[str]) -> frozenset[str] | None:
    text = query.get(name)
    if not text:
        return None
    values = frozenset(v.strip() for v in text.split(",") if v.strip())
    unknown = sorted(values - allowed)
    if unknown:
        raise EventParamError(
            name,
            f"{name}: unknown value(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}",
        )
    return values or None


def _int(query: Mapping[str, str], name: str, lo: int, hi: int | None = None) -> int | None:
    text = query.get(name)
    if text is None:
        return None
    if not text.isdigit() or int(text) < lo or (hi is not None and int(text) > hi):
        bound = f"from {lo} to {hi}" if hi is not None else f"{lo} or more"
        raise EventParamError(name, f"{name}: {text!r} is not an integer {bound}")
    return int(text)


def parse_since(text: str, now: int | None = None) -> int:
    """``since``: ms since the epoch, an RFC 3339 time, or a duration back from now (``10m``).

    Raises:
        EventParamError: None of those.
    """
    if text.isdigit():
        return int(text)
    whole = _DURATION.fullmatch(text)
    if whole:
        return (now_ms() if now is None else now) - int(whole[1]) * _UNIT_MS[whole[2]]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise EventParamError(
            "since",
            f"since: {text!r} is not ms since the epoch, an RFC 3339 time with a zone, or a"
            " duration such as 30s, 10m, 2h, 1d",
        )
    return int(moment.timestamp() * 1000)


def parse_event_query(query: Mapping[str, str], namespace: str | None) -> EventQuery:
    """The log query of a request's parameters.

    Raises:
        EventParamError: A parameter is not valid.
    """
    device = query.get("device") or None
    if device is not None and "/" in device:
        ns, _, device = device.partition("/")
        if namespace is not None and ns != namespace:
            raise EventParamError("device", f"device: {ns}/{device} is not in {namespace}")
        namespace = ns
    before = _int(query, "continue", 1)
    after = _int(query, "afterSeq", 0)
    if before is not None and after is not None:
        raise EventParamError("afterSeq", "afterSeq: not with continue (pages go one way)")
    since = query.get("since")
    return EventQuery(
        namespace=namespace,
        device=device,
        type=_choices(query, "type", EVENT_TYPES),
        reason=query.get("reason") or None,
        severity=_choices(query, "severity", SEVERITIES),
        since_ms=parse_since(since) if since else None,
        before_seq=before,
        after_seq=after,
        limit=_int(query, "limit", 1, MAX_LIMIT) or DEFAULT_LIMIT,
    )


@dataclass(frozen=True, slots=True)
class StreamFilter:
    """The SSE stream's ``device``, ``namespace``, ``type`` and ``severity`` filters.

    ``device`` and ``namespace`` select every kind by its object (``<ns>/<name>``); ``type`` and
    ``severity`` select device events (``event``) only, so given either, other kinds are left out.
    """

    object_id: str | None = None
    namespace: str | None = None
    types: frozenset[str] | None = None
    severities: frozenset[str] | None = None

    def __call__(self, event: Event) -> bool:
        """Whether ``event`` passes."""
        if self.object_id is not None and event.id != self.object_id:
            return False
        if self.namespace is not None and not event.id.startswith(self.namespace + "/"):
            return False
        if self.types is None and self.severities is None:
            return True
        if event.kind != "event":
            return False
        body = event.body
        if self.types is not None and body.get("type") not in self.types:
            return False
        return self.severities is None or body.get("severity") in self.severities


def parse_stream_filter(query: Mapping[str, str]) -> Callable[[Event], bool] | None:
    """The stream's filter, or ``None`` when the request has none.

    Raises:
        EventParamError: A parameter is not valid.
    """
    namespace = query.get("namespace") or None
    device = query.get("device") or None
    object_id = None
    if device is not None:
        if "/" not in device:
            device = f"{namespace or 'default'}/{device}"
        elif namespace is not None and not device.startswith(namespace + "/"):
            raise EventParamError("device", f"device: {device} is not in {namespace}")
        object_id = device
    found = StreamFilter(
        object_id,
        namespace,
        _choices(query, "type", EVENT_TYPES),
        _choices(query, "severity", SEVERITIES),
    )
    return None if found == StreamFilter() else found


def param_error(err: EventParamError) -> ApiError:
    """The 400 answer of a bad parameter."""
    return ApiError(400, str(err), details={"causes": [{"field": err.field}]})


class EventLogRoutes:
    """The event log's routes over one :class:`~twinplane.edge.device_events.EdgeEvents`."""

    def __init__(self, events: EdgeEvents) -> None:
        self.events = events

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Adds ``GET /api/v1/namespaces/{ns}/events`` and ``GET /api/v1/events/log``."""
        router.add_get("/api/v1/namespaces/{ns}/events", self.list_namespace)
        router.add_get("/api/v1/events/log", self.list_all)

    async def list_namespace(self, request: web.Request) -> web.Response:
        """``GET /api/v1/namespaces/{ns}/events``."""
        return await self._list(request, request.match_info["ns"])

    async def list_all(self, request: web.Request) -> web.Response:
        """``GET /api/v1/events/log``."""
        return await self._list(request, request.query.get("namespace") or None)

    async def _list(self, request: web.Request, namespace: str | None) -> web.Response:
        try:
            query = parse_event_query(request.query, namespace)
        except EventParamError as err:
            raise param_error(err) from err
        items = await self.events.query(query)
        metadata: dict[str, object] = {"lastSeq": self.events.last_seq}
        if query.after_seq is None and len(items) == query.limit and items[-1].seq > 1:
            metadata["continue"] = str(items[-1].seq)
        body = {
            "kind": "EventList",
            "apiVersion": "v1",
            "metadata": metadata,
            "items": [e.to_json() for e in items],
        }
        return web.Response(body=_ENCODER.encode(body), content_type="application/json")
