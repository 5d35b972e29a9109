"""The embedded registry keeps Kubernetes' semantics in one SQLite file, across restarts.

Versions keep growing after a reopen, a watch from a version taken before a restart still sees
every change after it, merge patches follow RFC 7386, a batch of patches reports each failure in
its own slot, and deleting a Device removes the DeviceStatus it controls.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cloud_helpers import vdevice, vmodel
from twinplane.cloud.controller import device_status_object
from twinplane.cloud.registry import (
    ConflictError,
    GoneError,
    InvalidError,
    NotFoundError,
    WatchEvent,
)
from twinplane.cloud.registry.embedded import EmbeddedRegistry, merge_patch


async def opened(path: Path, **settings: float) -> EmbeddedRegistry:
    """A started registry on ``path``."""
    registry = EmbeddedRegistry(path, **settings)  # type: ignore[arg-type]
    await registry.start()
    return registry


async def take(registry: EmbeddedRegistry, since: str, count: int) -> list[WatchEvent]:
    """The first ``count`` events (bookmarks left out) of a devices watch from ``since``."""
    seen: list[WatchEvent] = []
    async with asyncio.timeout(5):
        async for event in registry.watch("devices", since):
            if event.type != "BOOKMARK":
                seen.append(event)
            if len(seen) == count:
                break
    return seen


async def test_versions_and_the_change_log_survive_a_restart(tmp_path: Path) -> None:
    """A watch from a version taken before the restart replays what came after, in order."""
    path = tmp_path / "registry.db"
    registry = await opened(path)
    await registry.create("devicemodels", vmodel())
    _, since = await registry.list("devices")
    await registry.create("devices", vdevice("a", "node-a"))
    await registry.close()

    registry = await opened(path)
    try:
        await registry.create("devices", vdevice("b", "node-a"))
        items, version = await registry.list("devices")
        assert [o["metadata"]["name"] for o in items] == ["a", "b"]
        assert int(version) > int(since)
        events = await take(registry, since, 2)
        assert [(e.type, e.object["metadata"]["name"]) for e in events] == [
            ("ADDED", "a"),
            ("ADDED", "b"),
        ]
        versions = [int(e.resource_version) for e in events]
        assert versions == sorted(versions)
    finally:
        await registry.close()


async def test_an_expired_version_raises_gone_and_bookmarks_move_an_idle_watch(
    tmp_path: Path,
) -> None:
    """Past the kept log a watch is Gone; an idle watch gets bookmarks with the current version."""
    registry = await opened(tmp_path / "r.db", keep_changes=3, bookmark_interval=0.2)
    try:
        await registry.create("devicemodels", vmodel())
        _, old = await registry.list("devices")
        for i in range(6):
            await registry.create("devices", vdevice(f"d{i}", "node-a"))
        with pytest.raises(GoneError):
            async for _ in registry.watch("devices", old):
                pass
        _, now = await registry.list("devices")
        async with asyncio.timeout(5):
            async for event in registry.watch("devices", now):
                assert event.type == "BOOKMARK"
                assert event.resource_version == now
                break
    finally:
        await registry.close()


async def test_merge_patches_follow_rfc_7386_and_conditions(tmp_path: Path) -> None:
    """A null removes a key, objects merge, lists are replaced; a stale version conflicts."""
    assert merge_patch({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": None}, "l": [2]}) == {
        "a": {"c": 2},
        "l": [2],
    }
    registry = await opened(tmp_path / "r.db")
    try:
        await registry.create("devicemodels", vmodel())
        device = await registry.create("devices", vdevice("d", "node-a"))
        patched = await registry.merge_patch(
            "devices", "default", "d", {"metadata": {"labels": {"x": "1", "y": "2"}}}
        )
        patched = await registry.merge_patch(
            "devices", "default", "d", {"metadata": {"labels": {"x": None}}}
        )
        assert patched["metadata"]["labels"] == {"y": "2"}
        assert patched["metadata"]["uid"] == device["metadata"]["uid"]
        assert patched["metadata"]["generation"] == 1  # metadata only: the spec is the same
        stale = {"metadata": {"resourceVersion": device["metadata"]["resourceVersion"]}}
        with pytest.raises(ConflictError):
            await registry.merge_patch("devices", "default", "d", stale)
        with pytest.raises(InvalidError) as invalid:
            await registry.merge_patch(
                "devices", "default", "d", {"spec": {"deviceModelRef": None}}
            )
        assert any("deviceModelRef" in c["field"] for c in invalid.value.causes)
        unchanged = await registry.get("devices", "default", "d")
        assert unchanged["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]
    finally:
        await registry.close()


async def test_a_batch_of_status_patches_fails_per_patch_and_a_delete_cascades(
    tmp_path: Path,
) -> None:
    """A missing object fails its own slot only; deleting a Device removes its DeviceStatus."""
    registry = await opened(tmp_path / "r.db")
    try:
        await registry.create("devicemodels", vmodel())
        for name in ("p", "q"):
            device = await registry.create("devices", vdevice(name, "node-a"))
            await registry.create("devicestatuses", device_status_object(device))
        state = {"status": {"state": "online"}}
        results = await registry.merge_patch_many(
            "devicestatuses",
            [("default", "p", state), ("default", "missing", state), ("default", "q", state)],
        )
        assert isinstance(results[1], NotFoundError)
        assert [r["status"]["state"] for r in (results[0], results[2])] == ["online", "online"]  # type: ignore[index]
        await registry.delete("devices", "default", "p")
        statuses, _ = await registry.list("devicestatuses")
        assert [s["metadata"]["name"] for s in statuses] == ["q"]
    finally:
        await registry.close()


def device_call(name: str, device: str, **spec: object) -> dict[str, object]:
    """A DeviceCall of ``setpoint`` on ``device``."""
    return {
        "apiVersion": "twinplane.io/v1alpha1",
        "kind": "DeviceCall",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"deviceRef": {"name": device}, "method": "setpoint", **spec},
    }


async def test_device_calls_validate_keep_spec_immutable_and_go_with_their_device(
    tmp_path: Path,
) -> None:
    """A DeviceCall's bad fields are named; its spec cannot change; status can; owner cascades."""
    registry = await opened(tmp_path / "r.db")
    try:
        with pytest.raises(InvalidError) as bad:
            await registry.create(
                "devicecalls",
                device_call("c0", "Not_A_Name", timeoutSeconds=0, arguments=[1]),
            )
        fields = [c["field"] for c in bad.value.causes]
        assert fields == ["spec.deviceRef.name", "spec.arguments", "spec.timeoutSeconds"]

        await registry.create("devicemodels", vmodel())
        device = await registry.create("devices", vdevice("p", "node-a"))
        owner = {
            "apiVersion": "devices.kubeedge.io/v1beta1",
            "kind": "Device",
            "name": "p",
            "uid": device["metadata"]["uid"],
            "controller": True,
        }
        call = device_call("c1", "p", arguments={"setpoint": 21}, ttlSeconds=60)
        call["metadata"] = {"name": "c1", "namespace": "default", "ownerReferences": [owner]}
        created = await registry.create("devicecalls", call)
        assert created["apiVersion"] == "twinplane.io/v1alpha1"

        with pytest.raises(InvalidError) as immutable:
            await registry.merge_patch(
                "devicecalls", "default", "c1", {"spec": {"arguments": {"setpoint": 99}}}
            )
        assert immutable.value.causes[0]["field"] == "spec"
        with pytest.raises(InvalidError) as state:
            await registry.merge_patch(
                "devicecalls", "default", "c1", {"status": {"state": "Done"}}
            )
        assert state.value.causes[0]["field"] == "status.state"
        done = await registry.merge_patch(
            "devicecalls", "default", "c1", {"status": {"state": "Succeeded"}}
        )
        assert done["status"]["state"] == "Succeeded"
        assert done["spec"]["arguments"] == {"setpoint": 21}  # the refused patches changed nothing

        await registry.delete("devices", "default", "p")
        calls, _ = await registry.list("devicecalls")
        assert calls == []
    finally:
        await registry.close()
