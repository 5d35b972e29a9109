"""An informer: the cache of one resource kept current by list + watch, as client-go's is.

:class:`Informer` lists the resource, then watches from the list's ``resourceVersion``; a watch
that ends is resumed from the last version seen (a bookmark moves it too), and a version the
registry no longer keeps (:class:`~twinplane.cloud.registry.GoneError`, HTTP 410) leads to a
relist, whose differences to the cache are delivered as the events they stand for, so a handler
never misses a deletion that happened while it was not watching. Other registry errors are
retried with a capped, jittered backoff. The handler is called with ``(type, object)`` for
``ADDED``, ``MODIFIED`` and ``DELETED``; it must not block (it queues work by key).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

from twinplane.cloud.registry import GoneError, Registry, RegistryError, Resource

__all__ = ["Handler", "Informer", "object_key"]

log = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], None]


def object_key(obj: dict[str, Any]) -> str:
    """``<namespace>/<name>`` of an object."""
    meta = obj.get("metadata", {})
    return f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"


class Informer:
    """Keeps :attr:`cache` (key → object) of one resource current and tells ``handler``.

    Args:
        registry: Where the objects live.
        resource: The resource to watch.
        handler: Called for every change, in order.
        backoff_max: The longest wait between failed attempts (seconds).
    """

    def __init__(
        self,
        registry: Registry,
        resource: Resource,
        handler: Handler,
        *,
        backoff_max: float = 10.0,
    ) -> None:
        self.registry = registry
        self.resource = resource
        self.handler = handler
        self.cache: dict[str, dict[str, Any]] = {}
        self.resource_version = ""
        self.relists = 0
        self.synced = asyncio.Event()
        self._backoff_max = backoff_max
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Starts listing and watching in a task."""
        self._task = asyncio.create_task(self._run(), name=f"informer {self.resource}")

    async def stop(self) -> None:
        """Stops watching."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        failures = 0
        need_list = True
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                seen = 0
                async for event in self.registry.watch(self.resource, self.resource_version):
                    failures = 0
                    seen += 1
                    self._on_event(event.type, event.object)
                if not seen:  # a watch that ends at once: do not spin
                    await asyncio.sleep(0.2)
            except GoneError:
                log.info("watch expired, relisting", extra={"resource": self.resource})
                need_list = True
                continue
            except RegistryError as exc:
                failures += 1
                delay = min(self._backoff_max, 0.2 * 2**failures) * random.uniform(0.5, 1.0)  # noqa: S311
                log.warning(
                    "registry %s failed (%s); retrying in %.1f s",
                    self.resource,
                    exc,
                    delay,
                    extra={"resource": self.resource},
                )
                await asyncio.sleep(delay)

    async def _relist(self) -> None:
        items, version = await self.registry.list(self.resource)
        self.relists += 1
        fresh = {object_key(o): o for o in items}
        for key in [k for k in self.cache if k not in fresh]:
            self.handler("DELETED", self.cache.pop(key))
        for key, obj in fresh.items():
            old = self.cache.get(key)
            if old is None:
                self.cache[key] = obj
                self.handler("ADDED", obj)
            elif _rv(old) != _rv(obj):
                self.cache[key] = obj
                self.handler("MODIFIED", obj)
        self.resource_version = version
        self.synced.set()

    def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        version = _rv(obj)
        if version:
            self.resource_version = version
        if kind == "BOOKMARK":
            return
        key = object_key(obj)
        if kind == "DELETED":
            if self.cache.pop(key, None) is not None:
                self.handler("DELETED", obj)
            return
        kind = "MODIFIED" if key in self.cache else "ADDED"
        self.cache[key] = obj
        self.handler(kind, obj)


def _rv(obj: dict[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("resourceVersion", ""))
