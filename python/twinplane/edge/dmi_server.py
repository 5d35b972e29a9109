"""The DMI v1beta1 ``DeviceManagerService`` server, over a Unix socket (what mappers call).

``ReportDeviceStatus`` takes the request as raw bytes and hands them to the twin engine, which
decodes, validates and applies them in Rust (no Python object per twin). Admission control is a
token bucket with a high default budget plus a cap on concurrent calls; a call over the budget
is answered at once with ``RESOURCE_EXHAUSTED``. Bad requests get a precise status and change
nothing: ``NOT_FOUND`` (unknown device), ``INVALID_ARGUMENT`` (unknown property, a value that
does not fit the property type, a malformed message — with the field and byte offset where
decoding failed, for every RPC —, an empty protocol or state, a ``MapperInfo`` field out of
bounds), ``RESOURCE_EXHAUSTED`` (over budget, a message over the 4 MiB limit, a new mapper past
:data:`~twinplane.edge.mappers.MAX_MAPPERS`).

Requests are decoded from raw bytes in the handlers (:func:`twinplane.dmi.wire.decode_request`;
``ReportDeviceStatus`` in the twin engine), so that a message that does not parse is answered
like any other bad request instead of gRPC's ``UNKNOWN``.

The same server serves twinplane's fast path, ``twinplane.v1.TwinStream``
(:mod:`twinplane.edge.twin_stream`): many devices' reports per stream message, same budget.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any, NoReturn

import grpc

from twinplane import owner_only
from twinplane.dmi.convert import device_to_proto, model_to_proto
from twinplane.dmi.reflection import enable_reflection
from twinplane.dmi.v1beta1 import api_pb2
from twinplane.dmi.wire import decode_request
from twinplane.edge.admission import TokenBucket
from twinplane.edge.core import EdgeCore, now_ms
from twinplane.edge.mapper_info import MAX_MAPPERS, MapperInfo
from twinplane.edge.mappers import MapperDirectory
from twinplane.edge.twin_stream import SERVICE as STREAM_SERVICE  # fast path
from twinplane.edge.twin_stream import TwinStreamService  # fast path
from twinplane.errors import (
    SpecError,
    TwinplaneError,
    UnknownDeviceError,
    UnknownPropertyError,
    ValueTypeError,
)

log = logging.getLogger(__name__)

SERVICE = "v1beta1.DeviceManagerService"
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""Receive limit: grpc-go's default, which KubeEdge peers use on both sides."""

_EMPTY = b""


def _status_of(err: TwinplaneError) -> grpc.StatusCode:
    if isinstance(err, UnknownDeviceError):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(err, UnknownPropertyError | ValueTypeError | SpecError):
        return grpc.StatusCode.INVALID_ARGUMENT
    return grpc.StatusCode.INTERNAL


class DmiServer:
    """``DeviceManagerService`` for one :class:`EdgeCore`.

    Args:
        core: The registry and twins.
        mappers: The mapper directory (lifecycle toward mappers).
        rate: Admitted calls per second (0: unlimited).
        burst: Calls admitted at once above the rate.
        max_concurrent: Most calls in progress at once.
        max_mappers: Most mappers registered at once.
    """

    def __init__(  # noqa: PLR0913 - keyword-only settings
        self,
        core: EdgeCore,
        mappers: MapperDirectory,
        *,
        rate: float = 200_000.0,
        burst: int = 20_000,
        max_concurrent: int = 1_000,
        max_mappers: int = MAX_MAPPERS,
    ) -> None:
        self.core = core
        self.mappers = mappers
        self.max_mappers = max_mappers
        # Registering and deleting mappers one at a time: the table and the directory agree.
        self._mappers_lock = asyncio.Lock()
        self.bucket = TokenBucket(rate, burst)
        self.max_concurrent = max_concurrent
        self.server: grpc.aio.Server | None = None
        self.socket_path: Path | None = None
        # --- fast path (twinplane.v1.TwinStream, docs/edge.md): same server, same budget
        self.stream = TwinStreamService(
            core.ingest_dmi_report,
            self.bucket,
            _status_of,
            write_outcomes=core.record_write_outcomes,
            comm_errors=core.record_comm_errors,
        )
        # --- end fast path

    async def start(self, socket_path: str | os.PathLike[str]) -> None:
        """Listens on ``socket_path`` (a stale socket file is replaced)."""
        path = Path(socket_path)
        await asyncio.to_thread(owner_only.prepare_socket, path)  # stale ones go, as in EdgeCore
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ],
            maximum_concurrent_rpcs=self.max_concurrent,
        )
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            # Requests arrive as raw bytes: each handler decodes its own.
            "MapperRegister": grpc.unary_unary_rpc_method_handler(
                self.mapper_register,
                response_serializer=api_pb2.MapperRegisterResponse.SerializeToString,
            ),
            "ReportDeviceStatus": grpc.unary_unary_rpc_method_handler(
                self.report_device_status
            ),  # bytes out too
            "ReportDeviceStates": grpc.unary_unary_rpc_method_handler(self.report_device_states),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        server.add_generic_rpc_handlers((self.stream.handler(),))  # fast path
        enable_reflection(server, SERVICE, STREAM_SERVICE)
        with owner_only.creating(path):  # mode 0600: only its owner's mappers may call
            server.add_insecure_port(f"unix:{path}")
        await server.start()
        self.server = server
        self.socket_path = path
        log.info("DMI server listening", extra={"socket": str(path)})

    async def stop(self, grace: float = 1.0) -> None:
        """Stops serving and removes the socket file."""
        if self.server is not None:
            await self.server.stop(grace)
            self.server = None
        if self.socket_path is not None:
            await asyncio.to_thread(self.socket_path.unlink, missing_ok=True)

    async def _admit(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if not self.bucket.try_acquire():
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"over the DMI admission budget ({self.bucket.rate:g} calls/s); retry later",
            )

    async def _fail(
        self, context: grpc.aio.ServicerContext[Any, Any], err: TwinplaneError
    ) -> NoReturn:
        await context.abort(_status_of(err), str(err))
        raise AssertionError("unreachable")  # abort raises

    async def mapper_register(
        self, data: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> api_pb2.MapperRegisterResponse:
        """Registers a mapper; with ``withData`` returns its devices and their models."""
        await self._admit(context)
        request = await decode_request(api_pb2.MapperRegisterRequest, data, context)
        if not request.HasField("mapper"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "mapper must be set")
        try:
            info = MapperInfo.from_dmi(request.mapper)
        except SpecError as err:
            await self._fail(context, err)
        async with self._mappers_lock:
            if info.name not in self.mappers.links and len(self.mappers.links) >= self.max_mappers:
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"cannot register mapper {info.name}: {len(self.mappers.links)} mappers are"
                    f" registered, the most is {self.max_mappers} (delete one: twinplane delete"
                    " mapper NAME)",
                )
            await self.core.store.put_mapper(
                info.name,
                protocol=info.protocol,
                address=info.address,
                version=info.version,
                api_version=info.api_version,
                state=info.state,
            )
            link = self.mappers.register(info, with_data=request.withData)
        response = api_pb2.MapperRegisterResponse()
        if request.withData:
            for device, model in self.mappers.owned(link):
                try:
                    pb = device_to_proto(device, model, self.core.desired_values(device.id))
                except TwinplaneError:
                    log.exception("device %s cannot be sent to mapper %s", device.id, info.name)
                    continue
                response.modelList.append(model_to_proto(model))
                response.deviceList.append(pb)
            link.mark_sent(response.modelList, response.deviceList)
        log.info(
            "mapper registered",
            extra={
                "mapper": info.name,
                "protocol": info.protocol,
                "devices": len(response.deviceList),
            },
        )
        self.core.events.emit(
            type="mapper",
            reason="MapperRegistered",
            device=info.name,
            message=f"mapper {info.name} ({info.protocol}) registered at {info.address}",
            body={"protocol": info.protocol, "address": info.address, "version": info.version},
        )
        return response

    async def delete_mapper(self, name: str) -> bool:
        """Forgets a registered mapper (its row, its link); whether it was registered.

        The mapper is contacted no more; its devices go to another mapper of its protocol, if
        one is registered (:meth:`MapperDirectory.unregister`). It may register again.
        """
        async with self._mappers_lock:
            stored = await self.core.store.delete_mapper(name)
            linked = await self.mappers.unregister(name)
        if stored or linked:
            log.info("mapper deleted", extra={"mapper": name})
            self.core.events.emit(
                type="mapper",
                reason="MapperDeleted",
                device=name,
                message=f"mapper {name} deleted: it is contacted no more",
            )
        return stored or linked

    async def report_device_status(
        self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        """Applies reported twins (the raw ``ReportDeviceStatusRequest``) through the engine."""
        await self._admit(context)
        try:
            self.core.ingest_dmi_report(request)
        except TwinplaneError as err:
            await self._fail(context, err)
        return _EMPTY

    async def report_device_states(
        self, data: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        """Records a device state (``online``, ``offline``, ``ok``, ``unknown``, ...)."""
        await self._admit(context)
        request = await decode_request(api_pb2.ReportDeviceStatesRequest, data, context)
        if not request.deviceName or not request.state:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "deviceName and state must be set"
            )
        device_id = f"{request.deviceNamespace or 'default'}/{request.deviceName}"
        try:
            await self.core.report_state(device_id, request.state)
        except TwinplaneError as err:
            await self._fail(context, err)
        return _EMPTY


__all__ = ["DmiServer", "now_ms"]
