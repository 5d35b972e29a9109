"""Issue 10 §4 end to end: kubectl on a real kube-apiserver drives the cloud, two edges, a mapper.

The cloud runs in this process on the Kubernetes registry as ``twinplane-cloud``, the
least-privilege ServiceAccount of ``deploy/rbac.yaml``; the edges ``node-a`` and ``node-b`` are
in-process :class:`~twinplane.edge.app.EdgeApp` s linked to it over WebSocket; a real
``twinplane mapper --protocol virtual`` subprocess serves node-a's edge over DMI. Every change is
made with kubectl, as a user makes it; what an edge holds is read from the edge, what the mapper
serves from its REST data API, and what the cloud wrote with ``kubectl get devicestatus -o yaml``.
No test calls ``apply_reported``: every reported value is one the mapper read from its device.

Each test has a namespace of its own (``kube/conftest.py``) and deletes its Devices before its
cloud stops: the cloud watches every namespace, so a Device left on node-a would reach the next
test's node-a edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from cloud_helpers import VMODEL, cloud_home, edge_for, running_cloud, vdevice, vmodel
from edge_helpers import edge_command
from kube_cluster import KubeCluster, free_port
from twinplane.cloud.app import CloudApp
from twinplane.edge.app import EdgeApp
from twinplane.edge.core import EdgeCore

pytestmark = pytest.mark.slow

WITHIN = 30.0
"""Longest wait for any one thing to happen, in seconds."""

DEVICE = "pump"
TEMPERATURE = "23.5"
"""The virtual device's constant temperature: a value only the mapper's reads produce."""

MAPPER = "virtual-mapper"
"""The name the mapper registers with (``<protocol>-mapper``)."""


# -- waiting -------------------------------------------------------------------------------------


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Polls the coroutine function ``check`` until it returns true; fails after :data:`WITHIN`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WITHIN
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {WITHIN}s waiting for {what}")
        await asyncio.sleep(0.1)


def core_of(edge: EdgeApp) -> EdgeCore:
    """The edge's registry and twins."""
    assert edge.core is not None
    return edge.core


# -- the mapper ----------------------------------------------------------------------------------


@dataclass
class Mapper:
    """A ``twinplane mapper --protocol virtual`` subprocess and its REST data API."""

    proc: asyncio.subprocess.Process
    url: str
    log: Path
    http: aiohttp.ClientSession

    async def answer(self, path: str) -> tuple[int, Any]:
        """``GET`` of a REST data API path: the status and the JSON body (``None`` if none)."""
        async with self.http.get(self.url + path, timeout=aiohttp.ClientTimeout(5)) as resp:
            return resp.status, await resp.json(content_type=None)

    async def serves(self, namespace: str, name: str) -> bool:
        """Whether the mapper runs the device (its REST API answers 404 for one it does not)."""
        status, _ = await self.answer(f"/api/v1/device/{namespace}/{name}")
        assert status in (200, 404), f"the mapper answered {status}:\n{self.output()}"
        return status == 200

    def output(self) -> str:
        """What the mapper printed, for a failure."""
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else ""


@contextlib.asynccontextmanager
async def running_mapper(home: Path, edge: EdgeApp) -> AsyncIterator[Mapper]:
    """The mapper on ``edge``'s DMI socket, once its REST API answers and the edge knows it."""
    port = free_port()
    log = home / "mapper.log"
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            *edge_command(),
            *("mapper", "--protocol", "virtual", "--socket", str(home / "mapper.sock")),
            *("--edgecore-sock", str(edge.config.socket_path), "--home", str(home / "state")),
            *("--http-port", str(port), "--log-level", "warning"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    async with aiohttp.ClientSession() as http:
        mapper = Mapper(proc, f"http://127.0.0.1:{port}", log, http)
        try:

            async def ready() -> bool:
                assert proc.returncode is None, f"the mapper exited:\n{mapper.output()}"
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    if (await mapper.answer("/api/v1/ping"))[0] == 200:
                        return edge.mappers is not None and MAPPER in edge.mappers.links
                return False

            await eventually(ready, "the mapper's REST API and its registration with node-a")
            yield mapper
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


# -- the fleet -----------------------------------------------------------------------------------


@dataclass
class Fleet:
    """The cluster, the test's namespace, the cloud on it, node-a (with the mapper) and node-b."""

    cluster: KubeCluster
    namespace: str
    cloud: CloudApp
    a: EdgeApp
    b: EdgeApp
    mapper: Mapper

    @property
    def key(self) -> str:
        """The device's id on an edge: ``<namespace>/<name>``."""
        return f"{self.namespace}/{DEVICE}"

    async def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        """``kubectl ARGS -n <namespace>`` as admin (a user), off the event loop; its output."""
        done = await asyncio.to_thread(
            self.cluster.kubectl, *args, "-n", self.namespace, stdin=stdin, check=check
        )
        return done.stdout if done.returncode == 0 else done.stderr

    async def get(self, kind: str, name: str = DEVICE) -> dict[str, Any] | None:
        """``kubectl get KIND NAME -o yaml``, parsed; ``None`` when it is not found."""
        done = await asyncio.to_thread(
            self.cluster.kubectl, "get", kind, name, "-n", self.namespace, "-o", "yaml", check=False
        )
        if done.returncode != 0:
            assert "NotFound" in done.stderr, done.stderr
            return None
        obj: dict[str, Any] = yaml.safe_load(done.stdout)
        return obj

    async def twins(self) -> dict[str, dict[str, Any]]:
        """The DeviceStatus's ``status.twins`` by property (empty while it does not exist)."""
        status = await self.get("devicestatus")
        twins = ((status or {}).get("status") or {}).get("twins") or []
        return {t["propertyName"]: t for t in twins}

    async def on_edge(self, edge: EdgeApp, *, present: bool = True) -> None:
        """Waits until the device is on ``edge`` (or, with ``present=False``, gone from it)."""
        node = edge.config.node_name

        async def there() -> bool:
            return (self.key in core_of(edge).devices) == present

        await eventually(there, f"{self.key} {'on' if present else 'gone from'} {node}'s edge")

    async def on_mapper(self, *, present: bool = True) -> None:
        """Waits until the mapper runs the device (or, with ``present=False``, has dropped it)."""

        async def there() -> bool:
            return await self.mapper.serves(self.namespace, DEVICE) == present

        what = f"{self.key} {'served by' if present else 'dropped by'} the mapper"
        try:
            await eventually(there, what)
        except AssertionError as failure:
            raise AssertionError(f"{failure}\n{self.mapper.output()}") from None


def device(namespace: str, node: str) -> dict[str, Any]:
    """The Device: a constant temperature (:data:`TEMPERATURE`), a held setpoint, fast cycles."""
    body = vdevice(DEVICE, node, namespace=namespace)
    for prop in body["spec"]["properties"]:
        prop.update(collectCycle=200, reportCycle=200, reportToCloud=True)
    body["spec"]["properties"][0]["visitors"]["configData"] = {
        "kind": "constant",
        "value": float(TEMPERATURE),
    }
    return body


def manifest(namespace: str, node: str) -> str:
    """The DeviceModel and the Device on ``node``, as the YAML a user pipes into kubectl."""
    return yaml.safe_dump_all([vmodel(namespace), device(namespace, node)], sort_keys=False)


@pytest.fixture
async def fleet(deployed: KubeCluster, namespace: str) -> AsyncIterator[Fleet]:
    """The cloud as ``twinplane-cloud``, node-a's and node-b's edges, the mapper on node-a."""
    with cloud_home() as c, cloud_home() as ha, cloud_home() as hb, cloud_home() as hm:
        kubeconfig = deployed.kubeconfig("twinplane-cloud")
        async with running_cloud(c, kubeconfig=kubeconfig) as cloud:
            assert cloud.registry is not None
            assert cloud.registry.name == "kubernetes"
            a, b = edge_for(cloud, ha, "node-a"), edge_for(cloud, hb, "node-b")
            try:
                await a.start()
                await b.start()
                async with running_mapper(hm, a) as mapper:
                    run = Fleet(deployed, namespace, cloud, a, b, mapper)
                    try:
                        yield run
                    finally:  # while all runs: the cloud deletes the DeviceStatus objects too
                        await run.kubectl("delete", "devices", "--all")
                        await run.on_edge(a, present=False)
                        await run.on_edge(b, present=False)
                        await run.on_mapper(present=False)
            finally:
                await a.stop()
                await b.stop()


# -- the tests -----------------------------------------------------------------------------------


async def test_an_applied_device_reaches_its_node_and_mapper_and_reports_into_devicestatus(
    fleet: Fleet,
) -> None:
    """``kubectl apply``: node-a's edge and mapper get the device, node-b not; its twins come up.

    The temperature the mapper reads reaches node-a's twin and then the DeviceStatus that
    ``kubectl get devicestatus -o yaml`` shows, which the Device owns as its controller.
    """
    applied = await fleet.kubectl("apply", "-f", "-", stdin=manifest(fleet.namespace, "node-a"))
    assert f"devicemodel.devices.kubeedge.io/{VMODEL} created" in applied, applied
    assert f"device.devices.kubeedge.io/{DEVICE} created" in applied, applied
    a, b = core_of(fleet.a), core_of(fleet.b)
    await fleet.on_edge(fleet.a)
    assert f"{fleet.namespace}/{VMODEL}" in a.models  # the model came with it
    await fleet.on_mapper()

    async def read_by_the_mapper() -> bool:
        reported = a.twins(fleet.key)["temperature"]["reported"]
        return reported is not None and reported["value"] == TEMPERATURE

    await eventually(read_by_the_mapper, "the mapper's temperature reported on node-a's twin")

    async def in_devicestatus() -> bool:
        reported = (await fleet.twins()).get("temperature", {}).get("reported") or {}
        return reported.get("value") == TEMPERATURE

    await eventually(in_devicestatus, "the reported temperature in kubectl get devicestatus")
    status = await fleet.get("devicestatus")
    owner = await fleet.get("device")
    assert status is not None
    assert owner is not None
    assert status["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "devices.kubeedge.io/v1beta1",
            "kind": "Device",
            "name": DEVICE,
            "uid": owner["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    temperature = (await fleet.twins())["temperature"]["reported"]
    assert temperature["metadata"]["type"] == "FLOAT"
    assert int(temperature["metadata"]["timestamp"]) > 0
    assert fleet.key not in b.devices
    assert f"{fleet.namespace}/{VMODEL}" not in b.models


async def test_a_desired_value_patched_with_kubectl_reaches_the_edge_and_devicestatus(
    fleet: Fleet,
) -> None:
    """``kubectl patch`` of ``spec.properties[].desired``: node-a's desired twin, observedDesired.

    The mapper writes it to the device and reads it back, so it is reported as well.
    """
    await fleet.kubectl("apply", "-f", "-", stdin=manifest(fleet.namespace, "node-a"))
    await fleet.on_edge(fleet.a)
    await fleet.on_mapper()
    a = core_of(fleet.a)
    assert a.twins(fleet.key)["setpoint"]["desired"] is None
    properties = device(fleet.namespace, "node-a")["spec"]["properties"]
    properties[1]["desired"] = {"value": "42"}  # a merge patch replaces the list whole
    patch = json.dumps({"spec": {"properties": properties}})
    patched = await fleet.kubectl("patch", "device", DEVICE, "--type", "merge", "-p", patch)
    assert "patched" in patched, patched

    async def desired_on_edge() -> bool:
        desired = a.twins(fleet.key)["setpoint"]["desired"]
        return desired is not None and desired["value"] == "42"

    await eventually(desired_on_edge, "the patched desired setpoint on node-a's twin")

    async def observed() -> bool:
        setpoint = (await fleet.twins()).get("setpoint", {})
        return (setpoint.get("observedDesired") or {}).get("value") == "42" and (
            setpoint.get("reported") or {}
        ).get("value") == "42"

    await eventually(observed, "setpoint 42 observedDesired and reported in the DeviceStatus")
    status, body = await fleet.mapper.answer(f"/api/v1/device/{fleet.namespace}/{DEVICE}/setpoint")
    assert (status, body["Data"]["Value"]) == (200, "42"), body


async def test_a_device_deleted_with_kubectl_leaves_its_edge_and_mapper_and_its_status_goes(
    fleet: Fleet,
) -> None:
    """``kubectl delete device``: gone from node-a's edge and mapper; its DeviceStatus deleted.

    No garbage collector runs here (no kube-controller-manager): the cloud deletes it itself.
    """
    await fleet.kubectl("apply", "-f", "-", stdin=manifest(fleet.namespace, "node-a"))
    await fleet.on_edge(fleet.a)
    await fleet.on_mapper()

    async def has_status() -> bool:
        return "temperature" in await fleet.twins()

    await eventually(has_status, "the DeviceStatus with the reported temperature")
    deleted = await fleet.kubectl("delete", "device", DEVICE)
    assert f'device.devices.kubeedge.io "{DEVICE}" deleted' in deleted, deleted
    await fleet.on_edge(fleet.a, present=False)
    await fleet.on_mapper(present=False)

    async def status_gone() -> bool:
        return await fleet.get("devicestatus") is None

    await eventually(status_gone, "the DeviceStatus deleted by the cloud")
    a = core_of(fleet.a)

    async def model_gone() -> bool:
        return f"{fleet.namespace}/{VMODEL}" not in a.models

    await eventually(model_gone, "the model, which no device on node-a uses now, gone from it")
    assert await fleet.get("devicemodel", VMODEL) is not None  # only the edge drops it


async def test_a_device_moved_with_kubectl_leaves_node_a_and_arrives_on_node_b(
    fleet: Fleet,
) -> None:
    """``spec.nodeName`` node-a → node-b: removed from node-a's edge and mapper, added on node-b."""
    await fleet.kubectl("apply", "-f", "-", stdin=manifest(fleet.namespace, "node-a"))
    await fleet.on_edge(fleet.a)
    await fleet.on_mapper()
    assert fleet.key not in core_of(fleet.b).devices
    patch = json.dumps({"spec": {"nodeName": "node-b"}})
    await fleet.kubectl("patch", "device", DEVICE, "--type", "merge", "-p", patch)
    await fleet.on_edge(fleet.b)
    assert f"{fleet.namespace}/{VMODEL}" in core_of(fleet.b).models
    await fleet.on_edge(fleet.a, present=False)
    await fleet.on_mapper(present=False)
    moved = await fleet.get("device")
    assert moved is not None
    assert moved["spec"]["nodeName"] == "node-b"
    assert await fleet.get("devicestatus") is not None  # the same Device: its status stays


async def test_a_device_call_applied_with_kubectl_writes_through_the_mapper_and_fills_status(
    fleet: Fleet,
) -> None:
    """``kubectl apply`` of a DeviceCall: the mapper writes the setpoint; the call Succeeded.

    The call is twinplane's own CRD (deploy/crds/twinplane_v1alpha1_devicecall.yaml); the cloud
    (as ``twinplane-cloud``) delivers it to node-a and writes the outcome into its status
    subresource, which ``kubectl get devicecall`` shows in its State column.
    """
    body = device(fleet.namespace, "node-a")
    body["spec"]["methods"] = [{"name": "set", "propertyNames": ["setpoint"]}]
    stream = yaml.safe_dump_all([vmodel(fleet.namespace), body], sort_keys=False)
    await fleet.kubectl("apply", "-f", "-", stdin=stream)
    await fleet.on_edge(fleet.a)
    await fleet.on_mapper()

    async def online() -> bool:
        state = core_of(fleet.a).states.get(fleet.key)
        return state is not None and state.state in ("online", "ok")

    await eventually(online, "the mapper reporting the device online")
    call = {
        "apiVersion": "twinplane.io/v1alpha1",
        "kind": "DeviceCall",
        "metadata": {"name": "set-33"},
        "spec": {"deviceRef": {"name": DEVICE}, "method": "set", "arguments": {"setpoint": 33}},
    }
    created = await fleet.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(call))
    assert "devicecall.twinplane.io/set-33 created" in created, created

    async def succeeded() -> bool:
        obj = await fleet.get("devicecall", "set-33")
        return ((obj or {}).get("status") or {}).get("state") == "Succeeded"

    await eventually(succeeded, "kubectl get devicecall set-33: Succeeded")
    obj = await fleet.get("devicecall", "set-33")
    assert obj is not None
    assert obj["status"]["node"] == "node-a"
    # The mapper offers twinplane's Methods service: the write went straight to its driver.
    assert obj["status"]["result"] == {"written": {"setpoint": "33"}}

    async def read_back() -> bool:  # the mapper's next poll of the device shows it
        status, answer = await fleet.mapper.answer(
            f"/api/v1/device/{fleet.namespace}/{DEVICE}/setpoint"
        )
        return status == 200 and answer["Data"]["Value"] == "33"

    await eventually(read_back, "setpoint 33 read back by the mapper")
    listed = await fleet.kubectl("get", "devicecalls")
    assert "Succeeded" in listed, listed
    assert "node-a" in listed, listed
    refused = await fleet.kubectl(
        "patch", "devicecall", "set-33", "--type", "merge",
        "-p", '{"spec": {"arguments": {"setpoint": 34}}}', check=False,
    )  # fmt: skip
    assert "spec is immutable" in refused, refused


async def test_device_events_become_kubernetes_events_on_the_device(fleet: Fleet) -> None:
    """The edge's DeviceOnline reaches ``kubectl get events`` on the Device, from node-a."""
    await fleet.kubectl("apply", "-f", "-", stdin=manifest(fleet.namespace, "node-a"))
    await fleet.on_edge(fleet.a)
    await fleet.on_mapper()
    selector = f"involvedObject.kind=Device,involvedObject.name={DEVICE}"
    seen: list[dict[str, Any]] = []

    async def online_event() -> bool:
        text = await fleet.kubectl("get", "events", "--field-selector", selector, "-o", "yaml")
        seen[:] = (yaml.safe_load(text) or {}).get("items") or []
        return any(e.get("reason") == "DeviceOnline" for e in seen)

    await eventually(online_event, "a DeviceOnline Event on the Device")
    event = next(e for e in seen if e["reason"] == "DeviceOnline")
    device_obj = await fleet.get("device")
    assert device_obj is not None
    assert event["involvedObject"]["uid"] == device_obj["metadata"]["uid"]
    assert (event["type"], event["source"]["host"]) == ("Normal", "node-a")
    assert event["count"] >= 1
    described = await fleet.kubectl("describe", "device", DEVICE)
    assert "DeviceOnline" in described, described
