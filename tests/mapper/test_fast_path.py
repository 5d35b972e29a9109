"""The mapper's fast path: TwinStream toward twinplane, unary DMI toward a plain DMI peer."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from mapper_helpers import manifests, mapper_config, running_mapper, virtual_device
from mapper_helpers import virtual_model as vmodel

from edge_helpers import running_app, short_home
from twinplane.dmi.convert import device_to_proto, model_to_proto
from twinplane.dmi.v1beta1 import api_pb2, api_pb2_grpc
from twinplane.drivers.virtual import VirtualDriver
from twinplane.manifests.load import load_strict
from twinplane.mapper.app import MapperApp
from twinplane.mapper.fast_path import FastPath, FastPathState
from twinplane.mapper.reporter import Reporter
from twinplane.stream.v1 import stream_pb2
from waits import until

Ctx = grpc.aio.ServicerContext[Any, Any]
DOCS = manifests(vmodel(), virtual_device("v1"), virtual_device("v2"))


def parts_of(mapper: MapperApp) -> tuple[Reporter, FastPath]:
    """The mapper's reporter and its fast path."""
    assert mapper.reporter is not None
    assert mapper.reporter.fast_path is not None
    return mapper.reporter, mapper.reporter.fast_path


class DmiOnlyManager(api_pb2_grpc.DeviceManagerServiceServicer):
    """A plain DMI v1beta1 device manager (like KubeEdge EdgeCore): no TwinStream."""

    def __init__(self) -> None:
        loaded = load_strict(DOCS)
        (model,) = loaded.models
        self.register = api_pb2.MapperRegisterResponse()
        for device in loaded.devices:
            self.register.modelList.append(model_to_proto(model))
            self.register.deviceList.append(device_to_proto(device, model))
        self.reports: list[api_pb2.ReportDeviceStatusRequest] = []

    async def MapperRegister(  # noqa: N802 - the generated servicer's name
        self, request: api_pb2.MapperRegisterRequest, context: Ctx
    ) -> api_pb2.MapperRegisterResponse:
        """Hands out the two virtual devices."""
        return self.register

    async def ReportDeviceStatus(  # noqa: N802
        self, request: api_pb2.ReportDeviceStatusRequest, context: Ctx
    ) -> api_pb2.ReportDeviceStatusResponse:
        """Records the report."""
        self.reports.append(request)
        return api_pb2.ReportDeviceStatusResponse()

    async def ReportDeviceStates(  # noqa: N802
        self, request: api_pb2.ReportDeviceStatesRequest, context: Ctx
    ) -> api_pb2.ReportDeviceStatesResponse:
        """Accepts the state."""
        return api_pb2.ReportDeviceStatesResponse()

    def devices_reported(self) -> set[str]:
        """The devices with at least one twin reported."""
        return {r.deviceName for r in self.reports if r.reportedDevice.twins}


def broken_stream() -> grpc.GenericRpcHandler:
    """A TwinStream that offers the fast path and then fails every Report stream."""

    async def capabilities(request: object, context: Ctx) -> stream_pb2.CapabilitiesResponse:
        return stream_pb2.CapabilitiesResponse(fast_path=True, max_batch=100)

    async def report(requests: AsyncIterator[object], context: Ctx) -> None:
        async for _ in requests:
            await context.abort(grpc.StatusCode.INTERNAL, "stream broken on purpose")

    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Capabilities": grpc.unary_unary_rpc_method_handler(
            capabilities,
            request_deserializer=stream_pb2.CapabilitiesRequest.FromString,
            response_serializer=stream_pb2.CapabilitiesResponse.SerializeToString,
        ),
        "Report": grpc.stream_stream_rpc_method_handler(
            report, response_serializer=stream_pb2.ReportAck.SerializeToString
        ),
    }
    return grpc.method_handlers_generic_handler("twinplane.v1.TwinStream", handlers)


@contextlib.asynccontextmanager
async def serve(manager: DmiOnlyManager, *extra: grpc.GenericRpcHandler) -> AsyncIterator[Path]:
    """``manager`` (and ``extra`` services) on a Unix socket; yields the socket path."""
    with tempfile.TemporaryDirectory(prefix="tp-fp-") as tmp:
        sock = Path(tmp) / "dmi.sock"
        server = grpc.aio.server()
        api_pb2_grpc.add_DeviceManagerServiceServicer_to_server(manager, server)
        if extra:
            server.add_generic_rpc_handlers(extra)
        server.add_insecure_port(f"unix:{sock}")
        await server.start()
        try:
            yield sock
        finally:
            await server.stop(grace=None)


async def test_mapper_uses_the_fast_path_against_twinplane() -> None:
    """Against twinplane, reports go as TwinStream batches and no unary call is made."""
    with short_home() as home:
        async with running_app(home, DOCS) as app:
            assert app.core is not None
            assert app.dmi is not None
            core, stream = app.core, app.dmi.stream
            cfg = mapper_config(home, app.config.socket_path)
            async with running_mapper(cfg, VirtualDriver()) as mapper:
                reporter, fast = parts_of(mapper)
                assert fast.state is FastPathState.READY
                assert fast.max_batch == stream.max_batch
                await until(lambda: reporter.stats.stream_batches >= 3, "three stream batches")
                await until(
                    lambda: all(
                        core.twins(f"default/{d}")["count"]["reported"] for d in ("v1", "v2")
                    ),
                    "the counts of v1 and v2",
                )
                assert stream.stats.reports >= 2
                assert reporter.stats.status_calls == 0
                assert reporter.stats.stream_fallbacks == 0


async def test_mapper_falls_back_to_unary_against_a_dmi_only_peer() -> None:
    """A peer without TwinStream (UNIMPLEMENTED): unary ReportDeviceStatus, unchanged."""
    manager = DmiOnlyManager()
    async with serve(manager) as sock:
        with short_home() as home:
            async with running_mapper(mapper_config(home, sock), VirtualDriver()) as mapper:
                reporter, fast = parts_of(mapper)
                assert fast.state is FastPathState.ABSENT
                await until(lambda: manager.devices_reported() == {"v1", "v2"}, "unary reports")
                # the peer has the calls; the reporter counts each once its answer is back
                await until(lambda: reporter.stats.status_calls >= 2, "two answered unary calls")
                assert reporter.stats.stream_batches == 0


async def test_stream_failure_falls_back_to_unary_and_retries_later() -> None:
    """A fast path that breaks: the batch goes through unary DMI, the stream is retried later."""
    manager = DmiOnlyManager()
    async with serve(manager, broken_stream()) as sock:
        with short_home() as home:
            async with running_mapper(mapper_config(home, sock), VirtualDriver()) as mapper:
                reporter, fast = parts_of(mapper)
                await until(lambda: reporter.stats.stream_fallbacks >= 1, "a fallback")
                await until(lambda: manager.devices_reported() == {"v1", "v2"}, "unary reports")
                await until(lambda: fast.failures >= 2, "a second attempt")
                assert reporter.stats.stream_batches == 0


async def test_concurrent_batches_share_the_stream_in_turn() -> None:
    """Batches sent at once (a window of 4) are written one at a time and all acked.

    gRPC refuses a second write on a stream while one is pending (it fails the call with
    GRPC_CALL_ERROR_TOO_MANY_OPERATIONS); seen at 10,000 devices before writes took turns.
    """
    with short_home() as home:
        async with running_app(home, DOCS) as app:
            assert app.core is not None
            channel = grpc.aio.insecure_channel(f"unix:{app.config.socket_path}")
            fast = FastPath(channel, window=4)
            try:
                assert await fast.negotiate("test")
                batches = []
                for i in range(24):
                    twin = api_pb2.Twin(
                        propertyName="count",
                        reported=api_pb2.TwinProperty(
                            value=str(i), metadata={"timestamp": "1000", "type": "int"}
                        ),
                    )
                    request = api_pb2.ReportDeviceStatusRequest(
                        deviceName="v1",
                        deviceNamespace="default",
                        reportedDevice=api_pb2.DeviceStatus(twins=[twin]),
                    )
                    batches.append([request.SerializeToString()] * 50)
                acks = await asyncio.gather(*(fast.send(b) for b in batches))
                assert [a.applied for a in acks] == [50] * 24
                assert fast.failures == 0
                assert fast.state is FastPathState.READY
            finally:
                await fast.close()
                await channel.close()
