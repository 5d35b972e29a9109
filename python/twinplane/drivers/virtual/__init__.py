"""The virtual driver (protocol ``virtual``): devices without hardware.

- :mod:`~twinplane.drivers.virtual.signals`: how a property's value moves (sine, random walk,
  counter, constant), from its visitor ``configData``;
- :mod:`~twinplane.drivers.virtual.adapter`: :class:`VirtualDriver` and :class:`VirtualClient`.
"""

from twinplane.drivers.virtual.adapter import VirtualClient, VirtualDriver

__all__ = ["VirtualClient", "VirtualDriver"]
