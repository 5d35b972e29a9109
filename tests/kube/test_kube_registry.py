"""KubeRegistry against a real kube-apiserver + etcd (tests/kube_cluster.py), deploy/ applied."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube.helpers import device, device_call, device_model, device_status, opened, twin
from kube_cluster import KubeCluster, free_port
from twinplane.cloud.registry.base import (
    RESOURCE_TYPES,
    RESOURCES,
    AlreadyExistsError,
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidError,
    NotFoundError,
    RegistryError,
    Resource,
    WatchEvent,
)
from twinplane.cloud.registry.kube import KubeRegistry

BUILDERS: dict[Resource, Callable[[str, str], dict[str, Any]]] = {
    "devices": device,
    "devicemodels": device_model,
    "devicestatuses": device_status,
    "devicecalls": device_call,
}

WATCH_WITHIN = 15.0
"""Seconds a test waits for the events it expects from a watch."""


async def collect(
    events: AsyncIterator[WatchEvent], until: Callable[[list[WatchEvent]], bool]
) -> list[WatchEvent]:
    """Events of ``events`` until ``until`` holds for them (or the watch ends), bounded in time."""
    seen: list[WatchEvent] = []

    async def read() -> None:
        async for event in events:
            seen.append(event)
            if until(seen):
                return

    await asyncio.wait_for(read(), WATCH_WITHIN)
    return seen


def changes(events: list[WatchEvent]) -> list[tuple[str, str]]:
    """``(type, name)`` of each event but bookmarks."""
    return [(e.type, e.object["metadata"]["name"]) for e in events if e.type != "BOOKMARK"]


@pytest.mark.parametrize("resource", list(RESOURCES))
async def test_create_get_list_replace_patch_delete(
    registry: KubeRegistry, namespace: str, resource: Resource
) -> None:
    """Every write lands and reads back; each resource's kind; 404 after delete, 409 twice."""
    obj = BUILDERS[resource]("one", namespace)
    created = await registry.create(resource, obj)
    assert created["kind"] == RESOURCES[resource]
    assert created["spec"] == obj["spec"]
    assert created["metadata"]["resourceVersion"]
    with pytest.raises(AlreadyExistsError) as exists:
        await registry.create(resource, obj)
    assert (exists.value.status, exists.value.reason) == (409, "AlreadyExists")
    assert '"one" already exists' in exists.value.message

    assert await registry.get(resource, namespace, "one") == created
    items, list_rv = await registry.list(resource, namespace)
    assert [(i["apiVersion"], i["kind"], i["metadata"]["name"]) for i in items] == [
        (RESOURCE_TYPES[resource].group_version, RESOURCES[resource], "one")
    ]
    assert int(list_rv) >= int(created["metadata"]["resourceVersion"])

    labelled = {**created, "metadata": {**created["metadata"], "labels": {"site": "a"}}}
    replaced = await registry.replace(resource, labelled)
    assert replaced["metadata"]["labels"] == {"site": "a"}
    patched = await registry.merge_patch(resource, namespace, "one", {"metadata": {"labels": None}})
    assert "labels" not in patched["metadata"]  # null removes the key: a JSON merge patch

    deleted = await registry.delete(resource, namespace, "one")
    assert deleted["metadata"]["name"] == "one"
    with pytest.raises(NotFoundError) as missing:
        await registry.get(resource, namespace, "one")
    assert missing.value.status == 404
    assert '"one" not found' in missing.value.message
    with pytest.raises(NotFoundError):
        await registry.delete(resource, namespace, "one")


async def test_merge_patch_of_status_twins(registry: KubeRegistry, namespace: str) -> None:
    """A status patch merges maps and replaces lists whole, as RFC 7386 says, in one PATCH."""
    assert registry.status_subresources == frozenset({"devicecalls"})  # none of KubeEdge's
    await registry.create("devicestatuses", device_status("ds", namespace))
    twins = [twin("temperature", "22.0"), twin("humidity", "40")]
    patched = await registry.merge_patch(
        "devicestatuses", namespace, "ds", {"status": {"twins": twins, "state": "offline"}}
    )
    assert patched["status"]["twins"] == twins
    assert patched["status"]["state"] == "offline"
    assert patched["status"]["lastOnlineTime"] == "2026-12-04T06:00:00Z"  # untouched key kept


async def test_list_in_every_namespace(registry: KubeRegistry, deployed: KubeCluster) -> None:
    """``namespace=None`` lists across namespaces."""
    spaces = [f"every-{n}-{time.monotonic_ns()}" for n in (1, 2)]
    for space in spaces:
        deployed.kubectl("create", "namespace", space)
        await registry.create("devicemodels", device_model("m", space))
    items, _ = await registry.list("devicemodels")
    assert {(i["metadata"]["namespace"], i["kind"]) for i in items} >= {
        (space, "DeviceModel") for space in spaces
    }


async def test_watch_from_list_version_sees_later_changes_in_order(
    registry: KubeRegistry, namespace: str
) -> None:
    """A watch from the list's version sees every later change, in order, and nothing before."""
    await registry.create("devices", device("before", namespace))
    _, list_rv = await registry.list("devices", namespace)
    await registry.create("devices", device("a", namespace))
    await registry.merge_patch("devices", namespace, "a", {"metadata": {"labels": {"x": "1"}}})
    await registry.create("devices", device("b", namespace))
    await registry.delete("devices", namespace, "a")

    seen = await collect(
        registry.watch("devices", list_rv, namespace=namespace), lambda s: len(changes(s)) == 4
    )
    assert changes(seen) == [("ADDED", "a"), ("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    versions = [int(e.resource_version) for e in seen if e.type != "BOOKMARK"]
    assert versions == sorted(versions)
    assert versions[0] > int(list_rv)


async def test_watch_of_every_namespace(registry: KubeRegistry, namespace: str) -> None:
    """A watch without a namespace sees this namespace's changes too."""
    _, list_rv = await registry.list("devicestatuses")
    await registry.create("devicestatuses", device_status("w", namespace))
    seen = await collect(
        registry.watch("devicestatuses", list_rv),
        lambda s: ("ADDED", "w") in changes(s),
    )
    assert seen[-1].object["metadata"]["namespace"] == namespace


async def test_bookmarks_arrive_and_the_server_ends_the_watch(
    deployed: KubeCluster, namespace: str
) -> None:
    """A 4 s watch gets a bookmark (2 s before its end), then the server ends it: the loop ends.

    The bookmark carries a version past the list's: a write to another resource moved etcd on,
    and etcd's progress notifications (every second in this cluster) tell the watch cache.
    Bookmarks of a longer watch come about once a minute, which this test does not wait for.
    """
    async with opened(deployed.kubeconfig("admin"), watch_timeout_s=4) as registry:
        _, list_rv = await registry.list("devicestatuses", namespace)
        await registry.create("devicemodels", device_model("elsewhere", namespace))
        started = time.monotonic()
        seen = [e async for e in registry.watch("devicestatuses", list_rv, namespace=namespace)]
        lasted = time.monotonic() - started
    assert seen, "no bookmark before the server ended the watch"
    assert {e.type for e in seen} == {"BOOKMARK"}  # the server may send more than one
    assert {e.object["kind"] for e in seen} == {"DeviceStatus"}
    versions = [int(e.resource_version) for e in seen]
    assert versions == sorted(versions)
    assert versions[-1] > int(list_rv)
    assert 3.0 < lasted < 4.0 + WATCH_WITHIN  # ended by the server at its timeout


async def test_watch_from_a_compacted_version_raises_gone(
    deployed: KubeCluster, namespace: str
) -> None:
    """After a real etcd compaction, a watch from an older version gets the server's 410.

    Through the API server without watch cache (``uncached_kubeconfig``): one with a cache
    serves such a watch from its own history, until that history has moved on.
    """
    async with opened(deployed.uncached_kubeconfig()) as registry:
        _, old_rv = await registry.list("devices", namespace)
        await registry.create("devices", device("c1", namespace))
        await registry.create("devices", device("c2", namespace))
        compacted = deployed.compact_etcd()
        assert compacted > int(old_rv) + 1
        with pytest.raises(GoneError) as gone:
            await collect(registry.watch("devices", old_rv, namespace=namespace), lambda _: False)
        # After the 410 the caller relists: the new version watches fine.
        _, new_rv = await registry.list("devices", namespace)
        await registry.create("devices", device("c3", namespace))
        seen = await collect(
            registry.watch("devices", new_rv, namespace=namespace), lambda s: bool(changes(s))
        )
    assert (gone.value.status, gone.value.reason) == (410, "Expired")
    assert "too old" in gone.value.message
    assert changes(seen) == [("ADDED", "c3")]


async def test_stale_resource_version_conflicts(registry: KubeRegistry, namespace: str) -> None:
    """A replace or a merge patch carrying an old resourceVersion raises ConflictError."""
    first = await registry.create("devices", device("d", namespace))
    await registry.merge_patch("devices", namespace, "d", {"spec": {"nodeName": "edge-2"}})
    stale = first["metadata"]["resourceVersion"]
    with pytest.raises(ConflictError) as replaced:
        await registry.replace("devices", first)
    assert (replaced.value.status, replaced.value.reason) == (409, "Conflict")
    assert "the object has been modified" in replaced.value.message
    with pytest.raises(ConflictError):
        await registry.merge_patch(
            "devices",
            namespace,
            "d",
            {"metadata": {"resourceVersion": stale}, "spec": {"nodeName": "edge-3"}},
        )
    current = await registry.get("devices", namespace, "d")
    assert current["spec"]["nodeName"] == "edge-2"
    fresh = current["metadata"]["resourceVersion"]
    patched = await registry.merge_patch(
        "devices",
        namespace,
        "d",
        {"metadata": {"resourceVersion": fresh}, "spec": {"nodeName": "e4"}},
    )
    assert patched["spec"]["nodeName"] == "e4"


async def test_nobody_is_forbidden(deployed: KubeCluster, namespace: str) -> None:
    """A user bound to no role connects (discovery is public) but may neither list nor create."""
    async with opened(deployed.kubeconfig("nobody")) as registry:
        with pytest.raises(ForbiddenError) as listing:
            await registry.list("devices", namespace)
        with pytest.raises(ForbiddenError) as creating:
            await registry.create("devices", device("n", namespace))
        with pytest.raises(ForbiddenError):
            await registry.list("devicestatuses")
    assert listing.value.status == 403
    assert 'User "nobody" cannot list resource "devices"' in listing.value.message
    assert 'cannot create resource "devices"' in creating.value.message


async def test_twinplane_cloud_has_the_least_privilege_of_deploy_rbac(
    deployed: KubeCluster, namespace: str, registry: KubeRegistry
) -> None:
    """The ServiceAccount of deploy/rbac.yaml reads Devices and writes only DeviceStatuses."""
    await registry.create("devices", device("dev", namespace))
    await registry.create("devicemodels", device_model("thermo-model", namespace))
    async with opened(deployed.kubeconfig("twinplane-cloud")) as cloud:
        items, _ = await cloud.list("devices", namespace)
        assert [i["metadata"]["name"] for i in items] == ["dev"]
        await cloud.get("devicemodels", namespace, "thermo-model")
        await cloud.create("devicestatuses", device_status("dev", namespace))
        patched = await cloud.merge_patch(
            "devicestatuses", namespace, "dev", {"status": {"twins": [twin("temperature", "30")]}}
        )
        assert patched["status"]["twins"][0]["reported"]["value"] == "30"
        await cloud.delete("devicestatuses", namespace, "dev")

        with pytest.raises(ForbiddenError) as creating:
            await cloud.create("devices", device("other", namespace))
        with pytest.raises(ForbiddenError):
            await cloud.merge_patch("devices", namespace, "dev", {"spec": {"nodeName": "x"}})
        with pytest.raises(ForbiddenError):
            await cloud.delete("devicemodels", namespace, "thermo-model")
    user = "system:serviceaccount:twinplane-system:twinplane-cloud"
    assert f'User "{user}" cannot create resource "devices"' in creating.value.message


async def test_schema_violation_is_invalid_with_causes(
    registry: KubeRegistry, namespace: str
) -> None:
    """The CRD schema rejects a bad object with 422; the causes name each field."""
    model = device_model("bad", namespace)
    model["spec"]["properties"][0]["type"] = "COMPLEX"
    with pytest.raises(InvalidError) as invalid:
        await registry.create("devicemodels", model)
    assert (invalid.value.status, invalid.value.reason) == (422, "Invalid")
    assert [c["field"] for c in invalid.value.causes] == ["spec.properties[0].type"]
    assert invalid.value.causes[0]["reason"] == "FieldValueNotSupported"
    assert invalid.value.path == "spec.properties[0].type"
    assert '"COMPLEX"' in invalid.value.message

    dev = device("bad", namespace)
    dev["spec"]["properties"][0]["collectCycle"] = "often"
    dev["spec"]["properties"][0]["desired"] = {"metadata": {}}  # value is required
    with pytest.raises(InvalidError) as two:
        await registry.create("devices", dev)
    assert sorted(c["field"] for c in two.value.causes) == [
        "spec.properties[0].collectCycle",
        "spec.properties[0].desired.value",
    ]


async def test_kubectl_apply_is_seen_by_get(
    registry: KubeRegistry, deployed: KubeCluster, namespace: str
) -> None:
    """A Device applied with kubectl (YAML, the user's way) reads back through the registry."""
    manifest = yaml.safe_dump(device("applied", namespace))
    deployed.kubectl("apply", "-f", "-", stdin=manifest)
    got = await registry.get("devices", namespace, "applied")
    assert got["spec"] == device("applied", namespace)["spec"]
    by_kubectl = json.loads(
        deployed.kubectl("get", "device", "applied", "-n", namespace, "-o", "json").stdout
    )
    assert got["metadata"]["resourceVersion"] == by_kubectl["metadata"]["resourceVersion"]


async def test_merge_patch_many_gives_a_result_per_patch(
    deployed: KubeCluster, namespace: str
) -> None:
    """Results come in order; a missing object is a NotFoundError in its slot, the rest land."""
    async with opened(deployed.kubeconfig("admin"), patch_concurrency=3) as registry:
        names = [f"s{n}" for n in range(10)]
        for name in names:
            await registry.create("devicestatuses", device_status(name, namespace))
        order = [*names[:4], "missing", *names[4:]]
        patches = [
            (namespace, name, {"status": {"twins": [twin("temperature", str(n))]}})
            for n, name in enumerate(order)
        ]
        results = await registry.merge_patch_many("devicestatuses", patches)
    assert len(results) == len(order)
    for n, (name, result) in enumerate(zip(order, results, strict=True)):
        if name == "missing":
            assert isinstance(result, NotFoundError)
            assert '"missing" not found' in result.message
        else:
            assert not isinstance(result, RegistryError), result
            assert result["metadata"]["name"] == name
            assert result["status"]["twins"][0]["reported"]["value"] == str(n)


async def test_close_ends_a_watch(deployed: KubeCluster, namespace: str) -> None:
    """close() ends a watch that is waiting for events: its iterator stops, without an error."""
    registry = KubeRegistry(deployed.kubeconfig("admin"))
    await registry.start()
    _, rv = await registry.list("devices", namespace)
    reading = asyncio.create_task(
        collect(registry.watch("devices", rv, namespace=namespace), lambda _: False)
    )
    await asyncio.sleep(0.5)  # the watch request is open and waiting
    assert not reading.done()
    await registry.close()
    assert await asyncio.wait_for(reading, 5) == []
    with pytest.raises(RegistryError, match="not started"):
        await registry.list("devices", namespace)


async def test_start_fails_on_an_unreachable_server(deployed: KubeCluster, tmp_path: Path) -> None:
    """start() raises RegistryError (503) when nothing listens at the kubeconfig's server."""
    config = yaml.safe_load(deployed.kubeconfig("admin").read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    kubeconfig = tmp_path / "unreachable.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    registry = KubeRegistry(kubeconfig)
    with pytest.raises(RegistryError) as failed:
        await registry.start()
    assert (failed.value.status, failed.value.reason) == (503, "ServiceUnavailable")


async def test_start_fails_on_a_missing_kubeconfig(tmp_path: Path) -> None:
    """start() raises RegistryError naming the file when the kubeconfig does not exist."""
    with pytest.raises(RegistryError, match=r"absent\.kubeconfig"):
        await KubeRegistry(tmp_path / "absent.kubeconfig").start()


def test_constructor_checks_its_bounds() -> None:
    """patch_concurrency and watch_timeout_s must be at least 1."""
    with pytest.raises(ValueError, match="patch_concurrency"):
        KubeRegistry(patch_concurrency=0)
    with pytest.raises(ValueError, match="watch_timeout_s"):
        KubeRegistry(watch_timeout_s=0)
    assert KubeRegistry().name == "kubernetes"


async def test_a_device_call_keeps_its_spec_and_the_cloud_writes_only_its_status(
    deployed: KubeCluster, namespace: str, registry: KubeRegistry
) -> None:
    """deploy/'s DeviceCall CRD refuses a spec change (CEL); the cloud may write status only."""
    assert registry.serves("devicecalls")
    await registry.create("devicecalls", device_call("call", namespace))
    with pytest.raises(InvalidError) as immutable:
        await registry.merge_patch(
            "devicecalls", namespace, "call", {"spec": {"arguments": {"setpoint": 99}}}
        )
    assert "spec is immutable" in immutable.value.message
    with pytest.raises(InvalidError) as state:
        await registry.merge_patch("devicecalls", namespace, "call", {"status": {"state": "Done"}})
    assert "status.state" in state.value.message
    async with opened(deployed.kubeconfig("twinplane-cloud")) as cloud:
        done = await cloud.merge_patch(
            "devicecalls", namespace, "call", {"status": {"state": "Succeeded", "node": "a"}}
        )
        assert (done["status"]["state"], done["spec"]["method"]) == ("Succeeded", "setpoint")
        with pytest.raises(ForbiddenError):
            await cloud.create("devicecalls", device_call("forged", namespace))
        with pytest.raises(ForbiddenError):
            await cloud.delete("devicecalls", namespace, "call")
