"""Helpers of the mapper tests: manifests of virtual devices, a running mapper, bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from twinplane.drivers.base import Driver
from twinplane.mapper.app import MapperApp
from twinplane.mapper.config import MapperConfig
from waits import WAIT_S


def virtual_model(name: str = "vmodel") -> str:
    """A DeviceModel of protocol ``virtual``: temp (FLOAT), count (INT), setpoint (INT, RW)."""
    return (
        "apiVersion: devices.kubeedge.io/v1beta1\n"
        "kind: DeviceModel\n"
        f"metadata: {{name: {name}, namespace: default}}\n"
        "spec:\n"
        "  protocol: virtual\n"
        "  properties:\n"
        "  - {name: temp, type: FLOAT, accessMode: ReadOnly}\n"
        "  - {name: count, type: INT, accessMode: ReadOnly}\n"
        "  - {name: setpoint, type: INT, accessMode: ReadWrite}\n"
    )


def virtual_device(name: str, *, cycle_ms: int = 40, protocol_config: str = "{}") -> str:
    """A virtual Device: temp a sine, count a counter, setpoint a held value."""

    def prop(prop_name: str, config: str) -> str:
        return (
            f"  - name: {prop_name}\n"
            f"    collectCycle: {cycle_ms}\n"
            f"    reportCycle: {cycle_ms * 5}\n"
            "    reportToCloud: true\n"
            f"    visitors: {{protocolName: virtual, configData: {config}}}\n"
        )

    return (
        "apiVersion: devices.kubeedge.io/v1beta1\n"
        "kind: Device\n"
        f"metadata: {{name: {name}, namespace: default}}\n"
        "spec:\n"
        "  deviceModelRef: {name: vmodel}\n"
        f"  protocol: {{protocolName: virtual, configData: {protocol_config}}}\n"
        "  properties:\n"
        + prop("temp", "{kind: sine, amplitude: 5, offset: 20}")
        + prop("count", "{kind: counter}")
        + prop("setpoint", "{value: 10}")
    )


def manifests(*docs: str) -> str:
    """Documents joined into one YAML stream."""
    return "---\n".join(docs)


def mapper_config(home: Path, edgecore_sock: Path, protocol: str = "virtual") -> MapperConfig:
    """A mapper on ``home/run/<protocol>.sock`` reporting every 20 ms, REST on a free port."""
    return MapperConfig(
        protocol=protocol,
        name=f"{protocol}-mapper",
        socket_path=home / "run" / f"{protocol}.sock",
        edgecore_sock=edgecore_sock,
        report_interval_ms=20,
        http_port=0,
    )


@contextlib.asynccontextmanager
async def running_mapper(config: MapperConfig, driver: Driver) -> AsyncIterator[MapperApp]:
    """A started :class:`MapperApp`, registered with its device manager; stopped after."""
    mapper = MapperApp(config, driver)
    try:
        await mapper.start()
        async with asyncio.timeout(WAIT_S):
            await mapper.registered.wait()
        yield mapper
    finally:
        await mapper.stop()
