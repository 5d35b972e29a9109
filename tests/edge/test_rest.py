"""The REST API of a real device manager (EdgeApp: SQLite, the DMI server on a Unix socket).

Each test starts an :class:`~twinplane.edge.app.EdgeApp` in its own event loop with a fresh home
and ``rest_addr=127.0.0.1:0``, and talks to it with aiohttp's client; reported values and states
come in through a ``grpc.aio`` DMI client on the Unix socket, as a mapper sends them.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dmi_helpers import manager_stub, report, report_state
from edge_helpers import RunningEdge, running_app, samples, thermo_model
from twinplane.dmi.v1beta1 import api_pb2
from twinplane.edge.rest import parse_addr
from twinplane.errors import SpecError
from twinplane.rest.guard import CLIENT_HEADER

THERMO_1 = """\
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: thermo-1}
spec:
  deviceModelRef: {name: thermo-model}
  nodeName: edge
  protocol: {protocolName: modbus, configData: {ip: 127.0.0.1, port: 5020}}
  properties:
  - name: temperature
    visitors: {protocolName: modbus, configData: {register: HoldingRegister, offset: 0}}
  - name: setpoint
    desired: {value: "21"}
    visitors: {protocolName: modbus, configData: {register: HoldingRegister, offset: 1}}
"""

THERMO = "---\n".join([thermo_model("temperature", "setpoint", "enabled"), THERMO_1])

CLIENT = {CLIENT_HEADER: "twinplane-tests"}
"""What a client that is not a browser sends with its writes (the CLI does the same)."""

DEVICE_PATH = "/api/v1/namespaces/default/devices/thermo-1"
TWIN_PATH = DEVICE_PATH + "/twin"


def joined(*names: str) -> bytes:
    """Sample files as one multi-document YAML (they lack a final newline: add one)."""
    return b"\n---\n".join((samples() / name).read_bytes() for name in names)


@dataclass
class Edge(RunningEdge):
    """A running device manager and an HTTP session on its REST API."""

    http: aiohttp.ClientSession

    async def apply(self, body: str | bytes, content_type: str = "application/yaml") -> Any:  # noqa: ANN401
        """POST /api/v1/apply, expecting 200; the decoded answer."""
        async with self.http.post(
            "/api/v1/apply", data=body, headers={"Content-Type": content_type}
        ) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:  # noqa: ANN401
        """Any request; the status and the decoded JSON answer."""
        async with self.http.request(method, path, **kwargs) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def edge(home: Path) -> AsyncIterator[Edge]:
    """A device manager with a fresh home, no manifests yet."""
    async with (
        running_app(home) as app,
        aiohttp.ClientSession(base_url=app.rest_url, headers=CLIENT) as http,
    ):
        yield Edge(app, http)


def assert_status(body: Any, code: int, reason: str) -> None:  # noqa: ANN401
    """``body`` is a Kubernetes failure Status with this code and reason."""
    assert body["kind"] == "Status"
    assert body["status"] == "Failure"
    assert body["code"] == code
    assert body["reason"] == reason
    assert isinstance(body["message"], str)
    assert body["message"]
    assert isinstance(body["details"], dict)


# -- apply ---------------------------------------------------------------------------------------


async def test_applies_kubeedge_onvif_samples_with_warnings(edge: Edge) -> None:
    """The onvif sample pair applies; its nanosecond cycles come back as warnings with paths."""
    result = await edge.apply(joined("onvifdevice-model.yaml", "onvifdevice-instance.yaml"))
    assert result["items"] == [
        {
            "kind": "DeviceModel",
            "namespace": "default",
            "name": "onvif-model",
            "outcome": "created",
        },
        {
            "kind": "Device",
            "namespace": "default",
            "name": "onvif-device-01",
            "outcome": "created",
        },
    ]
    fields = {(w["document"], w["field"], w["reason"]) for w in result["warnings"]}
    assert (1, "spec.properties[0].reportCycle", "nanoseconds") in fields
    assert (1, "spec.properties[0].collectCycle", "nanoseconds") in fields
    again = await edge.apply(joined("onvifdevice-model.yaml", "onvifdevice-instance.yaml"))
    assert [i["outcome"] for i in again["items"]] == ["unchanged", "unchanged"]


async def test_mqtt_sample_typo_is_rejected_with_its_document_and_path(edge: Edge) -> None:
    """KubeEdge's mqtt sample names a property its model lacks: 422, and nothing is applied."""
    body = joined("mqttdevice-model.yaml", "mqttdevice-instance.yaml")
    status, answer = await edge.call(
        "POST", "/api/v1/apply", data=body, headers={"Content-Type": "application/yaml"}
    )
    assert status == 422
    assert_status(answer, 422, "Invalid")
    (cause,) = answer["details"]["causes"]
    assert cause["field"] == "spec.properties[0].name"
    assert cause["document"] == 1
    assert (cause["kind"], cause["namespace"], cause["name"]) == (
        "Device",
        "default",
        "beta1-device",
    )
    assert "did you mean 'temperture'" in cause["message"]
    status, _ = await edge.call("GET", "/api/v1/namespaces/default/devicemodels/temperture-model")
    assert status == 404


async def test_bad_manifests_answer_422_with_every_issue(edge: Edge) -> None:
    """Every error of every document is a cause naming its document, object and field path."""
    bad = """\
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: m1}
spec:
  protocol: modbus
  properties:
  - {name: a, type: NUMBER, accessMode: ReadWrite}
  - {name: b, type: INT}
---
apiVersion: devices.kubeedge.io/v1alpha2
kind: Device
metadata: {name: old}
spec: {}
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: Bad_Name}
spec:
  deviceModelRef: {name: m1}
  protocol: {protocolName: modbus}
"""
    status, answer = await edge.call(
        "POST", "/api/v1/apply", data=bad, headers={"Content-Type": "application/yaml"}
    )
    assert status == 422
    assert_status(answer, 422, "Invalid")
    causes = answer["details"]["causes"]
    where = {(c["document"], c["field"]) for c in causes}
    assert (0, "spec.properties[0].type") in where
    assert (0, "spec.properties[1].accessMode") in where
    assert (1, "apiVersion") in where
    assert (2, "metadata.name") in where
    assert all(c["message"] for c in causes)
    assert answer["message"].startswith(f"{len(causes)} errors in ")
    status, listed = await edge.call("GET", "/api/v1/devicemodels")
    assert listed["items"] == []


async def test_apply_takes_json_and_checks_the_request(edge: Edge) -> None:
    """JSON applies; a wrong Content-Type is 415, an empty body 400, an oversized one 413."""
    model = {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "DeviceModel",
        "metadata": {"name": "json-model", "namespace": "lab"},
        "spec": {"protocol": "modbus", "properties": []},
    }
    result = await edge.apply(json.dumps(model), "application/json")
    assert result["items"][0]["outcome"] == "created"
    status, answer = await edge.call(
        "POST", "/api/v1/apply", data="x", headers={"Content-Type": "image/png"}
    )
    assert (status, answer["reason"]) == (415, "UnsupportedMediaType")
    status, answer = await edge.call("POST", "/api/v1/apply", data=b"  \n")
    assert (status, answer["reason"]) == (400, "BadRequest")
    huge = io.BytesIO(b"#" * (edge.app.rest.max_body + 1))
    status, answer = await edge.call("POST", "/api/v1/apply", data=huge)
    assert status == 413
    assert_status(answer, 413, "RequestEntityTooLarge")


# -- get, list, delete ---------------------------------------------------------------------------


async def test_get_and_list_devices_and_models(edge: Edge) -> None:
    """Lists per namespace and across them; a device carries its manifest and a status."""
    await edge.apply(THERMO)
    await edge.apply(THERMO.replace("namespace: default", "namespace: lab").split("---")[0])
    status, ns_models = await edge.call("GET", "/api/v1/namespaces/default/devicemodels")
    assert status == 200
    assert ns_models["kind"] == "DeviceModelList"
    assert ns_models["apiVersion"] == "devices.kubeedge.io/v1beta1"
    assert [m["metadata"]["name"] for m in ns_models["items"]] == ["thermo-model"]
    _, all_models = await edge.call("GET", "/api/v1/devicemodels")
    assert [m["metadata"]["namespace"] for m in all_models["items"]] == ["default", "lab"]
    _, devices = await edge.call("GET", "/api/v1/devices")
    assert devices["kind"] == "DeviceList"
    assert [d["metadata"]["name"] for d in devices["items"]] == ["thermo-1"]
    _, lab_devices = await edge.call("GET", "/api/v1/namespaces/lab/devices")
    assert lab_devices["items"] == []
    status, device = await edge.call("GET", DEVICE_PATH)
    assert status == 200
    assert device["kind"] == "Device"
    assert device["spec"]["deviceModelRef"] == {"name": "thermo-model"}
    assert device["status"]["state"] == "unknown"
    twins = {t["propertyName"]: t for t in device["status"]["twins"]}
    assert set(twins) == {"temperature", "setpoint", "enabled"}
    assert twins["setpoint"]["observedDesired"]["value"] == "21"
    assert twins["setpoint"]["observedDesired"]["metadata"]["type"] == "INT"
    assert "reported" not in twins["setpoint"]
    status, model = await edge.call("GET", "/api/v1/namespaces/default/devicemodels/thermo-model")
    assert status == 200
    assert model["spec"]["properties"][0]["unit"] == "Celsius"


async def test_unknown_objects_are_404_statuses(edge: Edge) -> None:
    """A missing device, model or route answers a NotFound Status naming it."""
    status, answer = await edge.call("GET", "/api/v1/namespaces/default/devices/nope")
    assert status == 404
    assert_status(answer, 404, "NotFound")
    assert answer["details"] == {
        "name": "nope",
        "namespace": "default",
        "group": "devices.kubeedge.io",
        "kind": "devices",
    }
    assert '"nope" not found' in answer["message"]
    status, answer = await edge.call("GET", "/api/v1/namespaces/default/devicemodels/nope")
    assert_status(answer, 404, "NotFound")
    status, answer = await edge.call("GET", "/api/v1/nothing-here")
    assert_status(answer, 404, "NotFound")
    async with edge.http.post("/healthz") as resp:
        assert resp.status == 405
        assert "GET" in resp.headers["Allow"]
        assert_status(await resp.json(), 405, "MethodNotAllowed")


async def test_device_status_shows_reported_state(edge: Edge) -> None:
    """A state reported over DMI shows as status.state with lastOnlineTime."""
    await edge.apply(THERMO)
    await report_state(edge.target, "thermo-1", "online")
    _, device = await edge.call("GET", DEVICE_PATH)
    assert device["status"]["state"] == "online"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", device["status"]["lastOnlineTime"])


async def test_delete_device_and_model(edge: Edge) -> None:
    """A model in use is 409; deleting the device frees it; deleting twice is 404."""
    await edge.apply(THERMO)
    model_path = "/api/v1/namespaces/default/devicemodels/thermo-model"
    status, answer = await edge.call("DELETE", model_path)
    assert status == 409
    assert_status(answer, 409, "Conflict")
    assert "default/thermo-1" in answer["message"]
    status, answer = await edge.call("DELETE", DEVICE_PATH)
    assert status == 200
    assert answer["status"] == "Success"
    assert answer["details"]["name"] == "thermo-1"
    status, answer = await edge.call("DELETE", DEVICE_PATH)
    assert_status(answer, 404, "NotFound")
    status, _ = await edge.call("DELETE", model_path)
    assert status == 200
    status, _ = await edge.call("DELETE", model_path)
    assert status == 404
    _, devices = await edge.call("GET", "/api/v1/devices")
    assert devices["items"] == []


# -- twins ---------------------------------------------------------------------------------------


async def test_twin_get_has_every_property(edge: Edge) -> None:
    """GET twin returns each property's type, desired and reported sides and versions."""
    await edge.apply(THERMO)
    status, answer = await edge.call("GET", TWIN_PATH)
    assert status == 200
    assert answer["device"] == "default/thermo-1"
    setpoint = answer["twins"]["setpoint"]
    assert setpoint["type"] == "INT"
    assert setpoint["desired"]["value"] == "21"
    assert setpoint["reported"] is None
    assert setpoint["desired_version"] == {"cloud": 0, "edge": 1}
    assert answer["twins"]["temperature"]["desired"] is None


async def test_twin_patch_sets_desired_and_returns_the_delta(edge: Edge) -> None:
    """PATCH desired answers the device's delta and the twins it changed."""
    await edge.apply(THERMO)
    status, answer = await edge.call(
        "PATCH", TWIN_PATH, json={"desired": {"setpoint": "25", "enabled": True}}
    )
    assert status == 200
    assert answer["delta"] == {"setpoint": "25", "enabled": "true"}
    assert set(answer["twins"]) == {"setpoint", "enabled"}
    assert answer["twins"]["setpoint"]["desired"]["value"] == "25"
    _, twin = await edge.call("GET", TWIN_PATH)
    assert twin["twins"]["enabled"]["desired"]["value"] == "true"


async def test_reported_value_from_dmi_shows_in_twin_and_clears_delta(edge: Edge) -> None:
    """A value reported over DMI is the twin's reported side; matching desired: no delta."""
    await edge.apply(THERMO)
    await report(edge.target, "thermo-1", {"temperature": "22.5", "setpoint": "21"})
    _, twin = await edge.call("GET", TWIN_PATH)
    assert twin["twins"]["temperature"]["reported"]["value"] == "22.5"
    assert twin["twins"]["setpoint"]["reported"]["value"] == "21"
    _, answer = await edge.call("PATCH", TWIN_PATH, json={"desired": {"enabled": "false"}})
    assert answer["delta"] == {"enabled": "false"}
    _, device = await edge.call("GET", DEVICE_PATH)
    twins = {t["propertyName"]: t for t in device["status"]["twins"]}
    assert twins["temperature"]["reported"]["value"] == "22.5"
    assert twins["temperature"]["reported"]["metadata"]["timestamp"].isdigit()


async def test_twin_patch_null_clears_a_desired_value(edge: Edge) -> None:
    """A null desired value clears it, and the delta goes away."""
    await edge.apply(THERMO)
    status, answer = await edge.call("PATCH", TWIN_PATH, json={"desired": {"setpoint": None}})
    assert status == 200
    assert answer["delta"] == {}
    _, twin = await edge.call("GET", TWIN_PATH)
    assert twin["twins"]["setpoint"]["desired"] is None


async def test_twin_patch_rejects_bad_values_naming_each_field(edge: Edge) -> None:
    """Wrong types and unknown properties are 422 causes naming desired.<property>."""
    await edge.apply(THERMO)
    status, answer = await edge.call(
        "PATCH", TWIN_PATH, json={"desired": {"setpoint": "warm", "colour": "red"}}
    )
    assert status == 422
    assert_status(answer, 422, "Invalid")
    causes = {c["field"]: c["message"] for c in answer["details"]["causes"]}
    assert set(causes) == {"desired.setpoint", "desired.colour"}
    assert "INT" in causes["desired.setpoint"]
    assert "no property 'colour'" in causes["desired.colour"]
    _, twin = await edge.call("GET", TWIN_PATH)
    assert twin["twins"]["setpoint"]["desired"]["value"] == "21"  # nothing changed


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([1, 2], ""),
        ({"desired": "25"}, "desired"),
        ({"desired": {}, "reported": {}}, "reported"),
        ({"desired": {"setpoint": [25]}}, "desired.setpoint"),
        ({"desired": {"set point": {"a": 1}}}, 'desired["set point"]'),
    ],
)
async def test_twin_patch_rejects_bad_bodies(edge: Edge, body: Any, field: str) -> None:  # noqa: ANN401
    """A body of the wrong shape is 422 with a cause naming the field."""
    await edge.apply(THERMO)
    status, answer = await edge.call("PATCH", TWIN_PATH, json=body)
    assert status == 422
    assert [c["field"] for c in answer["details"]["causes"]] == [field]


async def test_twin_patch_not_json_or_unknown_device(edge: Edge) -> None:
    """A body that is not JSON is 400; an unknown device is 404 (before the body is read)."""
    await edge.apply(THERMO)
    status, answer = await edge.call("PATCH", TWIN_PATH, data=b"{desired")
    assert_status(answer, 400, "BadRequest")
    status, answer = await edge.call(
        "PATCH", "/api/v1/namespaces/default/devices/ghost/twin", json={"desired": {}}
    )
    assert status == 404
    assert_status(answer, 404, "NotFound")
    status, answer = await edge.call("GET", "/api/v1/namespaces/default/devices/ghost/twin")
    assert status == 404


# -- events --------------------------------------------------------------------------------------


async def read_events(resp: aiohttp.ClientResponse, count: int) -> list[tuple[str, dict[str, Any]]]:
    """The next ``count`` SSE events as (event, data) pairs; comments are skipped."""
    events: list[tuple[str, dict[str, Any]]] = []
    fields: dict[str, str] = {}
    async with asyncio.timeout(10):
        while len(events) < count:
            line = (await resp.content.readline()).decode().rstrip("\n")
            if line.startswith(":"):
                continue
            if line:
                key, _, value = line.partition(": ")
                fields[key] = value
                continue
            if "event" in fields:
                assert fields["id"].isdigit()
                events.append((fields["event"], json.loads(fields["data"])))
            fields = {}
    return events


async def subscribed(resp: aiohttp.ClientResponse) -> None:
    """Waits for the stream's first comment: the subscription is live."""
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    async with asyncio.timeout(5):
        line = await resp.content.readline()
    assert line == b": subscribed\n"


async def test_events_stream_lifecycle_and_twin_changes(edge: Edge) -> None:
    """An apply sends lifecycle events, a PATCH a twin event, in order, with ids."""
    async with edge.http.get("/api/v1/events") as resp:
        await subscribed(resp)
        await edge.apply(THERMO)
        lifecycle = await read_events(resp, 3)  # model upsert, device upsert, desired twin
        kinds = [(kind, data["object"]) for kind, data in lifecycle]
        assert ("lifecycle", "default/thermo-model") in kinds
        assert ("lifecycle", "default/thermo-1") in kinds
        await edge.call("PATCH", TWIN_PATH, json={"desired": {"setpoint": "30"}})
        while True:
            ((kind, data),) = await read_events(resp, 1)
            if kind == "twin" and data.get("value") == "30":
                break
        assert data["object"] == "default/thermo-1"
        assert data["property"] == "setpoint"
        assert data["kind"] == "desired"
        assert isinstance(data["time"], int)


async def test_events_filter_by_kind(edge: Edge) -> None:
    """?kinds=state delivers state events only; an unknown kind is 400."""
    await edge.apply(THERMO)
    async with edge.http.get("/api/v1/events?kinds=state") as resp:
        await subscribed(resp)
        await edge.call("PATCH", TWIN_PATH, json={"desired": {"setpoint": "30"}})
        await report_state(edge.target, "thermo-1", "online")
        ((kind, data),) = await read_events(resp, 1)
        assert kind == "state"
        assert data["state"] == "online"
    status, answer = await edge.call("GET", "/api/v1/events?kinds=twin,weather")
    assert status == 400
    assert "weather" in answer["message"]


async def test_events_send_heartbeats(edge: Edge) -> None:
    """A silent stream gets heartbeat comments."""
    edge.app.rest.heartbeat = 0.1
    async with edge.http.get("/api/v1/events") as resp:
        await subscribed(resp)
        async with asyncio.timeout(5):
            while (await resp.content.readline()) != b": heartbeat\n":
                pass


async def test_events_unsubscribe_when_the_client_leaves(edge: Edge) -> None:
    """Closing the client's connection ends its subscription."""
    hub = edge.app.core.hub  # type: ignore[union-attr]
    async with edge.http.get("/api/v1/events") as resp:
        await subscribed(resp)
        assert len(hub) == 1
        resp.close()
    async with asyncio.timeout(5):
        while len(hub):  # noqa: ASYNC110 - the hub has no event to wait on
            await asyncio.sleep(0.05)


async def test_events_end_when_the_server_stops(edge: Edge) -> None:
    """Stopping the REST server ends open streams cleanly (no hang)."""
    async with edge.http.get("/api/v1/events") as resp:
        await subscribed(resp)
        async with asyncio.timeout(10):
            await edge.app.rest.stop()
            rest = await resp.content.read()  # to the end of the stream
    assert b"event:" not in rest
    assert resp.content.at_eof()


# -- health and metrics --------------------------------------------------------------------------


async def test_healthz_checks_store_and_dmi(edge: Edge) -> None:
    """/healthz is ok with both checks; with the DMI server stopped it is 503."""
    status, answer = await edge.call("GET", "/healthz")
    assert status == 200
    assert answer["status"] == "ok"
    assert answer["checks"]["store"]["status"] == "ok"
    assert answer["checks"]["store"]["journalMode"] == "wal"
    assert answer["checks"]["dmi"] == {
        "status": "ok",
        "socket": str(edge.app.config.socket_path),
    }
    await edge.app.dmi.stop()  # type: ignore[union-attr]
    status, answer = await edge.call("GET", "/healthz")
    assert status == 503
    assert answer["status"] == "fail"
    assert answer["checks"]["dmi"]["status"] == "fail"


_SAMPLE = re.compile(
    r'(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>(?:[a-zA-Z_]\w*="(?:[^"\\\n]|\\.)*",?)*)\})?'
    r" (?P<value>[-+]?(?:[0-9.eE+-]+|Inf|NaN))"
)
_LABEL = re.compile(r'([a-zA-Z_]\w*)="((?:[^"\\\n]|\\.)*)"')


def parse_prometheus(text: str) -> dict[str, tuple[str, list[tuple[dict[str, str], float]]]]:
    """Strictly parses text format 0.0.4: family -> (type, samples); HELP/TYPE come first."""
    assert text.endswith("\n")
    families: dict[str, tuple[str, list[tuple[dict[str, str], float]]]] = {}
    helped: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name not in helped, f"HELP twice for {name}"
            helped.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name in helped, f"TYPE before HELP for {name}"
            assert kind in ("counter", "gauge", "histogram")
            assert name not in families
            families[name] = (kind, [])
        else:
            match = _SAMPLE.fullmatch(line)
            assert match, f"not a sample line: {line!r}"
            name = match["name"]
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if name not in families and families.get(base, ("",))[0] == "histogram":
                name = base  # a histogram's _bucket, _sum and _count samples
            assert name in families, f"sample before TYPE: {line!r}"
            labels = dict(_LABEL.findall(match["labels"] or ""))
            families[name][1].append((labels, float(match["value"])))
    return families


async def test_metrics_are_prometheus_text(edge: Edge) -> None:
    """/metrics parses as Prometheus text with the core, DMI, mapper, hub and device families."""
    await edge.apply(THERMO)
    await report(edge.target, "thermo-1", {"temperature": "20"})
    await report_state(edge.target, "thermo-1", "online")
    register = api_pb2.MapperRegisterRequest(
        withData=False,
        mapper=api_pb2.MapperInfo(
            name="modbus-1", protocol="modbus", address=b"/nonexistent/modbus.sock"
        ),
    )
    async with manager_stub(edge.target) as stub:
        await stub.MapperRegister(register, timeout=5)
    async with edge.http.get("/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        families = parse_prometheus(await resp.text())

    def value(name: str, **labels: str) -> float:
        _, samples = families[name]
        return next(v for lbl, v in samples if lbl == labels)

    assert families["twinplane_dmi_reports_total"][0] == "counter"
    assert value("twinplane_dmi_reports_total") == 1
    assert value("twinplane_applies_total") == 1
    assert value("twinplane_dmi_admitted_total") >= 3
    assert value("twinplane_dmi_rejected_total") == 0
    assert value("twinplane_devices", state="online") == 1
    assert value("twinplane_devices", state="offline") == 0
    assert value("twinplane_device_models") == 1
    assert value("twinplane_engine_devices") == 1
    assert value("twinplane_mappers_registered") == 1
    labels = {"mapper": "modbus-1", "protocol": "modbus"}
    assert families["twinplane_mapper_pending_ops"][0] == "gauge"
    assert any(lbl == labels for lbl, _ in families["twinplane_mapper_ops_failed_total"][1])
    assert value("twinplane_events_subscribers") == 0
    assert families["twinplane_events_published_total"][0] == "counter"
    requests = families["twinplane_http_requests_total"][1]
    assert ({"method": "POST", "route": "/api/v1/apply", "code": "200"}, 1.0) in requests


def test_parse_addr() -> None:
    """HOST:PORT parses, IPv6 in brackets too; anything else is a SpecError on rest_addr."""
    assert parse_addr("127.0.0.1:7780") == ("127.0.0.1", 7780)
    assert parse_addr("[::1]:0") == ("::1", 0)
    for bad in ("7780", "localhost", ":80", "host:http", "host:70000"):
        with pytest.raises(SpecError) as info:
            parse_addr(bad)
        assert info.value.path == "rest_addr"
