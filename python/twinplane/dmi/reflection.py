"""gRPC server reflection for twinplane's DMI servers.

KubeEdge's EdgeCore and Go mappers register reflection on their DMI servers, so ``grpcurl`` and
similar tools can list and call the services without the ``.proto`` file. twinplane's servers do
the same. grpcio-reflection serves ``grpc.reflection.v1alpha.ServerReflection``; grpcurl falls
back to it when the newer ``v1`` name is not served.
"""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha import reflection

__all__ = ["enable_reflection"]


def enable_reflection(server: grpc.aio.Server, *service_names: str) -> None:
    """Serve reflection on ``server`` for ``service_names`` and for the reflection service itself.

    Call it before ``server.start()``. The services' ``_pb2`` modules must be imported, so that
    their descriptors are in the default descriptor pool reflection answers from.

    Args:
        server: The server, before it starts.
        *service_names: Full service names, e.g. ``v1beta1.DeviceManagerService``.

    Raises:
        ValueError: A name is not a service known to the default descriptor pool.
    """
    pool = descriptor_pool.Default()
    for name in service_names:
        try:
            pool.FindServiceByName(name)
        except KeyError:
            raise ValueError(
                f"unknown gRPC service {name!r}: give its full name (package.Service) and "
                "import its _pb2 module first"
            ) from None
    names = tuple(dict.fromkeys((*service_names, reflection.SERVICE_NAME)))  # without repeats
    reflection.enable_server_reflection(names, server)
