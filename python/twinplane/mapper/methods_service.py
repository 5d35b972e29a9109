"""twinplane's ``Methods`` service on the mapper's socket: method calls from the device manager.

Served beside ``DeviceMapperService`` (:mod:`twinplane.mapper.server`) unless the mapper runs
``--edgecore-compat`` (it then looks like a plain KubeEdge mapper: ``UNIMPLEMENTED``, and the
device manager falls back to desired values). ``Capabilities`` says what the driver runs;
``Call`` runs one call (:mod:`twinplane.mapper.method_calls`) within its deadline and answers
with its outcome — a failed call is an answer with ``error_code`` set, not a gRPC error.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Final

import grpc

from twinplane.mapper.instance import device_id
from twinplane.mapper.method_calls import (
    MethodCallError,
    run_command,
    running_device,
    write_properties,
)
from twinplane.mapper.runtime import MapperRuntime
from twinplane.stream.v1 import stream_pb2, stream_pb2_grpc

__all__ = ["DEFAULT_DEADLINE_MS", "MAX_DEADLINE_MS", "MethodsServicer"]

log = logging.getLogger(__name__)

DEFAULT_DEADLINE_MS: Final = 10_000
"""A call's deadline when the device manager gives none."""
MAX_DEADLINE_MS: Final = 300_000

Context = grpc.aio.ServicerContext[Any, Any]


def _result(
    *,
    result: Any = None,  # noqa: ANN401 - JSON
    code: str = "",
    message: str = "",
    field: str | None = None,
) -> stream_pb2.MethodResult:
    return stream_pb2.MethodResult(
        result_json="" if code else json.dumps(result, separators=(",", ":")),
        error_code=code,
        error_message=message,
        error_field=field or "",
    )


class MethodsServicer(stream_pb2_grpc.MethodsServicer):
    """``Capabilities`` and ``Call`` over the mapper's runtime."""

    def __init__(self, runtime: MapperRuntime) -> None:
        self.runtime = runtime

    async def Capabilities(  # noqa: N802 - the RPC's name
        self, request: stream_pb2.MethodsCapabilitiesRequest, context: Context
    ) -> stream_pb2.MethodsCapabilities:
        """The driver's protocol and commands; property writes are always run."""
        del request, context
        driver = self.runtime.driver
        return stream_pb2.MethodsCapabilities(
            protocol=driver.protocol,
            driver_commands=sorted(driver.commands),
            property_writes=True,
        )

    async def Call(  # noqa: N802
        self, request: stream_pb2.MethodCall, context: Context
    ) -> stream_pb2.MethodResult:
        """Runs one call on its device's bus within its deadline."""
        del context
        dev_id = device_id(request.device_namespace, request.device_name)
        deadline_ms = min(request.deadline_ms or DEFAULT_DEADLINE_MS, MAX_DEADLINE_MS)
        try:
            async with asyncio.timeout(deadline_ms / 1000):
                result = await self._run(dev_id, request)
        except MethodCallError as err:
            log.info("call %s %s of %s: %s", request.id, request.method, dev_id, err)
            return _result(code=err.code, message=err.message, field=err.field)
        except TimeoutError:
            return _result(code="Timeout", message=f"no outcome within {deadline_ms} ms")
        return _result(result=result)

    async def _run(self, dev_id: str, request: stream_pb2.MethodCall) -> Any:  # noqa: ANN401
        params = _parameters(request.parameters_json)
        running = running_device(self.runtime, dev_id)
        if request.command:
            return await run_command(running, request.command, params)
        writes = [(w.property, w.value) for w in request.writes]
        if not writes:
            raise MethodCallError(
                "InvalidArgument", "a call needs a command or writes", field="writes"
            )
        return {"written": await write_properties(running, writes)}


def _parameters(text: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        params = json.loads(text)
    except ValueError as err:
        raise MethodCallError(
            "InvalidArgument", f"parameters_json is not JSON: {err}", field="parameters_json"
        ) from err
    if not isinstance(params, dict):
        raise MethodCallError(
            "InvalidArgument", "parameters_json must be a JSON object", field="parameters_json"
        )
    return params
