"""How a call reaches a twinplane mapper: its ``Methods`` service, else desired values.

For each call the deliverer finds the device's mapper (:meth:`MapperDirectory.owner
<twinplane.edge.mappers.MapperDirectory.owner>`) and what its ``Methods`` service offers —
asked once per registration of the mapper (``Methods.Capabilities`` on the mapper's own
socket) and kept on its link (:attr:`~twinplane.edge.mappers.MapperLink.methods`):

- a mapper that offers it gets the call through ``Methods.Call``: a driver-level command goes
  to the driver with its parameters (the method's ``driver`` block, the call's arguments over
  it); a property-writing method's values go to the driver as writes, encoded as desired
  values are. The mapper runs the call on the device's bus ahead of its polls and answers with
  the result (``{"written": {...}}`` for property writes, the command's own for a command) or
  an error, whose code becomes the call's (``InvalidArgument`` naming the parameter,
  ``DeviceError``, ``NotOffered``, ``NotFound``, ``Timeout``). The desired values are not
  touched, as with mapper-framework's ``devicemethod`` route;
- a mapper that answers ``UNIMPLEMENTED`` (a plain KubeEdge mapper, a twinplane mapper run
  with ``--edgecore-compat``) gets the call through desired values
  (:class:`~twinplane.edge.call_delivery.DesiredDeliverer`, which refuses driver commands with
  ``NotOffered``); so does a device whose mapper is not registered;
- a mapper that cannot be reached fails the call (``MapperUnavailable``), and is asked again
  at the next call; one that answers a call ``UNIMPLEMENTED`` (it came back without the
  service before registering again) gets that call and the next through desired values.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final

import grpc

from twinplane.edge.calls import Call, Deliverer, DeliveryError
from twinplane.edge.mappers import MapperDirectory, MapperLink, MethodsOffer
from twinplane.edge.methods import Method, property_text
from twinplane.stream.v1 import stream_pb2, stream_pb2_grpc

__all__ = ["CAPABILITIES_TIMEOUT_S", "MethodsDeliverer"]

log = logging.getLogger(__name__)

CAPABILITIES_TIMEOUT_S: Final = 3.0
"""Deadline of the ``Methods.Capabilities`` question."""
_SLACK_S: Final = 1.0
"""How much longer than the call's deadline the gRPC call may take (the mapper answers
``Timeout`` itself at the deadline)."""
_NOT_OFFERED: Final = MethodsOffer(offered=False)


class MethodsDeliverer:
    """Delivers calls through the mappers' ``Methods`` service, else through ``fallback``.

    Args:
        mappers: The registered mappers and who owns which device.
        fallback: The delivery for mappers without the service (desired values).
        caller: The name sent in ``Capabilities`` (informative).

    Attributes:
        delivered: Calls delivered through ``Methods.Call``, and through the fallback.
    """

    def __init__(
        self, mappers: MapperDirectory, fallback: Deliverer, *, caller: str = "twinplane-edge"
    ) -> None:
        self.mappers = mappers
        self.fallback = fallback
        self.caller = caller
        self.delivered: dict[str, int] = {"methods": 0, "desired": 0}

    async def deliver(self, call: Call, method: Method) -> Any:  # noqa: ANN401 - JSON
        """Sends the call to the mapper's ``Methods`` service, or through the fallback."""
        device = self.mappers.devices().get(call.device_id)
        link = self.mappers.owner(device) if device is not None else None
        offer = await self._offer(link) if link is not None else _NOT_OFFERED
        if link is None or not _runs(offer, method):
            self.delivered["desired"] += 1
            return await self.fallback.deliver(call, method)
        self.delivered["methods"] += 1
        return await self._call(link, call, method)

    async def _offer(self, link: MapperLink) -> MethodsOffer:
        if link.methods is not None:
            return link.methods
        stub = stream_pb2_grpc.MethodsStub(link.calls_channel())
        request = stream_pb2.MethodsCapabilitiesRequest(caller=self.caller)
        try:
            answer = await stub.Capabilities(request, timeout=CAPABILITIES_TIMEOUT_S)
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                await link.drop_calls_channel()
                raise _unavailable(link, err) from err
            offer = _NOT_OFFERED
        else:
            offer = MethodsOffer(
                offered=True,
                driver_commands=frozenset(answer.driver_commands),
                property_writes=answer.property_writes,
            )
        if link.methods is None:
            log.info(
                "mapper %s %s twinplane's Methods service",
                link.info.name,
                "offers" if offer.offered else "does not offer",
                extra={"mapper": link.info.name, "commands": sorted(offer.driver_commands)},
            )
        link.methods = offer
        return offer

    async def _call(self, link: MapperLink, call: Call, method: Method) -> Any:  # noqa: ANN401
        request = _request(call, method)
        stub = stream_pb2_grpc.MethodsStub(link.calls_channel())
        try:
            answer = await stub.Call(request, timeout=call.timeout_ms / 1000 + _SLACK_S)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.UNIMPLEMENTED:  # it restarted without the service
                link.methods = _NOT_OFFERED  # nothing ran: this call and the next go the DMI way
                self.delivered["methods"] -= 1
                self.delivered["desired"] += 1
                return await self.fallback.deliver(call, method)
            await link.drop_calls_channel()
            raise _unavailable(link, err) from err
        if answer.error_code:
            message = answer.error_message
            if answer.error_field:  # the parameter at fault first, as the edge's 422s name it
                message = f"{answer.error_field}: {message}"
            raise DeliveryError(answer.error_code, message)
        return json.loads(answer.result_json) if answer.result_json else None


def _runs(offer: MethodsOffer, method: Method) -> bool:
    """Whether the offer covers the method (a command it does not run: the fallback refuses)."""
    if not offer.offered:
        return False
    if method.kind == "driver":
        return str((method.driver or {}).get("command")) in offer.driver_commands
    return offer.property_writes


def _request(call: Call, method: Method) -> stream_pb2.MethodCall:
    request = stream_pb2.MethodCall(
        id=call.id,
        device_namespace=call.namespace,
        device_name=call.device,
        method=call.method,
        arguments_json=json.dumps(call.args, separators=(",", ":")),
        deadline_ms=call.timeout_ms,
    )
    if method.kind == "driver":
        block = dict(method.driver or {})
        request.command = str(block.pop("command"))
        params = {**block, **{k: v for k, v in call.args.items() if v is not None}}
        request.parameters_json = json.dumps(params, separators=(",", ":"))
    else:
        for prop in method.property_names:
            value = call.args.get(prop)
            if value is not None:
                request.writes.add(property=prop, value=property_text(value))
    return request


def _unavailable(link: MapperLink, err: grpc.aio.AioRpcError) -> DeliveryError:
    return DeliveryError(
        "MapperUnavailable",
        f"mapper {link.info.name} at {link.info.address} did not take the call: "
        f"{err.code().name} {err.details() or ''}".rstrip(),
    )
