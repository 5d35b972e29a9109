"""A mapper and a device manager end to end over Unix sockets, with virtual devices."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

import grpc
import pytest
from mapper_helpers import manifests, mapper_config, running_mapper, virtual_device, virtual_model

from edge_helpers import running_app, short_home
from twinplane.dmi.v1beta1 import api_pb2, api_pb2_grpc
from twinplane.drivers.base import DeviceClient, PropertyVisitor, ProtocolConfig
from twinplane.drivers.virtual import VirtualClient, VirtualDriver
from twinplane.edge.app import EdgeApp
from twinplane.edge.core import EdgeCore
from twinplane.mapper.app import MapperApp
from twinplane.twin import ValueLike
from waits import until


class BrokenClient(VirtualClient):
    """A virtual device whose every read fails."""

    async def read(self, batch: Sequence[PropertyVisitor]) -> list[ValueLike]:
        """Fails."""
        raise RuntimeError("sensor bus fault")


class FlakyDriver(VirtualDriver):
    """The virtual driver, with devices whose protocol config says ``broken: true`` failing."""

    def new_client(self, protocol: ProtocolConfig) -> DeviceClient:
        """A broken client when asked for one."""
        if protocol.config.get("broken"):
            return BrokenClient(protocol)
        return super().new_client(protocol)


def reported(core: EdgeCore, device: str, prop: str) -> str | None:
    """The device manager's reported value of a twin."""
    side = core.twins(f"default/{device}")[prop]["reported"]
    return None if side is None else side["value"]


def core_of(app: EdgeApp) -> EdgeCore:
    """The app's core."""
    assert app.core is not None
    return app.core


async def test_values_flow_desired_applies_without_restart_and_remove_stops() -> None:
    """Register → twins fill → desired written without restart → remove stops polling."""
    with short_home() as home:
        docs = manifests(virtual_model(), virtual_device("v1"), virtual_device("v2"))
        async with running_app(home, docs) as app:
            core = core_of(app)
            cfg = mapper_config(home, app.config.socket_path)
            async with running_mapper(cfg, VirtualDriver()) as mapper:
                assert set(mapper.runtime.devices) == {"default/v1", "default/v2"}
                await until(lambda: reported(core, "v1", "count") is not None, "count of v1")
                await until(lambda: reported(core, "v2", "temp") is not None, "temp of v2")
                assert reported(core, "v1", "setpoint") == "10"
                first = int(reported(core, "v1", "count") or 0)
                await until(lambda: int(reported(core, "v1", "count") or 0) > first, "a new count")

                client = mapper.runtime.devices["default/v1"].client
                assert isinstance(client, VirtualClient)
                await core.set_desired("default/v1", {"setpoint": "21"})
                await until(lambda: reported(core, "v1", "setpoint") == "21", "setpoint 21")
                assert mapper.runtime.devices["default/v1"].client is client
                assert client.inits == 1
                twin = core.twins("default/v1")["setpoint"]
                assert twin["desired"] is not None
                assert twin["desired"]["value"] == "21"

                removed = mapper.runtime.devices["default/v2"]
                assert await core.delete_device("default", "v2")
                await until(lambda: "default/v2" not in mapper.runtime.devices, "v2 removed")
                assert isinstance(removed.client, VirtualClient)
                assert removed.client.stopped
                polls = removed.scheduled.polls
                before = int(reported(core, "v1", "count") or 0)
                await until(lambda: int(reported(core, "v1", "count") or 0) > before + 2, "v1")
                assert removed.scheduled.polls == polls


async def test_failing_device_is_isolated_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """A device whose reads fail goes unhealthy, is logged once, and its neighbour reports."""
    caplog.set_level(logging.WARNING, logger="twinplane.mapper.scheduler")
    with short_home() as home:
        docs = manifests(
            virtual_model(),
            virtual_device("good"),
            virtual_device("bad", protocol_config="{broken: true}"),
        )
        async with running_app(home, docs) as app:
            core = core_of(app)
            cfg = mapper_config(home, app.config.socket_path)
            async with running_mapper(cfg, FlakyDriver()) as mapper:
                await until(lambda: reported(core, "good", "count") is not None, "good count")
                bad = mapper.runtime.devices["default/bad"].scheduled
                await until(lambda: bad.failures >= 3, "three failed polls")
                first = int(reported(core, "good", "count") or 0)
                await until(lambda: int(reported(core, "good", "count") or 0) > first, "good")
                await until(
                    lambda: (
                        core.states.get("default/bad") is not None
                        and core.states["default/bad"].state == "unhealthy"
                    ),
                    "bad reported unhealthy",
                )
                assert core.states["default/good"].state == "online"
                assert reported(core, "bad", "count") is None
    lines = [r for r in caplog.records if "default/bad" in r.getMessage()]
    assert len(lines) == 1
    assert "sensor bus fault" in lines[0].getMessage()


async def mapper_stub_call(socket: Path, device: str) -> api_pb2.Device:
    """``GetDevice`` over the mapper's own socket."""
    async with grpc.aio.insecure_channel(f"unix:{socket}") as channel:
        stub = api_pb2_grpc.DeviceMapperServiceStub(channel)
        request = api_pb2.GetDeviceRequest(deviceName=device, deviceNamespace="default")
        response: api_pb2.GetDeviceResponse = await stub.GetDevice(request, timeout=5)
        return response.device


async def test_get_device_returns_current_twins_and_restart_resumes() -> None:
    """GetDevice carries the twins; a restarted mapper registers again and resumes reporting."""
    with short_home() as home:
        docs = manifests(virtual_model(), virtual_device("v1"))
        async with running_app(home, docs) as app:
            core = core_of(app)
            cfg = mapper_config(home, app.config.socket_path)
            async with running_mapper(cfg, VirtualDriver()) as mapper:
                await until(lambda: reported(core, "v1", "count") is not None, "count")
                device = await mapper_stub_call(cfg.socket_path, "v1")
                twins = {t.propertyName: t for t in device.status.twins}
                assert set(twins) == {"temp", "count", "setpoint"}
                assert twins["setpoint"].reported.value == "10"
                assert twins["count"].reported.value.isdigit()
                assert device.spec.deviceModelReference == "vmodel"
                assert mapper.registrations == 1
            assert not cfg.socket_path.exists()
            last = int(reported(core, "v1", "count") or 0)
            async with running_mapper(cfg, VirtualDriver()) as again:
                assert "default/v1" in again.runtime.devices
                # the counter restarts at 0 and counts up past nothing: the twin moves again
                await until(lambda: int(reported(core, "v1", "count") or 0) != last, "resumed")


async def test_mapper_started_before_the_manager_registers_when_it_comes_up() -> None:
    """Registration is retried with backoff until the device manager listens."""
    with short_home() as home:
        cfg = mapper_config(home, home / "run" / "dmi.sock")
        mapper = MapperApp(cfg, VirtualDriver())
        await mapper.start()
        try:
            await asyncio.sleep(0.3)
            assert not mapper.registered.is_set()
            docs = manifests(virtual_model(), virtual_device("late"))
            async with running_app(home, docs) as app:
                await until(mapper.registered.is_set, "registration")
                core = core_of(app)
                await until(lambda: reported(core, "late", "count") is not None, "late count")
        finally:
            await mapper.stop()


async def test_spec_change_restarts_only_that_device() -> None:
    """UpdateDevice with a changed visitor restarts that device; its neighbour keeps its client."""
    with short_home() as home:
        docs = manifests(virtual_model(), virtual_device("a"), virtual_device("b"))
        async with running_app(home, docs) as app:
            cfg = mapper_config(home, app.config.socket_path)
            async with running_mapper(cfg, VirtualDriver()) as mapper:
                a, b = (
                    mapper.runtime.devices["default/a"].client,
                    mapper.runtime.devices["default/b"].client,
                )
                await core_of(app).apply(virtual_device("a", cycle_ms=60))
                await until(
                    lambda: mapper.runtime.devices["default/a"].client is not a, "a restarted"
                )
                assert isinstance(a, VirtualClient)
                assert a.stopped
                assert mapper.runtime.devices["default/b"].client is b
                assert mapper.runtime.devices["default/a"].instance.collect_cycle_ms == 60
