"""Path 9: what edge applications publish to ``$hw/events/upload/#``, served by the cloud.

An edge forwards each message on its broker's ``$hw/events/upload/...`` topics up its link; the
cloud stores it in ``cloud.db`` under the node's name (the newest 10,000 are kept) and serves it:

``GET /api/v1/uploads?after=SEQ&node=NODE&wait=SECONDS&limit=N`` answers the uploads after
sequence number ``after``, oldest first (``{"items": [...], "last": SEQ}``). With ``wait`` the
request is held until one arrives or the wait ends (long poll, at most 60 s): a consumer loops on
``after=<last>`` and sees every message once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

from aiohttp import web

from twinplane.cloud.state import CloudState, UploadRow

__all__ = ["UploadRoutes"]

MAX_WAIT: Final = 60.0


class UploadRoutes:
    """The uploads route over the cloud's file."""

    def __init__(self, state: CloudState) -> None:
        self.state = state
        self._arrived = asyncio.Event()

    def routes(self, router: web.UrlDispatcher) -> None:
        """Adds ``GET /api/v1/uploads``."""
        router.add_get("/api/v1/uploads", self.list_uploads)

    def notify(self, rows: list[UploadRow]) -> None:
        """New uploads were stored: wake the waiting requests."""
        self._arrived.set()
        self._arrived = asyncio.Event()

    async def list_uploads(self, request: web.Request) -> web.Response:
        """``GET /api/v1/uploads``."""
        try:
            after = int(request.query.get("after", "0"))
            limit = min(max(int(request.query.get("limit", "1000")), 1), 10_000)
            wait = min(max(float(request.query.get("wait", "0")), 0.0), MAX_WAIT)
        except ValueError:
            return web.json_response(
                {
                    "kind": "Status",
                    "status": "Failure",
                    "code": 400,
                    "message": "after and limit must be integers, wait a number of seconds",
                },
                status=400,
            )
        node = request.query.get("node") or None
        rows = await self.state.uploads(after=after, node=node, limit=limit)
        if not rows and wait > 0:
            arrived = self._arrived
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await arrived.wait()
            rows = await self.state.uploads(after=after, node=node, limit=limit)
        items = [
            {
                "seq": r.seq,
                "node": r.node,
                "id": r.id,
                "topic": r.topic,
                "payload": r.payload,
                "encoding": r.encoding,
                "timestamp": r.timestamp,
            }
            for r in rows
        ]
        return web.json_response({"items": items, "last": rows[-1].seq if rows else after})
