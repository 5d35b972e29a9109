"""An alarm end to end: the simulator's ramp over Modbus TCP → mapper → edge, raised to cleared."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp
import pytest
from mapper_helpers import manifests, mapper_config, running_mapper
from test_modbus_mapper_end_to_end import modbus_device

from edge_helpers import running_app, short_home
from twinplane.drivers.modbus.adapter import ModbusDriver
from twinplane.edge.app import EdgeApp
from twinplane.rest.guard import CLIENT_HEADER
from twinplane.sim.modbus import ModbusSimulator, Ramp
from waits import until

RULES = [
    {
        "name": "too-hot",
        "property": "temperature",
        "condition": "above",
        "threshold": 30,
        "hysteresis": 1,
        "raiseAfter": 3,
        "severity": "critical",
        "message": "the boiler is too hot",
    }
]

MODEL = f"""\
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata:
  name: boiler-model
  namespace: default
  annotations: {{twinplane.io/alarms: {json.dumps(json.dumps(RULES))}}}
spec:
  protocol: modbus
  properties:
  - {{name: temperature, type: FLOAT, accessMode: ReadOnly}}
  - {{name: setpoint, type: INT, accessMode: ReadWrite}}
"""

RAMP = Ramp(280, 320, 8.0)
"""28.0 to 32.0 °C and back in 10 s: above 30 from 2.5 s, back at 29.0 at 8.75 s."""


async def read_stream(url: str, seen: list[dict[str, Any]], ready: asyncio.Event) -> None:
    """Collects the ``event`` messages of an SSE stream until cancelled."""
    async with (
        aiohttp.ClientSession(headers={CLIENT_HEADER: "tests"}) as http,
        http.get(url, timeout=aiohttp.ClientTimeout(total=None)) as resp,
    ):
        assert resp.status == 200
        ready.set()
        kind = ""
        async for raw in resp.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: ") and kind == "event":
                seen.append(json.loads(line.removeprefix("data: ")))


async def get(app: EdgeApp, path: str) -> Any:  # noqa: ANN401 - JSON
    """A GET against the edge's REST API (must answer 200)."""
    async with (
        aiohttp.ClientSession(headers={CLIENT_HEADER: "tests"}) as http,
        http.get(app.rest_url + path) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return await resp.json()


@pytest.mark.timeout(60)
async def test_a_ramp_over_modbus_raises_an_alarm_that_is_acked_and_clears() -> None:
    """The ramp crosses 30 °C: GET alarms, the event log and SSE show it raised, acked, cleared."""
    async with ModbusSimulator(devices=1, port=0, units_per_port=1, rate=0) as sim:
        sim.set_registers(1, 0, [250, 7])
        docs = manifests(MODEL, modbus_device("b1", sim.port, 1))
        with short_home() as home:
            async with running_app(home, docs) as app:
                assert app.core is not None
                core = app.core
                seen: list[dict[str, Any]] = []
                ready = asyncio.Event()
                stream_url = f"{app.rest_url}/api/v1/events?device=b1&type=alarm"
                stream = asyncio.create_task(read_stream(stream_url, seen, ready))
                cfg = mapper_config(home, app.config.socket_path, protocol="modbus")
                try:
                    await asyncio.wait_for(ready.wait(), 10)
                    async with running_mapper(cfg, ModbusDriver(timeout=0.3)):
                        sim.ramp(1, 0, RAMP)
                        await until(lambda: core.alarms.active() != [], "the alarm", 20)
                        body = await get(app, "/api/v1/alarms?severity=critical")
                        (alarm,) = body["items"]
                        assert (alarm["device"], alarm["rule"], alarm["state"]) == (
                            "b1",
                            "too-hot",
                            "active",
                        )
                        assert alarm["value"] > 30
                        assert alarm["threshold"] == 30

                        ack = "/api/v1/namespaces/default/devices/b1/alarms/too-hot/ack"
                        async with (
                            aiohttp.ClientSession(headers={CLIENT_HEADER: "tests"}) as http,
                            http.post(app.rest_url + ack, json={"by": "operator"}) as resp,
                        ):
                            assert resp.status == 200, await resp.text()
                            assert (await resp.json())["acknowledged_by"] == "operator"

                        await until(lambda: core.alarms.active() == [], "the clear", 20)
                        body = await get(app, "/api/v1/namespaces/default/devices/b1/alarms")
                        (cleared,) = body["items"]
                        assert (cleared["state"], cleared["acknowledged_by"]) == (
                            "cleared",
                            "operator",
                        )
                    reasons = ["AlarmRaised", "AlarmAcknowledged", "AlarmCleared"]
                    await until(lambda: len(seen) >= 3, "three alarm events on SSE")
                    assert [e["reason"] for e in seen] == reasons
                    assert seen[0]["severity"] == "critical"
                    assert seen[0]["body"]["rule"] == "too-hot"
                    await core.events.flush()
                    log = await get(app, "/api/v1/namespaces/default/events?type=alarm")
                    assert [e["reason"] for e in reversed(log["items"])] == reasons
                    assert {e["body"]["property"] for e in log["items"]} == {"temperature"}
                finally:
                    stream.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await stream
