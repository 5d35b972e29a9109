"""What to change in a ``devices.kubeedge.io/v1alpha2`` manifest to make it ``v1beta1``.

twinplane reads ``v1beta1`` only (KubeEdge's storage version since 1.15). A v1alpha2 document is
rejected with a message written from the two schemas in KubeEdge's CRDs, naming the v1alpha2
fields the document actually uses. The same notes explain a v1alpha2 field that turns up inside
a v1beta1 document (``spec.propertyVisitors``...).
"""

from __future__ import annotations

from typing import Any, Final

from twinplane.manifests.paths import Path, format_path
from twinplane.manifests.types import API_VERSION

__all__ = ["LEGACY_FIELD_NOTES", "LEGACY_VERSIONS", "legacy_version_message"]

LEGACY_VERSIONS: Final = frozenset({"v1alpha1", "v1alpha2"})
"""The ``devices.kubeedge.io`` versions before v1beta1."""

_DEVICE: Final = (
    "spec.deviceModelRef stays as it is; "
    "spec.propertyVisitors[] became spec.properties[]: propertyName -> name, and the visitor's "
    "protocol block (modbus, opcua, bluetooth or customizedProtocol, plus customizedValues) -> "
    "visitors: {protocolName: <protocol>, configData: {<its keys>}}, e.g. modbus: {register, "
    "offset, limit, scale, isSwap, isRegisterSwap} -> visitors: {protocolName: modbus, "
    "configData: {register: ..., offset: ..., ...}}; collectCycle and reportCycle move into "
    "spec.properties[] and are milliseconds now (v1alpha2 mappers read nanoseconds); "
    "spec.protocol.{modbus, opcua, bluetooth, common, customizedProtocol} became "
    "spec.protocol: {protocolName: <protocol>, configData: {<flat keys>}}, e.g. modbus.slaveID "
    "and common.tcp.{ip, port} -> configData: {slaveID, ip, port}; "
    "spec.nodeSelector became spec.nodeName: <node>; "
    "spec.data (dataProperties, dataTopic) is gone: use spec.properties[].pushMethod; "
    "status.twins[].desired became spec.properties[].desired (reported values live in the "
    "DeviceStatus kind)"
)
_MODEL: Final = (
    "spec.protocol stays (and is required); "
    "each spec.properties[].type: {<int|float|double|string|boolean|bytes>: {accessMode, "
    "minimum, maximum, unit, defaultValue}} became flat fields of the property: "
    "type: INT|FLOAT|DOUBLE|STRING|BOOLEAN|BYTES|STREAM (upper case), accessMode, "
    "minimum and maximum as strings, unit; defaultValue is gone (set "
    "spec.properties[].desired.value on the Device instead); "
    "v1beta1 also adds spec.properties[].visitors and spec.protocolConfigData, defaults that "
    "every Device of the model inherits"
)
_STATUS: Final = (
    "the top-level twins[] moved to status.twins[], each {propertyName, reported, "
    "observedDesired} (desired became observedDesired); spec is {}; status.state and "
    "status.lastOnlineTime are new. The cloud's devicecontroller writes DeviceStatus objects; "
    "they need not be applied by hand"
)
_BY_KIND: Final = {"Device": _DEVICE, "DeviceModel": _MODEL, "DeviceStatus": _STATUS}

_DEVICE_FIELDS: Final[tuple[Path, ...]] = (
    ("spec", "propertyVisitors"),
    ("spec", "protocol", "modbus"),
    ("spec", "protocol", "opcua"),
    ("spec", "protocol", "bluetooth"),
    ("spec", "protocol", "common"),
    ("spec", "protocol", "customizedProtocol"),
    ("spec", "nodeSelector"),
    ("spec", "data"),
    ("status", "twins"),
)

LEGACY_FIELD_NOTES: Final[dict[str, str]] = {
    "spec.propertyVisitors": (
        "spec.propertyVisitors is v1alpha2: in v1beta1 each entry is a spec.properties[] item "
        "with name and visitors: {protocolName, configData}"
    ),
    "spec.nodeSelector": "spec.nodeSelector is v1alpha2: v1beta1 has spec.nodeName",
    "spec.data": "spec.data is v1alpha2: v1beta1 pushes data with spec.properties[].pushMethod",
    "spec.protocol.modbus": "v1alpha2: v1beta1 has spec.protocol.{protocolName, configData}",
    "spec.protocol.common": "v1alpha2: v1beta1 has spec.protocol.{protocolName, configData}",
    "spec.properties[].propertyName": "v1beta1 calls it name",
    "spec.properties[].type": (
        "v1alpha2 nested the type as type: {int: {accessMode, ...}}; v1beta1 has flat fields "
        "type: INT|FLOAT|DOUBLE|STRING|BOOLEAN|BYTES|STREAM and accessMode"
    ),
}
"""Notes added to issues at these paths (indices blanked) of a v1beta1 document."""


def legacy_version_message(api_version: str, kind: str, document: dict[str, Any]) -> str:
    """Why a v1alpha1/v1alpha2 document is rejected and what to change, field by field."""
    how = _BY_KIND.get(kind, f"{_DEVICE}. For a DeviceModel: {_MODEL}")
    used = _legacy_fields_used(kind, document)
    found = f" This document uses: {', '.join(used)}." if used else ""
    return (
        f"{api_version} is not read: twinplane reads {API_VERSION} (KubeEdge's storage version "
        f"since 1.15). To convert this {kind or 'document'}, set apiVersion: {API_VERSION}; "
        f"{how}.{found}"
    )


def _legacy_fields_used(kind: str, document: dict[str, Any]) -> list[str]:
    if kind == "DeviceModel":
        props = _at(document, ("spec", "properties"))
        used: list[str] = []
        for i, prop in enumerate(props if isinstance(props, list) else []):
            type_block = prop.get("type") if isinstance(prop, dict) else None
            if isinstance(type_block, dict):
                used += [format_path(("spec", "properties", i, "type", k)) for k in type_block]
        return used
    if kind == "DeviceStatus":
        return ["twins"] if "twins" in document else []
    return [format_path(p) for p in _DEVICE_FIELDS if _at(document, p) is not None]


def _at(document: dict[str, Any], path: Path) -> Any:  # noqa: ANN401 - any JSON value
    node: Any = document
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node
