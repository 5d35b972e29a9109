"""Typed shapes of what crosses into and out of the engine.

The keys of :class:`VisitorConfig` are the manifest's own (``visitors.configData`` of a
KubeEdge Modbus device), so a device's config can be handed over as it is written.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

PropertyTypeName = Literal["INT", "FLOAT", "DOUBLE", "STRING", "BOOLEAN", "BYTES", "STREAM"]
"""A KubeEdge property type (``DeviceModel.spec.properties[].type``); STREAM is held as STRING."""

RegisterKindName = Literal[
    "CoilRegister", "DiscreteInputRegister", "InputRegister", "HoldingRegister"
]
"""A Modbus register kind, as in a visitor's ``register``."""

ValueLike = str | int | float | bool | bytes
"""A value as Python code gives it: text is parsed by the property type, numbers must fit it."""

AggregateName = Literal["last", "min", "max", "mean", "count"]
"""Which aggregate of a report cycle's samples becomes the reported value."""


class VisitorConfig(TypedDict, total=False):
    """A Modbus visitor ``configData`` (spec §8.1). Numbers may be given as text."""

    register: RegisterKindName
    offset: int
    limit: int
    dataType: str
    scale: float
    isSwap: bool
    isRegisterSwap: bool


AlarmConditionName = Literal["above", "below", "outside", "inside", "rate"]
"""When an alarm rule's sample is in violation (see docs/events.md, "Alarm rules")."""


class AlarmRuleSpec(TypedDict):
    """One alarm rule on a property, as the engine compiles it (keys validated in Rust too)."""

    name: str
    condition: AlarmConditionName
    threshold: NotRequired[float]
    low: NotRequired[float]
    high: NotRequired[float]
    signed: NotRequired[bool]
    hysteresis: NotRequired[float]
    raise_after: NotRequired[int]
    clear_after: NotRequired[int]


class PropertySpec(TypedDict):
    """One property of a device, as the engine compiles it."""

    name: str
    type: PropertyTypeName
    visitor: NotRequired[VisitorConfig | None]
    deadband: NotRequired[float]
    deadband_relative: NotRequired[float]
    heartbeat_ms: NotRequired[int]
    reduce: NotRequired[AggregateName]
    queue_capacity: NotRequired[int]
    alarms: NotRequired[list[AlarmRuleSpec]]


class TwinSideDict(TypedDict):
    """One side of a twin: the canonical value and its timestamp (ms since the epoch)."""

    value: str
    timestamp: int


class VersionDict(TypedDict):
    """A twin side's version, as KubeEdge writes it."""

    cloud: int
    edge: int


class TwinDict(TypedDict):
    """A whole twin property."""

    type: str
    desired: TwinSideDict | None
    reported: TwinSideDict | None
    desired_version: VersionDict
    reported_version: VersionDict
