"""How a virtual property's value moves: one generator per property, from its visitor config.

Each property's visitor ``configData`` says it:

- ``{"kind": "sine", "amplitude": 10, "offset": 20, "periodMs": 60000}``: a sine of wall time;
- ``{"kind": "randomwalk", "start": 20, "step": 0.5, "min": 0, "max": 40, "seed": 1}``: each read
  moves by up to ``step``, kept within ``[min, max]``;
- ``{"kind": "counter", "start": 0, "step": 1, "max": 1000}``: counts per read, wrapping to
  ``start`` past ``max``;
- no ``kind`` (or ``"constant"``), with an optional ``value``: holds its value.

A held value (a constant's, or a written one) is returned as text, for the engine to parse by
the property's type.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping

from twinplane.drivers.base import PropertyVisitor
from twinplane.errors import SpecError

__all__ = ["KINDS", "Signal"]

KINDS = ("constant", "sine", "randomwalk", "counter")


def _number(config: Mapping[str, object], key: str, default: float, path: str) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SpecError(f"{key} must be a number", path=f"{path}.{key}")
    try:
        return float(value)
    except ValueError:
        raise SpecError(f"{key} {value!r} is not a number", path=f"{path}.{key}") from None


class Signal:
    """One property's generator; :meth:`next` is its value at the next read.

    Attributes:
        held: A value that overrides the generator (a constant's, or the last write).
    """

    def __init__(self, prop: PropertyVisitor) -> None:
        cfg = prop.config
        path = f"{prop.name}.visitors.configData"
        kind = str(cfg.get("kind", "constant")).lower()
        if kind not in KINDS:
            raise SpecError(
                f"unknown virtual kind {kind!r}; allowed: {', '.join(KINDS)}", path=f"{path}.kind"
            )
        self.kind = kind
        self.held: str | None = None
        initial = cfg.get("value")
        if kind == "constant" and initial is not None:
            self.held = str(initial).lower() if isinstance(initial, bool) else str(initial)
        self.amplitude = _number(cfg, "amplitude", 1.0, path)
        self.offset = _number(cfg, "offset", 0.0, path)
        self.period_ms = max(_number(cfg, "periodMs", 60_000.0, path), 1.0)
        self.step = _number(cfg, "step", 1.0, path)
        self.low = _number(cfg, "min", -math.inf, path)
        self.high = _number(cfg, "max", math.inf, path)
        self.start = _number(cfg, "start", 0.0, path)
        seed = cfg.get("seed")
        self.rng = random.Random(seed if isinstance(seed, int | str) else None)  # noqa: S311
        self.current = self.start

    def next(self) -> float | str:
        """The next value: the held text, or the generator's number."""
        if self.held is not None:
            return self.held
        if self.kind == "sine":
            phase = 2 * math.pi * ((time.time() * 1000.0) % self.period_ms) / self.period_ms
            return self.offset + self.amplitude * math.sin(phase)
        if self.kind == "randomwalk":
            moved = self.current + self.rng.uniform(-self.step, self.step)
            self.current = min(max(moved, self.low), self.high)
            return self.current
        if self.kind == "counter":
            value = self.current
            following = self.current + self.step
            self.current = self.start if following > self.high else following
            return value
        return 0.0
