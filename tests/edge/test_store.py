"""The edge store against real SQLite files: tables, migrations, the async face, durability."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from twinplane.edge import migrations
from twinplane.edge.store import (
    DEVICE,
    DEVICE_MODEL,
    AsyncEdgeStore,
    EdgeStore,
    StoreError,
    StoreVersionError,
)
from twinplane.errors import TwinplaneError


def twin(value: str, ts: int = 1, desired: str | None = None) -> dict[str, Any]:
    """A TwinDict-shaped body, as the engine persists it."""
    return {
        "type": "INT",
        "desired": None if desired is None else {"value": desired, "timestamp": ts},
        "reported": {"value": value, "timestamp": ts},
        "desired_version": {"cloud": 0, "edge": 0 if desired is None else 1},
        "reported_version": {"cloud": 0, "edge": ts},
    }


def device(name: str, **spec: object) -> dict[str, Any]:
    """A minimal Device manifest."""
    return {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"deviceModelRef": {"name": "thermo"}, **spec},
    }


@contextlib.contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection in autocommit mode, closed afterwards."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def tables(path: Path) -> set[str]:
    """The table names of a database file."""
    with raw(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {r[0] for r in rows} - {"sqlite_sequence"}


def pragma(path: Path, name: str) -> object:
    """One PRAGMA value read through a fresh connection."""
    with raw(path) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EdgeStore]:
    """A fresh synchronous store."""
    with EdgeStore.open(tmp_path / "edge.db") as s:
        yield s


# -- the synchronous store ------------------------------------------------------------------


def test_open_creates_parents_and_configures_sqlite(tmp_path: Path) -> None:
    """Opening creates parent folders and sets WAL, FULL sync, foreign keys and busy_timeout."""
    path = tmp_path / "a" / "b" / "edge.db"
    with EdgeStore.open(path, busy_timeout_ms=1234) as s:
        assert s.path == path
        assert s.pragmas() == {
            "journal_mode": "wal",
            "synchronous": 2,
            "foreign_keys": 1,
            "busy_timeout": 1234,
            "user_version": migrations.LATEST,
        }
    assert pragma(path, "application_id") == migrations.APPLICATION_ID
    assert tables(path) == {"objects", "mappers", "twins", "device_states", "events_outbox"}


def test_objects_round_trip(store: EdgeStore) -> None:
    """Manifests come back as stored, listed by kind and namespace in name order."""
    assert store.put_object(DEVICE, "default", "b", device("b")) == 1
    assert store.put_object(DEVICE, "default", "a", device("a")) == 1
    assert store.put_object(DEVICE, "plant", "c", device("c")) == 1
    assert store.put_object(DEVICE_MODEL, "default", "thermo", {"spec": {"protocol": "modbus"}})
    got = store.get_object(DEVICE, "default", "a")
    assert got is not None
    assert (got.kind, got.namespace, got.name, got.generation) == (DEVICE, "default", "a", 1)
    assert got.body == device("a")
    assert got.updated_ms > 0
    assert store.get_object(DEVICE, "default", "missing") is None
    assert store.get_object(DEVICE_MODEL, "default", "a") is None
    assert [(o.namespace, o.name) for o in store.list_objects(DEVICE)] == [
        ("default", "a"),
        ("default", "b"),
        ("plant", "c"),
    ]
    assert [o.name for o in store.list_objects(DEVICE, "plant")] == ["c"]
    assert [o.name for o in store.list_objects(DEVICE_MODEL)] == ["thermo"]


def test_generation_grows_by_one_per_change_only(store: EdgeStore) -> None:
    """An unchanged body (even with keys reordered) keeps its generation and writes nothing."""
    body = device("a", properties=[{"name": "temp"}])
    assert store.put_object(DEVICE, "default", "a", body) == 1
    first = store.get_object(DEVICE, "default", "a")
    with raw(store.path) as observer:
        before = observer.execute("PRAGMA data_version").fetchone()[0]
        reordered = dict(reversed(list(body.items())))
        assert store.put_object(DEVICE, "default", "a", reordered) == 1
        assert observer.execute("PRAGMA data_version").fetchone()[0] == before
        assert store.put_object(DEVICE, "default", "a", device("a", properties=[])) == 2
        assert observer.execute("PRAGMA data_version").fetchone()[0] != before
    assert store.get_object(DEVICE, "default", "a") != first
    assert store.put_object(DEVICE, "default", "a", body) == 3
    assert store.delete_object(DEVICE, "default", "a")
    assert store.put_object(DEVICE, "default", "a", body) == 1


def test_deleting_a_device_deletes_its_twins_and_state_only(store: EdgeStore) -> None:
    """Deleting a Device removes its twins and state; other devices and models keep theirs."""
    for name in ("a", "b"):
        store.put_object(DEVICE, "default", name, device(name))
        store.save_twins(
            [(f"default/{name}", "temp", twin("1")), (f"default/{name}", "hum", twin("2"))]
        )
        store.put_state(f"default/{name}", "online", "2026-01-01T00:00:00Z")
    store.put_object(DEVICE_MODEL, "default", "b", {"spec": {}})
    assert store.delete_object(DEVICE, "default", "a")
    assert not store.delete_object(DEVICE, "default", "a")
    assert set(store.load_twins()) == {"default/b"}
    assert [s.device_id for s in store.list_states()] == ["default/b"]
    assert store.delete_object(DEVICE_MODEL, "default", "b")
    assert set(store.load_twins()["default/b"]) == {"temp", "hum"}
    assert store.get_state("default/b") is not None


def test_mappers_round_trip(store: EdgeStore) -> None:
    """Mappers are stored, re-registered in place, listed by name and forgotten."""
    m = store.put_mapper(
        "modbus-a",
        protocol="modbus",
        address="/run/modbus.sock",
        version="v1.0",
        api_version="v1beta1",
        state="ok",
        registered_ms=5,
    )
    store.put_mapper("bacnet", protocol="bacnet", address="/run/bacnet.sock")
    assert store.get_mapper("modbus-a") == m
    store.put_mapper("modbus-a", protocol="modbus", address="/run/new.sock", registered_ms=9)
    assert [x.name for x in store.list_mappers()] == ["bacnet", "modbus-a"]
    again = store.get_mapper("modbus-a")
    assert again is not None
    assert (again.address, again.registered_ms, again.state) == ("/run/new.sock", 9, "")
    assert store.delete_mapper("bacnet")
    assert not store.delete_mapper("bacnet")
    assert store.get_mapper("bacnet") is None


def test_twins_round_trip(store: EdgeStore) -> None:
    """Twins upsert in place, load grouped by device, and delete by property or device."""
    store.save_twins([("default/a", "temp", twin("1")), ("default/a", "hum", twin("2"))])
    store.save_twins(
        [("default/a", "temp", twin("3", 2, desired="4")), ("default/b", "x", twin("5"))]
    )
    assert store.load_twins() == {
        "default/a": {"temp": twin("3", 2, desired="4"), "hum": twin("2")},
        "default/b": {"x": twin("5")},
    }
    assert store.delete_twins("default/a", ["hum", "nope"]) == 1
    assert store.delete_twins("default/b") == 1
    assert store.load_twins() == {"default/a": {"temp": twin("3", 2, desired="4")}}


def test_engine_json_twin_body_is_stored_verbatim(store: EdgeStore) -> None:
    """A body given as JSON text (the engine's take_dirty form) is stored as is and loads."""
    text = (
        '{"type":"FLOAT","desired":null,"reported":{"value":"24.5","timestamp":1000},'
        '"desired_version":{"cloud":0,"edge":0},"reported_version":{"cloud":0,"edge":3}}'
    )
    store.save_twins([("default/a", "temp", text)])
    with raw(store.path) as conn:
        assert conn.execute("SELECT body FROM twins").fetchone()[0] == text
    assert store.load_twins()["default/a"]["temp"]["reported"] == {
        "value": "24.5",
        "timestamp": 1000,
    }


def test_unencodable_twin_body_writes_nothing(store: EdgeStore) -> None:
    """A body that is not JSON-encodable fails the whole call, naming device and property."""
    with pytest.raises(StoreError) as info:
        store.save_twins([("default/a", "ok", twin("1")), ("default/a", "bad", {"v": object()})])
    assert (info.value.device, info.value.property) == ("default/a", "bad")
    assert store.load_twins() == {}


def test_states_round_trip(store: EdgeStore) -> None:
    """Device states are replaced per device and listed by device id."""
    store.put_state("default/b", "online", "t1")
    store.put_state("default/a", "offline", "t0")
    store.put_state("default/b", "disconnected", "t2")
    states = store.list_states()
    assert [(s.device_id, s.state, s.last_online) for s in states] == [
        ("default/a", "offline", "t0"),
        ("default/b", "disconnected", "t2"),
    ]
    assert all(s.updated_ms > 0 for s in states)
    assert store.get_state("default/c") is None


def test_outbox_keeps_order_and_never_reuses_ids(store: EdgeStore) -> None:
    """The outbox lists oldest first, deletes through an id, and never reuses a deleted id."""
    ids = [store.append_outbox("twin", f"e{i}".encode()) for i in range(5)]
    assert ids == sorted(ids)
    assert [e.payload for e in store.list_outbox(3)] == [b"e0", b"e1", b"e2"]
    assert store.delete_outbox(ids[2]) == 3
    assert [e.id for e in store.list_outbox()] == ids[3:]
    assert store.delete_outbox(ids[4]) == 2
    assert store.append_outbox("state", b"\x00\xff") > ids[4]
    (entry,) = store.list_outbox()
    assert (entry.topic, entry.payload) == ("state", b"\x00\xff")


def test_closed_store_raises_store_error(store: EdgeStore) -> None:
    """A call on a closed store raises StoreError, a TwinplaneError, not a sqlite3 error."""
    store.close()
    with pytest.raises(StoreError, match="list_objects") as info:
        store.list_objects(DEVICE)
    assert isinstance(info.value, TwinplaneError)
    assert info.value.db_path == str(store.path)


# -- migrations -----------------------------------------------------------------------------

# Schema version 1 as it was released: registry only, no twins, states or outbox.
V1_SCHEMA = """
PRAGMA application_id = 1953984112;
CREATE TABLE objects (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
    generation INTEGER NOT NULL CHECK (generation >= 1), updated_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, namespace, name)
);
CREATE TABLE mappers (
    name TEXT NOT NULL PRIMARY KEY, protocol TEXT NOT NULL, address TEXT NOT NULL,
    version TEXT NOT NULL, api_version TEXT NOT NULL, state TEXT NOT NULL,
    registered_ms INTEGER NOT NULL
);
INSERT INTO objects VALUES ('Device', 'default', 'a', '{"spec":{}}', 4, 100);
INSERT INTO mappers VALUES ('m', 'modbus', '/run/m.sock', 'v1', 'v1beta1', 'ok', 7);
PRAGMA user_version = 1;
"""


def test_migrations_are_numbered_one_by_one() -> None:
    """Migration steps are versions 1..N in order, and LATEST is the last one."""
    assert [m.version for m in migrations.MIGRATIONS] == list(
        range(1, len(migrations.MIGRATIONS) + 1)
    )
    assert migrations.MIGRATIONS[-1].version == migrations.LATEST
    assert migrations.APPLICATION_ID == 1953984112  # V1_SCHEMA below spells it out


@pytest.mark.parametrize("kind", ["zero-byte file", "empty database"])
def test_version_zero_database_is_migrated_to_latest(tmp_path: Path, kind: str) -> None:
    """A new or empty database (version 0, no tables) gets the whole schema."""
    path = tmp_path / "edge.db"
    path.touch()
    if kind == "empty database":
        with raw(path) as conn:
            conn.execute("CREATE TABLE t (x)")
            conn.execute("DROP TABLE t")
        assert path.stat().st_size > 0
    with EdgeStore.open(path) as s:
        assert s.pragmas()["user_version"] == migrations.LATEST
        s.save_twins([("default/a", "temp", twin("1"))])
    assert "events_outbox" in tables(path)


def test_v1_database_is_migrated_keeping_its_rows(tmp_path: Path) -> None:
    """A version-1 database gains the later tables and keeps its manifests and mappers."""
    path = tmp_path / "edge.db"
    with raw(path) as conn:
        conn.executescript(V1_SCHEMA)
    assert tables(path) == {"objects", "mappers"}
    with EdgeStore.open(path) as s:
        assert s.pragmas()["user_version"] == migrations.LATEST
        obj = s.get_object(DEVICE, "default", "a")
        assert obj is not None
        assert (obj.body, obj.generation, obj.updated_ms) == ({"spec": {}}, 4, 100)
        assert [m.address for m in s.list_mappers()] == ["/run/m.sock"]
        s.save_twins([("default/a", "temp", twin("1"))])
        s.put_state("default/a", "online", "t")
        assert s.append_outbox("x", b"y") == 1
        assert s.delete_object(DEVICE, "default", "a")
        assert s.load_twins() == {}
        assert s.list_states() == []
    assert tables(path) == {"objects", "mappers", "twins", "device_states", "events_outbox"}


def test_reopening_a_current_database_changes_nothing(tmp_path: Path) -> None:
    """Reopening an up-to-date database applies no step and keeps the data."""
    path = tmp_path / "edge.db"
    with EdgeStore.open(path) as s:
        s.put_object(DEVICE, "default", "a", device("a"))
    with raw(path) as conn:
        assert migrations.migrate(conn) == []
    with EdgeStore.open(path) as s:
        assert s.pragmas()["user_version"] == migrations.LATEST
        assert s.get_object(DEVICE, "default", "a") is not None


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_future_schema_is_refused_untouched(tmp_path: Path, journal: str) -> None:
    """A database from a newer release raises StoreVersionError and keeps every byte."""
    path = tmp_path / "edge.db"
    EdgeStore.open(path).close()
    with raw(path) as conn:
        conn.execute(f"PRAGMA journal_mode = {journal}")
        conn.execute("CREATE TABLE from_the_future (x)")
        conn.execute(f"PRAGMA user_version = {migrations.LATEST + 1}")
    before = path.read_bytes()
    with pytest.raises(StoreVersionError, match="newer") as info:
        EdgeStore.open(path)
    assert (info.value.found, info.value.supported) == (migrations.LATEST + 1, migrations.LATEST)
    assert isinstance(info.value, StoreError)
    assert path.read_bytes() == before
    assert pragma(path, "journal_mode") == journal


def test_foreign_database_is_refused_untouched(tmp_path: Path) -> None:
    """Another program's SQLite file (EdgeCore's edgecore.db, say) is refused and left as is."""
    path = tmp_path / "edgecore.db"
    with raw(path) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, type TEXT, value TEXT)")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a twinplane edge database"):
        EdgeStore.open(path)
    assert path.read_bytes() == before
    assert tables(path) == {"meta"}


def test_non_database_file_is_refused_untouched(tmp_path: Path) -> None:
    """A file that is not SQLite at all raises StoreError and is not modified."""
    path = tmp_path / "edge.db"
    path.write_bytes(b"not a database, " * 512)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="cannot open"):
        EdgeStore.open(path)
    assert path.read_bytes() == before


def test_failed_migration_step_is_rolled_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step that fails leaves the database at the previous version with no partial change."""
    path = tmp_path / "edge.db"
    EdgeStore.open(path).close()
    broken = migrations.Migration(
        migrations.LATEST + 1, "broken", ("CREATE TABLE half_done (x)", "NOT SQL AT ALL")
    )
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, broken))
    monkeypatch.setattr(migrations, "LATEST", broken.version)
    with pytest.raises(StoreError, match="syntax error"):
        EdgeStore.open(path)
    assert pragma(path, "user_version") == broken.version - 1
    assert "half_done" not in tables(path)


# -- the asyncio face -----------------------------------------------------------------------


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
