"""InfluxDB v2 (``dbMethod.influxdb2``): one line-protocol write per batch.

``POST {url}/api/v2/write?org=<org>&bucket=<bucket>&precision=ms`` with
``Authorization: Token $TOKEN`` (the environment variable, as in mapper-framework) and one line
per sample::

    <measurement>[,<tag>=<value>...] <fieldKey>=<value> <timestamp ms>

Measurement, tags and field key come from ``influxdb2DataConfig`` (an empty measurement is the
device name, an empty field key the property name). Unlike mapper-framework, which writes the
value as a string at the time of the write, the field is typed (``INT`` as ``7i``, ``FLOAT`` as
a float, ``BOOLEAN`` as ``true``/``false``, strings and bytes as quoted text) and stamped with
the sample's time. A non-finite float cannot be written (line protocol has no NaN): that sample
is skipped, with a warning once per property.

204 (any 2xx) is written; 429 and 503 wait for ``Retry-After`` (through the runner's retry), 408
and other 5xx are retried; other statuses (401 bad token, 400 malformed, 404 no such bucket)
are permanent. InfluxDB's error message is kept in the error.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Final

import aiohttp
import pyarrow as pa

from twinplane.mapper.sinks.config import InfluxSinkConfig
from twinplane.mapper.sinks.http import check_status
from twinplane.mapper.sinks.rows import Sample, samples
from twinplane.redact import redact_url

__all__ = ["InfluxSink", "escape_key", "escape_measurement", "field_value", "line"]

log = logging.getLogger(__name__)

_MEASUREMENT: Final = str.maketrans({",": r"\,", " ": r"\ "})
_KEY: Final = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STRING: Final = str.maketrans({'"': r"\"", "\\": "\\\\"})


def escape_measurement(text: str) -> str:
    """A measurement name with its commas and spaces escaped."""
    return text.translate(_MEASUREMENT)


def escape_key(text: str) -> str:
    """A tag key, tag value or field key with its commas, equals signs and spaces escaped."""
    return text.translate(_KEY)


def field_value(s: Sample) -> str | None:
    """The line-protocol field value of a sample; ``None`` for a non-finite float."""
    value = s.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    return '"' + s.text.translate(_STRING) + '"'


def line(s: Sample, config: InfluxSinkConfig) -> str | None:
    """One sample's line (no newline); ``None`` when its value cannot be written."""
    value = field_value(s)
    if value is None:
        return None
    head = escape_measurement(config.measurement or s.name)
    tags = "".join(f",{escape_key(k)}={escape_key(v)}" for k, v in config.tags)
    field = escape_key(config.field_key or s.property)
    return f"{head}{tags} {field}={value} {s.timestamp_ms}"


class InfluxSink:
    """Writes batches to one InfluxDB v2 bucket (see the module docstring)."""

    def __init__(self, config: InfluxSinkConfig) -> None:
        self.config = config
        self.endpoint = f"{config.url.rstrip('/')}/api/v2/write"
        self._params = {"org": config.org, "bucket": config.bucket, "precision": "ms"}
        token = os.environ.get("TOKEN")
        self._headers = {"Content-Type": "text/plain; charset=utf-8"}
        if token:
            self._headers["Authorization"] = f"Token {token}"
        self._session: aiohttp.ClientSession | None = None
        self._skipped: set[str] = set()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self._session

    def body(self, batch: pa.RecordBatch) -> bytes:
        """The line-protocol body of a batch (skipped samples logged once per property)."""
        lines = []
        for s in samples(batch):
            text = line(s, self.config)
            if text is None:
                key = f"{s.namespace}/{s.name}/{s.property}"
                if key not in self._skipped:
                    self._skipped.add(key)
                    log.warning("influxdb2: %s: non-finite value %s not written", key, s.text)
                continue
            lines.append(text)
        return "\n".join(lines).encode()

    async def write(self, batch: pa.RecordBatch) -> None:
        """Posts the batch's lines in one write."""
        body = self.body(batch)
        if not body:
            return
        async with self._client().post(
            self.endpoint, params=self._params, data=body, headers=self._headers
        ) as r:
            answer = await r.read()
            if r.status >= 300:  # noqa: PLR2004 - past the success class
                detail = answer[:200].decode(errors="replace").strip()
                what = f"POST {redact_url(self.endpoint)} (bucket {self.config.bucket}: {detail})"
                check_status(r.status, r.headers.get("Retry-After"), what)

    async def close(self) -> None:
        """Closes the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
