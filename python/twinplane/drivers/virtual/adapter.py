"""The virtual driver: devices without hardware, for demos and tests.

Each property's visitor ``configData`` says how its value moves (a sine, a random walk, a
counter or a constant: :mod:`twinplane.drivers.virtual.signals`). A write sticks: the property
holds the written value from then on (a setpoint), until the device restarts. Values are
returned typed by the property (``INT`` rounds, ``BOOLEAN`` is ``value > 0``, ``STRING`` is the
number's text).
"""

from __future__ import annotations

from collections.abc import Sequence

from twinplane.drivers.base import (
    BusSpec,
    DeviceClient,
    Driver,
    PropertyVisitor,
    ProtocolConfig,
    ValueClient,
)
from twinplane.drivers.virtual.signals import Signal
from twinplane.twin import PropertyTypeName, ValueLike

__all__ = ["VirtualClient", "VirtualDriver"]


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
        self._signals: dict[str, Signal] = {}
        self.inits = 0
        self.stopped = False

    def _signal(self, prop: PropertyVisitor) -> Signal:
        signal = self._signals.get(prop.name)
        if signal is None:
            signal = self._signals[prop.name] = Signal(prop)
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
