r"""How much of a request an error answer repeats, and error bodies that always encode.

An error message names what was wrong, often by quoting it: a property name, a value, a path.
A request may carry 16 MiB in one of those, so a quote is clipped (:func:`clip`): short text
stays as it is; long text keeps its head and tail around ``… (N bytes) …`` (:func:`quote` also
puts it in quotes, as ``repr`` does). Text decoded from a request may also hold lone
surrogates (``"\ud800"`` in JSON, undecodable bytes in a header), which no UTF-8 encoder
takes; they are written as escapes.

:func:`bounded` applies both to every string of a whole error body, at a wider limit, so an
answer built from input that no message clipped is still small and still encodes.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["BODY_TEXT_LIMIT", "ECHO_LIMIT", "bounded", "clip", "quote", "utf8_size"]

ECHO_LIMIT: Final = 200
"""Characters of an input a message quotes before it is clipped."""

BODY_TEXT_LIMIT: Final = 2000
"""Characters of any one string of an error body (a whole message) before it is clipped."""


def utf8_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (a lone surrogate counted as the 3 bytes it would take)."""
    return len(text.encode("utf-8", "surrogatepass"))


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    r"""``text`` fit to put in a message: at most about ``limit`` characters, always encodable.

    Longer text keeps its first three quarters of ``limit`` and its last quarter around
    ``… (N bytes) …``, ``N`` the size of the whole text; lone surrogates become ``\udXXX``.
    """
    return _encodable(_cut(text, limit))


def quote(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` clipped as :func:`clip` does, then quoted as ``repr`` (escapes and all)."""
    return repr(_cut(text, limit))  # repr escapes control characters and lone surrogates


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head, tail = limit * 3 // 4, limit // 4
    return f"{text[:head]} … ({utf8_size(text)} bytes) … {text[len(text) - tail :]}"


def bounded(body: Any, limit: int = BODY_TEXT_LIMIT) -> Any:  # noqa: ANN401 - JSON-able data
    """A JSON-able error body with every string (keys too) passed through :func:`clip`."""
    if isinstance(body, str):
        return clip(body, limit)
    if isinstance(body, dict):
        return {clip(str(k), limit): bounded(v, limit) for k, v in body.items()}
    if isinstance(body, list | tuple):
        return [bounded(v, limit) for v in body]
    return body


def _encodable(text: str) -> str:
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
