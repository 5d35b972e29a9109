"""The mapper runtime: devices become DMI twins (``twinplane mapper``).

Data flow, one concept per module:

- :mod:`~twinplane.mapper.config`: mapper-framework's ``config.yaml`` keys and the flags;
- :mod:`~twinplane.mapper.driver`: the driver interface protocol authors implement, and the
  registry of drivers by protocol;
- :mod:`~twinplane.mapper.virtual` and :mod:`~twinplane.mapper.modbus_driver`: built-in drivers;
- :mod:`~twinplane.mapper.instance`: a DMI ``Device`` decoded once for running;
- :mod:`~twinplane.mapper.scheduler`: one task per bus polling devices into the engine;
- :mod:`~twinplane.mapper.reporter`: the engine's changes and device states to the device manager;
- :mod:`~twinplane.mapper.server`: ``DeviceMapperService`` on the mapper's socket;
- :mod:`~twinplane.mapper.runtime`: registration and the devices' lifecycle.
"""
