"""The virtual driver: devices without hardware, for demos and tests.

Each property's visitor ``configData`` says how its value moves:

- ``{"kind": "sine", "amplitude": 10, "offset": 20, "periodMs": 60000}``: a sine of wall time;
- ``{"kind": "randomwalk", "start": 20, "step": 0.5, "min": 0, "max": 40, "seed": 1}``: each read
  moves by up to ``step``, kept within ``[min, max]``;
- ``{"kind": "counter", "start": 0, "step": 1, "max": 1000}``: counts per read, wrapping to
  ``start`` past ``max``;
- no ``kind`` (or ``"constant"``), with an optional ``value``: holds its value.

A write sticks: the property holds the written value from then on (a setpoint), until the device
restarts. Values are returned typed by the property (``INT`` rounds, ``BOOLEAN`` is ``value > 0``,
``STRING`` is the number's text).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping, Sequence

from twinplane.errors import SpecError
from twinplane.mapper.driver import (
    BusSpec,
    DeviceClient,
    Driver,
    PropertyVisitor,
    ProtocolConfig,
    ValueClient,
)
from twinplane.twin import PropertyTypeName, ValueLike

__all__ = ["VirtualClient", "VirtualDriver"]

KINDS = ("constant", "sine", "randomwalk", "counter")


def _number(config: Mapping[str, object], key: str, default: float, path: str) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SpecError(f"{key} must be a number", path=f"{path}.{key}")
    try:
        return float(value)
    except ValueError:
        raise SpecError(f"{key} {value!r} is not a number", path=f"{path}.{key}") from None


class _Signal:
    """One property's generator."""

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


def _typed(value: float | str, type_: PropertyTypeName) -> ValueLike:
    if isinstance(value, str):
        return value  # a written or configured value: the engine parses it by type
    if type_ == "INT":
        return round(value)
    if type_ == "BOOLEAN":
        return value > 0
    if type_ in ("STRING", "STREAM", "BYTES"):
        return f"{value:g}"
    return value


class VirtualClient(ValueClient):
    """A virtual device: one generator per property, created on first read."""

    def __init__(self, protocol: ProtocolConfig) -> None:
        self.protocol = protocol
        self._signals: dict[str, _Signal] = {}
        self.inits = 0
        self.stopped = False

    def _signal(self, prop: PropertyVisitor) -> _Signal:
        signal = self._signals.get(prop.name)
        if signal is None:
            signal = self._signals[prop.name] = _Signal(prop)
        return signal

    async def init_device(self) -> None:
        """Counts starts (tests check a desired change does not restart the device)."""
        self.inits += 1

    async def read(self, batch: Sequence[PropertyVisitor]) -> list[ValueLike]:
        """The next value of each property."""
        return [_typed(self._signal(prop).next(), prop.type) for prop in batch]

    async def write(self, prop: PropertyVisitor, value: str) -> None:
        """Holds ``value`` from now on."""
        self._signal(prop).held = value

    async def stop_device(self) -> None:
        """Marks the device stopped."""
        self.stopped = True


class VirtualDriver(Driver):
    """Protocol ``virtual``: every device on one bus, many polls at once."""

    protocol = "virtual"
    frames = False

    def new_client(self, protocol: ProtocolConfig) -> DeviceClient:
        """A :class:`VirtualClient`."""
        return VirtualClient(protocol)

    def bus(self, protocol: ProtocolConfig) -> BusSpec:
        """One bus for all virtual devices."""
        del protocol
        return BusSpec("virtual", max_in_flight=64)
