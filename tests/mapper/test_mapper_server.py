"""``DeviceMapperService`` on a mapper's socket: answers to devices that can never start."""

from __future__ import annotations

import grpc
import pytest
from mapper_helpers import mapper_config, running_mapper

from edge_helpers import running_app, short_home
from twinplane.dmi.v1beta1 import api_pb2, api_pb2_grpc
from twinplane.drivers.virtual import VirtualDriver


@pytest.mark.parametrize("rpc", ["RegisterDevice", "UpdateDevice"])
async def test_a_device_without_a_model_reference_is_invalid_at_once(rpc: str) -> None:
    """No model can have an empty name, so there is nothing to wait for: INVALID_ARGUMENT."""
    device = api_pb2.Device(name="no-spec", namespace="default", status=api_pb2.DeviceStatus())
    with short_home() as home:
        async with running_app(home) as app:
            cfg = mapper_config(home, app.config.socket_path)
            async with (
                running_mapper(cfg, VirtualDriver()) as mapper,
                grpc.aio.insecure_channel(f"unix:{cfg.socket_path}") as channel,
            ):
                stub = api_pb2_grpc.DeviceMapperServiceStub(channel)
                call = (
                    stub.RegisterDevice(api_pb2.RegisterDeviceRequest(device=device), timeout=10)
                    if rpc == "RegisterDevice"
                    else stub.UpdateDevice(api_pb2.UpdateDeviceRequest(device=device), timeout=10)
                )
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await call
                assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert raised.value.details() == "device.spec.deviceModelReference must be set"
                assert "default/no-spec" not in mapper.runtime.devices
