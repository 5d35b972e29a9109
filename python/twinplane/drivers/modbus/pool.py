"""Clients shared by the devices of one bus: opened on first use, closed after the last device.

The units behind one Modbus TCP endpoint share one connection, and the devices on one serial
line one client; the mapper's adapter and the load test's imitation of mapper-framework both
keep them in a :class:`ClientPool`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, Protocol, TypeVar

__all__ = ["ClientPool"]


class _Closable(Protocol):
    async def close(self) -> None: ...


_C = TypeVar("_C", bound=_Closable)


class ClientPool(Generic[_C]):
    """Reference-counted clients by bus key."""

    def __init__(self) -> None:
        self._clients: dict[str, tuple[_C, int]] = {}
        self._closing: list[_C] = []

    def acquire(self, key: str, open_client: Callable[[], _C]) -> _C:
        """The bus's client, made by ``open_client()`` for its first device."""
        found = self._clients.get(key)
        if found is None:
            client = open_client()
            self._clients[key] = (client, 1)
            return client
        self._clients[key] = (found[0], found[1] + 1)
        return found[0]

    def clients(self) -> Iterator[_C]:
        """The clients held now: in use, or being closed (until their close returns)."""
        for client, _ in list(self._clients.values()):
            yield client
        yield from list(self._closing)

    async def release(self, key: str) -> _C | None:
        """Drops one device's use of the bus's client; closes it after the last.

        Returns:
            The client it closed, or ``None`` when devices still use it (or it was unknown).
        """
        found = self._clients.get(key)
        if found is None:
            return None
        if found[1] > 1:
            self._clients[key] = (found[0], found[1] - 1)
            return None
        del self._clients[key]
        await self._close([found[0]])
        return found[0]

    async def close(self) -> list[_C]:
        """Closes every client; the clients it closed."""
        clients, self._clients = self._clients, {}
        closing = [client for client, _ in clients.values()]
        await self._close(closing)
        return closing

    async def _close(self, clients: list[_C]) -> None:
        """Closes ``clients``, listed by :meth:`clients` until the last one's close returns."""
        self._closing += clients
        try:
            for client in clients:
                await client.close()
        finally:
            for client in clients:
                self._closing.remove(client)
