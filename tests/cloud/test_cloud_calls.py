"""Method calls made in the cloud: DeviceCall objects reach the edge and their outcome comes back.

Every cloud here runs the embedded registry in this process and every edge is a real device
manager linked over a real WebSocket. The edge delivers a property-writing call as desired
values and waits for the device to report them; the test plays the mapper's part by reporting
the value (``EdgeCore.apply_reported``), so what is checked is the link, the controller and the
edge's call service.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import aiohttp
import pytest

from cloud_helpers import cloud_home, edge_for, opened_registry, running_cloud, vdevice, vmodel
from twinplane.cloud import wire
from twinplane.cloud.app import CloudApp
from twinplane.edge.app import EdgeApp
from twinplane.edge.core import EdgeCore
from waits import until

pytestmark = pytest.mark.slow

CALLS: Final = "devicecalls"


def device_with_method(name: str, node: str) -> dict[str, Any]:
    """A virtual Device whose method ``set`` writes its setpoint (0..100 in the model)."""
    body: dict[str, Any] = vdevice(name, node)
    body["spec"]["methods"] = [{"name": "set", "propertyNames": ["setpoint"]}]
    return body


def device_call(name: str, device: str, setpoint: int, **spec: Any) -> dict[str, Any]:  # noqa: ANN401
    """A DeviceCall of ``set`` with ``setpoint``."""
    return {
        "apiVersion": "twinplane.io/v1alpha1",
        "kind": "DeviceCall",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "deviceRef": {"name": device},
            "method": "set",
            "arguments": {"setpoint": setpoint},
            "timeoutSeconds": 10,
            **spec,
        },
    }


async def call_status(cloud: CloudApp, name: str) -> dict[str, Any]:
    """``status`` of the DeviceCall ``default/name``."""
    assert cloud.registry is not None
    obj = await cloud.registry.get(CALLS, "default", name)
    status: dict[str, Any] = obj.get("status") or {}
    return status


async def wait_state(cloud: CloudApp, name: str, state: str) -> dict[str, Any]:
    """Waits until the call's ``status.state`` is ``state``; its status."""
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        seen.update(await call_status(cloud, name))
        return seen.get("state") == state

    await until_true(reached, f"{name} {state}")
    return seen


async def until_true(check: Callable[[], Awaitable[bool]], what: str, within: float = 15) -> None:
    """Awaits ``check`` every 20 ms until it is true; fails the test after ``within`` s."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


def core_of(edge: EdgeApp) -> EdgeCore:
    """The edge's registry and twins."""
    assert edge.core is not None
    return edge.core


async def play_mapper(edge: EdgeApp, device: str, value: str) -> None:
    """Once the edge sent a call's desired value, the device reports it (as a mapper would)."""
    assert edge.calls is not None
    ns, name = device.split("/")

    async def sent() -> bool:
        assert edge.calls is not None
        return any(c.state == "Sent" for c in await edge.calls.list_calls(ns, name))

    await until_true(sent, f"a call of {device} sent")
    core_of(edge).apply_reported(device, [("setpoint", value, int(time.time() * 1000))])


async def test_a_device_call_reaches_its_edge_and_its_outcome_fills_the_status() -> None:
    """A DeviceCall for pump-a goes to node-a's edge; the reported write makes it Succeeded."""
    with cloud_home() as c, cloud_home() as h:
        async with running_cloud(c) as cloud:
            assert cloud.registry is not None
            await cloud.registry.create("devicemodels", vmodel())
            await cloud.registry.create("devices", device_with_method("pump-a", "node-a"))
            edge = edge_for(cloud, h, "node-a")
            await edge.start()
            try:
                core = core_of(edge)
                await until(lambda: "default/pump-a" in core.devices, "pump-a on node-a")
                await core.report_state("default/pump-a", "online")
                await cloud.registry.create(CALLS, device_call("set-42", "pump-a", 42))
                await play_mapper(edge, "default/pump-a", "42")
                status = await wait_state(cloud, "set-42", "Succeeded")
                assert status["node"] == "node-a"
                created = await cloud.registry.get(CALLS, "default", "set-42")
                assert status["callId"] == created["metadata"]["uid"]
                assert status["result"]["reported"]["setpoint"] == "42"
                assert {"acceptedTime", "sentTime", "finishedTime"} <= set(status)
                assert edge.calls is not None
                calls = await edge.calls.list_calls("default", "pump-a")
                assert [(c.id, c.source, c.state) for c in calls] == [
                    (status["callId"], "cloud", "Succeeded")
                ]

                await cloud.registry.create(CALLS, device_call("set-999", "pump-a", 999))
                refused = await wait_state(cloud, "set-999", "Failed")
                assert refused["error"]["code"] == "InvalidArguments"
                assert "setpoint" in refused["error"]["message"]
                assert len(await edge.calls.list_calls("default", "pump-a")) == 1  # none stored
            finally:
                await edge.stop()


async def test_a_call_waits_out_a_partition_with_a_ttl_and_fails_fast_without() -> None:
    """No edge connected: without ttlSeconds NodeOffline; with one it goes down on reconnect."""
    with cloud_home() as c, cloud_home() as h:
        async with running_cloud(c) as cloud:
            assert cloud.registry is not None
            await cloud.registry.create("devicemodels", vmodel())
            await cloud.registry.create("devices", device_with_method("pump-a", "node-a"))
            edge = edge_for(cloud, h, "node-a")
            await edge.start()  # the device reaches the edge once, then the link goes away
            core = core_of(edge)
            await until(lambda: "default/pump-a" in core.devices, "pump-a on node-a")
            await core.report_state("default/pump-a", "online")
            await edge.stop()

            await cloud.registry.create(CALLS, device_call("now", "pump-a", 7))
            failed = await wait_state(cloud, "now", "Failed")
            assert failed["error"]["code"] == "NodeOffline"
            await cloud.registry.create(CALLS, device_call("later", "pump-a", 8, ttlSeconds=120))
            assert (await call_status(cloud, "later")).get("state") in (None, "Pending")

            edge = edge_for(cloud, h, "node-a")
            await edge.start()
            try:
                await play_mapper(edge, "default/pump-a", "8")
                done = await wait_state(cloud, "later", "Succeeded")
                assert done["node"] == "node-a"
                assert (await call_status(cloud, "now"))["state"] == "Failed"  # stays failed
            finally:
                await edge.stop()


async def test_a_node_cannot_report_the_outcome_of_anothers_call() -> None:
    """node-b's forged CallUpdate for node-a's call is refused and changes nothing."""
    with cloud_home() as c:
        async with running_cloud(c) as cloud, aiohttp.ClientSession() as http:
            assert cloud.registry is not None
            assert cloud.controller is not None
            await cloud.registry.create("devicemodels", vmodel())
            await cloud.registry.create("devices", device_with_method("pump-a", "node-a"))
            await cloud.registry.create("devices", vdevice("pump-b", "node-b"))
            call = await cloud.registry.create(
                CALLS, device_call("set-5", "pump-a", 5, ttlSeconds=120)
            )
            token = cloud.tokens.create("node-b")
            url = cloud.url.replace("http", "ws", 1) + wire.CONNECT_PATH
            hdrs = {wire.NODE_HEADER: "node-b", "Authorization": f"Bearer {token}"}
            async with http.ws_connect(url, headers=hdrs) as ws:
                await ws.send_str(wire.encode(wire.Hello(node="node-b", devices={}, models={})))
                forged = wire.CallUpdate(
                    call=call["metadata"]["uid"],
                    namespace="default",
                    device="pump-a",
                    state="Succeeded",
                    result={"forged": True},
                )
                await ws.send_str(wire.encode(forged))
                calls = cloud.controller.calls
                await until(lambda: calls.stats.refused_updates == 1, "the forged update refused")
            assert (await call_status(cloud, "set-5")).get("state") in (None, "Pending")


async def test_twinplane_call_and_get_calls_work_against_the_cloud() -> None:
    """``twinplane call … --server <cloud> --wait`` makes a DeviceCall and prints its outcome."""
    with cloud_home() as c, cloud_home() as h:
        async with running_cloud(c) as cloud, aiohttp.ClientSession() as http:
            assert cloud.registry is not None
            await cloud.registry.create("devicemodels", vmodel())
            await cloud.registry.create("devices", device_with_method("pump-a", "node-a"))
            edge = edge_for(cloud, h, "node-a")
            await edge.start()
            try:
                core = core_of(edge)
                await until(lambda: "default/pump-a" in core.devices, "pump-a on node-a")
                await core.report_state("default/pump-a", "online")
                cli = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "twinplane", "call", "pump-a", "set", "setpoint=55",
                    "--wait", "20s", "--server", cloud.url,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                await play_mapper(edge, "default/pump-a", "55")
                out, err = await asyncio.wait_for(cli.communicate(), 30)
                assert cli.returncode == 0, err.decode()
                assert ": Succeeded" in out.decode()
                assert '"setpoint": "55"' in out.decode()

                base = f"{cloud.url}/api/v1/namespaces/default/devices/pump-a"
                async with http.get(f"{base}/calls") as listed:
                    items = (await listed.json())["items"]
                assert [(i["method"], i["state"], i["node"]) for i in items] == [
                    ("set", "Succeeded", "node-a")
                ]
                async with http.get(f"{base}/calls/{items[0]['id']}") as one:
                    assert (await one.json())["uid"] == items[0]["uid"]
                async with http.post(f"{base}/methods/set?wait=nonsense", json={}) as bad:
                    assert bad.status == 400
                    assert (await bad.json())["details"]["causes"][0]["field"] == "wait"
                async with http.post(
                    f"{cloud.url}/api/v1/namespaces/default/devices/ghost/methods/set", json={}
                ) as ghost:
                    assert ghost.status == 404
                async with http.post(f"{base}/methods/set", json={"setpoint": 1}) as later:
                    assert later.status == 202
                    location = later.headers["Location"]
                    assert location.startswith("/api/v1/namespaces/default/devices/pump-a/calls/")
                    assert (await later.json())["state"] == "Pending"
            finally:
                await edge.stop()


async def test_a_cloud_restart_leaves_calls_in_flight_to_their_edge() -> None:
    """A call made before a restart, node not yet back, is not failed; it completes on reconnect."""
    with cloud_home() as c, cloud_home() as h:
        async with running_cloud(c) as cloud:
            assert cloud.registry is not None
            await cloud.registry.create("devicemodels", vmodel())
            await cloud.registry.create("devices", device_with_method("pump-a", "node-a"))
            edge = edge_for(cloud, h, "node-a")
            await edge.start()
            core = core_of(edge)
            await until(lambda: "default/pump-a" in core.devices, "pump-a on node-a")
            await core.report_state("default/pump-a", "online")
            await edge.stop()
        async with opened_registry(c) as registry:  # made while no cloud ran: no TTL
            await registry.create(CALLS, device_call("across", "pump-a", 9))
        async with running_cloud(c) as cloud:
            await asyncio.sleep(1.5)  # the sweeper has run; no node is connected yet
            assert (await call_status(cloud, "across")).get("state") in (None, "Pending")
            edge = edge_for(cloud, h, "node-a")
            await edge.start()
            try:
                await play_mapper(edge, "default/pump-a", "9")
                done = await wait_state(cloud, "across", "Succeeded")
                assert done["node"] == "node-a"
            finally:
                await edge.stop()
