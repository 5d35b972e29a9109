"""Checking what Devices refer to: their model, its properties, their own properties.

A Device is only usable with its DeviceModel: EdgeCore looks the model up as
``<device namespace>/<spec.deviceModelRef.name>`` before it hands the device to a mapper
(spec §3.6), and the mapper decodes each property by the model property's type. So, for each
Device:

- the model exists in the device's namespace;
- the device's ``spec.protocol.protocolName`` is the model's ``spec.protocol`` (EdgeCore sends
  the model to the mapper of the model's protocol and the device to the mapper of the device's;
  when they differ, the device's mapper never gets the model);
- every device property is a property of the model;
- every ``desired.value`` reads as the model property's type (``INT``: a 64-bit integer,
  ``FLOAT``/``DOUBLE``: a decimal number, ``BOOLEAN``: what Go's ``strconv.ParseBool`` accepts);
- every name in ``spec.methods[].propertyNames`` is a property of the device.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Final

from twinplane.manifests.issues import IssueCode, ManifestIssue
from twinplane.manifests.paths import Path, format_path
from twinplane.manifests.types import Device, DeviceModel, PropertyType

__all__ = ["reference_issues", "validate_references"]

_INT: Final = re.compile(r"[+-]?[0-9]+")
_FLOAT: Final = re.compile(
    r"[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|inf|infinity|nan)", re.IGNORECASE
)
_GO_BOOLS: Final = frozenset(
    {"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"}
)
_SHOWN: Final = 10


def validate_references(
    devices: Iterable[Device], models: Iterable[DeviceModel]
) -> list[ManifestIssue]:
    """Check each Device against the models (a registry's, or those of one input).

    Args:
        devices: The Devices to check.
        models: Every model they may refer to.

    Returns:
        One error per broken reference (``document`` is ``-1``: the objects are not tied to an
        input here; :meth:`LoadResult.reference_issues` fills it in).
    """
    known = {m.id: m for m in models}
    return [issue for device in devices for issue in reference_issues(device, known)]


def reference_issues(
    device: Device, models: Mapping[str, DeviceModel], *, document: int = -1
) -> list[ManifestIssue]:
    """The broken references of one Device; ``models`` is keyed by id (``<ns>/<name>``)."""

    def issue(path: Path, message: str, code: IssueCode = "reference") -> ManifestIssue:
        return ManifestIssue(
            document, "Device", device.name, format_path(path), message, code, device.namespace
        )

    model = models.get(device.model_id)
    if model is None:
        return [issue(("spec", "deviceModelRef", "name"), _missing_model(device, models))]
    issues: list[ManifestIssue] = []
    if device.protocol_name != model.spec.protocol:
        issues.append(
            issue(
                ("spec", "protocol", "protocolName"),
                f"{device.protocol_name!r} is not the protocol of DeviceModel {model.id} "
                f"({model.spec.protocol!r}): the model would go to another mapper than the device",
            )
        )
    model_props = {p.name: p for p in model.spec.properties}
    for i, prop in enumerate(device.spec.properties):
        model_prop = model_props.get(prop.name)
        if model_prop is None:
            issues.append(
                issue(("spec", "properties", i, "name"), _missing_property(prop.name, model))
            )
        elif prop.desired is not None and not _fits(prop.desired.value, model_prop.type):
            issues.append(
                issue(
                    ("spec", "properties", i, "desired", "value"),
                    f"{prop.desired.value!r} does not read as {model_prop.type}, the type of "
                    f"{prop.name!r} in DeviceModel {model.id}",
                    "value",
                )
            )
    own = {p.name for p in device.spec.properties}
    for i, method in enumerate(device.spec.methods):
        for j, name in enumerate(method.property_names):
            if name not in own:
                issues.append(
                    issue(
                        ("spec", "methods", i, "propertyNames", j),
                        f"method {method.name!r} names {name!r}, which is not a property of "
                        f"this device{_close(name, own)}",
                    )
                )
    return issues


def _missing_model(device: Device, models: Mapping[str, DeviceModel]) -> str:
    ref = device.spec.device_model_ref.name
    elsewhere = sorted(m.namespace for m in models.values() if m.name == ref)
    hint = f"; there is one in namespace {', '.join(elsewhere)}" if elsewhere else ""
    return (
        f"DeviceModel {device.model_id} not found: a Device's model must be in the "
        f"Device's namespace{hint}"
    )


def _missing_property(name: str, model: DeviceModel) -> str:
    names = [p.name for p in model.spec.properties]
    listed = ", ".join(names[:_SHOWN]) + (", ..." if len(names) > _SHOWN else "")
    has = f"it has {listed}" if names else "it has no properties"
    return f"property {name!r} is not in DeviceModel {model.id} ({has}){_close(name, names)}"


def _close(name: str, names: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""


def _fits(value: str, type_: PropertyType) -> bool:
    """Whether a desired value reads as ``type_`` (an empty value means "no desired value")."""
    if not value:
        return True
    if type_ == "INT":
        return _INT.fullmatch(value) is not None and -(2**63) <= int(value) < 2**63
    if type_ in ("FLOAT", "DOUBLE"):
        return _FLOAT.fullmatch(value) is not None
    if type_ == "BOOLEAN":
        return value in _GO_BOOLS
    return True
