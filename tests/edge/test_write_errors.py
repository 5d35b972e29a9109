"""The device manager's write errors: what a mapper's outcome does to a twin, and what stays.

A real device manager (store, DMI socket, REST); outcomes arrive the way a twinplane mapper
sends them, ``twinplane.v1.TwinStream/ReportWriteOutcomes`` over gRPC on the Unix socket. The
rule: a failure of the current desired value is kept, a success of it clears it, an outcome for
another value is ignored, a new desired value keeps the error until its own outcome, a cleared
desired value clears it; it survives a restart and goes with its device.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from edge_helpers import running_app, thermo_model
from twinplane.edge.app import EdgeApp
from twinplane.edge.core import EdgeCore
from twinplane.stream.v1 import stream_pb2

pytestmark = pytest.mark.timeout(30)

THERMO = "---\n".join(
    [
        thermo_model("temperature", "setpoint"),
        """\
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: thermo-1, namespace: default}
spec:
  deviceModelRef: {name: thermo-model}
  protocol: {protocolName: modbus, configData: {ip: 127.0.0.1, port: 5020}}
  properties:
  - name: setpoint
    desired: {value: "21"}
    visitors: {protocolName: modbus, configData: {register: HoldingRegister, offset: 1}}
""",
    ]
)
DEVICE = "default/thermo-1"


def outcome(
    value: str, *, ok: bool = False, prop: str = "setpoint", **fields: str | int
) -> stream_pb2.WriteOutcome:
    """A ``WriteOutcome`` of thermo-1 (failed after 2 attempts unless ``ok``)."""
    base: dict[str, str | int | bool] = {
        "device_namespace": "default",
        "device_name": "thermo-1",
        "property": prop,
        "value": value,
        "ok": ok,
        "reason": "" if ok else "ModbusTimeoutError: no answer",
        "attempts": 1 if ok else 2,
        "time_ms": 1_767_225_600_000,
    }
    return stream_pb2.WriteOutcome(**{**base, **fields})  # type: ignore[arg-type]


class Mapper:
    """The TwinStream calls a twinplane mapper makes, over the device manager's socket."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._report = channel.unary_unary(
            "/twinplane.v1.TwinStream/ReportWriteOutcomes",
            request_serializer=stream_pb2.WriteOutcomes.SerializeToString,
            response_deserializer=stream_pb2.WriteOutcomesAck.FromString,
        )
        self._caps = channel.unary_unary(
            "/twinplane.v1.TwinStream/Capabilities",
            request_serializer=stream_pb2.CapabilitiesRequest.SerializeToString,
            response_deserializer=stream_pb2.CapabilitiesResponse.FromString,
        )

    async def report(self, *outcomes: stream_pb2.WriteOutcome) -> tuple[int, int]:
        """Reports outcomes; the ack's ``(applied, ignored)``."""
        ack = await self._report(stream_pb2.WriteOutcomes(outcomes=outcomes), timeout=5)
        return ack.applied, ack.ignored

    async def capabilities(self) -> stream_pb2.CapabilitiesResponse:
        """What the device manager offers."""
        response: stream_pb2.CapabilitiesResponse = await self._caps(
            stream_pb2.CapabilitiesRequest(mapper="test"), timeout=5
        )
        return response


@contextlib.asynccontextmanager
async def mapper_of(app: EdgeApp) -> AsyncIterator[Mapper]:
    """A gRPC client on the app's DMI socket."""
    async with grpc.aio.insecure_channel(f"unix:{app.config.socket_path}") as channel:
        yield Mapper(channel)


def core_of(app: EdgeApp) -> EdgeCore:
    """The app's core."""
    assert app.core is not None
    return app.core


def error_of(app: EdgeApp, prop: str = "setpoint") -> dict[str, Any] | None:
    """The twin's ``last_write_error`` as the core keeps it."""
    error = core_of(app).write_errors.get(DEVICE, prop)
    return None if error is None else error.to_json()


async def rest_twin(app: EdgeApp) -> dict[str, Any]:
    """``GET …/twin`` of thermo-1."""
    async with (
        aiohttp.ClientSession(base_url=app.rest_url) as http,
        http.get("/api/v1/namespaces/default/devices/thermo-1/twin") as resp,
    ):
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


async def test_capabilities_offer_write_outcomes(home: Path) -> None:
    """Capabilities says the device manager takes write outcomes."""
    async with running_app(home, THERMO) as app, mapper_of(app) as mapper:
        caps = await mapper.capabilities()
    assert caps.fast_path
    assert caps.write_outcomes


async def test_a_failure_of_the_desired_value_is_kept_and_shown(home: Path) -> None:
    """The current desired value's failure becomes the twin's last_write_error."""
    async with running_app(home, THERMO) as app, mapper_of(app) as mapper:
        assert await mapper.report(outcome("21")) == (1, 0)
        twin = (await rest_twin(app))["twins"]["setpoint"]
        assert twin["last_write_error"] == {
            "reason": "ModbusTimeoutError: no answer",
            "time": 1_767_225_600_000,
            "attempts": 2,
            "value": "21",
        }
        assert twin["desired"]["value"] == "21"
        assert (await rest_twin(app))["twins"]["temperature"]["last_write_error"] is None
        assert core_of(app).counters.write_failures_reported == 1


async def test_outcomes_for_other_values_or_twins_are_ignored(home: Path) -> None:
    """A stale value, an unknown property or device: counted as ignored, nothing changes."""
    async with running_app(home, THERMO) as app, mapper_of(app) as mapper:
        assert await mapper.report(outcome("21")) == (1, 0)
        kept = error_of(app)
        stale = (
            outcome("20"),  # not the desired value
            outcome("20", ok=True),  # nor is its success
            outcome("21", prop="colour"),
            outcome("21", device_name="ghost"),
            outcome("21", prop="temperature"),  # no desired value there
        )
        assert await mapper.report(*stale) == (0, 5)
        assert error_of(app) == kept
        assert error_of(app, "temperature") is None
        assert core_of(app).counters.write_outcomes_ignored == 5


async def test_a_new_desired_value_keeps_the_error_until_its_own_outcome(home: Path) -> None:
    """Setting a new value keeps the old error; the new value's failure replaces it."""
    async with running_app(home, THERMO) as app, mapper_of(app) as mapper:
        await mapper.report(outcome("21"))
        await core_of(app).set_desired(DEVICE, {"setpoint": "22"})
        error = error_of(app)
        assert error is not None
        assert error["value"] == "21"
        assert await mapper.report(outcome("21", ok=True)) == (0, 1)  # stale: no clear
        assert error_of(app) == error
        await mapper.report(outcome("22", reason="ModbusExceptionError: refused", attempts=1))
        error = error_of(app)
        assert error is not None
        assert (error["value"], error["attempts"], error["reason"]) == (
            "22",
            1,
            "ModbusExceptionError: refused",
        )


async def test_a_success_of_the_desired_value_clears_the_error(home: Path) -> None:
    """The current desired value written: the error is gone, in memory and on disk."""
    async with running_app(home, THERMO) as app, mapper_of(app) as mapper:
        await mapper.report(outcome("21"))
        assert await mapper.report(outcome("21", ok=True)) == (1, 0)
        assert error_of(app) is None
        assert (await rest_twin(app))["twins"]["setpoint"]["last_write_error"] is None
        assert await core_of(app).store.list_write_errors() == []
        assert await mapper.report(outcome("21", ok=True)) == (1, 0)  # nothing left to clear


async def test_clearing_the_desired_value_clears_the_error(home: Path) -> None:
    """No desired value, no write coming: no error either."""
    async with running_app(home, THERMO) as app, mapper_of(app) as mapper:
        await mapper.report(outcome("21"))
        await core_of(app).set_desired(DEVICE, {"setpoint": None})
        assert error_of(app) is None
        assert await core_of(app).store.list_write_errors() == []


async def test_the_error_survives_a_restart_and_goes_with_its_device(home: Path) -> None:
    """Stored before the mapper's call is answered: a restart keeps it; a delete removes it."""
    async with running_app(home, THERMO) as app, mapper_of(app) as mapper:
        await mapper.report(outcome("21"))
        kept = error_of(app)
    async with running_app(home) as app:
        assert error_of(app) == kept
        assert (await rest_twin(app))["twins"]["setpoint"]["last_write_error"] == kept
        async with (
            aiohttp.ClientSession(base_url=app.rest_url) as http,
            http.get("/metrics") as resp,
        ):
            assert "twinplane_twin_write_errors 1\n" in await resp.text()
        assert await core_of(app).delete_device("default", "thermo-1")
        assert error_of(app) is None
        assert await core_of(app).store.list_write_errors() == []
        await core_of(app).apply(THERMO)
        assert error_of(app) is None


async def test_write_events_reach_event_subscribers(home: Path) -> None:
    """A changed error is a twin event of kind write; its clearing one with null."""
    async with running_app(home, THERMO) as app, mapper_of(app) as mapper:
        hub = core_of(app).hub
        with hub.subscribe(kinds=frozenset({"twin"})) as sub:
            await mapper.report(outcome("21"))
            await mapper.report(outcome("21", ok=True))
            events = aiter(sub)
            failed = await anext(events)
            cleared = await anext(events)
        assert failed.body["kind"] == "write"
        assert (failed.body["device"], failed.body["property"]) == (DEVICE, "setpoint")
        assert failed.body["value"] == "21"
        assert failed.body["last_write_error"]["attempts"] == 2
        assert failed.body["timestamp"] == 1_767_225_600_000
        assert cleared.body["kind"] == "write"
        assert cleared.body["last_write_error"] is None
