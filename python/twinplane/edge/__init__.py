"""The edge device manager: registry, twins and lifecycle of the devices on one node.

- :mod:`~twinplane.edge.app`: the process's composition root (``twinplane edge``);
- :mod:`~twinplane.edge.core`: the registry, twins and states, and who hears of their changes;
- :mod:`~twinplane.edge.persist`: the one path by which twins reach SQLite;
- :mod:`~twinplane.edge.store`: what the device manager acknowledges (manifests, mappers, twins,
  device states, the cloud outbox) in SQLite, one module per table, and its versioned schema;
- :mod:`~twinplane.edge.events`: the in-process event hub (twin, state, lifecycle events);
- :mod:`~twinplane.edge.dmi_server`, :mod:`~twinplane.edge.twin_stream`,
  :mod:`~twinplane.edge.admission`: DMI ``DeviceManagerService``, the TwinStream fast path
  toward mappers, and their admission budget;
- :mod:`~twinplane.edge.mappers`: the mappers' links (``DeviceMapperService`` clients);
- :mod:`~twinplane.edge.rest`, :mod:`~twinplane.edge.resources`, :mod:`~twinplane.edge.sse`,
  :mod:`~twinplane.edge.metrics`: the REST API, its JSON shapes, its event stream and
  ``/metrics``;
- :mod:`~twinplane.edge.mqtt_bridge`, :mod:`~twinplane.edge.mqtt_payloads`: the ``$hw/events``
  MQTT topics.
"""
