"""KubeRegistry on a DeviceStatus CRD that has a ``status`` subresource (KubeEdge's has none).

The module turns the subresource on in the session's CRD (a JSON patch of ``v1beta1``) and off
again afterwards; the writes go as ``twinplane-cloud``, so deploy/rbac.yaml's
``devicestatuses/status`` rule is exercised too.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from kube.helpers import device_status, opened, twin
from kube_cluster import KubeCluster
from twinplane.cloud.registry.base import GROUP_VERSION, ConflictError
from twinplane.cloud.registry.kube import KubeRegistry

CRD = "crd/devicestatuses.devices.kubeedge.io"
V1BETA1 = "/spec/versions/1"  # the CRD lists v1alpha2, then v1beta1

CHANGES_WITHIN = 30.0
"""Seconds the API server may take to serve a changed CRD."""


def served(cluster: KubeCluster) -> set[str]:
    """The resources discovery lists for devices.kubeedge.io/v1beta1."""
    answer = cluster.kubectl("get", "--raw", f"/apis/{GROUP_VERSION}").stdout
    return {resource["name"] for resource in json.loads(answer)["resources"]}


def patch_crd(cluster: KubeCluster, op: str, *, present: bool) -> None:
    """Adds or removes v1beta1's subresources; waits until discovery shows it."""
    change: dict[str, object] = {"op": op, "path": f"{V1BETA1}/subresources"}
    if op == "add":
        change["value"] = {"status": {}}
    ops = [{"op": "test", "path": f"{V1BETA1}/name", "value": "v1beta1"}, change]
    cluster.kubectl("patch", CRD, "--type=json", "-p", json.dumps(ops))
    deadline = time.monotonic() + CHANGES_WITHIN
    while ("devicestatuses/status" in served(cluster)) != present:
        if time.monotonic() > deadline:
            raise AssertionError(f"discovery did not follow the CRD within {CHANGES_WITHIN}s")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def with_status_subresource(deployed: KubeCluster) -> Iterator[KubeCluster]:
    """The cluster while DeviceStatus v1beta1 has a status subresource."""
    patch_crd(deployed, "add", present=True)
    try:
        yield deployed
    finally:
        patch_crd(deployed, "remove", present=False)


@pytest.fixture
async def cloud(with_status_subresource: KubeCluster) -> AsyncIterator[KubeRegistry]:
    """A registry as twinplane-cloud, started while the subresource is served."""
    async with opened(with_status_subresource.kubeconfig("twinplane-cloud")) as registry:
        yield registry


async def test_status_writes_go_through_the_subresource(
    cloud: KubeRegistry, with_status_subresource: KubeCluster, namespace: str
) -> None:
    """Create, merge patch and replace write status through /status when the CRD has it."""
    cluster = with_status_subresource
    assert cloud.status_subresources == frozenset({"devicestatuses", "devicecalls"})
    created = await cloud.create("devicestatuses", device_status("ds", namespace, value="1"))
    assert created["status"]["twins"] == [twin("temperature", "1")]

    # What the registry works around: the object's own endpoint ignores status now.
    cluster.kubectl(
        "patch", "devicestatus", "ds", "-n", namespace, "--type=merge",
        "-p", json.dumps({"status": {"state": "ignored"}}),
    )  # fmt: skip
    assert (await cloud.get("devicestatuses", namespace, "ds"))["status"]["state"] == "online"

    patched = await cloud.merge_patch(
        "devicestatuses", namespace, "ds", {"status": {"twins": [twin("temperature", "2")]}}
    )
    assert patched["status"]["twins"] == [twin("temperature", "2")]

    both = await cloud.merge_patch(
        "devicestatuses",
        namespace,
        "ds",
        {"metadata": {"labels": {"node": "edge-1"}}, "status": {"state": "offline"}},
    )
    assert both["metadata"]["labels"] == {"node": "edge-1"}
    assert both["status"]["state"] == "offline"

    with pytest.raises(ConflictError):
        await cloud.merge_patch(
            "devicestatuses",
            namespace,
            "ds",
            {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]},
             "status": {"state": "stale"}},
        )  # fmt: skip

    replaced = await cloud.replace(
        "devicestatuses", {**both, "status": {**both["status"], "state": "online"}}
    )
    assert replaced["status"]["state"] == "online"
    assert (await cloud.get("devicestatuses", namespace, "ds"))["status"]["state"] == "online"
