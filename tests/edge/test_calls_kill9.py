"""kill -9 of ``twinplane edge`` between a call's acknowledgement and its delivery."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from dmi_helpers import report, report_state
from edge.test_calls import METHODS_BASE, thermo_device
from edge_helpers import EdgeProcess, edge_process, thermo_model
from twinplane.rest.guard import CLIENT_HEADER


@pytest.fixture
def edge() -> Iterator[EdgeProcess]:
    """``twinplane edge`` in a subprocess on a fresh home (not started)."""
    with edge_process("--log-level", "warning") as process:
        yield process


async def request(edge: EdgeProcess, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:  # noqa: ANN401
    """A REST request; the status and the decoded JSON."""
    async with (
        aiohttp.ClientSession(base_url=edge.url, headers={CLIENT_HEADER: "tests"}) as http,
        http.request(method, path, **kwargs) as resp,
    ):
        return resp.status, await resp.json()


async def wait_state(edge: EdgeProcess, call_id: str, state: str) -> Any:  # noqa: ANN401
    """Polls the call until it is in ``state``; the call."""
    for _ in range(500):
        status, body = await request(edge, "GET", f"{METHODS_BASE}/calls/{call_id}")
        assert status == 200, body
        if body["state"] == state:
            return body
        await asyncio.sleep(0.02)
    raise AssertionError(f"call {call_id} never reached {state}: {body}")


async def test_acknowledged_call_is_delivered_once_after_kill9(edge: EdgeProcess) -> None:
    """A call acknowledged (202), not delivered when the edge is killed, is delivered once after."""
    await asyncio.to_thread(edge.start)
    manifests = "---\n".join([thermo_model("temperature", "setpoint"), thermo_device()])
    status, body = await request(
        edge, "POST", "/api/v1/apply", data=manifests, headers={"Content-Type": "application/yaml"}
    )
    assert status == 200, body
    status, body = await request(
        edge, "POST", f"{METHODS_BASE}/methods/setpoint?ttl=5m&id=k9", json={"setpoint": 23}
    )
    assert status == 202, body
    assert body["state"] == "Pending"  # the device is not online: held, not delivered

    edge.kill9()
    await asyncio.to_thread(edge.start)

    kept = await wait_state(edge, "k9", "Pending")
    assert kept["sentMs"] is None
    assert kept["args"] == {"setpoint": 23}
    status, twin = await request(edge, "GET", f"{METHODS_BASE}/twin")
    assert status == 200
    assert twin["twins"]["setpoint"]["desired"] is None  # nothing was delivered before the kill
    await report_state(edge.target, "thermo-1", "online")
    sent = await wait_state(edge, "k9", "Sent")
    await report(edge.target, "thermo-1", {"setpoint": "23"})
    done = await wait_state(edge, "k9", "Succeeded")
    assert done["sentMs"] == sent["sentMs"]  # one delivery
    status, twin = await request(edge, "GET", f"{METHODS_BASE}/twin")
    assert twin["twins"]["setpoint"]["desired"]["value"] == "23"
    assert twin["twins"]["setpoint"]["desired_version"]["edge"] == 1  # set once, not twice
    status, listed = await request(edge, "GET", f"{METHODS_BASE}/calls")
    assert [c["id"] for c in listed["items"]] == ["k9"]
    assert edge.terminate() == 0
