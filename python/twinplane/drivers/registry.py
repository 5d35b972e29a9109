"""The drivers by protocol name: Python entry points, and registrations made at run time.

A driver is found in two places, in this order:

1. :func:`register_driver` calls made in this process (a driver defined in a script or a test;
   a later call for the same name replaces an earlier one);
2. the entry points of group :data:`ENTRY_POINT_GROUP` (``twinplane.drivers``) of the installed
   distributions, read with :mod:`importlib.metadata`. twinplane declares its own drivers there
   (``pyproject.toml``)::

       [project.entry-points."twinplane.drivers"]
       modbus = "twinplane.drivers.modbus.adapter:ModbusDriver"
       virtual = "twinplane.drivers.virtual.adapter:VirtualDriver"

   and a separate package adds one the same way, without changing twinplane.

An entry point names a :class:`~twinplane.drivers.base.Driver` class (or any callable that
takes no argument and returns a driver). It is imported only when its protocol is asked for,
so ``twinplane mapper --protocol virtual`` never loads the Modbus driver. The driver interface
(:mod:`twinplane.drivers.base`) knows none of this.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Final, cast

from twinplane.drivers.base import Driver

__all__ = [
    "ENTRY_POINT_GROUP",
    "DriverFactory",
    "get_driver",
    "register_driver",
    "registered_protocols",
]

ENTRY_POINT_GROUP: Final = "twinplane.drivers"
"""The entry-point group drivers are declared in (name: the protocol; value: the factory)."""

DriverFactory = Callable[[], Driver]
"""Makes a new driver: a :class:`~twinplane.drivers.base.Driver` subclass, usually."""

_REGISTERED: dict[str, DriverFactory] = {}


def register_driver(protocol: str, factory: DriverFactory) -> None:
    """Makes a driver available by protocol name in this process (before the entry points)."""
    _REGISTERED[protocol] = factory


def _entry_points() -> dict[str, EntryPoint]:
    """The group's entry points by name; the first distribution that declares a name wins."""
    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(point.name, point)
    return found


def registered_protocols() -> list[str]:
    """The protocol names with a driver, sorted."""
    return sorted(_REGISTERED.keys() | _entry_points().keys())


def get_driver(protocol: str) -> Driver:
    """A new driver for ``protocol``.

    Raises:
        LookupError: No driver serves this protocol, or its entry point cannot be loaded.
    """
    factory = _REGISTERED.get(protocol)
    if factory is None:
        factory = _load(protocol)
    return factory()


def _load(protocol: str) -> DriverFactory:
    point = _entry_points().get(protocol)
    if point is None:
        known = ", ".join(registered_protocols()) or "none"
        raise LookupError(f"no driver for protocol {protocol!r}; known: {known}")
    try:
        loaded: object = point.load()
    except (ImportError, AttributeError) as err:
        raise LookupError(
            f"the driver of protocol {protocol!r} ({point.value}) cannot be loaded: {err}"
        ) from err
    if not callable(loaded):  # one error for every driver that cannot be had, as above
        raise LookupError(  # noqa: TRY004
            f"the driver of protocol {protocol!r} ({point.value}) is not callable"
        )
    return cast("DriverFactory", loaded)
