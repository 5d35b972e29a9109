"""HTTP/1.1 requests written byte for byte, for the tests of what a REST server lets through.

Importable as ``raw_http`` from every test module, like ``waits`` (see ``conftest.py``). A
client library adds headers of its own (``Content-Type`` for a body, ``Accept-Encoding``); these
requests carry exactly the headers a test gives, as curl or a browser would send them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

CURL: Mapping[str, str] = {"User-Agent": "curl/8.5.0", "Accept": "*/*"}
"""What curl sends besides ``Host``."""


@dataclass(frozen=True)
class Answer:
    """A response: its status, headers (names lower-cased) and raw body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:  # noqa: ANN401 - decoded JSON
        """The body as JSON."""
        return json.loads(self.body)


def host_of(url: str) -> str:
    """The ``Host`` header of requests to a base URL (``127.0.0.1:7780``)."""
    return urlsplit(url).netloc


async def request(  # noqa: PLR0913 - the parts of a request
    url: str,
    method: str,
    path: str,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    *,
    host: str | None = None,
) -> Answer:
    """Sends one request to the server at ``url`` and reads the whole answer.

    Args:
        url: The server's base URL (where to connect).
        method: The method.
        path: The request target, written as given (bytes outside ASCII as UTF-8).
        headers: The headers besides ``Host`` (and ``Content-Length`` when there is a body).
        body: The body.
        host: The ``Host`` header (default: the URL's), sent as given (``""`` too).
    """
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    lines = [f"{method} {path} HTTP/1.1"]
    lines.append(f"Host: {host_of(url) if host is None else host}")
    lines.extend(f"{k}: {v}" for k, v in (headers or {}).items())
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(head + body)
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    return _parse(raw)


def _parse(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _unchunk(body)
    return Answer(int(status_line.split()[1]), headers, body)


def _unchunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_text, _, data = data.partition(b"\r\n")
        size = int(size_text.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)
