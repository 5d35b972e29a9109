"""Method calls on the edge: one path for every source (REST, MQTT, CLI, the cloud link).

:meth:`CallService.submit_call` checks a call against the device's methods
(:mod:`twinplane.edge.methods`), stores it ``Pending`` in SQLite and only then returns it, so
an acknowledged call survives a crash. A worker per call delivers it when its device is
online, one call at a time per device in submission order:

``Pending → Sent → Succeeded | Failed | TimedOut``, or ``Pending → Expired`` /
``Pending → Failed`` (offline without a TTL).

- Without a TTL a call to a device that is not online (or whose state is not known yet) fails
  fast (``Offline``); with a TTL it waits ``Pending`` and is delivered when the device comes
  online, else it ends ``Expired``.
- ``Sent`` is stored *before* delivery starts. After a restart a ``Pending`` call is resumed
  (delivered once); a ``Sent`` call without an outcome is not sent blindly again: it ends
  ``Failed`` with code ``EdgeRestarted``, unless its method is declared ``idempotent``, when it
  goes back to ``Pending`` and is delivered again.
- Each outcome is stored, published as a ``call`` event
  (:func:`~twinplane.edge.call_events.emit_event`: the event log and SSE) and given to the listeners
  (:meth:`CallService.add_listener`, used by the MQTT bridge). The store keeps the newest
  finished calls of each device (``keep``); deleting a device deletes its calls.

Delivery itself is a :class:`Deliverer`'s (:mod:`twinplane.edge.call_delivery`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, Protocol

import msgspec

from twinplane.edge.call_events import emit_event
from twinplane.edge.core import ONLINE_STATES, DeviceState, EdgeCore
from twinplane.edge.methods import (
    ArgumentIssue,
    Method,
    MethodError,
    argument_issues,
    device_methods,
)
from twinplane.errors import SpecError, TwinplaneError, UnknownDeviceError

__all__ = [
    "FINAL_STATES",
    "Call",
    "CallArgumentError",
    "CallConflictError",
    "CallError",
    "CallService",
    "CallState",
    "Deliverer",
    "DeliveryError",
    "UnknownCallError",
    "UnknownMethodError",
]

log = logging.getLogger(__name__)

CallState = Literal["Pending", "Sent", "Succeeded", "Failed", "TimedOut", "Expired"]
FINAL_STATES: Final = frozenset({"Succeeded", "Failed", "TimedOut", "Expired"})

DEFAULT_TIMEOUT_S: Final = 10.0
"""A call's deadline once sent, when the caller gives none."""
MAX_TIMEOUT_S: Final = 300.0
MAX_TTL_S: Final = 7 * 24 * 3600.0
KEEP_PER_DEVICE: Final = 100
"""Finished calls kept per device for inspection (the newest)."""

_REASONS: Final = {
    "Succeeded": ("CallSucceeded", "info"),
    "Failed": ("CallFailed", "warning"),
    "TimedOut": ("CallTimedOut", "warning"),
    "Expired": ("CallExpired", "warning"),
}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class CallError(msgspec.Struct, frozen=True):
    """Why a call did not succeed: a machine-readable ``code`` and a sentence."""

    code: str
    message: str


class Call(msgspec.Struct, kw_only=True):
    """One method call; owned and changed by :class:`CallService` only.

    Attributes:
        id: The call's id (a UUID unless the caller chose one).
        namespace: The device's namespace.
        device: The device's name.
        method: The method called.
        args: The arguments (JSON values; defaults filled in).
        source: Where it came from (``rest``, ``mqtt``, ``cli``, ``cloud``).
        state: Where it is in its lifecycle.
        result: The result (JSON) of a ``Succeeded`` call.
        error: Why it did not succeed.
        timeout_ms: Its deadline once sent.
        ttl_ms: How long it may wait for an offline device (``None``: it fails fast).
        created_ms: When it was accepted.
        sent_ms: When its delivery started.
        finished_ms: When it ended.
    """

    id: str
    namespace: str
    device: str
    method: str
    args: dict[str, Any]
    source: str
    state: CallState = "Pending"
    result: Any = None
    error: CallError | None = None
    timeout_ms: int
    ttl_ms: int | None = None
    created_ms: int
    sent_ms: int | None = None
    finished_ms: int | None = None

    @property
    def device_id(self) -> str:
        """``<namespace>/<name>``."""
        return f"{self.namespace}/{self.device}"

    @property
    def finished(self) -> bool:
        """Whether the call has its outcome."""
        return self.state in FINAL_STATES

    @property
    def expires_ms(self) -> int | None:
        """When a ``Pending`` call with a TTL expires."""
        return None if self.ttl_ms is None else self.created_ms + self.ttl_ms

    def to_json(self) -> dict[str, Any]:
        """The API's shape (camelCase, as every answer of the edge)."""
        return {
            "id": self.id,
            "namespace": self.namespace,
            "device": self.device,
            "method": self.method,
            "args": self.args,
            "source": self.source,
            "state": self.state,
            "result": self.result,
            "error": None if self.error is None else msgspec.to_builtins(self.error),
            "timeoutMs": self.timeout_ms,
            "ttlMs": self.ttl_ms,
            "createdMs": self.created_ms,
            "sentMs": self.sent_ms,
            "finishedMs": self.finished_ms,
        }


_ENCODER: Final = msgspec.json.Encoder()
_DECODER: Final = msgspec.json.Decoder(Call)


class UnknownMethodError(TwinplaneError, LookupError):
    """The device has no method of this name."""


class UnknownCallError(TwinplaneError, LookupError):
    """No call with this id is known for the device."""


class CallConflictError(TwinplaneError):
    """A call id already used by a different call."""


class CallArgumentError(SpecError):
    """A call's arguments are refused; ``issues`` has every refusal (the first one's message).

    The message is the first issue's (``setpoint: 99 is outside 5..35``); ``path`` names the
    argument (``args.setpoint``).
    """

    def __init__(self, device: str, method: str, issues: list[ArgumentIssue]) -> None:
        first = issues[0]
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        path = f"args.{first.argument}" if first.argument else "args"
        super().__init__(
            f"{first.message}{more}", device=device, property=first.argument, path=path
        )
        self.method = method
        self.issues = issues


class DeliveryError(TwinplaneError):
    """A delivery that failed; ``code`` is the call error's code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Deliverer(Protocol):
    """Delivers one call to its device's mapper and returns its result (JSON)."""

    async def deliver(self, call: Call, method: Method) -> Any:  # noqa: ANN401 - JSON
        """Sends the call; returns the result, raises :class:`DeliveryError` when it failed.

        The service bounds it by the call's deadline (a timeout cancels it).
        """
        ...


CallListener = Callable[[Call], None]
"""Called with a call after each change of its state (accepted, sent, finished)."""


class CallService:
    """Every method call of one edge node.

    Args:
        core: The edge core (devices, models, states, the store).
        deliverer: How a call reaches the mapper.
        keep: Finished calls kept per device.
    """

    def __init__(
        self, core: EdgeCore, deliverer: Deliverer, *, keep: int = KEEP_PER_DEVICE
    ) -> None:
        self.core = core
        self.deliverer = deliverer
        self.keep = keep
        self._open: dict[str, Call] = {}
        self._done: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._device_locks: dict[str, asyncio.Lock] = {}
        self._online: dict[str, asyncio.Event] = {}
        self._listeners: list[CallListener] = []
        self._methods: dict[str, tuple[object, dict[str, Method]]] = {}
        self._closing = False
        core.add_state_listener(self._on_state)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Resumes the calls the store holds unfinished (see the module's restart rule)."""
        for row in await self.core.store.open_calls():
            call = _DECODER.decode(row[3])
            if call.state == "Sent":
                method = self._method_or_none(call)
                if method is None or not method.idempotent:
                    await self._finish(
                        call,
                        "Failed",
                        error=CallError(
                            "EdgeRestarted",
                            "the edge restarted while the call was sent; it is not sent again "
                            "(its method is not declared idempotent)",
                        ),
                    )
                    continue
                call.state, call.sent_ms = "Pending", None
                await self._store(call)
            self._launch(call)
        log.info("calls resumed", extra={"calls": len(self._open)})

    async def stop(self) -> None:
        """Stops delivering; unfinished calls stay in the store and resume at the next start."""
        self._closing = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def add_listener(self, listener: CallListener) -> None:
        """Calls ``listener`` with a call after each change of its state."""
        self._listeners.append(listener)

    def remove_listener(self, listener: CallListener) -> None:
        """Stops calling ``listener`` (idempotent)."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    # -- the one entry point --------------------------------------------------------------

    def methods(self, namespace: str, name: str) -> dict[str, Method]:
        """The device's methods, parsed once per applied manifest.

        Raises:
            UnknownDeviceError: No such device.
            MethodError: Its ``twinplane.io/methods`` annotation is not valid.
        """
        device_id = f"{namespace}/{name}"
        device = self.core.devices.get(device_id)
        if device is None:
            raise UnknownDeviceError(f"device {device_id} not found", device=device_id)
        cached = self._methods.get(device_id)
        if cached is not None and cached[0] is device:
            return cached[1]
        methods = device_methods(device)
        self._methods[device_id] = (device, methods)
        return methods

    async def submit_call(  # noqa: PLR0913 - the call's fields, keyword-only
        self,
        namespace: str,
        name: str,
        method: str,
        args: Mapping[str, Any],
        *,
        source: str,
        timeout_s: float | None = None,
        ttl_s: float | None = None,
        call_id: str | None = None,
    ) -> Call:
        """Checks and stores a call, then starts its delivery; returns it ``Pending``.

        Durable before it returns. A call without a TTL to a device that is not online is
        stored and returned already ``Failed`` (``Offline``). A ``call_id`` used before by the
        same call (device, method, arguments) returns that call (a retried request).

        Args:
            namespace: The device's namespace.
            name: The device's name.
            method: The method.
            args: The arguments (JSON values).
            source: Where the call comes from (``rest``, ``mqtt``, ``cli``, ``cloud``).
            timeout_s: The deadline once sent (default :data:`DEFAULT_TIMEOUT_S`).
            ttl_s: How long it may wait for an offline device; ``None`` fails fast.
            call_id: The caller's id for the call (a UUID is made otherwise).

        Raises:
            UnknownDeviceError: No such device.
            UnknownMethodError: The device has no such method.
            CallArgumentError: An argument is refused (``issues`` has each).
            CallConflictError: ``call_id`` names a different call.
            SpecError: ``timeout_s``, ``ttl_s`` or ``call_id`` is out of bounds.
        """
        device_id = f"{namespace}/{name}"
        methods = self.methods(namespace, name)
        found = methods.get(method)
        if found is None:
            known = ", ".join(sorted(methods)) or "none"
            raise UnknownMethodError(
                f"device {device_id} has no method {method!r} (it has: {known})",
                device=device_id,
                path="method",
            )
        timeout = _bounded(
            "timeout", DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s, MAX_TIMEOUT_S
        )
        ttl = None if ttl_s is None else _bounded("ttl", ttl_s, MAX_TTL_S)
        device = self.core.devices[device_id]
        full, issues = argument_issues(found, device, self.core.models.get(device.model_id), args)
        if issues:
            raise CallArgumentError(device_id, method, issues)
        if call_id is not None:
            existing = await self._existing(call_id, device_id, method, full)
            if existing is not None:
                return existing
        call = Call(
            id=call_id or str(uuid.uuid4()),
            namespace=namespace,
            device=name,
            method=method,
            args=full,
            source=source,
            timeout_ms=round(timeout * 1000),
            ttl_ms=None if ttl is None else round(ttl * 1000),
            created_ms=_now_ms(),
        )
        if ttl is None and not self._is_online(device_id):
            state = self.core.states.get(device_id)
            shown = state.state if state is not None and state.state else "unknown"
            await self._finish(
                call,
                "Failed",
                error=CallError(
                    "Offline",
                    f"device {device_id} is {shown}, not online; give a ttl to wait for it",
                ),
            )
            return call
        await self._store(call)
        self._notify(call)
        self._launch(call)
        return call

    async def get_call(self, namespace: str, name: str, call_id: str) -> Call:
        """The call ``call_id`` of the device.

        Raises:
            UnknownCallError: The device has no such call (or it was pruned).
        """
        call = self._open.get(call_id)
        if call is None:
            row = await self.core.store.get_call(call_id)
            call = _DECODER.decode(row[3]) if row is not None else None
        if call is None or call.namespace != namespace or call.device != name:
            raise UnknownCallError(
                f"device {namespace}/{name} has no call {call_id!r}",
                device=f"{namespace}/{name}",
                path="id",
            )
        return call

    async def list_calls(self, namespace: str, name: str, limit: int = 50) -> list[Call]:
        """The device's recent calls, newest first."""
        rows = await self.core.store.list_calls(f"{namespace}/{name}", limit)
        return [self._open.get(r[0]) or _DECODER.decode(r[3]) for r in rows]

    async def wait(self, call: Call, timeout_s: float) -> Call:
        """The call once finished, or as it is after ``timeout_s`` seconds."""
        done = self._done.get(call.id)
        if done is not None and timeout_s > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await done.wait()
        return self._open.get(call.id) or await self.get_call(call.namespace, call.device, call.id)

    # -- delivery -------------------------------------------------------------------------

    def _launch(self, call: Call) -> None:
        self._open[call.id] = call
        self._done[call.id] = asyncio.Event()
        task = asyncio.create_task(self._run(call), name=f"call-{call.id}")
        self._tasks[call.id] = task
        task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task.get_name().removeprefix("call-"), None)

    async def _run(self, call: Call) -> None:
        try:
            lock = self._device_locks.setdefault(call.device_id, asyncio.Lock())
            async with lock:
                if not await self._wait_online(call):
                    return
                await self._deliver(call)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a bug or a store failure: the call ends, the edge goes on
            log.exception("call failed", extra={"call": call.id})
            if not call.finished:
                with contextlib.suppress(Exception):
                    await self._finish(call, "Failed", error=CallError("Internal", str(err)))

    async def _wait_online(self, call: Call) -> bool:
        """Waits for the device to be online; ``False`` when the call ended meanwhile."""
        while not self._is_online(call.device_id):
            if call.device_id not in self.core.devices:
                await self._finish(
                    call, "Failed", error=CallError("DeviceDeleted", "the device was deleted")
                )
                return False
            expires = call.expires_ms
            if expires is None:
                await self._finish(
                    call,
                    "Failed",
                    error=CallError(
                        "Offline", f"device {call.device_id} went offline before delivery"
                    ),
                )
                return False
            left = (expires - _now_ms()) / 1000
            if left <= 0:
                await self._finish(
                    call,
                    "Expired",
                    error=CallError(
                        "Expired", f"device {call.device_id} did not come online within the ttl"
                    ),
                )
                return False
            event = self._online.setdefault(call.device_id, asyncio.Event())
            event.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, 5.0)):  # 5 s: a deleted device is noticed
                    await event.wait()
        return True

    async def _deliver(self, call: Call) -> None:
        method = self._method_or_none(call)
        if method is None:
            await self._finish(
                call,
                "Failed",
                error=CallError(
                    "UnknownMethod", f"the device no longer has method {call.method!r}"
                ),
            )
            return
        call.state, call.sent_ms = "Sent", _now_ms()
        await self._store(call)  # before anything leaves: a crash now is "Sent without outcome"
        self._notify(call)
        try:
            async with asyncio.timeout(call.timeout_ms / 1000):
                result = await self.deliverer.deliver(call, method)
        except TimeoutError:
            error = CallError("Timeout", f"no outcome within {call.timeout_ms} ms")
            await self._finish(call, "TimedOut", error=error)
        except DeliveryError as err:
            await self._finish(call, "Failed", error=CallError(err.code, err.message))
        except TwinplaneError as err:
            await self._finish(call, "Failed", error=CallError("Refused", err.message))
        else:
            await self._finish(call, "Succeeded", result=result)

    async def _finish(
        self,
        call: Call,
        state: CallState,
        *,
        result: Any = None,  # noqa: ANN401 - JSON
        error: CallError | None = None,
    ) -> None:
        call.state, call.result, call.error, call.finished_ms = state, result, error, _now_ms()
        await self._store(call)
        self._open.pop(call.id, None)
        done = self._done.pop(call.id, None)
        if done is not None:
            done.set()
        self._notify(call)
        reason, severity = _REASONS[state]
        detail = "succeeded" if error is None else f"{error.code}: {error.message}"
        emit_event(
            self.core.hub,
            self.core.events,
            type="call",
            reason=reason,
            severity=severity,  # type: ignore[arg-type]
            namespace=call.namespace,
            device=call.device,
            message=f"call {call.id} of {call.method} {detail}",
            body=call.to_json(),
        )

    # -- helpers --------------------------------------------------------------------------

    async def _store(self, call: Call) -> None:
        row = (
            call.id,
            call.device_id,
            call.method,
            _ENCODER.encode(call).decode(),
            call.state,
            call.created_ms,
        )
        await self.core.store.put_call(row, self.keep)

    def _notify(self, call: Call) -> None:
        for listener in list(self._listeners):
            try:
                listener(call)
            except Exception:  # a listener bug must not fail the call
                log.exception("call listener failed")

    async def _existing(
        self, call_id: str, device_id: str, method: str, args: Mapping[str, Any]
    ) -> Call | None:
        if not call_id or len(call_id) > 128:  # noqa: PLR2004
            raise SpecError("a call id is 1 to 128 characters", path="id")
        row = await self.core.store.get_call(call_id)
        if row is None:
            return None
        call = self._open.get(call_id) or _DECODER.decode(row[3])
        if call.device_id != device_id or call.method != method or call.args != dict(args):
            raise CallConflictError(
                f"call id {call_id!r} is already used by another call", device=device_id, path="id"
            )
        return call

    def _method_or_none(self, call: Call) -> Method | None:
        try:
            return self.methods(call.namespace, call.device).get(call.method)
        except (UnknownDeviceError, MethodError):
            return None

    def _is_online(self, device_id: str) -> bool:
        state = self.core.states.get(device_id)
        return state is not None and state.state in ONLINE_STATES

    def _on_state(self, device_id: str, state: DeviceState) -> None:
        if state.state in ONLINE_STATES:
            event = self._online.get(device_id)
            if event is not None:
                event.set()


def _bounded(what: str, value: float, maximum: float) -> float:
    if not value > 0 or value > maximum:
        raise SpecError(
            f"{what} must be more than 0 and at most {maximum:g} s (got {value:g})", path=what
        )
    return value
