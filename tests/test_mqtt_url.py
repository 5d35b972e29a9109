"""The MQTT broker URL the device manager and the mapper's MQTT sink share."""

from __future__ import annotations

import pytest

from twinplane.errors import SpecError
from twinplane.mqtt_url import BrokerUrl


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1:1883", BrokerUrl("127.0.0.1", 1883)),
        ("tcp://broker.local:11883", BrokerUrl("broker.local", 11883)),
        ("mqtt://edge:s%40cret@10.0.0.1", BrokerUrl("10.0.0.1", 1883, "edge", "s@cret")),
        ("localhost:1884", BrokerUrl("localhost", 1884)),
    ],
)
def test_broker_url_forms(url: str, expected: BrokerUrl) -> None:
    """mqtt://, KubeEdge's tcp:// and bare host:port parse, with optional user:pass@."""
    assert BrokerUrl.parse(url) == expected


@pytest.mark.parametrize(
    "url", ["http://host:1883", "mqtt://host:99999", "mqtt://:1883", "mqtt://host/x"]
)
def test_broker_url_rejects_bad_urls(url: str) -> None:
    """Other schemes, bad ports, a missing host and paths are refused with the field named."""
    with pytest.raises(SpecError) as info:
        BrokerUrl.parse(url)
    assert info.value.path == "mqtt_url"


def test_broker_url_hides_the_password() -> None:
    """The password appears neither in the repr nor in the display form."""
    url = BrokerUrl.parse("mqtt://edge:secret@host:1883")
    assert "secret" not in repr(url)
    assert "secret" not in str(url)
