"""An MQTT broker's address, as the device manager and the mapper's MQTT sink take it.

``mqtt://[user:pass@]host[:port]``, KubeEdge's ``tcp://host:port`` or a bare ``host:port``. A
low-level module (it imports only the error tree and :mod:`twinplane.redact`), so that separate
processes — the device manager's MQTT bridge and a mapper's MQTT push method — share it without
importing each other. Messages and ``str()`` never show the password.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote, urlsplit

from twinplane.errors import SpecError
from twinplane.redact import redact_url

__all__ = ["DEFAULT_PORT", "BrokerUrl"]

DEFAULT_PORT: Final = 1883
"""The MQTT port when a URL gives none."""

_SCHEMES: Final = ("mqtt", "tcp")


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    """A broker address: ``mqtt://[user:pass@]host[:port]`` or KubeEdge's ``tcp://…``.

    Raises:
        SpecError: On construction, for an empty host or a port outside 1-65535.
    """

    host: str
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.host:
            raise SpecError("MQTT broker URL has no host", path="mqtt_url")
        if not 0 < self.port < 65536:  # noqa: PLR2004 - the TCP port range
            raise SpecError(f"MQTT broker port {self.port} is not in 1-65535", path="mqtt_url")

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        """Reads ``mqtt://host:port``, ``tcp://host:port`` or ``host:port``.

        Raises:
            SpecError: Another scheme, a path, or an unreadable port.
        """
        text = url.strip()
        parts = urlsplit(text if "://" in text else f"mqtt://{text}")
        if parts.scheme not in _SCHEMES:
            raise SpecError(
                f"unsupported MQTT broker URL scheme {parts.scheme!r} in {redact_url(url)!r}; "
                "allowed: mqtt://host:port, tcp://host:port",
                path="mqtt_url",
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise SpecError(
                f"MQTT broker URL {redact_url(url)!r} must not have a path", path="mqtt_url"
            )
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError:
            raise SpecError(
                f"MQTT broker URL {redact_url(url)!r} has a bad port", path="mqtt_url"
            ) from None
        return cls(
            host=parts.hostname or "",
            port=port,
            username=None if parts.username is None else unquote(parts.username),
            password=None if parts.password is None else unquote(parts.password),
        )

    def __str__(self) -> str:
        """``mqtt://[user@]host:port``: never the password (this is what logs show)."""
        user = f"{self.username}@" if self.username else ""
        return f"mqtt://{user}{self.host}:{self.port}"
