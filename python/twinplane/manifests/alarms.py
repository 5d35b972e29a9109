"""Alarm rules of a device, parsed and validated once into the engine's rule specs.

The rules come from the model's ``minimum``/``maximum`` and the ``twinplane.io/alarms``
annotation.

A DeviceModel property with ``minimum`` and/or ``maximum`` implies a rule named
``<property>-range`` (``outside`` the band, or ``below``/``above`` with one bound). The
annotation on the DeviceModel is a JSON list of rules; the same annotation on a Device replaces
the model's rules of the same name and adds the others. The schema is in docs/events.md,
"Alarm rules".
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

from twinplane.errors import SpecError
from twinplane.manifests.types import Device, DeviceModel
from twinplane.twin.spec import AlarmConditionName, AlarmRuleSpec

ANNOTATION: Final = "twinplane.io/alarms"
"""The annotation that holds a DeviceModel's (or a Device's) alarm rules."""

Severity = Literal["info", "warning", "critical"]
"""An alarm's severity."""

_NUMERIC: Final = frozenset({"int", "float", "double"})
_MAX_COUNT: Final = 65535
_CONDITIONS: Final = ("above", "below", "outside", "inside", "rate")
_SEVERITIES: Final = ("info", "warning", "critical")
_KEYS: Final = frozenset(
    {
        "name", "property", "condition", "threshold", "low", "high", "signed", "hysteresis",
        "raiseAfter", "clearAfter", "severity", "message",
    }
)  # fmt: skip


class AlarmRule:
    """A validated rule: what the engine evaluates plus what the alarm lifecycle shows.

    Attributes:
        property: The property the rule watches.
        spec: The engine's rule spec.
        severity: The alarm's severity.
        message: A human text for the alarm (a default one is made).
    """

    __slots__ = ("message", "property", "severity", "spec")

    def __init__(self, prop: str, spec: AlarmRuleSpec, severity: Severity, message: str) -> None:
        self.property = prop
        self.spec = spec
        self.severity: Severity = severity
        self.message = message

    @property
    def name(self) -> str:
        """The rule's name, unique within the device."""
        return self.spec["name"]


def _path(_kind: str, i: int, key: str | None = None) -> str:
    base = f'metadata.annotations["{ANNOTATION}"][{i}]'
    return f"{base}.{key}" if key else base


def _required(raw: Mapping[str, Any], key: str, path: str) -> float:
    x = _number(raw, key, path)
    if x is None:
        raise SpecError(f"{path}: required", path=path)
    return x


def _number(raw: Mapping[str, Any], key: str, path: str) -> float | None:
    v = raw.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise SpecError(f"{path}: expected a finite number, got {v!r}", path=path)
    return float(v)


def _count(raw: Mapping[str, Any], key: str, path: str) -> int | None:
    v = raw.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= _MAX_COUNT:
        raise SpecError(f"{path}: expected an integer from 1 to 65535, got {v!r}", path=path)
    return v


def parse_rule(
    raw: object, i: int, types: Mapping[str, str], kind: str = "DeviceModel"
) -> AlarmRule:
    """One rule of the annotation's list; errors name ``metadata.annotations[...][i].<field>``.

    Args:
        raw: The decoded JSON item.
        i: Its index in the list.
        types: Property name -> lower-case KubeEdge type of the model.
        kind: The object the annotation is on (``DeviceModel`` or ``Device``), for messages.
    """

    def p(key: str | None = None) -> str:
        return _path(kind, i, key)

    if not isinstance(raw, dict):
        raise SpecError(f"{kind} {p()}: expected an object", path=p())
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise SpecError(f"{kind} {p(unknown[0])}: unknown field", path=p(unknown[0]))
    name, prop, condition = _target(raw, p, types)
    spec: AlarmRuleSpec = {"name": name, "condition": condition}
    _bounds(raw, p, spec)
    _tuning(raw, p, spec)
    severity = raw.get("severity", "warning")
    if severity not in _SEVERITIES:
        msg = f"{p('severity')}: {severity!r} is not one of {', '.join(_SEVERITIES)}"
        raise SpecError(msg, path=p("severity"))
    message = raw.get("message")
    if message is not None and not isinstance(message, str):
        raise SpecError(f"{p('message')}: expected a string", path=p("message"))
    return AlarmRule(prop, spec, severity, message or _default_message(prop, spec))


def _target(
    raw: Mapping[str, Any], p: Callable[..., str], types: Mapping[str, str]
) -> tuple[str, str, AlarmConditionName]:
    """The rule's name, property and condition, checked against the model."""
    name, prop, cond = raw.get("name"), raw.get("property"), raw.get("condition")
    if not isinstance(name, str) or not name:
        raise SpecError(f"{p('name')}: a non-empty string is required", path=p("name"))
    if not isinstance(prop, str) or prop not in types:
        raise SpecError(f"{p('property')}: no property {prop!r} in the model", path=p("property"))
    if types[prop] not in _NUMERIC:
        msg = (
            f"{p('property')}: {prop!r} is {types[prop]}, an alarm rule needs int, float or double"
        )
        raise SpecError(msg, path=p("property"))
    if cond not in _CONDITIONS:
        msg = f"{p('condition')}: {cond!r} is not one of {', '.join(_CONDITIONS)}"
        raise SpecError(msg, path=p("condition"))
    condition: AlarmConditionName = cond
    return name, prop, condition


def _bounds(raw: Mapping[str, Any], p: Callable[..., str], spec: AlarmRuleSpec) -> None:
    """The threshold, or low and high, and a rate rule's ``signed``."""
    condition = spec["condition"]
    if condition in ("outside", "inside"):
        low = _required(raw, "low", p("low"))
        high = _required(raw, "high", p("high"))
        if low > high:
            raise SpecError(f"{p('low')}: low {low} is above high {high}", path=p("low"))
        spec["low"], spec["high"] = low, high
    else:
        spec["threshold"] = _required(raw, "threshold", p("threshold"))
    if condition == "rate" and raw.get("signed") is not None:
        if not isinstance(raw["signed"], bool):
            raise SpecError(f"{p('signed')}: expected a boolean", path=p("signed"))
        spec["signed"] = raw["signed"]


def _tuning(raw: Mapping[str, Any], p: Callable[..., str], spec: AlarmRuleSpec) -> None:
    """Hysteresis, raiseAfter and clearAfter."""
    hysteresis = _number(raw, "hysteresis", p("hysteresis"))
    if hysteresis is not None:
        if hysteresis < 0:
            raise SpecError(f"{p('hysteresis')}: must be >= 0", path=p("hysteresis"))
        spec["hysteresis"] = hysteresis
    raise_after = _count(raw, "raiseAfter", p("raiseAfter"))
    if raise_after is not None:
        spec["raise_after"] = raise_after
    clear_after = _count(raw, "clearAfter", p("clearAfter"))
    if clear_after is not None:
        spec["clear_after"] = clear_after


def _default_message(prop: str, spec: AlarmRuleSpec) -> str:
    c = spec["condition"]
    if c in ("outside", "inside"):
        return f"{prop} {c} [{spec.get('low')}, {spec.get('high')}]"
    if c == "rate":
        return f"{prop} changes faster than {spec.get('threshold')}/s"
    return f"{prop} {c} {spec.get('threshold')}"


def parse_annotation(
    text: str, types: Mapping[str, str], kind: str = "DeviceModel"
) -> list[AlarmRule]:
    """The rules of one ``twinplane.io/alarms`` annotation (a JSON list); names must be unique."""
    base = f'metadata.annotations["{ANNOTATION}"]'
    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(f"{base}: not JSON: {e}", path=base) from e
    if not isinstance(items, list):
        raise SpecError(f"{base}: expected a JSON list of rules", path=base)
    rules = [parse_rule(raw, i, types, kind) for i, raw in enumerate(items)]
    seen: dict[str, int] = {}
    for i, r in enumerate(rules):
        if r.name in seen:
            path = _path(kind, i, "name")
            raise SpecError(f"{path}: rule {r.name!r} is also [{seen[r.name]}]", path=path)
        seen[r.name] = i
    return rules


def _range_rule(prop: str, lo: float | None, hi: float | None) -> AlarmRule | None:
    name = f"{prop}-range"
    spec: AlarmRuleSpec
    if lo is not None and hi is not None:
        spec = {"name": name, "condition": "outside", "low": lo, "high": hi}
    elif hi is not None:
        spec = {"name": name, "condition": "above", "threshold": hi}
    elif lo is not None:
        spec = {"name": name, "condition": "below", "threshold": lo}
    else:
        return None
    return AlarmRule(prop, spec, "warning", _default_message(prop, spec))


def _bound(text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        x = float(text)
    except ValueError:
        return None  # the manifest validator reports a bad bound; no implied rule
    return x if math.isfinite(x) else None


def device_rules(device: Device | None, model: DeviceModel) -> list[AlarmRule]:
    """Every rule of a device: implied range rules, the model's, then the device's by name."""
    types = {p.name: str(p.type).lower() for p in model.spec.properties}
    rules: dict[str, AlarmRule] = {}
    for p in model.spec.properties:
        if types[p.name] in _NUMERIC:
            r = _range_rule(p.name, _bound(p.minimum), _bound(p.maximum))
            if r is not None:
                rules[r.name] = r
    for obj, kind in ((model, "DeviceModel"), (device, "Device")):
        ann = (obj.metadata.annotations or {}).get(ANNOTATION) if obj is not None else None
        if ann is not None:
            for r in parse_annotation(ann, types, kind):
                rules[r.name] = r
    return list(rules.values())


def rules_by_property(rules: list[AlarmRule]) -> dict[str, list[AlarmRuleSpec]]:
    """The engine's rule specs grouped by property."""
    out: dict[str, list[AlarmRuleSpec]] = {}
    for r in rules:
        out.setdefault(r.property, []).append(r.spec)
    return out
