"""The cloud and its edges over real WebSocket links: delivery, coalesced status, resync, autonomy.

Every cloud here runs the embedded registry (SQLite) in this process; every edge is a real
device manager whose link connects over loopback. Reported values enter the edges as a mapper's
would (``EdgeCore.apply_reported``), so what is checked is the link and the controller.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from cloud_helpers import cloud_home, edge_for, opened_registry, running_cloud, vdevice, vmodel
from twinplane.cloud.app import CloudApp
from twinplane.edge.app import EdgeApp
from twinplane.edge.core import EdgeCore
from waits import until

pytestmark = pytest.mark.slow


def core_of(edge: EdgeApp) -> EdgeCore:
    """The edge's registry and twins."""
    assert edge.core is not None
    return edge.core


def reported(status: dict[str, Any]) -> dict[str, str]:
    """``status.twins[].reported.value`` of a DeviceStatus, by property."""
    twins = status.get("status", {}).get("twins") or []
    return {t["propertyName"]: t["reported"]["value"] for t in twins if "reported" in t}


def observed_desired(status: dict[str, Any]) -> dict[str, str]:
    """``status.twins[].observedDesired.value`` of a DeviceStatus, by property."""
    twins = status.get("status", {}).get("twins") or []
    return {
        t["propertyName"]: t["observedDesired"]["value"] for t in twins if "observedDesired" in t
    }


async def status_of(cloud: CloudApp, name: str) -> dict[str, Any]:
    """The DeviceStatus ``default/name`` (an empty object when it does not exist yet)."""
    assert cloud.registry is not None
    items, _ = await cloud.registry.list("devicestatuses")
    for item in items:
        if item["metadata"]["name"] == name:
            return item
    return {}


async def create(cloud: CloudApp, resource: str, body: dict[str, Any]) -> dict[str, Any]:
    """Creates an object in the cloud's registry."""
    assert cloud.registry is not None
    return await cloud.registry.create(resource, body)  # type: ignore[arg-type]


async def test_devices_reach_their_own_node_only_and_twins_come_back() -> None:
    """A Device for node a reaches a's edge (model first), not b's; a's twins fill its status."""
    with cloud_home() as c, cloud_home() as ha, cloud_home() as hb:
        async with running_cloud(c) as cloud:
            await create(cloud, "devicemodels", vmodel())
            await create(cloud, "devices", vdevice("pump-a", "node-a"))
            await create(cloud, "devices", vdevice("pump-b", "node-b"))
            edge_a, edge_b = edge_for(cloud, ha, "node-a"), edge_for(cloud, hb, "node-b")
            await edge_a.start()
            await edge_b.start()
            try:
                a, b = core_of(edge_a), core_of(edge_b)
                await until(lambda: "default/pump-a" in a.devices, "pump-a on node-a")
                await until(lambda: "default/pump-b" in b.devices, "pump-b on node-b")
                assert "default/pump-b" not in a.devices
                assert "default/pump-a" not in b.devices
                assert "default/vmodel" in a.models
                ts = int(time.time() * 1000)
                a.apply_reported("default/pump-a", [("temperature", "21.5", ts)])
                status: dict[str, Any] = {}

                async def filled() -> bool:
                    nonlocal status
                    status = await status_of(cloud, "pump-a")
                    return reported(status).get("temperature") == "21.5"

                await _until_async(filled, "pump-a's reported temperature in its DeviceStatus")
                owner = status["metadata"]["ownerReferences"][0]
                assert owner["kind"] == "Device"
                assert owner["name"] == "pump-a"
                assert owner["controller"] is True
                twin = next(
                    t for t in status["status"]["twins"] if t["propertyName"] == "temperature"
                )
                assert twin["reported"]["metadata"] == {"timestamp": str(ts), "type": "FLOAT"}
            finally:
                await edge_a.stop()
                await edge_b.stop()


async def test_a_burst_of_reports_costs_one_patch_per_device_per_interval() -> None:
    """200 changes of one twin within about a second become a handful of DeviceStatus patches."""
    with cloud_home() as c, cloud_home() as ha:
        async with running_cloud(c, status_interval=1.0) as cloud:
            await create(cloud, "devicemodels", vmodel())
            await create(cloud, "devices", vdevice("fan", "node-a"))
            edge = edge_for(cloud, ha, "node-a", cloud_flush_interval=0.05)
            await edge.start()
            try:
                core = core_of(edge)
                await until(lambda: "default/fan" in core.devices, "fan delivered")
                assert cloud.controller is not None
                await _until_async(
                    lambda: _has_status(cloud, "fan"), "the fan's DeviceStatus created"
                )
                before = cloud.controller.stats.patches
                start = time.monotonic()
                for i in range(200):
                    core.apply_reported("default/fan", [("temperature", str(i), 1_000 + i)])
                    await _sleep(0.005)
                elapsed = time.monotonic() - start

                async def last_value() -> bool:
                    return reported(await status_of(cloud, "fan")).get("temperature") == "199"

                await _until_async(last_value, "the newest value in the DeviceStatus")
                patches = cloud.controller.stats.patches - before
                # one patch per interval (1 s) the burst spanned, plus the last one
                assert 1 <= patches <= int(elapsed) + 3, (patches, elapsed)
            finally:
                await edge.stop()


async def test_changes_made_while_the_link_was_down_reach_both_sides() -> None:
    """Cloud down: a device added in the registry and an edge twin change both arrive after."""
    with cloud_home() as c, cloud_home() as ha:
        async with running_cloud(c) as cloud:
            await create(cloud, "devicemodels", vmodel())
            await create(cloud, "devices", vdevice("one", "node-a"))
            token = cloud.tokens.create("node-a")
            port = int(cloud.url.rsplit(":", 1)[1])
        edge = _edge(ha, port, token)
        await edge.start()
        try:
            core = core_of(edge)
            async with running_cloud(c, listen_port=port) as cloud:
                await until(lambda: "default/one" in core.devices, "one delivered", within=10)
            # the cloud is down: the edge keeps taking values; the registry gets a new device
            core.apply_reported("default/one", [("temperature", "7.5", int(time.time() * 1000))])
            await core.set_desired("default/one", {"setpoint": "42"})
            async with opened_registry(c) as registry:  # the cloud is down; its registry changes
                await registry.create("devices", vdevice("two", "node-a"))
            async with running_cloud(c, listen_port=port) as cloud:
                await until(lambda: "default/two" in core.devices, "two delivered", within=15)

                async def converged() -> bool:
                    status = await status_of(cloud, "one")
                    return (
                        reported(status).get("temperature") == "7.5"
                        and observed_desired(status).get("setpoint") == "42"
                    )

                await _until_async(converged, "one's offline changes in its DeviceStatus", 15)
        finally:
            await edge.stop()


async def _has_status(cloud: CloudApp, name: str) -> bool:
    return bool(await status_of(cloud, name))


async def _sleep(seconds: float) -> None:
    import asyncio  # noqa: PLC0415

    await asyncio.sleep(seconds)


async def _until_async(check: Any, what: str, within: float = 10.0) -> None:  # noqa: ANN401
    import asyncio  # noqa: PLC0415

    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)


def _edge(home: Path, port: int, token: str) -> EdgeApp:
    from twinplane.edge.app import EdgeConfig  # noqa: PLC0415

    config = EdgeConfig(
        home=home,
        rest_addr="127.0.0.1:0",
        node_name="node-a",
        cloud_url=f"ws://127.0.0.1:{port}",
        cloud_token=token,
        cloud_flush_interval=0.1,
    )
    return EdgeApp(config)


async def test_desired_values_follow_kubeedges_version_rule_across_a_partition() -> None:
    """An edge change made during a partition wins over a cloud change made meanwhile.

    The spec's desired value arrives with a cloud version; after the partition both sides
    converge to the edge's value; the next spec change wins again.
    """
    with cloud_home() as c, cloud_home() as ha:
        async with running_cloud(c) as cloud:
            await create(cloud, "devicemodels", vmodel())
            await create(cloud, "devices", vdevice("valve", "node-a", setpoint="20"))
            token = cloud.tokens.create("node-a")
            port = int(cloud.url.rsplit(":", 1)[1])
        edge = _edge(ha, port, token)
        await edge.start()
        try:
            core = core_of(edge)

            def desired() -> tuple[str | None, dict[str, int]]:
                if "default/valve" not in core.devices:
                    return None, {}
                twin = core.twins("default/valve")["setpoint"]
                value = twin["desired"]["value"] if twin["desired"] else None
                version = twin["desired_version"]
                return value, {"cloud": version["cloud"], "edge": version["edge"]}

            async with running_cloud(c, listen_port=port):
                await until(lambda: desired()[0] == "20", "the spec's desired value", within=10)
                assert desired()[1] == {"cloud": 1, "edge": 0}
            # partition: the edge sets 33 locally, the cloud's spec says 25 meanwhile
            await core.set_desired("default/valve", {"setpoint": "33"})
            assert desired() == ("33", {"cloud": 1, "edge": 1})
            async with opened_registry(c) as registry:
                device = vdevice("valve", "node-a", setpoint="25")
                current = await registry.get("devices", "default", "valve")
                device["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                await registry.replace("devices", device)
            async with running_cloud(c, listen_port=port) as cloud:

                async def converged() -> bool:
                    status = await status_of(cloud, "valve")
                    return observed_desired(status).get("setpoint") == "33"

                await _until_async(converged, "the edge's value observed in the cloud", 15)
                assert desired()[0] == "33"  # the cloud's 25 was refused by the version rule
                assert cloud.state.desired["default/valve"]["setpoint"].value == "33"
                # a later spec change carries the edge's counter: it is taken
                device = vdevice("valve", "node-a", setpoint="40")
                assert cloud.registry is not None
                current = await cloud.registry.get("devices", "default", "valve")
                device["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                await cloud.registry.replace("devices", device)
                await until(lambda: desired()[0] == "40", "the new spec value", within=10)
                assert desired()[1] == {"cloud": 3, "edge": 1}
        finally:
            await edge.stop()


async def test_a_deleted_or_moved_device_leaves_its_old_node() -> None:
    """A move or a delete reaches both nodes; a device applied on the edge is left alone.

    Moving a device to node b removes it from a and adds it on b; deleting it removes it and
    its DeviceStatus; a device applied locally on the edge is never touched by the cloud.
    """
    with cloud_home() as c, cloud_home() as ha, cloud_home() as hb:
        async with running_cloud(c) as cloud:
            assert cloud.registry is not None
            await create(cloud, "devicemodels", vmodel())
            await create(cloud, "devices", vdevice("roamer", "node-a"))
            edge_a, edge_b = edge_for(cloud, ha, "node-a"), edge_for(cloud, hb, "node-b")
            await edge_a.start()
            await edge_b.start()
            try:
                a, b = core_of(edge_a), core_of(edge_b)
                local = vdevice("mine", "node-a")
                import msgspec  # noqa: PLC0415

                await until(lambda: "default/vmodel" in a.models, "the model on node-a")
                await a.apply(msgspec.json.encode(local))  # the edge's own, no annotation
                await until(lambda: "default/roamer" in a.devices, "roamer on a")
                moved = await cloud.registry.get("devices", "default", "roamer")
                moved["spec"]["nodeName"] = "node-b"
                await cloud.registry.replace("devices", moved)
                await until(lambda: "default/roamer" in b.devices, "roamer on b", within=10)
                await until(lambda: "default/roamer" not in a.devices, "roamer gone from a")
                await _until_async(lambda: _has_status(cloud, "roamer"), "roamer's status")
                await cloud.registry.delete("devices", "default", "roamer")
                await until(lambda: "default/roamer" not in b.devices, "roamer deleted on b")

                async def status_gone() -> bool:
                    return not await _has_status(cloud, "roamer")

                await _until_async(status_gone, "roamer's DeviceStatus deleted")
                assert "default/mine" in a.devices
            finally:
                await edge_a.stop()
                await edge_b.stop()


async def test_the_outbox_is_empty_once_the_cloud_has_acknowledged() -> None:
    """Marks go into the edge's cloud_outbox and leave it when the cloud has written them."""
    with cloud_home() as c, cloud_home() as ha:
        async with running_cloud(c) as cloud:
            await create(cloud, "devicemodels", vmodel())
            await create(cloud, "devices", vdevice("meter", "node-a"))
            edge = edge_for(cloud, ha, "node-a", cloud_flush_interval=0.05)
            await edge.start()
            try:
                core = core_of(edge)
                await until(lambda: "default/meter" in core.devices, "meter delivered")
                assert edge.cloud is not None
                await until(edge.cloud.synced.is_set, "synced")
                core.apply_reported("default/meter", [("temperature", "3.25", 77)])
                await until(lambda: edge.cloud.stats.devices_sent > 0, "a report sent")  # type: ignore[union-attr]

                async def drained() -> bool:
                    return await core.store.count_cloud() == 0

                await _until_async(drained, "an empty outbox")
                assert reported(await status_of(cloud, "meter")) == {"temperature": "3.25"}
            finally:
                await edge.stop()


async def _upload_events(resp: Any, count: int) -> list[tuple[int, dict[str, Any]]]:  # noqa: ANN401 - an aiohttp response
    """The next ``count`` ``upload`` events of an SSE response: (id, data), heartbeats skipped."""
    import json  # noqa: PLC0415

    events: list[tuple[int, dict[str, Any]]] = []
    fields: dict[str, str] = {}
    async with asyncio.timeout(15):
        while len(events) < count:
            line = (await resp.content.readline()).decode().rstrip("\n")
            if line.startswith(":"):
                continue
            if line:
                key, _, value = line.partition(": ")
                fields[key] = value
                continue
            if fields.get("event") == "upload":
                events.append((int(fields["id"]), json.loads(fields["data"])))
            fields = {}
    return events


async def test_a_cloud_application_subscribes_to_uploads_and_resumes_with_last_event_id(
    tmp_path: Path,
) -> None:
    """``GET /api/v1/uploads/stream``: stored uploads, then live ones; ``Last-Event-ID`` resumes."""
    import aiohttp  # noqa: PLC0415
    import aiomqtt  # noqa: PLC0415

    from mqtt_broker import running_mosquitto  # noqa: PLC0415

    with running_mosquitto(tmp_path) as broker, cloud_home() as c, cloud_home() as ha:
        async with running_cloud(c) as cloud:
            edge = edge_for(cloud, ha, "node-a", mqtt_url=broker.mqtt_url)
            await edge.start()
            try:
                assert edge.mqtt is not None
                await until(lambda: edge.mqtt.connected, "the bridge connected", within=10)  # type: ignore[union-attr]
                async with aiomqtt.Client("127.0.0.1", broker.port) as app:
                    await app.publish("$hw/events/upload/line1/counts", b'{"parts": 1}', qos=1)
                    async with aiohttp.ClientSession() as http:
                        stream = f"{cloud.url}/api/v1/uploads/stream"
                        async with http.get(f"{stream}?after=0&node=node-a") as resp:
                            assert resp.status == 200
                            assert resp.content_type == "text/event-stream"
                            [(first, stored)] = await _upload_events(resp, 1)
                            assert (stored["node"], stored["payload"]) == ("node-a", '{"parts": 1}')
                            await app.publish("$hw/events/upload/line1/counts", b'{"parts": 2}')
                            [(second, live)] = await _upload_events(resp, 1)
                        assert second > first
                        assert live["payload"] == '{"parts": 2}'
                        await app.publish("$hw/events/upload/line1/counts", b'{"parts": 3}')
                        resumed = {"Last-Event-ID": str(first)}
                        async with http.get(stream, headers=resumed) as resp:
                            again = await _upload_events(resp, 2)
                        assert [e[1]["payload"] for e in again] == ['{"parts": 2}', '{"parts": 3}']
                        async with http.get(f"{stream}?node=node-b") as resp:
                            with pytest.raises(TimeoutError):  # node-b uploaded nothing
                                async with asyncio.timeout(1.0):
                                    await _upload_events(resp, 1)
                        async with http.get(f"{stream}?after=x") as resp:
                            assert resp.status == 400
                            assert "after" in (await resp.json())["message"]
            finally:
                await edge.stop()


async def test_what_edge_apps_upload_reaches_the_cloud_under_the_nodes_name(tmp_path: Path) -> None:
    """A message on the edge broker's $hw/events/upload/... reaches the cloud (path 9).

    The cloud's uploads route serves it under the node's name, once, as stored data.
    """
    import aiohttp  # noqa: PLC0415
    import aiomqtt  # noqa: PLC0415

    from mqtt_broker import running_mosquitto  # noqa: PLC0415

    with running_mosquitto(tmp_path) as broker, cloud_home() as c, cloud_home() as ha:
        async with running_cloud(c) as cloud:
            edge = edge_for(cloud, ha, "node-a", mqtt_url=broker.mqtt_url)
            await edge.start()
            try:
                assert edge.mqtt is not None
                await until(lambda: edge.mqtt.connected, "the bridge connected", within=10)  # type: ignore[union-attr]
                async with aiomqtt.Client("127.0.0.1", broker.port) as app:
                    await app.publish("$hw/events/upload/line1/counts", b'{"parts": 7}', qos=1)
                async with aiohttp.ClientSession() as http:
                    url = f"{cloud.url}/api/v1/uploads?after=0&wait=10"
                    async with http.get(url) as resp:
                        assert resp.status == 200
                        body = await resp.json()
                assert [(i["node"], i["topic"], i["payload"]) for i in body["items"]] == [
                    ("node-a", "$hw/events/upload/line1/counts", '{"parts": 7}')
                ]
                assert body["last"] == body["items"][0]["seq"]
                await until(lambda: edge.cloud.stats.uploads_sent == 1, "one upload sent")  # type: ignore[union-attr]
            finally:
                await edge.stop()
