"""Driver-level commands: what a method call asks of a driver beyond property writes.

A device's ``twinplane.io/methods`` annotation may declare a method with a ``driver`` block
(``{"command": "readRegisters", ...}``); a call of it reaches the mapper's driver through the
mapper's ``Methods`` service. The driver checks the command's parameters first
(:meth:`~twinplane.drivers.base.DeviceClient.prepare_command`, no I/O) and hands back a
:data:`RunCommand`, which the device's bus runs ahead of its polls. A refusal is a
:class:`CommandError` naming the parameter at fault.

This module holds the interface's types only; the Modbus commands are
:mod:`twinplane.drivers.modbus.commands`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Literal

from twinplane.errors import TwinplaneError

__all__ = [
    "CommandError",
    "CommandErrorCode",
    "RunCommand",
    "int_parameter",
]

RunCommand = Callable[[], Awaitable[Any]]
"""A checked command: run on the device's bus, returns the result (JSON-ready)."""

CommandErrorCode = Literal["InvalidArgument", "NotOffered"]

_NO_DEFAULT: Final = object()


class CommandError(TwinplaneError):
    """A command the driver does not run, or one of its parameters refused.

    Attributes:
        code: ``InvalidArgument`` (``field`` names the parameter) or ``NotOffered``.
        field: The parameter at fault (``offset``, ``values[2]``), if any.
    """

    def __init__(
        self,
        message: str,
        *,
        code: CommandErrorCode = "InvalidArgument",
        field: str | None = None,
    ) -> None:
        super().__init__(message, path=field)
        self.code: CommandErrorCode = code
        self.field = field


def int_parameter(
    params: Mapping[str, Any],
    name: str,
    low: int,
    high: int,
    default: object = _NO_DEFAULT,
) -> int:
    """The integer parameter ``name`` within ``low..high``.

    Raises:
        CommandError: It is missing (without a default), not an integer, or out of range.
    """
    value = params.get(name, default)
    if value is _NO_DEFAULT or value is None:
        raise CommandError(f"{name} is required", field=name)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CommandError(f"{name} must be an integer, not {value!r}", field=name)
    if not low <= value <= high:
        raise CommandError(f"{name} {value} is outside {low}..{high}", field=name)
    return value
