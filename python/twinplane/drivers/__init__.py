"""Device drivers: the protocol I/O between a device and the mapper, one folder per protocol.

- :mod:`twinplane.drivers.base`: the driver interface a protocol implements (``Driver``,
  ``FrameClient``, ``ValueClient``, ...); it imports no driver.
- :mod:`twinplane.drivers.registry`: finds a driver by protocol name (entry points of group
  ``twinplane.drivers``, and :func:`~twinplane.drivers.registry.register_driver`).
- :mod:`twinplane.drivers.modbus`: Modbus TCP (a lean pipelined asyncio client) and Modbus RTU
  over serial (through pymodbus), with typed errors, and the adapter that makes them a driver.
- :mod:`twinplane.drivers.virtual`: devices without hardware (sine, random walk, counter).

A new protocol is one new folder here (its wire client and ``adapter.py``) and one entry-point
line in ``pyproject.toml`` (``docs/mapper.md``, "Adding a driver").
"""
