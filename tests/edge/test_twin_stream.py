"""The fast path ``twinplane.v1.TwinStream`` of a real device manager, over its DMI socket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from dmi_helpers import report_request
from edge_helpers import RunningEdge, device_yaml, running_app, thermo_model
from twinplane.stream.v1 import stream_pb2

WAIT = 10.0
"""Seconds any single wait may take before the test fails."""
DEVICES = 60
MANIFESTS = "---\n".join(
    [
        thermo_model("temperature", "setpoint"),
        *(device_yaml(f"t{i}", "thermo-model") for i in range(DEVICES)),
    ]
)
REPORT = "/twinplane.v1.TwinStream/Report"
CAPABILITIES = "/twinplane.v1.TwinStream/Capabilities"
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]

Stream = grpc.aio.StreamStreamCall[stream_pb2.ReportBatch, stream_pb2.ReportAck]


@dataclass
class Edge(RunningEdge):
    """A running device manager with :data:`MANIFESTS` applied."""

    def reported(self, device: str, prop: str) -> str | None:
        """A twin's reported value (``None`` before the first report)."""
        side = self.core.twins(f"default/{device}")[prop]["reported"]
        return None if side is None else side["value"]


@pytest.fixture
async def edge(home: Path) -> AsyncIterator[Edge]:
    """A device manager with :data:`DEVICES` thermostats."""
    async with running_app(home, MANIFESTS) as app:
        yield Edge(app)


@contextlib.asynccontextmanager
async def stream(target: str) -> AsyncIterator[Stream]:
    """An open ``Report`` stream to ``target``; writing is closed afterwards."""
    async with grpc.aio.insecure_channel(target) as channel:
        report: grpc.aio.StreamStreamMultiCallable[stream_pb2.ReportBatch, stream_pb2.ReportAck]
        report = channel.stream_stream(
            REPORT,
            request_serializer=stream_pb2.ReportBatch.SerializeToString,
            response_deserializer=stream_pb2.ReportAck.FromString,
        )
        call = report(timeout=WAIT)
        yield call
        await call.done_writing()


async def exchange(call: Stream, seq: int, reports: list[bytes]) -> stream_pb2.ReportAck:
    """Writes one batch and reads its ack."""
    async with asyncio.timeout(WAIT):
        await call.write(stream_pb2.ReportBatch(seq=seq, reports=reports))
        ack = await call.read()
    assert isinstance(ack, stream_pb2.ReportAck)
    return ack


def entry(device: str, **values: str) -> bytes:
    """One serialized ``ReportDeviceStatusRequest`` for ``default/<device>``."""
    return report_request(device, values).SerializeToString()


async def test_one_message_applies_many_devices(edge: Edge) -> None:
    """A batch of one report per device applies them all and acks its seq."""
    reports = [entry(f"t{i}", temperature=f"{i}.5", setpoint=str(i)) for i in range(DEVICES)]
    async with stream(edge.target) as call:
        ack = await exchange(call, 7, reports)
    assert (ack.seq, ack.applied, list(ack.errors)) == (7, DEVICES, [])
    assert [edge.reported(f"t{i}", "setpoint") for i in range(DEVICES)] == [
        str(i) for i in range(DEVICES)
    ]
    assert edge.reported("t59", "temperature") == "59.5"
    assert edge.app.dmi is not None
    assert edge.app.dmi.stream.stats.reports == DEVICES


async def test_a_bad_entry_is_rejected_alone_with_its_index_and_code(edge: Edge) -> None:
    """Unknown device, bad value, malformed bytes: each rejected by index; the others apply."""
    reports = [
        entry("t1", setpoint="11"),
        entry("nope", setpoint="1"),
        entry("t2", setpoint="2.5"),
        b"\xff\xff\xff",
        entry("t3", setpoint="33"),
    ]
    async with stream(edge.target) as call:
        ack = await exchange(call, 1, reports)
        again = await exchange(call, 2, [entry("t2", setpoint="22")])  # the stream stays usable
    assert ack.seq == 1
    assert ack.applied == 2
    assert [(e.index, e.code) for e in ack.errors] == [
        (1, NOT_FOUND),
        (2, INVALID_ARGUMENT),
        (3, INVALID_ARGUMENT),
    ]
    assert "default/nope" in ack.errors[0].message
    assert '"2.5"' in ack.errors[1].message
    assert (again.seq, again.applied) == (2, 1)
    assert [edge.reported(d, "setpoint") for d in ("t1", "t2", "t3")] == ["11", "22", "33"]


async def test_pipelined_batches_are_acked_in_order_with_their_seq(edge: Edge) -> None:
    """Several batches written before reading: one ack each, in order, each with its seq."""
    seqs = [100, 101, 102, 205]
    async with stream(edge.target) as call:
        async with asyncio.timeout(WAIT):
            for n, seq in enumerate(seqs):
                await call.write(
                    stream_pb2.ReportBatch(seq=seq, reports=[entry(f"t{n}", setpoint=str(seq))])
                )
            acks = [await call.read() for _ in seqs]
    assert [a.seq for a in acks if isinstance(a, stream_pb2.ReportAck)] == seqs
    assert edge.reported("t3", "setpoint") == "205"


async def test_capabilities_and_reflection_offer_the_fast_path(edge: Edge) -> None:
    """Capabilities says fast_path with a max_batch; reflection lists twinplane.v1.TwinStream."""
    async with grpc.aio.insecure_channel(edge.target) as channel:
        caps = await channel.unary_unary(
            CAPABILITIES,
            request_serializer=stream_pb2.CapabilitiesRequest.SerializeToString,
            response_deserializer=stream_pb2.CapabilitiesResponse.FromString,
        )(stream_pb2.CapabilitiesRequest(mapper="m"), timeout=WAIT)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = [a async for a in stub.ServerReflectionInfo(iter([request]), timeout=WAIT)]
    assert caps.fast_path
    assert caps.max_batch >= 100
    names = {service.name for service in answers[0].list_services_response.service}
    assert {"twinplane.v1.TwinStream", "v1beta1.DeviceManagerService"} <= names


async def test_admission_budget_counts_one_token_per_entry(home: Path) -> None:
    """Over the shared budget (or max_batch) every entry is RESOURCE_EXHAUSTED; stream stays."""
    async with running_app(home, MANIFESTS, dmi_rate=1, dmi_burst=5) as app:
        edge = Edge(app)
        assert app.dmi is not None
        assert app.dmi.stream.max_batch == 5
        async with stream(edge.target) as call:
            big = await exchange(call, 1, [entry(f"t{i}", setpoint="1") for i in range(6)])
            fits = await exchange(call, 2, [entry(f"t{i}", setpoint="2") for i in range(4)])
            over = await exchange(call, 3, [entry(f"t{i}", setpoint="3") for i in range(4)])
    assert big.applied == 0
    assert {e.code for e in big.errors} == {RESOURCE_EXHAUSTED}
    assert [e.index for e in big.errors] == list(range(6))
    assert (fits.applied, list(fits.errors)) == (4, [])
    assert over.applied == 0
    assert len(over.errors) == 4
    assert "admission budget" in over.errors[0].message
    assert edge.reported("t0", "setpoint") == "2"
