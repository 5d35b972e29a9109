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

:class:`EventStreams` keeps a server's open streams: at most ``limit`` at once (a client beyond
it is refused before it subscribes), and all of them ended when the server stops. A client that
stopped reading holds its handler in a write that never completes; it is given ``grace`` seconds
to end like the others, then its connection is aborted, so a stop never waits on a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Final, get_args

import msgspec
from aiohttp import web

from twinplane.edge.events import Event, EventHub, EventKind

__all__ = ["EVENT_KINDS", "MAX_EVENT_STREAMS", "EventStreams", "parse_kinds"]

log = logging.getLogger(__name__)

EVENT_KINDS: Final[frozenset[str]] = frozenset(get_args(EventKind))
"""Every event kind; ``dropped`` is always delivered, whatever the filter."""

MAX_EVENT_STREAMS: Final = 64
"""Event streams a server keeps open at once unless told otherwise (``--max-event-streams``)."""

CLOSE_GRACE_S: Final = 0.5
"""Seconds the open streams get to end on their own when the server stops."""

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


@dataclass(eq=False, slots=True)
class _OpenStream:
    request: web.Request
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class EventStreams:
    """The open event streams of one server: a bounded number, all ended when it stops.

    Args:
        hub: Where the events come from.
        limit: Most streams open at once.
        queue_size: Events queued per stream before its oldest are dropped.
        grace: Seconds the streams get to end when :meth:`close` is called.
    """

    def __init__(
        self,
        hub: EventHub,
        *,
        limit: int = MAX_EVENT_STREAMS,
        queue_size: int = 10_000,
        grace: float = CLOSE_GRACE_S,
    ) -> None:
        self.hub = hub
        self.limit = limit
        self.queue_size = queue_size
        self.grace = grace
        self._closing = asyncio.Event()
        self._open: set[_OpenStream] = set()

    def __len__(self) -> int:
        return len(self._open)

    @property
    def full(self) -> bool:
        """Whether :data:`limit` streams are open (a new one would be refused)."""
        return len(self._open) >= self.limit

    def open(self) -> None:
        """Takes streams again after :meth:`close`."""
        self._closing.clear()

    async def serve(
        self,
        request: web.Request,
        *,
        kinds: frozenset[EventKind] | None,
        heartbeat: float,
        accept: Callable[[Event], bool] | None = None,
    ) -> web.StreamResponse:
        """Streams hub events to one client until it disconnects or :meth:`close` is called.

        The caller checks :attr:`full` first; this counts the stream from its first line.
        ``accept`` filters the events (the request's ``device``, ``type``, ... parameters).
        """
        stream = _OpenStream(request)
        self._open.add(stream)
        try:
            return await self._stream(request, kinds, accept, heartbeat)
        finally:
            self._open.discard(stream)
            stream.ended.set()

    async def close(self) -> None:
        """Ends every stream: each gets :attr:`grace` seconds, then its connection is aborted."""
        self._closing.set()
        if self._open:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.grace):
                    await asyncio.gather(*(stream.ended.wait() for stream in self._open))
        for stream in list(self._open):  # clients that stopped reading
            transport = stream.request.transport
            if transport is not None:
                log.debug("SSE client %s does not read; connection aborted", stream.request.remote)
                transport.abort()

    async def _stream(
        self,
        request: web.Request,
        kinds: frozenset[EventKind] | None,
        accept: Callable[[Event], bool] | None,
        heartbeat: float,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
            }
        )
        with self.hub.subscribe(maxsize=self.queue_size, kinds=kinds, accept=accept) as sub:
            try:
                await response.prepare(request)
                # The first bytes flush the headers: the client knows it is subscribed.
                await response.write(b": subscribed\nretry: 3000\n\n")
                await _pump(request, response, aiter(sub), heartbeat, self._closing)
            except ConnectionError:  # the client went away mid-write, or was aborted
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
