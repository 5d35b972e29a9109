"""Desired values checked where they are set: REST PATCH, the core (MQTT's path) and apply.

A real device manager (EdgeApp with SQLite); a Modbus model whose registers have data types and
scales and whose properties have a model range. A refused value answers 422 (or a
:class:`ManifestError` at apply) naming the property and the range, and nothing changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge_helpers import running_app
from twinplane.edge.app import EdgeApp
from twinplane.edge.desired import DesiredValueError
from twinplane.manifests import ManifestError

MODEL = """\
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: valve-model, namespace: default}
spec:
  protocol: modbus
  properties:
  - {name: position, type: INT, accessMode: ReadWrite}
  - {name: target, type: FLOAT, accessMode: ReadWrite}
  - {name: limit, type: INT, accessMode: ReadWrite, minimum: "0", maximum: "100"}
  - {name: flow, type: INT, accessMode: ReadWrite}
  - {name: open, type: BOOLEAN, accessMode: ReadWrite}
  - {name: level, type: INT, accessMode: ReadOnly}
"""


def valve(name: str = "valve-1", *, port: int = 5020, position: str = "") -> str:
    """A valve: int16, int16 x 0.1, uint16 with a model range, an input register, a coil."""
    desired = f"    desired: {{value: '{position}'}}\n" if position else ""
    return (
        "apiVersion: devices.kubeedge.io/v1beta1\n"
        "kind: Device\n"
        f"metadata: {{name: {name}, namespace: default}}\n"
        "spec:\n"
        "  deviceModelRef: {name: valve-model}\n"
        f"  protocol: {{protocolName: modbus, configData: {{ip: 127.0.0.1, port: {port}}}}}\n"
        "  properties:\n"
        "  - name: position\n" + desired + "    visitors: {protocolName: modbus, configData: "
        "{register: HoldingRegister, offset: 0, dataType: int16}}\n"
        "  - name: target\n"
        "    visitors: {protocolName: modbus, configData: "
        "{register: HoldingRegister, offset: 1, dataType: int16, scale: 0.1}}\n"
        "  - name: limit\n"
        "    visitors: {protocolName: modbus, configData: "
        "{register: HoldingRegister, offset: 2, dataType: uint16}}\n"
        "  - name: flow\n"
        "    visitors: {protocolName: modbus, configData: "
        "{register: InputRegister, offset: 0, dataType: int16}}\n"
        "  - name: open\n"
        "    visitors: {protocolName: modbus, configData: {register: CoilRegister, offset: 0}}\n"
        "  - name: level\n"
        "    visitors: {protocolName: modbus, configData: {register: InputRegister, offset: 1}}\n"
    )


PATH = "/api/v1/namespaces/default/devices/valve-1/twin"


@pytest.fixture
async def app(home: Path) -> AsyncIterator[EdgeApp]:
    """A device manager with the valve applied."""
    async with running_app(home, MODEL + "---\n" + valve()) as running:
        yield running


async def _patch(app: EdgeApp, desired: dict[str, Any]) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(base_url=app.rest_url) as http,
        http.patch(PATH, json={"desired": desired}) as resp,
    ):
        return resp.status, await resp.json()


def _desired(app: EdgeApp) -> dict[str, str | None]:
    assert app.core is not None
    twins = app.core.twins("default/valve-1")
    return {p: None if t["desired"] is None else t["desired"]["value"] for p, t in twins.items()}


@pytest.mark.parametrize(
    ("prop", "value", "words"),
    [
        ("position", 99999, ["int16", "-32768", "32767"]),
        ("position", -32769, ["int16"]),
        ("target", "3276.8", ["int16"]),
        ("limit", 101, ["0..100", "model"]),
        ("limit", -1, ["0..100"]),
        ("flow", 5, ["InputRegister", "cannot be written"]),
        ("level", 5, ["ReadOnly"]),
        ("position", "12.5", ["not a INT value"]),
        ("nothing", 1, ["has no property"]),
    ],
)
async def test_a_value_its_register_or_model_cannot_take_is_refused(
    app: EdgeApp, prop: str, value: object, words: list[str]
) -> None:
    """PATCH answers 422 naming the property and why (range, register, access, type)."""
    before = _desired(app)
    status, body = await _patch(app, {prop: value})
    assert status == 422, body
    cause = body["details"]["causes"][0]
    assert cause["field"] == f"desired.{prop}"
    for word in words:
        assert word in cause["message"], cause["message"]
    assert prop in cause["message"] or prop == "level"
    assert _desired(app) == before


@pytest.mark.parametrize(
    ("prop", "value", "stored"),
    [
        ("position", 32767, "32767"),
        ("position", -32768, "-32768"),
        ("target", "3276.7", "3276.7"),
        ("target", "-3276.8", "-3276.8"),
        ("limit", 100, "100"),
        ("limit", 0, "0"),
        ("open", True, "true"),
    ],
)
async def test_a_value_at_the_edge_of_the_range_is_taken(
    app: EdgeApp, prop: str, value: object, stored: str
) -> None:
    """The extremes a register and the model allow are accepted and stored as twin text."""
    before = _desired(app)
    status, body = await _patch(app, {prop: value})
    assert status == 200, body
    assert _desired(app) == {**before, prop: stored}


async def test_every_refused_value_is_named_and_none_is_stored(app: EdgeApp) -> None:
    """Several bad values in one PATCH: one cause each; a good value beside them is not set."""
    status, body = await _patch(app, {"position": 40000, "limit": 500, "target": "2"})
    assert status == 422
    fields = [c["field"] for c in body["details"]["causes"]]
    assert fields == ["desired.position", "desired.limit"]
    assert _desired(app)["target"] is None


async def test_the_core_refuses_for_every_other_entry_point(app: EdgeApp) -> None:
    """core.set_desired (MQTT's twin update path) raises with every issue; nothing changes."""
    assert app.core is not None
    with pytest.raises(DesiredValueError) as caught:
        await app.core.set_desired("default/valve-1", {"position": "70000"})
    assert caught.value.path == "desired.position"
    assert [i.reason for i in caught.value.issues] == ["range"]
    assert _desired(app)["position"] is None


async def test_apply_refuses_a_manifest_desired_value_and_a_bad_port(app: EdgeApp) -> None:
    """A manifest's desired value its register cannot hold, and port 99999, fail the apply."""
    assert app.core is not None
    before = app.core.devices["default/valve-1"]
    with pytest.raises(ManifestError) as caught:
        await app.core.apply(valve(position="99999", port=99999))
    paths = {issue.path: issue.message for issue in caught.value.issues}
    assert set(paths) == {"spec.properties[0].desired.value", "spec.protocol.configData.port"}
    assert "int16" in paths["spec.properties[0].desired.value"]
    assert "1..65535" in paths["spec.protocol.configData.port"]
    assert app.core.devices["default/valve-1"] is before
    await app.core.apply(valve(position="-5"))  # in range: applied
    assert _desired(app)["position"] == "-5"
