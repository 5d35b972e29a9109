"""``DeviceMapperService`` on the mapper's Unix socket: what the device manager calls.

All seven RPCs, idempotent: ``RegisterDevice`` of a known device succeeds without change;
``UpdateDevice`` of an unknown device starts it; a change of desired values only is written
through the running client (no restart); ``RemoveDevice`` of an unknown device succeeds.
``GetDevice`` returns the device with its current twins (not mapper-framework's quirk of a JSON
text in ``reported.value``). Served with gRPC reflection, like KubeEdge's servers.

A twinplane mapper serves twinplane's ``Methods`` service on the same socket
(:mod:`twinplane.mapper.methods_service`), given as ``methods``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any, Final, NoReturn, Protocol

import grpc

from twinplane import owner_only
from twinplane.dmi.reflection import enable_reflection
from twinplane.dmi.v1beta1 import api_pb2, api_pb2_grpc
from twinplane.errors import TwinplaneError
from twinplane.mapper.instance import device_id
from twinplane.stream.v1 import stream_pb2_grpc

__all__ = ["METHODS_SERVICE", "SERVICE", "MapperHost", "MapperServer", "MapperServicer"]

log = logging.getLogger(__name__)

SERVICE: Final = "v1beta1.DeviceMapperService"
METHODS_SERVICE: Final = "twinplane.v1.Methods"
MODEL_WAIT_S: Final = 3.0
"""How long ``RegisterDevice`` waits for its model (mapper-framework: 3 tries 1 s apart)."""

Context = grpc.aio.ServicerContext[Any, Any]


class MapperHost(Protocol):
    """What the RPCs drive.

    :class:`~twinplane.mapper.runtime.MapperRuntime`, or another mapper (the load test's
    baseline, a Python imitation of mapper-framework's design).
    """

    models: dict[str, api_pb2.DeviceModel]

    def model_of(self, device: api_pb2.Device) -> api_pb2.DeviceModel | None:
        """The device's model, if known."""
        ...

    async def register_device(self, device: api_pb2.Device) -> bool:
        """Starts a device (a known one is left as it is)."""
        ...

    async def update_device(self, device: api_pb2.Device) -> str:
        """Applies a changed device."""
        ...

    async def remove_device(self, dev_id: str) -> bool:
        """Stops a device."""
        ...

    def get_device(self, dev_id: str) -> api_pb2.Device | None:
        """The device with its current twins."""
        ...


class MapperServicer(api_pb2_grpc.DeviceMapperServiceServicer):
    """The seven RPCs over a :class:`MapperHost`."""

    def __init__(self, runtime: MapperHost) -> None:
        self.runtime = runtime

    async def _fail(self, context: Context, err: TwinplaneError) -> NoReturn:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        raise AssertionError("unreachable")  # abort raises

    async def _model_for(self, device: api_pb2.Device, context: Context) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + MODEL_WAIT_S
        while self.runtime.model_of(device) is None:
            if loop.time() >= deadline:
                ref = device.spec.deviceModelReference
                await context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"deviceModel {ref} in {device.namespace or 'default'} namespace not found",
                )
            await asyncio.sleep(0.05)

    async def _check_device(self, request_device: api_pb2.Device, context: Context) -> None:
        if not request_device.name:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "device.name must be set")
        if not request_device.spec.deviceModelReference:
            # No model has an empty name (CreateDeviceModel refuses one): nothing to wait for.
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "device.spec.deviceModelReference must be set"
            )
        await self._model_for(request_device, context)

    async def RegisterDevice(  # noqa: N802 - the RPC's name
        self, request: api_pb2.RegisterDeviceRequest, context: Context
    ) -> api_pb2.RegisterDeviceResponse:
        """Starts a device (a known one is left running as it is)."""
        await self._check_device(request.device, context)
        try:
            await self.runtime.register_device(request.device)
        except TwinplaneError as err:
            await self._fail(context, err)
        return api_pb2.RegisterDeviceResponse(
            deviceName=request.device.name, deviceNamespace=request.device.namespace
        )

    async def UpdateDevice(  # noqa: N802
        self, request: api_pb2.UpdateDeviceRequest, context: Context
    ) -> api_pb2.UpdateDeviceResponse:
        """Applies a changed device (desired values only: no restart)."""
        await self._check_device(request.device, context)
        try:
            await self.runtime.update_device(request.device)
        except TwinplaneError as err:
            await self._fail(context, err)
        return api_pb2.UpdateDeviceResponse()

    async def RemoveDevice(  # noqa: N802
        self, request: api_pb2.RemoveDeviceRequest, context: Context
    ) -> api_pb2.RemoveDeviceResponse:
        """Stops a device cleanly (an unknown one is already gone)."""
        if not request.deviceName:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "deviceName must be set")
        await self.runtime.remove_device(device_id(request.deviceNamespace, request.deviceName))
        return api_pb2.RemoveDeviceResponse()

    async def CreateDeviceModel(  # noqa: N802
        self, request: api_pb2.CreateDeviceModelRequest, context: Context
    ) -> api_pb2.CreateDeviceModelResponse:
        """Keeps a model."""
        model = request.model
        if not model.name:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "model.name must be set")
        self.runtime.models[device_id(model.namespace, model.name)] = model
        return api_pb2.CreateDeviceModelResponse(
            deviceModelName=model.name, deviceModelNamespace=model.namespace
        )

    async def UpdateDeviceModel(  # noqa: N802
        self, request: api_pb2.UpdateDeviceModelRequest, context: Context
    ) -> api_pb2.UpdateDeviceModelResponse:
        """Replaces a model (kept even if it was unknown)."""
        model = request.model
        if not model.name:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "model.name must be set")
        self.runtime.models[device_id(model.namespace, model.name)] = model
        return api_pb2.UpdateDeviceModelResponse()

    async def RemoveDeviceModel(  # noqa: N802
        self, request: api_pb2.RemoveDeviceModelRequest, context: Context
    ) -> api_pb2.RemoveDeviceModelResponse:
        """Forgets a model."""
        del context
        self.runtime.models.pop(device_id(request.modelNamespace, request.modelName), None)
        return api_pb2.RemoveDeviceModelResponse()

    async def GetDevice(  # noqa: N802
        self, request: api_pb2.GetDeviceRequest, context: Context
    ) -> api_pb2.GetDeviceResponse:
        """The device with its current twins."""
        dev_id = device_id(request.deviceNamespace, request.deviceName)
        device = self.runtime.get_device(dev_id)
        if device is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"device {dev_id} not found")
        return api_pb2.GetDeviceResponse(device=device)


class MapperServer:
    """The gRPC server on the mapper's socket.

    Args:
        runtime: What ``DeviceMapperService`` drives.
        methods: twinplane's ``Methods`` service, served beside it (``None``: not served, the
            device manager gets ``UNIMPLEMENTED`` as from a plain KubeEdge mapper).
    """

    def __init__(
        self, runtime: MapperHost, *, methods: stream_pb2_grpc.MethodsServicer | None = None
    ) -> None:
        self.runtime = runtime
        self.methods = methods
        self.server: grpc.aio.Server | None = None
        self.socket_path: Path | None = None

    async def start(self, socket_path: str | os.PathLike[str]) -> None:
        """Listens on ``socket_path`` (a stale socket file is replaced)."""
        path = Path(socket_path)
        await asyncio.to_thread(owner_only.prepare_socket, path)
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
        api_pb2_grpc.add_DeviceMapperServiceServicer_to_server(MapperServicer(self.runtime), server)
        services = [SERVICE]
        if self.methods is not None:
            stream_pb2_grpc.add_MethodsServicer_to_server(self.methods, server)
            services.append(METHODS_SERVICE)
        enable_reflection(server, *services)
        with owner_only.creating(path):  # mode 0600: only its owner's device manager may call
            server.add_insecure_port(f"unix:{path}")
        await server.start()
        self.server = server
        self.socket_path = path
        log.info("mapper server listening", extra={"socket": str(path)})

    async def stop(self, grace: float = 0.5) -> None:
        """Stops serving and removes the socket file."""
        if self.server is not None:
            await self.server.stop(grace)
            self.server = None
        if self.socket_path is not None:
            await asyncio.to_thread(self.socket_path.unlink, missing_ok=True)
