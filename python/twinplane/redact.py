"""Credentials kept out of what is printed or logged: a URL's password shown as ``***``."""

from __future__ import annotations

from typing import Final

__all__ = ["MASK", "redact_url"]

MASK: Final = "***"
"""What a password is shown as."""


def redact_url(url: str) -> str:
    """``url`` with the password of its user info replaced by :data:`MASK`, the user kept.

    ``mqtt://user:secret@broker:1883`` becomes ``mqtt://user:***@broker:1883``; the scheme-less
    ``user:secret@broker:1883`` (a broker address) likewise. Text without a password is
    returned as it is.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, host = rest[:end].rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.partition(":")[0]
    return f"{scheme}{sep}{user}:{MASK}@{host}{rest[end:]}"
