"""``twinplane cloud``: the hub edge nodes connect to, and the device controller.

The management plane of KubeEdge's design: Device, DeviceModel and DeviceStatus objects
(``devices.kubeedge.io/v1beta1``) live in a registry — the embedded one (SQLite, served at
Kubernetes' own REST paths) or a real Kubernetes API server — and the device controller
delivers each node's devices down the edge link and writes the twins the edges report into
DeviceStatus objects, coalesced (one write per device per status interval at most).

- :mod:`~twinplane.cloud.registry`: the registry interface and its two implementations.
"""
