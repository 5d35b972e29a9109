"""Publishing of device events by the calls: one function, rewired to the event log at merge.

:func:`emit_event` has the signature of the edge's typed device events (``type``, ``reason``,
``severity``, ``namespace``, ``device``, ``message``, ``body``). Until the event log exists it
publishes a ``call`` event on the SSE hub and logs the outcome; it never blocks and never raises
into its caller.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from twinplane.edge.events import Event, EventHub

__all__ = ["emit_event"]

log = logging.getLogger(__name__)

Severity = Literal["info", "warning", "critical"]


def emit_event(  # noqa: PLR0913 - the event's fields, keyword-only
    hub: EventHub,
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
