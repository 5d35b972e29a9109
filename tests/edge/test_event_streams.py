"""Event streams a server cannot be held by: a bounded number, and a stop never waits on one.

``twinplane edge`` runs as a subprocess; stalled clients are raw sockets with a small receive
buffer that ask for ``/api/v1/events`` and never read, while twin changes flow until the
server's queue for them overflows (its writes to them no longer complete). SIGTERM must still
end the process within the 2 s the issue sets. The cap on open streams is tried in process.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge_helpers import EdgeProcess, edge_process, model_yaml, running_app
from raw_http import request
from twinplane.rest.guard import CLIENT_HEADER
from waits import until

PROPERTIES = 100
STALLED = 4
STOPS_WITHIN_S = 2.0
"""The issue's bound: SIGTERM to exit, whatever the event-stream clients do."""


def strings_model() -> str:
    """A model of :data:`PROPERTIES` STRING properties and its device ``d``, as YAML."""
    props = [f"{{name: p{i}, type: STRING, accessMode: ReadWrite}}" for i in range(PROPERTIES)]
    device = (
        "apiVersion: devices.kubeedge.io/v1beta1\nkind: Device\n"
        "metadata: {name: d, namespace: default}\n"
        "spec: {deviceModelRef: {name: m}, protocol: {protocolName: virtual}}\n"
    )
    return model_yaml("m", "virtual", *props) + "---\n" + device


def call(edge: EdgeProcess, method: str, path: str, body: bytes = b"") -> Any:  # noqa: ANN401
    """A request as the CLI sends it; the decoded answer."""
    headers = {"Content-Type": "application/yaml", CLIENT_HEADER: "tests"}
    req = urllib.request.Request(  # noqa: S310 - our own server
        edge.url + path, data=body or None, method=method, headers=headers
    )
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
        return json.load(resp) if path != "/metrics" else resp.read().decode()


def metric(edge: EdgeProcess, name: str) -> float:
    """A sample of ``/metrics`` without labels."""
    for line in call(edge, "GET", "/metrics").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


@pytest.fixture
def edge() -> Iterator[EdgeProcess]:
    """``twinplane edge`` with room for :data:`STALLED` streams, the strings model applied."""
    with edge_process("--max-event-streams", str(STALLED), "--log-level", "warning") as process:
        process.start()
        call(process, "POST", "/api/v1/apply", strings_model().encode())
        yield process


def stalled_stream(edge: EdgeProcess) -> socket.socket:
    """A client that asks for the event stream and never reads (4 KiB receive buffer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", edge.port))
    sock.sendall(f"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1:{edge.port}\r\n\r\n".encode())
    return sock


def test_sigterm_stops_the_edge_within_2_s_with_stalled_event_streams(edge: EdgeProcess) -> None:
    """Stalled clients whose queues overflowed do not hold the stop: exit 0 within 2 s."""
    socks = [stalled_stream(edge) for _ in range(STALLED)]
    try:
        deadline = time.monotonic() + 30
        while call(edge, "GET", "/healthz")["eventSubscribers"] < STALLED:
            assert time.monotonic() < deadline, "the stalled clients did not subscribe"
            time.sleep(0.05)
        twin = "/api/v1/namespaces/default/devices/d/twin"
        rounds = 0
        while metric(edge, "twinplane_events_dropped_total") == 0:  # writes to them block
            assert time.monotonic() < deadline + 60, f"no queue overflowed after {rounds} rounds"
            values = {f"p{i}": f"{rounds}-{i}-" + "v" * 200 for i in range(PROPERTIES)}
            call(edge, "PATCH", twin, json.dumps({"desired": values}).encode())
            rounds += 1
        assert edge.proc is not None
        started = time.monotonic()
        edge.proc.send_signal(signal.SIGTERM)
        code = edge.proc.wait(timeout=30)
        took = time.monotonic() - started
    finally:
        for sock in socks:
            sock.close()
    assert code == 0, edge.output()
    assert took < STOPS_WITHIN_S, f"SIGTERM took {took:.2f} s with {STALLED} stalled streams"


def test_a_stream_beyond_max_event_streams_is_refused(edge: EdgeProcess) -> None:
    """``--max-event-streams N``: the N+1st stream gets 429 with a clear error, no subscription."""
    socks = [stalled_stream(edge) for _ in range(STALLED)]
    try:
        deadline = time.monotonic() + 30
        while call(edge, "GET", "/healthz")["eventSubscribers"] < STALLED:
            assert time.monotonic() < deadline, "the clients did not subscribe"
            time.sleep(0.05)
        answer = asyncio.run(request(edge.url, "GET", "/api/v1/events"))
        assert answer.status == 429, answer.body
        body = answer.json()
        assert (body["reason"], body["code"]) == ("TooManyRequests", 429)
        assert "--max-event-streams" in body["message"]
        assert answer.headers["retry-after"] == "5"
        assert call(edge, "GET", "/healthz")["eventSubscribers"] == STALLED
    finally:
        for sock in socks:
            sock.close()


async def test_a_freed_slot_takes_a_new_stream(home: Path) -> None:
    """Once a stream of the full set ends, the next client is served."""
    async with running_app(home, max_event_streams=2) as app, aiohttp.ClientSession() as http:
        assert app.core is not None
        url = app.rest_url + "/api/v1/events"
        first = await http.get(url)
        second = await http.get(url)
        for resp in (first, second):
            assert resp.status == 200
            assert await resp.content.readline() == b": subscribed\n"
        async with http.get(url) as third:
            assert third.status == 429
        first.close()
        await until(lambda: len(app.core.hub) == 1, "the closed stream to end")  # type: ignore[union-attr]
        async with http.get(url) as again:
            assert again.status == 200
            assert await again.content.readline() == b": subscribed\n"
        second.close()
