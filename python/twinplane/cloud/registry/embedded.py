"""The embedded registry: Device, DeviceModel, DeviceStatus and DeviceCall objects in SQLite.

Kubernetes' semantics without a Kubernetes: one increasing ``resourceVersion`` over every
object; ``uid``, ``creationTimestamp`` and ``generation`` (bumped when ``spec`` changes) kept as
the API server keeps them; conditional writes on a given ``metadata.resourceVersion``; a change
log of the newest ``keep_changes`` changes, from which a watch replays what came after its
version before it streams live changes (a version older than the log raises
:class:`~twinplane.cloud.registry.GoneError`, 410, and the caller relists); bookmarks every
``bookmark_interval`` seconds. Deleting a Device deletes the DeviceStatus and DeviceCalls it
controls (their controller ``ownerReference``), as Kubernetes' garbage collector would.

Every write is one SQLite transaction (WAL, ``synchronous=FULL``) committed before the call
returns; :meth:`EmbeddedRegistry.merge_patch_many` writes a whole batch of status patches in
one. Device and DeviceModel objects are validated by twinplane's manifest loader (every issue a
cause naming its field); DeviceStatus objects by the CRD's shape; DeviceCall objects as
:mod:`twinplane.cloud.device_calls` says (its ``spec`` immutable). A refused write changes
nothing.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import re
import sqlite3
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec

from twinplane.cloud.device_calls import device_call_causes, spec_change_causes
from twinplane.cloud.registry.base import (
    RESOURCE_TYPES,
    RESOURCES,
    AlreadyExistsError,
    ConflictError,
    GoneError,
    InvalidError,
    JsonObject,
    NotFoundError,
    RegistryError,
    Resource,
    WatchEvent,
)
from twinplane.manifests import load_documents
from twinplane.owner_only import make_dirs, private_file
from twinplane.tasks import thread_to_end

__all__ = ["EmbeddedRegistry", "merge_patch"]

NAME: Final = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
"""A DNS-1123 subdomain: what Kubernetes allows as an object's name."""

NAMESPACE: Final = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
"""A DNS-1123 label: what Kubernetes allows as a namespace."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS objects (
        resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
        rv INTEGER NOT NULL, body BLOB NOT NULL,
        PRIMARY KEY (resource, namespace, name)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS changes (
        rv INTEGER PRIMARY KEY, resource TEXT NOT NULL, type TEXT NOT NULL, body BLOB NOT NULL
    )""",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)

_ENC = msgspec.json.Encoder()
_DEC = msgspec.json.Decoder()
_WATCH_QUEUE: Final = 50_000


def merge_patch(target: Any, patch: Any) -> Any:  # noqa: ANN401 - JSON values
    """RFC 7386 JSON merge patch of ``target`` by ``patch`` (neither is modified)."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cause(field: str, message: str, reason: str = "FieldValueInvalid") -> dict[str, str]:
    return {"field": field, "message": message, "reason": reason}


class _Watcher:
    def __init__(self, resource: Resource, namespace: str | None) -> None:
        self.resource = resource
        self.namespace = namespace
        self.queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue(_WATCH_QUEUE)
        self.overflow = False


class EmbeddedRegistry:
    """The registry in one SQLite file (see the module doc).

    Args:
        path: The database file (created, with its folders, owner-only).
        keep_changes: How many changes the watch log keeps.
        bookmark_interval: Seconds between bookmarks on an idle watch.
    """

    name = "embedded"

    def __init__(
        self, path: Path, *, keep_changes: int = 10_000, bookmark_interval: float = 5.0
    ) -> None:
        self.path = path
        self.keep_changes = keep_changes
        self.bookmark_interval = bookmark_interval
        self._conn: sqlite3.Connection | None = None
        self._objects: dict[Resource, dict[tuple[str, str], JsonObject]] = {
            r: {} for r in RESOURCES
        }
        self._log: deque[tuple[int, Resource, WatchEvent]] = deque()
        self._rv = 0
        self._oldest = 0  # a watch from a version below this is too old
        self._lock = asyncio.Lock()
        self._watchers: set[_Watcher] = set()
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Opens (creating) the file and loads every object and the change log."""
        await asyncio.to_thread(self._open)

    def serves(self, resource: Resource) -> bool:
        """Every resource: the embedded registry has them all."""
        return resource in RESOURCES

    def _open(self) -> None:
        make_dirs(self.path.parent)
        private_file(self.path)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        for statement in _SCHEMA:
            conn.execute(statement)
        for resource, body in conn.execute("SELECT resource, body FROM objects"):
            obj = _DEC.decode(body)
            meta = obj["metadata"]
            self._objects[resource][(meta["namespace"], meta["name"])] = obj
        for rv, resource, kind, body in conn.execute(
            "SELECT rv, resource, type, body FROM changes ORDER BY rv"
        ):
            self._log.append((rv, resource, WatchEvent(kind, _DEC.decode(body))))
        row = conn.execute("SELECT value FROM meta WHERE key='rv'").fetchone()
        self._rv = max(int(row[0]) if row else 0, self._log[-1][0] if self._log else 0)
        self._oldest = self._log[0][0] - 1 if self._log else self._rv
        self._conn = conn

    async def close(self) -> None:
        """Closes the file and ends every watch."""
        self._closed = True
        for watcher in list(self._watchers):
            with contextlib.suppress(asyncio.QueueFull):
                watcher.queue.put_nowait(None)
        async with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- reads --------------------------------------------------------------------------------

    async def list(
        self, resource: Resource, namespace: str | None = None
    ) -> tuple[builtins.list[JsonObject], str]:
        """Every object of ``resource`` (in ``namespace``) by namespace and name."""
        objects = self._objects[resource]
        keys = sorted(k for k in objects if namespace is None or k[0] == namespace)
        return [_copy(objects[k]) for k in keys], str(self._rv)

    async def get(self, resource: Resource, namespace: str, name: str) -> JsonObject:
        """One object."""
        obj = self._objects[resource].get((namespace, name))
        if obj is None:
            raise _not_found(resource, namespace, name)
        return _copy(obj)

    # -- writes -------------------------------------------------------------------------------

    async def create(self, resource: Resource, obj: Mapping[str, Any]) -> JsonObject:
        """Stores a new object."""
        body = _copy(dict(obj))
        ns, name = _identity(resource, body)
        async with self._lock:
            if (ns, name) in self._objects[resource]:
                kind = RESOURCES[resource]
                raise AlreadyExistsError(f'{resource} "{name}" already exists in {ns} ({kind})')
            meta = body["metadata"]
            for key in ("resourceVersion", "uid", "creationTimestamp", "generation"):
                meta.pop(key, None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _now()
            meta["generation"] = 1
            _validate(resource, body)
            return (await self._commit([(resource, "ADDED", body)]))[0]

    async def replace(self, resource: Resource, obj: Mapping[str, Any]) -> JsonObject:
        """Replaces an object whole."""
        body = _copy(dict(obj))
        ns, name = _identity(resource, body)
        async with self._lock:
            old = self._current(resource, ns, name)
            _check_version(body, old)
            _keep_identity(body, old)
            _validate(resource, body, old)
            return (await self._commit([(resource, "MODIFIED", body)]))[0]

    async def merge_patch(
        self, resource: Resource, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> JsonObject:
        """Applies a JSON merge patch."""
        result = (await self.merge_patch_many(resource, [(namespace, name, patch)]))[0]
        if isinstance(result, RegistryError):
            raise result
        return result

    async def merge_patch_many(
        self, resource: Resource, patches: Sequence[tuple[str, str, Mapping[str, Any]]]
    ) -> builtins.list[JsonObject | RegistryError]:
        """Applies many merge patches in one transaction; per patch, the object or its error."""
        async with self._lock:
            results: builtins.list[JsonObject | RegistryError] = []
            writes: builtins.list[tuple[Resource, str, JsonObject]] = []
            slots: builtins.list[int] = []
            pending: dict[tuple[str, str], JsonObject] = {}
            for namespace, name, patch in patches:
                try:
                    old = pending.get((namespace, name)) or self._current(resource, namespace, name)
                    if not isinstance(patch, Mapping):
                        raise InvalidError("a merge patch must be a JSON object")
                    body = merge_patch(old, patch)
                    if not isinstance(body.get("metadata"), dict):
                        raise InvalidError("metadata: must be an object", path="metadata")
                    _check_version(body, old)
                    _keep_identity(body, old)
                    _validate(resource, body, old)
                except RegistryError as exc:
                    results.append(exc)
                    continue
                pending[(namespace, name)] = body
                slots.append(len(results))
                results.append(body)
                writes.append((resource, "MODIFIED", body))
            if writes:
                stored = await self._commit(writes)
                for slot, obj in zip(slots, stored, strict=True):
                    results[slot] = obj
            return results

    async def delete(self, resource: Resource, namespace: str, name: str) -> JsonObject:
        """Deletes an object (a Device with the DeviceStatus and DeviceCalls it controls)."""
        async with self._lock:
            old = self._current(resource, namespace, name)
            writes: builtins.list[tuple[Resource, str, JsonObject]] = [
                (resource, "DELETED", _copy(old))
            ]
            if resource == "devices":
                uid = old["metadata"].get("uid")
                dependents: tuple[Resource, ...] = ("devicestatuses", "devicecalls")
                for kind in dependents:
                    for (ns, _), obj in self._objects[kind].items():
                        owners = obj["metadata"].get("ownerReferences") or []
                        if ns == namespace and any(
                            o.get("controller") and o.get("uid") == uid for o in owners
                        ):
                            writes.append((kind, "DELETED", _copy(obj)))
            return (await self._commit(writes))[0]

    def _current(self, resource: Resource, namespace: str, name: str) -> JsonObject:
        obj = self._objects[resource].get((namespace, name))
        if obj is None:
            raise _not_found(resource, namespace, name)
        return obj

    async def _commit(
        self, writes: builtins.list[tuple[Resource, str, JsonObject]]
    ) -> builtins.list[JsonObject]:
        """Stamps versions, writes one transaction, then updates memory and the watchers."""
        if self._conn is None or self._closed:
            raise RegistryError("the registry is closed")
        rv = self._rv
        rows: builtins.list[tuple[Any, ...]] = []
        changes: builtins.list[tuple[int, Resource, str, bytes]] = []
        for resource, kind, body in writes:
            rv += 1
            meta = body["metadata"]
            meta["resourceVersion"] = str(rv)
            if kind == "MODIFIED":
                old = self._objects[resource][(meta["namespace"], meta["name"])]
                generation = int(old["metadata"].get("generation", 1))
                same_spec = old.get("spec") == body.get("spec")
                meta["generation"] = generation if same_spec else generation + 1
            encoded = _ENC.encode(body)
            rows.append((kind, resource, meta["namespace"], meta["name"], rv, encoded))
            changes.append((rv, resource, kind, encoded))
        trim_below = rv - self.keep_changes
        await thread_to_end(self._write, rows, changes, rv, trim_below)
        self._rv = rv
        out = []
        for (resource, kind, body), (version, _, _, encoded) in zip(writes, changes, strict=True):
            key = (body["metadata"]["namespace"], body["metadata"]["name"])
            if kind == "DELETED":
                self._objects[resource].pop(key, None)
            else:
                self._objects[resource][key] = body
            event = WatchEvent(kind, body)  # type: ignore[arg-type]
            self._log.append((version, resource, event))
            self._notify(resource, event)
            out.append(_DEC.decode(encoded))  # the caller's own copy
        while len(self._log) > self.keep_changes:
            self._oldest = self._log.popleft()[0]
        return out

    def _write(
        self,
        rows: builtins.list[tuple[Any, ...]],
        changes: builtins.list[tuple[int, Resource, str, bytes]],
        rv: int,
        trim_below: int,
    ) -> None:
        conn = self._conn
        assert conn is not None  # noqa: S101 - checked by the caller
        conn.execute("BEGIN IMMEDIATE")
        try:
            for kind, resource, namespace, name, version, body in rows:
                if kind == "DELETED":
                    conn.execute(
                        "DELETE FROM objects WHERE resource=? AND namespace=? AND name=?",
                        (resource, namespace, name),
                    )
                else:
                    conn.execute(
                        "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?)",
                        (resource, namespace, name, version, body),
                    )
            conn.executemany("INSERT INTO changes VALUES (?, ?, ?, ?)", changes)
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('rv', ?)", (rv,))
            if trim_below > 0:
                conn.execute("DELETE FROM changes WHERE rv <= ?", (trim_below,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # -- watch --------------------------------------------------------------------------------

    def _notify(self, resource: Resource, event: WatchEvent) -> None:
        ns = event.object["metadata"]["namespace"]
        for watcher in list(self._watchers):
            if watcher.resource != resource or watcher.namespace not in (None, ns):
                continue
            try:
                watcher.queue.put_nowait(event)
            except asyncio.QueueFull:  # a watcher that does not keep up: its watch ends
                watcher.overflow = True
                self._watchers.discard(watcher)

    async def watch(
        self,
        resource: Resource,
        resource_version: str,
        *,
        namespace: str | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Every change after ``resource_version``, in order, then live, with bookmarks."""
        try:
            since = int(resource_version or self._rv)
        except ValueError:
            raise InvalidError(
                f"resourceVersion {resource_version!r} is not one of this registry's",
                path="resourceVersion",
            ) from None
        if self._closed:
            raise RegistryError("the registry is closed")
        if since < self._oldest:
            raise GoneError(
                f"too old resource version: {since} ({self._oldest + 1} is the oldest kept)"
            )
        watcher = _Watcher(resource, namespace)
        self._watchers.add(watcher)  # before the replay: nothing falls between the two
        try:
            last = since
            for version, res, event in builtins.list(self._log):
                if version > since and res == resource and _in(event, namespace):
                    last = version
                    yield event
            while not self._closed:
                try:
                    async with asyncio.timeout(self.bookmark_interval):
                        item = await watcher.queue.get()
                except TimeoutError:
                    yield WatchEvent("BOOKMARK", _bookmark(resource, self._rv))
                    continue
                if item is None or watcher.overflow:
                    return
                version = int(item.resource_version)
                if version <= last:
                    continue  # replayed already
                last = version
                yield item
        finally:
            self._watchers.discard(watcher)


def _in(event: WatchEvent, namespace: str | None) -> bool:
    return namespace is None or event.object["metadata"]["namespace"] == namespace


def _bookmark(resource: Resource, rv: int) -> JsonObject:
    kind = RESOURCE_TYPES[resource]
    return {
        "apiVersion": kind.group_version,
        "kind": kind.kind,
        "metadata": {"resourceVersion": str(rv)},
    }


def _copy(obj: JsonObject) -> JsonObject:
    copied: JsonObject = _DEC.decode(_ENC.encode(obj))
    return copied


def _not_found(resource: Resource, namespace: str, name: str) -> NotFoundError:
    return NotFoundError(f'{resource} "{name}" not found in namespace {namespace}')


def _identity(resource: Resource, body: JsonObject) -> tuple[str, str]:
    """Checks kind, apiVersion, name and namespace; fills in the namespace's default."""
    causes = []
    kind, group_version = RESOURCES[resource], RESOURCE_TYPES[resource].group_version
    if body.get("kind") != kind:
        causes.append(_cause("kind", f"must be {kind} for {resource}, not {body.get('kind')!r}"))
    if body.get("apiVersion") != group_version:
        causes.append(
            _cause("apiVersion", f"must be {group_version}, not {body.get('apiVersion')!r}")
        )
    meta = body.get("metadata")
    if not isinstance(meta, dict):
        raise InvalidError("metadata: must be an object", causes=[_cause("metadata", "required")])
    name = meta.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        causes.append(
            _cause(
                "metadata.name",
                f"{name!r} is not a valid name: lower-case letters, digits, '-' and '.', "
                "starting and ending with a letter or digit, at most 253 characters",
            )
        )
    ns = meta.get("namespace") or "default"
    if not isinstance(ns, str) or not NAMESPACE.fullmatch(ns):
        causes.append(_cause("metadata.namespace", f"{ns!r} is not a valid namespace"))
    if causes:
        raise _invalid(kind, str(name), causes)
    meta["namespace"] = ns
    return ns, str(name)


def _invalid(kind: str, name: str, causes: builtins.list[dict[str, str]]) -> InvalidError:
    first = causes[0]
    more = f" (and {len(causes) - 1} more)" if len(causes) > 1 else ""
    return InvalidError(
        f'{kind} "{name}" is invalid: {first["field"]}: {first["message"]}{more}',
        causes=causes,
        path=first["field"],
    )


def _check_version(body: JsonObject, old: JsonObject) -> None:
    wanted = body["metadata"].get("resourceVersion")
    current = old["metadata"]["resourceVersion"]
    if wanted not in (None, "", current):
        name = old["metadata"]["name"]
        raise ConflictError(
            f'Operation cannot be fulfilled on "{name}": the object has been modified '
            f"(resourceVersion {wanted}, now {current}); read it again and retry"
        )


def _keep_identity(body: JsonObject, old: JsonObject) -> None:
    """What a write may not change: identity and the server's fields."""
    meta, was = body["metadata"], old["metadata"]
    if meta.get("name") != was["name"] or (meta.get("namespace") or "default") != was["namespace"]:
        raise _invalid(
            str(old.get("kind")),
            str(was["name"]),
            [_cause("metadata.name", "a write may not rename an object")],
        )
    for key in ("uid", "creationTimestamp", "namespace"):
        meta[key] = was[key]
    meta.setdefault("generation", was.get("generation", 1))
    body["kind"], body["apiVersion"] = old["kind"], old["apiVersion"]


def _validate(resource: Resource, body: JsonObject, old: JsonObject | None = None) -> None:
    kind = RESOURCES[resource]
    name = str(body["metadata"]["name"])
    if resource == "devicestatuses":
        causes = _status_causes(body)
    elif resource == "devicecalls":
        found = device_call_causes(body) + (spec_change_causes(old, body) if old else [])
        causes = [_cause(path, message) for path, message in found]
    else:
        loaded = load_documents(_ENC.encode(body), source=f"{resource}/{name}")
        causes = [_cause(i.path or "<object>", i.message, str(i.code)) for i in loaded.errors]
    if causes:
        raise _invalid(kind, name, causes)


def _status_causes(body: JsonObject) -> builtins.list[dict[str, str]]:
    """The DeviceStatus CRD's shape (``status.twins[]``, ``state``, ``lastOnlineTime``)."""
    status = body.get("status", {})
    if not isinstance(status, dict):
        return [_cause("status", "must be an object")]
    twins = status.get("twins", [])
    if not isinstance(twins, builtins.list):
        return [_cause("status.twins", "must be a list")]
    causes: builtins.list[dict[str, str]] = []
    for i, twin in enumerate(twins):
        causes += _twin_causes(f"status.twins[{i}]", twin)
    causes += [
        _cause(f"status.{key}", "must be a string")
        for key in ("state", "lastOnlineTime")
        if key in status and not isinstance(status[key], str)
    ]
    if "extensions" in status and not isinstance(status["extensions"], dict):
        causes.append(_cause("status.extensions", "must be an object"))
    return causes


def _twin_causes(path: str, twin: object) -> builtins.list[dict[str, str]]:
    if not isinstance(twin, dict):
        return [_cause(path, "must be an object")]
    causes = []
    if not isinstance(twin.get("propertyName"), str):
        causes.append(_cause(f"{path}.propertyName", "must be a string", "FieldValueRequired"))
    for side in ("reported", "observedDesired"):
        value = twin.get(side)
        if value is None:
            continue
        if not isinstance(value, dict):
            causes.append(_cause(f"{path}.{side}", "must be an object"))
            continue
        if not isinstance(value.get("value"), str):
            causes.append(
                _cause(f"{path}.{side}.value", "Required value: a string", "FieldValueRequired")
            )
        meta = value.get("metadata", {})
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            causes.append(_cause(f"{path}.{side}.metadata", "must map strings to strings"))
    return causes
