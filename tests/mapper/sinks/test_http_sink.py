"""HTTP push against a real local aiohttp server: JSON batches, KubeEdge's form, retries, e2e."""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from sinks_helpers import changes

from edge_helpers import running_app, short_home
from twinplane.dmi.v1beta1 import api_pb2
from twinplane.drivers.virtual import VirtualDriver
from twinplane.mapper.app import MapperApp
from twinplane.mapper.config import MapperConfig
from twinplane.mapper.sinks import RunnerSettings, SinkRunner
from twinplane.mapper.sinks.base import Sink
from twinplane.mapper.sinks.config import HttpSinkConfig, SinkConfig
from twinplane.mapper.sinks.http import HttpSink
from twinplane.mapper.sinks.plane import DataPlane, sink_name
from waits import until

FAST = RunnerSettings(max_rows=100, interval_s=0.02, backoff_s=0.01, max_backoff_s=0.05)


@dataclass
class Receiver:
    """A local HTTP endpoint recording requests; answers ``statuses`` first, then 200."""

    url: str = ""
    requests: list[tuple[str, bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    authorization: list[str | None] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        """Records the request and answers."""
        body = await request.read()
        self.authorization.append(request.headers.get("Authorization"))
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            self.requests.append((request.content_type, body))
        return web.Response(status=status, headers={"Retry-After": "0"})

    @property
    def samples(self) -> list[dict[str, object]]:
        """Every sample of every JSON request."""
        return [s for _, b in self.requests for s in json.loads(b)["samples"]]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A receiver on a free loopback port, path /data."""
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/data", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rec.url = f"http://127.0.0.1:{port}/data"
    try:
        yield rec
    finally:
        await runner.cleanup()


async def test_json_batch_is_one_post(receiver: Receiver) -> None:
    """Many samples go out in one JSON POST with typed values and ms timestamps."""
    runner = SinkRunner("h", HttpSink(HttpSinkConfig(receiver.url)), FAST)
    runner.start()
    runner.offer(
        changes(
            [
                ("default/d1", "temp", 21.5),
                ("default/d1", "count", 7),
                ("ns2/d2", "label", "a b"),
                ("ns2/d2", "on", True),
            ]
        )
    )
    await until(lambda: receiver.requests, "the POST")
    await runner.close()
    assert len(receiver.requests) == 1
    assert receiver.requests[0][0] == "application/json"
    by_prop = {s["property"]: s for s in receiver.samples}
    assert by_prop["temp"] == {
        "namespace": "default",
        "device": "d1",
        "property": "temp",
        "type": "FLOAT",
        "value": 21.5,
        "text": "21.5",
        "timestamp": 1_700_000_000_000,
    }
    assert by_prop["count"]["value"] == 7
    assert (by_prop["label"]["value"], by_prop["label"]["namespace"]) == ("a b", "ns2")
    assert by_prop["on"]["value"] is True


async def test_form_format_posts_one_request_per_sample(receiver: Receiver) -> None:
    """KubeEdge's form: <property>=<value>&time=<YYYY-MM-DD HH:MM:SS>, one POST per sample."""
    sink = HttpSink(HttpSinkConfig(receiver.url, format="form"))
    runner = SinkRunner("h", sink, FAST)
    runner.start()
    runner.offer(changes([("default/d1", "temp", 21.5), ("default/d1", "count", 7)]))
    await until(lambda: len(receiver.requests) == 2, "two POSTs")
    await runner.close()
    bodies = sorted(b.decode() for _, b in receiver.requests)
    assert {t for t, _ in receiver.requests} == {"application/x-www-form-urlencoded"}
    stamp = r"&time=\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"
    assert re.fullmatch("count=7" + stamp, bodies[0])
    assert re.fullmatch("temp=21.5" + stamp, bodies[1])


async def test_server_errors_are_retried_and_4xx_is_permanent(receiver: Receiver) -> None:
    """503 and 429 are retried until the 200; a 400 is failed at once without retries."""
    receiver.statuses = [503, 429]
    runner = SinkRunner("h", HttpSink(HttpSinkConfig(receiver.url)), FAST)
    runner.start()
    runner.offer(changes([("default/d1", "temp", 1.0)]))
    await until(lambda: runner.stats()["written"] == 1, "the write after retries")
    assert runner.stats()["retries"] == 2
    receiver.statuses = [400]
    runner.offer(changes([("default/d1", "temp", 2.0)]))
    await until(lambda: runner.stats()["failed"] == 1, "the refusal")
    assert runner.stats()["retries"] == 2
    await runner.close()


async def test_unreachable_endpoint_counts_failures() -> None:
    """Connection refused is retried max_attempts times, then counted as failed."""
    runner = SinkRunner("h", HttpSink(HttpSinkConfig("http://127.0.0.1:9/x", timeout_s=1)), FAST)
    runner.start()
    runner.offer(changes([("default/d1", "temp", 1.0)]))
    await until(lambda: runner.stats()["failed"] == 1, "the give-up")
    assert runner.stats()["retries"] == FAST.max_attempts - 1
    await runner.close()


def pushed_manifests(url: str) -> str:
    """A virtual model and device whose count is pushed to ``url`` every 100 ms."""
    host, _, rest = url.removeprefix("http://").partition(":")
    port, _, path = rest.partition("/")
    return (
        "apiVersion: devices.kubeedge.io/v1beta1\nkind: DeviceModel\n"
        "metadata: {name: vmodel, namespace: default}\n"
        "spec:\n  protocol: virtual\n  properties:\n"
        "  - {name: count, type: INT, accessMode: ReadOnly}\n"
        "  - {name: temp, type: FLOAT, accessMode: ReadOnly}\n"
        "---\n"
        "apiVersion: devices.kubeedge.io/v1beta1\nkind: Device\n"
        "metadata: {name: v1, namespace: default}\n"
        "spec:\n  deviceModelRef: {name: vmodel}\n"
        "  protocol: {protocolName: virtual, configData: {}}\n"
        "  properties:\n"
        "  - name: count\n    collectCycle: 20\n    reportCycle: 100\n    reportToCloud: true\n"
        "    visitors: {protocolName: virtual, configData: {kind: counter}}\n"
        f"    pushMethod: {{http: {{hostName: 'http://{host}', port: {port}, "
        f"requestPath: /{path}}}}}\n"
        "  - name: temp\n    collectCycle: 20\n    reportCycle: 100\n    reportToCloud: true\n"
        "    visitors: {protocolName: virtual, configData: {kind: sine}}\n"
    )


async def test_mapper_pushes_pushed_properties_only(receiver: Receiver) -> None:
    """A mapper with a device manager pushes the counter of a pushMethod property, not the rest."""
    with short_home() as home:
        async with running_app(home, pushed_manifests(receiver.url)) as app:
            cfg = MapperConfig(
                protocol="virtual",
                name="virtual-mapper",
                socket_path=home / "run" / "virtual.sock",
                edgecore_sock=app.config.socket_path,
                report_interval_ms=20,
                http_port=0,
            )
            mapper = MapperApp(cfg, VirtualDriver())
            mapper.data_plane.settings = FAST
            await mapper.start()
            try:
                await until(lambda: len(receiver.samples) >= 3, "three pushed samples")
                stats = mapper.data_plane.stats()
                assert list(stats) == [f"http:{receiver.url}"]
            finally:
                await mapper.stop()
    assert {(s["device"], s["property"]) for s in receiver.samples} == {("v1", "count")}
    counts = [int(str(s["value"])) for s in receiver.samples]
    assert counts == sorted(counts)


async def test_a_password_in_the_url_authenticates_but_is_never_logged(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """user:password@ in the URL is sent as Basic auth; names and retry lines show ***."""
    receiver.statuses = [503]
    config = HttpSinkConfig(receiver.url.replace("http://", "http://edge:s3cret@"))
    name = sink_name(config)
    assert name == "http:" + receiver.url.replace("http://", "http://edge:***@")
    runner = SinkRunner(name, HttpSink(config), FAST)
    with caplog.at_level(logging.INFO):
        runner.start()
        runner.offer(changes([("default/d1", "temp", 1.0)]))
        await until(lambda: runner.stats()["written"] == 1, "the write after a retry")
        await runner.close()
    expected = "Basic " + base64.b64encode(b"edge:s3cret").decode()
    assert receiver.authorization == [expected, expected]
    assert "edge:***@127.0.0.1" in caplog.text  # the retry line names the sink
    assert "s3cret" not in caplog.text


def test_a_sink_that_cannot_start_is_logged_by_its_masked_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sink whose start fails is logged by its name, not by its config's repr."""

    def broken(config: SinkConfig) -> Sink:
        raise RuntimeError(f"cannot build {type(config).__name__}")

    plane = DataPlane(factory=broken, extra=[HttpSinkConfig("http://u:pw3@h/x")])
    device = api_pb2.Device(name="d", namespace="default")
    device.spec.properties.add(name="p")
    with caplog.at_level(logging.ERROR):
        plane.add_device(device)
    assert "sink http:http://u:***@h/x cannot start" in caplog.text
    assert "pw3" not in caplog.text
