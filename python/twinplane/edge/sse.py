"""``GET /api/v1/events``: the event hub as server-sent events.

One subscription per client, made before the response headers go out (so a client that has the
headers sees every later event). Each event is written as::

    id: 7
    event: twin
    data: {"object":"default/thermo-1","time":1732700000000,"device":"default/thermo-1",...}

``id`` counts the events of this stream (a reconnecting client starts a new stream: the hub
keeps no history to resume from). A comment line is written every ``heartbeat`` seconds of
silence so proxies keep the connection open and a vanished client is noticed. A client that
reads too slowly loses its oldest events (the hub's policy) and is told by a ``dropped`` event.
The stream ends when the client goes away or the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Final, get_args

import msgspec
from aiohttp import web

from twinplane.edge.events import Event, EventHub, EventKind

__all__ = ["EVENT_KINDS", "parse_kinds", "stream_events"]

log = logging.getLogger(__name__)

EVENT_KINDS: Final[frozenset[str]] = frozenset(get_args(EventKind))
"""Every event kind; ``dropped`` is always delivered, whatever the filter."""

_SELECTABLE: Final = frozenset(EVENT_KINDS - {"dropped"})
_POLL_S: Final = 1.0  # how often a silent stream checks that its client is still there
_ENCODER: Final = msgspec.json.Encoder()


def parse_kinds(text: str | None) -> frozenset[EventKind] | None:
    """The ``?kinds=twin,state`` filter; ``None`` (everything) when absent or empty.

    Raises:
        ValueError: A kind that does not exist (the message lists those that do).
    """
    if not text:
        return None
    kinds = {k.strip() for k in text.split(",") if k.strip()}
    unknown = sorted(kinds - _SELECTABLE)
    if unknown:
        raise ValueError(
            f"unknown event kind(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_SELECTABLE))}"
        )
    return frozenset(k for k in get_args(EventKind) if k in kinds) or None


def encode_event(seq: int, event: Event) -> bytes:
    """One event in the SSE wire format (``id``, ``event``, ``data`` lines, blank line)."""
    data = _ENCODER.encode({"object": event.id, "time": event.ts_ms, **event.body})
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, event.kind.encode(), data)


async def stream_events(  # noqa: PLR0913 - the stream's collaborators, all keyword-only
    request: web.Request,
    *,
    hub: EventHub,
    kinds: frozenset[EventKind] | None,
    heartbeat: float,
    closing: asyncio.Event,
    queue_size: int = 10_000,
) -> web.StreamResponse:
    """Streams hub events to one client until it disconnects or ``closing`` is set."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
        }
    )
    with hub.subscribe(maxsize=queue_size, kinds=kinds) as sub:
        await response.prepare(request)
        # The first bytes flush the headers: the client knows it is subscribed.
        await response.write(b": subscribed\nretry: 3000\n\n")
        try:
            await _pump(request, response, aiter(sub), heartbeat, closing)
        except ConnectionError:  # the client went away mid-write
            log.debug("SSE client %s disconnected", request.remote)
    with contextlib.suppress(ConnectionError):
        await response.write_eof()
    return response


async def _pump(
    request: web.Request,
    response: web.StreamResponse,
    events: AsyncIterator[Event],
    heartbeat: float,
    closing: asyncio.Event,
) -> None:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[Any] = asyncio.ensure_future(closing.wait())
    nxt: asyncio.Future[Any] = asyncio.ensure_future(anext(events))
    seq = 0
    silent_since = loop.time()
    try:
        while not closing.is_set():
            wait = max(0.0, min(_POLL_S, silent_since + heartbeat - loop.time()))
            done, _ = await asyncio.wait({nxt, stop}, timeout=wait, return_when="FIRST_COMPLETED")
            if stop in done:
                return
            if nxt in done:
                seq += 1
                await response.write(encode_event(seq, nxt.result()))
                nxt = asyncio.ensure_future(anext(events))
                silent_since = loop.time()
            elif _gone(request):
                return
            elif loop.time() - silent_since >= heartbeat:
                await response.write(b": heartbeat\n\n")
                silent_since = loop.time()
    finally:
        for fut in (nxt, stop):
            fut.cancel()
        await asyncio.gather(nxt, stop, return_exceptions=True)


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()
