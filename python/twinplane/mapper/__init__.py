"""The mapper runtime: devices become DMI twins (``twinplane mapper``).

Data flow, one concept per module:

- :mod:`~twinplane.mapper.config`: mapper-framework's ``config.yaml`` keys and the flags;
- the drivers it runs are in :mod:`twinplane.drivers` (the interface, the registry, one folder
  per protocol);
- :mod:`~twinplane.mapper.instance`: a DMI ``Device`` decoded once for running;
- :mod:`~twinplane.mapper.scheduler`: one task per bus polling devices into the engine;
- :mod:`~twinplane.mapper.reporter`: the engine's changes and device states to the device manager;
- :mod:`~twinplane.mapper.server`: ``DeviceMapperService`` on the mapper's socket;
- :mod:`~twinplane.mapper.runtime`: registration and the devices' lifecycle.
"""
