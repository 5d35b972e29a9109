"""Method calls on the mapper: property writes and driver commands, run on the device's bus.

One path for every caller: the device manager's calls through the ``Methods`` service
(:mod:`twinplane.mapper.methods_service`) and mapper-framework's ``devicemethod`` REST route
(:mod:`twinplane.mapper.rest`). Both go through the device's
:class:`~twinplane.mapper.scheduler.BusScheduler`, ahead of its due polls:

- a property write is encoded as a desired value's is (the engine's ``encode_write`` of the
  property's visitor, through :meth:`~twinplane.drivers.base.DeviceClient.write`), and the
  device is polled at once afterwards so its reported value follows;
- a driver command is checked by the driver first
  (:meth:`~twinplane.drivers.base.DeviceClient.prepare_command`, nothing sent on a refusal),
  then run as one job of the bus (:meth:`~twinplane.mapper.scheduler.BusScheduler.run`).

Errors are :class:`MethodCallError` s with a code the ``Methods`` service answers with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from twinplane.drivers.commands import CommandError
from twinplane.errors import SpecError, TwinplaneError, ValueTypeError
from twinplane.twin import canonical

if TYPE_CHECKING:
    from twinplane.mapper.runtime import MapperRuntime, RunningDevice

__all__ = [
    "MethodCallError",
    "MethodCallErrorCode",
    "run_command",
    "running_device",
    "write_properties",
]

MethodCallErrorCode = Literal["InvalidArgument", "NotFound", "NotOffered", "DeviceError"]


class MethodCallError(TwinplaneError):
    """A call that could not run, or that the device refused or failed.

    Attributes:
        code: ``InvalidArgument`` (``field`` names the parameter or property), ``NotFound``
            (the device or property), ``NotOffered`` (a command the driver does not run),
            ``DeviceError`` (the device refused or failed the request).
        field: The parameter or property at fault, if any.
    """

    def __init__(
        self, code: MethodCallErrorCode, message: str, *, field: str | None = None
    ) -> None:
        super().__init__(message, path=field)
        self.code: MethodCallErrorCode = code
        self.field = field


def running_device(runtime: MapperRuntime, dev_id: str) -> RunningDevice:
    """The started device ``dev_id``.

    Raises:
        MethodCallError: ``NotFound``.
    """
    running = runtime.devices.get(dev_id)
    if running is None:
        raise MethodCallError("NotFound", f"device {dev_id} is not started on this mapper")
    return running


async def write_properties(
    running: RunningDevice, writes: Sequence[tuple[str, str]]
) -> dict[str, str]:
    """Writes each ``(property, value)`` in order through the bus; returns what was written.

    Values are canonicalised by the property's type first; all are checked before the first
    is written.

    Raises:
        MethodCallError: An unknown property (``NotFound``), a value not of its type
            (``InvalidArgument``), or the device's failure (``DeviceError``; the writes before
            it stay written).
    """
    dev_id = running.instance.id
    checked = []
    for name, text in writes:
        prop = running.props.get(name)
        if prop is None:
            raise MethodCallError(
                "NotFound", f"device {dev_id} has no property {name!r}", field=name
            )
        try:
            checked.append((prop, canonical(prop.type, text)))
        except ValueTypeError as err:
            raise MethodCallError(
                "InvalidArgument",
                f"{text!r} is not a {prop.type.lower()} value (the type of {name!r})",
                field=name,
            ) from err
    written: dict[str, str] = {}
    for prop, value in checked:
        try:
            await running.bus.write(dev_id, prop, value)
        except LookupError as err:  # removed while the write waited
            raise MethodCallError("NotFound", str(err)) from err
        except (ValueTypeError, SpecError) as err:  # the encoder's: an int16 and 99999
            raise MethodCallError("InvalidArgument", str(err), field=prop.name) from err
        except Exception as err:  # the driver's failure
            raise MethodCallError(
                "DeviceError", f"writing {prop.name}={value} failed: {_text(err)}", field=prop.name
            ) from err
        written[prop.name] = value
    return written


async def run_command(running: RunningDevice, command: str, params: Mapping[str, Any]) -> Any:  # noqa: ANN401 - the command's JSON result
    """Checks a driver command, then runs it on the device's bus; returns its result.

    Raises:
        MethodCallError: A refused command or parameter (nothing was sent), or the device's
            failure (``DeviceError``).
    """
    try:
        job = running.client.prepare_command(command, params)
    except CommandError as err:
        raise MethodCallError(err.code, err.message, field=err.field) from err
    except TwinplaneError as err:
        raise MethodCallError("InvalidArgument", err.message, field=err.path) from err
    dev_id = running.instance.id
    try:
        return await running.bus.run(dev_id, job)
    except LookupError as err:
        raise MethodCallError("NotFound", str(err)) from err
    except TimeoutError:
        raise
    except Exception as err:  # the driver's failure
        raise MethodCallError("DeviceError", f"{command} failed: {_text(err)}") from err


def _text(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
