"""Passwords in URLs, shown as ``***`` wherever a URL is printed or logged."""

from __future__ import annotations

import pytest

from twinplane.errors import SpecError
from twinplane.mqtt_url import BrokerUrl
from twinplane.redact import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mqtt://edge:s3cret@10.0.0.1:1883", "mqtt://edge:***@10.0.0.1:1883"),
        ("tcp://edge:s%40cret@broker", "tcp://edge:***@broker"),
        ("edge:s3cret@broker:1883", "edge:***@broker:1883"),  # a bare broker address
        ("http://u:p@h:8080/data?x=1", "http://u:***@h:8080/data?x=1"),
        ("http://u:@h/", "http://u:***@h/"),  # an empty password still says one is set
        ("mqtt://edge@broker:1883", "mqtt://edge@broker:1883"),  # no password: as it is
        ("mqtt://broker:1883", "mqtt://broker:1883"),
        ("broker:1883", "broker:1883"),
        ("http://h/p?mail=a:b@c", "http://h/p?mail=a:b@c"),  # '@' after the authority
    ],
)
def test_redact_url_masks_the_password_and_keeps_the_user(url: str, shown: str) -> None:
    """The user stays, the password becomes ***, anything without one is unchanged."""
    assert redact_url(url) == shown


def test_broker_url_errors_do_not_quote_the_password() -> None:
    """A refused MQTT URL is quoted in its error with the password masked."""
    for url in ("http://edge:s3cret@host:1883", "mqtt://edge:s3cret@host/x", "edge:s3cret@h:x"):
        with pytest.raises(SpecError) as err:
            BrokerUrl.parse(url)
        assert "s3cret" not in err.value.message
        assert "edge:***@" in err.value.message
