"""The edge device manager: registry, twins and lifecycle of the devices on one node.

:mod:`twinplane.edge.store` persists what the device manager acknowledges (manifests, mappers,
twins, device states, the cloud outbox) in SQLite; :mod:`twinplane.edge.migrations` holds its
versioned schema.
"""
