"""The synchronous store: one SQLite connection with the methods of every table."""

from __future__ import annotations

from twinplane.edge.store.alarms import AlarmTable
from twinplane.edge.store.calls import CallTable
from twinplane.edge.store.cloud_outbox import CloudOutboxTable
from twinplane.edge.store.device_events import DeviceEventTable
from twinplane.edge.store.firmware import FirmwareTable
from twinplane.edge.store.mappers import MapperTable
from twinplane.edge.store.objects import ObjectTable
from twinplane.edge.store.outbox import OutboxTable
from twinplane.edge.store.states import StateTable
from twinplane.edge.store.twins import TwinTable
from twinplane.edge.store.write_errors import WriteErrorTable

__all__ = ["EdgeStore"]


class EdgeStore(
    ObjectTable,
    MapperTable,
    TwinTable,
    StateTable,
    WriteErrorTable,
    OutboxTable,
    CloudOutboxTable,
    DeviceEventTable,
    CallTable,
    AlarmTable,
    FirmwareTable,
):
    """The synchronous store over one SQLite connection; open it with :meth:`open`.

    Every method is one transaction (``BEGIN IMMEDIATE``, so writers queue on
    ``busy_timeout`` instead of failing on a lock upgrade) and raises
    :class:`~twinplane.edge.store.errors.StoreError` instead of ``sqlite3`` errors. Use it from
    the thread that opened it. The connection, pragmas and migrations are
    :class:`~twinplane.edge.store.connection.StoreConnection`'s; each table's methods come from
    its own module.
    """
