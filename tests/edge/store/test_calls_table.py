"""The ``calls`` table: newest first, open calls, pruning of finished ones, cascade on delete."""

from __future__ import annotations

from edge.store.helpers import device
from twinplane.edge.store import DEVICE, EdgeStore


def row(
    call_id: str, state: str, created_ms: int, device_id: str = "default/a"
) -> tuple[str, str, str, str, str, int]:
    """A stored call (the body is opaque to the table)."""
    return (call_id, device_id, "setpoint", f'{{"id": "{call_id}"}}', state, created_ms)


def test_calls_list_newest_first_and_open_calls_oldest_first(store: EdgeStore) -> None:
    """A device's calls list newest first; open (Pending/Sent) calls list oldest first."""
    store.put_call(row("c1", "Succeeded", 1))
    store.put_call(row("c2", "Pending", 2))
    store.put_call(row("c3", "Sent", 3))
    store.put_call(row("x", "Pending", 4, "default/b"))
    assert [r[0] for r in store.list_calls("default/a")] == ["c3", "c2", "c1"]
    assert [r[0] for r in store.list_calls("default/a", limit=1)] == ["c3"]
    assert [r[0] for r in store.open_calls()] == ["c2", "c3", "x"]
    assert store.get_call("c1") == row("c1", "Succeeded", 1)
    assert store.get_call("none") is None


def test_finished_calls_are_pruned_to_keep_per_device_open_ones_never(store: EdgeStore) -> None:
    """Only the newest ``keep`` finished calls of a device stay; open calls are never pruned."""
    store.put_call(row("open", "Pending", 0))
    for i in range(5):
        store.put_call(row(f"f{i}", "Failed", i + 1), keep=2)
    store.put_call(row("other", "Failed", 0, "default/b"), keep=2)
    assert [r[0] for r in store.list_calls("default/a")] == ["f4", "f3", "open"]
    assert [r[0] for r in store.list_calls("default/b")] == ["other"]


def test_deleting_a_device_deletes_its_calls(store: EdgeStore) -> None:
    """Deleting a Device deletes its calls and no other device's."""
    store.put_object(DEVICE, "default", "a", device("a"))
    store.put_call(row("c1", "Pending", 1))
    store.put_call(row("x", "Pending", 1, "default/b"))
    assert store.delete_object(DEVICE, "default", "a")
    assert store.list_calls("default/a") == []
    assert [r[0] for r in store.open_calls()] == ["x"]
