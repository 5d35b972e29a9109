"""The hub refuses whom it should and bounds what a node may do: forged messages, real links.

Each test opens its own WebSocket with aiohttp's client, speaking the link protocol by hand, so a
node's messages can claim what a real edge never would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from cloud_helpers import cloud_home, running_cloud, vdevice, vmodel
from twinplane.cloud import wire
from twinplane.cloud.app import CloudApp

pytestmark = pytest.mark.slow


@asynccontextmanager
async def two_node_cloud() -> AsyncIterator[CloudApp]:
    """A cloud with pump-a on node-a and pump-b on node-b, and a token for each node."""
    with cloud_home() as home:
        async with running_cloud(home) as cloud:
            assert cloud.registry is not None
            await cloud.registry.create("devicemodels", vmodel())
            await cloud.registry.create("devices", vdevice("pump-a", "node-a"))
            await cloud.registry.create("devices", vdevice("pump-b", "node-b"))
            assert cloud.controller is not None
            controller = cloud.controller
            await _wait(lambda: len(controller.devices.cache) == 2, "devices cached")
            yield cloud


def hub_url(cloud: CloudApp) -> str:
    """The hub's WebSocket URL."""
    return cloud.url.replace("http", "ws", 1) + wire.CONNECT_PATH


def headers(node: str, token: str) -> dict[str, str]:
    """The headers an edge sends."""
    return {wire.NODE_HEADER: node, "Authorization": f"Bearer {token}"}


async def _wait(check: Any, what: str, within: float = 5.0) -> None:  # noqa: ANN401
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def receive(ws: aiohttp.ClientWebSocketResponse, kind: type[Any]) -> Any:  # noqa: ANN401
    """The next message of type ``kind`` (others are skipped)."""
    while True:
        frame = await ws.receive(timeout=5)
        assert frame.type == aiohttp.WSMsgType.TEXT, frame
        message = wire.decode_cloud(frame.data)
        if isinstance(message, kind):
            return message


async def test_a_link_without_the_nodes_token_is_refused_before_the_upgrade() -> None:
    """No token, a wrong token, or node-b's token claiming node-a: 401 and no session."""
    async with two_node_cloud() as cloud, aiohttp.ClientSession() as http:
        token_b = cloud.tokens.create("node-b")
        cloud.tokens.create("node-a")
        cases = [
            {wire.NODE_HEADER: "node-a"},
            headers("node-a", "tpn_not-the-token"),
            headers("node-a", token_b),
            headers("Node A!", token_b),
        ]
        for hdrs in cases:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(hub_url(cloud), headers=hdrs)
            assert refused.value.status == 401
        assert cloud.hub is not None
        assert cloud.hub.refused == len(cases)
        assert cloud.hub.nodes() == []


async def test_a_hello_for_another_node_or_a_garbled_frame_closes_the_link() -> None:
    """hello.node must be the token's node; a frame that does not decode is refused by field."""
    async with two_node_cloud() as cloud, aiohttp.ClientSession() as http:
        token = cloud.tokens.create("node-b")
        ws = await http.ws_connect(hub_url(cloud), headers=headers("node-b", token))
        await ws.send_str(wire.encode(wire.Hello(node="node-a", devices={}, models={})))
        frame = await ws.receive(timeout=5)
        assert frame.type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 4400
        assert "node-a" in str(frame.extra)
        ws = await http.ws_connect(hub_url(cloud), headers=headers("node-b", token))
        await ws.send_str(wire.encode(wire.Hello(node="node-b", devices={}, models={})))
        await receive(ws, wire.Synced)
        await ws.send_str('{"type": "report", "id": "1", "devices": [{"device": 7}]}')
        frame = await ws.receive(timeout=5)
        assert frame.type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 4400
        assert "$.devices[0].device" in str(frame.extra)


async def test_a_node_gets_only_its_devices_and_cannot_report_anothers() -> None:
    """node-b receives pump-b alone; its report of pump-a is refused and changes nothing."""
    async with two_node_cloud() as cloud, aiohttp.ClientSession() as http:
        token = cloud.tokens.create("node-b")
        ws = await http.ws_connect(hub_url(cloud), headers=headers("node-b", token))
        await ws.send_str(wire.encode(wire.Hello(node="node-b", devices={}, models={})))
        delivered: list[str] = []
        while True:
            frame = await ws.receive(timeout=5)
            message = wire.decode_cloud(frame.data)
            if isinstance(message, wire.Upsert):
                delivered.append(f"{message.kind}/{message.object['metadata']['name']}")
                await ws.send_str(wire.encode(wire.Ack(ids=[message.id])))
            if isinstance(message, wire.Synced):
                assert message.devices == ["default/pump-b"]
                break
        assert delivered == ["DeviceModel/vmodel", "Device/pump-b"]  # the model comes first
        forged = wire.TwinReport(type="FLOAT", reported=wire.SideReport("99", 5))
        report = wire.Report(
            id="forged-1",
            devices=[wire.DeviceReport(device="default/pump-a", twins={"temperature": forged})],
        )
        await ws.send_str(wire.encode(report))
        ack = await receive(ws, wire.ReportAck)
        assert ack.ids == ["forged-1"]
        assert "default/pump-a" in ack.rejected
        assert "not assigned to node node-b" in ack.rejected["default/pump-a"]
        assert cloud.controller is not None
        assert cloud.controller.stats.rejected == 1
        await asyncio.sleep(0.5)  # two status intervals: nothing may have been written
        assert cloud.registry is not None
        items, _ = await cloud.registry.list("devicestatuses")
        for item in items:
            for twin in item.get("status", {}).get("twins") or []:
                assert twin.get("reported", {}).get("value") != "99", item


async def test_a_replayed_report_changes_nothing_twice() -> None:
    """The same report sent twice is acknowledged twice and leaves one value, the newest."""
    async with two_node_cloud() as cloud, aiohttp.ClientSession() as http:
        token = cloud.tokens.create("node-a")
        ws = await http.ws_connect(hub_url(cloud), headers=headers("node-a", token))
        await ws.send_str(wire.encode(wire.Hello(node="node-a", devices={}, models={})))
        await receive(ws, wire.Synced)
        newer = wire.TwinReport(type="FLOAT", reported=wire.SideReport("2", 2_000))
        older = wire.TwinReport(type="FLOAT", reported=wire.SideReport("1", 1_000))
        for msg_id, twin in (("r1", newer), ("r2", older), ("r1", newer)):
            device = wire.DeviceReport(device="default/pump-a", twins={"temperature": twin})
            await ws.send_str(wire.encode(wire.Report(id=msg_id, devices=[device])))
            ack = await receive(ws, wire.ReportAck)
            assert ack.ids == [msg_id]
            assert not ack.rejected
        assert cloud.registry is not None
        status = await cloud.registry.get("devicestatuses", "default", "pump-a")
        twins = {t["propertyName"]: t for t in status["status"]["twins"]}
        assert twins["temperature"]["reported"]["value"] == "2"  # the older replay lost
