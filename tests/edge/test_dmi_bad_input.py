"""Bad DMI input to a real device manager over its Unix socket: refused precisely, nothing kept.

Garbled bytes go through a raw generic gRPC call (identity serializers), so the server sees
exactly what a broken or hostile peer would send. Every RPC answers ``INVALID_ARGUMENT`` with the
field and the byte offset where decoding failed, and stores nothing: no mapper row or link, no
state, no twin. ``MapperRegister`` fields are bounded and checked one by one, the number of
mappers is bounded, and what is refused leaves no trace in the table, the links or ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import pytest

from dmi_helpers import manager_stub, register_request, report_request
from edge_helpers import RunningEdge, device_yaml, running_app, thermo_model
from twinplane.dmi.v1beta1 import api_pb2
from twinplane.edge.mapper_info import MAX_MAPPERS
from twinplane.stream.v1 import stream_pb2

WAIT = 10.0
"""Seconds any single call may take before the test fails."""
MANAGER = "/v1beta1.DeviceManagerService"
MANIFESTS = "---\n".join(
    [
        thermo_model("temperature", "setpoint"),
        device_yaml("thermo-1", "thermo-model"),
        device_yaml("thermo-2", "thermo-model"),
    ]
)


@dataclass
class Edge(RunningEdge):
    """A running device manager with two Modbus thermostats."""

    async def mapper_names(self) -> list[str]:
        """The names in the mappers table."""
        assert self.app.store is not None
        return [m.name for m in await self.app.store.list_mappers()]

    @property
    def links(self) -> list[str]:
        """The mappers the device manager would contact."""
        assert self.app.mappers is not None
        return sorted(self.app.mappers.links)

    async def metrics(self) -> str:
        """The ``/metrics`` text."""
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.app.rest_url}/metrics") as resp,
        ):
            assert resp.status == 200
            return await resp.text()

    async def nothing_stored(self) -> None:
        """No mapper, no state, no reported twin: as after start."""
        assert await self.mapper_names() == []
        assert self.links == []
        assert self.app.store is not None
        assert await self.app.store.list_states() == []
        assert self.core.states == {}
        for device in ("default/thermo-1", "default/thermo-2"):
            twins = self.core.twins(device)
            assert all(t["reported"] is None for t in twins.values()), twins


@pytest.fixture
async def edge(home: Path) -> AsyncIterator[Edge]:
    """A device manager with two thermostats and nothing reported or registered."""
    async with running_app(home, MANIFESTS) as app:
        yield Edge(app)


@contextlib.contextmanager
def rpc_error(code: grpc.StatusCode) -> Iterator[list[str]]:
    """Expects an RPC to fail with ``code``; yields a list that receives its details."""
    details: list[str] = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        yield details
    assert caught.value.code() == code, caught.value.details()
    details.append(caught.value.details() or "")


async def raw_call(target: str, method: str, payload: bytes) -> bytes:
    """One unary call of ``method`` with ``payload`` as the request bytes, answer as bytes."""
    async with grpc.aio.insecure_channel(target) as channel:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
        answer: bytes = await call(payload, timeout=WAIT)
        return answer


# -- garbled bytes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "payload", "details"),
    [
        pytest.param(
            f"{MANAGER}/MapperRegister",
            b"\x08\x01\x12\x08\x0a\x09modbus",  # mapper.name says 9 bytes, 6 follow
            "MapperRegisterRequest.mapper.name: length-delimited field of 9 bytes at byte 6"
            " runs past the end (6 bytes left)",
            id="MapperRegister-name-past-the-end",
        ),
        pytest.param(
            f"{MANAGER}/MapperRegister",
            b"\x08\x01\x12\x04\x22\x02\xc3\x28",  # mapper.protocol is not UTF-8
            "MapperRegisterRequest.mapper.protocol: invalid UTF-8 at byte 6",
            id="MapperRegister-protocol-not-utf8",
        ),
        pytest.param(
            f"{MANAGER}/MapperRegister",
            b"\x08\x01\x0e",  # wire type 6
            "MapperRegisterRequest.withData: invalid wire type 6 at byte 2",
            id="MapperRegister-wire-type",
        ),
        pytest.param(
            f"{MANAGER}/ReportDeviceStates",
            b"\x0a\x08thermo-1\x1a\x06on",  # state says 6 bytes, 2 follow
            "ReportDeviceStatesRequest.state: length-delimited field of 6 bytes at byte 12 runs"
            " past the end (2 bytes left)",
            id="ReportDeviceStates-state-past-the-end",
        ),
        pytest.param(
            f"{MANAGER}/ReportDeviceStates",
            b"\x0a\x08thermo-1\x1a\x06online\x80",  # a truncated tag after a valid request
            "ReportDeviceStatesRequest: truncated varint at byte 18",
            id="ReportDeviceStates-truncated-tag",
        ),
        pytest.param(
            f"{MANAGER}/ReportDeviceStatus",
            b"\x0a\x08thermo-1\x1a\x09",  # deviceNamespace says 9 bytes, none follow
            "ReportDeviceStatusRequest.deviceNamespace: length-delimited field of 9 bytes at"
            " byte 12 runs past the end (0 bytes left)",
            id="ReportDeviceStatus-namespace-past-the-end",
        ),
        pytest.param(
            "/twinplane.v1.TwinStream/Capabilities",
            b"\x0a\x03\xff\xfe\xfd",
            "CapabilitiesRequest.mapper: invalid UTF-8 at byte 2",
            id="Capabilities-not-utf8",
        ),
        pytest.param(
            "/twinplane.v1.TwinStream/ReportWriteOutcomes",
            b"\x0a\x05\x0a\x09abc",  # outcomes[0].device_namespace says 9 bytes, 3 follow
            "WriteOutcomes.outcomes[0].device_namespace: length-delimited field of 9 bytes at"
            " byte 4 runs past the end (3 bytes left)",
            id="ReportWriteOutcomes-namespace-past-the-end",
        ),
    ],
)
async def test_garbled_request_is_invalid_argument_with_the_offset(
    edge: Edge, method: str, payload: bytes, details: str
) -> None:
    """Bytes that do not parse: INVALID_ARGUMENT, the field and byte offset; nothing stored."""
    with rpc_error(grpc.StatusCode.INVALID_ARGUMENT) as got:
        await raw_call(edge.target, method, payload)
    assert got == [details]
    await edge.nothing_stored()


async def test_garbled_batch_ends_the_stream_with_the_offset(edge: Edge) -> None:
    """A Report stream message that is no ReportBatch: INVALID_ARGUMENT; earlier batches stay."""
    good = stream_pb2.ReportBatch(
        seq=1, reports=[report_request("thermo-1", {"temperature": "21.5"}).SerializeToString()]
    ).SerializeToString()
    # seq 2, then a report entry that says 200 bytes and has 3
    garbled = b"\x08\x02\x12\xc8\x01abc"
    async with grpc.aio.insecure_channel(edge.target) as channel:
        report: grpc.aio.StreamStreamMultiCallable[bytes, bytes]
        report = channel.stream_stream("/twinplane.v1.TwinStream/Report")
        call = report(timeout=WAIT)
        async with asyncio.timeout(WAIT):
            await call.write(good)
            reply = await call.read()
            assert isinstance(reply, bytes)
            ack = stream_pb2.ReportAck.FromString(reply)
            assert (ack.seq, ack.applied, list(ack.errors)) == (1, 1, [])
            await call.write(garbled)
            with rpc_error(grpc.StatusCode.INVALID_ARGUMENT) as got:
                reply = await call.read()  # raises: the stream ends with the status
                assert reply is grpc.aio.EOF, f"an answer to the garbled batch: {reply!r}"
    assert got == [
        "ReportBatch.reports[0]: length-delimited field of 200 bytes at byte 5 runs past the end"
        " (3 bytes left)"
    ]
    twins = edge.core.twins("default/thermo-1")
    assert twins["temperature"]["reported"] is not None
    assert twins["temperature"]["reported"]["value"] == "21.5"
    assert edge.core.twins("default/thermo-2")["temperature"]["reported"] is None


# -- MapperRegister fields -------------------------------------------------------------------------


def _info(**fields: str | bytes) -> api_pb2.MapperInfo:
    base: dict[str, str | bytes] = {
        "name": "modbus-mapper",
        "version": "v1.19.0",
        "api_version": "v1.0.0",
        "protocol": "modbus",
        "address": b"/etc/kubeedge/modbus.sock",
        "state": "ok",
    }
    return api_pb2.MapperInfo(**{**base, **fields})  # type: ignore[arg-type]


MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("mapper", "field", "mentions"),
    [
        pytest.param(_info(name=""), "mapper.name", "must be set", id="name-empty"),
        pytest.param(_info(name="m" * MiB), "mapper.name", f"{MiB} characters", id="name-1MiB"),
        pytest.param(_info(name="m" * 64), "mapper.name", "64 characters", id="name-64"),
        pytest.param(_info(name="bad\x07name"), "mapper.name", "U+0007", id="name-control"),
        pytest.param(_info(name="a b"), "mapper.name", "U+0020", id="name-space"),
        pytest.param(_info(name="-lead"), "mapper.name", "character 0", id="name-leading-dash"),
        pytest.param(_info(name="trail."), "mapper.name", "character 5", id="name-trailing-dot"),
        pytest.param(_info(name="caf\u00e9"), "mapper.name", "U+00E9", id="name-non-ascii"),
        pytest.param(_info(version="v" * 65), "mapper.version", "65 characters", id="version"),
        pytest.param(_info(version="v1\n"), "mapper.version", "U+000A", id="version-newline"),
        pytest.param(_info(api_version="x" * 4096), "mapper.api_version", "4096", id="api-version"),
        pytest.param(_info(protocol="mod bus"), "mapper.protocol", "U+0020", id="protocol-space"),
        pytest.param(_info(protocol="p" * 64), "mapper.protocol", "64 characters", id="protocol"),
        pytest.param(_info(state="o\x00k"), "mapper.state", "U+0000", id="state-nul"),
        pytest.param(_info(address=b""), "mapper.address", "must be set", id="address-empty"),
        pytest.param(
            _info(address=b"/run/" + b"s" * 200), "mapper.address", "205 bytes", id="address-long"
        ),
        pytest.param(
            _info(address=b"modbus.sock"), "mapper.address", "not an absolute path", id="relative"
        ),
        pytest.param(
            _info(address=b"tcp://10.0.0.7:5000"),
            "mapper.address",
            "not an absolute path",
            id="address-tcp",
        ),
        pytest.param(
            _info(address=b"/run/a\x1bb.sock"), "mapper.address", "U+001B", id="address-control"
        ),
        pytest.param(
            _info(address=b"/run/\xff.sock"), "mapper.address", "byte 5 is not UTF-8", id="utf8"
        ),
    ],
)
async def test_out_of_bounds_registration_is_refused_naming_the_field(
    edge: Edge, mapper: api_pb2.MapperInfo, field: str, mentions: str
) -> None:
    """Each bad MapperInfo field: INVALID_ARGUMENT naming it, a bounded message, nothing kept."""
    request = api_pb2.MapperRegisterRequest(withData=True, mapper=mapper)
    async with manager_stub(edge.target) as stub:
        with rpc_error(grpc.StatusCode.INVALID_ARGUMENT) as details:
            await stub.MapperRegister(request, timeout=WAIT)
    assert details[0].startswith(f"{field}"), details
    assert mentions in details[0], details
    assert len(details[0]) < 600  # never the input echoed back
    await edge.nothing_stored()
    text = await edge.metrics()
    assert "mmmmmmmm" not in text
    assert 'mapper="' not in text  # no per-mapper sample at all


@pytest.mark.parametrize(
    ("name", "address"),
    [
        ("Modbus-mapper", b"/etc/kubeedge/Modbus.sock"),  # mapper-framework's generated name
        ("m" * 63, b"unix:///etc/kubeedge/" + b"s" * 88 + b".sock"),  # 63 chars, 107 bytes
        ("opcua.mapper-2", b"unix:/etc/kubeedge/opcua.sock"),
    ],
)
async def test_kubeedge_style_registrations_are_accepted(
    edge: Edge, name: str, address: bytes
) -> None:
    """Real mapper-framework fields, the longest name and address, unix: prefixes: accepted."""
    request = api_pb2.MapperRegisterRequest(withData=True, mapper=_info(name=name, address=address))
    async with manager_stub(edge.target) as stub:
        response = await stub.MapperRegister(request, timeout=WAIT)
    assert {d.name for d in response.deviceList} <= {"thermo-1", "thermo-2"}
    assert await edge.mapper_names() == [name]
    assert edge.app.store is not None
    stored = await edge.app.store.get_mapper(name)
    assert stored is not None
    assert stored.address == address.decode().removeprefix("unix://").removeprefix("unix:")
    assert len(stored.address.encode()) <= 107


async def test_the_number_of_mappers_is_bounded(edge: Edge) -> None:
    """Past the bound a new mapper is RESOURCE_EXHAUSTED; a known one may always register again."""
    assert edge.app.dmi is not None
    assert edge.app.dmi.max_mappers == MAX_MAPPERS == 256
    edge.app.dmi.max_mappers = 3  # the same rule, at a size a test can fill
    async with manager_stub(edge.target) as stub:
        for i in range(3):
            request = register_request(f"m{i}", "modbus", f"/run/m{i}.sock", with_data=False)
            await stub.MapperRegister(request, timeout=WAIT)
        extra = register_request("m3", "modbus", "/run/m3.sock", with_data=False)
        with rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED) as details:
            await stub.MapperRegister(extra, timeout=WAIT)
        assert details == [
            "cannot register mapper m3: 3 mappers are registered, the most is 3 (delete one:"
            " twinplane delete mapper NAME)"
        ]
        assert await edge.mapper_names() == ["m0", "m1", "m2"]
        assert edge.links == ["m0", "m1", "m2"]
        # Re-registration at the bound, even with a new address, is allowed.
        again = register_request("m1", "modbus", "/run/m1-new.sock", with_data=True)
        await stub.MapperRegister(again, timeout=WAIT)
        assert edge.app.store is not None
        stored = await edge.app.store.get_mapper("m1")
        assert stored is not None
        assert stored.address == "/run/m1-new.sock"
        # Once one is deleted, the new one fits.
        assert await edge.app.dmi.delete_mapper("m0")
        await stub.MapperRegister(extra, timeout=WAIT)
    assert await edge.mapper_names() == ["m1", "m2", "m3"]
    assert edge.links == ["m1", "m2", "m3"]
    text = await edge.metrics()
    assert 'mapper="m0"' not in text
    assert 'mapper="m3"' in text


async def test_an_invalid_stored_mapper_is_forgotten_at_start(home: Path) -> None:
    """A row an older release stored unchecked is dropped at start; the valid ones are loaded."""
    async with running_app(home, MANIFESTS) as app:
        assert app.store is not None
        await app.store.put_mapper("ok-mapper", protocol="modbus", address="/run/ok.sock")
        await app.store.put_mapper("x" * 4096, protocol="modbus", address="/run/x.sock")
        await app.store.put_mapper("rel", protocol="modbus", address="rel.sock")
    async with running_app(home, MANIFESTS) as app:
        assert app.store is not None
        assert app.mappers is not None
        assert sorted(app.mappers.links) == ["ok-mapper"]
        assert [m.name for m in await app.store.list_mappers()] == ["ok-mapper"]
