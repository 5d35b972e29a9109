"""The edge link's messages: what an edge and the cloud say over one WebSocket.

One JSON text frame per message, tagged by ``type``. The link is at-least-once both ways and
every receiver applies idempotently, so a replayed message changes nothing twice:

Downstream (cloud → edge), level-based: the cloud's registry is the source of truth, so the
cloud keeps no outbox. On every (re)connect the edge says what it holds (:class:`Hello`: the
``resourceVersion`` of each object the cloud delivered), and the cloud sends what differs
(:class:`Upsert`, :class:`Remove`), then :class:`Synced` with the whole list, so a change made
while the link was down reaches the edge (KubeEdge #2015) and an object deleted meanwhile is
removed (its ``membership/detail`` request, ignored by KubeEdge's cloud: #3804). Each carries an
``id`` the edge acknowledges (:class:`Ack`) once applied and stored.

Upstream (edge → cloud): :class:`Report` carries the latest twins and state of many devices,
coalesced on the edge; its ``id`` is the edge outbox's ``<seq>.<rev>``, acknowledged
(:class:`ReportAck`) only once the cloud has written it into the registry, so an edge that loses
the link, or a cloud that dies, resends it. :class:`Upload` carries what an edge application
published to ``$hw/events/upload/#``.

Method calls made in the cloud (DeviceCall objects) are level-based too: the cloud sends
:class:`CallRequest` for every call of the node without an outcome on each (re)connect, the
edge submits it under the call's uid (a second delivery finds the first), and answers with
:class:`CallUpdate` at each change of the call's state and, after a reconnect, for every call
the cloud made that it holds.

Desired values travel with KubeEdge's twin versions (spec §3.8): :class:`DesiredSync` is the
cloud's value with ``{cloud, edge}``; the edge accepts it only when neither counter is older than
its own, else it keeps its value and reports it (with its version), and the cloud converges.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec

__all__ = [
    "CONNECT_PATH",
    "NODE_HEADER",
    "PROTOCOL",
    "SOURCE_ANNOTATION",
    "Ack",
    "CallRequest",
    "CallUpdate",
    "CloudMessage",
    "DesiredSync",
    "DesiredUpdate",
    "DeviceReport",
    "EdgeMessage",
    "Events",
    "EventsAck",
    "Hello",
    "Remove",
    "Report",
    "ReportAck",
    "SideReport",
    "Synced",
    "TwinReport",
    "Upload",
    "UploadAck",
    "Upsert",
    "Version",
    "Welcome",
    "decode_cloud",
    "decode_edge",
    "encode",
]

PROTOCOL: Final = 1
"""The link protocol's version; :class:`Hello` and :class:`Welcome` carry it."""

CONNECT_PATH: Final = "/hub/v1/connect"
"""Where an edge opens its WebSocket on the cloud."""

SOURCE_ANNOTATION: Final = "twinplane.io/delivered-by"
"""Set (to ``cloud``) on the objects the cloud delivers, so an edge tells them from its own."""

NODE_HEADER: Final = "X-Twinplane-Node"
"""The header naming the connecting node (its token goes in ``Authorization: Bearer``)."""

ObjectKind = Literal["Device", "DeviceModel"]


# gc=False everywhere: these structs hold only text, numbers, containers of them and each other,
# never a cycle, so the garbage collector need not track them; a busy cloud decodes ~100,000
# twins a second, and tracked they made collections of every generation its main cost.
class _Msg(msgspec.Struct, frozen=True, forbid_unknown_fields=False, tag_field="type", gc=False):
    pass


class Version(msgspec.Struct, frozen=True, gc=False):
    """A twin side's KubeEdge version: who changed it how many times."""

    cloud: int = 0
    edge: int = 0


class DesiredSync(msgspec.Struct, frozen=True, gc=False):
    """A desired value from the cloud with its version (``value`` None clears it)."""

    value: str | None
    version: Version


class SideReport(msgspec.Struct, frozen=True, gc=False):
    """One side of a twin as the edge holds it."""

    value: str
    timestamp: int


class TwinReport(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """A twin property's latest state on the edge."""

    type: str
    reported: SideReport | None = None
    desired: SideReport | None = None
    reported_version: Version = Version()
    desired_version: Version = Version()


class DeviceReport(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """A device's twins (only those changed, or all on a resync) and its state."""

    device: str
    twins: dict[str, TwinReport] = {}
    state: str | None = None
    last_online: str | None = None


# -- edge → cloud -----------------------------------------------------------------------------


class Hello(_Msg, tag="hello", frozen=True):
    """The edge's first message: what it holds of what the cloud delivered."""

    node: str
    devices: dict[str, str]
    """Device id → the ``metadata.resourceVersion`` the edge applied."""
    models: dict[str, str]
    """DeviceModel id → likewise."""
    protocol: int = PROTOCOL


class Ack(_Msg, tag="ack", frozen=True):
    """Downstream messages applied and stored; ``errors`` names those the edge refused."""

    ids: list[int]
    errors: dict[str, str] = {}


class Report(_Msg, tag="report", frozen=True):
    """The latest twins and states of devices; acknowledged once written into the registry."""

    id: str
    devices: list[DeviceReport]


class Upload(_Msg, tag="upload", frozen=True):
    """A message an edge application published to ``$hw/events/upload/#``."""

    id: str
    topic: str
    payload: str
    """The payload as text (UTF-8), or base64 when ``encoding`` says so."""
    timestamp: int
    encoding: Literal["utf-8", "base64"] = "utf-8"


class CallUpdate(_Msg, tag="call_update", frozen=True):
    """Where a call the cloud made stands on the edge (sent at each change, and on a resync).

    ``call`` is the DeviceCall's ``metadata.uid``; the cloud applies an update idempotently and
    never moves a finished call back.
    """

    call: str
    namespace: str
    device: str
    state: str
    result: Any = None
    error: dict[str, str] | None = None
    created_ms: int | None = None
    sent_ms: int | None = None
    finished_ms: int | None = None


class Events(_Msg, tag="events", frozen=True):
    """Device events of the edge's log, oldest first; ``id`` is the last one's sequence number.

    Each event is the edge's JSON form (docs/events.md); a repeated event (the same ``id``
    with a higher ``count``) replaces the one before it.
    """

    id: int
    events: list[dict[str, Any]]


EdgeMessage = Hello | Ack | Report | Upload | CallUpdate | Events

# -- cloud → edge -----------------------------------------------------------------------------


class Welcome(_Msg, tag="welcome", frozen=True):
    """The cloud's answer to :class:`Hello`.

    ``reported`` is, per device of the node, the newest reported-value timestamp the cloud
    holds: the edge resends every device whose twins are newer (a resync by versions that also
    covers reports the edge marked but had not stored when it died).
    """

    node: str
    reported: dict[str, int]
    protocol: int = PROTOCOL
    events_seq: int = 0
    """The highest sequence number of the node's event log the cloud holds: it resumes there."""


class Upsert(_Msg, tag="upsert", frozen=True):
    """Create or update an object on the edge (a model is sent before the devices using it)."""

    id: int
    kind: ObjectKind
    object: dict[str, Any]
    desired: dict[str, DesiredSync] = {}
    """For a Device: its desired values with versions (never applied as local writes)."""


class Remove(_Msg, tag="remove", frozen=True):
    """Delete an object from the edge."""

    id: int
    kind: ObjectKind
    namespace: str
    name: str


class DesiredUpdate(_Msg, tag="desired", frozen=True):
    """New desired values for a device's twins, with versions."""

    id: int
    device: str
    twins: dict[str, DesiredSync]


class Synced(_Msg, tag="synced", frozen=True):
    """The resync is complete: ``devices`` is every device the cloud has for this node."""

    id: int
    devices: list[str]


class ReportAck(_Msg, tag="report_ack", frozen=True):
    """Reports written into the registry (or refused: ``rejected`` device → reason)."""

    ids: list[str]
    rejected: dict[str, str] = {}


class UploadAck(_Msg, tag="upload_ack", frozen=True):
    """Uploads stored by the cloud."""

    ids: list[str]


class CallRequest(_Msg, tag="call", frozen=True):
    """A method call for a device of the node, from a DeviceCall (``call`` is its uid).

    Sent when the call is made and again on every (re)connect until it has an outcome; the
    edge's call id is ``call``, so a call delivered twice is still one call.
    """

    id: int
    call: str
    namespace: str
    device: str
    method: str
    arguments: dict[str, Any] = {}
    timeout_s: float | None = None
    ttl_s: float | None = None


class EventsAck(_Msg, tag="events_ack", frozen=True):
    """Events stored by the cloud, through sequence number ``seq``."""

    seq: int


CloudMessage = (
    Welcome
    | Upsert
    | Remove
    | DesiredUpdate
    | Synced
    | ReportAck
    | UploadAck
    | CallRequest
    | EventsAck
)

_ENCODER = msgspec.json.Encoder()
_EDGE = msgspec.json.Decoder(EdgeMessage)
_CLOUD = msgspec.json.Decoder(CloudMessage)


def encode(message: EdgeMessage | CloudMessage) -> str:
    """A message as its JSON text frame."""
    return _ENCODER.encode(message).decode()


def decode_edge(frame: str | bytes) -> EdgeMessage:
    """An edge's message; :class:`msgspec.ValidationError` names the bad field."""
    return _EDGE.decode(frame)


def decode_cloud(frame: str | bytes) -> CloudMessage:
    """The cloud's message; :class:`msgspec.ValidationError` names the bad field."""
    return _CLOUD.decode(frame)
