"""Local TCP ports: whether one is free to bind."""

from __future__ import annotations

import socket

__all__ = ["port_free"]


def port_free(host: str, port: int) -> bool:
    """Whether ``port`` can be bound on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
