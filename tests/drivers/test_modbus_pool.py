"""Clients shared by a bus's devices: one per key, closed after the last device."""

from __future__ import annotations

import asyncio

from twinplane.drivers.modbus.pool import ClientPool


class Client:
    """Counts its closes."""

    def __init__(self) -> None:
        self.closed = 0

    async def close(self) -> None:
        """Closes (counted)."""
        self.closed += 1


async def test_a_bus_client_is_shared_and_closed_after_its_last_device() -> None:
    """Two devices of a bus get one client; it closes when the second one lets go."""
    pool: ClientPool[Client] = ClientPool()
    opened: list[Client] = []

    def open_client() -> Client:
        opened.append(Client())
        return opened[-1]

    a = pool.acquire("tcp://h:502", open_client)
    b = pool.acquire("tcp://h:502", open_client)
    other = pool.acquire("tcp://h:503", open_client)
    assert a is b
    assert len(opened) == 2
    assert await pool.release("tcp://h:502") is None
    assert a.closed == 0
    assert await pool.release("tcp://h:502") is a
    assert a.closed == 1
    assert await pool.release("tcp://h:502") is None  # unknown now: nothing to close
    assert a.closed == 1
    assert list(pool.clients()) == [other]
    assert await pool.close() == [other]
    assert other.closed == 1
    assert list(pool.clients()) == []


class SlowClient(Client):
    """Closes once let go."""

    def __init__(self) -> None:
        super().__init__()
        self.let_go = asyncio.Event()

    async def close(self) -> None:
        """Waits, then closes."""
        await self.let_go.wait()
        await super().close()


async def test_a_client_being_closed_is_still_listed() -> None:
    """Until its close returns a client is listed, so totals over clients() never dip."""
    pool: ClientPool[SlowClient] = ClientPool()
    client = pool.acquire("tcp://h:502", SlowClient)
    closing = asyncio.ensure_future(pool.release("tcp://h:502"))
    await asyncio.sleep(0)
    assert list(pool.clients()) == [client]
    assert pool.acquire("tcp://h:502", SlowClient) is not client  # a new device: a new client
    client.let_go.set()
    assert await closing is client
    assert client not in list(pool.clients())
