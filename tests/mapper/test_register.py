"""``MapperRegister`` against a real device manager that refuses the registration."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

import grpc
import pytest
from mapper_helpers import mapper_config

from edge_helpers import running_app
from twinplane.dmi.v1beta1 import api_pb2_grpc
from twinplane.mapper.register import register_mapper

pytestmark = pytest.mark.timeout(30)


async def test_a_refused_registration_is_an_error_naming_the_field_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A name the device manager refuses: one ERROR line with its reason, not "not ready"."""
    async with running_app(tmp_path / "edge") as app:
        cfg = dataclasses.replace(
            mapper_config(tmp_path, app.config.socket_path), name="a mapper with spaces"
        )
        async with grpc.aio.insecure_channel(f"unix:{app.config.socket_path}") as channel:
            stub = api_pb2_grpc.DeviceManagerServiceStub(channel)
            with caplog.at_level(logging.INFO, logger="twinplane.mapper.register"):
                task = asyncio.create_task(register_mapper(stub, cfg))
                async with asyncio.timeout(20):
                    while not any(r.levelno == logging.ERROR for r in caplog.records):  # noqa: ASYNC110 - polls the captured log
                        await asyncio.sleep(0.02)
                await asyncio.sleep(0.3)  # a retry may run meanwhile; it says nothing new
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "refused to register mapper 'a mapper with spaces'" in errors[0]
    assert "INVALID_ARGUMENT" in errors[0]
    assert "mapper.name" in errors[0]
    assert not [r for r in caplog.records if "not ready" in r.getMessage()]
