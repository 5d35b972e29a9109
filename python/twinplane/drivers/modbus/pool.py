"""Clients shared by the devices of one bus: opened on first use, closed after the last device.

The units behind one Modbus TCP endpoint share one pipelined connection, and the devices on one
serial line one client; the mapper's adapter and the bench's KubeEdge-style baseline both keep
them in a :class:`ClientPool`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

__all__ = ["ClientPool"]


class _Closable(Protocol):
    async def close(self) -> None: ...


_C = TypeVar("_C", bound=_Closable)


class ClientPool(Generic[_C]):
    """Reference-counted clients by bus key."""

    def __init__(self) -> None:
        self._clients: dict[str, tuple[_C, int]] = {}

    def acquire(self, key: str, open_client: Callable[[], _C]) -> _C:
        """The bus's client, made by ``open_client()`` for its first device."""
        found = self._clients.get(key)
        if found is None:
            client = open_client()
            self._clients[key] = (client, 1)
            return client
        self._clients[key] = (found[0], found[1] + 1)
        return found[0]

    async def release(self, key: str) -> None:
        """Drops one device's use of the bus's client; closes it after the last."""
        found = self._clients.get(key)
        if found is None:
            return
        if found[1] > 1:
            self._clients[key] = (found[0], found[1] - 1)
            return
        del self._clients[key]
        await found[0].close()

    async def close(self) -> None:
        """Closes every client."""
        clients, self._clients = self._clients, {}
        for client, _ in clients.values():
            await client.close()
