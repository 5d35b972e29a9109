"""Helpers of the Kubernetes registry tests: a registry per identity, objects to store."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from twinplane.cloud.registry.base import GROUP_VERSION, TWINPLANE_GROUP_VERSION
from twinplane.cloud.registry.kube import KubeRegistry


@contextlib.asynccontextmanager
async def opened(kubeconfig: Path, **options: Any) -> AsyncIterator[KubeRegistry]:  # noqa: ANN401
    """A started :class:`KubeRegistry` on ``kubeconfig``, closed on exit."""
    registry = KubeRegistry(kubeconfig, **options)
    await registry.start()
    try:
        yield registry
    finally:
        await registry.close()


def meta(name: str, namespace: str, **extra: Any) -> dict[str, Any]:  # noqa: ANN401
    """``metadata`` with a name and namespace."""
    return {"name": name, "namespace": namespace, **extra}


def device_model(name: str, namespace: str) -> dict[str, Any]:
    """A Modbus DeviceModel with one FLOAT property."""
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "DeviceModel",
        "metadata": meta(name, namespace),
        "spec": {
            "protocol": "modbus",
            "properties": [
                {"name": "temperature", "type": "FLOAT", "accessMode": "ReadOnly", "unit": "C"}
            ],
        },
    }


def device(name: str, namespace: str, model: str = "thermo-model") -> dict[str, Any]:
    """A Modbus TCP Device of ``model`` with one property read from a holding register."""
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "Device",
        "metadata": meta(name, namespace),
        "spec": {
            "deviceModelRef": {"name": model},
            "nodeName": "edge-1",
            "protocol": {
                "protocolName": "modbus",
                "configData": {"ip": "127.0.0.1", "port": 5020, "slaveID": 1},
            },
            "properties": [
                {
                    "name": "temperature",
                    "collectCycle": 1000,
                    "reportCycle": 1000,
                    "reportToCloud": True,
                    "visitors": {
                        "protocolName": "modbus",
                        "configData": {"register": "HoldingRegister", "offset": 0, "limit": 1},
                    },
                }
            ],
        },
    }


def device_status(name: str, namespace: str, value: str = "21.5") -> dict[str, Any]:
    """A DeviceStatus with one reported twin."""
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "DeviceStatus",
        "metadata": meta(name, namespace),
        "spec": {},
        "status": {
            "state": "online",
            "lastOnlineTime": "2026-12-04T06:00:00Z",
            "twins": [twin("temperature", value)],
        },
    }


def device_call(name: str, namespace: str, device_name: str = "one") -> dict[str, Any]:
    """A DeviceCall of method ``setpoint`` on ``device_name``."""
    return {
        "apiVersion": TWINPLANE_GROUP_VERSION,
        "kind": "DeviceCall",
        "metadata": meta(name, namespace),
        "spec": {
            "deviceRef": {"name": device_name},
            "method": "setpoint",
            "arguments": {"setpoint": 22.5},
            "timeoutSeconds": 10,
        },
    }


def twin(prop: str, value: str) -> dict[str, Any]:
    """One ``status.twins[]`` entry with a reported value."""
    return {
        "propertyName": prop,
        "reported": {"value": value, "metadata": {"timestamp": "1796364000000", "type": "float"}},
    }
