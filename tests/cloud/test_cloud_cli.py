"""``twinplane apply/get/describe/twin/delete --server <cloud>``: the CLI, as a user runs it.

The CLI runs as a subprocess (``python -m twinplane``) against a cloud on a free port with one
edge connected, so each command goes over HTTP exactly as from a terminal.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest

from cloud_helpers import cloud_home, edge_for, running_cloud
from twinplane.cloud.app import CloudApp

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cloud" / "devices.yaml"


async def twinplane(cloud: CloudApp, *args: str, ok: bool = True) -> str:
    """Runs ``twinplane ARGS --server <cloud>``; its standard output (and error, when failing)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "twinplane",
        *args,
        "--server",
        cloud.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode() + err.decode()
    assert (proc.returncode == 0) == ok, f"twinplane {' '.join(args)} -> {proc.returncode}: {text}"
    return text


async def until(check: object, what: str, within: float = 15.0) -> None:
    """Waits until the coroutine function ``check`` returns true."""
    deadline = time.monotonic() + within
    while not await check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.1)


async def test_the_cli_manages_devices_through_the_cloud() -> None:
    """apply, get, describe, twin set/get and delete, each against the cloud's REST API."""
    with cloud_home() as c, cloud_home() as ha:
        async with running_cloud(c) as cloud:
            applied = await twinplane(cloud, "apply", "-f", str(EXAMPLE))
            assert "devicemodel.devices.kubeedge.io/default/boiler-model created" in applied, (
                applied
            )
            assert "device.devices.kubeedge.io/default/boiler-a1 created" in applied, applied
            again = await twinplane(cloud, "apply", "-f", str(EXAMPLE))
            assert "unchanged" in again, again

            edge = edge_for(cloud, ha, "node-a")
            await edge.start()
            try:
                assert edge.core is not None
                core = edge.core

                async def delivered() -> bool:
                    return "default/boiler-a1" in core.devices

                await until(delivered, "boiler-a1 on node-a's edge")
                assert "default/boiler-b1" not in core.devices
                core.apply_reported("default/boiler-a1", [("temperature", "61.25", _now())])

                async def reported_in_cloud() -> bool:
                    out = await twinplane(cloud, "twin", "get", "boiler-a1", "-o", "json")
                    twins = json.loads(out)["twins"]
                    return (twins["temperature"].get("reported") or {}).get("value") == "61.25"

                await until(reported_in_cloud, "the edge's temperature in the cloud's twin view")

                listed = await twinplane(cloud, "get", "devices")
                assert "boiler-a1" in listed
                assert "boiler-b1" in listed
                described = await twinplane(cloud, "describe", "device", "boiler-a1")
                assert "node-a" in described
                assert "61.25" in described

                out = await twinplane(cloud, "twin", "set", "boiler-a1", "setpoint=55")
                assert "setpoint=55" in out

                async def desired_on_edge() -> bool:
                    twin = core.twins("default/boiler-a1")["setpoint"]
                    return twin["desired"] is not None and twin["desired"]["value"] == "55"

                await until(desired_on_edge, "the desired setpoint on the edge")
                refused = await twinplane(
                    cloud, "twin", "set", "boiler-a1", "setpoint=200", ok=False
                )
                assert "maximum" in refused, refused

                await twinplane(cloud, "delete", "device", "boiler-a1")

                async def removed() -> bool:
                    return "default/boiler-a1" not in core.devices

                await until(removed, "boiler-a1 removed from the edge")
                listed = await twinplane(cloud, "get", "devices")
                assert "boiler-a1" not in listed
            finally:
                await edge.stop()


def _now() -> int:
    return int(time.time() * 1000)
