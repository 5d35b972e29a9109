"""Publishing a call's outcome: a typed device event, and the SSE stream's ``call`` kind.

:func:`emit_event` records the outcome as a ``call`` device event (the event log, SSE's
``event`` kind, MQTT ``…/events``, the cloud: :meth:`~twinplane.edge.device_events.EdgeEvents.emit`)
and publishes the whole call as SSE's ``call`` kind for clients that follow calls; it never
blocks and never raises into its caller.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

from twinplane.edge.events import Event, EventHub

if TYPE_CHECKING:
    from twinplane.edge.device_events import EdgeEvents

__all__ = ["emit_event"]

log = logging.getLogger(__name__)

Severity = Literal["info", "warning", "critical"]


def emit_event(  # noqa: PLR0913 - the event's fields, keyword-only
    hub: EventHub,
    events: EdgeEvents,
    *,
    type: str,  # noqa: A002 - the event model's own word
    reason: str,
    severity: Severity,
    namespace: str,
    device: str,
    message: str,
    body: dict[str, Any],
) -> None:
    """Publishes one device event (never blocks, never raises)."""
    events.emit(
        type="call",
        reason=reason,
        severity=severity,
        namespace=namespace,
        device=device,
        message=message,
        body=body,
    )
    try:
        level = logging.INFO if severity == "info" else logging.WARNING
        log.log(level, "%s: %s", reason, message, extra={"device": f"{namespace}/{device}"})
        if hub.active:
            event = {
                "type": type,
                "reason": reason,
                "severity": severity,
                "namespace": namespace,
                "device": device,
                "message": message,
                "body": body,
            }
            hub.publish(Event("call", f"{namespace}/{device}", event))
    except Exception:  # an event must never fail the call it reports
        log.exception("publishing a %s event failed", reason)
