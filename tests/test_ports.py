"""Whether a local TCP port is free."""

from __future__ import annotations

import socket

from twinplane.ports import port_free


def test_a_listening_port_is_not_free_and_a_closed_one_is() -> None:
    """A port another socket listens on is taken; once that socket closes it is free again."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not port_free("127.0.0.1", port)
    assert port_free("127.0.0.1", port)
