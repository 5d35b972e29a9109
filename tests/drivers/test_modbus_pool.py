"""Clients shared by a bus's devices: one per key, closed after the last device."""

from __future__ import annotations

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
    await pool.release("tcp://h:502")
    assert a.closed == 0
    await pool.release("tcp://h:502")
    assert a.closed == 1
    await pool.release("tcp://h:502")  # unknown now: nothing to close
    assert a.closed == 1
    await pool.close()
    assert other.closed == 1
