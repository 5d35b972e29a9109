"""Durations as people write them: ``5s``, ``500ms``, ``2m``, ``1h``, or plain seconds (``1.5``)."""

from __future__ import annotations

import math
import re
from typing import Final

from twinplane.errors import SpecError

__all__ = ["parse_duration"]

_DURATION: Final = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*")
_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str | float, what: str) -> float:
    """``text`` in seconds.

    Args:
        text: ``5s``, ``500ms``, ``2m``, ``1h``, or a number of seconds.
        what: The field, named in the error (``wait``, ``ttl``, ``timeout``).

    Raises:
        SpecError: Not a duration; ``path`` is ``what``.
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        if math.isfinite(text) and text >= 0:
            return float(text)
    elif isinstance(text, str):
        match = _DURATION.fullmatch(text)
        if match is not None:
            return float(match[1]) * _UNITS[match[2]]
    raise SpecError(
        f"{what}: {text!r} is not a duration (e.g. 5s, 500ms, 2m, 1h or seconds)", path=what
    )
