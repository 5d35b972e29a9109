"""Device simulators, for demos, tests and load without hardware.

- :mod:`twinplane.sim.modbus`: :class:`~twinplane.sim.modbus.ModbusSimulator`, a fleet of Modbus
  TCP devices in one process (``twinplane sim modbus``) with changing values and faults on demand
  (:class:`~twinplane.sim.modbus.SimFaults`).
"""
