"""What a Modbus device's ``configData`` means: the protocol keys and the written values, checked.

Pure checks, no I/O, shared by the Modbus driver (it reads the same keys) and the device
manager (it refuses a manifest whose protocol ``configData`` a mapper could not use, and a
desired value the property's register cannot hold, where the user sets it).

Protocol ``configData`` (v1beta1 flat form, spec §8.2): ``ip``, ``port`` (502, 1..65535),
``slaveID`` (1; 0..255 on TCP, 1..247 on RTU), ``communicateMode`` (``TCP`` or ``RTU``); for TCP
``maxInFlight`` (twinplane's key, 1: requests pipelined on the connection, 1..256); for RTU
``serialPort``, ``baudRate`` (19200), ``dataBits`` (8), ``parity`` (``none``), ``stopBits`` (1).
The legacy nested keys (``tcp.ip``-style names are not representable in v1beta1's scalar map)
are not read.

Written values go through the engine's own encoder (:func:`twinplane.twin.encode_register`),
the one the mapper uses for the write, so what is refused here is exactly what the mapper
could not write.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, cast

from twinplane.errors import SpecError, TwinplaneError, ValueTypeError
from twinplane.twin import PropertyTypeName, VisitorConfig, encode_register

__all__ = [
    "MAX_IN_FLIGHT_LIMIT",
    "WRITABLE_REGISTERS",
    "ModbusEndpoint",
    "coerce_config",
    "protocol_issues",
    "write_issue",
]

MAX_IN_FLIGHT_LIMIT: Final = 256
"""The largest ``maxInFlight`` taken."""

WRITABLE_REGISTERS: Final = frozenset({"CoilRegister", "HoldingRegister"})
"""The register kinds a Modbus write reaches (discrete inputs and input registers are read-only)."""

_PROTOCOL_PATH: Final = "spec.protocol.configData"


def coerce_config(config: Mapping[str, object]) -> dict[str, object]:
    """``configData`` values as a mapper decodes them: integral floats become ``int``.

    EdgeCore sends every number as a 32-bit float; manifests may write ``offset: 2.0``.
    """
    out: dict[str, object] = {}
    for key, value in config.items():
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            out[key] = int(value)
        else:
            out[key] = value
    return out


def _int(
    config: Mapping[str, object], key: str, default: int, bounds: tuple[int, int] | None = None
) -> int:
    value = config.get(key, default)
    number: int | None = None
    if isinstance(value, int | str) and not isinstance(value, bool):
        with contextlib.suppress(ValueError):
            number = int(value)
    path = f"{_PROTOCOL_PATH}.{key}"
    if number is None:
        raise SpecError(f"{key} must be an integer, not {value!r}", path=path)
    if bounds is not None and not bounds[0] <= number <= bounds[1]:
        raise SpecError(f"{key} must be {bounds[0]}..{bounds[1]}, not {number}", path=path)
    return number


@dataclass(frozen=True, slots=True)
class ModbusEndpoint:
    """A device's Modbus protocol ``configData``, validated: where it is and how to talk to it."""

    mode: str
    unit: int
    host: str = ""
    port: int = 502
    serial_port: str = ""
    baudrate: int = 19200
    bytesize: int = 8
    parity: str = "none"
    stopbits: int = 1
    max_in_flight: int = 1

    @classmethod
    def parse(cls, config: Mapping[str, object]) -> ModbusEndpoint:
        """Validates protocol ``configData``.

        Raises:
            SpecError: A missing or malformed key (``path`` names it).
        """
        mode = str(config.get("communicateMode", "TCP")).upper()
        if mode == "TCP":
            host = config.get("ip")
            if not isinstance(host, str) or not host:
                raise SpecError("ip must be set for Modbus TCP", path=f"{_PROTOCOL_PATH}.ip")
            return cls(
                "TCP",
                _int(config, "slaveID", 1, (0, 255)),
                host=host,
                port=_int(config, "port", 502, (1, 65535)),
                max_in_flight=_int(config, "maxInFlight", 1, (1, MAX_IN_FLIGHT_LIMIT)),
            )
        if mode == "RTU":
            serial = config.get("serialPort")
            if not isinstance(serial, str) or not serial:
                raise SpecError(
                    "serialPort must be set for Modbus RTU", path=f"{_PROTOCOL_PATH}.serialPort"
                )
            parity = str(config.get("parity", "none"))
            if parity.lower() not in ("none", "even", "odd", "n", "e", "o"):
                raise SpecError(
                    f"parity must be none, even or odd, not {parity!r}",
                    path=f"{_PROTOCOL_PATH}.parity",
                )
            return cls(
                "RTU",
                _int(config, "slaveID", 1, (1, 247)),
                serial_port=serial,
                baudrate=_int(config, "baudRate", 19200, (1, 10_000_000)),
                bytesize=_int(config, "dataBits", 8, (5, 8)),
                parity=parity,
                stopbits=_int(config, "stopBits", 1, (1, 2)),
            )
        raise SpecError(
            f"communicateMode {mode!r}: allowed are TCP and RTU",
            path=f"{_PROTOCOL_PATH}.communicateMode",
        )

    @property
    def bus_key(self) -> str:
        """``tcp://host:port`` or ``rtu://serial port``."""
        if self.mode == "TCP":
            return f"tcp://{self.host}:{self.port}"
        return f"rtu://{self.serial_port}"


_BOUNDS: Final = {
    "port": (1, 65535),
    "slaveID": (0, 255),
    "maxInFlight": (1, MAX_IN_FLIGHT_LIMIT),
    "baudRate": (1, 10_000_000),
    "dataBits": (5, 8),
    "stopBits": (1, 2),
}


def protocol_issues(config: Mapping[str, object]) -> list[SpecError]:
    """The keys of a protocol ``configData`` given with a value no Modbus mapper can use.

    Unlike :meth:`ModbusEndpoint.parse` (what the driver needs to open the device), a missing
    key is not an issue here: the device manager checks what is written (``port: 99999``), and
    leaves what is left out to the mapper serving the device, which may be another's.
    """
    issues: list[SpecError] = []
    config = coerce_config(config)
    for key, bounds in _BOUNDS.items():
        if key in config:
            try:
                _int(config, key, 0, bounds)
            except SpecError as err:
                issues.append(err)
    mode = config.get("communicateMode")
    if mode is not None and str(mode).upper() not in ("TCP", "RTU"):
        issues.append(
            SpecError(
                f"communicateMode {mode!r}: allowed are TCP and RTU",
                path=f"{_PROTOCOL_PATH}.communicateMode",
            )
        )
    return issues


def write_issue(visitor: Mapping[str, object], type_: PropertyTypeName, value: str) -> str | None:
    """Why ``value`` cannot be written through this visitor, or ``None`` when it can.

    Args:
        visitor: The property's visitor ``configData`` (as :func:`coerce_config` gives it).
        type_: The model's property type.
        value: The value as set (text).
    """
    register = visitor.get("register")
    if register not in WRITABLE_REGISTERS:
        return (
            f"it is read from a Modbus {register or 'register'}, which cannot be written "
            "(only coils and holding registers can)"
        )
    try:
        encode_register(cast("VisitorConfig", dict(visitor)), type_, value)
    except ValueTypeError as err:
        return _range_text(err.message)
    except TwinplaneError:  # the visitor itself is wrong: its own check says so, not the value's
        return None
    return None


def _range_text(message: str) -> str:
    """The engine's encoding error, without the parts that name no device."""
    for prefix in ("device , property : ", "device , property: "):
        message = message.removeprefix(prefix)
    return message
