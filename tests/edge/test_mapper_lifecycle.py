"""The device lifecycle the device manager pushes to mappers over ``DeviceMapperService``.

Each test runs a real :class:`~twinplane.edge.app.EdgeApp` and one or two recording fake mappers:
real ``grpc.aio`` servers on their own Unix sockets implementing ``DeviceMapperService`` that
record every call (and can answer ``UNAVAILABLE`` a few times). Mappers register over the DMI
socket as mapper-framework does; what they receive is checked call by call, including the
nil-safety contract a Go mapper relies on (spec §1.4) and the ``configData`` wrappers it can
decode (spec §1.3).

A negative ("nothing was sent") is checked with a barrier: the device manager pushes to a mapper
in the order operations were queued, so once the push of a later, known change has arrived,
anything queued before it has arrived too.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf import message

from dmi_helpers import SocketMapper, manager_stub, register_request
from edge_helpers import RunningEdge, device_yaml, model_yaml, running_app
from twinplane.dmi.anyvalue import decode_config
from twinplane.dmi.v1beta1 import api_pb2
from twinplane.edge.mappers import MapperLink
from twinplane.manifests import ManifestError
from twinplane.rest.guard import CLIENT_HEADER

WAIT = 10.0
"""Seconds any single wait may take before the test fails."""

GO_WRAPPERS = frozenset(
    f"type.googleapis.com/google.protobuf.{name}"
    for name in ("StringValue", "Int32Value", "Int64Value", "FloatValue", "BoolValue")
)
"""The only ``Any`` types mapper-framework's ``DecodeAnyValue`` accepts."""

MODEL = """\
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: thermo-model, namespace: default}
spec:
  protocol: modbus
  protocolConfigData: {timeout: 0.5, retries: 3}
  properties:
  - {name: temperature, type: FLOAT, accessMode: ReadOnly, unit: Celsius}
  - {name: setpoint, type: INT, accessMode: ReadWrite, minimum: "5", maximum: "35"}
  - name: enabled
    type: BOOLEAN
    accessMode: ReadWrite
    visitors: {protocolName: modbus, configData: {register: CoilRegister, offset: 9}}
"""


def thermo(name: str, offset: int = 1, *, pin: str | None = None) -> str:
    """A thermostat with every kind of scalar configData; ``pin`` names its mapper."""
    annotations = f", annotations: {{twinplane.io/mapper: {pin}}}" if pin else ""
    return f"""\
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {{name: {name}, namespace: default{annotations}}}
spec:
  deviceModelRef: {{name: thermo-model}}
  protocol:
    protocolName: modbus
    configData: {{ip: 127.0.0.1, port: 5020, slaveID: 1, serial: 4294967296, tls: false}}
  properties:
  - name: temperature
    visitors:
      protocolName: modbus
      configData: {{register: InputRegister, offset: 0, scale: 0.1, isSwap: true}}
  - name: setpoint
    desired: {{value: "21"}}
    visitors: {{protocolName: modbus, configData: {{register: HoldingRegister, offset: {offset}}}}}
  - name: enabled
"""


BARE = """\
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: thermo-bare, namespace: default}
spec:
  deviceModelRef: {name: thermo-model}
  protocol: {protocolName: modbus}
  properties:
  - name: setpoint
"""
"""A device with no configData of its own and a property without visitors or desired value."""

VALVE = "---\n".join(
    [
        model_yaml("valve-model", "bacnet", "{name: position, type: INT, accessMode: ReadWrite}"),
        device_yaml("valve-1", "valve-model", "{protocolName: bacnet}"),
    ]
)

MANIFESTS = "---\n".join([MODEL, thermo("thermo-1"), BARE, VALVE])
MODBUS_DEVICES = frozenset({"thermo-1", "thermo-bare"})


# -- the fake mapper -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One call a fake mapper received."""

    method: str
    request: message.Message
    failed: bool

    @property
    def device(self) -> api_pb2.Device:
        """The Device of a RegisterDevice/UpdateDevice call."""
        assert isinstance(self.request, api_pb2.RegisterDeviceRequest | api_pb2.UpdateDeviceRequest)
        return self.request.device

    @property
    def target(self) -> str:
        """The name of the device or model the call is about."""
        request: Any = self.request
        if self.method in ("RegisterDevice", "UpdateDevice"):
            return str(request.device.name)
        if self.method in ("CreateDeviceModel", "UpdateDeviceModel"):
            return str(request.model.name)
        if self.method == "RemoveDevice":
            return str(request.deviceName)
        return str(request.modelName)


class FakeMapper(SocketMapper):
    """A mapper's ``DeviceMapperService`` on its own Unix socket that records every call.

    Args:
        socket_path: Where it listens once started.
        failures: Method name → how many of its next calls are answered ``UNAVAILABLE``.
    """

    def __init__(self, socket_path: Path, failures: dict[str, int] | None = None) -> None:
        self.socket_path = socket_path
        self.failures = dict(failures or {})
        self.calls: list[Call] = []

    async def _record(
        self, method: str, request: message.Message, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        left = self.failures.get(method, 0)
        self.calls.append(Call(method, request, failed=left > 0))
        if left:
            self.failures[method] = left - 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "mapper is busy")

    async def RegisterDevice(  # noqa: N802 - the gRPC method's name
        self, request: api_pb2.RegisterDeviceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> api_pb2.RegisterDeviceResponse:
        """Records the call; answers like mapper-framework (name only)."""
        await self._record("RegisterDevice", request, context)
        return api_pb2.RegisterDeviceResponse(deviceName=request.device.name)

    async def UpdateDevice(  # noqa: N802
        self, request: api_pb2.UpdateDeviceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> api_pb2.UpdateDeviceResponse:
        """Records the call."""
        await self._record("UpdateDevice", request, context)
        return api_pb2.UpdateDeviceResponse()

    async def RemoveDevice(  # noqa: N802
        self, request: api_pb2.RemoveDeviceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> api_pb2.RemoveDeviceResponse:
        """Records the call."""
        await self._record("RemoveDevice", request, context)
        return api_pb2.RemoveDeviceResponse()

    async def CreateDeviceModel(  # noqa: N802
        self,
        request: api_pb2.CreateDeviceModelRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> api_pb2.CreateDeviceModelResponse:
        """Records the call; answers like mapper-framework (name only)."""
        await self._record("CreateDeviceModel", request, context)
        return api_pb2.CreateDeviceModelResponse(deviceModelName=request.model.name)

    async def UpdateDeviceModel(  # noqa: N802
        self,
        request: api_pb2.UpdateDeviceModelRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> api_pb2.UpdateDeviceModelResponse:
        """Records the call."""
        await self._record("UpdateDeviceModel", request, context)
        return api_pb2.UpdateDeviceModelResponse()

    async def RemoveDeviceModel(  # noqa: N802
        self,
        request: api_pb2.RemoveDeviceModelRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> api_pb2.RemoveDeviceModelResponse:
        """Records the call."""
        await self._record("RemoveDeviceModel", request, context)
        return api_pb2.RemoveDeviceModelResponse()

    def done(self, method: str, since: int = 0) -> list[Call]:
        """The successful calls of ``method`` (from index ``since`` of :attr:`calls`)."""
        return [c for c in self.calls[since:] if c.method == method and not c.failed]

    def targets(self, method: str, since: int = 0) -> list[str]:
        """Names of the devices/models of the successful calls of ``method``."""
        return [c.target for c in self.done(method, since)]

    def held(self) -> set[str]:
        """Devices registered and not removed since, replaying the successful calls."""
        held: set[str] = set()
        for call in self.calls:
            if call.failed:
                continue
            if call.method == "RegisterDevice":
                held.add(call.target)
            elif call.method == "RemoveDevice":
                held.discard(call.target)
        return held

    def summary(self, since: int = 0) -> list[tuple[str, str]]:
        """``(method, target)`` of the successful calls, in order."""
        return [(c.method, c.target) for c in self.calls[since:] if not c.failed]


# -- the device manager ----------------------------------------------------------------------------


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    """Polls ``predicate`` until it holds; fails after :data:`WAIT` seconds."""
    try:
        async with asyncio.timeout(WAIT):
            while not predicate():  # noqa: ASYNC110 - polls what the fake mappers recorded
                await asyncio.sleep(0.005)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


@dataclass
class Edge(RunningEdge):
    """A running device manager, with helpers to register and watch fake mappers."""

    _desired: Iterator[int] = field(default_factory=lambda: itertools.cycle(range(6, 36)))

    def mapper(
        self, name: str = "modbus-mapper", failures: dict[str, int] | None = None
    ) -> FakeMapper:
        """A fake mapper (not started) with a socket in the home folder."""
        return FakeMapper(self.home / f"{name}.sock", failures)

    def link(self, name: str = "modbus-mapper") -> MapperLink:
        """The device manager's link to a registered mapper."""
        assert self.app.mappers is not None
        return self.app.mappers.links[name]

    async def register(
        self,
        mapper: FakeMapper,
        *,
        name: str = "modbus-mapper",
        protocol: str = "modbus",
        with_data: bool = False,
    ) -> api_pb2.MapperRegisterResponse:
        """``MapperRegister`` over the DMI socket on a fresh channel, as mapper-framework does."""
        request = register_request(name, protocol, str(mapper.socket_path), with_data=with_data)
        async with manager_stub(self.target) as stub:
            response: api_pb2.MapperRegisterResponse = await stub.MapperRegister(
                request, timeout=1.0
            )
            return response

    async def synced(self, mapper: FakeMapper, devices: AbstractSet[str] = MODBUS_DEVICES) -> None:
        """Waits until ``mapper`` holds exactly ``devices``."""
        await eventually(
            lambda: mapper.held() == devices, f"{mapper.socket_path} to hold {devices}"
        )

    async def barrier(self, mapper: FakeMapper, device: str = "thermo-bare") -> None:
        """Changes ``device``'s desired setpoint and waits for the UpdateDevice carrying it."""
        value = str(next(self._desired))
        await self.core.set_desired(f"default/{device}", {"setpoint": value})

        def arrived() -> bool:
            return any(
                desired(call.device, "setpoint") == value
                for call in mapper.done("UpdateDevice")
                if call.device.name == device
            )

        await eventually(arrived, f"the barrier UpdateDevice of {device}")


@pytest.fixture
async def edge(home: Path) -> AsyncIterator[Edge]:
    """A device manager with two Modbus thermostats and a BACnet valve."""
    async with running_app(home, MANIFESTS) as app:
        yield Edge(app)


@pytest.fixture
async def fake(edge: Edge) -> AsyncIterator[FakeMapper]:
    """A listening fake Modbus mapper (not registered yet)."""
    mapper = edge.mapper()
    await mapper.start()
    try:
        yield mapper
    finally:
        await mapper.stop()


# -- what a Go mapper needs ------------------------------------------------------------------------


def desired(device: api_pb2.Device, prop: str) -> str:
    """The desired value a pushed Device carries for ``prop``."""
    (found,) = [p for p in device.spec.properties if p.name == prop]
    return str(found.desired.value)


def visitor_config(device: api_pb2.Device, prop: str) -> dict[str, object]:
    """A property's decoded ``visitors.configData``."""
    (found,) = [p for p in device.spec.properties if p.name == prop]
    return decode_config(found.visitors.configData.data, prop)


def assert_go_safe(device: api_pb2.Device, model: api_pb2.DeviceModel) -> None:
    """The nil-safety contract of spec §1.4 and the configData wrappers of spec §1.3."""
    assert device.HasField("spec"), device.name
    assert device.HasField("status"), device.name
    assert device.spec.HasField("protocol"), device.name
    assert device.spec.protocol.HasField("configData"), device.name
    anys = list(device.spec.protocol.configData.data.values())
    model_properties = {p.name for p in model.spec.properties}
    assert device.spec.deviceModelReference == model.name
    for prop in device.spec.properties:
        where = f"{device.name}.{prop.name}"
        assert prop.name in model_properties, where
        assert prop.HasField("desired"), where
        assert prop.HasField("visitors"), where
        assert prop.visitors.HasField("configData"), where
        anys.extend(prop.visitors.configData.data.values())
    for value in anys:
        assert value.type_url in GO_WRAPPERS, (device.name, value.type_url)


def models_sent(mapper: FakeMapper) -> dict[str, api_pb2.DeviceModel]:
    """The models a mapper was sent, by name."""
    out = {}
    for call in mapper.done("CreateDeviceModel") + mapper.done("UpdateDeviceModel"):
        assert isinstance(call.request, api_pb2.CreateDeviceModelRequest)
        out[call.request.model.name] = call.request.model
    return out


def owned_by(edge: Edge, mapper: str) -> set[str]:
    """Names of the devices the device manager routes to ``mapper``."""
    directory = edge.app.mappers
    assert directory is not None
    out = set()
    for device in edge.core.devices.values():
        link = directory.owner(device)
        if link is not None and link.info.name == mapper:
            out.add(device.name)
    return out


# -- tests -----------------------------------------------------------------------------------------


async def test_registration_without_data_pushes_model_before_each_device(
    edge: Edge, fake: FakeMapper
) -> None:
    """withData=false: CreateDeviceModel once, then RegisterDevice for each owned device."""
    response = await edge.register(fake)
    assert response == api_pb2.MapperRegisterResponse()
    await edge.synced(fake)
    summary = fake.summary()
    assert summary[0] == ("CreateDeviceModel", "thermo-model")
    assert sorted(summary[1:]) == [
        ("RegisterDevice", "thermo-1"),
        ("RegisterDevice", "thermo-bare"),
    ]
    assert all(c.device.namespace == "default" for c in fake.done("RegisterDevice"))
    model = models_sent(fake)["thermo-model"]
    assert model.namespace == "default"
    assert [(p.name, p.type, p.accessMode) for p in model.spec.properties] == [
        ("temperature", "FLOAT", "ReadOnly"),
        ("setpoint", "INT", "ReadWrite"),
        ("enabled", "BOOLEAN", "ReadWrite"),
    ]


async def test_pushed_devices_are_nil_safe_with_go_scalar_config(
    edge: Edge, fake: FakeMapper
) -> None:
    """Every pushed Device has spec/protocol/desired/visitors/configData/status and Go wrappers."""
    await edge.register(fake)
    await edge.synced(fake)
    model = models_sent(fake)["thermo-model"]
    devices = {c.device.name: c.device for c in fake.done("RegisterDevice")}
    for device in devices.values():
        assert_go_safe(device, model)
    thermo_1, bare = devices["thermo-1"], devices["thermo-bare"]
    protocol = thermo_1.spec.protocol.configData.data
    assert {k: v.type_url.rpartition(".")[2] for k, v in protocol.items()} == {
        "ip": "StringValue",
        "port": "Int32Value",
        "slaveID": "Int32Value",
        "serial": "Int64Value",
        "tls": "BoolValue",
        "timeout": "FloatValue",  # from the model's protocolConfigData
        "retries": "Int32Value",
    }
    assert decode_config(protocol, "protocol") == {
        "ip": "127.0.0.1",
        "port": 5020,
        "slaveID": 1,
        "serial": 4294967296,
        "tls": False,
        "timeout": 0.5,
        "retries": 3,
    }
    assert visitor_config(thermo_1, "temperature") == {
        "register": "InputRegister",
        "offset": 0,
        "scale": 0.1,
        "isSwap": True,
    }
    assert visitor_config(thermo_1, "enabled") == {"register": "CoilRegister", "offset": 9}
    assert desired(thermo_1, "setpoint") == "21"
    assert desired(thermo_1, "temperature") == ""
    assert decode_config(bare.spec.protocol.configData.data, "protocol") == {
        "timeout": 0.5,
        "retries": 3,
    }
    assert visitor_config(bare, "setpoint") == {}
    assert bare.spec.properties[0].visitors.protocolName == "modbus"


async def test_register_with_data_answers_go_safe_devices_and_pushes_nothing(
    edge: Edge, fake: FakeMapper
) -> None:
    """withData=true answers the devices (nil-safe too); they count as sent: later, UpdateDevice."""
    response = await edge.register(fake, with_data=True)
    assert sorted(d.name for d in response.deviceList) == sorted(MODBUS_DEVICES)
    for model, device in zip(response.modelList, response.deviceList, strict=True):
        assert_go_safe(device, model)
    await edge.barrier(fake, "thermo-1")
    assert fake.summary() == [("UpdateDevice", "thermo-1")]


async def test_reapplying_an_identical_manifest_sends_nothing(edge: Edge, fake: FakeMapper) -> None:
    """An apply that changes nothing sends no call to the mapper."""
    await edge.register(fake)
    await edge.synced(fake)
    mark = len(fake.calls)
    result = await edge.core.apply(MANIFESTS)
    assert {outcome for _, _, outcome in result.outcomes} == {"unchanged"}
    await edge.barrier(fake)
    assert fake.summary(mark) == [("UpdateDevice", "thermo-bare")]


async def test_changing_a_visitor_sends_exactly_one_update_device(
    edge: Edge, fake: FakeMapper
) -> None:
    """A changed visitor offset is one UpdateDevice carrying it; nothing else is sent."""
    await edge.register(fake)
    await edge.synced(fake)
    mark = len(fake.calls)
    await edge.core.apply(thermo("thermo-1", offset=7))
    await eventually(lambda: bool(fake.done("UpdateDevice", mark)), "the UpdateDevice")
    await edge.barrier(fake)
    assert fake.summary(mark) == [("UpdateDevice", "thermo-1"), ("UpdateDevice", "thermo-bare")]
    (update, _) = fake.done("UpdateDevice", mark)
    assert visitor_config(update.device, "setpoint") == {"register": "HoldingRegister", "offset": 7}
    assert desired(update.device, "setpoint") == "21"
    assert fake.held() == MODBUS_DEVICES


async def test_a_changed_model_default_updates_its_devices(edge: Edge, fake: FakeMapper) -> None:
    """A model applied alone with new protocolConfigData sends UpdateDevice to its devices."""
    await edge.register(fake)
    await edge.synced(fake)
    mark = len(fake.calls)
    await edge.core.apply(MODEL.replace("timeout: 0.5", "timeout: 2"))
    await eventually(
        lambda: {c.device.name for c in fake.done("UpdateDevice", mark)} >= MODBUS_DEVICES,
        "the UpdateDevice of every thermostat",
    )
    for call in fake.done("UpdateDevice", mark):
        config = decode_config(call.device.spec.protocol.configData.data, "protocol")
        assert config["timeout"] == 2
    assert fake.held() == MODBUS_DEVICES


async def test_a_desired_value_reaches_the_mapper_as_update_device(
    edge: Edge, fake: FakeMapper
) -> None:
    """set_desired sends UpdateDevice with the new value; the device is not re-registered."""
    await edge.register(fake)
    await edge.synced(fake)
    mark = len(fake.calls)
    await edge.core.set_desired("default/thermo-1", {"setpoint": "25", "enabled": "true"})
    await eventually(lambda: bool(fake.done("UpdateDevice", mark)), "the UpdateDevice")
    (update,) = fake.done("UpdateDevice", mark)
    assert desired(update.device, "setpoint") == "25"
    assert desired(update.device, "enabled") == "true"
    assert_go_safe(update.device, models_sent(fake)["thermo-model"])
    await edge.barrier(fake)
    assert fake.summary(mark) == [("UpdateDevice", "thermo-1"), ("UpdateDevice", "thermo-bare")]


async def test_deleting_a_device_sends_remove_device(edge: Edge, fake: FakeMapper) -> None:
    """delete_device sends RemoveDevice with the device's name and namespace."""
    await edge.register(fake)
    await edge.synced(fake)
    mark = len(fake.calls)
    assert await edge.core.delete_device("default", "thermo-bare")
    await eventually(lambda: bool(fake.done("RemoveDevice", mark)), "the RemoveDevice")
    (remove,) = fake.done("RemoveDevice", mark)
    assert remove.request == api_pb2.RemoveDeviceRequest(
        deviceName="thermo-bare", deviceNamespace="default"
    )
    await edge.barrier(fake, "thermo-1")
    assert fake.summary(mark) == [("RemoveDevice", "thermo-bare"), ("UpdateDevice", "thermo-1")]


async def test_nested_config_data_is_rejected_at_apply(edge: Edge, fake: FakeMapper) -> None:
    """A nested or list configData value fails the apply, naming each key; nothing is sent."""
    await edge.register(fake)
    await edge.synced(fake)
    mark = len(fake.calls)
    before = edge.core.devices["default/thermo-1"]
    bad = (
        thermo("thermo-1")
        .replace("offset: 0,", "offset: [0, 1],")
        .replace("offset: 1}", "offset: {word: 1}}")
    )
    with pytest.raises(ManifestError) as caught:
        await edge.core.apply(bad)
    assert {issue.path for issue in caught.value.issues} == {
        "spec.properties[0].visitors.configData.offset",
        "spec.properties[1].visitors.configData.offset",
    }
    assert all("scalar" in issue.message for issue in caught.value.issues)
    assert edge.core.devices["default/thermo-1"] is before
    await edge.barrier(fake)
    assert fake.summary(mark) == [("UpdateDevice", "thermo-bare")]


async def test_nested_config_data_in_a_model_is_rejected_at_apply(
    edge: Edge, fake: FakeMapper
) -> None:
    """A model's nested configData (it reaches every device of the model) fails the apply too."""
    await edge.register(fake)
    await edge.synced(fake)
    mark = len(fake.calls)
    bad = MODEL.replace("retries: 3}", "retries: {max: 3}}").replace("offset: 9}", "offset: [9]}")
    with pytest.raises(ManifestError) as caught:
        await edge.core.apply(bad)
    assert {(i.kind, i.path) for i in caught.value.issues} == {
        ("DeviceModel", "spec.protocolConfigData.retries"),
        ("DeviceModel", "spec.properties[2].visitors.configData.offset"),
    }
    # The mapper link keeps working: the registry still holds the good model.
    await edge.barrier(fake, "thermo-1")
    assert fake.summary(mark) == [("UpdateDevice", "thermo-1")]


async def test_pushes_wait_for_a_mapper_that_is_not_listening_yet(edge: Edge) -> None:
    """mapper-framework registers before it listens: the pushes are retried until they land."""
    late = edge.mapper()
    await edge.register(late)
    link = edge.link()
    await eventually(lambda: link.stats.failed >= 2, "failed pushes to the silent socket")
    await late.start()
    try:
        await edge.synced(late)
    finally:
        await late.stop()
    assert link.stats.retries >= 2
    assert late.summary()[0] == ("CreateDeviceModel", "thermo-model")


@pytest.mark.parametrize("method", ["CreateDeviceModel", "RegisterDevice"])
async def test_a_failing_mapper_method_is_retried(edge: Edge, method: str) -> None:
    """A method answering UNAVAILABLE three times is retried; model still before device."""
    flaky = edge.mapper(failures={method: 3})
    await flaky.start()
    try:
        await edge.register(flaky)
        await edge.synced(flaky)
    finally:
        await flaky.stop()
    assert [c.method for c in flaky.calls if c.failed] == [method] * 3
    assert edge.link().stats.retries >= 3
    summary = flaky.summary()
    assert summary[0] == ("CreateDeviceModel", "thermo-model")
    assert sorted(summary[1:]) == [
        ("RegisterDevice", "thermo-1"),
        ("RegisterDevice", "thermo-bare"),
    ]


async def test_reregistration_resyncs_every_owned_device(edge: Edge, fake: FakeMapper) -> None:
    """A restarted mapper that registers again gets the model and every device, with news."""
    await edge.register(fake)
    await edge.synced(fake)
    await fake.stop()
    await edge.core.set_desired("default/thermo-1", {"setpoint": "30"})
    restarted = edge.mapper()
    await edge.register(restarted)  # before it listens, as mapper-framework does
    await restarted.start()
    try:
        await edge.synced(restarted)
        summary = restarted.summary()
        assert summary[0] == ("CreateDeviceModel", "thermo-model")
        assert sorted(summary[1:]) == [
            ("RegisterDevice", "thermo-1"),
            ("RegisterDevice", "thermo-bare"),
        ]
        (thermo_1,) = [c.device for c in restarted.done("RegisterDevice") if c.target == "thermo-1"]
        assert desired(thermo_1, "setpoint") == "30"
        # Registering again while running re-syncs too.
        mark = len(restarted.calls)
        await edge.register(restarted)
        await eventually(
            lambda: sorted(restarted.targets("RegisterDevice", mark)) == sorted(MODBUS_DEVICES),
            "the second re-sync",
        )
        assert restarted.summary(mark)[0] == ("CreateDeviceModel", "thermo-model")
    finally:
        await restarted.stop()


async def test_two_mappers_of_one_protocol_split_the_devices(edge: Edge) -> None:
    """Each device is held by exactly one mapper; withData answers each its own; pins hold."""
    names = [f"thermo-{i}" for i in range(2, 12)]
    await edge.core.apply(
        "---\n".join(
            [
                *(thermo(n) for n in names),
                thermo("pinned-a", pin="modbus-a"),
                thermo("pinned-b", pin="modbus-b"),
            ]
        )
    )
    everything = MODBUS_DEVICES | set(names) | {"pinned-a", "pinned-b"}
    a, b = edge.mapper("modbus-a"), edge.mapper("modbus-b")
    await a.start()
    await b.start()
    try:
        await edge.register(a, name="modbus-a")
        await edge.synced(a, everything)
        await edge.register(b, name="modbus-b")
        on_b = owned_by(edge, "modbus-b")
        assert {"pinned-b"} < on_b < everything - {"pinned-a"}
        await eventually(
            lambda: a.held() == everything - on_b and b.held() == on_b,
            "the devices to be split between the mappers",
        )
        assert set(a.targets("RemoveDevice")) == on_b  # moved away from a
        assert not b.targets("RemoveDevice")
        # Devices applied while both are registered are pushed to exactly one of them.
        late = {f"late-{i}" for i in range(8)}
        await edge.core.apply("---\n".join(thermo(n) for n in sorted(late)))
        everything |= late
        on_b = owned_by(edge, "modbus-b")
        await eventually(
            lambda: a.held() == everything - on_b and b.held() == on_b,
            "the late devices to be pushed",
        )
        await edge.barrier(a, "pinned-a")
        await edge.barrier(b, "pinned-b")
        registered = a.targets("RegisterDevice") + b.targets("RegisterDevice")
        for name in late:
            assert registered.count(name) == 1, name
        assert late & on_b
        assert late - on_b
        for mapper, name in ((a, "modbus-a"), (b, "modbus-b")):
            response = await edge.register(mapper, name=name, with_data=True)
            assert {d.name for d in response.deviceList} == mapper.held()
            assert [m.name for m in response.modelList] == ["thermo-model"] * len(mapper.held())
        other = edge.mapper("bacnet")
        response = await edge.register(other, name="bacnet", protocol="bacnet", with_data=True)
        assert [d.name for d in response.deviceList] == ["valve-1"]
    finally:
        await a.stop()
        await b.stop()


async def test_a_deleted_mapper_is_contacted_no_more_and_its_devices_move(edge: Edge) -> None:
    """DELETE /api/v1/mappers/NAME: row and link gone, its devices pushed to the other mapper.

    Nothing more is sent to the deleted mapper, not even RemoveDevice; it may register again.
    """
    names = [f"thermo-{i}" for i in range(2, 8)]
    await edge.core.apply(
        "---\n".join([*(thermo(n) for n in names), thermo("pinned-a", pin="modbus-a")])
    )
    everything = MODBUS_DEVICES | set(names) | {"pinned-a"}
    a, b = edge.mapper("modbus-a"), edge.mapper("modbus-b")
    await a.start()
    await b.start()
    try:
        await edge.register(a, name="modbus-a")
        await edge.register(b, name="modbus-b")
        on_a = owned_by(edge, "modbus-a")
        assert "pinned-a" in on_a
        await eventually(
            lambda: a.held() == on_a and b.held() == everything - on_a,
            "the devices to be split between the mappers",
        )
        async with (
            aiohttp.ClientSession(headers={CLIENT_HEADER: "tests"}) as http,  # as the CLI
            http.delete(f"{edge.app.rest_url}/api/v1/mappers/modbus-a") as resp,
        ):
            assert resp.status == 200
            body = await resp.json()
        assert body["status"] == "Success"
        assert body["details"] == {"name": "modbus-a", "kind": "mappers"}
        sent_to_a = len(a.calls)
        await edge.synced(b, everything)  # a's devices, the pinned one too, moved to b
        await edge.barrier(b, "pinned-a")  # pushed after anything queued at the deletion
        assert len(a.calls) == sent_to_a
        assert edge.app.mappers is not None
        assert sorted(edge.app.mappers.links) == ["modbus-b"]
        assert edge.app.store is not None
        assert await edge.app.store.get_mapper("modbus-a") is None
        # Deleting is no ban: the mapper registers again and gets its devices back.
        await edge.register(a, name="modbus-a")
        await eventually(
            lambda: (
                set(a.targets("RegisterDevice", sent_to_a)) == on_a
                and b.held() == everything - on_a
            ),
            "modbus-a's devices to move back to it",
        )
    finally:
        await a.stop()
        await b.stop()


async def test_mapper_routes_list_show_and_answer_404(edge: Edge, fake: FakeMapper) -> None:
    """GET lists mappers with the devices each owns, GET one shows it; unknown names are 404."""
    await edge.register(fake)
    base = f"{edge.app.rest_url}/api/v1/mappers"
    async with aiohttp.ClientSession(headers={CLIENT_HEADER: "tests"}) as http:
        async with http.get(base) as resp:
            assert resp.status == 200
            listed = await resp.json()
        assert (listed["kind"], [m["name"] for m in listed["items"]]) == (
            "MapperList",
            ["modbus-mapper"],
        )
        async with http.get(f"{base}/modbus-mapper") as resp:
            assert resp.status == 200
            one = await resp.json()
        assert one == listed["items"][0]
        assert {k: v for k, v in one.items() if k != "registeredAt"} == {
            "name": "modbus-mapper",
            "protocol": "modbus",
            "address": str(fake.socket_path),
            "version": "v1.19.0",
            "apiVersion": "v1.0.0",
            "state": "ok",
            "devices": sorted(f"default/{n}" for n in MODBUS_DEVICES),
        }
        assert one["registeredAt"].endswith("Z")
        for method in ("GET", "DELETE"):
            async with http.request(method, f"{base}/nobody") as resp:
                assert resp.status == 404
                body = await resp.json()
            assert (body["reason"], body["message"]) == ("NotFound", 'mapper "nobody" not found')
    assert edge.app.mappers is not None
    assert sorted(edge.app.mappers.links) == ["modbus-mapper"]
