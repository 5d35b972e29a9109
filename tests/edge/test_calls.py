"""Method calls through the edge REST API of a real device manager (EdgeApp, SQLite, DMI on UDS).

The device's state and reported values come in over the DMI Unix socket as a mapper sends them
(``ReportDeviceStates``, ``ReportDeviceStatus``); a call Succeeds once the device reports the
value it wrote.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dmi_helpers import report, report_state
from edge.test_write_errors import mapper_of, outcome
from edge_helpers import RunningEdge, running_app, thermo_model
from twinplane.fleet import device_manifests
from twinplane.rest.guard import CLIENT_HEADER

METHODS_ANNOTATION = json.dumps(
    {
        "preset": {"parameters": {"setpoint": {"enum": [18, 21, 24], "required": True}}},
        "setpoint": {"idempotent": True, "parameters": {"setpoint": {"minimum": 5, "maximum": 30}}},
        "readRegisters": {
            "description": "read holding registers on demand",
            "parameters": {
                "offset": {"type": "int", "minimum": 0, "maximum": 65535, "required": True},
                "count": {"type": "int", "minimum": 1, "maximum": 125, "default": 1},
            },
            "driver": {"command": "readRegisters", "register": "HoldingRegister"},
        },
    }
)


def thermo_device(annotation: str = METHODS_ANNOTATION) -> str:
    """thermo-1 with a setpoint (int16 register), a ReadOnly temperature and methods."""
    return f"""\
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata:
  name: thermo-1
  annotations:
    twinplane.io/methods: {json.dumps(annotation)}
spec:
  deviceModelRef: {{name: thermo-model}}
  nodeName: edge
  protocol: {{protocolName: modbus, configData: {{ip: 127.0.0.1, port: 5020}}}}
  properties:
  - name: temperature
    visitors: {{protocolName: modbus, configData: {{register: HoldingRegister, offset: 0}}}}
  - name: setpoint
    visitors:
      protocolName: modbus
      configData: {{register: HoldingRegister, offset: 1, dataType: int16}}
  methods:
  - {{name: setpoint, description: the target temperature, propertyNames: [setpoint]}}
  - {{name: preset, propertyNames: [setpoint]}}
  - {{name: calibrate, propertyNames: [temperature]}}
"""


METHODS_BASE = "/api/v1/namespaces/default/devices/thermo-1"
CLIENT = {CLIENT_HEADER: "twinplane-tests"}


@dataclass
class Edge(RunningEdge):
    """A running device manager with thermo-1 applied, and an HTTP session on its REST API."""

    http: aiohttp.ClientSession

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, Any]:  # noqa: ANN401
        """Any request; the status, the decoded JSON answer and the headers."""
        async with self.http.request(method, path, **kwargs) as resp:
            return resp.status, await resp.json(), resp.headers

    async def post_call(
        self,
        method: str,
        args: dict[str, Any],
        query: str = "",
        *,
        expect: int = 202,
    ) -> Any:  # noqa: ANN401
        """``POST …/methods/{method}?{query}``, expecting ``expect``; the answer."""
        url = f"{METHODS_BASE}/methods/{method}" + (f"?{query}" if query else "")
        status, body, _ = await self.request("POST", url, json=args)
        assert status == expect, body
        return body

    async def wait_state(self, call_id: str, *states: str) -> Any:  # noqa: ANN401
        """Polls the call until it is in one of ``states``; the call."""
        for _ in range(500):
            status, body, _ = await self.request("GET", f"{METHODS_BASE}/calls/{call_id}")
            assert status in (200, 404), body  # 404: not submitted yet
            if status == 200 and body["state"] in states:
                return body
            await asyncio.sleep(0.02)
        raise AssertionError(f"call {call_id} never reached {states}: {body}")


@pytest.fixture
async def edge(home: Path) -> AsyncIterator[Edge]:
    """A device manager with thermo-1 (methods) applied; the device is not online yet."""
    manifests = "---\n".join([thermo_model("temperature", "setpoint"), thermo_device()])
    async with (
        running_app(home, manifests) as app,
        aiohttp.ClientSession(base_url=app.rest_url, headers=CLIENT) as http,
    ):
        yield Edge(app, http)


async def online(edge: Edge) -> None:
    """The device's mapper reports it online."""
    await report_state(edge.target, "thermo-1", "online")


async def report_when_sent(edge: Edge, call_id: str, values: dict[str, str]) -> None:
    """Once the call is Sent, the mapper reports the values the device now holds."""
    await edge.wait_state(call_id, "Sent", "Succeeded", "Failed", "TimedOut")
    await report(edge.target, "thermo-1", values)


async def test_wait_answers_the_finished_call(edge: Edge) -> None:
    """?wait= answers 200 with the Succeeded call once the device reports the written value."""
    await online(edge)
    task = asyncio.create_task(
        report_when_sent(edge, "c-1", {"setpoint": "22"}), name="mapper-report"
    )
    body = await edge.post_call("setpoint", {"setpoint": 22}, "wait=10s&id=c-1", expect=200)
    await task
    assert body["state"] == "Succeeded"
    assert body["result"] == {"reported": {"setpoint": "22"}}
    assert body["error"] is None
    assert body["source"] == "rest"
    assert body["sentMs"] is not None
    assert body["finishedMs"] >= body["sentMs"] >= body["createdMs"]


async def test_without_wait_answers_202_with_location(edge: Edge) -> None:
    """Without wait the answer is 202 with the call's URL; GET and the list show it."""
    await online(edge)
    first = await edge.post_call("setpoint", {"setpoint": 20}, "timeout=30s")
    assert first["state"] in ("Pending", "Sent")
    status, _, headers = await edge.request(
        "POST", f"{METHODS_BASE}/methods/setpoint", json={"setpoint": 21}
    )
    assert status == 202
    second_id = headers["Location"].rsplit("/", 1)[1]
    assert headers["Location"] == f"{METHODS_BASE}/calls/{second_id}"
    await report(edge.target, "thermo-1", {"setpoint": "20"})
    assert (await edge.wait_state(first["id"], "Succeeded"))["result"] == {
        "reported": {"setpoint": "20"}
    }
    await edge.wait_state(second_id, "Sent")
    await report(edge.target, "thermo-1", {"setpoint": "21"})
    await edge.wait_state(second_id, "Succeeded")
    status, listed, _ = await edge.request("GET", f"{METHODS_BASE}/calls?limit=10")
    assert status == 200
    assert listed["kind"] == "CallList"
    assert [c["id"] for c in listed["items"]] == [second_id, first["id"]]


async def test_a_retried_id_answers_the_same_call(edge: Edge) -> None:
    """A POST with an id used by the same call answers that call; by another call, 409."""
    first = await edge.post_call("setpoint", {"setpoint": 20}, "id=same&ttl=60s")
    again = await edge.post_call("setpoint", {"setpoint": 20}, "id=same&ttl=60s")
    assert again["id"] == first["id"] == "same"
    assert again["createdMs"] == first["createdMs"]
    status, body, _ = await edge.request(
        "POST", f"{METHODS_BASE}/methods/setpoint?id=same", json={"setpoint": 25}
    )
    assert status == 409, body
    assert body["details"]["causes"][0]["field"] == "id"


@pytest.mark.parametrize(
    ("method", "args", "field", "reason"),
    [
        ("setpoint", {"setpoint": 99999}, "args.setpoint", "range"),  # the model's 5..30 first
        ("preset", {"setpoint": 19}, "args.setpoint", "enum"),
        ("preset", {}, "args.setpoint", "required"),
        ("calibrate", {"temperature": 20}, "args.temperature", "readonly"),
        ("setpoint", {"setpoint": "warm"}, "args.setpoint", "value"),
        ("setpoint", {"fan": 1}, "args.fan", "unknown"),
        ("readRegisters", {"offset": -1}, "args.offset", "range"),
        ("readRegisters", {"offset": 1, "count": 2.5}, "args.count", "type"),
    ],
)
async def test_refused_arguments_answer_422_naming_them(
    edge: Edge, method: str, args: dict[str, Any], field: str, reason: str
) -> None:
    """A refused argument answers 422 naming it and why; no call is stored."""
    status, body, _ = await edge.request("POST", f"{METHODS_BASE}/methods/{method}", json=args)
    assert status == 422, body
    cause = body["details"]["causes"][0]
    assert (cause["field"], cause["reason"]) == (field, reason), body
    _, listed, _ = await edge.request("GET", f"{METHODS_BASE}/calls")
    assert listed["items"] == []


async def test_int16_register_refuses_99999(home: Path) -> None:
    """Without a model range, the int16 register refuses 99999 before anything is sent."""
    annotation = json.dumps({"setpoint": {}})
    manifests = "---\n".join([thermo_model("temperature", "setpoint"), thermo_device(annotation)])
    async with (
        running_app(home, manifests) as app,
        aiohttp.ClientSession(base_url=app.rest_url, headers=CLIENT) as http,
        http.post(f"{METHODS_BASE}/methods/setpoint", json={"setpoint": 99999}) as resp,
    ):
        body = await resp.json()
        assert resp.status == 422, body
        cause = body["details"]["causes"][0]
        assert cause["field"] == "args.setpoint"
        assert cause["reason"] == "range"
        assert "int16" in cause["message"] or "32767" in cause["message"], cause


async def test_unknown_device_method_and_call_answer_404(edge: Edge) -> None:
    """An unknown device, method or call answers 404 naming it."""
    status, body, _ = await edge.request(
        "POST", "/api/v1/namespaces/default/devices/nope/methods/setpoint", json={}
    )
    assert status == 404
    assert "nope" in body["message"]
    status, body, _ = await edge.request("POST", f"{METHODS_BASE}/methods/explode", json={})
    assert status == 404
    assert "explode" in body["message"]
    assert "setpoint" in body["message"]  # the methods it has
    status, body, _ = await edge.request("GET", f"{METHODS_BASE}/calls/none-such")
    assert status == 404
    assert "none-such" in body["message"]


async def test_bad_query_and_body_answer_400(edge: Edge) -> None:
    """A wait that is not a duration, a body that is not a JSON object answer 400 naming them."""
    status, body, _ = await edge.request(
        "POST", f"{METHODS_BASE}/methods/setpoint?wait=soon", json={"setpoint": 20}
    )
    assert status == 400
    assert body["details"]["causes"][0]["field"] == "wait"
    status, body, _ = await edge.request(
        "POST",
        f"{METHODS_BASE}/methods/setpoint",
        data=b"[1,2]",
        headers={"Content-Type": "application/json"},
    )
    assert status == 400
    assert body["details"]["causes"][0]["field"] == "body"


async def test_offline_without_ttl_fails_fast(edge: Edge) -> None:
    """A call without a ttl to a device not online is answered Failed (Offline), and kept."""
    body = await edge.post_call("setpoint", {"setpoint": 20}, "wait=5s", expect=200)
    assert body["state"] == "Failed"
    assert body["error"]["code"] == "Offline"
    assert body["sentMs"] is None
    _, listed, _ = await edge.request("GET", f"{METHODS_BASE}/calls")
    assert [c["id"] for c in listed["items"]] == [body["id"]]


async def test_offline_with_ttl_is_delivered_when_the_device_returns(edge: Edge) -> None:
    """A call with a ttl waits Pending and is delivered once the device comes online."""
    body = await edge.post_call("setpoint", {"setpoint": 24}, "ttl=60s")
    assert body["state"] == "Pending"
    await asyncio.sleep(0.1)
    assert (await edge.wait_state(body["id"], "Pending"))["sentMs"] is None
    await online(edge)
    await edge.wait_state(body["id"], "Sent")
    await report(edge.target, "thermo-1", {"setpoint": "24"})
    assert (await edge.wait_state(body["id"], "Succeeded"))["result"]["reported"] == {
        "setpoint": "24"
    }


async def test_offline_with_ttl_expires(edge: Edge) -> None:
    """A call whose device stays offline past its ttl ends Expired, never sent."""
    body = await edge.post_call("setpoint", {"setpoint": 24}, "ttl=200ms&wait=5s", expect=200)
    assert body["state"] == "Expired"
    assert body["error"]["code"] == "Expired"
    assert body["sentMs"] is None


async def test_a_device_that_never_reports_times_out(edge: Edge) -> None:
    """A sent call with no outcome before its deadline ends TimedOut."""
    await online(edge)
    body = await edge.post_call("setpoint", {"setpoint": 23}, "timeout=300ms&wait=5s", expect=200)
    assert body["state"] == "TimedOut"
    assert body["error"]["code"] == "Timeout"


async def test_wait_shorter_than_the_call_answers_202(edge: Edge) -> None:
    """A wait that ends before the outcome answers 202 with the call as it is."""
    await online(edge)
    body = await edge.post_call("setpoint", {"setpoint": 23}, "timeout=30s&wait=100ms")
    assert body["state"] == "Sent"


async def test_driver_command_to_a_plain_mapper_fails_fast(edge: Edge) -> None:
    """A driver-level command without a method service fails with NotOffered, naming why."""
    await online(edge)
    body = await edge.post_call("readRegisters", {"offset": 3}, "wait=5s", expect=200)
    assert body["state"] == "Failed"
    assert body["error"]["code"] == "NotOffered"
    assert body["args"] == {"offset": 3, "count": 1}  # the default filled in


async def test_outcome_is_an_sse_call_event(edge: Edge) -> None:
    """Each outcome is published on the SSE hub as a call event with its reason."""
    hub = edge.core.hub
    with hub.subscribe(kinds=frozenset({"call"})) as sub:
        await edge.post_call("setpoint", {"setpoint": 20}, "wait=5s", expect=200)
        event = await asyncio.wait_for(anext(aiter(sub)), 5)
    assert event.kind == "call"
    assert event.body["type"] == "call"
    assert event.body["reason"] == "CallFailed"
    assert event.body["severity"] == "warning"
    assert event.body["device"] == "thermo-1"
    assert event.body["body"]["error"]["code"] == "Offline"


@pytest.mark.parametrize(
    ("annotation", "path"),
    [
        ("{not json", 'metadata.annotations["twinplane.io/methods"]'),
        (
            json.dumps(
                {
                    "reset": {
                        "parameters": {"seconds": {"type": "int", "maximum": "ten"}},
                        "driver": {"command": "x"},
                    }
                }
            ),
            'metadata.annotations["twinplane.io/methods"].reset.parameters.seconds.maximum',
        ),
        (
            json.dumps({"orphan": {"parameters": {}}}),
            'metadata.annotations["twinplane.io/methods"].orphan',
        ),
        (
            json.dumps({"setpoint": {"parameters": {"other": {}}}}),
            'metadata.annotations["twinplane.io/methods"].setpoint.parameters.other',
        ),
    ],
)
async def test_bad_annotation_is_refused_at_apply(home: Path, annotation: str, path: str) -> None:
    """A bad twinplane.io/methods annotation is refused at apply with its path."""
    manifests = "---\n".join([thermo_model("temperature", "setpoint"), thermo_device(annotation)])
    async with (
        running_app(home) as app,
        aiohttp.ClientSession(base_url=app.rest_url, headers=CLIENT) as http,
        http.post(
            "/api/v1/apply", data=manifests, headers={"Content-Type": "application/yaml"}
        ) as resp,
    ):
        body = await resp.json()
        assert resp.status == 422, body
        fields = [c["field"] for c in body["details"]["causes"]]
        assert path in fields, body


async def test_pending_call_resumes_after_a_restart(home: Path) -> None:
    """A Pending call stored before a stop is delivered after the next start."""
    manifests = "---\n".join([thermo_model("temperature", "setpoint"), thermo_device()])
    async with (
        running_app(home, manifests) as app,
        aiohttp.ClientSession(base_url=app.rest_url, headers=CLIENT) as http,
        http.post(
            f"{METHODS_BASE}/methods/setpoint?ttl=60s&id=kept", json={"setpoint": 26}
        ) as resp,
    ):
        assert resp.status == 202
    async with (
        running_app(home) as app,
        aiohttp.ClientSession(base_url=app.rest_url, headers=CLIENT) as http,
    ):
        edge = Edge(app, http)
        assert (await edge.wait_state("kept", "Pending"))["args"] == {"setpoint": 26}
        await online(edge)
        await edge.wait_state("kept", "Sent")
        await report(edge.target, "thermo-1", {"setpoint": "26"})
        await edge.wait_state("kept", "Succeeded")


async def test_sent_call_without_outcome_fails_after_a_restart(home: Path) -> None:
    """A Sent call without an outcome is not re-sent after a restart: Failed EdgeRestarted."""
    manifests = "---\n".join([thermo_model("temperature", "setpoint"), thermo_device()])
    async with (
        running_app(home, manifests) as app,
        aiohttp.ClientSession(base_url=app.rest_url, headers=CLIENT) as http,
    ):
        edge = Edge(app, http)
        await online(edge)
        await edge.post_call("preset", {"setpoint": 18}, "id=s1&timeout=60s")
        await edge.post_call("setpoint", {"setpoint": 21}, "id=s2&ttl=60s&timeout=60s")
        await edge.wait_state("s1", "Sent")
    async with (
        running_app(home) as app,
        aiohttp.ClientSession(base_url=app.rest_url, headers=CLIENT) as http,
    ):
        edge = Edge(app, http)
        failed = await edge.wait_state("s1", "Failed")
        assert failed["error"]["code"] == "EdgeRestarted"
        # s2 (setpoint is declared idempotent, and was Pending behind s1) is delivered
        await online(edge)
        await edge.wait_state("s2", "Sent")
        await report(edge.target, "thermo-1", {"setpoint": "21"})
        await edge.wait_state("s2", "Succeeded")


async def test_the_make_run_fleet_has_a_setpoint_method(home: Path) -> None:
    """The fleet's thermostats carry a setpoint method (5..35) and the readRegisters command."""
    manifests = device_manifests([(5020, 1)])
    base = "/api/v1/namespaces/default/devices/thermostat-1"
    async with (
        running_app(home, manifests) as app,
        aiohttp.ClientSession(base_url=app.rest_url, headers=CLIENT) as http,
    ):
        async with http.post(f"{base}/methods/setpoint", json={"setpoint": 40}) as resp:
            body = await resp.json()
            assert resp.status == 422, body
            assert body["details"]["causes"][0]["field"] == "args.setpoint"
        await report_state(RunningEdge(app).target, "thermostat-1", "online")
        async with http.post(f"{base}/methods/readRegisters?wait=5s", json={"offset": 10}) as resp:
            body = await resp.json()
            assert resp.status == 200, body
            assert body["error"]["code"] == "NotOffered"


async def test_a_failed_write_fails_the_call(edge: Edge) -> None:
    """A mapper's failed write of the call's value ends the call Failed (WriteFailed)."""
    await online(edge)
    body = await edge.post_call("setpoint", {"setpoint": 19}, "timeout=30s&id=wf")
    await edge.wait_state(body["id"], "Sent")
    for _ in range(500):  # a mapper writes once it has the desired value
        if edge.core.desired_values("default/thermo-1").get("setpoint") == "19":
            break
        await asyncio.sleep(0.01)
    async with mapper_of(edge.app) as mapper:
        await mapper.report(outcome("19"))
    failed = await edge.wait_state("wf", "Failed")
    assert failed["error"]["code"] == "WriteFailed"
    assert "ModbusTimeoutError" in failed["error"]["message"]
