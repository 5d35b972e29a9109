"""The store's tables against a real SQLite file: objects, mappers, twins, states, outbox."""

from __future__ import annotations

import msgspec
import pytest

from edge.store.helpers import device, raw, twin
from twinplane.edge.store import DEVICE, DEVICE_MODEL, EdgeStore, StoredWriteError, StoreError
from twinplane.edge.store.alarms import StoredAlarm


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


def test_write_errors_are_replaced_cleared_and_go_with_their_device(store: EdgeStore) -> None:
    """One row per twin property: a newer error replaces it; a clear or a delete removes it."""
    for name in ("a", "b"):
        store.put_object(DEVICE, "default", name, device(name))
    first = StoredWriteError("default/a", "setpoint", "500", "refused", 1, 10)
    store.put_write_errors(
        [first, StoredWriteError("default/b", "setpoint", "7", "TimeoutError", 3, 11)]
    )
    newer = StoredWriteError("default/a", "setpoint", "42", "ModbusConnectionError: lost", 3, 12)
    store.put_write_errors([newer])
    assert store.list_write_errors() == [
        newer,
        StoredWriteError("default/b", "setpoint", "7", "TimeoutError", 3, 11),
    ]
    store.put_write_errors([], cleared=[("default/b", "setpoint"), ("default/b", "nothing")])
    assert store.list_write_errors() == [newer]
    assert store.delete_object(DEVICE, "default", "a")
    assert store.list_write_errors() == []


def test_a_write_error_needs_an_attempt(store: EdgeStore) -> None:
    """A row with no attempt is refused and nothing of its batch is stored."""
    rows = [
        StoredWriteError("default/a", "x", "1", "refused", 1, 10),
        StoredWriteError("default/a", "y", "1", "refused", 0, 10),
    ]
    with pytest.raises(StoreError, match="put_write_errors"):
        store.put_write_errors(rows)
    assert store.list_write_errors() == []


# -- alarms ----------------------------------------------------------------------------------------


def alarm_row(i: int, device_id: str = "default/a", cleared_ms: int | None = None) -> StoredAlarm:
    """Alarm ``a<i>`` of rule ``r<i>`` raised at ``i`` ms."""
    return StoredAlarm(
        f"a{i}", device_id, f"r{i}", "temp", "warning", "hot", 31.5, 30.0, i, None, None, cleared_ms
    )


def test_alarms_are_stored_replaced_and_cleared_ones_pruned(store: EdgeStore) -> None:
    """put_alarms replaces by id, deletes ids, keeps only the newest max_cleared cleared rows."""
    store.put_alarms([alarm_row(1), alarm_row(2)], max_cleared=3)
    acked = msgspec.structs.replace(alarm_row(1), acknowledged_by="me", acknowledged_ms=5)
    store.put_alarms([acked], max_cleared=3)
    assert [(a.id, a.acknowledged_by) for a in store.list_alarms()] == [("a1", "me"), ("a2", None)]
    store.put_alarms([alarm_row(i, cleared_ms=100 + i) for i in range(3, 8)], ["a2"], max_cleared=3)
    assert [a.id for a in store.list_alarms()] == ["a1", "a5", "a6", "a7"]


def test_deleting_a_device_deletes_its_alarms(store: EdgeStore) -> None:
    """The trigger removes a deleted Device's alarm rows and keeps the others'."""
    store.put_object(DEVICE, "default", "a", device("a"))
    store.put_alarms([alarm_row(1), alarm_row(2, "default/b")], max_cleared=10)
    assert store.delete_object(DEVICE, "default", "a")
    assert [a.device_id for a in store.list_alarms()] == ["default/b"]
