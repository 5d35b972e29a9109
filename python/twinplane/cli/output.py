"""How the CLI prints: aligned tables, JSON, YAML, times and ages."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal, TextIO

import yaml

__all__ = [
    "NONE",
    "OutputFormat",
    "age",
    "clip",
    "print_data",
    "table",
    "timestamp",
]

OutputFormat = Literal["table", "json", "yaml"]

NONE: Final = "<none>"
_CLIP: Final = 48


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, three spaces apart (kubectl's look)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *rows]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)


def print_data(data: Any, fmt: OutputFormat, out: TextIO | None = None) -> None:  # noqa: ANN401
    """Prints decoded JSON as ``json`` (indented) or ``yaml``."""
    out = out or sys.stdout
    if fmt == "yaml":
        out.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    else:
        out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def clip(text: str, width: int = _CLIP) -> str:
    """``text`` cut to ``width`` characters (with ``...``), on one line."""
    one_line = text.replace("\n", "\\n")
    return one_line if len(one_line) <= width else one_line[: width - 3] + "..."


def timestamp(ms: int | str | None) -> str:
    """Milliseconds since the epoch as RFC 3339 UTC (``2024-11-27T04:05:06.123Z``)."""
    if ms in (None, "", 0, "0"):
        return NONE
    try:
        value = int(ms)
    except ValueError:
        return str(ms)
    when = datetime.fromtimestamp(value / 1000, tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value % 1000:03d}Z"


def age(ms: int | str | None, now_ms: int | None = None) -> str:
    """How long ago (``5s``, ``3m``, ``2h``, ``4d``), like kubectl's AGE column."""
    if ms in (None, "", 0, "0"):
        return NONE
    try:
        then = int(ms)
    except ValueError:
        return str(ms)
    now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    seconds = max(0, (now - then) // 1000)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
