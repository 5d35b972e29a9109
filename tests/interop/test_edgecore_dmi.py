"""twinplane's mapper registering with EdgeCore's own DMI server (KubeEdge v1.23.1).

``edgecore-dmi`` (interop/edgecore) runs EdgeCore's device-twin module unchanged: its DMI gRPC
server (``edge/pkg/devicetwin/dmiserver``, with its rate limiter
``rate.NewLimiter(rate.Every(1000*time.Millisecond), 100)`` shared by MapperRegister,
ReportDeviceStatus and ReportDeviceStates), its DMI cache and worker, its twin, device and
membership workers, and its SQLite tables (gorm, as EdgeCore opens them). Played by the
program, in the messages those EdgeCore modules send: the cloud (a membership update adding the
devices, cloud_connected), MetaManager (the devices and models stored in its meta table), and
EventBus and EdgeHub, which print each message the twin module sends them as a JSON line.

The mappers are real twinplane mappers over real gRPC on Unix sockets: the ``twinplane mapper``
command with ``--edgecore-compat``, and a mapper in this process without it, which calls
faster than EdgeCore allows.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import grpc
import pytest
import yaml

from edge_helpers import free_port, short_home
from interop_tools import interop_binary
from twinplane.dmi.v1beta1 import api_pb2, api_pb2_grpc
from twinplane.drivers.virtual import VirtualDriver
from twinplane.mapper.app import MapperApp
from twinplane.mapper.config import MapperConfig
from twinplane.mapper.reporter import Reporter

pytestmark = pytest.mark.slow

WAIT_S: Final = 20.0
BURST: Final = 100
"""EdgeCore's limiter: ``Burst = 100`` tokens, one more every ``Limit = 1000`` ms."""
TWIN_UPDATE: Final = "$hw/events/device/{}/twin/update/result"
STATE_UPDATE: Final = "$hw/events/device/{}/state/update/result"
TOO_MANY: Final = {
    "MapperRegister": "fail to register mapper because of too many request: {}",
    "ReportDeviceStatus": "fail to report device status because of too many request: {}",
    "ReportDeviceStates": "fail to report device states because of too many request: {}",
}

MODEL: Final = """\
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: vmodel, namespace: default}
spec:
  protocol: virtual
  properties:
  - {name: temp, type: FLOAT, accessMode: ReadOnly}
  - {name: count, type: INT, accessMode: ReadOnly}
"""


def device(name: str, cycle_ms: int) -> str:
    """A virtual Device: temp a sine and count a counter, both read every ``cycle_ms``."""

    def prop(prop_name: str, config: str) -> str:
        return (
            f"  - name: {prop_name}\n"
            f"    collectCycle: {cycle_ms}\n"
            f"    reportCycle: {cycle_ms}\n"
            "    reportToCloud: true\n"
            f"    visitors: {{protocolName: virtual, configData: {config}}}\n"
        )

    return (
        "apiVersion: devices.kubeedge.io/v1beta1\n"
        "kind: Device\n"
        f"metadata: {{name: {name}, namespace: default}}\n"
        "spec:\n"
        "  deviceModelRef: {name: vmodel}\n"
        "  protocol: {protocolName: virtual, configData: {}}\n"
        "  properties:\n"
        + prop("temp", "{kind: sine, amplitude: 5, offset: 20}")
        + prop("count", "{kind: counter}")
    )


@dataclass
class EdgeCoreDMI:
    """``edgecore-dmi`` as a process: its DMI socket, database and what its stand-ins printed."""

    proc: subprocess.Popen[bytes]
    home: Path
    started: float
    """``time.monotonic()`` just before the process started (its limiter is newer)."""

    @property
    def socket(self) -> Path:
        """EdgeCore's DMI socket: ``<dmiSockPath>/dmi.sock``."""
        return self.home / "dmi.sock"

    @property
    def database(self) -> Path:
        """EdgeCore's SQLite file."""
        return self.home / "edge.db"

    def log(self) -> str:
        """EdgeCore's klog output (the end of it)."""
        return (self.home / "edgecore.log").read_text(errors="replace")[-4000:]

    def messages(self) -> list[dict[str, Any]]:
        """Every message the twin module sent to EventBus or EdgeHub so far, in order."""
        text = (self.home / "messages.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]

    def published(self, topic: str) -> list[dict[str, Any]]:
        """The contents the twin module published (through EventBus) on ``topic``."""
        return [
            json.loads(m["content"])
            for m in self.messages()
            if m["module"] == "eventbus" and m["resource"] == topic
        ]

    def twin_values(self, device_id: str, prop: str) -> list[str]:
        """The ``actual`` values of ``prop`` that EdgeCore took from reports, in order."""
        return [
            twin[prop]["actual"]["value"]
            for update in self.published(TWIN_UPDATE.format(device_id))
            if prop in (twin := update["twin"]) and "actual" in twin[prop]
        ]

    def stop(self) -> None:
        """SIGTERM; fails the test if EdgeCore had ended before or does not end cleanly."""
        assert self.proc.poll() is None, f"edgecore-dmi ended early:\n{self.log()}"
        self.proc.terminate()
        assert self.proc.wait(timeout=10) == 0, self.log()

    def rows(self, query: str, *args: str) -> list[tuple[Any, ...]]:
        """Rows of EdgeCore's database (read once it stopped: EdgeCore is its only writer)."""
        with contextlib.closing(sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)) as db:
            return db.execute(query, args).fetchall()


@contextlib.contextmanager
def edgecore(home: Path, *devices: str) -> Iterator[EdgeCoreDMI]:
    """``edgecore-dmi`` with the model and ``devices`` delivered to its node; ready to dial."""
    docs = [yaml.safe_load(MODEL), *(yaml.safe_load(d) for d in devices)]
    fleet = home / "fleet.json"
    fleet.write_text(json.dumps({"deviceModels": docs[:1], "devices": docs[1:]}))
    started = time.monotonic()
    with (home / "messages.jsonl").open("wb") as out, (home / "edgecore.log").open("wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - our build of KubeEdge's code
            [
                str(interop_binary("edgecore-dmi")),
                *("--dmi-dir", str(home), "--db", str(home / "edge.db")),
                *("--node-name", "edge-node", "--fleet", str(fleet)),
            ],
            stdout=out,
            stderr=log,
        )
    core = EdgeCoreDMI(proc, home, started)
    try:
        deadline = time.monotonic() + WAIT_S
        while not core.socket.exists():
            assert proc.poll() is None, f"edgecore-dmi ended:\n{core.log()}"
            assert time.monotonic() < deadline, f"no DMI socket:\n{core.log()}"
            time.sleep(0.02)
        yield core
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def home() -> Iterator[Path]:
    """A short folder for the sockets (a Unix socket path must fit 107 bytes)."""
    with short_home() as folder:
        yield folder


async def until(check: Callable[[], object], what: str, core: EdgeCoreDMI) -> None:
    """Waits up to :data:`WAIT_S` for ``check()``; fails with EdgeCore's log."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not check():
        assert core.proc.poll() is None, f"edgecore-dmi ended:\n{core.log()}"
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {WAIT_S:g} s\n{core.log()}")
        await asyncio.sleep(0.05)


def metric(text: str, name: str) -> float:
    """The value of the sample ``name`` (with its labels, if any) in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(f"twinplane_mapper_{name} "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no twinplane_mapper_{name} in\n{text}")


async def test_compat_mapper_registers_with_edgecore_and_its_reports_are_taken(
    home: Path,
) -> None:
    """``twinplane mapper --edgecore-compat``: registered, given its device, every report taken."""
    with edgecore(home, device("ec1", cycle_ms=200)) as core:
        port = free_port()
        socket = home / "virtual.sock"
        with (home / "mapper.log").open("wb") as log:
            mapper = subprocess.Popen(  # noqa: S603, ASYNC220 - our own command; starts at once
                [
                    *(sys.executable, "-m", "twinplane.cli", "mapper", "--protocol", "virtual"),
                    *("--socket", str(socket), "--edgecore-sock", str(core.socket)),
                    *("--http-port", str(port), "--home", str(home / "tp"), "--edgecore-compat"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            # EdgeCore's MapperRegister answer carried ec1 (converted from the CRD by EdgeCore);
            # the mapper started it, and the twin module took its reports.
            await until(lambda: len(core.twin_values("default/ec1", "count")) >= 3, "reports", core)
            await until(lambda: core.published(STATE_UPDATE.format("default/ec1")), "state", core)
            counts = [int(v) for v in core.twin_values("default/ec1", "count")]
            assert counts == sorted(counts), counts
            assert all(
                20 - 5 <= float(v) <= 20 + 5 for v in core.twin_values("default/ec1", "temp")
            )
            state = core.published(STATE_UPDATE.format("default/ec1"))[0]["device"]
            assert state["name"] == "ec1"
            assert state["state"] == "online"
            # ... and sent them to the cloud, through EdgeHub (the stand-in here).
            cloud = {m["resource"] for m in core.messages() if m["module"] == "websocket"}
            assert "device/default/ec1/twin/edge_updated" in cloud
            assert "device/default/ec1/state/update" in cloud
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{port}/metrics") as answer,
            ):
                text = await answer.text()
            assert metric(text, 'reports_sent_total{path="unary"}') >= 3
            assert metric(text, "report_errors_total") == 0
            assert metric(text, "state_report_errors_total") == 0
        finally:
            mapper.terminate()
            mapper.wait(timeout=10)
        assert mapper.returncode == 0, (home / "mapper.log").read_text()
        core.stop()

    # EdgeCore saved the registration in its meta table (key and JSON as its saveMapper writes).
    ((kind, value),) = core.rows(
        "SELECT type, value FROM meta WHERE key = ?",
        "node/nodeID/namespace/devicemapper/virtual-mapper",
    )
    assert kind == "devicemapper"
    info = json.loads(value)
    assert (info["name"], info["protocol"], info["state"]) == ("virtual-mapper", "virtual", "ok")
    assert base64.b64decode(info["address"]).decode() == str(socket)
    # ... and the twins and the state in its device tables.
    twins = dict(core.rows("SELECT name, actual FROM device_twin WHERE deviceid = 'default/ec1'"))
    assert twins["count"] == core.twin_values("default/ec1", "count")[-1]
    assert core.rows("SELECT state FROM device WHERE id = 'default/ec1'") == [("online",)]


def limiter_refusal(err: grpc.aio.AioRpcError, method: str, name: str) -> bool:
    """Whether ``err`` is EdgeCore's limiter refusing ``method`` (grpc-go: a plain error)."""
    return err.code() == grpc.StatusCode.UNKNOWN and err.details() == TOO_MANY[method].format(name)


async def test_edgecore_limiter_takes_100_calls_then_one_a_second(home: Path) -> None:
    """EdgeCore's limiter: a burst of 100 calls, then one a second, shared by all three RPCs."""
    with edgecore(home) as core:
        async with grpc.aio.insecure_channel(f"unix:{core.socket}") as channel:
            stub = api_pb2_grpc.DeviceManagerServiceStub(channel)
            # An empty state passes the limiter, then fails EdgeCore's check: a token, no effect.
            empty = api_pb2.ReportDeviceStatesRequest(deviceName="probe", deviceNamespace="default")
            answers: list[str] = []
            while not answers or answers[-1] == "ReportDeviceStatesRequest is invalid data":
                assert len(answers) <= BURST + time.monotonic() - core.started + 1
                with pytest.raises(grpc.aio.AioRpcError) as status:
                    await stub.ReportDeviceStates(empty)
                answers.append(status.value.details() or "")
            assert limiter_refusal(status.value, "ReportDeviceStates", "probe")
            assert len(answers) - 1 >= BURST
            # The bucket is empty for every RPC.
            with pytest.raises(grpc.aio.AioRpcError) as status:
                await stub.ReportDeviceStatus(
                    api_pb2.ReportDeviceStatusRequest(deviceName="probe", deviceNamespace="default")
                )
            assert limiter_refusal(status.value, "ReportDeviceStatus", "probe")
            register = api_pb2.MapperRegisterRequest(
                mapper=api_pb2.MapperInfo(name="probe", protocol="probe", address=b"/nowhere")
            )
            with pytest.raises(grpc.aio.AioRpcError) as status:
                await stub.MapperRegister(register)
            assert limiter_refusal(status.value, "MapperRegister", "probe")
            # A second later there is a token again (one per second since the bucket was empty):
            # a call passes, and the calls right after it are refused again.
            emptied = time.monotonic()
            await asyncio.sleep(1.2)
            passed = 0
            while True:
                try:
                    answer = await stub.MapperRegister(register)
                except grpc.aio.AioRpcError as err:
                    refusal = err
                    break
                assert answer == api_pb2.MapperRegisterResponse()  # withData false: empty
                passed += 1
            assert limiter_refusal(refusal, "MapperRegister", "probe")
            assert 1 <= passed <= time.monotonic() - emptied + 1
        core.stop()


@contextlib.asynccontextmanager
async def unpaced_mapper(home: Path, core: EdgeCoreDMI) -> AsyncIterator[MapperApp]:
    """A twinplane mapper without ``--edgecore-compat``: reports every 20 ms, unpaced."""
    config = MapperConfig(
        protocol="virtual",
        name="virtual-mapper",
        socket_path=home / "virtual.sock",
        edgecore_sock=core.socket,
        report_interval_ms=20,
        http_port=0,
    )
    mapper = MapperApp(config, VirtualDriver())
    try:
        await mapper.start()
        yield mapper
    finally:
        await mapper.stop()


def reporter_of(mapper: MapperApp) -> Reporter:
    """The mapper's reporter (it exists once the mapper started)."""
    assert mapper.reporter is not None
    return mapper.reporter


async def test_edgecore_refuses_a_burst_the_mapper_survives_counts_and_retries(
    home: Path,
) -> None:
    """Past EdgeCore's burst the mapper is refused, counts it, retries, and newer values get in."""
    # No --edgecore-compat: the mapper calls far above EdgeCore's rate. Past the first 100 calls
    # EdgeCore answers "too many request"; the mapper counts each refusal, keeps the refused twins
    # for its next tick (merged, newest wins) and carries on at EdgeCore's rate.
    with edgecore(home, device("burst", cycle_ms=20)) as core:
        async with unpaced_mapper(home, core) as mapper:
            await until(mapper.registered.is_set, "registration", core)
            stats = reporter_of(mapper).stats
            await until(lambda: stats.status_errors >= 20, "refused reports", core)
            # EdgeCore took the first 100 calls (registration, twin and state reports), then
            # about one a second; one taken call may still be on its way back.
            taken = 1 + stats.status_calls + stats.state_calls
            assert BURST - 1 <= taken <= BURST + time.monotonic() - core.started + 1
            # What the mapper was told is EdgeCore's limiter: the same call, refused alike.
            async with grpc.aio.insecure_channel(f"unix:{core.socket}") as channel:
                stub = api_pb2_grpc.DeviceManagerServiceStub(channel)
                probe = api_pb2.ReportDeviceStatusRequest(
                    deviceName="probe", deviceNamespace="default"
                )
                answers: list[grpc.aio.AioRpcError] = []
                for _ in range(3):
                    with pytest.raises(grpc.aio.AioRpcError) as status:
                        await stub.ReportDeviceStatus(probe)
                    answers.append(status.value)
            refused = [a for a in answers if limiter_refusal(a, "ReportDeviceStatus", "probe")]
            # A token that came in passes the limiter; EdgeCore then finds no twin data.
            assert refused, [a.details() for a in answers]
            passed = {a.details() for a in answers if a not in refused}
            assert passed <= {"ReportDeviceStatusRequest does not have twin data"}
            # The mapper carries on: its refused reports are retried, and EdgeCore takes them
            # at its rate, each with the newest count.
            before = stats.status_calls
            seen = int(core.twin_values("default/burst", "count")[-1])
            await until(lambda: stats.status_calls >= before + 2, "reports after refusals", core)
            await until(
                lambda: int(core.twin_values("default/burst", "count")[-1]) > seen + 10,
                "a newer count in EdgeCore's twin",
                core,
            )
            assert stats.status_errors > 20
        core.stop()
