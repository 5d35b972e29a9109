"""The store tests' fixture: a fresh synchronous store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from twinplane.edge.store import EdgeStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EdgeStore]:
    """A fresh synchronous store."""
    with EdgeStore.open(tmp_path / "edge.db") as s:
        yield s
