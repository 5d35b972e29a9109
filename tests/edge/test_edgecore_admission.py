"""``twinplane edge --dmi-rate 1 --dmi-burst 100``: EdgeCore's DMI admission (the bench's)."""

from __future__ import annotations

import asyncio
import subprocess

import grpc

from dmi_helpers import manager_stub
from edge_helpers import edge_command, edge_process
from twinplane.dmi.v1beta1 import api_pb2


async def test_edgecore_admission_refuses_calls_past_its_burst() -> None:
    """With EdgeCore's limiter (1 call/s, burst 100, all calls) the 101st quick call is refused."""
    with edge_process("--dmi-rate", "1", "--dmi-burst", "100") as edge:
        edge.start()
        async with manager_stub(edge.target) as stub:
            codes = []
            for i in range(110):
                request = api_pb2.ReportDeviceStatesRequest(
                    deviceName=f"nobody-{i}", deviceNamespace="default", state="ok"
                )
                try:
                    await stub.ReportDeviceStates(request, timeout=2)
                    codes.append(grpc.StatusCode.OK)
                except grpc.aio.AioRpcError as err:
                    codes.append(err.code())
        refused = [c for c in codes if c == grpc.StatusCode.RESOURCE_EXHAUSTED]
        assert 100 <= codes.index(grpc.StatusCode.RESOURCE_EXHAUSTED) <= 101
        assert 8 <= len(refused) <= 10
        await asyncio.sleep(1.2)  # a token comes back every second
        async with manager_stub(edge.target) as stub:
            request = api_pb2.ReportDeviceStatesRequest(
                deviceName="nobody", deviceNamespace="default", state="ok"
            )
            try:
                await stub.ReportDeviceStates(request, timeout=2)
                code = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as err:
                code = err.code()
        assert code != grpc.StatusCode.RESOURCE_EXHAUSTED


def test_the_admission_options_are_checked() -> None:
    """A negative --dmi-rate or a burst under 1: exit 2 naming the option."""
    for args, message in (
        (["--dmi-rate", "-1"], "--dmi-rate must be 0 or more"),
        (["--dmi-burst", "0"], "--dmi-burst: must be at least 1"),
    ):
        done = subprocess.run(  # noqa: S603 - our own command
            [*edge_command(), "edge", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert message in done.stderr, done.stderr
