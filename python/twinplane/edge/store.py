"""The device manager's local store: SQLite in WAL mode, a sync core and its asyncio face.

What is kept (the device side of what KubeEdge's EdgeCore keeps in ``edgecore.db``, spec §3.7):
the ``Device`` and ``DeviceModel`` manifests as applied (with a generation), the registered
mappers, every twin property (the engine's persisted JSON), device states, and an outbox of events
for the cloud link. A device's id is ``<namespace>/<name>`` (:func:`device_id`); deleting a
``Device`` deletes its twins and state in the same transaction (a trigger in the schema).

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

Threads. :class:`EdgeStore` is synchronous and belongs to the thread that opened it (sqlite3's
``check_same_thread`` stays on and enforces it). :class:`AsyncEdgeStore` opens it on its own
single worker thread and sends every call there, so the event loop never waits on the disk and
all writes are applied in the order they were made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, TypeVar, TypeVarTuple

import msgspec

from twinplane.edge import migrations
from twinplane.errors import TwinplaneError

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
    "TwinBody",
    "device_id",
]

log = logging.getLogger(__name__)

DEVICE: Final = "Device"
"""The ``kind`` of a Device manifest."""
DEVICE_MODEL: Final = "DeviceModel"
"""The ``kind`` of a DeviceModel manifest."""

TwinBody = Mapping[str, Any] | str
"""A twin property's body: a TwinDict-shaped mapping, or its JSON text as the engine's
``take_dirty()`` returns it (stored verbatim, not parsed)."""

_WAL_SIZE_LIMIT: Final = 64 * 1024 * 1024  # bytes the WAL is truncated to after a checkpoint
_CACHE_KIB: Final = 32 * 1024  # SQLite page cache (100,000 twins take about 20 MiB)
_CHECKPOINT_PAGES: Final = 8192  # WAL pages (4 KiB) between automatic checkpoints: 32 MiB
_SORTED: Final = msgspec.json.Encoder(order="sorted")  # manifests: equal dicts, equal text
_PLAIN: Final = msgspec.json.Encoder()
_DICT: Final = msgspec.json.Decoder(dict[str, Any])
_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


class StoreError(TwinplaneError):
    """A local store operation failed.

    Attributes:
        db_path: The database file.
    """

    def __init__(
        self,
        message: str,
        *,
        db_path: str = "",
        device: str | None = None,
        property: str | None = None,  # noqa: A002 - the domain's own word
    ) -> None:
        super().__init__(message, device=device, property=property)
        self.db_path = db_path


class StoreVersionError(StoreError):
    """The database was written by a newer twinplane; it was left untouched.

    Attributes:
        found: The database's schema version.
        supported: The newest schema version this code knows.
    """

    def __init__(self, message: str, *, db_path: str, found: int, supported: int) -> None:
        super().__init__(message, db_path=db_path)
        self.found = found
        self.supported = supported


class StoredObject(msgspec.Struct, frozen=True):
    """A manifest as applied; ``generation`` starts at 1 and grows by one per change."""

    kind: str
    namespace: str
    name: str
    body: dict[str, Any]
    generation: int
    updated_ms: int


class StoredMapper(msgspec.Struct, frozen=True):
    """A registered mapper (DMI ``MapperInfo``; ``address`` is its socket path)."""

    name: str
    protocol: str
    address: str
    version: str
    api_version: str
    state: str
    registered_ms: int


class StoredState(msgspec.Struct, frozen=True):
    """A device's last reported state (``online``, ``offline``, ...)."""

    device_id: str
    state: str
    last_online: str
    updated_ms: int


class OutboxEntry(msgspec.Struct, frozen=True):
    """An event waiting for the cloud link; ``id`` grows and is never reused."""

    id: int
    topic: str
    payload: bytes
    created_ms: int


def device_id(namespace: str, name: str) -> str:
    """The id of a device and of its twins: ``<namespace>/<name>``, as in KubeEdge."""
    return f"{namespace}/{name}"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _json(body: Mapping[str, Any], encoder: msgspec.json.Encoder) -> str:
    return encoder.encode(body if isinstance(body, dict) else dict(body)).decode()


class EdgeStore:
    """The synchronous store over one SQLite connection; open it with :meth:`open`.

    Every method is one transaction (``BEGIN IMMEDIATE``, so writers queue on
    ``busy_timeout`` instead of failing on a lock upgrade) and raises :class:`StoreError`
    instead of ``sqlite3`` errors. Use it from the thread that opened it.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._path = path

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, busy_timeout_ms: int = 5000) -> Self:
        """Opens (creating it and its parent folders if needed) and migrates a database.

        Args:
            path: The database file.
            busy_timeout_ms: How long a statement waits for another connection's lock.

        Raises:
            StoreVersionError: The schema is newer than this code; the file is untouched.
            StoreError: The file is not a twinplane database (untouched too), or SQLite failed.
        """
        file = Path(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(file, timeout=busy_timeout_ms / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {file}: {exc}", db_path=str(file)) from exc
        try:
            _prepare(conn, file, busy_timeout_ms)
        except BaseException:
            conn.close()
            raise
        return cls(conn, file)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    def close(self) -> None:
        """Closes the connection (idempotent); the last connection checkpoints the WAL."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"{what}: {exc}", db_path=str(self._path)) from exc

    @contextlib.contextmanager
    def _tx(self, what: str) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        with self._errors(what):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _read(self, what: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._errors(what):
            return self._conn.execute(sql, params).fetchall()

    def pragmas(self) -> dict[str, int | str]:
        """The connection's settings and schema version, for diagnostics."""
        names = ("journal_mode", "synchronous", "foreign_keys", "busy_timeout", "user_version")
        return {n: self._read("pragmas", f"PRAGMA {n}")[0][0] for n in names}

    # -- manifests ------------------------------------------------------------------------

    def put_object(self, kind: str, namespace: str, name: str, body: Mapping[str, Any]) -> int:
        """Stores a manifest; returns its generation (unchanged body: same one, no write)."""
        text = _json(body, _SORTED)
        with self._tx("put_object") as conn:
            row = conn.execute(
                "SELECT body, generation FROM objects WHERE kind=? AND namespace=? AND name=?",
                (kind, namespace, name),
            ).fetchone()
            if row is not None and row[0] == text:
                return int(row[1])
            generation = 1 if row is None else int(row[1]) + 1
            conn.execute(
                "INSERT INTO objects VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (kind, namespace, name)"
                " DO UPDATE SET"
                " body=excluded.body, generation=excluded.generation,"
                " updated_ms=excluded.updated_ms",
                (kind, namespace, name, text, generation, _now_ms()),
            )
        return generation

    def get_object(self, kind: str, namespace: str, name: str) -> StoredObject | None:
        """The stored manifest, or ``None``."""
        rows = self._read(
            "get_object",
            "SELECT * FROM objects WHERE kind=? AND namespace=? AND name=?",
            (kind, namespace, name),
        )
        return _object(rows[0]) if rows else None

    def list_objects(self, kind: str, namespace: str | None = None) -> list[StoredObject]:
        """The manifests of a kind (in one namespace if given), by namespace and name."""
        sql = "SELECT * FROM objects WHERE kind=?"
        params: tuple[str, ...] = (kind,)
        if namespace is not None:
            sql, params = sql + " AND namespace=?", (kind, namespace)
        rows = self._read("list_objects", sql + " ORDER BY namespace, name", params)
        return [_object(r) for r in rows]

    def delete_object(self, kind: str, namespace: str, name: str) -> bool:
        """Deletes a manifest (a Device with its twins and state); whether it existed."""
        with self._tx("delete_object") as conn:
            cur = conn.execute(
                "DELETE FROM objects WHERE kind=? AND namespace=? AND name=?",
                (kind, namespace, name),
            )
            return cur.rowcount > 0

    # -- mappers --------------------------------------------------------------------------

    def put_mapper(  # noqa: PLR0913 - one argument per MapperInfo field
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
        """Registers (or re-registers) a mapper; ``registered_ms`` defaults to now."""
        mapper = StoredMapper(
            name,
            protocol,
            address,
            version,
            api_version,
            state,
            _now_ms() if registered_ms is None else registered_ms,
        )
        with self._tx("put_mapper") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO mappers VALUES (?, ?, ?, ?, ?, ?, ?)",
                msgspec.structs.astuple(mapper),
            )
        return mapper

    def get_mapper(self, name: str) -> StoredMapper | None:
        """The registered mapper, or ``None``."""
        rows = self._read("get_mapper", "SELECT * FROM mappers WHERE name=?", (name,))
        return StoredMapper(*rows[0]) if rows else None

    def list_mappers(self) -> list[StoredMapper]:
        """Every registered mapper, by name."""
        return [StoredMapper(*r) for r in self._read("list_mappers", _LIST_MAPPERS)]

    def delete_mapper(self, name: str) -> bool:
        """Forgets a mapper; whether it was registered."""
        with self._tx("delete_mapper") as conn:
            return conn.execute("DELETE FROM mappers WHERE name=?", (name,)).rowcount > 0

    # -- twins ----------------------------------------------------------------------------

    def save_twins(self, rows: Iterable[tuple[str, str, TwinBody]]) -> None:
        """Upserts twin properties ``(device_id, property, body)`` in one transaction.

        Raises:
            StoreError: A body cannot be encoded as JSON (nothing is written), or SQLite failed.
        """
        params, rejected = _encode_twins(rows)
        if rejected:
            device, prop, reason = rejected[0]
            raise StoreError(
                f"twin body of {device} {prop} is not JSON-encodable: {reason}",
                db_path=str(self._path),
                device=device,
                property=prop,
            )
        self._upsert_twins(params)

    def _upsert_twins(self, params: list[tuple[str, str, str]]) -> None:
        with self._tx("save_twins") as conn:
            conn.executemany(_UPSERT_TWIN, params)

    def load_twins(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every stored twin: ``{device_id: {property: body}}``."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for device, prop, text in self._read("load_twins", "SELECT * FROM twins"):
            try:
                out.setdefault(device, {})[prop] = _DICT.decode(text)
            except msgspec.DecodeError as exc:
                raise StoreError(
                    f"stored twin of {device} {prop} is not a JSON object: {exc}",
                    db_path=str(self._path),
                    device=device,
                    property=prop,
                ) from exc
        return out

    def delete_twins(self, device_id: str, properties: Iterable[str] | None = None) -> int:
        """Deletes a device's twins (only ``properties`` if given); how many there were."""
        with self._tx("delete_twins") as conn:
            if properties is None:
                return conn.execute("DELETE FROM twins WHERE device_id=?", (device_id,)).rowcount
            sql = "DELETE FROM twins WHERE device_id=? AND property=?"
            return conn.executemany(sql, [(device_id, p) for p in properties]).rowcount

    # -- device states --------------------------------------------------------------------

    def put_state(self, device_id: str, state: str, last_online: str) -> None:
        """Records a device's state and when it was last online (KubeEdge keeps both as text)."""
        with self._tx("put_state") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO device_states VALUES (?, ?, ?, ?)",
                (device_id, state, last_online, _now_ms()),
            )

    def put_states(self, states: Iterable[tuple[str, str, str]]) -> None:
        """Records many ``(device_id, state, last_online)`` in one transaction."""
        now = _now_ms()
        with self._tx("put_states") as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO device_states VALUES (?, ?, ?, ?)",
                [(device, state, last_online, now) for device, state, last_online in states],
            )

    def put_objects(self, objects: Iterable[tuple[str, str, str, Mapping[str, Any]]]) -> list[int]:
        """:meth:`put_object` for many ``(kind, namespace, name, body)``; their generations.

        One transaction: all are stored, or none.
        """
        rows = [(kind, ns, name, _json(body, _SORTED)) for kind, ns, name, body in objects]
        out = []
        now = _now_ms()
        with self._tx("put_objects") as conn:
            for kind, namespace, name, text in rows:
                row = conn.execute(
                    "SELECT body, generation FROM objects WHERE kind=? AND namespace=? AND name=?",
                    (kind, namespace, name),
                ).fetchone()
                if row is not None and row[0] == text:
                    out.append(int(row[1]))
                    continue
                generation = 1 if row is None else int(row[1]) + 1
                conn.execute(
                    "INSERT INTO objects VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (kind, namespace, name) DO UPDATE SET"
                    " body=excluded.body, generation=excluded.generation,"
                    " updated_ms=excluded.updated_ms",
                    (kind, namespace, name, text, generation, now),
                )
                out.append(generation)
        return out

    def get_state(self, device_id: str) -> StoredState | None:
        """A device's recorded state, or ``None``."""
        sql = "SELECT * FROM device_states WHERE device_id=?"
        rows = self._read("get_state", sql, (device_id,))
        return StoredState(*rows[0]) if rows else None

    def list_states(self) -> list[StoredState]:
        """Every recorded device state, by device id."""
        sql = "SELECT * FROM device_states ORDER BY device_id"
        return [StoredState(*r) for r in self._read("list_states", sql)]

    # -- cloud outbox ---------------------------------------------------------------------

    def append_outbox(self, topic: str, payload: bytes) -> int:
        """Appends an event for the cloud link; returns its id."""
        with self._tx("append_outbox") as conn:
            cur = conn.execute(
                "INSERT INTO events_outbox (topic, payload, created_ms) VALUES (?, ?, ?)",
                (topic, payload, _now_ms()),
            )
            return int(cur.lastrowid or 0)

    def list_outbox(self, limit: int = 100) -> list[OutboxEntry]:
        """The oldest ``limit`` events, oldest first."""
        sql = "SELECT * FROM events_outbox ORDER BY id LIMIT ?"
        return [OutboxEntry(*r) for r in self._read("list_outbox", sql, (limit,))]

    def delete_outbox(self, through_id: int) -> int:
        """Deletes the events up to and including ``through_id``; how many there were."""
        with self._tx("delete_outbox") as conn:
            return conn.execute("DELETE FROM events_outbox WHERE id<=?", (through_id,)).rowcount


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

    async def append_outbox(self, topic: str, payload: bytes) -> int:
        """See :meth:`EdgeStore.append_outbox`."""
        return await self._call(self._sync().append_outbox, topic, payload)

    async def list_outbox(self, limit: int = 100) -> list[OutboxEntry]:
        """See :meth:`EdgeStore.list_outbox`."""
        return await self._call(self._sync().list_outbox, limit)

    async def delete_outbox(self, through_id: int) -> int:
        """See :meth:`EdgeStore.delete_outbox`."""
        return await self._call(self._sync().delete_outbox, through_id)


_LIST_MAPPERS: Final = "SELECT * FROM mappers ORDER BY name"
_UPSERT_TWIN: Final = (
    "INSERT INTO twins VALUES (?, ?, ?)"
    " ON CONFLICT (device_id, property) DO UPDATE SET body=excluded.body"
)


def _object(row: tuple[Any, ...]) -> StoredObject:
    kind, namespace, name, text, generation, updated_ms = row
    return StoredObject(kind, namespace, name, _DICT.decode(text), generation, updated_ms)


def _encode_twins(
    rows: Iterable[tuple[str, str, TwinBody]],
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    params: list[tuple[str, str, str]] = []
    rejected: list[tuple[str, str, str]] = []
    for device, prop, body in rows:
        if isinstance(body, str):
            params.append((device, prop, body))
            continue
        try:
            params.append((device, prop, _json(body, _PLAIN)))
        except (TypeError, ValueError, msgspec.EncodeError) as exc:
            rejected.append((device, prop, str(exc)))
    return params, rejected


def _prepare(conn: sqlite3.Connection, path: Path, busy_timeout_ms: int) -> None:
    """Checks, configures and migrates a fresh connection (see :meth:`EdgeStore.open`)."""
    where = str(path)
    try:
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms:d}")
        # Only reads until the file is known to be ours and not newer: a refused file is left
        # byte for byte as it was (switching to WAL alone would rewrite its header).
        version = migrations.user_version(conn)
        app_id = migrations.application_id(conn)
        if version > migrations.LATEST:
            raise StoreVersionError(
                f"{path} has schema version {version}, newer than the {migrations.LATEST} this"
                " twinplane knows; it was written by a newer release (upgrade, or move the file"
                " away to start empty)",
                db_path=where,
                found=version,
                supported=migrations.LATEST,
            )
        foreign = app_id == 0 and (version > 0 or migrations.has_tables(conn))
        if foreign or app_id not in (0, migrations.APPLICATION_ID):
            raise StoreError(
                f"{path} is not a twinplane edge database (application_id {app_id:#x},"
                f" user_version {version}); refusing to change it",
                db_path=where,
            )
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{path}: cannot use WAL mode (got {mode!r})", db_path=where)
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT:d}")
        # Every twin of a dense node changes every second: keep the twins table's pages in
        # memory (no read per upsert) and checkpoint every 32 MiB of WAL instead of 4 MiB, so
        # a page rewritten many times between checkpoints is copied to the database once.
        conn.execute(f"PRAGMA cache_size = {-_CACHE_KIB:d}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {_CHECKPOINT_PAGES:d}")
        for step in migrations.migrate(conn, migrations.MIGRATIONS):
            log.info("edge store %s: schema %d: %s", path, step.version, step.description)
        if (now := migrations.user_version(conn)) != migrations.LATEST:
            raise StoreVersionError(
                f"{path} was migrated to schema {now} by another process meanwhile",
                db_path=where,
                found=now,
                supported=migrations.LATEST,
            )
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}", db_path=where) from exc
