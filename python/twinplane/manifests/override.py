"""The model → instance override of KubeEdge v1.22 (``dmicache.GetOverriddenDevice``, spec §3.6).

A DeviceModel may carry default visitors per property and a default protocol ``configData``;
what a mapper receives is the Device with those defaults applied under its own settings:

1. For every device property whose name is in the model and whose model property has
   ``visitors``, the device property's visitors are replaced by a deep copy of the model's
   (``protocolName`` and ``configData``).
2. Then the instance's own ``visitors.configData`` keys are merged on top (the instance wins per
   key; the merge is shallow, as in Go); when the model gave no ``configData``, the instance's is
   used as it is. An instance without ``configData`` keeps the model's visitors whole.
3. The protocol ``configData`` starts from the model's ``spec.protocolConfigData`` and the
   instance's ``spec.protocol.configData`` keys are merged on top.

Nothing else changes (the protocol name is the instance's, as in KubeEdge). The result shares no
mutable data with either input.
"""

from __future__ import annotations

import copy
from typing import Any

from msgspec.structs import replace

from twinplane.errors import SpecError
from twinplane.manifests.types import Device, DeviceModel, DeviceProperty, ModelProperty, Visitors

__all__ = ["overridden_device"]


def overridden_device(device: Device, model: DeviceModel) -> Device:
    """The Device as a mapper gets it: the model's defaults with the instance's settings on top.

    Args:
        device: The Device instance.
        model: Its DeviceModel (``<device namespace>/<spec.deviceModelRef.name>``).

    Raises:
        SpecError: ``model`` is not the device's model.
    """
    if model.id != device.model_id:
        raise SpecError(
            f"DeviceModel {model.id} is not the model of Device {device.id} ({device.model_id})",
            device=device.id,
            path="spec.deviceModelRef.name",
        )
    device = copy.deepcopy(device)  # the result shares no dict with the input
    model_props: dict[str, ModelProperty] = {}
    for prop in model.spec.properties:  # the first of a name, as Go's findModelProperty
        model_props.setdefault(prop.name, prop)
    properties = tuple(_property(p, model_props.get(p.name)) for p in device.spec.properties)
    protocol = replace(
        device.spec.protocol,
        config_data=_merged(model.spec.protocol_config_data, device.spec.protocol.config_data),
    )
    spec = replace(device.spec, properties=properties, protocol=protocol)
    return replace(device, spec=spec)


def _property(prop: DeviceProperty, model_prop: ModelProperty | None) -> DeviceProperty:
    own = prop.visitors
    if model_prop is None or model_prop.visitors is None:
        visitors = own
    else:
        base = model_prop.visitors
        own_config = own.config_data if own is not None else None
        visitors = Visitors(
            protocol_name=base.protocol_name,
            config_data=_merged(base.config_data, own_config),
        )
    return replace(prop, visitors=visitors)


def _merged(defaults: dict[str, Any] | None, own: dict[str, Any] | None) -> dict[str, Any] | None:
    """``defaults`` (deep-copied: it is the model's) with ``own``'s keys on top."""
    if own is None:
        return copy.deepcopy(defaults)
    if defaults is None:
        return own
    return copy.deepcopy(defaults) | own
