"""The device manager's local store: SQLite in WAL mode, a sync core and its asyncio face.

What is kept (the device side of what KubeEdge's EdgeCore keeps in ``edgecore.db``, spec §3.7):
the ``Device`` and ``DeviceModel`` manifests as applied (with a generation), the registered
mappers, every twin property (the engine's persisted JSON), device states, the last failed desired
write of each twin property, and an outbox of events for the cloud link. A device's id is
``<namespace>/<name>`` (:func:`device_id`); deleting a ``Device`` deletes its twins, state and
write errors in the same transaction (triggers in the schema).

One file per concept:

- :mod:`~twinplane.edge.store.connection`: opening, pragmas, the migration check, transactions;
- :mod:`~twinplane.edge.store.migrations`: the schema as ordered steps;
- :mod:`~twinplane.edge.store.objects`, :mod:`~twinplane.edge.store.mappers`,
  :mod:`~twinplane.edge.store.twins`, :mod:`~twinplane.edge.store.states`,
  :mod:`~twinplane.edge.store.write_errors`, :mod:`~twinplane.edge.store.outbox`,
  :mod:`~twinplane.edge.store.alarms`: one table
  each, its rows and its methods;
- :mod:`~twinplane.edge.store.sync_store`: :class:`EdgeStore`, every table on one connection;
- :mod:`~twinplane.edge.store.async_store`: :class:`AsyncEdgeStore`, its asyncio face;
- :mod:`~twinplane.edge.store.errors`: :class:`StoreError`, :class:`StoreVersionError`.

Durability. The database runs with ``journal_mode=WAL`` and ``synchronous=FULL``:

* every commit appends to the WAL and fsyncs it before the call returns, so a write whose call
  returned (a manifest, a lifecycle change, twins whose ``save_twins`` returned) survives
  ``kill -9`` of the process *and* a power loss, on storage that honours fsync. A transaction
  cut short by either is rolled back as a whole at the next open; the file is never left
  half-written.
* which twins are written when is the device manager's business, not the store's: one path
  (:mod:`twinplane.edge.persist`) writes the engine's changed twins with one ``save_twins``
  transaction every 0.1 s, and at once when they must be durable before an answer.

``synchronous=NORMAL`` would also survive ``kill -9`` (the WAL is in the OS page cache) but could
lose the last commits to a power loss. FULL is used for every commit because it is the one rule
that is simple to reason about and it is cheap here: twin writes commit at most ten times a
second plus one per acknowledged desired value or apply.
"""

from twinplane.edge.store.async_store import AsyncEdgeStore
from twinplane.edge.store.errors import StoreError, StoreVersionError
from twinplane.edge.store.mappers import StoredMapper
from twinplane.edge.store.objects import DEVICE, DEVICE_MODEL, StoredObject, device_id
from twinplane.edge.store.outbox import OutboxEntry
from twinplane.edge.store.states import StoredState
from twinplane.edge.store.sync_store import EdgeStore
from twinplane.edge.store.twins import TwinBody
from twinplane.edge.store.write_errors import StoredWriteError

__all__ = [
    "DEVICE",
    "DEVICE_MODEL",
    "AsyncEdgeStore",
    "EdgeStore",
    "OutboxEntry",
    "StoreError",
    "StoreVersionError",
    "StoredMapper",
    "StoredObject",
    "StoredState",
    "StoredWriteError",
    "TwinBody",
    "device_id",
]
