"""Which requests a twinplane REST server takes: DNS-rebinding and cross-site forgery protection.

Neither REST server has authentication, and both listen on loopback unless told otherwise, so
what reaches them from elsewhere is what a *browser* on the machine sends for a web page. A page
may make its own name resolve to 127.0.0.1 (DNS rebinding: it then reads and writes as if it
were the server's own page), or send a request to 127.0.0.1 from its own origin (cross-site
request forgery: it cannot read the answer, but a write is done). :class:`RequestGuard` checks
every request before a route runs:

1. ``Host`` names this server: a name given with ``--allowed-host`` (with any port), or, with
   the port the server listens on, a loopback spelling (``localhost``, ``127.0.0.1`` or another
   127.0.0.0/8 address, ``[::1]``), the address it is bound to, and, when it is bound to every
   interface (``0.0.0.0``, ``::``), any IP address. A rebinding page always sends its own
   *name*, which the operator did not list; an IP address cannot be rebound. A request without
   ``Host`` (HTTP/1.0) does not come from a browser and passes.
2. ``Origin``, when there is one, is the server's own: ``http://`` (or ``https://`` behind a
   proxy) and the request's ``Host``. ``null`` (a sandboxed frame, a local file) is foreign.
3. A write (``POST``, ``PUT``, ``PATCH``, ``DELETE``, or a route a server marks as writing, such
   as KubeEdge's ``GET`` write route) is not marked by the browser as sent by another site
   (``Sec-Fetch-Site: cross-site`` or ``same-site``), and its ``Referer``, when there is one, is
   the server's own.
4. A write by one of those methods carries the header ``X-Twinplane-Client`` (any value; the
   twinplane CLI sends one) or a ``Content-Type`` that a page cannot send to another origin
   without asking first: anything but the three an HTML form sends (``text/plain``,
   ``application/x-www-form-urlencoded``, ``multipart/form-data``), e.g. ``application/json`` or
   ``application/yaml``. The asking (a CORS preflight) is never granted by these servers.

A refused request raises :class:`RequestRefused` (the server answers 403 naming the header).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from twinplane.errors import SpecError
from twinplane.rest.echo import clip, quote

if TYPE_CHECKING:  # the CLI reads CLIENT_HEADER without loading aiohttp
    from aiohttp import web

__all__ = [
    "CLIENT_HEADER",
    "WRITE_METHODS",
    "RequestGuard",
    "RequestRefused",
    "allowed_host",
]

CLIENT_HEADER: Final = "X-Twinplane-Client"
"""The header a non-browser client sends with its writes (a page cannot send it cross-origin)."""

WRITE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
"""The methods that change something."""

_FORM_TYPES: Final = frozenset(
    {"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"}
)
_CROSS_SITE: Final = frozenset({"cross-site", "same-site"})
_WILDCARDS: Final = frozenset({"0.0.0.0", "::"})  # noqa: S104 - what a wildcard bind names
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_LABEL: Final = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_MAX_NAME: Final = 253


class RequestRefused(Exception):  # noqa: N818 - a refusal, not an error of the server
    """A request the guard does not let through.

    Attributes:
        header: The request header at fault (``Host``, ``Origin``, ``Content-Type``, ...).
        value: What the request had there (clipped), or ``None`` when it had nothing.
        message: Why, for a person.
    """

    status: Final = 403

    def __init__(self, header: str, value: str | None, message: str) -> None:
        super().__init__(message)
        self.header = header
        self.value = None if value is None else clip(value)
        self.message = message


def allowed_host(text: str) -> str:
    """An ``--allowed-host`` value as the guard compares it: a host name or an IP address.

    Raises:
        SpecError: Not a host name or an IP address (a port, a scheme or a path is not taken).
    """
    name = text.strip().lower()
    bare = name.removeprefix("[").removesuffix("]")
    if _ip(bare) is not None:
        return bare
    labels = name.removesuffix(".").split(".")
    if len(name) > _MAX_NAME or not all(_LABEL.fullmatch(label) for label in labels):
        raise SpecError(
            f"--allowed-host {quote(text)} is not a host name or an IP address "
            "(give the name alone, without scheme or port: gateway.example, 192.0.2.7)",
            path="allowed_hosts",
        )
    return name


class RequestGuard:
    """The checks of this module for one listening server.

    Args:
        host: The address the server is bound to (``127.0.0.1``, ``::1``, ``0.0.0.0``, a name).
        port: The port it listens on.
        allowed_hosts: More names (or addresses) that ``Host`` may carry, with any port.

    Raises:
        SpecError: An allowed host is not a host name or an IP address.
    """

    def __init__(self, host: str, port: int, allowed_hosts: Iterable[str] = ()) -> None:
        self.port = port
        self.allowed = frozenset(allowed_host(name) for name in allowed_hosts)
        self.bound = host.strip().lower().removeprefix("[").removesuffix("]")
        self.wildcard = self.bound in _WILDCARDS

    def check(self, request: web.Request, *, write_route: bool = False) -> None:
        """Lets the request through, or raises :class:`RequestRefused`.

        Args:
            request: The request, before its route runs.
            write_route: The route writes whatever the method (KubeEdge's ``GET`` writes).
        """
        headers = request.headers
        host = headers.get("Host")
        if host is not None and not self._host_ok(host):
            raise RequestRefused(
                "Host",
                host,
                f"Host {quote(host)} is not a name of this server (it answers to "
                f"{self.names()}); if the name is yours, give it with --allowed-host NAME",
            )
        origin = headers.get("Origin")
        if origin is not None and not _same_origin(origin, host):
            raise RequestRefused(
                "Origin",
                origin,
                f"Origin {quote(origin)} is not this server's own "
                f"({'http://' + clip(host) if host else 'the request has no Host'}): "
                "a page of another site may not call this API",
            )
        if request.method in WRITE_METHODS or write_route:
            _check_write(request, host)

    def names(self) -> str:
        """The ``Host`` values this server answers to, for messages."""
        port = f":{self.port}"
        names = [f"localhost{port}", f"127.0.0.1{port}", f"[::1]{port}"]
        if self.wildcard:
            names.append(f"any IP address{port}")
        elif self.bound != "localhost" and not _loopback(self.bound):
            names.append(f"{_bracketed(self.bound)}{port}")
        names.extend(sorted(_bracketed(name) for name in self.allowed))
        return ", ".join(names)

    def _host_ok(self, value: str) -> bool:
        where = _host_port(value, "http")
        if where is None:
            return False
        name, port = where
        if name in self.allowed:
            return True
        if port != self.port:
            return False
        if name in ("localhost", self.bound):
            return True
        address = _ip(name)
        return address is not None and (address.is_loopback or self.wildcard)


def _check_write(request: web.Request, host: str | None) -> None:
    headers = request.headers
    site = headers.get("Sec-Fetch-Site", "").strip().lower()
    if site in _CROSS_SITE:
        raise RequestRefused(
            "Sec-Fetch-Site",
            site,
            f"the browser marks this {request.method} as sent by another site "
            f"(Sec-Fetch-Site: {site}); writes come only from this server's own pages or "
            "from clients that are not browsers",
        )
    referer = headers.get("Referer")
    if referer and not _same_origin(referer, host):
        raise RequestRefused(
            "Referer",
            referer,
            f"this {request.method} was sent from {quote(referer)}, a page of another site",
        )
    if request.method not in WRITE_METHODS or headers.get(CLIENT_HEADER, "").strip():
        return
    ctype = headers.get("Content-Type")
    if (ctype or "").partition(";")[0].strip().lower() in _FORM_TYPES:
        has = "none" if ctype is None else quote(ctype)
        raise RequestRefused(
            "Content-Type",
            ctype,
            f"a {request.method} needs Content-Type application/json or application/yaml "
            f"(this one has {has}) or the header {CLIENT_HEADER}: <client name>; a page of "
            "another site can send neither (cross-site request forgery protection)",
        )


def _same_origin(url: str, host: str | None) -> bool:
    """Whether ``url`` (an ``Origin`` or a ``Referer``) is of the server the request names."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    if host is None or parts.scheme not in _DEFAULT_PORTS or not parts.netloc:
        return False
    if parts.username is not None or parts.password is not None:
        return False
    own = _host_port(host, parts.scheme)
    theirs = _host_port(parts.netloc, parts.scheme)
    return own is not None and own == theirs


def _host_port(value: str, scheme: str) -> tuple[str, int] | None:
    """``name[:port]`` (``[v6][:port]``) as a lower-case name and a port; ``None`` if malformed."""
    try:
        parts = urlsplit(f"//{value.strip()}")
        port = parts.port
    except ValueError:
        return None
    name = parts.hostname
    if not name or parts.path or parts.query or parts.fragment or "@" in parts.netloc:
        return None
    return name, _DEFAULT_PORTS[scheme] if port is None else port


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _loopback(name: str) -> bool:
    address = _ip(name)
    return address is not None and address.is_loopback


def _bracketed(name: str) -> str:
    return f"[{name}]" if ":" in name else name
