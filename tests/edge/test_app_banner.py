"""What ``twinplane edge`` prints when it starts: where it serves, never a password."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

from edge_helpers import edge_process
from mqtt_broker import running_mosquitto


def mqtt_connected(url: str) -> bool:
    """Whether ``/metrics`` says the MQTT bridge is connected."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:  # noqa: S310 - ours
        return "twinplane_mqtt_connected 1" in resp.read().decode()


def test_the_banner_masks_the_mqtt_password(tmp_path: Path) -> None:
    """``--mqtt mqtt://user:password@…`` connects with it; the banner shows user:***."""
    with running_mosquitto(tmp_path) as broker:
        url = broker.mqtt_url.replace("mqtt://", "mqtt://edge:s3cret@")
        with edge_process("--mqtt", url) as edge:
            edge.start()
            deadline = time.monotonic() + 15
            while not mqtt_connected(edge.url):
                assert time.monotonic() < deadline, edge.output()
                time.sleep(0.05)
            assert edge.terminate() == 0
            output = edge.output()
    assert f"MQTT mqtt://edge:***@127.0.0.1:{broker.port}  state " in output
    assert "s3cret" not in output
