"""Device states go out with several calls in flight (one at a time toward EdgeCore).

A real gRPC DMI server on a Unix socket whose ``ReportDeviceStates`` takes a while and records
how many calls it holds at once; the reporter reports 40 devices that came online together.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from edge_helpers import short_home
from twinplane.dmi.v1beta1 import api_pb2, api_pb2_grpc
from twinplane.mapper.reporter import STATE_CONCURRENCY, Reporter
from twinplane.twin import Engine
from waits import until

DEVICES = 40
HOLD_S = 0.05

pytestmark = pytest.mark.timeout(30)


class SlowStates(api_pb2_grpc.DeviceManagerServiceServicer):
    """Holds each ``ReportDeviceStates`` for :data:`HOLD_S`; counts calls in flight."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.states: dict[str, str] = {}

    async def ReportDeviceStates(  # noqa: N802 - the RPC's name
        self,
        request: api_pb2.ReportDeviceStatesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> api_pb2.ReportDeviceStatesResponse:
        """Records the state after a while."""
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(HOLD_S)
        finally:
            self.in_flight -= 1
        self.states[f"{request.deviceNamespace}/{request.deviceName}"] = request.state
        return api_pb2.ReportDeviceStatesResponse()


@contextlib.asynccontextmanager
async def reporting(sock: Path, servicer: SlowStates, *, compat: bool) -> AsyncIterator[None]:
    """The servicer on ``sock`` and a reporter of :data:`DEVICES` online devices toward it."""
    server = grpc.aio.server()
    api_pb2_grpc.add_DeviceManagerServiceServicer_to_server(servicer, server)
    server.add_insecure_port(f"unix:{sock}")
    await server.start()
    channel = grpc.aio.insecure_channel(f"unix:{sock}")

    async def states() -> dict[str, tuple[str, bool, int]]:
        return {f"default/d{i}": ("online", False, 0) for i in range(DEVICES)}

    reporter = Reporter(Engine(), channel, interval_s=0.2, compat=compat, states=states)
    reporter.start()
    try:
        yield
    finally:
        await reporter.stop()
        await channel.close()
        await server.stop(None)


async def test_states_are_sent_with_calls_in_flight_together() -> None:
    """40 devices online at once: all reported, with more than one call in flight."""
    servicer = SlowStates()
    with short_home() as home:
        async with reporting(home / "dmi.sock", servicer, compat=False):
            await until(lambda: len(servicer.states) == DEVICES, "every device's state")
    assert set(servicer.states.values()) == {"online"}
    assert 1 < servicer.most <= STATE_CONCURRENCY


async def test_states_go_one_at_a_time_toward_edgecore() -> None:
    """In EdgeCore compat the calls are paced one after another."""
    servicer = SlowStates()
    with short_home() as home:
        async with reporting(home / "dmi.sock", servicer, compat=True):
            await until(lambda: len(servicer.states) >= 2, "two states")
    assert servicer.most == 1
