"""Fixtures shared by the device manager tests; their helpers are in ``tests/edge_helpers.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_helpers import short_home


@pytest.fixture
def home() -> Iterator[Path]:
    """A fresh home folder for a device manager (short: the socket path must fit 107 bytes)."""
    with short_home() as path:
        yield path
