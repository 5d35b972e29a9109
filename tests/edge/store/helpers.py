"""Helpers of the store tests: twin and manifest bodies, raw SQLite access."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def twin(value: str, ts: int = 1, desired: str | None = None) -> dict[str, Any]:
    """A TwinDict-shaped body, as the engine persists it."""
    return {
        "type": "INT",
        "desired": None if desired is None else {"value": desired, "timestamp": ts},
        "reported": {"value": value, "timestamp": ts},
        "desired_version": {"cloud": 0, "edge": 0 if desired is None else 1},
        "reported_version": {"cloud": 0, "edge": ts},
    }


def device(name: str, **spec: object) -> dict[str, Any]:
    """A minimal Device manifest."""
    return {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"deviceModelRef": {"name": "thermo"}, **spec},
    }


@contextlib.contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection in autocommit mode, closed afterwards."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def tables(path: Path) -> set[str]:
    """The table names of a database file."""
    with raw(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {r[0] for r in rows} - {"sqlite_sequence"}


def pragma(path: Path, name: str) -> object:
    """One PRAGMA value read through a fresh connection."""
    with raw(path) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
