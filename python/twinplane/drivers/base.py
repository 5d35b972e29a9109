"""The driver interface a protocol author implements, close to mapper-framework's.

A Go author recognises the lifecycle (``driver/driver.go`` of a generated mapper):

=================================  ==============================================
mapper-framework (Go)              twinplane (async Python)
=================================  ==============================================
``NewClient(ProtocolConfig)``      :meth:`Driver.new_client`
``InitDevice()``                   :meth:`DeviceClient.init_device`
``GetDeviceData(visitor)``         :meth:`FrameClient.read` / :meth:`ValueClient.read` (a batch)
``SetDeviceData(data, visitor)``   :meth:`DeviceClient.write`
``DeviceDataWrite(...)``           :meth:`DeviceClient.write`
``StopDevice()``                   :meth:`DeviceClient.stop_device`
``GetDeviceStates()``              :meth:`DeviceClient.get_device_states`
(no DMI form)                      :meth:`DeviceClient.prepare_command` (driver commands)
=================================  ==============================================

Two kinds of client:

- a :class:`FrameClient` returns raw frames for the coalesced reads the engine plans
  (``(register kind, start, count)``); the engine decodes, scales and swaps them in Rust
  (Modbus);
- a :class:`ValueClient` decodes values itself and returns one per property visitor (virtual
  devices, protocols whose values arrive typed).

A driver may also keep numbers of its own (requests sent, timeouts, connections): it returns
them from :meth:`Driver.stats` as :class:`DriverStat` s, and the mapper exports them on its
``/metrics`` (``twinplane_mapper_<name>``) without knowing the protocol.

This module is the interface only: it imports no driver. Drivers are found by protocol name
in :mod:`twinplane.drivers.registry`.
"""

from __future__ import annotations

import abc
import asyncio
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Literal

from twinplane.drivers.commands import CommandError, RunCommand
from twinplane.twin import PropertyTypeName, ValueLike

__all__ = [
    "DEVICE_STATES",
    "BusSpec",
    "DeviceClient",
    "Driver",
    "DriverStat",
    "FrameClient",
    "FrameRead",
    "PropertyVisitor",
    "ProtocolConfig",
    "ValueClient",
    "WriteOp",
    "is_transient",
]

WriteOp = tuple[int, int, list[int] | list[bool]]
"""A register write as the engine encodes it: ``(function, offset, values)``."""

FrameRead = tuple[str, int, int]
"""One coalesced read of a frame driver: ``(register kind, start, count)``."""

DEVICE_STATES: Final = frozenset({"ok", "online", "offline", "unhealthy", "unknown"})
"""States a device manager accepts (EdgeCore ignores ``disconnected``)."""

_STAT_NAME: Final = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True, slots=True)
class DriverStat:
    """One number a driver keeps, for the mapper's ``/metrics``: a total, never per device.

    Attributes:
        name: The metric name after the mapper's ``twinplane_mapper_`` prefix, starting with
            the protocol (``modbus_requests_total``); a counter's name ends in ``_total``.
        kind: ``counter`` (never goes down while the driver lives) or ``gauge``.
        help: What it counts (the ``# HELP`` line).
        value: Its value now.

    Raises:
        ValueError: The name is not a metric name (lower case, digits, ``_``), or a counter's
            does not end in ``_total``.
    """

    name: str
    kind: Literal["counter", "gauge"]
    help: str
    value: float

    def __post_init__(self) -> None:
        if not _STAT_NAME.fullmatch(self.name):
            raise ValueError(f"driver stat name {self.name!r}: lower case, digits and _ only")
        if self.kind == "counter" and not self.name.endswith("_total"):
            raise ValueError(f"driver stat {self.name!r}: a counter's name ends in _total")


@dataclass(frozen=True, slots=True)
class ProtocolConfig:
    """A device's ``spec.protocol``: the protocol name and its decoded ``configData``.

    Numbers that EdgeCore sent as 32-bit floats and that are integral arrive as ``int``.
    """

    protocol_name: str
    config: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PropertyVisitor:
    """One property as a driver sees it: its visitor ``configData`` and its type.

    Attributes:
        name: The property name.
        index: The property's index in the engine (for ``ingest_values``).
        type: The model's property type (``INT``, ``FLOAT``, ...).
        config: The visitor's decoded ``configData``.
        encode_write: For frame drivers, turns a value into the register write the engine
            encodes for this property's visitor; ``None`` for value drivers.
    """

    name: str
    index: int
    type: PropertyTypeName
    config: Mapping[str, object] = field(default_factory=dict)
    encode_write: Callable[[ValueLike], WriteOp] | None = None


@dataclass(frozen=True, slots=True)
class BusSpec:
    """Where a device sits: its bus and how many requests the bus takes at once.

    Attributes:
        key: The bus identity; devices with the same key share one scheduler task
            (a Modbus TCP endpoint ``tcp://ip:port``, a serial line, the virtual driver).
        max_in_flight: Requests in flight at once on the bus (1 for a serial line).
        spread: Poll the bus's devices at phases spread over the cycle, not all at once: for
            a bus that carries one transaction at a time (a serial line, a Modbus TCP
            connection without pipelining), where polls due together wait for each other.
    """

    key: str
    max_in_flight: int = 1
    spread: bool = False


def is_transient(err: BaseException) -> bool:
    """Whether trying a request again may succeed.

    A timeout or a connection that could not be made or was lost is transient; so is an error
    that says so with a true ``transient`` attribute (a Modbus "server device busy"). Anything
    else is the device's answer (a refused address or value, a malformed request) and trying
    again cannot change it.
    """
    if isinstance(err, TimeoutError | ConnectionError):
        return True
    return bool(getattr(err, "transient", False))


class DeviceClient(abc.ABC):
    """One device's connection, created by :meth:`Driver.new_client` at each device start.

    Attributes:
        queues: Whether the client's requests may wait their turn (a Modbus TCP connection
            that takes one transaction at a time, a serial line) and it times each request out
            itself, from when it is sent. The scheduler then bounds only
            :meth:`init_device` by the device's timeout: a read or write waiting behind the
            other devices of its bus is late, not failed. ``False`` (the default): the
            scheduler bounds the whole read or write.
    """

    queues: bool = False

    async def init_device(self) -> None:  # noqa: B027 - optional hook
        """Prepares the device (connects, checks it answers); called once per start.

        Raises:
            Exception: The device cannot start; the scheduler retries with backoff.
        """

    @abc.abstractmethod
    async def write(self, prop: PropertyVisitor, value: str) -> None:
        """Writes a value (a desired value or a device method's write).

        Args:
            prop: The property.
            value: The value in canonical text (``12.5``, ``true``, ``42``).

        Raises:
            Exception: The write failed. A desired value's write is tried again when the error
                is transient (:func:`is_transient`), and given up at once when the device
                refused it (a Modbus exception response).
        """

    def prepare_command(self, command: str, params: Mapping[str, Any]) -> RunCommand:
        """Checks a driver command's parameters (no I/O); returns what runs it on the bus.

        Args:
            command: The command (the method's ``driver.command``).
            params: Its parameters: the ``driver`` block's fields with the call's arguments
                over them.

        Raises:
            CommandError: ``NotOffered`` (the default: a driver without commands), or
                ``InvalidArgument`` naming the parameter at fault.
        """
        del params
        raise CommandError(
            f"the driver runs no command {command!r}", code="NotOffered", field="command"
        )

    async def stop_device(self) -> None:  # noqa: B027 - optional hook
        """Releases the device; no other call follows."""

    async def get_device_states(self) -> str:
        """The device's state as the driver sees it (one of :data:`DEVICE_STATES`)."""
        return "ok"


class FrameClient(DeviceClient):
    """A client that returns raw frames, decoded by the engine."""

    @abc.abstractmethod
    async def read(self, batch: Sequence[FrameRead]) -> list[bytes]:
        """Reads a batch of coalesced frames; one ``bytes`` per read, in order.

        The batch is the plan of the properties due: the whole device's, or, when its
        properties have their own collect cycles, one of a few plans polled in turn (each
        the same list every time it comes, so a client may key what it prepares by it).

        Raises:
            Exception: The poll failed; the device is backed off, its neighbours go on.
        """

    def submit_read(
        self, batch: Sequence[FrameRead], timeout: float
    ) -> asyncio.Future[list[bytes]] | None:
        """Optional cheap path: starts the reads now and returns a future of the frames.

        A scheduler calls it on every poll of an initialised device, before :meth:`read`:
        a client that can send its requests at once and settle them from its protocol's
        callbacks saves a coroutine and a task per poll. The future must fail (e.g. with a
        timeout error) within ``timeout`` seconds. ``None`` (the default) means "use
        :meth:`read`".

        Raises:
            Exception: The poll cannot start (counted as a failed poll).
        """
        del batch, timeout
        return None


class ValueClient(DeviceClient):
    """A client that decodes values itself."""

    @abc.abstractmethod
    async def read(self, batch: Sequence[PropertyVisitor]) -> list[ValueLike]:
        """Reads a batch of properties; one value per visitor, in order.

        The batch is the properties due: all of the device's, or, when they have their own
        collect cycles, those whose cycle has come.

        Raises:
            Exception: The poll failed; the device is backed off, its neighbours go on.
        """


class Driver(abc.ABC):
    """A protocol: creates device clients and says which bus each device is on.

    Attributes:
        protocol: The protocol name the mapper registers with (``MapperInfo.protocol``).
        frames: Whether the clients are :class:`FrameClient` (visitors go to the engine).
    """

    protocol: str = ""
    frames: bool = False
    commands: ClassVar[frozenset[str]] = frozenset()
    """The driver commands its clients run (:meth:`DeviceClient.prepare_command`)."""

    @abc.abstractmethod
    def new_client(self, protocol: ProtocolConfig) -> DeviceClient:
        """A client for one device (no I/O yet: :meth:`DeviceClient.init_device` does it).

        Raises:
            twinplane.errors.SpecError: The protocol config is invalid.
        """

    def bus(self, protocol: ProtocolConfig) -> BusSpec:
        """The bus of a device; by default one bus for the whole driver."""
        del protocol
        return BusSpec(self.protocol, max_in_flight=1)

    def stats(self) -> Sequence[DriverStat]:
        """The driver's own numbers now, totals over its devices (none by default).

        Called on every scrape of the mapper's ``/metrics``: cheap, no I/O. A counter keeps
        counting what a closed connection counted, so it never goes down.
        """
        return ()

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Releases what the driver shares between devices (connections)."""
