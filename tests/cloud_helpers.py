"""Helpers shared by the tests that run ``twinplane cloud`` with edges connected to it.

Importable as ``cloud_helpers`` from every test module (see ``conftest.py``). A cloud runs in this
process on a free port with the embedded registry (or the registry a test gives); edges are
:class:`~twinplane.edge.app.EdgeApp` s with ``--cloud`` set, over real WebSocket connections.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import yaml

from edge_helpers import model_yaml
from twinplane.cloud.app import CloudApp, CloudConfig, make_registry
from twinplane.cloud.registry import Registry
from twinplane.edge.app import EdgeApp, EdgeConfig

__all__ = [
    "VMODEL",
    "cloud_home",
    "edge_for",
    "opened_registry",
    "running_cloud",
    "vdevice",
    "vmodel",
]

VMODEL = "vmodel"


def vmodel(namespace: str = "default") -> dict[str, Any]:
    """A DeviceModel of the virtual protocol: a read-only temperature and a writable setpoint."""
    text = model_yaml(
        VMODEL,
        "virtual",
        "{name: temperature, type: FLOAT, accessMode: ReadOnly}",
        "{name: setpoint, type: INT, accessMode: ReadWrite, minimum: '0', maximum: '100'}",
        namespace=namespace,
    )
    body: dict[str, Any] = yaml.safe_load(text)
    return body


def vdevice(
    name: str, node: str, *, setpoint: str | None = None, namespace: str = "default"
) -> dict[str, Any]:
    """A virtual Device on ``node``; ``setpoint`` its desired value, when given."""
    setpoint_prop: dict[str, Any] = {
        "name": "setpoint",
        "visitors": {"protocolName": "virtual", "configData": {"kind": "constant", "value": 0}},
    }
    if setpoint is not None:
        setpoint_prop["desired"] = {"value": setpoint}
    return {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "deviceModelRef": {"name": VMODEL},
            "nodeName": node,
            "protocol": {"protocolName": "virtual"},
            "properties": [
                {
                    "name": "temperature",
                    "visitors": {"protocolName": "virtual", "configData": {"kind": "sine"}},
                },
                setpoint_prop,
            ],
        },
    }


@contextlib.contextmanager
def cloud_home() -> Iterator[Path]:
    """A fresh folder for a cloud or an edge, removed afterwards (short: sockets live there)."""
    home = Path(tempfile.mkdtemp(prefix="tp-c-"))
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@contextlib.asynccontextmanager
async def running_cloud(
    home: Path,
    registry: Registry | None = None,
    **settings: Any,  # noqa: ANN401
) -> AsyncIterator[CloudApp]:
    """A started :class:`CloudApp` on ``home`` listening on a free loopback port."""
    settings.setdefault("status_interval", 0.2)
    listen = f"127.0.0.1:{settings.pop('listen_port', 0)}"
    app = CloudApp(CloudConfig(home=home, listen=listen, **settings), registry=registry)
    try:
        await app.start()
        yield app
    finally:
        await app.stop()


@contextlib.asynccontextmanager
async def opened_registry(home: Path) -> AsyncIterator[Registry]:
    """The registry of a cloud home, opened while no cloud runs on it."""
    registry = make_registry(CloudConfig(home=home))
    await registry.start()
    try:
        yield registry
    finally:
        await registry.close()


def edge_for(cloud: CloudApp, home: Path, node: str, **settings: Any) -> EdgeApp:  # noqa: ANN401
    """An (unstarted) edge of ``node`` linked to ``cloud``, with a fresh token."""
    token = cloud.tokens.create(node)
    url = cloud.url.replace("http", "ws", 1)
    config = EdgeConfig(
        home=home,
        rest_addr="127.0.0.1:0",
        node_name=node,
        cloud_url=url,
        cloud_token=token,
        **settings,
    )
    return EdgeApp(config)
