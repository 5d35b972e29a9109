"""The mapper in ``edgecore_compat`` mode against a DMI peer that behaves like KubeEdge EdgeCore.

The peer (spec §2.1, §3.3-§3.5, §10) shares one token bucket (1 call/s; a small burst here, 100
in EdgeCore) between its three RPCs and answers an over-limit call with EdgeCore's error text
(status UNKNOWN, as grpc-go gives a plain error); it serves no ``twinplane.v1.TwinStream``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import grpc
import pytest
from mapper_helpers import manifests, mapper_config, running_mapper

from edge_helpers import short_home
from twinplane.dmi.convert import device_to_proto, model_to_proto
from twinplane.dmi.v1beta1 import api_pb2, api_pb2_grpc
from twinplane.drivers.virtual import VirtualDriver
from twinplane.manifests.load import load_strict
from waits import until

Ctx = grpc.aio.ServicerContext[Any, Any]

RATE: Final = 1.0
"""EdgeCore's sustained limit, calls per second."""
MAPPER_BURST: Final = 3
"""The burst the mapper's own bucket allows (``CompatBudget``)."""
PEER_BURST: Final = MAPPER_BURST + 1
"""The peer's burst: the mapper's plus one token of slack for delivery jitter (EdgeCore: 100)."""
JITTER_S: Final = 0.2
"""How much earlier than its token a call may reach the peer (scheduling and delivery)."""
CHANGING_S: Final = 3.0
"""How long the devices change before they are stopped."""
DEVICES: Final = ("ec1", "ec2", "ec3")
PROPERTIES: Final = ("temp", "count", "walk")
DMI_PREFIX: Final = "/v1beta1.DeviceManagerService/"
KEY: Final = re.compile(r"[a-zA-Z0-9-_.,:/@#]{1,128}")
VALUE: Final = re.compile(r"[a-zA-Z0-9-_.,:/@#]{1,512}")
STATES: Final = frozenset({"online", "offline", "ok", "unknown", "unhealthy"})

MODEL: Final = """\
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: ecmodel, namespace: default}
spec:
  protocol: virtual
  properties:
  - {name: temp, type: FLOAT, accessMode: ReadOnly}
  - {name: count, type: INT, accessMode: ReadOnly}
  - {name: walk, type: FLOAT, accessMode: ReadOnly}
"""


def changing_device(name: str) -> str:
    """A virtual device whose three properties all change every 50 ms cycle."""

    def prop(prop_name: str, config: str) -> str:
        return (
            f"  - name: {prop_name}\n"
            "    collectCycle: 50\n"
            "    reportCycle: 50\n"
            "    reportToCloud: true\n"
            f"    visitors: {{protocolName: virtual, configData: {config}}}\n"
        )

    return (
        "apiVersion: devices.kubeedge.io/v1beta1\n"
        "kind: Device\n"
        f"metadata: {{name: {name}, namespace: default}}\n"
        "spec:\n"
        "  deviceModelRef: {name: ecmodel}\n"
        "  protocol: {protocolName: virtual, configData: {}}\n"
        "  properties:\n"
        + prop("temp", "{kind: sine, amplitude: 5, offset: 20, periodMs: 700}")
        + prop("count", "{kind: counter}")
        + prop("walk", "{kind: randomwalk, start: 20, step: 0.5, min: 0, max: 40}")
    )


@dataclass(slots=True)
class Call:
    """One RPC as the peer saw it."""

    at: float
    method: str
    accepted: bool


class Limiter:
    """``rate.NewLimiter(rate.Every(1s), burst)``'s ``Allow()``: a refused call costs nothing."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def allow(self) -> bool:
        """Takes a token if there is one."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


@dataclass
class EdgeCoreLike(api_pb2_grpc.DeviceManagerServiceServicer):
    """A DMI ``DeviceManagerService`` with EdgeCore's limiter and checks; it records every call."""

    register: api_pb2.MapperRegisterResponse
    limiter: Limiter = field(default_factory=lambda: Limiter(RATE, PEER_BURST))
    calls: list[Call] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    reports: list[api_pb2.ReportDeviceStatusRequest] = field(default_factory=list)
    latest: dict[str, dict[str, str]] = field(default_factory=dict)
    states: dict[str, list[str]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    async def _admit(self, context: Ctx, method: str, what: str, name: str) -> None:
        accepted = self.limiter.allow()
        self.calls.append(Call(time.monotonic(), method, accepted))
        if not accepted:
            await context.abort(
                grpc.StatusCode.UNKNOWN, f"fail to {what} because of too many request: {name}"
            )

    async def MapperRegister(  # noqa: N802 - the generated servicer's name
        self, request: api_pb2.MapperRegisterRequest, context: Ctx
    ) -> api_pb2.MapperRegisterResponse:
        """Hands out the virtual devices when asked ``withData``."""
        await self._admit(context, "MapperRegister", "register mapper", request.mapper.name)
        if not request.mapper.protocol:
            await context.abort(
                grpc.StatusCode.UNKNOWN,
                f"fail to register mapper {request.mapper.name} because the protocol is nil",
            )
        if not request.withData:
            return api_pb2.MapperRegisterResponse()
        return self.register

    async def ReportDeviceStatus(  # noqa: N802
        self, request: api_pb2.ReportDeviceStatusRequest, context: Ctx
    ) -> api_pb2.ReportDeviceStatusResponse:
        """Checks each twin as EdgeCore's twin module would (a bad one is dropped there)."""
        await self._admit(context, "ReportDeviceStatus", "report device status", request.deviceName)
        if not request.reportedDevice.twins:
            await context.abort(
                grpc.StatusCode.UNKNOWN, "ReportDeviceStatusRequest does not have twin data"
            )
        self.reports.append(request)
        where = f"{request.deviceNamespace}/{request.deviceName}"
        if request.deviceNamespace != "default":
            self.violations.append(f"{where}: namespace not filled")
        for twin in request.reportedDevice.twins:
            here = f"{where}.{twin.propertyName}"
            if not KEY.fullmatch(twin.propertyName):
                self.violations.append(f"{here}: bad twin key")
            if not (twin.HasField("observedDesired") and twin.HasField("reported")):
                self.violations.append(f"{here}: observedDesired and reported must both be set")
            # §3.4: an empty value is not checked; a non-empty one must match. A reported
            # value must be there: an empty one would erase the twin's actual value.
            desired = twin.observedDesired.value
            if desired and not VALUE.fullmatch(desired):
                self.violations.append(f"{here}: observedDesired {desired!r} rejected (400)")
            if not VALUE.fullmatch(twin.reported.value):
                self.violations.append(f"{here}: reported {twin.reported.value!r} rejected (400)")
            self.latest.setdefault(request.deviceName, {})[twin.propertyName] = twin.reported.value
        return api_pb2.ReportDeviceStatusResponse()

    async def ReportDeviceStates(  # noqa: N802
        self, request: api_pb2.ReportDeviceStatesRequest, context: Ctx
    ) -> api_pb2.ReportDeviceStatesResponse:
        """Records the state; EdgeCore silently ignores one outside its accepted set."""
        await self._admit(context, "ReportDeviceStates", "report device states", request.deviceName)
        if not (request.state and request.deviceName):
            await context.abort(
                grpc.StatusCode.UNKNOWN, "ReportDeviceStatesRequest is invalid data"
            )
        if request.state.lower() not in STATES:
            self.violations.append(f"{request.deviceName}: state {request.state!r} ignored")
        self.states.setdefault(request.deviceName, []).append(request.state)
        return api_pb2.ReportDeviceStatesResponse()


class MethodLog(grpc.aio.ServerInterceptor):
    """Records the method of every call reaching the server, implemented or not."""

    def __init__(self, methods: list[str]) -> None:
        self.methods = methods

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        """Notes the method, then serves it as usual."""
        self.methods.append(handler_call_details.method)
        return await continuation(handler_call_details)


def edgecore_like() -> EdgeCoreLike:
    """The peer, holding the changing devices for ``MapperRegister``."""
    loaded = load_strict(manifests(MODEL, *(changing_device(d) for d in DEVICES)))
    (model,) = loaded.models
    register = api_pb2.MapperRegisterResponse()
    for device in loaded.devices:
        register.modelList.append(model_to_proto(model))
        register.deviceList.append(device_to_proto(device, model))
    return EdgeCoreLike(register)


@contextlib.asynccontextmanager
async def serve(peer: EdgeCoreLike) -> AsyncIterator[Path]:
    """``peer`` on a Unix socket; yields the socket path."""
    with tempfile.TemporaryDirectory(prefix="tp-ec-") as tmp:
        sock = Path(tmp) / "dmi.sock"
        server = grpc.aio.server(interceptors=[MethodLog(peer.methods)])
        api_pb2_grpc.add_DeviceManagerServiceServicer_to_server(peer, server)
        server.add_insecure_port(f"unix:{sock}")
        await server.start()
        try:
            yield sock
        finally:
            await server.stop(grace=None)


def over_limit(calls: list[Call]) -> list[str]:
    """Windows of accepted calls more than the mapper's burst plus 1/s (with jitter) allow."""
    times = [c.at for c in calls if c.accepted]
    return [
        f"{j - i + 1} calls in {times[j] - times[i]:.2f}s"
        for i in range(len(times))
        for j in range(i, len(times))
        if j - i + 1 > MAPPER_BURST + RATE * (times[j] - times[i] + JITTER_S)
    ]


@pytest.mark.timeout(30)
async def test_compat_mode_keeps_to_edgecores_limit_and_contract() -> None:
    """Compat mode: no fast path, at most 1 call/s plus burst, batched twins, valid values."""
    peer = edgecore_like()
    async with serve(peer) as sock:
        with short_home() as home:
            cfg = replace(mapper_config(home, sock), edgecore_compat=True)
            async with running_mapper(cfg, VirtualDriver()) as mapper:
                reporter = mapper.reporter
                assert reporter is not None
                assert reporter.fast_path is None
                assert reporter.budget is not None
                await asyncio.sleep(CHANGING_S)
                for bus in mapper.runtime.buses.values():
                    await bus.stop()  # the values stop changing: the last ones must arrive

                def latest() -> dict[str, dict[str, str]]:
                    twins = {d: mapper.runtime.engine.twins(f"default/{d}") for d in DEVICES}
                    return {
                        d: {p: (t["reported"] or {"value": ""})["value"] for p, t in ts.items()}
                        for d, ts in twins.items()
                    }

                # The engine drains at the next report tick; then the peer must catch up.
                await until(
                    lambda: peer.latest == latest(),
                    "every device's latest values at the peer",
                    within=len(DEVICES) + 2 * MAPPER_BURST,
                )
                assert all(len(v) == len(PROPERTIES) for v in peer.latest.values())
                stats = reporter.stats

    assert all(m.startswith(DMI_PREFIX) for m in peer.methods), set(peer.methods)
    assert [c for c in peer.calls if not c.accepted] == []
    assert over_limit(peer.calls) == []
    assert peer.violations == []
    assert stats.status_errors == stats.state_errors == 0
    assert stats.stream_batches == stats.stream_fallbacks == 0
    # Batching: one call carries every property's newest value, however many cycles passed.
    assert all(len(r.reportedDevice.twins) == len(PROPERTIES) for r in peer.reports)
    assert len(peer.reports) < CHANGING_S / 0.05
    assert set(peer.states) == set(DEVICES)
    assert all(s and set(s) <= STATES for s in peer.states.values())
