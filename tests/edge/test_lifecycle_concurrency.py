"""The device manager pushes many devices to a mapper at once, each once, model first.

Each test runs a real :class:`~twinplane.edge.app.EdgeApp` and a fake mapper: a real
``grpc.aio`` ``DeviceMapperService`` on its own Unix socket whose ``RegisterDevice`` takes a while
and records how many calls it serves at the same time. The mapper registers over the DMI socket
before the devices are applied, so every device reaches it through the lifecycle worker.

Only counts, order and concurrency are checked; never how long anything took.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from dmi_helpers import SocketMapper, manager_stub, register_request
from edge_helpers import RunningEdge, running_app
from twinplane.dmi.v1beta1 import api_pb2
from twinplane.edge.mappers import LINK_CONCURRENCY, MapperLink
from twinplane.fleet import MODEL_NAME, device_manifests

DEVICES = 64

SERVE_S = 0.03
"""How long the fake mapper takes to register a device: long enough for calls to overlap."""

WAIT = 20.0
"""Seconds any single wait may take before the test fails."""


class SlowMapper(SocketMapper):
    """A mapper that registers devices slowly, counting the calls it serves at once.

    Args:
        socket_path: Where it listens once started.
        fail_first: Devices whose first ``RegisterDevice`` is answered ``UNAVAILABLE``.
    """

    def __init__(self, socket_path: Path, fail_first: Collection[str] = ()) -> None:
        self.socket_path = socket_path
        self.fail_first = set(fail_first)
        self.events: list[tuple[str, str]] = []  # (what, device or model), in arrival order
        self.attempts: Counter[str] = Counter()  # RegisterDevice calls per device
        self.registered: list[str] = []  # devices registered successfully, in order
        self.updated: list[str] = []  # devices of UpdateDevice calls
        self.in_flight = 0
        self.most_in_flight = 0
        self.hold: set[str] = set()  # devices whose RegisterDevice waits for `release`
        self.release = asyncio.Event()

    async def CreateDeviceModel(  # noqa: N802 - the gRPC method's name
        self,
        request: api_pb2.CreateDeviceModelRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> api_pb2.CreateDeviceModelResponse:
        """Records the model once it is created."""
        self.events.append(("model created", request.model.name))
        return api_pb2.CreateDeviceModelResponse(deviceModelName=request.model.name)

    async def RegisterDevice(  # noqa: N802
        self, request: api_pb2.RegisterDeviceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> api_pb2.RegisterDeviceResponse:
        """Records the call, fails a first attempt if asked, else takes :data:`SERVE_S`."""
        name = request.device.name
        self.events.append(("register", name))
        self.attempts[name] += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if name in self.fail_first and self.attempts[name] == 1:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "mapper is busy")
            if name in self.hold:
                await self.release.wait()
            await asyncio.sleep(SERVE_S)
        finally:
            self.in_flight -= 1
        self.registered.append(name)
        return api_pb2.RegisterDeviceResponse(deviceName=name)

    async def UpdateDevice(  # noqa: N802
        self, request: api_pb2.UpdateDeviceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> api_pb2.UpdateDeviceResponse:
        """Records the call."""
        self.updated.append(request.device.name)
        return api_pb2.UpdateDeviceResponse()


def names(count: int) -> list[str]:
    """The names of the devices of :func:`manifests`."""
    return [f"thermostat-{i + 1}" for i in range(count)]


def manifests(count: int) -> str:
    """The simulator's model and ``count`` Modbus thermostats of it."""
    return device_manifests([(5020, i + 1) for i in range(count)])


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    """Polls ``predicate`` until it holds; fails after :data:`WAIT` seconds."""
    try:
        async with asyncio.timeout(WAIT):
            while not predicate():  # noqa: ASYNC110 - polls what the fake mapper recorded
                await asyncio.sleep(0.005)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


@dataclass
class Edge(RunningEdge):
    """A running device manager with one slow mapper registered."""

    mapper: SlowMapper

    @property
    def link(self) -> MapperLink:
        """The device manager's link to the mapper."""
        assert self.app.mappers is not None
        return self.app.mappers.links["modbus-mapper"]

    async def all_registered(self, count: int) -> None:
        """Waits until ``count`` devices are registered and nothing is left to send.

        Then pushes a desired value through the same worker and waits for it: the worker sends
        one group of calls after another, so every call queued before has been answered.
        """
        await eventually(
            lambda: len(set(self.mapper.registered)) == count and not self.link.pending,
            f"{count} devices to be registered",
        )
        await self.core.set_desired("default/thermostat-1", {"setpoint": "30"})
        await eventually(lambda: "thermostat-1" in self.mapper.updated, "the barrier update")


@pytest.fixture
def fail_first() -> Collection[str]:
    """Devices whose first RegisterDevice fails (none unless a test overrides it)."""
    return ()


@pytest.fixture
async def edge(home: Path, fail_first: Collection[str]) -> AsyncIterator[Edge]:
    """A device manager without devices and a slow Modbus mapper registered with it."""
    mapper = SlowMapper(home / "mapper.sock", fail_first)
    await mapper.start()
    try:
        async with running_app(home) as app:
            edge = Edge(app, mapper)
            request = register_request(
                "modbus-mapper", "modbus", str(mapper.socket_path), with_data=False
            )
            async with manager_stub(edge.target) as stub:
                await stub.MapperRegister(request, timeout=5.0)
            yield edge
    finally:
        await mapper.stop()


def assert_model_first(mapper: SlowMapper) -> None:
    """The model was created once, before any RegisterDevice arrived."""
    created = [i for i, (what, _) in enumerate(mapper.events) if what == "model created"]
    assert [mapper.events[i][1] for i in created] == [MODEL_NAME]
    assert mapper.events[0] == ("model created", MODEL_NAME)


async def test_devices_are_pushed_concurrently_each_once_after_their_model(edge: Edge) -> None:
    """64 devices of one model: model first, each device once, 2 to 16 RegisterDevice at once."""
    await edge.core.apply(manifests(DEVICES))
    await edge.all_registered(DEVICES)
    mapper = edge.mapper
    assert_model_first(mapper)
    assert sorted(mapper.registered) == sorted(names(DEVICES))
    assert set(mapper.attempts.values()) == {1}
    assert 1 < mapper.most_in_flight <= LINK_CONCURRENCY
    assert mapper.updated == ["thermostat-1"]  # the barrier only
    assert edge.link.stats.retries == 0


FLAKY = ("thermostat-2", "thermostat-9", "thermostat-17", "thermostat-33", "thermostat-64")
"""Devices in different groups of LINK_CONCURRENCY whose first registration fails."""


@pytest.mark.parametrize("fail_first", [FLAKY])
async def test_devices_whose_first_push_fails_are_retried(edge: Edge) -> None:
    """UNAVAILABLE on the first RegisterDevice of some devices: they are retried and arrive."""
    await edge.core.apply(manifests(DEVICES))
    await edge.all_registered(DEVICES)
    mapper = edge.mapper
    assert_model_first(mapper)
    assert sorted(mapper.registered) == sorted(names(DEVICES))
    assert {name: n for name, n in mapper.attempts.items() if n != 1} == dict.fromkeys(FLAKY, 2)
    assert 1 < mapper.most_in_flight <= LINK_CONCURRENCY
    assert edge.link.stats.retries == len(FLAKY)
    assert mapper.updated == ["thermostat-1"]


async def test_a_slow_registration_holds_up_only_its_own_place(edge: Edge) -> None:
    """One RegisterDevice that does not return: the other 63 devices arrive meanwhile.

    Calls are a sliding window of LINK_CONCURRENCY, not groups that wait for their slowest: a
    mapper's slow answer to one device never holds up the devices behind it.
    """
    edge.mapper.hold = {"thermostat-1"}
    await edge.core.apply(manifests(DEVICES))
    others = set(names(DEVICES)) - {"thermostat-1"}
    await eventually(lambda: others <= set(edge.mapper.registered), "the other devices")
    assert "thermostat-1" not in edge.mapper.registered
    assert edge.mapper.in_flight == 1  # the held call is still in flight
    edge.mapper.release.set()
    await edge.all_registered(DEVICES)
    assert set(edge.mapper.attempts.values()) == {1}
    assert edge.link.stats.retries == 0
