"""Real-world manifest quirks twinplane reads anyway (the validator warns about each).

KubeEdge manifests in the wild are written by hand and copied from old samples. These helpers
read them the way their authors meant; :mod:`twinplane.manifests.validate` reports every use as a
warning naming the path, never silently:

- numbers and booleans quoted as strings where the schema wants an integer or a boolean
  (``collectCycle: "1000"``, ``reportToCloud: "true"``), and the reverse, a bare number where the
  schema wants a string (``minimum: 0``, ``desired: {value: 30}``);
- enum values in another case (``type: float``, ``accessMode: readonly``);
- nanosecond cycles from samples written before KubeEdge 1.18 (see
  :data:`NANOSECOND_CYCLE_THRESHOLD`);
- a document whose first line is flush left while the rest is indented (pasted from an indented
  Markdown block, as in mappers-go's ``mqttdevice-instance.yaml``).
"""

from __future__ import annotations

import math
import re
from typing import Final

__all__ = [
    "NANOSECOND_CYCLE_THRESHOLD",
    "cycle_from_nanoseconds",
    "dedent_after_first_line",
    "integer_from",
    "text_from_scalar",
    "truth_from_text",
]

NANOSECOND_CYCLE_THRESHOLD: Final = 10_000_000
"""A cycle at or above this many "milliseconds" is read as nanoseconds.

Before KubeEdge 1.18 mapper-framework handed ``collectCycle``/``reportCycle`` to Go's
``time.Duration`` unconverted, so the samples of that time write nanoseconds
(``collectCycle: 10000000000`` for 10 s); since 1.18 the unit is milliseconds, and the same
number means 115 days. 10,000,000 ms is 2.8 hours, an implausible period to poll a device or
report its state, while 10,000,000 ns is 10 ms, below any realistic nanosecond setting. So a value
``>= 10_000_000`` is read as nanoseconds and rounded to the nearest millisecond, with a warning.
The price: a genuine period of 2.8 hours or more cannot be written in milliseconds.
"""

_INT_TEXT: Final = re.compile(r"[+-]?[0-9]+")
_FLOAT_TEXT: Final = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def cycle_from_nanoseconds(value: int) -> int | None:
    """The millisecond cycle a pre-1.18 nanosecond ``value`` meant, or ``None`` if it is ms.

    >>> cycle_from_nanoseconds(10_000_000_000)
    10000
    >>> cycle_from_nanoseconds(10_000) is None
    True
    """
    if value < NANOSECOND_CYCLE_THRESHOLD:
        return None
    return (value + 500_000) // 1_000_000


def integer_from(value: str | float) -> int | None:
    """An integer written as text (``"1000"``, ``"1e4"``) or as an integral float, else ``None``."""
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    text = value.strip()
    if _INT_TEXT.fullmatch(text):
        return int(text)
    if _FLOAT_TEXT.fullmatch(text):
        number = float(text)
        if math.isfinite(number) and number.is_integer():
            return int(number)
    return None


def truth_from_text(value: str) -> bool | None:
    """``True``/``False`` for ``"true"``/``"false"`` in any case, else ``None``."""
    lowered = value.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    return None


def text_from_scalar(value: bool | float) -> str:
    """The string a bare YAML/JSON scalar stands for where the schema wants a string.

    Booleans become ``"true"``/``"false"`` (as Go and YAML spell them), numbers their decimal text.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def dedent_after_first_line(text: str) -> tuple[str, int] | None:
    """Undo a paste where only the first line lost its indentation.

    When the first content line starts in column 0 and every later content line is indented by
    at least ``n > 0`` spaces, returns the text with those ``n`` spaces removed from the later
    lines, and ``n``; otherwise ``None``. Comment lines, blank lines and a leading ``---`` line
    are not content.
    """
    lines = text.splitlines(keepends=True)
    content = [
        i
        for i, line in enumerate(lines)
        if line.strip() and not line.lstrip().startswith("#") and not _is_marker(line)
    ]
    if len(content) < 2 or _indent(lines[content[0]]) != 0:  # noqa: PLR2004 - first + rest
        return None
    shift = min(_indent(lines[i]) for i in content[1:])
    if shift == 0:
        return None
    out = list(lines)
    for i in range(content[0] + 1, len(lines)):
        if lines[i][:shift].strip(" ") == "" and len(lines[i]) > shift:
            out[i] = lines[i][shift:]
    return "".join(out), shift


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_marker(line: str) -> bool:
    return re.match(r"---(\s|$)", line) is not None
