"""Typed Modbus errors: what a device answered, or why it did not.

Every class derives from :class:`ModbusError`, itself a :class:`~twinplane.errors.TwinplaneError`,
and carries the Modbus fields (``unit``, ``function``, ``code``) besides its message, so a caller
(the bus scheduler, a device method) acts on an error without parsing text.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from twinplane.errors import TwinplaneError

__all__ = [
    "TRANSIENT_CODES",
    "ExceptionCode",
    "ModbusConnectionError",
    "ModbusError",
    "ModbusExceptionError",
    "ModbusFrameError",
    "ModbusRequestError",
    "ModbusTimeoutError",
]


class ExceptionCode(IntEnum):
    """The exception codes of the Modbus application protocol (v1.1b3, section 7)."""

    ILLEGAL_FUNCTION = 0x01
    ILLEGAL_DATA_ADDRESS = 0x02
    ILLEGAL_DATA_VALUE = 0x03
    SERVER_DEVICE_FAILURE = 0x04
    ACKNOWLEDGE = 0x05
    SERVER_DEVICE_BUSY = 0x06
    NEGATIVE_ACKNOWLEDGE = 0x07
    MEMORY_PARITY_ERROR = 0x08
    GATEWAY_PATH_UNAVAILABLE = 0x0A
    GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND = 0x0B


def exception_code_name(code: int) -> str:
    """The standard name of an exception code, or ``UNKNOWN_0xNN``."""
    try:
        return ExceptionCode(code).name
    except ValueError:
        return f"UNKNOWN_0x{code:02X}"


class ModbusError(TwinplaneError):
    """Base class of the Modbus driver's errors.

    Attributes:
        unit: The unit (slave) id the request addressed, when known.
        function: The request's function code, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        unit: int | None = None,
        function: int | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__(message, device=device)
        self.unit = unit
        self.function = function


TRANSIENT_CODES: Final = frozenset(
    {
        ExceptionCode.ACKNOWLEDGE,
        ExceptionCode.SERVER_DEVICE_BUSY,
        ExceptionCode.GATEWAY_PATH_UNAVAILABLE,
        ExceptionCode.GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND,
    }
)
"""Exception codes that say "not now" rather than "no": the same request may succeed later."""


class ModbusExceptionError(ModbusError):
    """The device answered with a Modbus exception response.

    Attributes:
        code: The exception code (``2`` is ``ILLEGAL_DATA_ADDRESS``).
        code_name: The code's standard name.
        transient: Whether the code is one of :data:`TRANSIENT_CODES` (busy, a gateway that
            did not reach its device): trying again may succeed.
    """

    def __init__(
        self, function: int, code: int, unit: int | None = None, *, device: str | None = None
    ) -> None:
        self.code = code
        self.code_name = exception_code_name(code)
        self.transient = code in TRANSIENT_CODES
        where = "" if unit is None else f" from unit {unit}"
        super().__init__(
            f"Modbus exception {code} ({self.code_name}) to function {function}{where}",
            unit=unit,
            function=function,
            device=device,
        )


class ModbusTimeoutError(ModbusError, TimeoutError):
    """No answer came within the timeout (a dead or slow device, or a lost reply)."""


class ModbusFrameError(ModbusError):
    """A garbled or mismatched response.

    A bad MBAP header, a wrong length or byte count, a wrong function or unit echo, or a
    truncated frame.

    Attributes:
        transaction_id: The MBAP transaction id of the frame, when it had one.
    """

    def __init__(
        self,
        message: str,
        *,
        unit: int | None = None,
        function: int | None = None,
        transaction_id: int | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__(message, unit=unit, function=function, device=device)
        self.transaction_id = transaction_id


class ModbusConnectionError(ModbusError, ConnectionError):
    """The connection could not be made, or was lost while the request was in flight."""


class ModbusRequestError(ModbusError, ValueError):
    """A request that cannot be encoded: an address, count or value outside Modbus limits."""
