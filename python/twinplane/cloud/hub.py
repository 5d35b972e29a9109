"""The hub: where edge nodes connect (one WebSocket each) and prove who they are.

An edge opens ``GET /hub/v1/connect`` with its node name (``X-Twinplane-Node``) and its token
(``Authorization: Bearer``); a missing or wrong pair is refused with 401 before the upgrade. The
first frame must be :class:`~twinplane.cloud.wire.Hello` for the same node, within
``hello_timeout``. After that every frame is decoded as an edge message; a frame that does not
decode closes the link with code 4400 and the field at fault, and changes nothing. What a node
may do is bounded by its name, never by what its messages claim: it reports only the devices
assigned to it (others are refused, counted and logged), its uploads are stored under its name,
and it receives only its own devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Final

import msgspec
from aiohttp import WSMsgType, web

from twinplane.cloud import wire
from twinplane.cloud.controller import DeviceController, Session
from twinplane.cloud.state import CloudState, UploadRow
from twinplane.cloud.tokens import NODE_NAME, TokenBook

__all__ = ["Hub"]

log = logging.getLogger(__name__)

CLOSE_BAD_MESSAGE: Final = 4400
CLOSE_REPLACED: Final = 4409

UploadListener = Callable[[list[UploadRow]], None]


class Hub:
    """Accepts edge links and hands their messages to the device controller.

    Args:
        controller: The device controller.
        tokens: The node tokens.
        state: Where uploads are stored.
        max_frame: The largest frame accepted (bytes).
        hello_timeout: Seconds an edge has to say hello.
    """

    def __init__(
        self,
        controller: DeviceController,
        tokens: TokenBook,
        state: CloudState,
        *,
        max_frame: int = 16 * 1024 * 1024,
        hello_timeout: float = 10.0,
    ) -> None:
        self.controller = controller
        self.tokens = tokens
        self.state = state
        self.max_frame = max_frame
        self.hello_timeout = hello_timeout
        self.refused = 0
        self.bad_frames = 0
        self._links: set[web.WebSocketResponse] = set()
        self._upload_listeners: list[UploadListener] = []

    def routes(self, router: web.UrlDispatcher) -> None:
        """Adds the hub's route."""
        router.add_get(wire.CONNECT_PATH, self.connect)

    def add_upload_listener(self, listener: UploadListener) -> None:
        """Calls ``listener(rows)`` with every batch of new uploads."""
        self._upload_listeners.append(listener)

    def nodes(self) -> list[str]:
        """The nodes connected now."""
        return sorted(self.controller.sessions)

    async def close(self) -> None:
        """Closes every link."""
        for ws in list(self._links):
            await ws.close(code=1001, message=b"cloud stopping")

    def _authenticate(self, request: web.Request) -> str:
        node = request.headers.get(wire.NODE_HEADER, "")
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if not NODE_NAME.fullmatch(node) or scheme.lower() != "bearer" or not token:
            self.refused += 1
            raise _unauthorized(
                f"a node must send its name ({wire.NODE_HEADER}) and its token "
                "(Authorization: Bearer ...): twinplane cloud token create NODE"
            )
        if not self.tokens.verify(node, token.strip()):
            self.refused += 1
            log.warning("refused a link claiming node %s: wrong token", node)
            raise _unauthorized(f"the token is not node {node}'s")
        return node

    async def connect(self, request: web.Request) -> web.StreamResponse:
        """``GET /hub/v1/connect``: one edge's link."""
        node = self._authenticate(request)
        ws = web.WebSocketResponse(heartbeat=15.0, max_msg_size=self.max_frame)
        await ws.prepare(request)
        self._links.add(ws)
        lock = asyncio.Lock()

        async def send(text: str) -> None:
            async with lock:
                await ws.send_str(text)

        session: Session | None = None
        try:
            hello = await self._hello(ws, node)
            if hello is None:
                return ws
            session = await self.controller.attach(node, send, hello)
            log.info("node %s connected", node, extra={"node": node})
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    if frame.type == WSMsgType.BINARY:
                        await self._bad(ws, node, "binary frames are not part of the protocol")
                    continue
                try:
                    message = wire.decode_edge(frame.data)
                except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                    await self._bad(ws, node, str(exc))
                    break
                await self._dispatch(session, message)
        finally:
            self._links.discard(ws)
            if session is not None:
                await self.controller.detach(session)
                log.info("node %s disconnected", node, extra={"node": node})
        return ws

    async def _hello(self, ws: web.WebSocketResponse, node: str) -> wire.Hello | None:
        try:
            frame = await ws.receive(timeout=self.hello_timeout)
        except TimeoutError:
            await ws.close(code=CLOSE_BAD_MESSAGE, message=b"no hello")
            return None
        if frame.type != WSMsgType.TEXT:
            await ws.close(code=CLOSE_BAD_MESSAGE, message=b"the first frame must be hello")
            return None
        try:
            message = wire.decode_edge(frame.data)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            await self._bad(ws, node, str(exc))
            return None
        problem = _hello_problem(message, node)
        if problem:
            await self._bad(ws, node, problem)
            return None
        assert isinstance(message, wire.Hello)  # noqa: S101 - _hello_problem checked it
        return message

    async def _bad(self, ws: web.WebSocketResponse, node: str, why: str) -> None:
        self.bad_frames += 1
        log.warning("closing node %s's link: %s", node, why)
        await ws.close(code=CLOSE_BAD_MESSAGE, message=why.encode()[:120])

    async def _dispatch(self, session: Session, message: wire.EdgeMessage) -> None:
        if isinstance(message, wire.Report):
            await self.controller.on_report(session, message)
        elif isinstance(message, wire.Ack):
            self.controller.on_ack(session, message)
        elif isinstance(message, wire.Upload):
            await self._upload(session, message)
        elif isinstance(message, wire.CallUpdate):
            await self.controller.calls.on_update(session, message)
        elif isinstance(message, wire.Events):
            await self.controller.events.on_events(session, message)
        else:  # a second hello: the session is already synced from the first
            log.info("node %s said hello twice; ignored", session.node)

    async def _upload(self, session: Session, message: wire.Upload) -> None:
        row = (
            session.node,
            message.id,
            message.topic,
            message.payload,
            message.encoding,
            message.timestamp,
        )
        new = await self.state.add_uploads([row])
        await session.send(wire.UploadAck(ids=[message.id]))
        if new:
            rows = [UploadRow(seq, *row) for seq in new]
            for listener in self._upload_listeners:
                with contextlib.suppress(Exception):
                    listener(rows)


def _hello_problem(message: wire.EdgeMessage, node: str) -> str:
    """What is wrong with a first message, or ``""``."""
    if not isinstance(message, wire.Hello):
        return f"the first message must be hello, not {type(message).__name__.lower()}"
    if message.node != node:
        return f"hello.node {message.node!r} is not the token's {node!r}"
    if message.protocol != wire.PROTOCOL:
        return f"hello.protocol {message.protocol}: this cloud speaks {wire.PROTOCOL}"
    return ""


def _unauthorized(message: str) -> web.HTTPUnauthorized:
    body = msgspec.json.encode(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "reason": "Unauthorized",
            "code": 401,
        }
    )
    return web.HTTPUnauthorized(text=body.decode(), content_type="application/json")
