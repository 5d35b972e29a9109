"""Device drivers: the protocol I/O between a device and the mapper.

- :mod:`twinplane.drivers.modbus`: Modbus TCP (a lean pipelined asyncio client) and Modbus RTU
  over serial (through pymodbus), with typed errors.
"""
