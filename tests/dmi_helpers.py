"""DMI v1beta1 helpers shared by the tests: request builders, a client, a server on a socket.

Importable as ``dmi_helpers`` from every test module, like ``reference`` (see ``conftest.py``).
Clients take a gRPC target such as ``unix:/path/to/dmi.sock``.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import grpc

from twinplane.dmi.reflection import enable_reflection
from twinplane.dmi.v1beta1 import api_pb2, api_pb2_grpc

MAPPER_METADATA = {"timestamp": "", "type": ""}
"""The metadata mapper-framework puts on every twin side it reports: empty timestamp and type."""


def reported_twin(
    prop: str,
    value: str,
    metadata: Mapping[str, str] | None = None,
    observed: api_pb2.TwinProperty | None = None,
) -> api_pb2.Twin:
    """A twin reporting ``value`` (with ``metadata``), and ``observedDesired`` when given."""
    reported = api_pb2.TwinProperty(value=value, metadata=metadata or {})
    if observed is None:
        return api_pb2.Twin(propertyName=prop, reported=reported)
    return api_pb2.Twin(propertyName=prop, reported=reported, observedDesired=observed)


def status_request(
    device: str, *twins: api_pb2.Twin, namespace: str = "default"
) -> api_pb2.ReportDeviceStatusRequest:
    """One ``ReportDeviceStatusRequest`` carrying ``twins`` for ``namespace/device``."""
    return api_pb2.ReportDeviceStatusRequest(
        deviceName=device,
        deviceNamespace=namespace,
        reportedDevice=api_pb2.DeviceStatus(twins=twins),
    )


def report_request(
    device: str,
    values: Mapping[str, str],
    *,
    namespace: str = "default",
    metadata: Mapping[str, str] | None = None,
    observed: api_pb2.TwinProperty | None = None,
) -> api_pb2.ReportDeviceStatusRequest:
    """One ``ReportDeviceStatusRequest``: a twin per value (see :func:`reported_twin`)."""
    twins = (reported_twin(prop, value, metadata, observed) for prop, value in values.items())
    return status_request(device, *twins, namespace=namespace)


def register_request(
    name: str, protocol: str, address: str, *, with_data: bool
) -> api_pb2.MapperRegisterRequest:
    """``MapperRegister`` exactly as mapper-framework's ``RegisterMapper`` fills it."""
    return api_pb2.MapperRegisterRequest(
        withData=with_data,
        mapper=api_pb2.MapperInfo(
            name=name,
            version="v1.19.0",
            api_version="v1.0.0",
            protocol=protocol,
            address=address.encode(),
            state="ok",
        ),
    )


@contextlib.asynccontextmanager
async def manager_stub(target: str) -> AsyncIterator[api_pb2_grpc.DeviceManagerServiceStub]:
    """A ``DeviceManagerService`` client on one channel to ``target``, for many calls."""
    async with grpc.aio.insecure_channel(target) as channel:
        yield api_pb2_grpc.DeviceManagerServiceStub(channel)


async def report(
    target: str,
    device: str,
    values: Mapping[str, str],
    *,
    metadata: Mapping[str, str] | None = None,
    observed: api_pb2.TwinProperty | None = None,
) -> None:
    """``ReportDeviceStatus`` for ``default/<device>`` (see :func:`report_request`)."""
    request = report_request(device, values, metadata=metadata, observed=observed)
    async with manager_stub(target) as stub:
        await stub.ReportDeviceStatus(request, timeout=5)


async def report_state(target: str, device: str, state: str) -> None:
    """``ReportDeviceStates`` for ``default/<device>``."""
    request = api_pb2.ReportDeviceStatesRequest(
        deviceName=device, deviceNamespace="default", state=state
    )
    async with manager_stub(target) as stub:
        await stub.ReportDeviceStates(request, timeout=5)


@contextlib.asynccontextmanager
async def serve_dmi(
    manager: api_pb2_grpc.DeviceManagerServiceServicer,
    mapper: api_pb2_grpc.DeviceMapperServiceServicer | None,
    *reflected: str,
) -> AsyncIterator[str]:
    """The DMI services on a ``grpc.aio`` server over a Unix socket; yields the client target.

    Without a ``mapper`` only ``DeviceManagerService`` is served. With service names in
    ``reflected``, the server also serves reflection for them.
    """
    # A short directory: a socket path must fit in sun_path (108 bytes).
    with tempfile.TemporaryDirectory(prefix="tp-dmi-") as tmp:
        target = f"unix:{Path(tmp) / 'dmi.sock'}"
        server = grpc.aio.server()
        api_pb2_grpc.add_DeviceManagerServiceServicer_to_server(manager, server)
        if mapper is not None:
            api_pb2_grpc.add_DeviceMapperServiceServicer_to_server(mapper, server)
        if reflected:
            enable_reflection(server, *reflected)
        server.add_insecure_port(target)
        await server.start()
        try:
            yield target
        finally:
            await server.stop(grace=None)


class SocketMapper(api_pb2_grpc.DeviceMapperServiceServicer):
    """A ``DeviceMapperService`` test double served on its own Unix socket.

    Subclasses set :attr:`socket_path` and override the RPCs they answer.
    """

    socket_path: Path
    _server: grpc.aio.Server | None = None

    async def start(self) -> None:
        """Listens (removing a stale socket file first, as mapper-framework does)."""
        self.socket_path.unlink(missing_ok=True)
        server = grpc.aio.server()
        api_pb2_grpc.add_DeviceMapperServiceServicer_to_server(self, server)
        server.add_insecure_port(f"unix:{self.socket_path}")
        await server.start()
        self._server = server

    async def stop(self) -> None:
        """Stops listening and removes the socket file."""
        if self._server is not None:
            await self._server.stop(None)
            self._server = None
        self.socket_path.unlink(missing_ok=True)
