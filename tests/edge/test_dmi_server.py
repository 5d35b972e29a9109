"""The DMI ``DeviceManagerService`` of a real device manager, over its Unix socket.

Each test starts an :class:`~twinplane.edge.app.EdgeApp` (SQLite, the DMI server on a Unix socket
in a fresh temporary home) and talks to it as mappers do: a KubeEdge-mapper-style client (a fresh
channel per call dialled until ready, 1 s deadlines, one twin per ``ReportDeviceStatus`` carrying
``observedDesired`` and ``reported`` with mapper-framework's empty ``timestamp`` and ``type``) and
a batched client (one channel, many twins per call, many calls in flight). Bad requests are
checked for their exact status and for leaving every twin as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from dmi_helpers import MAPPER_METADATA, manager_stub, register_request, report_request
from edge_helpers import RunningEdge, device_yaml, model_yaml, running_app, thermo_model
from twinplane.dmi.v1beta1 import api_pb2, api_pb2_grpc
from twinplane.twin import TwinDict

WAIT = 10.0
"""Seconds any single wait may take before the test fails."""
MAPPER_DEADLINE = 1.0
"""mapper-framework's deadline for every call to the device manager."""
REPORT_PATH = "/v1beta1.DeviceManagerService/ReportDeviceStatus"
MiB = 1024 * 1024

THERMO_MODEL = thermo_model("temperature", "setpoint", "enabled", "label")

POSITION = "{name: position, type: INT, accessMode: ReadWrite}"
VALVES = "---\n".join(
    [
        model_yaml("valve-model", "bacnet", POSITION),
        model_yaml("valve-model", "bacnet", POSITION, namespace="plant"),
        device_yaml(
            "valve-1", "valve-model", "{protocolName: bacnet, configData: {deviceInstance: 17}}"
        ),
        device_yaml("valve-2", "valve-model", "{protocolName: bacnet}", namespace="plant"),
    ]
)

THERMOS = ("thermo-1", "thermo-2", "thermo-3")


def thermo(name: str, offset: int = 0) -> str:
    """A Modbus thermostat Device of ``thermo-model`` whose setpoint has desired value 21."""
    return f"""\
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {{name: {name}, namespace: default}}
spec:
  deviceModelRef: {{name: thermo-model}}
  protocol: {{protocolName: modbus, configData: {{ip: 127.0.0.1, port: 5020, slaveID: 1}}}}
  properties:
  - name: temperature
    visitors: {{protocolName: modbus, configData: {{register: InputRegister, offset: {offset}}}}}
  - name: setpoint
    desired: {{value: "21"}}
    visitors: {{protocolName: modbus, configData: {{register: HoldingRegister, offset: {offset}}}}}
"""


MANIFESTS = "---\n".join([THERMO_MODEL, *(thermo(n, i) for i, n in enumerate(THERMOS)), VALVES])

Snapshot = dict[str, dict[str, TwinDict]]


@dataclass
class Edge(RunningEdge):
    """A running device manager with the manifests above applied."""

    def snapshot(self) -> Snapshot:
        """Every twin of every device."""
        return {device: self.core.twins(device) for device in sorted(self.core.devices)}

    def reported(self, device: str, prop: str) -> str | None:
        """A twin's reported value (``None`` before the first report)."""
        side = self.core.twins(f"default/{device}")[prop]["reported"]
        return None if side is None else side["value"]

    def versions(self, device: str) -> dict[str, int]:
        """The reported edge version of each twin of ``default/<device>``."""
        twins = self.core.twins(f"default/{device}")
        return {prop: twin["reported_version"]["edge"] for prop, twin in twins.items()}


@pytest.fixture
async def edge(home: Path) -> AsyncIterator[Edge]:
    """A device manager with three thermostats and two valves."""
    async with running_app(home, MANIFESTS) as app:
        yield Edge(app)


@dataclass
class KubeEdgeMapper:
    """Calls the device manager the way mapper-framework's ``grpcclient`` does.

    Every call dials a fresh connection and waits until it is ready (Go's ``WithBlock``), makes
    one RPC with a 1 s deadline, and closes the connection.
    """

    target: str
    socket_path: str
    name: str = "modbus-mapper"
    protocol: str = "modbus"

    @contextlib.asynccontextmanager
    async def _stub(self) -> AsyncIterator[api_pb2_grpc.DeviceManagerServiceStub]:
        async with grpc.aio.insecure_channel(self.target) as channel:
            async with asyncio.timeout(WAIT):
                await channel.channel_ready()
            yield api_pb2_grpc.DeviceManagerServiceStub(channel)

    async def register(self, *, with_data: bool = True) -> api_pb2.MapperRegisterResponse:
        """``MapperRegister`` exactly as ``RegisterMapper(true)`` fills it."""
        request = register_request(self.name, self.protocol, self.socket_path, with_data=with_data)
        async with self._stub() as stub:
            response: api_pb2.MapperRegisterResponse = await stub.MapperRegister(
                request, timeout=MAPPER_DEADLINE
            )
            return response

    async def report(
        self, device: str, prop: str, value: str, *, desired: str = "", namespace: str = "default"
    ) -> None:
        """One ``ReportDeviceStatus`` with one twin, as a device's data loop sends it."""
        observed = api_pb2.TwinProperty(value=desired, metadata=MAPPER_METADATA)
        request = report_request(
            device, {prop: value}, namespace=namespace, metadata=MAPPER_METADATA, observed=observed
        )
        async with self._stub() as stub:
            await stub.ReportDeviceStatus(request, timeout=MAPPER_DEADLINE)

    async def tick(self, device: str, values: Mapping[str, str]) -> None:
        """One collect cycle of a device: a call per property, one after the other."""
        for prop, value in values.items():
            await self.report(device, prop, value)

    async def report_state(self, device: str, state: str, namespace: str = "default") -> None:
        """``ReportDeviceStates``."""
        request = api_pb2.ReportDeviceStatesRequest(
            deviceName=device, deviceNamespace=namespace, state=state
        )
        async with self._stub() as stub:
            await stub.ReportDeviceStates(request, timeout=MAPPER_DEADLINE)


def mapper_for(edge: Edge, **kwargs: str) -> KubeEdgeMapper:
    """A mapper-style client whose own socket (never listening here) is in the edge's home."""
    return KubeEdgeMapper(edge.target, str(edge.home / "mapper.sock"), **kwargs)


@contextlib.contextmanager
def rpc_error(code: grpc.StatusCode) -> Iterator[list[str]]:
    """Expects an RPC to fail with ``code``; yields a list that receives its details."""
    details: list[str] = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        yield details
    assert caught.value.code() == code, caught.value.details()
    details.append(caught.value.details() or "")


# -- ReportDeviceStatus from mapper-style and batched clients -------------------------------------


async def test_mapper_style_reports_reach_the_twins(edge: Edge) -> None:
    """One twin per call with empty timestamp/type metadata lands in core.twins()."""
    mapper = mapper_for(edge)
    response = await mapper.register()
    assert sorted(d.name for d in response.deviceList) == list(THERMOS)
    for name in THERMOS:
        await mapper.tick(name, {"temperature": "21.5", "setpoint": "21", "enabled": "true"})
    for name in THERMOS:
        twins = edge.core.twins(f"default/{name}")
        assert twins["temperature"]["reported"] is not None
        assert twins["temperature"]["reported"]["value"] == "21.5"
        assert twins["temperature"]["reported"]["timestamp"] > 0  # empty timestamp: receive time
        assert twins["setpoint"]["reported"] is not None
        assert twins["setpoint"]["reported"]["value"] == "21"
        assert twins["enabled"]["reported"] is not None
        assert twins["enabled"]["reported"]["value"] == "true"
        assert twins["label"]["reported"] is None
        assert edge.versions(name) == {"temperature": 1, "setpoint": 1, "enabled": 1, "label": 0}
        # The mapper's (empty) observedDesired does not overwrite the edge's desired value.
        assert twins["setpoint"]["desired"] is not None
        assert twins["setpoint"]["desired"]["value"] == "21"
        assert twins["setpoint"]["desired_version"] == {"cloud": 0, "edge": 1}


async def test_unchanged_reports_bump_no_version(edge: Edge) -> None:
    """Ticks repeating the same values (in any spelling) change nothing; a new value does."""
    mapper = mapper_for(edge)
    await mapper.register()
    values = {"temperature": "21.5", "setpoint": "21"}
    await mapper.tick("thermo-1", values)
    first = edge.snapshot()
    changed = edge.core.counters.dmi_twins_changed
    for _ in range(3):
        await mapper.tick("thermo-1", values)
    await mapper.tick("thermo-1", {"temperature": "21.50", "setpoint": "+21"})
    assert edge.snapshot() == first
    assert edge.core.counters.dmi_twins_changed == changed
    assert edge.versions("thermo-1")["temperature"] == 1
    await mapper.report("thermo-1", "temperature", "22")
    assert edge.reported("thermo-1", "temperature") == "22"
    assert edge.versions("thermo-1") == {"temperature": 2, "setpoint": 1, "enabled": 0, "label": 0}
    assert edge.core.counters.dmi_twins_changed == changed + 1


async def test_batched_client_many_twins_many_calls_in_flight(edge: Edge) -> None:
    """25 devices x 4 twins per call, all calls of a round in flight at once, 4 rounds."""
    names = [f"bulk-{i:02d}" for i in range(25)]
    await edge.core.apply("---\n".join(thermo(name) for name in names))

    def values(name: str, round_: int) -> dict[str, str]:
        return {
            "temperature": f"{round_}.5",
            "setpoint": str(round_),
            "enabled": "true" if round_ % 2 else "false",
            "label": f"{name}-r{round_}",
        }

    async with manager_stub(edge.target) as stub, asyncio.timeout(WAIT):
        for round_ in range(4):
            await asyncio.gather(
                *(
                    stub.ReportDeviceStatus(report_request(n, values(n, round_)), timeout=WAIT)
                    for n in names
                )
            )
        settled = edge.snapshot()
        await asyncio.gather(
            *(stub.ReportDeviceStatus(report_request(n, values(n, 3)), timeout=WAIT) for n in names)
        )
    assert edge.snapshot() == settled
    for name in names:
        twins = edge.core.twins(f"default/{name}")
        got = {p: t["reported"]["value"] for p, t in twins.items() if t["reported"] is not None}
        assert got == values(name, 3)
        assert edge.versions(name) == {"temperature": 4, "setpoint": 4, "enabled": 4, "label": 4}


# -- MapperRegister --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "expected"),
    [
        ("modbus", {("default", n, "thermo-model") for n in THERMOS}),
        ("bacnet", {("default", "valve-1", "valve-model"), ("plant", "valve-2", "valve-model")}),
        ("opcua", set()),
    ],
)
async def test_mapper_register_with_data_returns_its_protocol(
    edge: Edge, protocol: str, expected: set[tuple[str, str, str]]
) -> None:
    """With withData the answer is parallel model/device lists of the mapper's protocol only."""
    mapper = mapper_for(edge, name=f"{protocol}-mapper", protocol=protocol)
    response = await mapper.register()
    assert len(response.modelList) == len(response.deviceList)
    got = set()
    for model, device in zip(response.modelList, response.deviceList, strict=True):
        assert device.spec.protocol.protocolName == protocol
        assert (model.namespace, model.name) == (device.namespace, device.spec.deviceModelReference)
        got.add((device.namespace, device.name, model.name))
    assert got == expected
    assert edge.app.store is not None
    stored = await edge.app.store.get_mapper(f"{protocol}-mapper")
    assert stored is not None
    assert (stored.protocol, stored.address, stored.state) == (protocol, mapper.socket_path, "ok")


async def test_mapper_register_rejects_an_empty_protocol(edge: Edge) -> None:
    """An empty protocol is INVALID_ARGUMENT with EdgeCore's message; nothing is stored."""
    mapper = mapper_for(edge, name="nameless-protocol", protocol="")
    with rpc_error(grpc.StatusCode.INVALID_ARGUMENT) as details:
        await mapper.register()
    assert details == ["fail to register mapper nameless-protocol because the protocol is nil"]
    assert edge.app.store is not None
    assert await edge.app.store.get_mapper("nameless-protocol") is None


async def test_mapper_register_without_data_answers_empty(edge: Edge) -> None:
    """withData=false registers the mapper and answers an empty response."""
    mapper = mapper_for(edge)
    response = await mapper.register(with_data=False)
    assert response == api_pb2.MapperRegisterResponse()
    assert response.ByteSize() == 0
    assert edge.app.store is not None
    assert await edge.app.store.get_mapper("modbus-mapper") is not None


# -- ReportDeviceStates ----------------------------------------------------------------------------


async def test_report_device_states_normalises_and_persists(edge: Edge) -> None:
    """``Online`` is stored as ``online`` with a last-online time; ``disconnected`` is accepted."""
    mapper = mapper_for(edge)
    assert edge.app.store is not None
    await mapper.report_state("thermo-1", "Online")
    state = edge.core.states["default/thermo-1"]
    assert state.state == "online"
    assert state.last_online
    stored = await edge.app.store.get_state("default/thermo-1")
    assert stored is not None
    assert stored.state == "online"
    await mapper.report_state("thermo-1", "disconnected")
    assert edge.core.states["default/thermo-1"].state == "disconnected"
    stored = await edge.app.store.get_state("default/thermo-1")
    assert stored is not None
    assert stored.state == "disconnected"
    await mapper.report_state("valve-2", "OK", namespace="plant")
    assert edge.core.states["plant/valve-2"].state == "ok"


async def test_report_device_states_rejects_bogus_states_and_unknown_devices(edge: Edge) -> None:
    """A bogus state is INVALID_ARGUMENT, an unknown device NOT_FOUND; the state stays."""
    mapper = mapper_for(edge)
    await mapper.report_state("thermo-1", "offline")
    with rpc_error(grpc.StatusCode.INVALID_ARGUMENT) as details:
        await mapper.report_state("thermo-1", "bogus")
    assert "'bogus'" in details[0]
    assert "disconnected" in details[0]  # the message lists the allowed states
    assert edge.core.states["default/thermo-1"].state == "offline"
    with rpc_error(grpc.StatusCode.NOT_FOUND) as details:
        await mapper.report_state("thermo-9", "online")
    assert "default/thermo-9" in details[0]
    assert "default/thermo-9" not in edge.core.states


# -- bad ReportDeviceStatus requests change nothing ------------------------------------------------


async def seed(edge: Edge) -> Snapshot:
    """Reports a first value for every thermostat twin; the snapshot after it."""
    async with manager_stub(edge.target) as stub:
        for name in THERMOS:
            values = {"temperature": "20.5", "setpoint": "20", "enabled": "false", "label": "a"}
            await stub.ReportDeviceStatus(report_request(name, values), timeout=WAIT)
    return edge.snapshot()


@pytest.mark.parametrize(
    ("device", "values", "code", "mentions"),
    [
        pytest.param(
            "thermo-9",
            {"temperature": "21"},
            grpc.StatusCode.NOT_FOUND,
            ["default/thermo-9"],
            id="unknown-device",
        ),
        pytest.param(
            "thermo-1",
            {"humidity": "40"},
            grpc.StatusCode.INVALID_ARGUMENT,
            ["default/thermo-1", "humidity"],
            id="unknown-property",
        ),
        pytest.param(
            "thermo-1",
            {"temperature": "hot"},
            grpc.StatusCode.INVALID_ARGUMENT,
            ["temperature", "FLOAT", '"hot"'],
            id="text-for-float",
        ),
        pytest.param(
            "thermo-1",
            {"setpoint": "2.5"},
            grpc.StatusCode.INVALID_ARGUMENT,
            ["setpoint", "INT", '"2.5"'],
            id="fraction-for-int",
        ),
        pytest.param(
            "thermo-1",
            {"enabled": "maybe"},
            grpc.StatusCode.INVALID_ARGUMENT,
            ["enabled", "BOOLEAN", '"maybe"'],
            id="word-for-boolean",
        ),
        pytest.param(
            "thermo-2",
            {"temperature": "22.5", "label": "b", "setpoint": "2.5", "enabled": "true"},
            grpc.StatusCode.INVALID_ARGUMENT,
            ["default/thermo-2", "setpoint", '"2.5"'],
            id="one-bad-twin-of-many",
        ),
    ],
)
async def test_bad_report_gets_a_precise_status_and_changes_nothing(
    edge: Edge,
    device: str,
    values: dict[str, str],
    code: grpc.StatusCode,
    mentions: list[str],
) -> None:
    """Unknown device/property or a value that does not fit: the status says so, nothing moves."""
    before = await seed(edge)
    changed = edge.core.counters.dmi_twins_changed
    async with manager_stub(edge.target) as stub:
        with rpc_error(code) as details:
            await stub.ReportDeviceStatus(report_request(device, values), timeout=WAIT)
    for word in mentions:
        assert word in details[0]
    assert edge.snapshot() == before
    assert edge.core.counters.dmi_twins_changed == changed


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (payloads here are shorter than 128 bytes)."""
    assert len(payload) < 0x80
    return bytes([number << 3 | 2, len(payload)]) + payload


GOOD_TWIN = field(1, field(1, b"temperature") + field(3, field(1, b"30.5")))
"""``reportedDevice.twins`` entry: temperature reported as 30.5 (valid on its own)."""


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        pytest.param(b"\x0a\x05ab", "ReportDeviceStatusRequest.deviceName", id="truncated-name"),
        pytest.param(
            field(1, b"thermo-\xff"), "ReportDeviceStatusRequest.deviceName", id="name-not-utf8"
        ),
        pytest.param(
            field(1, b"thermo-1") + field(2, GOOD_TWIN + b"\x0a\x07\x0a\x05temp"),
            "ReportDeviceStatusRequest.reportedDevice.twins",
            id="truncated-second-twin",
        ),
        pytest.param(
            field(1, b"thermo-1") + field(2, GOOD_TWIN + field(1, b"\x0a\x05temp")),
            "ReportDeviceStatusRequest.reportedDevice.twins[1].propertyName",
            id="truncated-property-name",
        ),
        pytest.param(
            field(1, b"thermo-1")
            + field(2, GOOD_TWIN + field(1, field(1, b"label") + field(3, field(1, b"\xc3")))),
            "ReportDeviceStatusRequest.reportedDevice.twins[1].reported.value",
            id="value-not-utf8",
        ),
        pytest.param(
            field(1, b"thermo-1") + field(2, GOOD_TWIN) + b"\x1a\x09default",
            "ReportDeviceStatusRequest.deviceNamespace",
            id="truncated-namespace-after-twins",
        ),
        pytest.param(
            field(1, b"thermo-1") + field(2, GOOD_TWIN) + b"\x07",
            "ReportDeviceStatusRequest",
            id="bad-wire-type",
        ),
    ],
)
async def test_malformed_message_is_invalid_argument_naming_the_field(
    edge: Edge, payload: bytes, path: str
) -> None:
    """Bytes that do not decode: INVALID_ARGUMENT naming the field; valid twins before it too."""
    before = await seed(edge)
    async with grpc.aio.insecure_channel(edge.target) as channel:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(REPORT_PATH)
        with rpc_error(grpc.StatusCode.INVALID_ARGUMENT) as details:
            await call(payload, timeout=WAIT)
        assert details[0].startswith(path + ":") or details[0].startswith(path + " "), details
        # The same channel (and server) still takes a well-formed report.
        good = field(1, b"thermo-1") + field(2, GOOD_TWIN)
        await call(good, timeout=WAIT)
    after = edge.snapshot()
    assert after["default/thermo-1"]["temperature"]["reported"] is not None
    assert after["default/thermo-1"]["temperature"]["reported"]["value"] == "30.5"
    after["default/thermo-1"]["temperature"] = before["default/thermo-1"]["temperature"]
    assert after == before


async def test_message_over_4_mib_is_resource_exhausted(edge: Edge) -> None:
    """A report over grpc-go's 4 MiB limit is RESOURCE_EXHAUSTED and changes nothing."""
    before = await seed(edge)
    huge = report_request("thermo-1", {"temperature": "25.5", "label": "x" * (4 * MiB)})
    assert huge.ByteSize() > 4 * MiB
    async with manager_stub(edge.target) as stub:
        with rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED):
            await stub.ReportDeviceStatus(huge, timeout=WAIT)
        assert edge.snapshot() == before
        just_under = report_request("thermo-1", {"label": "y" * (4 * MiB - 100)})
        assert just_under.ByteSize() <= 4 * MiB
        await stub.ReportDeviceStatus(just_under, timeout=WAIT)
    assert edge.reported("thermo-1", "label") == "y" * (4 * MiB - 100)


async def failure(call: Awaitable[object]) -> grpc.aio.AioRpcError | None:
    """The error a call ends with, ``None`` when it succeeds."""
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err
    return None


# -- admission control -----------------------------------------------------------------------------


async def test_over_budget_calls_are_refused_at_once(home: Path) -> None:
    """With a tiny budget, calls past it get RESOURCE_EXHAUSTED within their 1 s deadline."""
    async with running_app(home, MANIFESTS, dmi_rate=1, dmi_burst=5) as app:
        edge = Edge(app)
        async with manager_stub(edge.target) as stub:
            assert edge.app.dmi is not None
            admitted: list[int] = []
            refused: grpc.aio.AioRpcError | None = None
            async with asyncio.timeout(WAIT):
                for i in range(1, 50):
                    request = report_request("thermo-1", {"setpoint": str(i)})
                    refused = await failure(
                        stub.ReportDeviceStatus(request, timeout=MAPPER_DEADLINE)
                    )
                    if refused is not None:
                        break
                    admitted.append(i)
            assert refused is not None
            assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused.details()
            assert "admission budget" in (refused.details() or "")
            assert 5 <= len(admitted) < 49
            # The refused report changed nothing.
            assert edge.reported("thermo-1", "setpoint") == str(admitted[-1])

            # A burst from many callers: every call is answered, the refused ones at once.
            calls = [
                stub.ReportDeviceStatus(
                    report_request("thermo-2", {"label": f"n{i}"}), timeout=MAPPER_DEADLINE
                )
                for i in range(20)
            ]
            calls.append(
                stub.ReportDeviceStates(
                    api_pb2.ReportDeviceStatesRequest(
                        deviceName="thermo-2", deviceNamespace="default", state="online"
                    ),
                    timeout=MAPPER_DEADLINE,
                )
            )
            async with asyncio.timeout(WAIT):
                results = await asyncio.gather(*calls, return_exceptions=True)
            codes = [r.code() for r in results if isinstance(r, grpc.aio.AioRpcError)]
            assert set(codes) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
            assert len(codes) >= len(calls) - 3
            assert edge.app.dmi.bucket.rejected == len(codes) + 1


# -- reflection ------------------------------------------------------------------------------------


async def test_reflection_lists_the_device_manager_service(edge: Edge) -> None:
    """grpcurl-style list_services over the DMI socket names v1beta1.DeviceManagerService."""
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    async with grpc.aio.insecure_channel(edge.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = [a async for a in stub.ServerReflectionInfo(iter([request]), timeout=WAIT)]
    (answer,) = answers
    names = {service.name for service in answer.list_services_response.service}
    assert "v1beta1.DeviceManagerService" in names
    assert "grpc.reflection.v1alpha.ServerReflection" in names
