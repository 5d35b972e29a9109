"""A small client of the device manager's REST API, on the standard library's ``urllib``.

Every failure becomes a :class:`CliError` with a one-line message a person can act on: the
server is not running, an object is not found, a manifest is invalid (with every cause).

Every request says it comes from the CLI (``X-Twinplane-Client``), the header the server's
cross-site request forgery protection takes instead of a JSON or YAML ``Content-Type``
(:mod:`twinplane.rest.guard`).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, BinaryIO, Final

from twinplane import __version__
from twinplane.rest.guard import CLIENT_HEADER

__all__ = ["DEFAULT_SERVER", "ApiClient", "CliError", "default_server"]

DEFAULT_SERVER: Final = "http://127.0.0.1:7780"

CLIENT: Final = f"twinplane-cli/{__version__}"
"""What the CLI sends as ``X-Twinplane-Client``."""


def default_server() -> str:
    """``$TWINPLANE_SERVER``, else :data:`DEFAULT_SERVER`."""
    return os.environ.get("TWINPLANE_SERVER") or DEFAULT_SERVER


class CliError(Exception):
    """A command failed; ``message`` is printed as ``error: <message>``.

    Attributes:
        status: The HTTP status, 0 when no answer came.
        causes: The ``details.causes`` of a Kubernetes ``Status`` answer.
        body: The decoded answer, if it was JSON.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        causes: list[dict[str, Any]] | None = None,
        body: Any = None,  # noqa: ANN401 - decoded JSON
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.causes = causes or []
        self.body = body


class ApiClient:
    """Calls one device manager's REST API.

    Args:
        server: The base URL (``http://127.0.0.1:7780``).
        timeout: Seconds to wait for an answer.

    Raises:
        CliError: ``server`` is not an http(s) URL.
    """

    def __init__(self, server: str, *, timeout: float = 30.0) -> None:
        parsed = urllib.parse.urlsplit(server)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise CliError(f"--server {server!r} is not an http:// or https:// URL")
        self.server = server.rstrip("/")
        self.timeout = timeout

    def get(self, path: str, query: Mapping[str, str] | None = None) -> Any:  # noqa: ANN401
        """``GET`` a path; the decoded JSON answer."""
        return self.request("GET", path, query=query)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        query: Mapping[str, str] | None = None,
    ) -> Any:  # noqa: ANN401 - decoded JSON
        """Sends one request; the decoded JSON answer.

        Raises:
            CliError: No answer (connection refused, timeout) or an error status.
        """
        url = self.server + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"Accept": "application/json", CLIENT_HEADER: CLIENT}
        if content_type is not None:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310 - scheme checked
        return self._send(req)

    def upload(
        self,
        method: str,
        path: str,
        body: BinaryIO,
        size: int,
        *,
        query: Sequence[tuple[str, str]] = (),
    ) -> Any:  # noqa: ANN401 - decoded JSON
        """Sends ``size`` bytes read from ``body`` (streamed, not read whole); the JSON answer.

        Raises:
            CliError: No answer (connection refused, timeout) or an error status.
        """
        url = self.server + path
        if query:
            url += "?" + urllib.parse.urlencode(list(query))
        headers = {
            "Accept": "application/json",
            CLIENT_HEADER: CLIENT,
            "Content-Type": "application/octet-stream",
            "Content-Length": str(size),
        }
        req = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310 - scheme checked
        return self._send(req)

    def _send(self, req: urllib.request.Request) -> Any:  # noqa: ANN401 - decoded JSON
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - checked
                return _decode(resp.read())
        except urllib.error.HTTPError as err:
            raise _status_error(err) from None
        except urllib.error.URLError as err:
            raise self._unreachable(err.reason) from None
        except (TimeoutError, ConnectionError) as err:
            raise self._unreachable(err) from None

    def stream(
        self, path: str, query: Mapping[str, str] | None = None
    ) -> Iterator[tuple[str, Any]]:
        """``GET`` a server-sent event stream; yields ``(event, decoded data)`` until it ends.

        The server's heartbeats (every 15 s) keep the read within :attr:`timeout`.

        Raises:
            CliError: No answer, or an error status.
        """
        url = self.server + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"Accept": "text/event-stream", CLIENT_HEADER: CLIENT}
        req = urllib.request.Request(url, method="GET", headers=headers)  # noqa: S310 - scheme checked
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                kind = "message"
                for raw in resp:
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    if line.startswith("event: "):
                        kind = line.removeprefix("event: ")
                    elif line.startswith("data: "):
                        yield kind, _decode(line.removeprefix("data: ").encode())
                    elif not line:
                        kind = "message"
        except urllib.error.HTTPError as err:
            raise _status_error(err) from None
        except urllib.error.URLError as err:
            raise self._unreachable(err.reason) from None
        except (TimeoutError, ConnectionError) as err:
            raise self._unreachable(err) from None

    def _unreachable(self, reason: object) -> CliError:
        if isinstance(reason, ConnectionRefusedError):
            why = "connection refused"
        elif isinstance(reason, TimeoutError):
            why = f"no answer within {self.timeout:g} s"
        elif isinstance(reason, OSError) and reason.strerror:
            why = reason.strerror.lower()
        else:
            why = str(reason)
        return CliError(
            f"cannot reach {self.server} ({why}): is `twinplane edge` running at {self.server}?"
        )


def _decode(data: bytes) -> Any:  # noqa: ANN401 - decoded JSON
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError as err:
        raise CliError(f"the server answered something that is not JSON: {err}") from None


def _status_error(err: urllib.error.HTTPError) -> CliError:
    raw = err.read()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status":
        details = body.get("details") or {}
        causes = details.get("causes") if isinstance(details, dict) else None
        return CliError(
            str(body.get("message") or err.reason),
            status=err.code,
            causes=causes if isinstance(causes, list) else [],
            body=body,
        )
    text = raw.decode("utf-8", "replace").strip()[:200]
    return CliError(f"HTTP {err.code} {err.reason}: {text}", status=err.code, body=body)
