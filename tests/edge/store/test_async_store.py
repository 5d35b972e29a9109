"""The store's asyncio face: every table through the worker thread, concurrency, kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from edge.store.helpers import device, raw, twin
from twinplane.edge.store import DEVICE, AsyncEdgeStore, EdgeStore


async def test_async_round_trip_of_every_table(tmp_path: Path) -> None:
    """Every table round-trips through the async API, all on one worker thread."""
    async with AsyncEdgeStore.open(tmp_path / "edge.db") as store:
        assert (await store.pragmas())["journal_mode"] == "wal"
        assert await store.put_object(DEVICE, "default", "a", device("a")) == 1
        assert await store.put_object(DEVICE, "default", "a", device("a", x=1)) == 2
        obj = await store.get_object(DEVICE, "default", "a")
        assert obj is not None
        assert obj.body == device("a", x=1)
        assert [o.name for o in await store.list_objects(DEVICE)] == ["a"]
        await store.put_mapper("m", protocol="modbus", address="/run/m.sock")
        assert [m.name for m in await store.list_mappers()] == ["m"]
        assert await store.get_mapper("m") is not None
        await store.save_twins([("default/a", "temp", twin("1"))])
        assert await store.load_twins() == {"default/a": {"temp": twin("1")}}
        await store.put_state("default/a", "online", "t")
        assert [s.state for s in await store.list_states()] == ["online"]
        assert (await store.get_state("default/a")) is not None
        first = await store.append_outbox("t", b"p")
        assert [e.id for e in await store.list_outbox(10)] == [first]
        assert await store.delete_outbox(first) == 1
        assert await store.delete_twins("default/a", ["temp"]) == 1
        assert await store.delete_mapper("m")
        assert await store.delete_object(DEVICE, "default", "a")
        assert await store.get_object(DEVICE, "default", "a") is None
        workers = [t for t in threading.enumerate() if t.name.startswith("twinplane-store")]
        assert len(workers) == 1


async def test_concurrent_writers_keep_the_loop_responsive(tmp_path: Path) -> None:
    """Many coroutines write at once; every write lands and a ticker runs during disk work."""
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    during_flush: list[int] = []

    async def writer(store: AsyncEdgeStore, i: int) -> None:
        for j in range(10):
            await store.put_object(DEVICE, "default", f"w{i}", device(f"w{i}", j=j))
            before = ticks
            await store.save_twins([(f"default/w{i}", f"p{k}", twin(str(j), j)) for k in range(10)])
            during_flush.append(ticks - before)

    async with AsyncEdgeStore.open(tmp_path / "edge.db") as store:
        tick_task = asyncio.create_task(ticker())
        await asyncio.gather(*(writer(store, i) for i in range(50)))
        stop.set()
        await tick_task
        objects = await store.list_objects(DEVICE)
        twins = await store.load_twins()
    assert len(objects) == 50
    assert {o.generation for o in objects} == {10}
    assert len(twins) == 50
    assert all(t == twin("9", 9) for props in twins.values() for t in props.values())
    assert sum(during_flush) > 0


# -- durability -----------------------------------------------------------------------------

CHILD = """
import asyncio, sys
from twinplane.edge.store import DEVICE, AsyncEdgeStore

async def main(path):
    async with AsyncEdgeStore.open(path) as store:
        i = 0
        while True:
            name = f"dev-{i}"
            await store.put_object(DEVICE, "default", name, {"spec": {"i": i}})
            body = {"type": "INT", "desired": {"value": str(i), "timestamp": i}}
            await store.save_twins([(f"default/{name}", "temp", body)])
            await store.put_state(f"default/{name}", "online", str(i))
            await store.append_outbox("twin", str(i).encode())
            print(f"ACK {i}", flush=True)
            # Unacknowledged load, so that the kill lands in the middle of writes.
            await store.save_twins([(f"default/noise", f"p{k}", {"i": i}) for k in range(500)])
            i += 1

asyncio.run(main(sys.argv[1]))
"""


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    """Everything a killed process acknowledged is in the database, which passes integrity_check."""
    path = tmp_path / "edge.db"
    child = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", CHILD, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stderr is not None
    acked = -1
    try:
        while acked < 30:
            line = child.stdout.readline()
            assert line.startswith("ACK "), f"child said {line!r}: {child.stderr.read()}"
            acked = int(line.split()[1])
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    acked = max([acked, *(int(x.split()[1]) for x in child.stdout.read().splitlines())])
    child.stdout.close()
    child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    with raw(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    with EdgeStore.open(path) as s:
        twins = s.load_twins()
        states = {st.device_id: st.last_online for st in s.list_states()}
        outbox = [e.payload for e in s.list_outbox(1_000_000)]
        for i in range(acked + 1):
            obj = s.get_object(DEVICE, "default", f"dev-{i}")
            assert obj is not None, i
            assert obj.body == {"spec": {"i": i}}
            assert twins[f"default/dev-{i}"]["temp"]["desired"] == {"value": str(i), "timestamp": i}
            assert states[f"default/dev-{i}"] == str(i)
        assert outbox[: acked + 1] == [str(i).encode() for i in range(acked + 1)]
