"""The mapper's REST data API against a real mapper runtime and a real device manager."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from mapper_helpers import manifests, mapper_config, running_mapper, virtual_device
from multidict import CIMultiDictProxy

import raw_http
from edge_helpers import running_app, short_home
from twinplane.drivers.base import DeviceClient, PropertyVisitor, ProtocolConfig
from twinplane.drivers.virtual import VirtualClient, VirtualDriver
from twinplane.edge.core import EdgeCore
from twinplane.mapper.runtime import MapperRuntime
from twinplane.rest.guard import CLIENT_HEADER
from twinplane.twin import ValueLike
from waits import WAIT_S, until

MODEL = (
    "apiVersion: devices.kubeedge.io/v1beta1\n"
    "kind: DeviceModel\n"
    "metadata: {name: vmodel, namespace: default}\n"
    "spec:\n"
    "  protocol: virtual\n"
    "  properties:\n"
    "  - {name: temp, type: FLOAT, accessMode: ReadOnly, description: air temperature,\n"
    "     minimum: '-40', maximum: '85', unit: C}\n"
    "  - {name: count, type: INT, accessMode: ReadOnly}\n"
    "  - {name: setpoint, type: INT, accessMode: ReadWrite}\n"
)

METHODS = "  methods:\n  - {name: setValue, propertyNames: [setpoint]}\n"


def device(name: str, *, cycle_ms: int = 40, protocol_config: str = "{}") -> str:
    """A virtual device (temp, count, setpoint) with the method ``setValue`` over setpoint."""
    return virtual_device(name, cycle_ms=cycle_ms, protocol_config=protocol_config) + METHODS


class OfflineClient(VirtualClient):
    """A virtual device that does not answer reads."""

    async def read(self, batch: Sequence[PropertyVisitor]) -> list[ValueLike]:
        """Fails as an unreachable device."""
        raise ConnectionRefusedError("no route to the device")


class LockedClient(VirtualClient):
    """A virtual device that refuses every write."""

    async def write(self, prop: PropertyVisitor, value: str) -> None:
        """Fails."""
        raise RuntimeError("register is write-protected")


class FaultyDriver(VirtualDriver):
    """The virtual driver; ``offline: true`` or ``locked: true`` in the protocol config fault."""

    def new_client(self, protocol: ProtocolConfig) -> DeviceClient:
        """A faulty client when the config asks for one."""
        if protocol.config.get("offline"):
            return OfflineClient(protocol)
        if protocol.config.get("locked"):
            return LockedClient(protocol)
        return super().new_client(protocol)


@dataclass
class Rig:
    """A device manager, a mapper and an HTTP session toward the mapper's REST API."""

    core: EdgeCore
    runtime: MapperRuntime
    session: aiohttp.ClientSession
    url: str

    async def call(
        self, path: str, method: str = "GET", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any], CIMultiDictProxy[str]]:
        """Status, JSON body and headers of one request."""
        async with self.session.request(method, self.url + path, headers=headers) as resp:
            assert resp.content_type == "application/json"
            return resp.status, await resp.json(), resp.headers

    async def value(self, dev: str, prop: str) -> str | None:
        """The REST value of a property, ``None`` while it answers other than 200."""
        status, body, _ = await self.call(f"/api/v1/device/default/{dev}/{prop}")
        return str(body["Data"]["Value"]) if status == 200 else None

    def reported(self, dev: str, prop: str) -> str | None:
        """The device manager's reported value of a twin."""
        side = self.core.twins(f"default/{dev}")[prop]["reported"]
        return None if side is None else side["value"]


@contextlib.asynccontextmanager
async def rig(*devices: str, **settings: Any) -> AsyncIterator[Rig]:  # noqa: ANN401
    """A device manager with the model and ``devices``, and a registered mapper on REST port 0.

    ``settings`` override the mapper's config (e.g. ``allowed_hosts``).
    """
    with short_home() as home:
        async with running_app(home, manifests(MODEL, *devices)) as app:
            assert app.core is not None
            cfg = mapper_config(home, app.config.socket_path).with_overrides(**settings)
            async with running_mapper(cfg, FaultyDriver()) as mapper:
                assert mapper.rest is not None
                timeout = aiohttp.ClientTimeout(total=WAIT_S)
                client = {CLIENT_HEADER: "twinplane-tests"}  # POST and PUT writes need it
                async with aiohttp.ClientSession(timeout=timeout, headers=client) as session:
                    yield Rig(app.core, mapper.runtime, session, mapper.rest.url)


def reported_is(r: Rig, dev: str, prop: str, value: str) -> Callable[[], bool]:
    """A predicate: the device manager's reported value of a twin is ``value``."""
    return lambda: r.reported(dev, prop) == value


def check_base(body: dict[str, Any], status: int = 200) -> None:
    """mapper-framework's base fields are there."""
    assert body["apiVersion"] == "v1"
    assert body["statusCode"] == status
    assert isinstance(body["timeStamp"], str)
    assert body["timeStamp"][:2] == "20"


async def test_ping_answers_mapper_frameworks_body() -> None:
    """GET /api/v1/ping answers mapper-framework's message on a picked port."""
    async with rig(device("v1")) as r:
        assert not r.url.endswith(":7777")
        status, body, _ = await r.call("/api/v1/ping")
        assert status == 200
        check_base(body)
        assert body["Message"] == "This is v1 API, the server is running normally."


async def test_property_read_is_the_engine_twin_not_a_device_read() -> None:
    """A property read answers the engine twin's value, type and timestamp without polling."""
    async with rig(device("v1")) as r:
        await until(lambda: r.reported("v1", "setpoint") == "10", "setpoint reported")
        status, body, _ = await r.call("/api/v1/device/default/v1/setpoint")
        assert status == 200
        check_base(body)
        twin = r.runtime.engine.twins("default/v1")["setpoint"]["reported"]
        assert twin is not None
        assert body["Data"] == {
            "DeviceName": "v1",
            "PropertyName": "setpoint",
            "Namespace": "default",
            "Value": "10",
            "Type": "int",
            "TimeStamp": twin["timestamp"],
        }
        status, body, _ = await r.call("/api/v1/device/default/v1/temp")
        assert (status, body["Data"]["Type"]) == (200, "float")
        assert isinstance(float(body["Data"]["Value"]), float)


async def test_fresh_read_polls_the_device_now() -> None:
    """?fresh=1 polls a slow device at once and answers the new sample from the twin."""
    async with rig(device("slow", cycle_ms=60_000)) as r:
        scheduled = r.runtime.devices["default/slow"].scheduled
        status, body, _ = await r.call("/api/v1/device/default/slow/count?fresh=1")
        assert status == 200
        first = int(body["Data"]["Value"])
        polls = scheduled.polls
        status, body, _ = await r.call("/api/v1/device/default/slow/count?fresh=1")
        assert status == 200
        assert int(body["Data"]["Value"]) == first + 1
        assert scheduled.polls == polls + 1
        status, body, _ = await r.call("/api/v1/device/default/slow/count")
        assert (status, int(body["Data"]["Value"])) == (200, first + 1)
        assert scheduled.polls == polls + 1


async def test_batch_read_answers_every_property() -> None:
    """GET /api/v1/device/{ns}/{name} answers every property with value, type and timestamp."""
    async with rig(device("v1")) as r:
        await until(lambda: r.reported("v1", "count") is not None, "count reported")
        status, body, _ = await r.call("/api/v1/device/default/v1")
        assert status == 200
        check_base(body)
        data = body["Data"]
        assert (data["DeviceName"], data["Namespace"], data["State"]) == ("v1", "default", "online")
        props = {p["PropertyName"]: p for p in data["Properties"]}
        assert list(props) == ["temp", "count", "setpoint"]
        assert {p["Type"] for p in props.values()} == {"float", "int"}
        assert props["setpoint"]["Value"] == "10"
        assert all(isinstance(p["TimeStamp"], int) for p in props.values())


async def test_methods_list_paths_and_parameters() -> None:
    """GET /api/v1/devicemethod/{ns}/{name} lists each method with its path and parameters."""
    async with rig(device("v1")) as r:
        status, body, _ = await r.call("/api/v1/devicemethod/default/v1")
        assert status == 200
        check_base(body)
        assert body["Data"] == {
            "Methods": [
                {
                    "Name": "setValue",
                    "Path": "/api/v1/devicemethod/default/v1/setValue/{propertyName}/{data}",
                    "Parameters": [{"PropertyName": "setpoint", "ValueType": "int"}],
                }
            ]
        }


async def test_writes_through_post_and_get_reach_the_driver_and_the_twin() -> None:
    """A write by POST, then by GET (KubeEdge's way), reaches the driver, then both twins."""
    async with rig(device("v1")) as r:
        client = r.runtime.devices["default/v1"].client
        assert isinstance(client, VirtualClient)
        for method, value in (("POST", "33"), ("GET", "44"), ("PUT", "55")):
            path = f"/api/v1/devicemethod/default/v1/setValue/setpoint/{value}"
            status, body, _ = await r.call(path, method)
            assert status == 200, body
            check_base(body)
            assert body["Message"] == f"Write data {value} to device default/v1 successfully."
            assert client._signal(r.runtime.devices["default/v1"].props["setpoint"]).held == value
            await until(reported_is(r, "v1", "setpoint", value), f"reported {value}")
            assert await r.value("v1", "setpoint") == value
        assert r.runtime.devices["default/v1"].bus.stats.write_errors == 0


async def test_model_of_a_device() -> None:
    """GET /api/v1/meta/model/{ns}/{name} answers the device's model, empty fields omitted."""
    async with rig(device("v1")) as r:
        status, body, _ = await r.call("/api/v1/meta/model/default/v1")
        assert status == 200
        check_base(body)
        assert (body["id"], body["name"], body["namespace"]) == (
            "default/vmodel",
            "vmodel",
            "default",
        )
        assert "description" not in body
        assert body["properties"][0] == {
            "name": "temp",
            "dataType": "FLOAT",
            "description": "air temperature",
            "accessMode": "ReadOnly",
            "minimum": "-40",
            "maximum": "85",
            "unit": "C",
        }
        assert body["properties"][2] == {
            "name": "setpoint",
            "dataType": "INT",
            "accessMode": "ReadWrite",
        }


async def test_unknown_device_property_and_method_are_404_naming_the_field() -> None:
    """Unknown device, property, method or method property answer 404 with the field named."""
    async with rig(device("v1")) as r:
        write = "/api/v1/devicemethod/default/v1"
        cases = [
            ("/api/v1/device/default/ghost/temp", "name", "ghost"),
            ("/api/v1/device/default/ghost", "name", "ghost"),
            ("/api/v1/devicemethod/other/v1", "name", "v1"),
            ("/api/v1/meta/model/default/ghost", "name", "ghost"),
            ("/api/v1/devicemethod/default/ghost/setValue/setpoint/1", "name", "ghost"),
            ("/api/v1/device/default/v1/humidity", "property", "humidity"),
            (f"{write}/reboot/setpoint/1", "methodname", "reboot"),
            (f"{write}/setValue/temp/1", "property", "temp"),
            ("/api/v1/nothing", "path", "/api/v1/nothing"),
        ]
        for path, field, value in cases:
            status, body, _ = await r.call(path)
            assert status == 404, path
            check_base(body, 404)
            assert (body["Reason"], body["Field"], body["Value"]) == ("NotFound", field, value)
            assert body["Message"]


async def test_bad_data_is_400_and_nothing_is_written() -> None:
    """Data that does not convert by the property's type answers 400 naming data."""
    async with rig(device("v1")) as r:
        bus = r.runtime.devices["default/v1"].bus
        status, body, _ = await r.call("/api/v1/devicemethod/default/v1/setValue/setpoint/warm")
        assert status == 400
        check_base(body, 400)
        assert (body["Reason"], body["Field"], body["Value"]) == ("BadRequest", "data", "warm")
        assert "int" in body["Message"]
        assert bus.stats.writes + bus.stats.write_errors == 0


async def test_failed_device_write_is_502() -> None:
    """A write the driver fails answers 502 with the driver's error."""
    async with rig(device("locked", protocol_config="{locked: true}")) as r:
        path = "/api/v1/devicemethod/default/locked/setValue/setpoint/5"
        status, body, _ = await r.call(path, "POST")
        assert status == 502
        check_base(body, 502)
        assert (body["Reason"], body["Field"]) == ("BadGateway", "data")
        assert "write-protected" in body["Message"]


async def test_offline_device_is_503_for_reads_and_writes() -> None:
    """A device that does not answer makes reads, fresh reads and writes answer 503."""
    async with rig(device("gone", protocol_config="{offline: true}")) as r:
        scheduled = r.runtime.devices["default/gone"].scheduled
        await until(lambda: scheduled.state == "offline", "gone offline")
        for path, method in (
            ("/api/v1/device/default/gone/temp", "GET"),
            ("/api/v1/device/default/gone/temp?fresh=1", "GET"),
            ("/api/v1/device/default/gone", "GET"),
            ("/api/v1/devicemethod/default/gone/setValue/setpoint/5", "POST"),
        ):
            status, body, _ = await r.call(path, method)
            assert status == 503, path
            check_base(body, 503)
            assert (body["Reason"], body["Field"], body["State"]) == (
                "ServiceUnavailable",
                "name",
                "offline",
            )
            assert "no route to the device" in body["Message"]


async def test_correlation_id_is_echoed_and_wrong_methods_are_405() -> None:
    """X-Correlation-ID comes back on answers and errors; DELETE or HEAD on a write is 405."""
    async with rig(device("v1")) as r:
        headers = {"X-Correlation-ID": "req-42"}
        for path in ("/api/v1/ping", "/api/v1/device/default/ghost/temp"):
            _, _, got = await r.call(path, headers=headers)
            assert got["X-Correlation-ID"] == "req-42"
        write = "/api/v1/devicemethod/default/v1/setValue/setpoint/7"
        status, body, got = await r.call(write, "DELETE", headers=headers)
        assert (status, body["Field"], body["Value"]) == (405, "method", "DELETE")
        assert got["X-Correlation-ID"] == "req-42"
        assert {"GET", "POST", "PUT"} <= {m.strip() for m in got["Allow"].split(",")}
        async with r.session.head(r.url + write) as resp:
            assert resp.status == 405
        assert r.runtime.devices["default/v1"].bus.stats.writes == 0


# -- what the REST data API lets through (twinplane.rest.guard) --------------------------------


WRITE = "/api/v1/devicemethod/default/v1/setValue/setpoint/{value}"


def held(r: Rig) -> str | None:
    """The setpoint the virtual device holds (what a write put there), ``None`` before one."""
    running = r.runtime.devices["default/v1"]
    client = running.client
    assert isinstance(client, VirtualClient)
    value = client._signal(running.props["setpoint"]).held
    return None if value is None else str(value)


@pytest.mark.parametrize(
    ("method", "headers", "field"),
    [
        ("GET", {"Origin": "http://evil.example"}, "Origin"),  # fetch() from a page
        ("GET", {"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site"),  # <img src=...> on a page
        ("GET", {"Referer": "http://evil.example/page"}, "Referer"),  # an older browser's img
        ("GET", {"Host": "evil.example:7777"}, "Host"),  # a page that rebound its name
        ("POST", {}, "Content-Type"),  # a form's POST
        ("POST", {"Content-Type": "text/plain"}, "Content-Type"),
        ("PUT", {"Origin": "null", CLIENT_HEADER: "x"}, "Origin"),
    ],
)
async def test_a_write_a_foreign_page_can_send_writes_nothing(
    method: str, headers: dict[str, str], field: str
) -> None:
    """KubeEdge's GET write route and the POST/PUT ones refuse other sites' pages: 403."""
    async with rig(device("v1")) as r:
        host = headers.pop("Host", None)
        answer = await raw_http.request(
            r.url, method, WRITE.format(value="66"), {**raw_http.CURL, **headers}, host=host
        )
        assert answer.status == 403, answer.body
        body = answer.json()
        check_base(body, 403)
        assert (body["Reason"], body["Field"]) == ("Forbidden", field)
        assert body["Message"]
        assert r.runtime.devices["default/v1"].bus.stats.writes == 0
        assert held(r) != "66"


async def test_kubeedge_get_write_route_works_for_same_host_clients() -> None:
    """Curl's GET, without Origin, on the loopback host spellings, writes the register."""
    async with rig(device("v1")) as r:
        port = raw_http.host_of(r.url).rpartition(":")[2]
        for value, host in (("61", None), ("62", f"localhost:{port}"), ("63", f"[::1]:{port}")):
            path = WRITE.format(value=value)
            answer = await raw_http.request(r.url, "GET", path, raw_http.CURL, host=host)
            assert answer.status == 200, answer.body
            assert (
                answer.json()["Message"] == f"Write data {value} to device default/v1 successfully."
            )
            assert held(r) == value
        same = {"Origin": f"http://localhost:{port}", "Sec-Fetch-Site": "same-origin"}
        answer = await raw_http.request(
            r.url, "GET", WRITE.format(value="64"), same, host=f"localhost:{port}"
        )
        assert answer.status == 200, answer.body
        assert held(r) == "64"


async def test_reads_need_this_mappers_host_and_allowed_hosts_are_taken() -> None:
    """A read with a rebound name is 403; a name given in allowed_hosts passes with any port."""
    async with rig(device("v1"), allowed_hosts=("gw.example",)) as r:
        read = "/api/v1/device/default/v1"
        answer = await raw_http.request(r.url, "GET", read, raw_http.CURL, host="evil.example")
        assert answer.status == 403
        assert answer.json()["Field"] == "Host"
        assert "gw.example" in answer.json()["Message"]
        for host in ("gw.example", "gw.example:8443"):
            answer = await raw_http.request(r.url, "GET", "/api/v1/ping", raw_http.CURL, host=host)
            assert answer.status == 200, (host, answer.body)


async def test_a_long_or_undecodable_value_is_a_small_400() -> None:
    """8,000 characters of data, an escaped or raw surrogate: 400, the value quoted clipped."""
    async with rig(device("v1")) as r:
        status, body, _ = await r.call(WRITE.format(value="9" * 8000))
        assert (status, body["Field"]) == (400, "data")
        assert "(8000 bytes)" in body["Value"]
        assert len(json.dumps(body)) < 2048
        status, body, _ = await r.call(WRITE.format(value="%ED%A0%80"))
        assert (status, body["Field"], body["Value"]) == (400, "data", "%ED%A0%80")
        raw = WRITE.format(value="\udced\udca0\udc80")  # bytes ED A0 80 on the wire
        answer = await raw_http.request(r.url, "GET", raw, raw_http.CURL)
        assert 400 <= answer.status < 500
        assert len(answer.body) < 2048
        assert r.runtime.devices["default/v1"].bus.stats.writes == 0


def test_twinplane_mapper_answers_to_its_allowed_hosts() -> None:
    """``twinplane mapper --allowed-host NAME`` reaches its REST data API; a bad NAME exits 2."""
    with short_home() as home:
        _mapper_with_allowed_hosts(home)


def _mapper_with_allowed_hosts(home: Path) -> None:
    base = [sys.executable, "-m", "twinplane.cli", "mapper", "--protocol", "virtual"]
    where = ["--home", str(home), "--http-port", "0", "--log-level", "warning"]
    bad = subprocess.run(  # noqa: S603 - our own command
        [*base, *where, "--allowed-host", "a b"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "--allowed-host 'a b' is not a host name" in bad.stderr
    with subprocess.Popen(  # noqa: S603 - our own command
        [*base, *where, "--allowed-host", "gw.example"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as proc:
        try:
            assert proc.stdout is not None
            line = b""
            while not line.startswith(b"twinplane mapper"):  # the banner names the REST URL
                line = proc.stdout.readline()
                assert line, "the mapper ended before its banner"
            url = line.decode().split("REST ")[1].split()[0]
            for host, status in (("gw.example:8080", 200), ("evil.example", 403)):
                answer = asyncio.run(
                    raw_http.request(url, "GET", "/api/v1/ping", raw_http.CURL, host=host)
                )
                assert answer.status == status, (host, answer.body)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
