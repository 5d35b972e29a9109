"""The cloud's REST API at Kubernetes' paths, over the embedded registry, spoken to over HTTP.

Each test starts a cloud on a free port and talks to it with aiohttp's client, as any HTTP client
of the Kubernetes API would: list, get, watch (from a version; a version too old answers an
``ERROR`` event with a 410 Status), create, replace, merge patch, delete, and the errors.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from cloud_helpers import cloud_home, running_cloud, vdevice, vmodel
from twinplane.cloud.app import CloudApp
from twinplane.cloud.registry.embedded import EmbeddedRegistry

pytestmark = pytest.mark.slow

APIS = "/apis/devices.kubeedge.io/v1beta1"
NS = f"{APIS}/namespaces/default"
JSON = {"Content-Type": "application/json"}
MERGE = {"Content-Type": "application/merge-patch+json"}


@asynccontextmanager
async def api(**settings: Any) -> AsyncIterator[tuple[CloudApp, aiohttp.ClientSession]]:  # noqa: ANN401
    """A cloud with the embedded registry and an HTTP session on its URL."""
    with cloud_home() as home:
        registry = settings.pop("registry", None)
        if registry is not None:
            registry = EmbeddedRegistry(home / "registry.db", **registry)
        async with (
            running_cloud(home, registry=registry, **settings) as cloud,
            aiohttp.ClientSession(cloud.url) as http,
        ):
            yield cloud, http


async def call(
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    body: Any = None,  # noqa: ANN401
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One request; the status and the decoded JSON answer."""
    data = body if isinstance(body, bytes | str) or body is None else json.dumps(body)
    async with http.request(method, path, data=data, headers=headers or JSON) as response:
        return response.status, await response.json(content_type=None)


async def test_create_get_list_replace_patch_delete_as_the_api_server_answers() -> None:
    """Every verb at its Kubernetes path, with Kubernetes' status codes and shapes."""
    async with api() as (_, http):
        status, model = await call(http, "POST", f"{NS}/devicemodels", vmodel())
        assert status == 201
        assert model["metadata"]["uid"]
        assert model["metadata"]["resourceVersion"]
        status, device = await call(http, "POST", f"{NS}/devices", vdevice("d1", "node-a"))
        assert status == 201
        assert device["metadata"]["generation"] == 1

        status, again = await call(http, "POST", f"{NS}/devices", vdevice("d1", "node-a"))
        assert (status, again["reason"], again["kind"]) == (409, "AlreadyExists", "Status")

        status, got = await call(http, "GET", f"{NS}/devices/d1")
        assert status == 200
        assert got["spec"]["nodeName"] == "node-a"
        status, listed = await call(http, "GET", f"{APIS}/devices")  # every namespace
        assert listed["kind"] == "DeviceList"
        assert [o["metadata"]["name"] for o in listed["items"]] == ["d1"]
        assert listed["metadata"]["resourceVersion"]

        # a merge patch moves the device; a stale resourceVersion in a patch is a conflict
        stale = got["metadata"]["resourceVersion"]
        patch = {"spec": {"nodeName": "node-b"}}
        status, moved = await call(http, "PATCH", f"{NS}/devices/d1", patch, MERGE)
        assert (status, moved["spec"]["nodeName"]) == (200, "node-b")
        assert moved["metadata"]["generation"] == 2
        conditional = {"metadata": {"resourceVersion": stale}, "spec": {"nodeName": "node-c"}}
        status, conflict = await call(http, "PATCH", f"{NS}/devices/d1", conditional, MERGE)
        assert (status, conflict["reason"]) == (409, "Conflict")

        # PUT: the whole object, conditional on its version
        moved["spec"]["nodeName"] = "node-c"
        status, replaced = await call(http, "PUT", f"{NS}/devices/d1", moved)
        assert (status, replaced["spec"]["nodeName"]) == (200, "node-c")
        status, conflict = await call(http, "PUT", f"{NS}/devices/d1", moved)  # its rv is old now
        assert (status, conflict["reason"]) == (409, "Conflict")

        status, gone = await call(http, "DELETE", f"{NS}/devices/d1")
        assert (status, gone["metadata"]["name"]) == (200, "d1")
        status, missing = await call(http, "GET", f"{NS}/devices/d1")
        assert (status, missing["reason"], missing["details"]["name"]) == (404, "NotFound", "d1")


async def test_bad_requests_get_a_status_naming_what_is_wrong_and_change_nothing() -> None:
    """Invalid objects, wrong media types, garbled bodies, mismatched names: 4xx, nothing stored."""
    async with api() as (cloud, http):
        await call(http, "POST", f"{NS}/devicemodels", vmodel())
        bad = vdevice("d1", "node-a")
        bad["spec"]["properties"][0]["name"] = "humidity"  # not in the model
        del bad["spec"]["deviceModelRef"]
        status, invalid = await call(http, "POST", f"{NS}/devices", bad)
        assert (status, invalid["reason"]) == (422, "Invalid")
        fields = [c["field"] for c in invalid["details"]["causes"]]
        assert any("deviceModelRef" in f for f in fields), fields

        status, garbled = await call(http, "POST", f"{NS}/devices", b'{"kind": "Dev')
        assert (status, garbled["reason"]) == (400, "BadRequest")
        assert "not JSON" in garbled["message"]

        elsewhere = vdevice("d1", "node-a", namespace="other")
        status, mismatch = await call(http, "POST", f"{NS}/devices", elsewhere)
        assert status == 400
        assert "namespace" in mismatch["message"]

        wrong_kind = {**vmodel(), "kind": "DeviceModel"}
        status, refused = await call(http, "POST", f"{NS}/devices", wrong_kind)
        assert status == 400
        assert "Device" in refused["message"]

        await call(http, "POST", f"{NS}/devices", vdevice("d1", "node-a"))
        strategic = {"Content-Type": "application/strategic-merge-patch+json"}
        status, unsupported = await call(http, "PATCH", f"{NS}/devices/d1", {}, strategic)
        assert (status, unsupported["reason"]) == (415, "UnsupportedMediaType")
        assert "merge-patch+json" in unsupported["message"]

        status, named = await call(http, "PUT", f"{NS}/devices/d2", vdevice("d1", "node-a"))
        assert status == 400
        assert "does not match" in named["message"]

        status, unknown = await call(http, "GET", f"{APIS}/namespaces/default/pods")
        assert (status, unknown["kind"]) == (404, "Status")

        assert cloud.registry is not None
        devices, _ = await cloud.registry.list("devices")
        assert [(d["metadata"]["name"], d["spec"]["nodeName"]) for d in devices] == [
            ("d1", "node-a")
        ]


async def test_a_watch_streams_every_change_after_its_version_in_order() -> None:
    """``?watch=true&resourceVersion=N``: newline-delimited events, ADDED, MODIFIED, DELETED."""
    async with api() as (_, http):
        await call(http, "POST", f"{NS}/devicemodels", vmodel())
        _, listed = await call(http, "GET", f"{NS}/devices")
        since = listed["metadata"]["resourceVersion"]
        query = {"watch": "true", "resourceVersion": since, "timeoutSeconds": "10"}
        async with http.get(f"{NS}/devices", params=query) as response:
            assert response.status == 200
            await call(http, "POST", f"{NS}/devices", vdevice("w1", "node-a"))
            patch = {"metadata": {"labels": {"line": "2"}}}
            await call(http, "PATCH", f"{NS}/devices/w1", patch, MERGE)
            await call(http, "DELETE", f"{NS}/devices/w1")
            seen: list[tuple[str, dict[str, str]]] = []
            while len(seen) < 3:
                line = await asyncio.wait_for(response.content.readline(), 10)
                event = json.loads(line)
                seen.append((event["type"], event["object"]["metadata"].get("labels", {})))
        assert seen == [("ADDED", {}), ("MODIFIED", {"line": "2"}), ("DELETED", {"line": "2"})]


async def test_a_watch_from_a_version_no_longer_kept_answers_410_and_a_relist_recovers() -> None:
    """The registry keeps a bounded log: an older version gets ERROR 410 Expired, as from etcd."""
    async with api(registry={"keep_changes": 5}) as (_, http):
        await call(http, "POST", f"{NS}/devicemodels", vmodel())
        _, listed = await call(http, "GET", f"{NS}/devices")
        old = listed["metadata"]["resourceVersion"]
        for i in range(10):
            await call(http, "POST", f"{NS}/devices", vdevice(f"g{i}", "node-a"))
        query = {"watch": "1", "resourceVersion": old}
        async with http.get(f"{NS}/devices", params=query) as response:
            assert response.status == 200
            event = json.loads(await asyncio.wait_for(response.content.readline(), 10))
        assert event["type"] == "ERROR"
        assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
        _, relisted = await call(http, "GET", f"{NS}/devices")
        assert len(relisted["items"]) == 10


async def test_label_selectors_filter_lists() -> None:
    """``labelSelector`` with equality terms, as kubectl's ``-l`` sends."""
    async with api() as (_, http):
        await call(http, "POST", f"{NS}/devicemodels", vmodel())
        for name, line in (("a", "1"), ("b", "2"), ("c", None)):
            body = vdevice(name, "node-a")
            if line:
                body["metadata"]["labels"] = {"line": line}
            await call(http, "POST", f"{NS}/devices", body)

        async def names(selector: str) -> list[str]:
            async with http.get(f"{NS}/devices", params={"labelSelector": selector}) as r:
                return [o["metadata"]["name"] for o in (await r.json())["items"]]

        assert await names("line=1") == ["a"]
        assert await names("line!=1") == ["b", "c"]
        assert await names("line") == ["a", "b"]
        assert await names("!line") == ["c"]
        status, bad = await call(http, "GET", f"{NS}/devices?labelSelector=line+in+(1,2)")
        assert status == 400
        assert "labelSelector" in json.dumps(bad)


async def test_discovery_names_the_groups_and_their_resources() -> None:
    """``/apis`` and each group version's resource list, which clients read before anything."""
    async with api() as (_, http):
        _, groups = await call(http, "GET", "/apis")
        assert [g["name"] for g in groups["groups"]] == ["devices.kubeedge.io", "twinplane.io"]
        _, ours = await call(http, "GET", "/apis/twinplane.io/v1alpha1")
        assert [(r["name"], r["kind"]) for r in ours["resources"]] == [
            ("devicecalls", "DeviceCall")
        ]
        _, group = await call(http, "GET", "/apis/twinplane.io")
        assert group["preferredVersion"]["groupVersion"] == "twinplane.io/v1alpha1"
        _, resources = await call(http, "GET", APIS)
        kinds = {r["name"]: r["kind"] for r in resources["resources"]}
        assert kinds == {
            "devices": "Device",
            "devicemodels": "DeviceModel",
            "devicestatuses": "DeviceStatus",
        }
        assert all("watch" in r["verbs"] for r in resources["resources"])


async def test_the_cli_routes_apply_and_set_desired_values_in_the_device_spec() -> None:
    """``/api/v1/apply`` validates all first; ``PATCH …/twin`` writes ``spec…desired``."""
    async with api() as (cloud, http):
        manifest = json.dumps(vmodel()) + "\n" + json.dumps(vdevice("t1", "node-a"))
        status, applied = await call(http, "POST", "/api/v1/apply", manifest)
        assert status == 200
        assert [i["outcome"] for i in applied["items"]] == ["created", "created"]
        status, again = await call(http, "POST", "/api/v1/apply", manifest)
        assert [i["outcome"] for i in again["items"]] == ["unchanged", "unchanged"]

        broken = json.dumps(vdevice("t2", "node-a")).replace('"vmodel"', '"nomodel"')
        status, refused = await call(http, "POST", "/api/v1/apply", broken)
        assert (status, refused["reason"]) == (422, "Invalid")
        assert refused["details"]["causes"][0]["field"] == "spec.deviceModelRef.name"

        twin = "/api/v1/namespaces/default/devices/t1/twin"
        status, patched = await call(http, "PATCH", twin, {"desired": {"setpoint": "42"}})
        assert status == 200
        assert patched["delta"] == {"setpoint": "42"}
        assert cloud.registry is not None
        device = await cloud.registry.get("devices", "default", "t1")
        desired = {p["name"]: p.get("desired") for p in device["spec"]["properties"]}
        assert desired["setpoint"] == {"value": "42"}
        _, twins = await call(http, "GET", twin)
        assert twins["twins"]["setpoint"]["desired"]["value"] == "42"
        assert twins["twins"]["setpoint"]["desired_version"]["cloud"] == 1

        for body, field in (
            ({"desired": {"setpoint": "500"}}, "desired.setpoint"),  # maximum 100
            ({"desired": {"temperature": "1"}}, "desired.temperature"),  # ReadOnly
            ({"desired": {"setpoint": "warm"}}, "spec.properties[1].desired.value"),  # INT
            ({"desired": {"flow": "1"}}, "desired.flow"),  # no such property
        ):
            status, invalid = await call(http, "PATCH", twin, body)
            assert status == 422, body
            assert invalid["details"]["causes"][0]["field"] == field
        device = await cloud.registry.get("devices", "default", "t1")
        desired = {p["name"]: p.get("desired") for p in device["spec"]["properties"]}
        assert desired["setpoint"] == {"value": "42"}  # nothing refused was written

        status, in_use = await call(
            http, "DELETE", "/api/v1/namespaces/default/devicemodels/vmodel"
        )
        assert (status, in_use["reason"]) == (409, "Conflict")
