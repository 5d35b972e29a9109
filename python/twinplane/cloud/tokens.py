"""Node tokens: how an edge proves which node it is when it connects to the cloud.

``twinplane cloud token create NODE --home DIR`` makes a random token, prints it once and keeps
only its SHA-256 in ``DIR/tokens.json`` (mode 0600), so the file on the cloud never holds a
usable secret. An edge sends its node name (``X-Twinplane-Node``) and the token
(``Authorization: Bearer``); :meth:`TokenBook.verify` compares in constant time. Creating a
token again for a node replaces the old one (the old one stops working); ``revoke`` removes it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from twinplane.errors import SpecError
from twinplane.owner_only import make_dirs

__all__ = ["NODE_NAME", "TokenBook", "check_node_name"]

NODE_NAME: Final = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
"""A node name as Kubernetes allows it (a DNS-1123 subdomain)."""


def check_node_name(name: str, *, path: str = "node") -> str:
    """``name`` if it is a valid node name, else :class:`SpecError` naming ``path``."""
    if not NODE_NAME.fullmatch(name):
        raise SpecError(
            f"{path}: {name!r} is not a valid node name (lower-case letters, digits, '-' and "
            "'.', starting and ending with a letter or digit, at most 253 characters)",
            path=path,
        )
    return name


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenBook:
    """The node tokens of one cloud home (``tokens.json``)."""

    def __init__(self, home: Path) -> None:
        self.path = home / "tokens.json"
        self._digests: dict[str, str] = {}
        self._mtime: float | None = None

    def _load(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._digests, self._mtime = {}, None
            return
        if mtime == self._mtime:
            return
        try:
            data = json.loads(self.path.read_text())
            nodes = data["nodes"]
            self._digests = {str(n): str(v["sha256"]) for n, v in nodes.items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SpecError(f"{self.path}: not a token file ({exc})", path=str(self.path)) from exc
        self._mtime = mtime

    def _save(self, nodes: dict[str, dict[str, str]]) -> None:
        make_dirs(self.path.parent)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"nodes": nodes}, out, indent=2, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.path)
        self._mtime = None

    def _nodes(self) -> dict[str, dict[str, str]]:
        if not self.path.exists():
            return {}
        return dict(json.loads(self.path.read_text())["nodes"])

    def create(self, node: str) -> str:
        """A new token for ``node`` (replacing its old one); shown once, stored hashed."""
        check_node_name(node)
        token = "tpn_" + secrets.token_urlsafe(32)
        nodes = self._nodes()
        nodes[node] = {"sha256": _digest(token), "created": datetime.now(UTC).isoformat()}
        self._save(nodes)
        return token

    def revoke(self, node: str) -> bool:
        """Removes ``node``'s token; whether it had one."""
        nodes = self._nodes()
        if nodes.pop(node, None) is None:
            return False
        self._save(nodes)
        return True

    def nodes(self) -> list[str]:
        """The nodes that have a token."""
        self._load()
        return sorted(self._digests)

    def verify(self, node: str, token: str) -> bool:
        """Whether ``token`` is ``node``'s (re-reads the file when it changed)."""
        self._load()
        want = self._digests.get(node)
        return want is not None and hmac.compare_digest(want, _digest(token))
