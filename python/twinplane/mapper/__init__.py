"""The mapper runtime: devices become DMI twins (``twinplane mapper``).

Data flow, one concept per module:

- :mod:`~twinplane.mapper.config`: mapper-framework's ``config.yaml`` keys and the flags;
- the drivers it runs are in :mod:`twinplane.drivers` (the interface, the registry, one folder
  per protocol);
- :mod:`~twinplane.mapper.instance`: a DMI ``Device`` decoded once for running;
- :mod:`~twinplane.mapper.scheduler`: one task per bus polling devices into the engine;
- :mod:`~twinplane.mapper.reporter`: the engine's changes and device states to the device manager;
- :mod:`~twinplane.mapper.fast_path`: the TwinStream fast path toward twinplane's device manager;
- :mod:`~twinplane.mapper.sinks`: the data plane (push methods and database sinks);
- :mod:`~twinplane.mapper.runtime`: the devices' lifecycle, their buses and the engine;
- :mod:`~twinplane.mapper.server`: ``DeviceMapperService`` on the mapper's socket, over the
  runtime;
- :mod:`~twinplane.mapper.rest`: mapper-framework's REST data API, over the runtime;
- :mod:`~twinplane.mapper.metrics`: ``GET /metrics``;
- :mod:`~twinplane.mapper.register`: the ``MapperRegister`` loop;
- :mod:`~twinplane.mapper.app`: the process's composition root, which builds, starts and stops
  all of the above in order.
"""
