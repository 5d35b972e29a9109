"""What the device manager's REST API lets through: no writes from other sites' pages.

A real device manager (:class:`~twinplane.edge.app.EdgeApp` in process, or ``twinplane edge``)
takes requests written byte for byte (``raw_http``), as a browser sends them for a foreign page
(``Origin``, ``Sec-Fetch-Site``, a form's ``text/plain`` body), as a page that rebound its own
name to 127.0.0.1 sends them (a foreign ``Host``), and as curl and the CLI send them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge_helpers import device_yaml, edge_process, running_app, thermo_model
from raw_http import CURL, Answer, host_of, request
from twinplane.edge.app import EdgeApp, EdgeConfig
from twinplane.errors import SpecError
from twinplane.rest.guard import CLIENT_HEADER, allowed_host

MODEL = thermo_model("temperature", "setpoint")

LAN_DEVICE = json.dumps(
    {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": "intruder", "namespace": "default"},
        "spec": {
            "deviceModelRef": {"name": "thermo-model"},
            "protocol": {
                "protocolName": "modbus",
                "configData": {"ip": "192.168.1.50", "port": 502},
            },
        },
    }
).encode()
"""What a foreign page posts: a device pointing at an address on the gateway's LAN."""

EVIL = "http://evil.example"


@pytest.fixture
async def app(home: Path) -> AsyncIterator[EdgeApp]:
    """A device manager on a free loopback port with the thermostat model applied."""
    async with running_app(home, MODEL) as app:
        yield app


def refused(answer: Answer, header: str) -> dict[str, Any]:
    """The answer is a 403 ``Status`` naming ``header``; its body."""
    assert answer.status == 403, answer.body[:500]
    body: dict[str, Any] = answer.json()
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "Forbidden", 403)
    assert body["details"]["causes"][0]["field"] == header
    assert body["message"]
    return body


def devices_of(app: EdgeApp) -> list[str]:
    """The ids of the devices in the registry."""
    assert app.core is not None
    return sorted(app.core.devices)


@pytest.mark.parametrize(
    ("headers", "header"),
    [
        ({"Content-Type": "text/plain", "Origin": EVIL}, "Origin"),
        ({"Content-Type": "text/plain;charset=UTF-8"}, "Content-Type"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, "Content-Type"),
        ({"Content-Type": "multipart/form-data; boundary=x"}, "Content-Type"),
        ({}, "Content-Type"),
        ({"Content-Type": "application/json", "Origin": EVIL}, "Origin"),
        ({"Content-Type": "application/json", "Origin": "null"}, "Origin"),
        ({"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site"),
        ({"Content-Type": "application/json", "Sec-Fetch-Site": "same-site"}, "Sec-Fetch-Site"),
        ({"Content-Type": "application/json", "Referer": f"{EVIL}/page"}, "Referer"),
        ({CLIENT_HEADER: "x", "Origin": EVIL}, "Origin"),
    ],
)
async def test_an_apply_a_foreign_page_can_send_is_refused(
    app: EdgeApp, headers: dict[str, str], header: str
) -> None:
    """A form's text/plain POST, or any POST from another origin, applies nothing: 403."""
    answer = await request(app.rest_url, "POST", "/api/v1/apply", headers, LAN_DEVICE)
    body = refused(answer, header)
    if header == "Content-Type":
        assert "application/json" in body["message"]
        assert CLIENT_HEADER in body["message"]
    assert devices_of(app) == []


async def test_a_patch_and_a_delete_a_page_can_send_change_nothing(app: EdgeApp) -> None:
    """A text/plain PATCH of a twin and a DELETE without the client header are refused."""
    assert app.core is not None
    await app.core.apply(device_yaml("thermo-1", "thermo-model"))
    twin = "/api/v1/namespaces/default/devices/thermo-1/twin"
    patch = json.dumps({"desired": {"setpoint": "99"}}).encode()
    answer = await request(app.rest_url, "PATCH", twin, {"Content-Type": "text/plain"}, patch)
    refused(answer, "Content-Type")
    answer = await request(app.rest_url, "DELETE", "/api/v1/namespaces/default/devices/thermo-1")
    refused(answer, "Content-Type")
    assert devices_of(app) == ["default/thermo-1"]
    assert app.core.twins("default/thermo-1")["setpoint"]["desired"] is None


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:{port}",  # a page that rebound its name to 127.0.0.1
        "evil.example",
        "127.0.0.1.evil.example:{port}",
        "localhost.evil.example:{port}",
        "evil.example@127.0.0.1:{port}",
        "127.0.0.1:1",  # the right address, another port
        "192.0.2.7:{port}",  # an address this server is not bound to
        "",  # an empty Host header
    ],
)
async def test_a_foreign_host_is_refused_for_reads_and_writes(app: EdgeApp, host: str) -> None:
    """DNS rebinding: a Host that is not this server's gets 403, reading or writing."""
    assert app.core is not None
    await app.core.apply(device_yaml("thermo-1", "thermo-model"))
    value = host.format(port=host_of(app.rest_url).rpartition(":")[2])
    answer = await request(app.rest_url, "GET", "/api/v1/devices", CURL, host=value)
    body = refused(answer, "Host")
    assert "thermo-1" not in json.dumps(body)
    assert "--allowed-host" in body["message"]
    headers = {"Content-Type": "application/json"}
    answer = await request(app.rest_url, "POST", "/api/v1/apply", headers, LAN_DEVICE, host=value)
    refused(answer, "Host")
    assert devices_of(app) == ["default/thermo-1"]


async def test_loopback_spellings_and_the_own_origin_pass(app: EdgeApp) -> None:
    """localhost, 127.0.0.1 and [::1] with the port, and Origin = the server, are taken."""
    port = host_of(app.rest_url).rpartition(":")[2]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"LocalHost:{port}"):
        answer = await request(app.rest_url, "GET", "/healthz", CURL, host=host)
        assert answer.status == 200, (host, answer.body)
    headers = {"Content-Type": "application/json", "Origin": f"http://localhost:{port}"}
    answer = await request(
        app.rest_url, "POST", "/api/v1/apply", headers, LAN_DEVICE, host=f"localhost:{port}"
    )
    assert answer.status == 200, answer.body
    assert devices_of(app) == ["default/intruder"]


async def test_curl_style_requests_on_the_same_host_work(app: EdgeApp) -> None:
    """Curl-style, no Origin: a YAML or JSON apply, a header-marked text body, reads, a delete."""
    url = app.rest_url
    yaml_body = device_yaml("thermo-1", "thermo-model").encode()
    form = "application/x-www-form-urlencoded"  # curl --data-binary's type, with the header
    for headers, body in (
        ({**CURL, "Content-Type": "application/yaml"}, yaml_body),
        ({**CURL, "Content-Type": "application/json"}, LAN_DEVICE),
        ({**CURL, "Content-Type": form, CLIENT_HEADER: "curl"}, yaml_body),
    ):
        answer = await request(url, "POST", "/api/v1/apply", headers, body)
        assert answer.status == 200, answer.body
    assert devices_of(app) == ["default/intruder", "default/thermo-1"]
    answer = await request(url, "GET", "/api/v1/namespaces/default/devices/thermo-1", CURL)
    assert answer.status == 200
    twin = "/api/v1/namespaces/default/devices/thermo-1/twin"
    patch = json.dumps({"desired": {"setpoint": "25"}}).encode()
    answer = await request(url, "PATCH", twin, {**CURL, "Content-Type": "application/json"}, patch)
    assert answer.status == 200, answer.body
    assert answer.json()["delta"] == {"setpoint": "25"}
    path = "/api/v1/namespaces/default/devices/intruder"
    answer = await request(url, "DELETE", path, {**CURL, CLIENT_HEADER: "curl"})
    assert answer.status == 200, answer.body
    assert devices_of(app) == ["default/thermo-1"]


async def test_allowed_hosts_are_taken_with_any_port(home: Path) -> None:
    """A name given as an allowed host passes with or without a port, and as an https Origin."""
    async with running_app(home, MODEL, allowed_hosts=("GW.example", "[2001:db8::7]")) as app:
        for host in ("gw.example", "gw.example:8443", "[2001:db8::7]:80"):
            answer = await request(app.rest_url, "GET", "/healthz", CURL, host=host)
            assert answer.status == 200, (host, answer.body)
        headers = {"Content-Type": "application/json", "Origin": "https://gw.example"}
        answer = await request(
            app.rest_url, "POST", "/api/v1/apply", headers, LAN_DEVICE, host="gw.example"
        )
        assert answer.status == 200, answer.body
        answer = await request(app.rest_url, "GET", "/healthz", CURL, host="other.example")
        assert "gw.example" in refused(answer, "Host")["message"]


async def test_a_wildcard_bind_takes_ip_addresses_but_not_names(home: Path) -> None:
    """Bound to 0.0.0.0, any IP address with the port is the machine's; a name is not."""
    app = EdgeApp(EdgeConfig(home=home, rest_addr="0.0.0.0:0"))
    try:
        await app.start()
        port = app.rest_url.rpartition(":")[2]
        url = f"http://127.0.0.1:{port}"
        for host in (f"192.0.2.7:{port}", f"127.0.0.1:{port}", f"[2001:db8::1]:{port}"):
            answer = await request(url, "GET", "/healthz", CURL, host=host)
            assert answer.status == 200, (host, answer.body)
        for host in (f"evil.example:{port}", "192.0.2.7:1"):
            answer = await request(url, "GET", "/healthz", CURL, host=host)
            refused(answer, "Host")
    finally:
        await app.stop()


def test_allowed_host_takes_names_and_addresses_only() -> None:
    """--allowed-host values are names or IP addresses; a port, scheme or space is an error."""
    assert allowed_host(" GW.Example ") == "gw.example"
    assert allowed_host("[2001:DB8::7]") == "2001:db8::7"
    assert allowed_host("192.0.2.7") == "192.0.2.7"
    for bad in ("gw.example:8080", "http://gw.example", "a b", "", "-x.example", "x" * 300):
        with pytest.raises(SpecError) as err:
            allowed_host(bad)
        assert err.value.path == "allowed_hosts"


def test_twinplane_edge_refuses_a_bad_allowed_host(home: Path) -> None:
    """``twinplane edge --allowed-host 'x:1'`` exits 2 with a one-line error naming the value."""
    args = ["--home", str(home), "--rest-addr", "127.0.0.1:0", "--allowed-host", "gw.example:8080"]
    done = subprocess.run(  # noqa: S603 - our own command
        [sys.executable, "-m", "twinplane.cli", "edge", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done
    assert "--allowed-host 'gw.example:8080' is not a host name" in done.stderr


async def test_twinplane_edge_answers_to_its_allowed_hosts() -> None:
    """``--allowed-host`` reaches the running server; other names stay refused."""
    with edge_process("--allowed-host", "gw.example", "--allowed-host", "192.0.2.9") as edge:
        edge.start()
        for host, status in (("gw.example", 200), ("192.0.2.9:443", 200), ("evil.example", 403)):
            answer = await request(edge.url, "GET", "/api/v1/devices", CURL, host=host)
            assert answer.status == status, (host, answer.body)
