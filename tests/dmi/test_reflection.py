"""gRPC server reflection on a real ``grpc.aio`` server over a Unix socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import (
    proto_reflection_descriptor_database,
    reflection_pb2,
    reflection_pb2_grpc,
)

from dmi_helpers import serve_dmi
from twinplane.dmi.reflection import enable_reflection
from twinplane.dmi.v1beta1 import api_pb2, api_pb2_grpc

MANAGER = "v1beta1.DeviceManagerService"
MAPPER = "v1beta1.DeviceMapperService"
REFLECTION = "grpc.reflection.v1alpha.ServerReflection"


@pytest.fixture
async def target() -> AsyncIterator[str]:
    """Both DMI services (unimplemented base servicers) with reflection, over a Unix socket."""
    manager = api_pb2_grpc.DeviceManagerServiceServicer()
    mapper = api_pb2_grpc.DeviceMapperServiceServicer()
    async with serve_dmi(manager, mapper, MANAGER, MAPPER) as dmi_target:
        yield dmi_target


async def _ask(
    target: str, *requests: reflection_pb2.ServerReflectionRequest
) -> list[reflection_pb2.ServerReflectionResponse]:
    """Send reflection requests on one stream, as grpcurl does, and collect the answers."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(iter(requests), timeout=5)
        return [response async for response in call]


async def test_lists_both_dmi_services(target: str) -> None:
    """list_services names both DMI services and the reflection service."""
    (answer,) = await _ask(target, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = [service.name for service in answer.list_services_response.service]
    assert sorted(names) == sorted([MANAGER, MAPPER, REFLECTION])


async def test_file_containing_service(target: str) -> None:
    """A service symbol resolves to dmi/v1beta1/api.proto and its google/protobuf/any.proto."""
    (answer,) = await _ask(
        target, reflection_pb2.ServerReflectionRequest(file_containing_symbol=MAPPER)
    )
    files = {}
    for raw in answer.file_descriptor_response.file_descriptor_proto:
        file = descriptor_pb2.FileDescriptorProto.FromString(raw)
        files[file.name] = file
    assert set(files) == {"dmi/v1beta1/api.proto", "google/protobuf/any.proto"}
    api = files["dmi/v1beta1/api.proto"]
    assert api.package == "v1beta1"
    assert [s.name for s in api.service] == ["DeviceManagerService", "DeviceMapperService"]


def _rebuild_schema(target: str) -> dict[str, list[tuple[str, str, str]]]:
    """What a reflection client (grpcurl-style) learns: every method with its message types."""
    with grpc.insecure_channel(target) as channel:
        database = proto_reflection_descriptor_database.ProtoReflectionDescriptorDatabase(channel)
        pool = descriptor_pool.DescriptorPool(database)
        schema = {}
        for name in database.get_services():
            service = pool.FindServiceByName(name)
            schema[name] = [
                (m.name, m.input_type.full_name, m.output_type.full_name) for m in service.methods
            ]
        # The message definitions come across whole: field numbers included.
        device_property = pool.FindMessageTypeByName("v1beta1.PushMethod")
        schema["PushMethod fields"] = [(f.name, str(f.number), "") for f in device_property.fields]
        return schema


async def test_reflection_client_rebuilds_the_schema(target: str) -> None:
    """A descriptor database fed by reflection knows every DMI method and message field."""
    schema = await asyncio.to_thread(_rebuild_schema, target)
    for service in (MANAGER, MAPPER):
        local = api_pb2.DESCRIPTOR.services_by_name[service.removeprefix("v1beta1.")]
        assert schema[service] == [
            (m.name, m.input_type.full_name, m.output_type.full_name) for m in local.methods
        ]
    assert REFLECTION in schema
    assert schema["PushMethod fields"] == [
        ("http", "1", ""),
        ("mqtt", "2", ""),
        ("dbMethod", "3", ""),
        ("otel", "4", ""),
        ("anomalyDetection", "5", ""),
    ]


@pytest.mark.parametrize("name", ["DeviceManagerService", "v1beta1.NoSuchService", ""])
async def test_unknown_service_name_is_rejected(name: str) -> None:
    """A name that is not a full service name known to the descriptor pool raises ValueError."""
    server = grpc.aio.server()
    with pytest.raises(ValueError, match="unknown gRPC service"):
        enable_reflection(server, name)


async def test_repeated_names_are_listed_once() -> None:
    """Giving a service twice, or the reflection service itself, lists each name once."""
    manager = api_pb2_grpc.DeviceManagerServiceServicer()
    async with serve_dmi(manager, None, MANAGER, MANAGER, REFLECTION) as target:
        (answer,) = await _ask(target, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = [s.name for s in answer.list_services_response.service]
    assert sorted(names) == sorted([MANAGER, REFLECTION])
