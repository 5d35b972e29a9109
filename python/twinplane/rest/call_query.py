"""What a call route reads from its request, the same on the edge and in the cloud.

``POST …/methods/{method}`` takes its arguments as a JSON object body and ``wait``, ``ttl`` and
``timeout`` as durations in the query (``5s``, ``1m``). The edge's routes
(:mod:`twinplane.edge.calls_rest`) and the cloud's (:mod:`twinplane.cloud.calls_rest`) read them
here and answer a refusal with their own ``Status`` error, made by ``bad(field, message)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from twinplane.durations import parse_duration
from twinplane.errors import SpecError
from twinplane.rest.echo import clip

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["call_arguments", "query_duration"]

Bad = Callable[[str, str], Exception]
"""Makes the error a route raises for a bad ``field``, with a message for a person."""


async def call_arguments(request: web.Request, bad: Bad) -> dict[str, Any]:
    """The body as a JSON object of argument names to values (``{}`` when empty).

    Raises:
        Exception: ``bad("body", ...)``: not JSON, or not an object.
    """
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        args = msgspec.json.decode(raw)
    except msgspec.DecodeError as err:
        raise bad("body", f"the body is not JSON: {clip(str(err))}") from None
    if not isinstance(args, dict):
        raise bad("body", "the body must be a JSON object of argument names to values")
    return args


def query_duration(request: web.Request, key: str, maximum: float | None, bad: Bad) -> float | None:
    """The duration ``?key=`` in seconds (``None`` when absent or empty), at most ``maximum``.

    Raises:
        Exception: ``bad(key, ...)``: not a duration, or above ``maximum``.
    """
    text = request.query.get(key)
    if not text:
        return None
    try:
        value = parse_duration(text, key)
    except SpecError as err:
        raise bad(key, clip(err.message)) from None
    if maximum is not None and value > maximum:
        raise bad(key, f"{key} is at most {maximum:g}s (got {clip(text)})")
    return value
