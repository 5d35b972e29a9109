"""The asyncio face of the store: every SQLite call on one worker thread, in call order.

:class:`~twinplane.edge.store.EdgeStore` is synchronous and belongs to the thread that opened it
(sqlite3's ``check_same_thread`` stays on and enforces it). :class:`AsyncEdgeStore` opens it on
its own single worker thread and sends every call there, so the event loop never waits on the
disk and all writes are applied in the order they were made.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar, TypeVarTuple

from twinplane.edge.store.alarms import StoredAlarm
from twinplane.edge.store.calls import StoredCall
from twinplane.edge.store.cloud_outbox import CloudMark
from twinplane.edge.store.device_events import EventQuery, StoredEvent
from twinplane.edge.store.errors import StoreError
from twinplane.edge.store.firmware import StoredFirmware
from twinplane.edge.store.mappers import StoredMapper
from twinplane.edge.store.objects import StoredObject
from twinplane.edge.store.outbox import OutboxEntry
from twinplane.edge.store.states import StoredState
from twinplane.edge.store.sync_store import EdgeStore
from twinplane.edge.store.twins import TwinBody
from twinplane.edge.store.write_errors import StoredWriteError

__all__ = ["AsyncEdgeStore"]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


class AsyncEdgeStore:
    """The asyncio face of :class:`EdgeStore`.

    Every SQLite call runs on one worker thread that owns the connection, in call order, so
    the event loop never blocks on the disk. Use as ``async with AsyncEdgeStore.open(path) as
    store:`` (or :meth:`start` / :meth:`close`). The methods of :class:`EdgeStore` are here as
    coroutines; mappings passed in are read on the worker thread, so leave them unchanged until
    the call returns.

    Args:
        path: The database file.
        busy_timeout_ms: How long SQLite waits for another connection's lock.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_ms: int = 5000) -> None:
        self._path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._executor: ThreadPoolExecutor | None = None
        self._store: EdgeStore | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, busy_timeout_ms: int = 5000) -> Self:
        """The store for ``path``, to use with ``async with`` (arguments as for the class)."""
        return cls(path, busy_timeout_ms=busy_timeout_ms)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Opens the database on the worker thread."""
        if self._executor is not None:
            raise StoreError("store already started", db_path=str(self._path))
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="twinplane-store")
        try:
            path, timeout = self._path, self._busy_timeout_ms
            self._store = await self._call(lambda: EdgeStore.open(path, busy_timeout_ms=timeout))
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def close(self) -> None:
        """Closes the database and stops the worker (idempotent)."""
        executor = self._executor
        if executor is None:
            return
        try:
            if self._store is not None:
                await self._call(self._store.close)
        finally:
            self._store = None
            self._executor = None
            await asyncio.to_thread(executor.shutdown)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    async def _call(self, fn: Callable[[*_Ts], _T], *args: *_Ts) -> _T:
        if self._executor is None:
            raise StoreError("store is not open", db_path=str(self._path))
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _sync(self) -> EdgeStore:
        if self._store is None:
            raise StoreError("store is not open", db_path=str(self._path))
        return self._store

    async def pragmas(self) -> dict[str, int | str]:
        """See :meth:`EdgeStore.pragmas`."""
        return await self._call(self._sync().pragmas)

    async def put_object(
        self, kind: str, namespace: str, name: str, body: Mapping[str, Any]
    ) -> int:
        """See :meth:`EdgeStore.put_object`."""
        return await self._call(self._sync().put_object, kind, namespace, name, body)

    async def get_object(self, kind: str, namespace: str, name: str) -> StoredObject | None:
        """See :meth:`EdgeStore.get_object`."""
        return await self._call(self._sync().get_object, kind, namespace, name)

    async def list_objects(self, kind: str, namespace: str | None = None) -> list[StoredObject]:
        """See :meth:`EdgeStore.list_objects`."""
        return await self._call(self._sync().list_objects, kind, namespace)

    async def delete_object(self, kind: str, namespace: str, name: str) -> bool:
        """See :meth:`EdgeStore.delete_object`."""
        return await self._call(self._sync().delete_object, kind, namespace, name)

    async def put_mapper(  # noqa: PLR0913 - one argument per MapperInfo field
        self,
        name: str,
        *,
        protocol: str,
        address: str,
        version: str = "",
        api_version: str = "",
        state: str = "",
        registered_ms: int | None = None,
    ) -> StoredMapper:
        """See :meth:`EdgeStore.put_mapper`."""
        store = self._sync()
        return await self._call(
            lambda: store.put_mapper(
                name,
                protocol=protocol,
                address=address,
                version=version,
                api_version=api_version,
                state=state,
                registered_ms=registered_ms,
            )
        )

    async def get_mapper(self, name: str) -> StoredMapper | None:
        """See :meth:`EdgeStore.get_mapper`."""
        return await self._call(self._sync().get_mapper, name)

    async def list_mappers(self) -> list[StoredMapper]:
        """See :meth:`EdgeStore.list_mappers`."""
        return await self._call(self._sync().list_mappers)

    async def delete_mapper(self, name: str) -> bool:
        """See :meth:`EdgeStore.delete_mapper`."""
        return await self._call(self._sync().delete_mapper, name)

    async def save_twins(self, rows: Iterable[tuple[str, str, TwinBody]]) -> None:
        """See :meth:`EdgeStore.save_twins`."""
        await self._call(self._sync().save_twins, list(rows))

    async def load_twins(self) -> dict[str, dict[str, dict[str, Any]]]:
        """See :meth:`EdgeStore.load_twins`."""
        return await self._call(self._sync().load_twins)

    async def delete_twins(self, device_id: str, properties: Iterable[str] | None = None) -> int:
        """See :meth:`EdgeStore.delete_twins`."""
        props = None if properties is None else tuple(properties)
        return await self._call(self._sync().delete_twins, device_id, props)

    async def put_state(self, device_id: str, state: str, last_online: str) -> None:
        """See :meth:`EdgeStore.put_state`."""
        await self._call(self._sync().put_state, device_id, state, last_online)

    async def put_states(self, states: list[tuple[str, str, str]]) -> None:
        """See :meth:`EdgeStore.put_states`."""
        await self._call(self._sync().put_states, states)

    async def put_objects(
        self, objects: list[tuple[str, str, str, Mapping[str, Any]]]
    ) -> list[int]:
        """See :meth:`EdgeStore.put_objects`."""
        return await self._call(self._sync().put_objects, objects)

    async def get_state(self, device_id: str) -> StoredState | None:
        """See :meth:`EdgeStore.get_state`."""
        return await self._call(self._sync().get_state, device_id)

    async def list_states(self) -> list[StoredState]:
        """See :meth:`EdgeStore.list_states`."""
        return await self._call(self._sync().list_states)

    async def put_write_errors(
        self, errors: Iterable[StoredWriteError], cleared: Iterable[tuple[str, str]] = ()
    ) -> None:
        """See :meth:`EdgeStore.put_write_errors`."""
        await self._call(self._sync().put_write_errors, list(errors), list(cleared))

    async def list_write_errors(self) -> list[StoredWriteError]:
        """See :meth:`EdgeStore.list_write_errors`."""
        return await self._call(self._sync().list_write_errors)

    async def put_call(self, row: StoredCall, keep: int = 100) -> None:
        """See :meth:`EdgeStore.put_call`."""
        await self._call(self._sync().put_call, row, keep)

    async def get_call(self, call_id: str) -> StoredCall | None:
        """See :meth:`EdgeStore.get_call`."""
        return await self._call(self._sync().get_call, call_id)

    async def list_calls(self, device_id: str, limit: int = 100) -> list[StoredCall]:
        """See :meth:`EdgeStore.list_calls`."""
        return await self._call(self._sync().list_calls, device_id, limit)

    async def open_calls(self) -> list[StoredCall]:
        """See :meth:`EdgeStore.open_calls`."""
        return await self._call(self._sync().open_calls)

    async def append_outbox(self, topic: str, payload: bytes) -> int:
        """See :meth:`EdgeStore.append_outbox`."""
        return await self._call(self._sync().append_outbox, topic, payload)

    async def list_outbox(self, limit: int = 100) -> list[OutboxEntry]:
        """See :meth:`EdgeStore.list_outbox`."""
        return await self._call(self._sync().list_outbox, limit)

    async def delete_outbox(self, through_id: int) -> int:
        """See :meth:`EdgeStore.delete_outbox`."""
        return await self._call(self._sync().delete_outbox, through_id)

    async def mark_cloud(
        self, marks: Iterable[tuple[str, frozenset[str] | None, bool]]
    ) -> list[CloudMark]:
        """See :meth:`EdgeStore.mark_cloud`."""
        return await self._call(self._sync().mark_cloud, list(marks))

    async def list_cloud(self, limit: int = 1000, after_seq: int = 0) -> list[CloudMark]:
        """See :meth:`EdgeStore.list_cloud`."""
        return await self._call(self._sync().list_cloud, limit, after_seq)

    async def count_cloud(self) -> int:
        """See :meth:`EdgeStore.count_cloud`."""
        return await self._call(self._sync().count_cloud)

    async def ack_cloud(self, done: Iterable[tuple[str, int]]) -> int:
        """See :meth:`EdgeStore.ack_cloud`."""
        return await self._call(self._sync().ack_cloud, list(done))

    async def put_events(
        self, events: Iterable[StoredEvent], *, max_count: int, min_ts_ms: int
    ) -> int:
        """See :meth:`EdgeStore.put_events`."""
        rows = list(events)
        store = self._sync()
        return await self._call(
            lambda: store.put_events(rows, max_count=max_count, min_ts_ms=min_ts_ms)
        )

    async def list_events(self, query: EventQuery) -> list[StoredEvent]:
        """See :meth:`EdgeStore.list_events`."""
        return await self._call(self._sync().list_events, query)

    async def last_event_seq(self) -> int:
        """See :meth:`EdgeStore.last_event_seq`."""
        return await self._call(self._sync().last_event_seq)

    async def put_alarms(
        self, alarms: Iterable[StoredAlarm], deleted: Iterable[str] = (), *, max_cleared: int
    ) -> int:
        """See :meth:`EdgeStore.put_alarms`."""
        rows, gone = list(alarms), list(deleted)
        store = self._sync()
        return await self._call(lambda: store.put_alarms(rows, gone, max_cleared=max_cleared))

    async def list_alarms(self) -> list[StoredAlarm]:
        """See :meth:`EdgeStore.list_alarms`."""
        return await self._call(self._sync().list_alarms)

    async def put_firmware(self, fw: StoredFirmware) -> None:
        """See :meth:`EdgeStore.put_firmware`."""
        await self._call(self._sync().put_firmware, fw)

    async def get_firmware(self, name: str, version: str) -> StoredFirmware | None:
        """See :meth:`EdgeStore.get_firmware`."""
        return await self._call(self._sync().get_firmware, name, version)

    async def list_firmware(self) -> list[StoredFirmware]:
        """See :meth:`EdgeStore.list_firmware`."""
        return await self._call(self._sync().list_firmware)

    async def delete_firmware(self, name: str, version: str) -> int | None:
        """See :meth:`EdgeStore.delete_firmware`."""
        return await self._call(self._sync().delete_firmware, name, version)
