"""The simulated thermostat fleet's manifests: one DeviceModel and a Device per simulator unit.

``twinplane up`` applies them to its device manager and ``twinplane bench scale`` to the one it
starts; the tests use them as a realistic fleet. Each device is a unit of the Modbus simulator
(``twinplane sim modbus``, :mod:`twinplane.sim`) at ``(port, unit id)``, with the example
thermostat's four properties (``examples/modbus-sim``) and then 16-bit input registers
``reg-1``, ``reg-2``, ... up to :data:`MAX_PROPERTIES` properties.
"""

from __future__ import annotations

import json
from typing import Any, Final

__all__ = ["MAX_PROPERTIES", "MODEL_NAME", "device_manifests", "registers_for"]

MODEL_NAME: Final = "sim-thermostat"
"""The fleet's DeviceModel."""

MAX_PROPERTIES: Final = 80
"""Most properties a device of the fleet has."""

ALARM_RULES: Final = [
    {
        "name": "too-hot",
        "property": "temperature",
        "condition": "above",
        "threshold": 30,
        "hysteresis": 1,
        "raiseAfter": 3,
        "severity": "warning",
        "message": "temperature above 30 °C",
    }
]
"""The model's sample alarm rule (``twinplane.io/alarms``; docs/events.md)."""

TEMPERATURE_RAMP: Final = (280, 320, 2.0)
"""The first thermostat's temperature register as ``make run`` ramps it: raw 280..320 (28.0 to
32.0 °C with scale 0.1) at 2 raw units a second, so ``too-hot`` raises and clears."""

_FIRST_INPUT_REGISTER: Final = 20
_MIN_REGISTERS: Final = 100

# The example thermostat (examples/modbus-sim): name, model type, access, visitor config.
_BASE_PROPERTIES: Final[tuple[tuple[str, str, str, dict[str, Any]], ...]] = (
    (
        "temperature",
        "FLOAT",
        "ReadOnly",
        {"register": "HoldingRegister", "offset": 0, "limit": 1, "dataType": "float", "scale": 0.1},
    ),
    (
        "counter",
        "INT",
        "ReadOnly",
        {"register": "HoldingRegister", "offset": 2, "dataType": "uint16"},
    ),
    (
        "running",
        "BOOLEAN",
        "ReadOnly",
        {"register": "CoilRegister", "offset": 0, "limit": 1, "dataType": "boolean"},
    ),
    (
        "setpoint",
        "INT",
        "ReadWrite",
        {"register": "HoldingRegister", "offset": 10, "dataType": "int16"},
    ),
)


def registers_for(properties: int) -> int:
    """Registers per table the simulator needs to serve the fleet's first ``properties``."""
    return max(_MIN_REGISTERS, _FIRST_INPUT_REGISTER + properties)


def _properties(count: int) -> list[tuple[str, str, str, dict[str, Any]]]:
    """The first ``count`` properties: the thermostat's four, then input registers ``reg-N``."""
    props = list(_BASE_PROPERTIES[:count])
    for i in range(count - len(props)):
        visitor = {
            "register": "InputRegister",
            "offset": _FIRST_INPUT_REGISTER + i,
            "dataType": "int16",
        }
        props.append((f"reg-{i + 1}", "INT", "ReadOnly", visitor))
    return props


def device_manifests(  # noqa: PLR0913 - keyword-only settings
    addresses: list[tuple[int, int]],
    *,
    properties: int = 4,
    host: str = "127.0.0.1",
    cycle_ms: int = 1000,
    max_in_flight: int | None = None,
    node_name: str | None = None,
) -> str:
    """A ``v1 List`` (JSON) of the model and one Device per ``(port, unit)`` of the simulator.

    Every property is read every ``cycle_ms`` milliseconds (its ``collectCycle``). With
    ``max_in_flight`` the devices ask for that many pipelined requests (``maxInFlight``);
    without it their connections carry one transaction at a time (the driver's default).
    With ``node_name`` every Device names that node (``spec.nodeName``), as devices made in
    the cloud for one edge do.
    """
    props = _properties(properties)
    model = {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "DeviceModel",
        "metadata": {
            "name": MODEL_NAME,
            "namespace": "default",
            "annotations": {"twinplane.io/alarms": json.dumps(ALARM_RULES)},
        },
        "spec": {
            "protocol": "modbus",
            "properties": [
                {"name": name, "type": type_, "accessMode": access}
                for name, type_, access, _ in props
            ],
        },
    }
    device_props: list[dict[str, Any]] = []
    for name, _, access, visitor in props:
        prop: dict[str, Any] = {
            "name": name,
            "collectCycle": cycle_ms,
            "reportToCloud": True,
            "visitors": {"protocolName": "modbus", "configData": visitor},
        }
        if access == "ReadWrite":
            prop["desired"] = {"value": "21"}
        device_props.append(prop)
    items: list[dict[str, Any]] = [model]
    writes_setpoint = any(name == "setpoint" for name, *_ in props)
    for index, (port, unit) in enumerate(addresses):
        config: dict[str, Any] = {
            "ip": host,
            "port": port,
            "slaveID": unit,
            "communicateMode": "TCP",
        }
        if max_in_flight is not None:
            config["maxInFlight"] = max_in_flight
        spec: dict[str, Any] = {
            "deviceModelRef": {"name": MODEL_NAME},
            "protocol": {"protocolName": "modbus", "configData": config},
            "properties": device_props,
        }
        if node_name is not None:
            spec = {"nodeName": node_name, **spec}
        device: dict[str, Any] = {
            "apiVersion": "devices.kubeedge.io/v1beta1",
            "kind": "Device",
            "metadata": {"name": f"thermostat-{index + 1}", "namespace": "default"},
            "spec": spec,
        }
        if writes_setpoint:
            _add_methods(device)
        items.append(device)
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


SAMPLE_METHODS: Final = {
    "setpoint": {
        "description": "the target temperature, 5 to 35 degrees",
        "idempotent": True,
        "parameters": {"setpoint": {"minimum": 5, "maximum": 35, "required": True}},
    },
    "readRegisters": {
        "description": "read holding registers on demand (a driver command)",
        "parameters": {
            "offset": {"type": "int", "minimum": 0, "maximum": 65535, "required": True},
            "count": {"type": "int", "minimum": 1, "maximum": 125, "default": 1},
        },
        "driver": {"command": "readRegisters", "register": "HoldingRegister"},
    },
}
"""The ``twinplane.io/methods`` of the fleet's thermostats (``docs/commands.md``)."""


def _add_methods(device: dict[str, Any]) -> None:
    """Gives a thermostat its ``setpoint`` method and the sample driver command."""
    device["metadata"]["annotations"] = {"twinplane.io/methods": json.dumps(SAMPLE_METHODS)}
    device["spec"]["methods"] = [
        {"name": "setpoint", "description": "the target temperature", "propertyNames": ["setpoint"]}
    ]
