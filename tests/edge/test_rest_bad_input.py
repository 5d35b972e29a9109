r"""Bad input to the device manager's REST API: a 4xx with a small body, and nothing changed.

A real device manager takes what an attacker on the gateway would send: 15 MiB in one name or
value, 100,000 levels of nesting, lone surrogates (``"\ud800"``) in JSON, undecodable bytes in
a path or a header, thousands of errors in one apply. Every answer is a JSON ``Status`` that
encodes, at most a few KiB long.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge_helpers import device_yaml, running_app, thermo_model
from raw_http import CURL, Answer, request
from twinplane.edge.app import EdgeApp
from twinplane.edge.resources import MAX_CAUSES

MODEL = thermo_model("temperature", "setpoint", "label")
TWIN = "/api/v1/namespaces/default/devices/thermo-1/twin"
JSON = {**CURL, "Content-Type": "application/json"}
BIG = 15 * 2**20
SMALL_BODY = 8 * 1024
"""The most an error answer may take here (a message, a cause or two, clipped quotes)."""


@pytest.fixture
async def app(home: Path) -> AsyncIterator[EdgeApp]:
    """A device manager with the thermostat model and its device ``thermo-1``."""
    async with running_app(home, MODEL + "---\n" + device_yaml("thermo-1", "thermo-model")) as app:
        yield app


def failure(answer: Answer, code: int, *, limit: int = SMALL_BODY) -> dict[str, Any]:
    """A ``Status`` of ``code``, its body valid JSON of at most ``limit`` bytes; the body."""
    assert answer.status == code, answer.body[:1000]
    assert len(answer.body) <= limit, len(answer.body)
    body: dict[str, Any] = json.loads(answer.body.decode("utf-8"))  # strict UTF-8
    assert (body["kind"], body["code"]) == ("Status", code)
    return body


def model(name: str = "m", **spec: Any) -> dict[str, Any]:  # noqa: ANN401
    """A DeviceModel manifest as JSON data."""
    return {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "DeviceModel",
        "metadata": {"name": name},
        "spec": {"protocol": "modbus", **spec},
    }


def apply(app: EdgeApp, body: bytes) -> Any:  # noqa: ANN401
    """``POST /api/v1/apply`` of a JSON body."""
    return request(app.rest_url, "POST", "/api/v1/apply", JSON, body)


def desired(app: EdgeApp) -> Any:  # noqa: ANN401
    """The desired side of thermo-1's twins."""
    assert app.core is not None
    return {p: t["desired"] for p, t in app.core.twins("default/thermo-1").items()}


async def test_15_mib_in_a_desired_value_or_key_is_clipped_in_the_answer(app: EdgeApp) -> None:
    """A 15 MiB value or property name: 422 with a message of a few hundred bytes."""
    before = desired(app)
    value = json.dumps({"desired": {"setpoint": "7" * BIG}}).encode()
    status = failure(await request(app.rest_url, "PATCH", TWIN, JSON, value), 422)
    assert status["details"]["causes"][0]["field"] == "desired.setpoint"
    key = json.dumps({"desired": {"x" * BIG: "1"}}).encode()
    status = failure(await request(app.rest_url, "PATCH", TWIN, JSON, key), 422)
    assert f"({BIG} bytes)" in status["details"]["causes"][0]["field"]
    assert desired(app) == before


async def test_15_mib_in_a_manifest_is_clipped_in_every_cause(app: EdgeApp) -> None:
    """A 15 MiB name or property type in an apply: 422, each cause and the message clipped."""
    for doc in (model("x" * BIG), model(properties=[{"name": "p", "type": "T" * BIG}])):
        answer = await apply(app, json.dumps(doc).encode())
        status = failure(answer, 422)
        assert "bytes)" in status["message"]
        assert status["details"]["causes"]
    assert app.core is not None
    assert sorted(app.core.models) == ["default/thermo-model"]


async def test_deep_nesting_is_a_4xx_not_a_recursion_error(app: EdgeApp) -> None:
    """100,000 levels of arrays or objects: PATCH is 400, apply 422 (JSON or YAML)."""
    depth = 100_000
    arrays = b'{"desired":' + b"[" * depth + b"]" * depth + b"}"
    objects = b'{"desired":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"
    for body in (arrays, objects):
        answer = await request(app.rest_url, "PATCH", TWIN, JSON, body)
        assert "nested too deeply" in failure(answer, 400)["message"]
        answer = await apply(app, body)
        assert "nested" in failure(answer, 422)["message"]
    flow = b"a: " + b"[" * depth + b"]" * depth
    yaml_type = {**CURL, "Content-Type": "application/yaml"}
    answer = await request(app.rest_url, "POST", "/api/v1/apply", yaml_type, flow)
    assert "nest" in failure(answer, 422)["message"]


async def test_lone_surrogates_in_json_are_refused_by_name(app: EdgeApp) -> None:
    r"""'\ud800' in a name, a free-text field or a key: 4xx that encodes, nothing applied."""
    named = json.dumps(model("\ud800")).encode()  # json.dumps writes the \\ud800 escape
    status = failure(await apply(app, named), 422)
    assert "\\ud800" in status["message"]
    prop = {"name": "p", "type": "STRING", "accessMode": "ReadWrite", "description": "\udc80"}
    free_text = json.dumps(model("free", properties=[prop])).encode()
    status = failure(await apply(app, free_text), 422)
    assert "lone surrogate \\udc80" in status["message"]
    assert status["details"]["causes"][0]["reason"] == "parse"
    assert app.core is not None
    assert sorted(app.core.models) == ["default/thermo-model"]
    patch = json.dumps({"desired": {"\ud800": "1", "label": "\udfff"}}).encode()
    failure(await request(app.rest_url, "PATCH", TWIN, JSON, patch), 400)


async def test_undecodable_paths_and_headers_get_json_answers(app: EdgeApp) -> None:
    """A surrogate in a path (escaped or raw) or raw bytes in Host or Origin: 4xx, bounded."""
    answer = await request(app.rest_url, "GET", "/api/v1/namespaces/default/devices/%ED%A0%80")
    assert "%ED%A0%80" in failure(answer, 404)["message"]
    raw = "/api/v1/namespaces/default/devices/\udced\udca0\udc80"  # bytes ED A0 80 on the wire
    answer = await request(app.rest_url, "GET", raw)
    assert 400 <= answer.status < 500
    assert len(answer.body) <= SMALL_BODY
    for headers, host in (({}, "\udced\udca0\udc80"), ({"Origin": "http://\udcff"}, None)):
        answer = await request(app.rest_url, "GET", "/api/v1/devices", headers, host=host)
        status = failure(answer, 403)
        assert "\\udc" in status["message"]


async def test_a_long_path_is_clipped_in_a_not_found(app: EdgeApp) -> None:
    """A path of 8,000 characters: 404 whose message quotes a few hundred of them."""
    name = "n" * 8000
    answer = await request(app.rest_url, "GET", f"/api/v1/namespaces/default/devices/{name}")
    status = failure(answer, 404, limit=2048)
    assert "(8000 bytes)" in status["message"]
    assert status["details"]["name"].startswith("nnn")


async def test_thousands_of_errors_list_the_first_and_count_the_rest(app: EdgeApp) -> None:
    """An apply of 3,000 invalid models: 422 with 100 causes and a last one counting the rest."""
    items = [model(f"bad{i}", properties=[{"name": "p", "type": "NOPE"}]) for i in range(3000)]
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": items}).encode()
    status = failure(await apply(app, body), 422, limit=64 * 1024)
    causes = status["details"]["causes"]
    assert len(causes) == MAX_CAUSES + 1
    assert causes[-1]["reason"] == "truncated"
    total = int(status["message"].split()[0])  # "6000 errors in ...": two per model
    assert total >= 3000
    assert causes[-1]["message"] == f"and {total - MAX_CAUSES} more not listed"
    assert causes[-1]["count"] == total - MAX_CAUSES
