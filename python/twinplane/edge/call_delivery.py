"""How a call reaches a mapper, for a mapper that offers no method service (DMI's own path).

A property-writing method (a ``spec.methods`` entry) becomes desired values
(:meth:`~twinplane.edge.core.EdgeCore.set_desired`, the path a ``PATCH …/twin`` takes): the
mapper gets them through DMI (``UpdateDevice``, or TwinStream on a twinplane mapper) and writes
the device. The call then waits for the outcome the device itself gives:

- ``Succeeded`` when every written property's *reported* value equals the value written (the
  mapper read it back from the device), with ``{"reported": {...}}`` as the result;
- ``Failed`` (``WriteFailed``) when the mapper reports that the write of one of those values
  failed (a write error, :mod:`twinplane.edge.write_errors`);
- ``TimedOut`` when neither comes before the call's deadline (a mapper that does not report
  the property, or one that is down).

This proves more than ``UpdateDevice`` returning OK (which only says the mapper took the
device's new desired values): the device reported the value. It cannot tell a write of this
call from another writer setting the same value meanwhile.

A driver-level command (an annotation method with a ``driver`` block) has no DMI form: it
fails fast with ``NotOffered`` here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any, cast

from twinplane.edge.calls import Call, DeliveryError
from twinplane.edge.core import EdgeCore
from twinplane.edge.methods import Method, property_text
from twinplane.edge.write_errors import WriteError
from twinplane.errors import TwinplaneError
from twinplane.twin import Changes, PropertyTypeName, canonical

__all__ = ["DesiredDeliverer"]


class _Waiter:
    """One delivery waiting for its device's reported values or a write error."""

    def __init__(self, device_id: str, wanted: Mapping[str, str]) -> None:
        self.device_id = device_id
        self.wanted = dict(wanted)
        self.future: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()

    def check(self, core: EdgeCore) -> None:
        if self.future.done():
            return
        twins = core.twins(self.device_id)
        reported: dict[str, str] = {}
        for prop, value in self.wanted.items():
            twin = twins.get(prop)
            side = twin["reported"] if twin is not None else None
            if side is None or side["value"] != value:
                return
            reported[prop] = side["value"]
        self.future.set_result(reported)

    def write_failed(self, errors: Mapping[str, WriteError | None]) -> None:
        if self.future.done():
            return
        for prop, error in errors.items():
            if error is not None and self.wanted.get(prop) == error.value:
                message = f"the mapper could not write {prop}={error.value}: {error.reason}"
                self.future.set_exception(DeliveryError("WriteFailed", message))
                return


class DesiredDeliverer:
    """Delivers calls through desired values (see the module).

    Args:
        core: The edge core.
    """

    def __init__(self, core: EdgeCore) -> None:
        self.core = core
        self._waiters: dict[str, list[_Waiter]] = {}
        core.add_change_listener(self._on_changes)
        core.add_write_listener(self._on_write)

    async def deliver(self, call: Call, method: Method) -> Any:  # noqa: ANN401 - JSON
        """Sets the call's values as desired and waits for the device to report them."""
        if method.kind == "driver":
            command = (method.driver or {}).get("command")
            raise DeliveryError(
                "NotOffered",
                f"{call.method} is a driver command ({command}); the mapper of {call.device_id} "
                "offers no twinplane method service to run it (a plain KubeEdge mapper)",
            )
        values = {
            prop: property_text(value)
            for prop, value in call.args.items()
            if prop in method.property_names and value is not None
        }
        waiter = _Waiter(call.device_id, self._canonical(call.device_id, values))
        self._waiters.setdefault(call.device_id, []).append(waiter)  # before: no outcome is missed
        try:
            await self.core.set_desired(call.device_id, values)
            desired = self.core.desired_values(call.device_id)
            waiter.wanted = {prop: desired.get(prop, text) for prop, text in waiter.wanted.items()}
            waiter.check(self.core)
            reported = await waiter.future
        finally:
            waiters = self._waiters.get(call.device_id, [])
            with contextlib.suppress(ValueError):
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(call.device_id, None)
        return {"reported": reported}

    def _canonical(self, device_id: str, values: Mapping[str, str]) -> dict[str, str]:
        """The values in the twin's canonical text (as the device will report them)."""
        device = self.core.devices.get(device_id)
        model = self.core.models.get(device.model_id) if device is not None else None
        out: dict[str, str] = {}
        for prop, text in values.items():
            mp = model.get_property(prop) if model is not None else None
            try:
                out[prop] = (
                    canonical(cast("PropertyTypeName", mp.type.upper()), text) if mp else text
                )
            except TwinplaneError:
                out[prop] = text
        return out

    def _on_changes(self, changes: Changes) -> None:
        if not self._waiters:
            return
        for device_id in changes.devices():
            for waiter in self._waiters.get(device_id, ()):
                if waiter.wanted:
                    waiter.check(self.core)

    def _on_write(self, device_id: str, errors: Mapping[str, WriteError | None]) -> None:
        for waiter in self._waiters.get(device_id, ()):
            waiter.write_failed(errors)
