"""The Prometheus text writer, the device manager's read-latency and MQTT bridge metrics.

The MQTT test runs a real ``mosquitto`` on a free loopback port (it fails when ``CI`` is set and
the binary is missing, and skips otherwise, as in ``test_mqtt_bridge.py``).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import aiomqtt
import pytest

from dmi_helpers import report
from edge_helpers import running_app, thermo_model
from mqtt_broker import running_mosquitto
from twinplane.edge.metrics import MQTT_STATS, MetricsWriter, RequestCounts
from twinplane.mqtt_url import BrokerUrl

THERMO = "---\n".join(
    [
        thermo_model("temperature", "setpoint"),
        """\
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: thermo-1}
spec:
  deviceModelRef: {name: thermo-model}
  protocol: {protocolName: modbus}
""",
    ]
)


def test_escapes_help_and_label_values() -> None:
    """Backslashes, quotes and newlines are escaped as text format 0.0.4 requires."""
    out = MetricsWriter(prefix="x_")
    out.family("m", "gauge", "a \\ help\nline", [({"l": 'q"b\\n\nz'}, 1)])
    assert out.render() == (
        '# HELP x_m a \\\\ help\\nline\n# TYPE x_m gauge\nx_m{l="q\\"b\\\\n\\nz"} 1\n'
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3, "3"),
        (2.0, "2"),
        (0.25, "0.25"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
    ],
)
def test_number_formats(value: float, text: str) -> None:
    """Integers print without a fraction; infinities and NaN use the format's spelling."""
    out = MetricsWriter(prefix="")
    out.single("v", "gauge", "h", value)
    assert out.render().splitlines()[-1] == f"v {text}"


def test_a_family_is_written_once() -> None:
    """Writing the same family twice is a bug, caught at once."""
    out = MetricsWriter()
    out.single("a_total", "counter", "h", 1)
    with pytest.raises(ValueError, match="twinplane_a_total"):
        out.single("a_total", "counter", "h", 2)


def test_a_family_without_samples_keeps_help_and_type() -> None:
    """A family with no samples yet (no mapper registered) still declares itself."""
    out = MetricsWriter(prefix="")
    out.family("mapper_pending_ops", "gauge", "h", [])
    assert out.render() == "# HELP mapper_pending_ops h\n# TYPE mapper_pending_ops gauge\n"


def test_request_counts_add_up() -> None:
    """Requests are counted per method, route and code."""
    counts = RequestCounts()
    counts.add("GET", "/healthz", 200)
    counts.add("GET", "/healthz", 200)
    counts.add("GET", "/healthz", 503)
    assert counts.counts == {("GET", "/healthz", 200): 2, ("GET", "/healthz", 503): 1}


def test_histogram_is_cumulative_with_sum_and_count() -> None:
    """A histogram renders cumulative ``_bucket`` lines up to ``+Inf``, ``_sum`` and ``_count``."""
    out = MetricsWriter(prefix="x_")
    out.histogram("lat_seconds", "h", [0.001, 0.25], [1, 0, 2], sum_=3.5, count=3)
    assert out.render() == (
        "# HELP x_lat_seconds h\n# TYPE x_lat_seconds histogram\n"
        'x_lat_seconds_bucket{le="0.001"} 1\nx_lat_seconds_bucket{le="0.25"} 1\n'
        'x_lat_seconds_bucket{le="+Inf"} 3\nx_lat_seconds_sum 3.5\nx_lat_seconds_count 3\n'
    )
    with pytest.raises(ValueError, match="counts"):
        out.histogram("bad", "h", [1.0], [1], sum_=0, count=1)


def _samples(text: str) -> dict[str, float]:
    """Unparsed sample lines ``name{labels} value`` of an exposition, by ``name{labels}``."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


async def test_edge_exports_read_latency(home: Path) -> None:
    """Reported read times reach the applied and persisted histograms; every twin is counted."""
    async with running_app(home, THERMO) as app:
        core = app.core
        assert core is not None
        read_ms = int(time.time() * 1000) - 30
        metadata = {"timestamp": str(read_ms)}
        values = {"temperature": "20.5", "setpoint": "21"}
        await report(f"unix:{app.config.socket_path}", "thermo-1", values, metadata=metadata)
        await report(f"unix:{app.config.socket_path}", "thermo-1", values, metadata=metadata)
        await core.persist()
        async with (
            aiohttp.ClientSession(base_url=app.rest_url) as http,
            http.get("/metrics") as resp,
        ):
            assert resp.status == 200
            text = await resp.text()
    assert "# TYPE twinplane_read_to_applied_seconds histogram" in text
    assert "# TYPE twinplane_read_to_persisted_seconds histogram" in text
    assert "# TYPE twinplane_twin_updates_total counter" in text
    samples = _samples(text)
    assert samples["twinplane_twin_updates_total"] == 4
    assert samples["twinplane_dmi_twins_changed_total"] == 2
    for name, count in (("applied", 4), ("persisted", 2)):
        family = f"twinplane_read_to_{name}_seconds"
        buckets = [v for k, v in samples.items() if k.startswith(family + "_bucket{")]
        assert len(buckets) == 46
        assert buckets == sorted(buckets), "cumulative"
        assert samples[family + '_bucket{le="0.001"}'] == 0, "30 ms or more after the read"
        assert samples[family + '_bucket{le="+Inf"}'] == count
        assert samples[family + "_count"] == count
        max_s = samples[f"twinplane_read_to_{name}_max_seconds"]
        assert 0.03 <= max_s < 30
        assert count * 0.03 <= samples[family + "_sum"] <= count * max_s


async def _scrape(rest_url: str) -> str:
    async with aiohttp.ClientSession(base_url=rest_url) as http, http.get("/metrics") as resp:
        assert resp.status == 200
        return await resp.text()


async def test_edge_without_broker_has_no_mqtt_metrics(home: Path) -> None:
    """Without a broker the ``mqtt_*`` families are absent, not zero (no broker is not down)."""
    async with running_app(home, THERMO) as app:
        text = await _scrape(app.rest_url)
    assert "twinplane_build_info" in text
    assert "twinplane_mqtt_" not in text


@pytest.fixture(scope="module")
def broker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A mosquitto on a loopback port for this module; missing, a failure under CI."""
    with running_mosquitto(tmp_path_factory.mktemp("mosquitto")) as server:
        yield server.mqtt_url


async def test_edge_exports_mqtt_bridge_counters(home: Path, broker_url: str) -> None:
    """With a broker, ``/metrics`` has every bridge counter.

    A twin change counts as published; a request from a client (``twin/get``) counts as
    received, exactly once.
    """
    async with running_app(home, THERMO, mqtt_url=broker_url, node_name="node-a") as app:
        bridge = app.mqtt
        assert bridge is not None
        async with asyncio.timeout(10):
            await bridge.wait_connected()
        before = _samples(await _scrape(app.rest_url))
        values = {"temperature": "20.5", "setpoint": "21"}
        await report(f"unix:{app.config.socket_path}", "thermo-1", values)
        async with asyncio.timeout(10):
            await bridge.flush()  # every queued message acknowledged by the broker
        await _ask_twin_get(broker_url)
        async with asyncio.timeout(10):
            # The broker may deliver the answer to the client before the bridge has its PUBACK:
            # until then the answer is in flight (pending, not yet published).
            await bridge.flush()
        text = await _scrape(app.rest_url)
        stats = bridge.stats()
    for name, kind, _ in MQTT_STATS.values():
        assert f"# TYPE twinplane_{name} {kind}\n" in text
    samples = _samples(text)
    assert before["twinplane_mqtt_connected"] == 1
    assert samples["twinplane_mqtt_published_total"] > before["twinplane_mqtt_published_total"]
    assert samples["twinplane_mqtt_published_total"] == stats["published"]
    assert samples["twinplane_mqtt_connected"] == 1
    assert samples["twinplane_mqtt_pending"] == 0
    for name in ("dropped", "reconnects", "rejected"):
        assert samples[f"twinplane_mqtt_{name}_total"] == 0
    assert before["twinplane_mqtt_received_total"] == 0
    assert samples["twinplane_mqtt_received_total"] == stats["received"] == 1


async def _ask_twin_get(broker_url: str) -> None:
    """Sends thermo-1's ``twin/get`` as a client would and waits for its answer."""
    url = BrokerUrl.parse(broker_url)
    topic = "$hw/events/device/default/thermo-1/twin/get"
    async with aiomqtt.Client(url.host, url.port, identifier=f"test-{uuid.uuid4()}") as client:
        await client.subscribe(f"{topic}/result", qos=1)
        await client.publish(topic, json.dumps({"event_id": "req-1"}).encode(), qos=1)
        async with asyncio.timeout(10):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                assert json.loads(message.payload)["event_id"] == "req-1"
                return
