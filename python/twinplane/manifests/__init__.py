"""KubeEdge ``devices.kubeedge.io/v1beta1`` manifests: typed, loaded, checked, overridden.

Load Device, DeviceModel and DeviceStatus manifests from YAML or JSON, with every error and
warning named by its path::

    result = load_documents(text, source="devices.yaml")
    if result.errors:  # the REST API answers 422 with all of them
        ...
    for device in result.devices:
        model = registry[device.model_id]
        device = overridden_device(device, model)  # KubeEdge v1.22 model defaults

- :mod:`~twinplane.manifests.types`: the structs (``Device``, ``DeviceModel``, ``DeviceStatus``).
- :mod:`~twinplane.manifests.load`: text to objects (:func:`load_documents`, :func:`load_strict`).
- :mod:`~twinplane.manifests.validate`: the schema walk and KubeEdge's admission rule.
- :mod:`~twinplane.manifests.references`: model and property references.
- :mod:`~twinplane.manifests.quirks`: real-world quirks read with a warning.
- :mod:`~twinplane.manifests.legacy`: what to change in a v1alpha2 manifest.
- :mod:`~twinplane.manifests.override`: the model → instance override.
"""

from __future__ import annotations

from twinplane.manifests.issues import IssueCode, ManifestError, ManifestIssue
from twinplane.manifests.load import LoadResult, load_documents, load_file, load_strict
from twinplane.manifests.override import overridden_device
from twinplane.manifests.quirks import NANOSECOND_CYCLE_THRESHOLD
from twinplane.manifests.references import validate_references
from twinplane.manifests.types import (
    API_VERSION,
    TWIN_KEY_PATTERN,
    AccessMode,
    DBMethod,
    Device,
    DeviceMethod,
    DeviceModel,
    DeviceModelRef,
    DeviceModelSpec,
    DeviceProperty,
    DeviceSpec,
    DeviceStatus,
    DeviceStatusStatus,
    Manifest,
    ModelProperty,
    ObjectMeta,
    PropertyType,
    ProtocolConfig,
    PushMethod,
    StateReport,
    Twin,
    TwinValue,
    Visitors,
)

__all__ = [
    "API_VERSION",
    "NANOSECOND_CYCLE_THRESHOLD",
    "TWIN_KEY_PATTERN",
    "AccessMode",
    "DBMethod",
    "Device",
    "DeviceMethod",
    "DeviceModel",
    "DeviceModelRef",
    "DeviceModelSpec",
    "DeviceProperty",
    "DeviceSpec",
    "DeviceStatus",
    "DeviceStatusStatus",
    "IssueCode",
    "LoadResult",
    "Manifest",
    "ManifestError",
    "ManifestIssue",
    "ModelProperty",
    "ObjectMeta",
    "PropertyType",
    "ProtocolConfig",
    "PushMethod",
    "StateReport",
    "Twin",
    "TwinValue",
    "Visitors",
    "load_documents",
    "load_file",
    "load_strict",
    "overridden_device",
    "validate_references",
]
