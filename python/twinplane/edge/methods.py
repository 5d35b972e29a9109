"""A device's methods: KubeEdge's ``spec.methods`` plus twinplane's ``twinplane.io/methods``.

KubeEdge's ``spec.methods[] {name, description, propertyNames}`` keeps its meaning: a method
that writes the named properties; a call's arguments are property values
(``{"<property>": <value>}``), checked as desired values are
(:func:`twinplane.edge.desired.desired_issues`: the property's type, the model's range, its
access mode, what its register can take).

The ``twinplane.io/methods`` annotation on the Device (KubeEdge ignores annotations, and
kube-apiserver does not prune them) is a JSON object keyed by method name::

    {"<method>": {"description"?: str, "idempotent"?: bool,
                  "parameters"?: {"<name>": {"type": "int"|"float"|"double"|"boolean"|"string",
                                             "minimum"?, "maximum"?, "enum"?: [...],
                                             "required"?: bool, "default"?}},
                  "driver"?: {"command": str, ...}}}

An entry named like a ``spec.methods`` entry adds constraints to its property arguments
(``parameters`` keyed by property name) and ``idempotent``; an entry with a ``driver`` block is a
driver-level command (its ``parameters`` are the command's arguments, the ``driver`` block is
handed to the mapper's driver as it is). An entry that is neither is refused. The annotation is
parsed once per applied Device (:func:`device_methods`); an error names its path, e.g.
``metadata.annotations["twinplane.io/methods"].reset.parameters.seconds.maximum``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from twinplane.edge.desired import desired_issues
from twinplane.errors import SpecError
from twinplane.manifests import Device, DeviceModel

__all__ = [
    "ANNOTATION",
    "ArgumentIssue",
    "Method",
    "MethodError",
    "Parameter",
    "argument_issues",
    "device_methods",
]

ANNOTATION: Final = "twinplane.io/methods"
"""The Device annotation that declares twinplane's method extensions."""

_ROOT: Final = f'metadata.annotations["{ANNOTATION}"]'
_TYPES: Final = frozenset({"int", "float", "double", "boolean", "string"})
_METHOD_KEYS: Final = frozenset({"description", "idempotent", "parameters", "driver"})
_PARAM_KEYS: Final = frozenset({"type", "minimum", "maximum", "enum", "required", "default"})

ParameterType = Literal["int", "float", "double", "boolean", "string"]
IssueReason = Literal[
    "unknown", "required", "type", "range", "enum", "readonly", "reference", "value"
]


class MethodError(SpecError):
    """The ``twinplane.io/methods`` annotation is not valid; ``path`` names the field."""


@dataclass(frozen=True, slots=True)
class Parameter:
    """One typed argument of a method.

    Attributes:
        name: The argument (a property name for a property-writing method).
        type: Its type (``None``: the property's model type decides).
        minimum: The smallest number it takes.
        maximum: The largest number it takes.
        enum: The only values it takes, when given.
        required: Whether a call must give it.
        default: The value a call that omits it gets.
    """

    name: str
    type: ParameterType | None = None
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[Any, ...] | None = None
    required: bool = False
    default: Any = None


@dataclass(frozen=True, slots=True)
class Method:
    """One method of a device.

    Attributes:
        name: The method.
        description: What it does.
        property_names: The properties it writes (a ``spec.methods`` entry), else empty.
        parameters: Typed arguments by name.
        driver: The driver-level command block, for a driver command; else ``None``.
        idempotent: Whether sending it twice is harmless (a call sent but unanswered when the
            edge stopped is sent again after a restart only then).
    """

    name: str
    description: str = ""
    property_names: tuple[str, ...] = ()
    parameters: Mapping[str, Parameter] = field(default_factory=dict)
    driver: Mapping[str, Any] | None = None
    idempotent: bool = False

    @property
    def kind(self) -> Literal["properties", "driver"]:
        """``properties`` (writes properties as desired values) or ``driver`` (a command)."""
        return "driver" if self.driver is not None else "properties"


@dataclass(frozen=True, slots=True)
class ArgumentIssue:
    """Why one argument of a call is refused.

    Attributes:
        argument: The argument (``""`` for the call as a whole).
        reason: ``unknown``, ``required``, ``type``, ``range``, ``enum``, ``readonly``,
            ``reference`` or ``value`` (not a value of the property's type).
        message: A sentence naming the argument, the value and what it may be.
    """

    argument: str
    reason: IssueReason
    message: str


def device_methods(device: Device) -> dict[str, Method]:
    """The device's methods by name: ``spec.methods`` merged with the annotation.

    Raises:
        MethodError: The annotation is not valid JSON or not of the schema; the path names
            the field.
    """
    raw = (device.metadata.annotations or {}).get(ANNOTATION)
    extra = _parse_annotation(raw, device.id) if raw is not None else {}
    methods: dict[str, Method] = {}
    for m in device.spec.methods:
        ext = extra.pop(m.name, None)
        params = dict(ext.parameters) if ext is not None else {}
        for pname in params:
            if pname not in m.property_names:
                raise MethodError(
                    f"method {m.name!r} writes {', '.join(m.property_names) or 'no property'}; "
                    f"parameter {pname!r} is not one of them",
                    device=device.id,
                    path=f"{_ROOT}.{m.name}.parameters.{pname}",
                )
        if ext is not None and ext.driver is not None:
            raise MethodError(
                f"method {m.name!r} is in spec.methods (it writes properties): it cannot also "
                "have a driver block",
                device=device.id,
                path=f"{_ROOT}.{m.name}.driver",
            )
        methods[m.name] = Method(
            m.name,
            m.description or (ext.description if ext else ""),
            tuple(m.property_names),
            params,
            None,
            ext.idempotent if ext else False,
        )
    for name, ext in extra.items():
        if ext.driver is None:
            raise MethodError(
                f"method {name!r} is not in spec.methods and has no driver block: "
                "it would do nothing",
                device=device.id,
                path=f"{_ROOT}.{name}",
            )
        methods[name] = ext
    return methods


def _parse_annotation(raw: str, device_id: str) -> dict[str, Method]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        raise MethodError(
            f"not JSON: {err.msg} at line {err.lineno} column {err.colno}",
            device=device_id,
            path=_ROOT,
        ) from None
    if not isinstance(data, dict):
        raise MethodError(
            "must be a JSON object keyed by method name", device=device_id, path=_ROOT
        )
    return {name: _parse_method(name, body, device_id) for name, body in data.items()}


def _fail(message: str, device_id: str, *parts: str) -> MethodError:
    return MethodError(message, device=device_id, path=".".join((_ROOT, *parts)))


def _parse_method(name: str, body: object, device_id: str) -> Method:
    if not name or not isinstance(body, dict):
        raise _fail("a method must be a non-empty name with an object body", device_id, name)
    for key in body:
        if key not in _METHOD_KEYS:
            allowed = ", ".join(sorted(_METHOD_KEYS))
            raise _fail(f"unknown field {key!r} (allowed: {allowed})", device_id, name, key)
    description = body.get("description", "")
    if not isinstance(description, str):
        raise _fail("must be a string", device_id, name, "description")
    idempotent = body.get("idempotent", False)
    if not isinstance(idempotent, bool):
        raise _fail("must be true or false", device_id, name, "idempotent")
    raw_params = body.get("parameters", {})
    if not isinstance(raw_params, dict):
        raise _fail("must be an object keyed by parameter name", device_id, name, "parameters")
    params = {p: _parse_parameter(p, b, device_id, name) for p, b in raw_params.items()}
    driver = body.get("driver")
    if driver is not None:
        if not isinstance(driver, dict):
            raise _fail("must be an object", device_id, name, "driver")
        command = driver.get("command")
        if not isinstance(command, str) or not command:
            raise _fail("the driver command's name is required", device_id, name, "driver.command")
    return Method(name, description, (), params, driver, idempotent)


def _parse_parameter(pname: str, body: object, device_id: str, method: str) -> Parameter:
    where = (method, "parameters", pname)
    if not isinstance(body, dict):
        raise _fail("must be an object", device_id, *where)
    for key in body:
        if key not in _PARAM_KEYS:
            allowed = ", ".join(sorted(_PARAM_KEYS))
            raise _fail(f"unknown field {key!r} (allowed: {allowed})", device_id, *where, key)
    type_ = body.get("type")
    if type_ is not None and type_ not in _TYPES:
        allowed = ", ".join(sorted(_TYPES))
        raise _fail(f"{type_!r} is not a type (allowed: {allowed})", device_id, *where, "type")
    bounds: dict[str, float | None] = {}
    for key in ("minimum", "maximum"):
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise _fail("must be a number", device_id, *where, key)
        bounds[key] = None if value is None else float(value)
    low, high = bounds["minimum"], bounds["maximum"]
    if low is not None and high is not None and low > high:
        raise _fail(f"is below minimum {low:g}", device_id, *where, "maximum")
    enum = body.get("enum")
    if enum is not None and (not isinstance(enum, list) or not enum):
        raise _fail("must be a non-empty list of values", device_id, *where, "enum")
    required = body.get("required", False)
    if not isinstance(required, bool):
        raise _fail("must be true or false", device_id, *where, "required")
    param = Parameter(
        pname,
        type_,
        low,
        high,
        tuple(enum) if enum is not None else None,
        required,
        body.get("default"),
    )
    if param.default is not None:
        issue = _parameter_issue(param, param.default)
        if issue is not None:
            raise _fail(f"the default is refused: {issue.message}", device_id, *where, "default")
    return param


def _parameter_issue(param: Parameter, value: Any) -> ArgumentIssue | None:  # noqa: ANN401, PLR0911
    """Why ``value`` does not fit ``param``'s type, range or enum."""
    name, type_ = param.name, param.type
    if type_ in ("int", "float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return ArgumentIssue(name, "type", f"{name}: {value!r} is not a number ({type_})")
        if type_ == "int" and not (isinstance(value, int) or float(value).is_integer()):
            return ArgumentIssue(name, "type", f"{name}: {value!r} is not an integer")
        if isinstance(value, float) and not math.isfinite(value):
            return ArgumentIssue(name, "type", f"{name}: {value!r} is not a finite number")
    elif type_ == "boolean" and not isinstance(value, bool):
        return ArgumentIssue(name, "type", f"{name}: {value!r} is not true or false")
    elif type_ == "string" and not isinstance(value, str):
        return ArgumentIssue(name, "type", f"{name}: {value!r} is not a string")
    if param.enum is not None and value not in param.enum:
        allowed = ", ".join(json.dumps(v) for v in param.enum)
        return ArgumentIssue(name, "enum", f"{name}: {value!r} is not one of {allowed}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        low, high = param.minimum, param.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            span = (
                f"{'-inf' if low is None else f'{low:g}'}..{'inf' if high is None else f'{high:g}'}"
            )
            return ArgumentIssue(name, "range", f"{name}: {value!r} is outside {span}")
    return None


def property_text(value: Any) -> str:  # noqa: ANN401 - a JSON scalar
    """A JSON scalar argument as the twin's text (``true``, ``21.5``, ``on``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def argument_issues(
    method: Method, device: Device, model: DeviceModel | None, args: Mapping[str, Any]
) -> tuple[dict[str, Any], list[ArgumentIssue]]:
    """The call's arguments with defaults filled in, and every refused one.

    Args:
        method: The method called.
        device: Its device.
        model: The device's model (``None`` if not applied: property checks are skipped).
        args: The call's arguments (JSON values).
    """
    issues: list[ArgumentIssue] = []
    allowed = set(method.property_names) | set(method.parameters)
    full = dict(args)
    for name, value in args.items():
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            issues.append(
                ArgumentIssue(
                    name,
                    "unknown",
                    f"method {method.name} has no argument {name!r} (it takes: {known})",
                )
            )
        elif value is not None and not isinstance(value, bool | int | float | str):
            issues.append(ArgumentIssue(name, "type", f"{name}: must be a JSON scalar"))
    for pname, param in method.parameters.items():
        if pname not in full or full[pname] is None:
            if param.default is not None:
                full[pname] = param.default
            elif param.required:
                issues.append(ArgumentIssue(pname, "required", f"{pname} is required"))
            continue
        issue = _parameter_issue(param, full[pname])
        if issue is not None:
            issues.append(issue)
    if method.kind == "properties":
        if not any(n in full for n in method.property_names):
            names = ", ".join(method.property_names)
            issues.append(ArgumentIssue("", "required", f"give at least one of: {names}"))
        if model is not None and not issues:
            values = {n: property_text(v) for n, v in full.items() if v is not None}
            issues.extend(
                ArgumentIssue(i.property, i.reason, i.message)
                for i in desired_issues(device, model, values)
            )
    return full, issues
