"""Path 9: what edge applications publish to ``$hw/events/upload/#``, served by the cloud.

An edge forwards each message on its broker's ``$hw/events/upload/...`` topics up its link; the
cloud stores it in ``cloud.db`` under the node's name (the newest 10,000 are kept) and serves it:

``GET /api/v1/uploads?after=SEQ&node=NODE&wait=SECONDS&limit=N`` answers the uploads after
sequence number ``after``, oldest first (``{"items": [...], "last": SEQ}``). With ``wait`` the
request is held until one arrives or the wait ends (long poll, at most 60 s): a consumer loops on
``after=<last>`` and sees every message once, in order.

``GET /api/v1/uploads/stream?after=SEQ&node=NODE`` is the same as a subscription: a Server-Sent
Events stream of the stored uploads after ``after`` and then of each new one as it arrives, one
``event: upload`` per message with its sequence number as the event ``id``. A client that
reconnects with ``Last-Event-ID`` (what an ``EventSource`` sends) resumes after the last one it
saw, so an outage of the consumer loses nothing the cloud still keeps.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

import msgspec
from aiohttp import web

from twinplane.cloud.state import CloudState, UploadRow

__all__ = ["UploadRoutes"]

MAX_WAIT: Final = 60.0
HEARTBEAT_S: Final = 15.0
"""Seconds of silence on an upload stream before a comment line keeps proxies from closing it."""
STREAM_BATCH: Final = 500
"""Uploads read from the file at a time for a stream."""

_ENCODER = msgspec.json.Encoder()


def _bad_request(message: str) -> web.Response:
    return web.json_response(
        {"kind": "Status", "status": "Failure", "code": 400, "message": message}, status=400
    )


def _item(r: UploadRow) -> dict[str, Any]:
    return {
        "seq": r.seq,
        "node": r.node,
        "id": r.id,
        "topic": r.topic,
        "payload": r.payload,
        "encoding": r.encoding,
        "timestamp": r.timestamp,
    }


class UploadRoutes:
    """The uploads route over the cloud's file."""

    def __init__(self, state: CloudState) -> None:
        self.state = state
        self._arrived = asyncio.Event()
        self._closing = False

    def routes(self, router: web.UrlDispatcher) -> None:
        """Adds ``GET /api/v1/uploads`` and ``GET /api/v1/uploads/stream``."""
        router.add_get("/api/v1/uploads", self.list_uploads)
        router.add_get("/api/v1/uploads/stream", self.stream_uploads)

    def notify(self, rows: list[UploadRow]) -> None:
        """New uploads were stored: wake the waiting requests."""
        self._arrived.set()
        self._arrived = asyncio.Event()

    def close(self) -> None:
        """The cloud stops: every held request and stream ends now."""
        self._closing = True
        self.notify([])

    async def list_uploads(self, request: web.Request) -> web.Response:
        """``GET /api/v1/uploads``."""
        try:
            after = int(request.query.get("after", "0"))
            limit = min(max(int(request.query.get("limit", "1000")), 1), 10_000)
            wait = min(max(float(request.query.get("wait", "0")), 0.0), MAX_WAIT)
        except ValueError:
            return _bad_request("after and limit must be integers, wait a number of seconds")
        node = request.query.get("node") or None
        rows = await self.state.uploads(after=after, node=node, limit=limit)
        if not rows and wait > 0 and not self._closing:
            arrived = self._arrived
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await arrived.wait()
            rows = await self.state.uploads(after=after, node=node, limit=limit)
        items = [_item(r) for r in rows]
        return web.json_response({"items": items, "last": rows[-1].seq if rows else after})

    async def stream_uploads(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/uploads/stream``: stored uploads after ``after``, then each new one."""
        resume = request.headers.get("Last-Event-ID") or request.query.get("after", "0")
        try:
            after = int(resume)
        except ValueError:
            return _bad_request(f"after (or Last-Event-ID) must be an integer, not {resume!r}")
        node = request.query.get("node") or None
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            await response.write(b": subscribed\nretry: 3000\n\n")
            await self._pump(request, response, after, node)
            await response.write_eof()
        return response

    async def _pump(
        self, request: web.Request, response: web.StreamResponse, after: int, node: str | None
    ) -> None:
        while not self._closing:
            arrived = self._arrived  # before the read: an upload stored meanwhile wakes us
            rows = await self.state.uploads(after=after, node=node, limit=STREAM_BATCH)
            for r in rows:
                data = _ENCODER.encode(_item(r))
                await response.write(b"id: %d\nevent: upload\ndata: %s\n\n" % (r.seq, data))
                after = r.seq
            if rows:
                continue
            try:
                async with asyncio.timeout(HEARTBEAT_S):
                    await arrived.wait()
            except TimeoutError:
                transport = request.transport
                if transport is None or transport.is_closing():
                    return
                await response.write(b": heartbeat\n\n")
