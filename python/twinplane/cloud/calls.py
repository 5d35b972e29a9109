"""Method calls made in the cloud: DeviceCall objects delivered to edges, outcomes written back.

An informer watches ``devicecalls`` (:mod:`twinplane.cloud.device_calls` has the object). A call
without an outcome is delivered (:class:`~twinplane.cloud.wire.CallRequest`) to the node of
its device when the node is connected, and again on every reconnect until the edge reports an
outcome: the edge's call id is the object's uid, so a second delivery is the same call. What the
edge says (:class:`~twinplane.cloud.wire.CallUpdate`) is merged into the call's ``status``,
never moving a finished call back, and only from the node that holds the device.

Across a partition: a call made while its node is not connected fails at once (``NodeOffline``)
unless it has ``ttlSeconds`` (a call found at the cloud's start waits :data:`STARTUP_GRACE_S`
for its node first; one an edge already holds is left to that edge). With a TTL it waits in the
cloud and goes down when the node returns, with what is left of its TTL, or ends ``Expired``
when the TTL runs out before the edge accepted it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from twinplane.cloud import wire
from twinplane.cloud.device_calls import FINAL_STATES
from twinplane.cloud.informer import Informer, object_key
from twinplane.cloud.registry import NotFoundError, Registry, RegistryError
from twinplane.tasks import cancel_and_wait

if TYPE_CHECKING:
    from twinplane.cloud.controller import DeviceController, Session

__all__ = ["CallController", "CallStats"]

log = logging.getLogger(__name__)

SWEEP_S: Final = 1.0
"""Seconds between checks for calls whose TTL ran out in the cloud."""

STARTUP_GRACE_S: Final = 30.0
"""After a cloud (re)start, how long a call without TTL waits for its node to reconnect before it
fails ``NodeOffline``: the edges come back within seconds, and a restart must not fail the calls
that were on their way."""

_RANK: Final = {"Pending": 0, "Sent": 1}
"""A state's progress (a finished state ranks 2): an update never lowers it."""


@dataclass(slots=True)
class CallStats:
    """What the call controller did."""

    delivered: int = 0
    updates: int = 0
    refused_updates: int = 0
    status_writes: int = 0
    failed_offline: int = 0
    expired: int = 0


class CallController:
    """Delivers DeviceCalls to their edges and writes what the edges answer into status.

    Args:
        registry: Where the DeviceCall objects live.
        devices: The device controller (which node holds a device; the node sessions).
    """

    def __init__(self, registry: Registry, devices: DeviceController) -> None:
        self.registry = registry
        self.devices = devices
        self.stats = CallStats()
        self.calls = Informer(registry, "devicecalls", self._on_call)
        self.enabled = registry.serves("devicecalls")
        self._by_uid: dict[str, str] = {}
        self._writes: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._started = time.monotonic()

    async def start(self) -> None:
        """Starts the informer (when the registry serves DeviceCalls) and the TTL sweeper."""
        if not self.enabled:
            return
        self._started = time.monotonic()
        self.calls.start()
        await self.calls.synced.wait()
        self._sweeper = asyncio.create_task(self._sweep(), name="device call sweeper")

    async def stop(self) -> None:
        """Stops the informer, the sweeper and waits for the status writes under way."""
        if not self.enabled:
            return
        await self.calls.stop()
        if self._sweeper is not None:
            await cancel_and_wait(self._sweeper)
        if self._writes:
            await asyncio.wait(list(self._writes), timeout=5)

    # -- the informer ---------------------------------------------------------------------

    def _on_call(self, kind: str, obj: dict[str, Any]) -> None:
        uid = str(obj.get("metadata", {}).get("uid", ""))
        if kind == "DELETED":
            self._by_uid.pop(uid, None)
            return
        self._by_uid[uid] = object_key(obj)
        if kind == "ADDED" and not _finished(obj):
            node = self._node(obj)
            session = self.devices.sessions.get(node) if node else None
            if session is not None:
                if session.synced:  # otherwise on_attach sends it once the edge has its devices
                    self._spawn(self._deliver(session, obj))
            elif not _ttl(obj) and self.calls.synced.is_set() and not _accepted(obj):
                # A new call; those listed at start wait for their node (see _sweep).
                self._spawn(self._fail_offline(obj, node))

    # -- delivery -------------------------------------------------------------------------

    async def on_attach(self, session: Session) -> None:
        """A node connected: every call of its devices without an outcome goes down."""
        if not self.enabled:
            return
        for obj in list(self.calls.cache.values()):
            if not _finished(obj) and self._node(obj) == session.node:
                await self._deliver(session, obj)

    async def _deliver(self, session: Session, obj: dict[str, Any]) -> None:
        spec = obj.get("spec", {})
        ttl = _ttl(obj)
        left = None
        if ttl:
            left = ttl - (time.time() - _created_s(obj))
            if left <= 0 and _state(obj) == "Pending":
                await self._expire(obj)
                return
        meta = obj["metadata"]
        request = wire.CallRequest(
            id=session.take_id(),
            call=str(meta["uid"]),
            namespace=str(meta.get("namespace") or "default"),
            device=str(spec.get("deviceRef", {}).get("name", "")),
            method=str(spec.get("method", "")),
            arguments=dict(spec.get("arguments") or {}),
            timeout_s=spec.get("timeoutSeconds"),
            ttl_s=None if left is None else max(left, 0.001),
        )
        self.stats.delivered += 1
        session.post(request)  # lost with the link: resent on the next connect

    # -- what the edges say ---------------------------------------------------------------

    async def on_update(self, session: Session, update: wire.CallUpdate) -> None:
        """An edge's news of a call: merged into the call's status if it may say it."""
        self.stats.updates += 1
        key = self._by_uid.get(update.call)
        obj = self.calls.cache.get(key) if key else None
        if obj is None:
            return  # a call deleted meanwhile, or made on the edge itself
        device_key = f"{update.namespace}/{update.device}"
        spec_device = f"{object_key(obj).split('/')[0]}/{obj['spec']['deviceRef']['name']}"
        if device_key != spec_device or not self.devices.owns(session.node, device_key):
            self.stats.refused_updates += 1
            log.warning(
                "node %s reported call %s of %s, which is not its own; ignored",
                session.node,
                update.call,
                device_key,
            )
            return
        if not _advances(obj, update):
            return
        status: dict[str, Any] = {
            "state": update.state,
            "node": session.node,
            "callId": update.call,
            "result": update.result if update.state == "Succeeded" else None,
            "error": update.error,
            "acceptedTime": _time(update.created_ms),
            "sentTime": _time(update.sent_ms),
            "finishedTime": _time(update.finished_ms),
        }
        await self._write(obj, {k: v for k, v in status.items() if v is not None})

    # -- outcomes decided in the cloud ----------------------------------------------------

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            now = time.time()
            grace_over = time.monotonic() - self._started >= STARTUP_GRACE_S
            for obj in list(self.calls.cache.values()):
                if _state(obj) != "Pending" or _accepted(obj):
                    continue  # the edge has it: its outcome comes from there
                ttl = _ttl(obj)
                if ttl and now - _created_s(obj) >= ttl:
                    await self._expire(obj)
                elif not ttl and grace_over:
                    node = self._node(obj)
                    if node not in self.devices.sessions:
                        await self._fail_offline(obj, node)

    async def _expire(self, obj: dict[str, Any]) -> None:
        self.stats.expired += 1
        node = self._node(obj)
        message = f"the ttl ran out before node {node or '(none)'} accepted the call"
        await self._write(
            obj, {"state": "Expired", "error": {"code": "Expired", "message": message}}
        )

    async def _fail_offline(self, obj: dict[str, Any], node: str) -> None:
        self.stats.failed_offline += 1
        why = f"node {node} is not connected" if node else "the device has no node"
        message = f"{why}; give ttlSeconds to wait"
        await self._write(
            obj, {"state": "Failed", "error": {"code": "NodeOffline", "message": message}}
        )

    async def _write(self, obj: dict[str, Any], status: dict[str, Any]) -> None:
        meta = obj["metadata"]
        status.setdefault("finishedTime", _time(time.time_ns() // 1_000_000))
        if status["state"] not in FINAL_STATES:
            status.pop("finishedTime")
        try:
            written = await self.registry.merge_patch(
                "devicecalls",
                str(meta.get("namespace") or "default"),
                str(meta["name"]),
                {"status": status},
            )
        except NotFoundError:
            return
        except RegistryError as exc:
            log.warning("could not write the status of call %s: %s", object_key(obj), exc)
            return
        self.stats.status_writes += 1
        # The watch brings the object too; take it now so a quick second update sees it.
        self.calls.cache[object_key(written)] = written

    def _spawn(self, work: Any) -> None:  # noqa: ANN401 - a coroutine
        task = asyncio.get_running_loop().create_task(work)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    def _node(self, obj: dict[str, Any]) -> str:
        namespace = object_key(obj).split("/")[0]
        name = obj.get("spec", {}).get("deviceRef", {}).get("name", "")
        return self.devices.node_of(f"{namespace}/{name}")


def _state(obj: dict[str, Any]) -> str:
    return str((obj.get("status") or {}).get("state") or "Pending")


def _accepted(obj: dict[str, Any]) -> bool:
    """Whether an edge has said anything of the call (it holds it)."""
    return bool((obj.get("status") or {}).get("callId"))


def _finished(obj: dict[str, Any]) -> bool:
    return _state(obj) in FINAL_STATES


def _advances(obj: dict[str, Any], update: wire.CallUpdate) -> bool:
    """Whether ``update`` is news: a later state, or the first word of the edge."""
    current = _state(obj)
    if current in FINAL_STATES:
        return False
    rank = 2 if update.state in FINAL_STATES else _RANK.get(update.state, -1)
    if rank < 0:
        return False
    known = (obj.get("status") or {}).get("callId") is not None
    return rank > _RANK.get(current, 0) or not known


def _ttl(obj: dict[str, Any]) -> float:
    return float(obj.get("spec", {}).get("ttlSeconds") or 0)


def _created_s(obj: dict[str, Any]) -> float:
    stamp = str(obj.get("metadata", {}).get("creationTimestamp") or "")
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return time.time()


def _time(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
