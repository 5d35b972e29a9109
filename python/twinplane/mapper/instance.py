"""A device as the mapper runs it, decoded once from its DMI ``Device`` and ``DeviceModel``.

``configData`` values are unwrapped from ``Any`` (:mod:`twinplane.dmi.anyvalue`); integral
numbers (EdgeCore sends every number as a 32-bit ``FloatValue``) become ``int``. Cycles are
milliseconds; a value of at least 1e7 is taken as pre-1.18 nanoseconds, converted, and logged
once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, NamedTuple, cast, get_args

from twinplane.dmi.anyvalue import decode_config
from twinplane.dmi.v1beta1 import api_pb2
from twinplane.drivers.base import ProtocolConfig
from twinplane.twin import PropertySpec, PropertyTypeName, VisitorConfig

__all__ = [
    "DEFAULT_CYCLE_MS",
    "DeviceInstance",
    "InstanceProperty",
    "StatusTwin",
    "cycle_ms",
    "device_id",
    "spec_key",
]

log = logging.getLogger(__name__)

DEFAULT_CYCLE_MS: Final = 1000
"""mapper-framework's default collect, report and state cycle."""

NANOSECOND_CYCLE: Final = 10_000_000
"""A cycle at least this large is pre-1.18 nanoseconds (1e7 ms would be 2.8 hours)."""

_TYPES: Final = frozenset(get_args(PropertyTypeName))


class StatusTwin(NamedTuple):
    """One twin of a ``GetDevice`` answer; every field is text, ``""`` when there is none."""

    name: str
    type: str
    desired: str
    desired_ts: str
    reported: str
    reported_ts: str


def device_id(namespace: str, name: str) -> str:
    """``<namespace>/<name>``, with ``default`` for an empty namespace."""
    return f"{namespace or 'default'}/{name}"


def cycle_ms(value: int, what: str, device: str) -> int:
    """A cycle in milliseconds: 0 means the default; nanoseconds are converted with a warning."""
    if value <= 0:
        return DEFAULT_CYCLE_MS
    if value >= NANOSECOND_CYCLE:
        converted = max(value // 1_000_000, 1)
        log.warning(
            "%s %d of device %s looks like nanoseconds (pre-1.18); using %d ms",
            what,
            value,
            device,
            converted,
        )
        return converted
    return value


def _coerce(config: Mapping[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in config.items():
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            out[key] = int(value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True, slots=True)
class InstanceProperty:
    """One property of a running device."""

    name: str
    type: PropertyTypeName
    access_mode: str
    visitor: dict[str, object]
    collect_cycle_ms: int
    report_cycle_ms: int
    desired: str
    report_to_cloud: bool

    @property
    def queue_capacity(self) -> int:
        """Samples kept per report cycle: ``ceil(reportCycle / collectCycle)``, at least 1.

        The property's own cycles: it is read every ``collectCycle``, whatever its device's
        other properties' cycles.
        """
        return max(1, math.ceil(self.report_cycle_ms / self.collect_cycle_ms))

    @property
    def writable(self) -> bool:
        """Whether desired values are written to the device."""
        return self.access_mode != "ReadOnly"


@dataclass(slots=True)
class DeviceInstance:
    """A device, its model's types and the decoded configs."""

    id: str
    name: str
    namespace: str
    model: str
    protocol: ProtocolConfig
    properties: list[InstanceProperty]
    state_report: bool
    state_cycle_ms: int
    message: api_pb2.Device
    key: bytes = field(default=b"")

    @classmethod
    def from_proto(
        cls, device: api_pb2.Device, model: api_pb2.DeviceModel | None
    ) -> DeviceInstance:
        """Decodes a ``Device`` with its model.

        Raises:
            twinplane.errors.SpecError: A ``configData`` value does not decode (``path`` names
                it).
        """
        dev_id = device_id(device.namespace, device.name)
        types = {p.name: p for p in model.spec.properties} if model is not None else {}
        protocol = ProtocolConfig(
            device.spec.protocol.protocolName,
            _coerce(
                decode_config(device.spec.protocol.configData.data, "spec.protocol.configData")
            ),
        )
        props = []
        for i, prop in enumerate(device.spec.properties):
            mp = types.get(prop.name)
            type_name = (mp.type.upper() if mp is not None else "") or "STRING"
            if type_name not in _TYPES:
                type_name = "STRING"
            if mp is None:
                log.warning("device %s: property %s is not in its model", dev_id, prop.name)
            path = f"spec.properties[{i}].visitors.configData"
            collect = cycle_ms(prop.collectCycle, "collectCycle", dev_id)
            props.append(
                InstanceProperty(
                    name=prop.name,
                    type=cast("PropertyTypeName", type_name),
                    access_mode=mp.accessMode if mp is not None else "ReadWrite",
                    visitor=_coerce(decode_config(prop.visitors.configData.data, path)),
                    collect_cycle_ms=collect,
                    report_cycle_ms=cycle_ms(prop.reportCycle, "reportCycle", dev_id),
                    desired=prop.desired.value,
                    report_to_cloud=prop.reportToCloud,
                )
            )
        return cls(
            id=dev_id,
            name=device.name,
            namespace=device.namespace or "default",
            model=device.spec.deviceModelReference,
            protocol=protocol,
            properties=props,
            state_report=device.status.reportToCloud,
            state_cycle_ms=cycle_ms(device.status.reportCycle, "status.reportCycle", dev_id),
            message=device,
            key=spec_key(device),
        )

    @property
    def collect_cycle_ms(self) -> int:
        """The shortest collect cycle of the device's properties.

        The device's poll period when its properties share one cycle; otherwise each property
        is read at its own (:mod:`twinplane.mapper.cycles`), and this one bounds a poll's
        deadline and the backoff of a failing device.
        """
        return min((p.collect_cycle_ms for p in self.properties), default=DEFAULT_CYCLE_MS)

    def engine_specs(self, *, frames: bool) -> list[PropertySpec]:
        """The engine's property specs; visitors only for frame drivers."""
        specs: list[PropertySpec] = []
        for prop in self.properties:
            spec: PropertySpec = {
                "name": prop.name,
                "type": prop.type,
                "queue_capacity": prop.queue_capacity,
            }
            if frames:
                spec["visitor"] = cast("VisitorConfig", prop.visitor)
            specs.append(spec)
        return specs

    def desired(self) -> dict[str, str]:
        """Non-empty desired values of writable properties."""
        return {p.name: p.desired for p in self.properties if p.desired and p.writable}

    def with_twins(self, twins: Iterable[StatusTwin]) -> api_pb2.Device:
        """The device message with ``twins`` in ``status.twins`` (the ``GetDevice`` answer).

        Each twin has ``observedDesired`` and ``reported`` with the value and the metadata
        ``type`` (lower case) and ``timestamp``, not mapper-framework's JSON-in-a-value quirk.
        """
        out = api_pb2.Device()
        out.CopyFrom(self.message)
        del out.status.twins[:]
        for twin in twins:
            pb = out.status.twins.add(propertyName=twin.name)
            kind = twin.type.lower()
            pb.observedDesired.value = twin.desired
            pb.observedDesired.metadata.update({"type": kind, "timestamp": twin.desired_ts})
            pb.reported.value = twin.reported
            pb.reported.metadata.update({"type": kind, "timestamp": twin.reported_ts})
        return out


def spec_key(device: api_pb2.Device) -> bytes:
    """The device message without desired values and status twins.

    Equal keys mean only desired values differ, so the device need not restart.
    """
    copy = api_pb2.Device()
    copy.CopyFrom(device)
    for prop in copy.spec.properties:
        prop.ClearField("desired")
    copy.status.ClearField("twins")
    return copy.SerializeToString(deterministic=True)
