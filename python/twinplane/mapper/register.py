"""``MapperRegister``: how a mapper announces itself to its device manager and gets its devices.

Called with ``withData`` until the manager answers — retried with jittered backoff, as a mapper
may start before its device manager — so the answer carries every model and device this mapper
serves (parallel lists), which :func:`load_answer` hands to the mapper. twinplane's mapper and
the load test's baseline (a Python imitation of mapper-framework's design) both use them.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Final

import grpc

from twinplane.dmi.v1beta1 import api_pb2, api_pb2_grpc
from twinplane.errors import TwinplaneError
from twinplane.mapper.config import MapperConfig
from twinplane.mapper.instance import device_id
from twinplane.mapper.reporter import CompatBudget
from twinplane.mapper.server import MapperHost

__all__ = ["MAX_REGISTER_BACKOFF_S", "REGISTER_TIMEOUT_S", "load_answer", "register_mapper"]

log = logging.getLogger(__name__)

REGISTER_TIMEOUT_S: Final = 5.0
"""Deadline of one ``MapperRegister`` call."""

MAX_REGISTER_BACKOFF_S: Final = 5.0
"""Longest wait between two ``MapperRegister`` calls."""


async def register_mapper(
    stub: api_pb2_grpc.DeviceManagerServiceStub,
    cfg: MapperConfig,
    *,
    budget: CompatBudget | None = None,
) -> api_pb2.MapperRegisterResponse:
    """``MapperRegister`` (``withData``) until the device manager answers, with backoff.

    Args:
        stub: The device manager's DMI stub.
        cfg: The mapper's name, version, protocol and socket.
        budget: EdgeCore pacing (its limiter counts ``MapperRegister`` too, spec §2.1).
    """
    request = api_pb2.MapperRegisterRequest(
        withData=True,
        mapper=api_pb2.MapperInfo(
            name=cfg.name,
            version=cfg.version,
            api_version=cfg.api_version,
            protocol=cfg.protocol,
            address=str(cfg.socket_path.absolute()).encode(),  # dialled from elsewhere
            state="ok",
        ),
    )
    backoff = 0.1
    while True:
        if budget is not None:
            await budget.acquire()
        try:
            response: api_pb2.MapperRegisterResponse = await stub.MapperRegister(
                request, timeout=REGISTER_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as err:
            delay = backoff * (0.5 + random.random())  # noqa: S311 - jitter
            log.info(
                "device manager at %s not ready (%s); registering again in %.1fs",
                cfg.edgecore_sock,
                err.code().name,
                delay,
            )
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, MAX_REGISTER_BACKOFF_S)
        else:
            return response


async def load_answer(host: MapperHost, response: api_pb2.MapperRegisterResponse) -> None:
    """Keeps the answer's models and starts its devices; a device that cannot start is logged."""
    for model in response.modelList:
        host.models[device_id(model.namespace, model.name)] = model
    for device in response.deviceList:
        try:
            await host.register_device(device)
        except TwinplaneError:
            log.exception("device %s/%s cannot start", device.namespace, device.name)
