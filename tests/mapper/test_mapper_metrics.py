"""The mapper's ``GET /metrics`` against a running mapper, a device manager and a full sink.

The Modbus client's counters are read against pymodbus's server (not ours), which takes one
Modbus TCP transaction at a time.
"""

from __future__ import annotations

import functools
import re
import socket

import aiohttp
import pytest
from mapper_helpers import manifests, mapper_config, running_mapper, virtual_model

from edge_helpers import running_app, short_home
from modbus_peers import PymodbusServer, holding
from twinplane.drivers.modbus.adapter import ModbusDriver
from twinplane.drivers.virtual import VirtualDriver
from twinplane.edge.core import EdgeCore
from twinplane.mapper.app import MapperApp
from twinplane.mapper.sinks import RunnerSettings
from waits import WAIT_S, until

# one batch of queue, slow retries: the reporter's batches every 20 ms overflow it at once
TINY = RunnerSettings(
    max_rows=1,
    interval_s=0.01,
    max_batches=1,
    max_attempts=100,
    backoff_s=0.5,
    max_backoff_s=0.5,
    close_timeout_s=0.2,
)

_SAMPLE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.e+]+$|^\S+ (NaN|[+-]Inf)$")


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pushed_device(port: int) -> str:
    """A virtual device whose counter is pushed over HTTP to ``127.0.0.1:port`` (refused)."""
    return (
        "apiVersion: devices.kubeedge.io/v1beta1\nkind: Device\n"
        "metadata: {name: v1, namespace: default}\n"
        "spec:\n  deviceModelRef: {name: vmodel}\n"
        "  protocol: {protocolName: virtual, configData: {}}\n"
        "  properties:\n"
        "  - name: count\n    collectCycle: 20\n    reportCycle: 20\n    reportToCloud: true\n"
        "    visitors: {protocolName: virtual, configData: {kind: counter}}\n"
        f"    pushMethod: {{http: {{hostName: 'http://127.0.0.1', port: {port}, "
        "requestPath: /data}}\n"
    )


def parse(text: str) -> dict[str, float]:
    """Checks the exposition's lines; returns every sample by its name and labels."""
    assert text.endswith("\n")
    samples: dict[str, float] = {}
    declared: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name.startswith("twinplane_mapper_")
            assert name not in declared
            declared[name] = ""
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert declared.get(name) == ""
            assert kind in ("counter", "gauge", "histogram")
            assert kind != "counter" or name.endswith("_total")
            declared[name] = kind
        else:
            assert _SAMPLE.match(line), line
            key, value = line.rsplit(" ", 1)
            name = key.split("{")[0]
            if name not in declared:  # a histogram's _bucket, _sum and _count samples
                name = re.sub(r"_(bucket|sum|count)$", "", name)
                assert declared.get(name) == "histogram", line
            assert name in declared
            samples[key] = float(value)
    return samples


async def test_metrics_show_sinks_buses_and_reports() -> None:
    """A full sink's drops, the bus's polls and the reports sent all appear in /metrics."""
    port = closed_port()
    sink = f"http:http://127.0.0.1:{port}/data"
    with short_home() as home:
        async with running_app(home, manifests(virtual_model(), pushed_device(port))) as app:
            mapper = MapperApp(mapper_config(home, app.config.socket_path), VirtualDriver())
            mapper.data_plane.settings = TINY
            await mapper.start()
            try:
                assert mapper.rest is not None
                await until(
                    lambda: mapper.data_plane.stats().get(sink, {}).get("dropped", 0) > 0,
                    "rows dropped by the full sink queue",
                )
                reporter = mapper.reporter
                assert reporter is not None
                await until(lambda: reporter.stats.stream_reports > 0, "fast-path reports")
                async with (
                    aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT_S)) as s,
                    s.get(mapper.rest.url + "/metrics") as resp,
                ):
                    assert resp.status == 200
                    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                    text = await resp.text()
            finally:
                await mapper.stop()
    samples = parse(text)
    assert samples[f'twinplane_mapper_sink_dropped_rows_total{{sink="{sink}"}}'] > 0
    (bus,) = mapper.runtime.buses
    polls = samples[f'twinplane_mapper_bus_polls_total{{bus="{bus}"}}']
    assert polls > 0
    on_time = samples["twinplane_mapper_polls_on_time_total"]
    assert on_time + samples["twinplane_mapper_polls_late_total"] == polls
    assert samples["twinplane_mapper_poll_lateness_seconds_count"] == polls
    assert samples['twinplane_mapper_poll_lateness_seconds_bucket{le="+Inf"}'] == polls
    assert samples[f'twinplane_mapper_bus_devices{{bus="{bus}"}}'] == 1
    assert samples['twinplane_mapper_reports_sent_total{path="fast_path"}'] > 0
    # the fast path was ready before the device started: no twin report went unary
    assert samples['twinplane_mapper_reports_sent_total{path="unary"}'] == 0
    assert samples["twinplane_mapper_fast_path_fallbacks_total"] == 0
    assert samples["twinplane_mapper_twin_changes_total"] > 0
    assert samples["twinplane_mapper_engine_devices"] == 1
    assert samples['twinplane_mapper_devices{state="online"}'] == 1
    assert samples['twinplane_mapper_fast_path_state{state="ready"}'] == 1
    assert samples["twinplane_mapper_compat_waits_total"] == 0
    assert not any(k.startswith("twinplane_mapper_modbus_") for k in samples)  # virtual driver


PLC_MODEL = """\
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: plc-model, namespace: default}
spec:
  protocol: modbus
  properties:
  - {name: level, type: INT, accessMode: ReadOnly}
  - {name: pump, type: BOOLEAN, accessMode: ReadOnly}
"""


def plc(unit: int, port: int, extra: str) -> str:
    """Unit ``unit`` of the endpoint: a holding register and a coil, read every 50 ms."""
    return (
        "apiVersion: devices.kubeedge.io/v1beta1\nkind: Device\n"
        f"metadata: {{name: plc-{unit}, namespace: default}}\n"
        "spec:\n  deviceModelRef: {name: plc-model}\n"
        "  protocol:\n    protocolName: modbus\n"
        f"    configData: {{ip: 127.0.0.1, port: {port}, slaveID: {unit}{extra}}}\n"
        "  properties:\n"
        "  - name: level\n    collectCycle: 50\n    reportCycle: 50\n"
        "    visitors: {protocolName: modbus, configData: "
        "{register: HoldingRegister, offset: 4, limit: 1, dataType: uint16}}\n"
        "  - name: pump\n    collectCycle: 50\n    reportCycle: 50\n"
        "    visitors: {protocolName: modbus, configData: {register: CoilRegister, offset: 3}}\n"
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize("pipelined", [False, True], ids=["default", "maxInFlight-8"])
async def test_modbus_metrics_say_when_a_device_takes_one_transaction_at_a_time(
    pipelined: bool,
) -> None:
    """On a one-at-a-time server, pipelining asked for shows in /metrics; the default does not.

    Two devices (a holding register and a coil each) on pymodbus's server. With
    ``maxInFlight: 8`` the first pipelined polls lose their later reads: pipeline timeouts
    are counted, the connection falls back once and the gauge says one connection runs one
    transaction at a time. With the default nothing times out. Both report the server's values.
    """
    server = PymodbusServer((1, 2))
    await server.start()
    extra = ", maxInFlight: 8" if pipelined else ""
    try:
        docs = manifests(PLC_MODEL, plc(1, server.port, extra), plc(2, server.port, extra))
        with short_home() as home:
            async with running_app(home, docs) as app:
                core = app.core
                assert core is not None
                cfg = mapper_config(home, app.config.socket_path, protocol="modbus")
                async with running_mapper(cfg, ModbusDriver(timeout=0.3)) as mapper:
                    for unit in (1, 2):
                        await until(
                            functools.partial(_reports_level, core, unit),
                            f"unit {unit} reports its level",
                        )
                    assert mapper.rest is not None
                    async with (
                        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT_S)) as s,
                        s.get(mapper.rest.url + "/metrics") as resp,
                    ):
                        text = await resp.text()
    finally:
        await server.stop()
    samples = parse(text)

    def metric(name: str) -> float:
        return samples[f"twinplane_mapper_modbus_{name}"]

    assert metric("connections") == 1  # one endpoint, one connection for both units
    assert metric("responses_total") > 0
    assert metric("requests_total") >= metric("responses_total") + metric("timeouts_total")
    if pipelined:
        assert metric("pipeline_timeouts_total") >= 1
        assert metric("timeouts_total") >= metric("pipeline_timeouts_total")
        assert metric("pipelining_fallbacks_total") == 1
        assert metric("pipelining_disabled") == 1
    else:
        assert metric("timeouts_total") == 0
        assert metric("pipeline_timeouts_total") == 0
        assert metric("pipelining_fallbacks_total") == 0
        assert metric("pipelining_disabled") == 0


def _reports_level(core: EdgeCore, unit: int) -> bool:
    """Whether ``plc-<unit>`` reports the server's holding register as its level."""
    side = core.twins(f"default/plc-{unit}")["level"]["reported"]
    return side is not None and side["value"] == str(holding(unit)[4])
