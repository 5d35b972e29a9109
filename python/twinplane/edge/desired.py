"""Desired values checked where they are set, before anything is stored or sent to a mapper.

A desired value is refused, with the property and the reason, when

- the device has no such property (``reference``);
- the model makes the property ``ReadOnly`` (``readonly``);
- it is not a value of the property's type (``value``);
- it is outside the model's ``minimum``/``maximum`` (``range``);
- the property's register cannot hold or take it: for Modbus, a coil or holding register of
  the visitor's ``dataType`` and ``scale`` (an int16 register does not take 99999), checked with
  the engine's own write encoder, the one the mapper uses (``range``).

Every entry point that sets desired values uses it: the REST ``PATCH …/twin`` (and the CLI's
``twin set``), the MQTT twin update topic and manifests applied with ``desired`` values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final, Literal, cast

from twinplane.errors import SpecError, TwinplaneError, ValueTypeError
from twinplane.manifests import Device, DeviceModel, overridden_device
from twinplane.protocols import modbus as modbus_schema
from twinplane.twin import PropertyTypeName, canonical

__all__ = ["DesiredIssue", "DesiredValueError", "desired_issues"]

IssueReason = Literal["reference", "readonly", "value", "range"]

_NUMERIC: Final = frozenset({"INT", "FLOAT", "DOUBLE"})


@dataclass(frozen=True, slots=True)
class DesiredIssue:
    """Why one desired value is refused.

    Attributes:
        property: The property.
        reason: ``reference``, ``readonly``, ``value`` or ``range``.
        message: A sentence naming the property, the value and what it may be.
    """

    property: str
    reason: IssueReason
    message: str


class DesiredValueError(SpecError):
    """Desired values refused where they are set; ``issues`` has every one of them.

    The message, ``property`` and ``path`` (``desired.<property>``) are the first issue's.
    """

    def __init__(self, device: str, issues: list[DesiredIssue]) -> None:
        first = issues[0]
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        super().__init__(
            f"desired.{first.property}: {first.message}{more}",
            device=device,
            property=first.property,
            path=f"desired.{first.property}",
        )
        self.issues = issues


def desired_issues(
    device: Device, model: DeviceModel, values: Mapping[str, str | None]
) -> list[DesiredIssue]:
    """Every refused desired value of ``values`` (``None`` clears a value and is never refused).

    Args:
        device: The device.
        model: Its model.
        values: Desired values by property, as text.
    """
    issues: list[DesiredIssue] = []
    effective: Device | None = None
    for prop, value in values.items():
        mp = model.get_property(prop)  # every property of the model has a twin
        if mp is None:
            known = ", ".join(sorted(p.name for p in model.spec.properties)) or "none"
            message = f"device {device.id} has no property {prop!r} (it has: {known})"
            issues.append(DesiredIssue(prop, "reference", message))
            continue
        if value is None:
            continue
        if mp.access_mode == "ReadOnly":
            message = (
                f"property {prop} of device {device.id} is ReadOnly in model {model.id}: "
                "it has no desired value"
            )
            issues.append(DesiredIssue(prop, "readonly", message))
            continue
        type_ = cast("PropertyTypeName", mp.type.upper())
        try:
            text = canonical(type_, value)
        except ValueTypeError:
            message = f"{value!r} is not a {type_} value (the type of {prop!r})"
            issues.append(DesiredIssue(prop, "value", message))
            continue
        bound = _model_bound(prop, type_, text, mp.minimum, mp.maximum)
        if bound is not None:
            issues.append(DesiredIssue(prop, "range", bound))
            continue
        if effective is None:
            try:
                effective = overridden_device(device, model)
            except TwinplaneError:
                effective = device
        register = _register_issue(effective, prop, type_, text)
        if register is not None:
            issues.append(DesiredIssue(prop, "range", register))
    return issues


def _number(text: str | None) -> Decimal | None:
    if text is None or not text.strip():
        return None
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _model_bound(
    prop: str, type_: str, text: str, minimum: str | None, maximum: str | None
) -> str | None:
    """The model's ``minimum``/``maximum`` broken by a numeric value, as a sentence."""
    if type_ not in _NUMERIC:
        return None
    value = _number(text)
    if value is None:
        return None
    low, high = _number(minimum), _number(maximum)
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"{minimum if low is not None else '-inf'}..{maximum if high is not None else 'inf'}"
        return f"{text} is outside the range of {prop} in its model: {span}"
    return None


def _register_issue(device: Device, prop: str, type_: PropertyTypeName, text: str) -> str | None:
    """Why the property's register cannot take the value (protocols the edge knows)."""
    if device.protocol_name != "modbus":
        return None
    dp = device.get_property(prop)
    config = dp.visitors.config_data if dp is not None and dp.visitors is not None else None
    if not config:
        return None
    issue = modbus_schema.write_issue(modbus_schema.coerce_config(config), type_, text)
    if issue is None:
        return None
    return f"{text} cannot be written to {prop}: {issue}"
