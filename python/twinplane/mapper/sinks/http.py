"""HTTP push (``pushMethod.http``): one JSON POST per batch, or KubeEdge's form POST per sample.

``json`` (default): ``POST url`` with ``Content-Type: application/json`` and the body
``{"samples": [{"namespace", "device", "property", "type", "value", "text", "timestamp"}, ...]}``
(``value`` typed, ``text`` the plain text, ``timestamp`` ms since the epoch).

``form`` (mapper-framework's format, spec §7.7): one ``POST url`` per sample with
``Content-Type: application/x-www-form-urlencoded`` and the body
``<propertyName>=<value>&time=<YYYY-MM-DD HH:MM:SS>`` (local time, not URL-encoded).

A 2xx answer is success; 408, 429 and 5xx are retried (``Retry-After`` honoured); any other
status is a permanent refusal. A ``form`` batch stops at its first failing sample and the retry
resends the batch from that sample on.
"""

from __future__ import annotations

import time
from http import HTTPStatus
from typing import Final

import aiohttp
import msgspec
import pyarrow as pa

from twinplane.mapper.sinks.base import PermanentSinkError, RetryLaterError
from twinplane.mapper.sinks.config import HttpSinkConfig
from twinplane.mapper.sinks.rows import samples
from twinplane.redact import redact_url

__all__ = ["HttpSink", "form_body", "json_body"]

FORM: Final = "application/x-www-form-urlencoded"
_RETRY: Final = frozenset({HTTPStatus.REQUEST_TIMEOUT, HTTPStatus.TOO_MANY_REQUESTS})


def json_body(batch: pa.RecordBatch) -> bytes:
    """The batched JSON document (twinplane's format) of ``batch``."""
    return msgspec.json.encode(
        {
            "samples": [
                {
                    "namespace": s.namespace,
                    "device": s.name,
                    "property": s.property,
                    "type": s.type,
                    "value": s.value,
                    "text": s.text,
                    "timestamp": s.timestamp_ms,
                }
                for s in samples(batch)
            ]
        }
    )


def form_body(prop: str, text: str, timestamp_ms: int) -> bytes:
    """mapper-framework's form body of one sample (local time, second resolution)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp_ms / 1000))
    return f"{prop}={text}&time={stamp}".encode()


def check_status(status: int, retry_after: str | None, what: str) -> None:
    """Raises the runner's error for a non-2xx answer (``what`` names the request)."""
    if 200 <= status < 300:  # noqa: PLR2004 - the success class
        return
    message = f"{what} answered {status}"
    if status in _RETRY or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        try:
            after = float(retry_after or 0)
        except ValueError:
            after = 0.0
        raise RetryLaterError(message, after)
    raise PermanentSinkError(message)


class HttpSink:
    """Posts batches to one URL (see the module docstring)."""

    def __init__(self, config: HttpSinkConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None
        self._resume: tuple[pa.RecordBatch | None, int] = (None, 0)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def write(self, batch: pa.RecordBatch) -> None:
        """Posts the batch (``json``) or each sample (``form``)."""
        if self.config.format == "json":
            await self._post(json_body(batch), "application/json")
            return
        done = self._resume[1] if self._resume[0] is batch else 0
        for s in samples(batch)[done:]:
            self._resume = (batch, done)
            await self._post(form_body(s.property, s.text, s.timestamp_ms), FORM)
            done += 1
        self._resume = (None, 0)

    async def _post(self, body: bytes, content_type: str) -> None:
        url = self.config.url
        async with self._client().post(url, data=body, headers={"Content-Type": content_type}) as r:
            await r.read()
            check_status(r.status, r.headers.get("Retry-After"), f"POST {redact_url(url)}")

    async def close(self) -> None:
        """Closes the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
