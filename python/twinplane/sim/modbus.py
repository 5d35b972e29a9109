"""A fleet of Modbus TCP devices in one process, with changing values and faults on demand.

Devices are unit ids on a port (1..247 per port) and/or spread over a range of ports. Each device
has ``registers`` coils, discrete inputs, input registers and holding registers (addresses
0..registers-1). Values change ``rate`` times a second and are computed when read, from the time
and the address (a sine, a sawtooth ramp, a counter or a random walk, by ``address % 4``), so an
idle device costs nothing and 10,000 of them need no memory of their own. A write to a coil or
holding register sticks until the next write (:meth:`ModbusSimulator.set_registers` pins any
kind the same way).

Answers: exception 2 (``ILLEGAL_DATA_ADDRESS``) for a range past ``registers``, 1
(``ILLEGAL_FUNCTION``) for a function other than 1-6, 15, 16, 3 for a bad count or value, 11
(``GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND``) for a unit id no device has on that port.

Faults (:class:`SimFaults`, or the ``--faults`` text ``unit=5:slow=200ms,unit=6:dead``) make a
unit or a port slow, dead (no answer), answer an exception (to every request, or only to those
touching some addresses: ``unit=5:exception=2@40-41``), or garble its frames.

Every device also has a firmware transfer block (holding registers from 60000, whatever
``registers`` is; :mod:`twinplane.sim.firmware`, docs/upgrades.md): a host can upload an image in
CRC-checked chunks, commit it (the unit reboots: it answers nothing for a while) and roll it
back, and the faults ``powerloss=K``, ``badchunk=N``, ``reboot=5s`` and ``bootfail`` break it.

``max_in_flight=1`` (``--max-in-flight 1``) makes every connection behave like the many devices
and gateways that take one Modbus TCP transaction at a time: of the requests that arrive
together, it answers the first and drops the others.

The server is an :class:`asyncio.Protocol` per connection: requests are framed in place, read
responses are packed with one precompiled ``struct`` per register count into a reusable buffer,
and every response to one segment of pipelined requests leaves in one write.
"""

from __future__ import annotations

import array
import asyncio
import logging
import math
import random
import re
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from types import TracebackType
from typing import Final, Literal, Self, TypedDict, cast, get_args

from twinplane.drivers.modbus.errors import ExceptionCode, ModbusExceptionError, ModbusFrameError
from twinplane.drivers.modbus.frames import (
    MBAP,
    MBAP_SIZE,
    READ_FUNCTIONS,
    Function,
    decode_request,
    encode_write_response,
    pack_bits,
    pack_registers,
)
from twinplane.errors import SpecError
from twinplane.sim.firmware import (
    BLOCK_SIZE,
    DEFAULT_BASE,
    DEFAULT_VERSION,
    NO_FAULTS,
    FirmwareFaults,
    FirmwareSlot,
    Outage,
)

__all__ = [
    "GARBLE_KINDS",
    "MAX_UNITS_PER_PORT",
    "Fault",
    "GarbleKind",
    "ModbusSimulator",
    "Ramp",
    "SimCounters",
    "SimFaults",
]

log = logging.getLogger("twinplane.sim.modbus")

MAX_UNITS_PER_PORT: Final = 247

GarbleKind = Literal["length", "tid", "truncated", "header"]
"""How a garbled response is wrong.

- ``length``: a read answers one register (or byte of bits) fewer than asked, with a consistent
  byte count; any other response gets a stray byte after it.
- ``tid``: the transaction id is not the request's.
- ``truncated``: the PDU is cut to half its length (the MBAP length matches the cut).
- ``header``: the MBAP protocol id is not 0, so the stream cannot be framed any more.
"""
GARBLE_KINDS: Final[tuple[GarbleKind, ...]] = get_args(GarbleKind)


# --- faults ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fault:
    """What a faulty unit or port does.

    Attributes:
        delay: Seconds every answer is held back.
        dead: Never answer.
        exception: Answer every request with this exception code (with ``exception_at``: every
            request whose address range overlaps it).
        exception_at: ``(first, last)`` addresses (any register kind) the exception is for;
            ``None``: every address.
        garble: The probability (0..1) that an answer is garbled.
        garble_kinds: Which garbling, picked at random for each garbled answer.
        power_loss_at: Firmware transfers: the unit loses power when a chunk would take the
            bytes received to this many (once per transfer; see
            :class:`~twinplane.sim.firmware.FirmwareFaults`).
        bad_chunk: Firmware transfers: the Nth chunk of a transfer is corrupted on receipt.
        reboot: Firmware: seconds a reboot or power loss keeps the unit silent (``None``: 1 s).
        boot_fail: Firmware: a committed image fails to boot (the unit keeps the old one).
    """

    delay: float = 0.0
    dead: bool = False
    exception: int | None = None
    exception_at: tuple[int, int] | None = None
    garble: float = 0.0
    garble_kinds: tuple[GarbleKind, ...] = GARBLE_KINDS
    power_loss_at: int | None = None
    bad_chunk: int | None = None
    reboot: float | None = None
    boot_fail: bool = False

    def __post_init__(self) -> None:
        if self.power_loss_at is not None and self.power_loss_at < 1:
            raise SpecError(f"a power loss needs 1 or more bytes, not {self.power_loss_at}")
        if self.bad_chunk is not None and self.bad_chunk < 1:
            raise SpecError(f"a bad chunk is the 1st or a later one, not {self.bad_chunk}")
        if self.reboot is not None and not (self.reboot >= 0 and math.isfinite(self.reboot)):
            raise SpecError(f"a reboot takes 0 or more seconds, not {self.reboot}")
        if not (self.delay >= 0 and math.isfinite(self.delay)):
            raise SpecError(f"a delay must be 0 or more seconds, not {self.delay}")
        if self.exception is not None and not 1 <= self.exception <= 0xFF:  # noqa: PLR2004
            raise SpecError(f"an exception code must be 1..255, not {self.exception}")
        if self.exception_at is not None and not 0 <= self.exception_at[0] <= self.exception_at[1]:
            raise SpecError(
                f"an exception's addresses must be 0 <= first <= last, not {self.exception_at}"
            )
        if not 0.0 <= self.garble <= 1.0:
            raise SpecError(f"a garble probability must be 0..1, not {self.garble}")
        unknown = set(self.garble_kinds) - set(GARBLE_KINDS)
        if unknown or not self.garble_kinds:
            raise SpecError(
                f"garble kinds must be some of {', '.join(GARBLE_KINDS)}, not "
                f"{'+'.join(self.garble_kinds) or 'none'}"
            )

    @property
    def active(self) -> bool:
        """Whether this fault changes anything."""
        return (
            bool(self.delay or self.dead or self.exception is not None or self.garble)
            or self.firmware != NO_FAULTS
        )

    @property
    def firmware(self) -> FirmwareFaults:
        """The firmware transfer faults."""
        return FirmwareFaults(self.power_loss_at, self.bad_chunk, self.reboot, self.boot_fail)


_Selector = tuple[int | None, int | None]
"""``(port, unit)``; ``None`` matches any."""

_FIELD = re.compile(r"^(?P<key>[a-z]+)(?:=(?P<value>.*))?$")
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
_DURATION = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(ms|s)$")


class SimFaults:
    """Faults by unit, by port, or by both (the most specific one applies).

    Change them at any time, also while the simulator runs::

        sim.faults.slow(0.2, unit=5)
        sim.faults.dead(unit=6)
        sim.faults.exception(4, unit=7)
        sim.faults.garble(0.1, unit=8)  # any kind; or kinds=("tid",)
        sim.faults.apply("unit=9:slow=50ms:garble=truncated@0.5")
        sim.faults.firmware(unit=3, power_loss_at=2048, reboot=0.5)  # see docs/upgrades.md
        sim.faults.clear(unit=5)

    Args:
        spec: Faults in the ``--faults`` syntax (see :meth:`apply`).
        seed: Seed of the random choices (which answers are garbled, and how).
    """

    def __init__(self, spec: str | None = None, *, seed: int | None = 0) -> None:
        self._entries: dict[_Selector, Fault] = {}
        self._rng = random.Random(seed)  # noqa: S311 - fault injection, not cryptography
        if spec:
            self.apply(spec)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __repr__(self) -> str:
        return f"SimFaults({self.describe()!r})"

    def get(self, port: int, unit: int) -> Fault | None:
        """The fault of a unit on a port, if any."""
        entries = self._entries
        return entries.get((port, unit)) or entries.get((None, unit)) or entries.get((port, None))

    def items(self) -> list[tuple[_Selector, Fault]]:
        """Every ``((port, unit), fault)``."""
        return list(self._entries.items())

    def set(  # noqa: PLR0913 - one keyword per kind of fault
        self,
        *,
        unit: int | None = None,
        port: int | None = None,
        delay: float | None = None,
        dead: bool | None = None,
        exception: int | None = None,
        exception_at: tuple[int, int] | None = None,
        garble: float | None = None,
        garble_kinds: Sequence[GarbleKind] | None = None,
        power_loss_at: int | None = None,
        bad_chunk: int | None = None,
        reboot: float | None = None,
        boot_fail: bool | None = None,
    ) -> None:
        """Changes the given fields of the fault of a unit, a port, or a unit on a port.

        ``exception_at`` goes with ``exception`` (a new exception without it is for every
        address).
        """
        key = _selector(port, unit)
        old = self._entries.get(key, Fault())
        changes: dict[str, object] = {}
        if delay is not None:
            changes["delay"] = float(delay)
        if dead is not None:
            changes["dead"] = dead
        if exception is not None:
            changes["exception"] = exception
            changes["exception_at"] = exception_at
        if garble is not None:
            changes["garble"] = float(garble)
        if garble_kinds is not None:
            changes["garble_kinds"] = tuple(garble_kinds)
        firmware = {
            "power_loss_at": power_loss_at,
            "bad_chunk": bad_chunk,
            "reboot": reboot,
            "boot_fail": boot_fail,
        }
        changes.update({k: v for k, v in firmware.items() if v is not None})
        fault = replace(old, **changes)  # type: ignore[arg-type]
        if fault.active:
            self._entries[key] = fault
        else:
            self._entries.pop(key, None)

    def slow(self, delay: float, *, unit: int | None = None, port: int | None = None) -> None:
        """Holds every answer back by ``delay`` seconds."""
        self.set(unit=unit, port=port, delay=delay)

    def dead(self, *, unit: int | None = None, port: int | None = None) -> None:
        """Never answers."""
        self.set(unit=unit, port=port, dead=True)

    def exception(
        self,
        code: int,
        *,
        unit: int | None = None,
        port: int | None = None,
        address: int | None = None,
        count: int = 1,
    ) -> None:
        """Answers exception ``code``: to every request, or to those touching ``address``.

        With ``address``, only a request whose range overlaps ``address .. address+count-1``
        (of any register kind) gets the exception; the unit answers the others. Calling it
        again replaces the unit's exception fault (``clear`` ends it).
        """
        span = None if address is None else (address, address + max(count, 1) - 1)
        self.set(unit=unit, port=port, exception=code, exception_at=span)

    def garble(
        self,
        probability: float = 1.0,
        kinds: Sequence[GarbleKind] = GARBLE_KINDS,
        *,
        unit: int | None = None,
        port: int | None = None,
    ) -> None:
        """Garbles answers with ``probability``, in one of ``kinds`` at random."""
        self.set(unit=unit, port=port, garble=probability, garble_kinds=kinds)

    def firmware(  # noqa: PLR0913 - one keyword per firmware fault
        self,
        *,
        unit: int | None = None,
        port: int | None = None,
        power_loss_at: int | None = None,
        bad_chunk: int | None = None,
        reboot: float | None = None,
        boot_fail: bool | None = None,
    ) -> None:
        """Sets firmware transfer faults (the given ones; ``clear`` ends them).

        Args:
            unit: The unit id.
            port: The port.
            power_loss_at: Lose power when a chunk would take the bytes received to this many.
            bad_chunk: Corrupt the Nth chunk of a transfer on receipt.
            reboot: Seconds a reboot or a power loss keeps the unit silent.
            boot_fail: A committed image fails to boot.
        """
        self.set(
            unit=unit,
            port=port,
            power_loss_at=power_loss_at,
            bad_chunk=bad_chunk,
            reboot=reboot,
            boot_fail=boot_fail,
        )

    def clear(self, *, unit: int | None = None, port: int | None = None) -> None:
        """Removes the fault of a unit, a port, or a unit on a port (everything: no arguments)."""
        if unit is None and port is None:
            self._entries.clear()
        else:
            self._entries.pop((port, unit), None)

    def pick_garble(self, fault: Fault) -> GarbleKind | None:
        """Whether this answer is garbled, and how."""
        if fault.garble and (fault.garble >= 1.0 or self._rng.random() < fault.garble):
            return self._rng.choice(fault.garble_kinds)
        return None

    def apply(self, spec: str) -> None:
        """Adds faults written as text.

        Entries are separated by ``,``, fields of an entry by ``:``. Each entry names ``unit=N``
        and/or ``port=N`` (either may be a range ``A-B``) and any of ``slow=200ms`` (or
        ``0.2s``), ``dead``, ``exception=CODE`` (``exception=CODE@A`` or ``@A-B``: only requests
        touching addresses A..B, any register kind), ``garble=P`` (a probability, any kind),
        ``garble=KIND[+KIND...][@P]`` (kinds: length, tid, truncated, header; P defaults to 1),
        or ``ok`` (no fault); for firmware transfers (docs/upgrades.md) ``powerloss=K`` (bytes),
        ``badchunk=N``, ``reboot=5s`` (or ``500ms``) and ``bootfail``.

        Example: ``unit=5:slow=200ms,unit=6:dead,unit=7:exception=4,unit=8:garble=0.1``.

        Raises:
            SpecError: The text does not parse; ``path`` names the entry (``faults[2]``).
        """
        parsed = [_parse_entry(entry, index) for index, entry in enumerate(spec.split(","))]
        for selectors, changes in parsed:
            for port, unit in selectors:
                if changes is None:
                    self.clear(unit=unit, port=port)
                else:
                    self.set(unit=unit, port=port, **changes)

    def describe(self) -> str:
        """The faults in the ``--faults`` syntax."""
        return ",".join(_describe(selector, fault) for selector, fault in self._entries.items())


def _selector(port: int | None, unit: int | None) -> _Selector:
    if unit is None and port is None:
        raise SpecError("a fault needs a unit, a port, or both")
    if unit is not None and not 0 <= unit <= 0xFF:  # noqa: PLR2004
        raise SpecError(f"a unit id must be 0..255, not {unit}")
    if port is not None and not 0 < port <= 0xFFFF:  # noqa: PLR2004
        raise SpecError(f"a port must be 1..65535, not {port}")
    return (port, unit)


class _FaultFields(TypedDict, total=False):
    """Fields of a :class:`Fault` read from text."""

    delay: float
    dead: bool
    exception: int
    exception_at: tuple[int, int]
    garble: float
    garble_kinds: tuple[GarbleKind, ...]
    power_loss_at: int
    bad_chunk: int
    reboot: float
    boot_fail: bool


def _parse_range(text: str, path: str) -> list[int]:
    match = _RANGE.match(text)
    if match is None:
        raise SpecError(f"expected a number or a range A-B, not {text!r}", path=path)
    first = int(match.group(1))
    last = int(match.group(2) or first)
    if last < first:
        raise SpecError(f"empty range {text!r}", path=path)
    return list(range(first, last + 1))


def _parse_garble(text: str, path: str) -> _FaultFields:
    kinds_text, _, prob_text = text.partition("@")
    try:
        if not prob_text and kinds_text and kinds_text[0] in "0123456789.":
            return {"garble": float(kinds_text), "garble_kinds": GARBLE_KINDS}
        probability = float(prob_text) if prob_text else 1.0
    except ValueError:
        raise SpecError(f"bad garble probability in {text!r}", path=path) from None
    names = kinds_text.split("+")
    bad = [name for name in names if name not in GARBLE_KINDS]
    if bad:
        raise SpecError(
            f"unknown garble kind {bad[0]!r} (kinds: {', '.join(GARBLE_KINDS)})", path=path
        )
    kinds = tuple(cast(GarbleKind, name) for name in names)
    return {"garble": probability, "garble_kinds": kinds}


def _parse_entry(entry: str, index: int) -> tuple[list[_Selector], _FaultFields | None]:
    """One ``--faults`` entry: the units and ports it names, and the fault (``None``: clear)."""
    path = f"faults[{index}]"
    selected: dict[str, list[int | None]] = {"unit": [None], "port": [None]}
    changes: _FaultFields = {}
    clear = False
    for field_text in entry.strip().split(":"):
        match = _FIELD.match(field_text.strip())
        if match is None:
            raise SpecError(f"cannot read {field_text!r} in {entry!r}", path=path)
        key, value = match.group("key"), match.group("value")
        if key in selected and value is not None:
            selected[key] = list(_parse_range(value, path))
        elif key == "ok" and value is None:
            clear = True
        else:
            changes.update(_parse_fault(key, value, path))
    if selected == {"unit": [None], "port": [None]}:
        raise SpecError(f"{entry!r} names no unit= or port=", path=path)
    if not changes and not clear:
        raise SpecError(
            f"{entry!r} names no fault (slow, dead, exception, garble, powerloss, badchunk, "
            "reboot, bootfail, ok)",
            path=path,
        )
    try:
        selectors = [
            _selector(port, unit) for port in selected["port"] for unit in selected["unit"]
        ]
        Fault(**changes)  # validates the values
    except SpecError as err:
        raise SpecError(err.message, path=path) from None
    return selectors, (None if clear else changes)


def _parse_fault(key: str, value: str | None, path: str) -> _FaultFields:
    """One fault field of an entry (``slow=200ms``, ``dead``, ...) as :class:`Fault` fields."""
    if key in {"slow", "reboot"} and value is not None:
        duration = _DURATION.match(value)
        if duration is None:
            raise SpecError(f"{key} takes a duration like 200ms or 0.2s, not {value!r}", path=path)
        scale = 1e-3 if duration.group(2) == "ms" else 1.0
        seconds = float(duration.group(1)) * scale
        return {"delay": seconds} if key == "slow" else {"reboot": seconds}
    if key in {"powerloss", "badchunk", "bootfail"}:
        return _parse_firmware_fault(key, value, path)
    if key == "exception" and value is not None:
        code, _, where = value.partition("@")
        span = _RANGE.match(where) if where else None
        if code.isdigit() and not where:
            return {"exception": int(code)}
        if code.isdigit() and span is not None:
            first = int(span.group(1))
            last = int(span.group(2)) if span.group(2) else first
            return {"exception": int(code), "exception_at": (first, last)}
        raise SpecError(
            f"exception takes CODE or CODE@ADDRESS[-ADDRESS] (e.g. 2@40-41), not {value!r}",
            path=path,
        )
    if key == "garble" and value:
        return _parse_garble(value, path)
    if key == "dead" and value is None:
        return {"dead": True}
    shown = key if value is None else f"{key}={value}"
    raise SpecError(f"unknown fault field {shown!r}", path=path)


def _parse_firmware_fault(key: str, value: str | None, path: str) -> _FaultFields:
    """``powerloss=K``, ``badchunk=N`` or ``bootfail`` as :class:`Fault` fields."""
    if key == "bootfail" and value is None:
        return {"boot_fail": True}
    if key != "bootfail" and value is not None and value.isdigit():
        return {"power_loss_at": int(value)} if key == "powerloss" else {"bad_chunk": int(value)}
    shown = key if value is None else f"{key}={value}"
    raise SpecError(f"cannot read {shown!r} (powerloss=BYTES, badchunk=N, bootfail)", path=path)


def _touches(request: bytes, fault: Fault) -> bool:
    """Whether a request PDU's address range overlaps the fault's ``exception_at``."""
    span = fault.exception_at
    if span is None or len(request) < 3:  # noqa: PLR2004 - function and address
        return True
    address = int.from_bytes(request[1:3], "big")
    single = request[0] in (Function.WRITE_SINGLE_COIL, Function.WRITE_SINGLE_REGISTER)
    count = 1 if single or len(request) < 5 else max(1, int.from_bytes(request[3:5], "big"))  # noqa: PLR2004
    return address <= span[1] and span[0] < address + count


def _describe(selector: _Selector, fault: Fault) -> str:
    port, unit = selector
    parts = [] if port is None else [f"port={port}"]
    if unit is not None:
        parts.append(f"unit={unit}")
    if fault.delay:
        parts.append(f"slow={fault.delay * 1000:g}ms")
    if fault.dead:
        parts.append("dead")
    if fault.exception is not None and fault.exception_at is not None:
        first, last = fault.exception_at
        where = f"{first}" if first == last else f"{first}-{last}"
        parts.append(f"exception={fault.exception}@{where}")
    elif fault.exception is not None:
        parts.append(f"exception={fault.exception}")
    if fault.garble and set(fault.garble_kinds) == set(GARBLE_KINDS):
        parts.append(f"garble={fault.garble:g}")
    elif fault.garble:
        parts.append(f"garble={'+'.join(fault.garble_kinds)}@{fault.garble:g}")
    if fault.power_loss_at is not None:
        parts.append(f"powerloss={fault.power_loss_at}")
    if fault.bad_chunk is not None:
        parts.append(f"badchunk={fault.bad_chunk}")
    if fault.reboot is not None:
        parts.append(f"reboot={fault.reboot * 1000:g}ms")
    if fault.boot_fail:
        parts.append("bootfail")
    return ":".join(parts)


# --- values ------------------------------------------------------------------------------------

_TABLE_SIZE: Final = 0x10000
_TABLE_MASK: Final = _TABLE_SIZE - 1


def _tables() -> tuple[array.array[int], ...]:
    """The four signals, one value per tick over 65,536 ticks.

    A sine (period 64), a sawtooth (period 128), a counter, and a random walk that ends where
    it starts (so the table wraps smoothly).
    """
    sine = array.array(
        "H", (round(1000 + 900 * math.sin(2 * math.pi * i / 64)) for i in range(_TABLE_SIZE))
    )
    ramp = array.array("H", ((i % 128) * 8 for i in range(_TABLE_SIZE)))
    counter = array.array("H", range(_TABLE_SIZE))
    rng = random.Random(0x5EED)  # noqa: S311 - a fixed demo signal
    steps = [rng.gauss(0.0, 4.0) for _ in range(_TABLE_SIZE)]
    drift = sum(steps) / _TABLE_SIZE
    walk, level = [], 0.0
    for step in steps:
        level += step - drift
        walk.append(level)
    low, high = min(walk), max(walk)
    span = (high - low) or 1.0
    walk_table = array.array("H", (round(100 + 1800 * (v - low) / span) for v in walk))
    return sine, ramp, counter, walk_table


_SIGNALS: Final = _tables()
_KIND_CODES: Final = {
    "CoilRegister": 0,
    "DiscreteInputRegister": 1,
    "InputRegister": 2,
    "HoldingRegister": 3,
}
_FUNCTION_KIND: Final = {1: 0, 2: 1, 4: 2, 3: 3}
"""Read function -> kind code (0 coils, 1 discrete inputs, 2 input registers, 3 holding)."""
_READ_LIMITS: Final = {1: 2000, 2: 2000, 3: 125, 4: 125}
_BLOCK_FUNCTIONS: Final = (3, 6, 16)
"""Functions of the firmware block (holding registers)."""


def _phase(device: int, kind: int) -> int:
    """Where a device's signals start, so devices do not move in lockstep."""
    return (device * 7919 + kind * 104_729) & _TABLE_MASK


@dataclass(frozen=True, slots=True)
class Ramp:
    """A register value rising from ``low`` to ``high`` and back, linearly, over and over.

    A triangle wave at ``per_second`` raw units a second, so a reader sees a real value cross a
    threshold and come back.

    Attributes:
        low: The lowest raw register value (0..65535).
        high: The highest raw register value (low..65535).
        per_second: Raw units per second (> 0).
    """

    low: int
    high: int
    per_second: float

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high <= _REGISTER_MAX:
            raise SpecError(
                f"a ramp needs 0 <= low <= high <= 65535, not {self.low}..{self.high}", path="low"
            )
        if not (self.per_second > 0 and math.isfinite(self.per_second)):
            raise SpecError(f"a ramp's rate must be > 0, not {self.per_second}", path="per_second")

    def at(self, seconds: float) -> int:
        """The value ``seconds`` after the ramp started (at ``low``, rising)."""
        span = self.high - self.low
        if span == 0:
            return self.low
        travelled = (max(seconds, 0.0) * self.per_second) % (2 * span)
        rise = travelled if travelled <= span else 2 * span - travelled
        return self.low + round(rise)


_REGISTER_MAX: Final = 0xFFFF


# --- counters ----------------------------------------------------------------------------------


@dataclass(slots=True)
class SimCounters:
    """What the simulator did since it started.

    Attributes:
        connections: Connections accepted.
        requests: Request frames received.
        responses: Answers sent (garbled and exception answers included).
        exceptions: Exception answers (faults included).
        writes: Writes applied.
        dropped: Requests not answered (dead units, closed connections).
        delayed: Answers held back by a slow fault.
        garbled: Answers garbled on purpose.
        bad_frames: Connections closed because a request could not be framed.
        ignored: Requests dropped unanswered because the connection was already answering
            ``max_in_flight`` requests (what a device taking one transaction at a time does).
        paced_turns: Event loop turns that answered requests and then slept out the rest of
            the simulator's ``pace``.
    """

    connections: int = 0
    requests: int = 0
    responses: int = 0
    exceptions: int = 0
    writes: int = 0
    dropped: int = 0
    delayed: int = 0
    garbled: int = 0
    bad_frames: int = 0
    ignored: int = 0
    paced_turns: int = 0

    def as_dict(self) -> dict[str, int]:
        """Every counter by name."""
        return asdict(self)


# --- the server --------------------------------------------------------------------------------

_REG_RESPONSES: Final = tuple(
    struct.Struct(f">HHHBBB{n}H") if n else struct.Struct(">HHHBBB") for n in range(126)
)
"""A read-registers response of n registers, header and data in one pack."""
_READ_REQUEST: Final = struct.Struct(">BHH")
_OUT_SIZE: Final = 16 * 1024
_MAX_ADU: Final = 260
_MAX_PACE_S: Final = 1.0


def _skip_frames(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Skips the whole request frames from ``pos`` on.

    Returns:
        How many, and where the first partial (or unframeable) one starts: it is kept for the
        next segment.
    """
    frames = 0
    while end - pos >= MBAP_SIZE:
        length = int.from_bytes(data[pos + 4 : pos + 6], "big")
        if not 2 <= length <= 254 or pos + 6 + length > end:  # noqa: PLR2004
            break
        pos += 6 + length
        frames += 1
    return frames, pos


class _Port:
    """One listening port: which device answers to which unit id."""

    __slots__ = ("number", "server", "units")

    def __init__(self, number: int) -> None:
        self.number = number
        self.units = [-1] * 256
        self.server: asyncio.Server | None = None


class _SimConnection(asyncio.Protocol):
    """One client connection: frames requests, answers them, applies faults."""

    def __init__(self, sim: ModbusSimulator, port: _Port) -> None:
        self.sim = sim
        self.port = port
        self.transport: asyncio.Transport | None = None
        self._rest = b""
        self._out = bytearray(_OUT_SIZE)
        self.held = 0
        """Answers held back by a slow fault, not sent yet (they count as in progress)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods
        self.transport = cast(asyncio.Transport, transport)
        self.sim.counters.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.sim._connections.discard(self)

    def data_received(self, data: bytes) -> None:
        if self._rest:
            data = self._rest + data
            self._rest = b""
        sim = self.sim
        out = self._out
        limit = sim.max_in_flight
        answered = 0
        off = 0
        pos = 0
        end = len(data)
        while end - pos >= MBAP_SIZE:
            tid, protocol, length, unit = MBAP.unpack_from(data, pos)
            if protocol or not 2 <= length <= 254:  # noqa: PLR2004 - unframeable
                sim.counters.bad_frames += 1
                log.debug(
                    "closing a connection: bad MBAP header (protocol %d, length %d)",
                    protocol,
                    length,
                )
                if off:
                    self._flush(off)
                if self.transport is not None:
                    self.transport.close()
                return
            stop = pos + 6 + length
            if stop > end:
                break
            if limit is not None and answered + self.held >= limit:
                # Busy with `limit` requests: like a device that takes one transaction at a
                # time, drop this one and the rest of what arrived with it.
                skipped, pos = _skip_frames(data, stop, end)
                sim.counters.requests += 1 + skipped
                sim.counters.ignored += 1 + skipped
                break
            if off > _OUT_SIZE - _MAX_ADU:
                self._flush(off)
                off = 0
            off = sim._answer(self, out, off, tid, unit, data, pos + MBAP_SIZE, stop)
            answered += 1
            pos = stop
        if off:
            self._flush(off)
        if pos < end:
            self._rest = data[pos:]
        if sim.pace and not sim._pacing:
            sim._pacing = True
            sim._turn_began = time.monotonic()
            assert sim._loop is not None  # noqa: S101 - a connection means it runs
            sim._loop.call_soon(sim._pause)

    def _flush(self, size: int) -> None:
        if self.transport is not None:
            self.transport.write(self._out[:size])

    def send_later(self, frame: bytes) -> None:
        """Sends an answer held back by a slow fault, unless the connection is gone."""
        self.held -= 1
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)
        else:
            self.sim.counters.dropped += 1


class ModbusSimulator:
    """Many Modbus TCP devices in one process.

    Use it as ``async with ModbusSimulator(devices=10, port=0) as sim:`` (port 0 picks free
    ports); ``sim.port`` / ``sim.ports`` say where it listens, ``sim.address(i)`` where device
    ``i`` is.

    Args:
        devices: How many devices.
        host: The address to listen on.
        port: The first port (0: free ports chosen by the system).
        units_per_port: Devices per port, as unit ids 1..units_per_port (at most 247); more
            devices take the following ports.
        port_range: ``(first, last)``: spread the devices evenly over these ports instead
            (one device per port, unit id 1, when there are enough ports).
        registers: Addresses per register kind and device (0..registers-1).
        rate: How many times a second values change (0 freezes them).
        faults: Faults to start with (a :class:`SimFaults` or ``--faults`` text).
        seed: Seed of the fault injection's random choices.
        max_in_flight: Requests a connection answers at once; ``None`` (the default) answers
            every pipelined request. With ``1`` a connection behaves like the many devices and
            gateways that take one transaction at a time (pymodbus's server among them): of
            the requests that arrive together, or while an answer is held back by a slow
            fault, it answers the first and drops the others (counted in
            ``counters.ignored``).
        pace: Seconds; when more than 0, a busy simulator's event loop turns at most once per
            ``pace``: after the requests that arrived together are answered, the loop sleeps
            out the rest of the interval, so the requests of many connections are read in one
            wake-up instead of one each. Real devices answer on their own hardware; a
            simulator serving thousands of them on the gateway under test should cost it as
            little as it can. 0 (the default) answers as soon as a request arrives; only for
            a simulator in a process of its own (the pause stops the whole event loop).
        firmware_base: The first holding register of every device's firmware transfer block
            (docs/upgrades.md), which answers whatever ``registers`` is; ``None``: no block.
        firmware_version: Every device's ACTIVE_VERSION at the start (``major << 16 | minor``).

    Attributes:
        faults: The faults in force; change them at any time.
        counters: What the simulator did.
        max_in_flight: Requests a connection answers at once (``None``: no limit); may be
            changed at any time.
        journal: When a list (``None`` by default: nothing kept), each request answered is
            appended as ``(unit id, request PDU)``, in the order they arrived; tests read the
            order of polls and writes from it.
    """

    def __init__(  # noqa: PLR0913 - the fleet's shape
        self,
        devices: int = 1,
        *,
        host: str = "127.0.0.1",
        port: int = 5020,
        units_per_port: int = MAX_UNITS_PER_PORT,
        port_range: tuple[int, int] | None = None,
        registers: int = 100,
        rate: float = 1.0,
        faults: SimFaults | str | None = None,
        seed: int | None = 0,
        max_in_flight: int | None = None,
        pace: float = 0.0,
        firmware_base: int | None = DEFAULT_BASE,
        firmware_version: int = DEFAULT_VERSION,
    ) -> None:
        if devices < 1:
            raise SpecError(f"devices must be at least 1, not {devices}", path="devices")
        if not 1 <= registers <= _TABLE_SIZE:
            raise SpecError(f"registers must be 1..65536, not {registers}", path="registers")
        if not (rate >= 0 and math.isfinite(rate)):
            raise SpecError(f"rate must be 0 or more per second, not {rate}", path="rate")
        if max_in_flight is not None and max_in_flight < 1:
            raise SpecError(
                f"max_in_flight must be at least 1, not {max_in_flight}", path="max_in_flight"
            )
        if not (0 <= pace <= _MAX_PACE_S):
            raise SpecError(f"pace must be 0..{_MAX_PACE_S:g} s, not {pace}", path="pace")
        if firmware_base is not None and not 0 <= firmware_base <= _TABLE_SIZE - BLOCK_SIZE:
            raise SpecError(
                f"the firmware block needs a base 0..{_TABLE_SIZE - BLOCK_SIZE}, not "
                f"{firmware_base}",
                path="firmware_base",
            )
        if not 0 <= firmware_version <= 0xFFFF_FFFF:  # noqa: PLR2004
            raise SpecError(
                f"a firmware version is a uint32, not {firmware_version}", path="firmware_version"
            )
        self.firmware_base = firmware_base
        self.firmware_version = firmware_version
        self._slots: dict[int, FirmwareSlot] = {}
        self._dark: dict[int, asyncio.TimerHandle] = {}
        self._plain = registers if firmware_base is None else min(registers, firmware_base)
        """Addresses below this are ordinary registers on the hot path."""
        self.max_in_flight = max_in_flight
        self.pace = pace
        self._pacing = False
        self._turn_began = 0.0
        self.host = host
        self.devices = devices
        self.registers = registers
        self.rate = rate
        self.faults = faults if isinstance(faults, SimFaults) else SimFaults(faults, seed=seed)
        self.counters = SimCounters()
        self.journal: list[tuple[int, bytes]] | None = None
        self._layout = _layout(devices, port, units_per_port, port_range)
        self._ports: list[_Port] = []
        self._pins: dict[tuple[int, int], dict[int, int]] = {}
        self._ramps: dict[tuple[int, int], dict[int, tuple[Ramp, float]]] = {}
        self._connections: set[_SimConnection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._t0 = 0.0
        self._sig = [(_SIGNALS[a & 3], a * 40_503 & _TABLE_MASK) for a in range(registers)]

    def __repr__(self) -> str:
        return f"<ModbusSimulator {self.devices} devices on {self.host}:{self.ports or '-'}>"

    # --- lifecycle ---

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Starts listening on every port.

        Raises:
            OSError: A port cannot be bound.
        """
        loop = self._loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        try:
            for number, units in self._layout:
                port = _Port(number)
                for unit, device in units:
                    port.units[unit] = device
                port.server = await loop.create_server(
                    lambda port=port: self._connection(port),  # type: ignore[misc]
                    self.host,
                    number,
                    reuse_address=True,
                    backlog=1024,
                )
                port.number = port.server.sockets[0].getsockname()[1]
                self._ports.append(port)
        except BaseException:
            await self.stop()
            raise
        log.info("modbus simulator: %d devices on %s ports %s", self.devices, self.host, self.ports)

    async def stop(self) -> None:
        """Stops listening and closes every connection."""
        ports, self._ports = self._ports, []
        for timer in self._dark.values():
            timer.cancel()
        self._dark.clear()
        for port in ports:
            if port.server is not None:
                port.server.close()
        for conn in list(self._connections):
            if conn.transport is not None:
                conn.transport.abort()
        for port in ports:
            if port.server is not None:
                await port.server.wait_closed()

    def _pause(self) -> None:
        """Sleeps out the rest of this turn's ``pace`` (the requests of the turn are answered)."""
        rest = self.pace - (time.monotonic() - self._turn_began)
        if rest > 0:
            time.sleep(rest)
        self.counters.paced_turns += 1
        self._pacing = False

    def _connection(self, port: _Port) -> _SimConnection:
        conn = _SimConnection(self, port)
        self._connections.add(conn)
        return conn

    # --- where devices are ---

    @property
    def port(self) -> int:
        """The first port."""
        return self._ports[0].number if self._ports else self._layout[0][0]

    @property
    def ports(self) -> list[int]:
        """Every port, in device order (bound ports once started)."""
        return [p.number for p in self._ports] if self._ports else [n for n, _ in self._layout]

    def address(self, device: int) -> tuple[int, int]:
        """``(port, unit)`` of device ``device`` (0-based)."""
        if not 0 <= device < self.devices:
            raise IndexError(f"device {device} is outside 0..{self.devices - 1}")
        for index, (_, units) in enumerate(self._layout):
            first = units[0][1]
            if first <= device < first + len(units):
                return self.ports[index], units[device - first][0]
        raise AssertionError("unreachable: the layout covers every device")  # pragma: no cover

    def layout(self) -> list[tuple[int, int, int]]:
        """``(port, first unit, last unit)`` for each port."""
        return [
            (number, units[0][0], units[-1][0])
            for number, (_, units) in zip(self.ports, self._layout, strict=True)
        ]

    def _device(self, unit: int, port: int | None) -> int:
        ports = self._ports or [_port_of(n, u) for n, u in self._layout]
        chosen = ports[0] if port is None else next((p for p in ports if p.number == port), None)
        if chosen is None:
            raise KeyError(f"the simulator does not listen on port {port}")
        if not 0 <= unit <= 0xFF or chosen.units[unit] < 0:  # noqa: PLR2004
            raise KeyError(f"no device has unit id {unit} on port {chosen.number}")
        return chosen.units[unit]

    # --- firmware ---

    def firmware(self, unit: int, *, port: int | None = None) -> FirmwareSlot:
        """A device's firmware slot (its versions, transfer state and image received so far)."""
        device = self._device(unit, port)
        slot = self._slots.get(device)
        if slot is None:
            slot = self._slots[device] = FirmwareSlot(self.firmware_version)
        return slot

    def rebooting(self, unit: int, *, port: int | None = None) -> bool:
        """Whether a unit is silent (rebooting, or out of power)."""
        return self._device(unit, port) in self._dark

    def _in_block(self, request: bytes) -> bool:
        """Whether a holding-register read or write request starts in the firmware block."""
        base = self.firmware_base
        if base is None or request[0] not in _BLOCK_FUNCTIONS or len(request) < 5:  # noqa: PLR2004
            return False
        return base <= int.from_bytes(request[1:3], "big") < base + BLOCK_SIZE

    def _block(self, device: int, fault: Fault | None, request: bytes) -> bytes | None:
        """Answers a request to the firmware block (``None``: not at all)."""
        assert self.firmware_base is not None  # noqa: S101 - checked by _in_block
        slot = self._slots.get(device)
        if slot is None:
            slot = self._slots[device] = FirmwareSlot(self.firmware_version)
        function = request[0]
        offset = int.from_bytes(request[1:3], "big") - self.firmware_base
        if function == Function.READ_HOLDING_REGISTERS and len(request) == 5:  # noqa: PLR2004
            count = int.from_bytes(request[3:5], "big")
            if not 1 <= count <= _READ_LIMITS[function]:
                raise ModbusExceptionError(function, ExceptionCode.ILLEGAL_DATA_VALUE)
            if offset + count > BLOCK_SIZE:
                raise ModbusExceptionError(function, ExceptionCode.ILLEGAL_DATA_ADDRESS)
            body = pack_registers(slot.registers(offset, count))
            return bytes((function, len(body))) + body
        try:
            write = decode_request(request)
        except ModbusFrameError:
            raise ModbusExceptionError(function, ExceptionCode.ILLEGAL_DATA_VALUE) from None
        if write.function <= Function.READ_INPUT_REGISTERS:
            raise ModbusExceptionError(function, ExceptionCode.ILLEGAL_DATA_VALUE)
        if offset + write.count > BLOCK_SIZE:
            raise ModbusExceptionError(function, ExceptionCode.ILLEGAL_DATA_ADDRESS)
        faults = NO_FAULTS if fault is None else fault.firmware
        outage = slot.write(function, offset, write.values, faults)
        self.counters.writes += 1
        if outage is not None:
            self._go_dark(device, slot, outage)
            if not outage.answer:
                return None
        return encode_write_response(write)

    def _go_dark(self, device: int, slot: FirmwareSlot, outage: Outage) -> None:
        assert self._loop is not None  # noqa: S101 - a request means it runs
        log.info("modbus simulator: device %d silent for %gs (firmware)", device, outage.seconds)

        def wake() -> None:
            self._dark.pop(device, None)
            slot.wake()

        self._dark[device] = self._loop.call_later(outage.seconds, wake)

    # --- values ---

    def tick(self) -> int:
        """How many times values have changed since the start."""
        if self._loop is None or not self.rate:
            return 0
        return int((self._loop.time() - self._t0) * self.rate)

    def set_registers(
        self,
        unit: int,
        address: int,
        values: Sequence[int] | Sequence[bool],
        *,
        kind: str = "HoldingRegister",
        port: int | None = None,
    ) -> None:
        """Pins values until the next write: registers 0..65535, or booleans for bits.

        Args:
            unit: The unit id.
            address: The first address.
            values: The values.
            kind: The register kind (a visitor's ``register``).
            port: The port (default: the first).
        """
        code = _KIND_CODES[kind]
        if address < 0 or address + len(values) > self.registers:
            last = address + len(values) - 1
            raise IndexError(f"addresses {address}..{last} are outside 0..{self.registers - 1}")
        device = self._device(unit, port)
        self._pin(device, code, address, [int(v) for v in values])

    def ramp(
        self,
        unit: int,
        address: int,
        ramp: Ramp,
        *,
        kind: str = "HoldingRegister",
        port: int | None = None,
    ) -> None:
        """Makes a register follow ``ramp`` from now on (a pinned value, or a write, wins).

        Args:
            unit: The unit id.
            address: The register's address.
            ramp: The ramp.
            kind: ``HoldingRegister`` or ``InputRegister``.
            port: The port (default: the first).
        """
        code = _KIND_CODES[kind]
        if code < 2:  # noqa: PLR2004 - bits do not ramp
            raise SpecError(f"only registers ramp, not {kind}", path="kind")
        if not 0 <= address < self.registers:
            raise IndexError(f"address {address} is outside 0..{self.registers - 1}")
        device = self._device(unit, port)
        pins = self._pins.get((device, code))
        if pins:
            pins.pop(address, None)
        self._ramps.setdefault((device, code), {})[address] = (ramp, self._now())

    @staticmethod
    def _now() -> float:
        return time.monotonic()

    def peek(
        self, unit: int, kind: str, address: int, count: int, *, port: int | None = None
    ) -> bytes:
        """The data bytes a read would answer right now (registers big-endian, bits packed)."""
        code = _KIND_CODES[kind]
        if address < 0 or count < 1 or address + count > self.registers:
            raise IndexError(
                f"addresses {address}..{address + count - 1} are outside 0..{self.registers - 1}"
            )
        values = self._values(self._device(unit, port), code, address, count, self.tick())
        return pack_bits(values) if code < 2 else pack_registers(values)  # noqa: PLR2004

    def _pin(self, device: int, code: int, address: int, values: Iterable[int]) -> None:
        pins = self._pins.setdefault((device, code), {})
        for offset, value in enumerate(values, address):
            pins[offset] = value

    def _values(self, device: int, code: int, address: int, count: int, tick: int) -> list[int]:
        """The values of ``count`` addresses of a device's register kind at ``tick``."""
        shift = _phase(device, code) + tick
        sig = self._sig[address : address + count]
        if code >= 2:  # registers  # noqa: PLR2004
            values = [table[(phase + shift) & _TABLE_MASK] for table, phase in sig]
        else:  # bits toggling every 1, 2, 4 or 8 ticks
            values = [((phase + shift) >> (a & 3)) & 1 for a, (_, phase) in enumerate(sig, address)]
        ramps = self._ramps.get((device, code)) if self._ramps else None
        if ramps:
            now, stop = self._now(), address + count
            for at, (ramp, began) in ramps.items():
                if address <= at < stop:
                    values[at - address] = ramp.at(now - began)
        pins = self._pins.get((device, code))
        if pins:
            stop = address + count
            for at, value in pins.items():
                if address <= at < stop:
                    values[at - address] = value
        return values

    # --- answering ---

    def _answer(  # noqa: PLR0913, PLR0917 - the hot path: the frame's parts, unpacked once
        self,
        conn: _SimConnection,
        out: bytearray,
        off: int,
        tid: int,
        unit: int,
        data: bytes,
        start: int,
        stop: int,
    ) -> int:
        """Answers one request into ``out`` at ``off``; returns the new end of the output."""
        counters = self.counters
        counters.requests += 1
        fault = self.faults.get(conn.port.number, unit) if self.faults else None
        if self._dark and conn.port.units[unit] in self._dark:
            counters.dropped += 1  # rebooting: silent
            return off
        function = data[start]
        if self.journal is not None:
            self.journal.append((unit, bytes(data[start:stop])))
        if fault is None and stop - start == 5 and 3 <= function <= 4:  # noqa: PLR2004
            # The hot path: a register read, packed with its header in one call.
            address: int
            count: int
            _, address, count = _READ_REQUEST.unpack_from(data, start)
            device = conn.port.units[unit]
            if device >= 0 and 1 <= count <= 125 and address + count <= self._plain:  # noqa: PLR2004
                kind = 2 if function == Function.READ_INPUT_REGISTERS else 3
                values = self._values(device, kind, address, count, self.tick())
                _REG_RESPONSES[count].pack_into(
                    out, off, tid, 0, 3 + 2 * count, unit, function, 2 * count, *values
                )
                counters.responses += 1
                return off + 9 + 2 * count
        if fault is not None and fault.dead:
            counters.dropped += 1
            return off
        pdu = self._pdu(conn.port.units[unit], fault, data[start:stop])
        if pdu is None:
            counters.dropped += 1
            return off
        frame = MBAP.pack(tid, 0, len(pdu) + 1, unit) + pdu
        counters.responses += 1
        if fault is None:
            out[off : off + len(frame)] = frame
            return off + len(frame)
        return self._faulty(conn, out, off, fault, frame)

    def _pdu(self, device: int, fault: Fault | None, request: bytes) -> bytes | None:
        """The answer PDU to a request PDU: data, a write echo, or an exception."""
        try:
            return self._respond(device, fault, request)
        except ModbusExceptionError as err:
            self.counters.exceptions += 1
            return bytes((request[0] | 0x80, err.code))

    def _respond(self, device: int, fault: Fault | None, request: bytes) -> bytes | None:
        function = request[0]
        if device < 0:
            raise ModbusExceptionError(
                function, ExceptionCode.GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND
            )
        if fault is not None and fault.exception is not None and _touches(request, fault):
            raise ModbusExceptionError(function, fault.exception)
        if self._in_block(request):
            return self._block(device, fault, request)
        if 1 <= function <= 4 and len(request) == 5:  # noqa: PLR2004 - a read
            return self._read(device, request)
        return self._write(device, request)

    def _read(self, device: int, request: bytes) -> bytes:
        """Answers a well-formed read request PDU."""
        function, address, count = _READ_REQUEST.unpack(request)
        if not 1 <= count <= _READ_LIMITS[function]:
            raise ModbusExceptionError(function, ExceptionCode.ILLEGAL_DATA_VALUE)
        if address + count > self.registers:
            raise ModbusExceptionError(function, ExceptionCode.ILLEGAL_DATA_ADDRESS)
        kind = _FUNCTION_KIND[function]
        values = self._values(device, kind, address, count, self.tick())
        body = pack_bits(values) if kind < 2 else pack_registers(values)  # noqa: PLR2004
        return bytes((function, len(body))) + body

    def _write(self, device: int, pdu: bytes) -> bytes:
        """Applies a write request; returns the answer PDU."""
        try:
            request = decode_request(pdu)
        except ModbusFrameError:
            raise ModbusExceptionError(pdu[0], ExceptionCode.ILLEGAL_DATA_VALUE) from None
        if request.function <= Function.READ_INPUT_REGISTERS:  # a read with a bad length
            raise ModbusExceptionError(request.function, ExceptionCode.ILLEGAL_DATA_VALUE)
        if request.address + request.count > self.registers:
            raise ModbusExceptionError(request.function, ExceptionCode.ILLEGAL_DATA_ADDRESS)
        coils = request.function in (Function.WRITE_SINGLE_COIL, Function.WRITE_MULTIPLE_COILS)
        self._pin(device, 0 if coils else 3, request.address, (int(v) for v in request.values))
        self.counters.writes += 1
        return encode_write_response(request)

    def _faulty(
        self, conn: _SimConnection, out: bytearray, off: int, fault: Fault, frame: bytes
    ) -> int:
        """Garbles and/or delays an answer."""
        kind = self.faults.pick_garble(fault)
        if kind is not None:
            self.counters.garbled += 1
            frame = _garble(frame, kind)
        if fault.delay:
            self.counters.delayed += 1
            assert self._loop is not None  # noqa: S101 - running
            conn.held += 1
            self._loop.call_later(fault.delay, conn.send_later, frame)
            return off
        out[off : off + len(frame)] = frame
        return off + len(frame)


def _garble(frame: bytes, kind: GarbleKind) -> bytes:
    """The answer ``frame`` made wrong in the way ``kind`` says."""
    tid, _, _, unit = MBAP.unpack_from(frame)
    pdu = frame[MBAP_SIZE:]
    if kind == "tid":
        return MBAP.pack(tid ^ 0x5A5A, 0, len(pdu) + 1, unit) + pdu
    if kind == "header":
        return MBAP.pack(tid, 0xBEEF, len(pdu) + 1, unit) + pdu
    if kind == "truncated":
        pdu = pdu[: max(1, len(pdu) // 2)]
    elif pdu[0] in READ_FUNCTIONS.values() and len(pdu) > 2:  # noqa: PLR2004 - a read answer
        size = len(pdu) - 2
        keep = size - (1 if pdu[0] <= Function.READ_DISCRETE_INPUTS else 2)
        pdu = bytes((pdu[0], keep)) + pdu[2 : 2 + keep]
    else:
        pdu += b"\x00"
    return MBAP.pack(tid, 0, len(pdu) + 1, unit) + pdu


def _layout(
    devices: int, port: int, units_per_port: int, port_range: tuple[int, int] | None
) -> list[tuple[int, list[tuple[int, int]]]]:
    """``[(port, [(unit, device), ...]), ...]``: where each device answers."""
    if port_range is not None:
        first, last = port_range
        if not 0 < first <= last <= 0xFFFF:  # noqa: PLR2004
            raise SpecError(f"bad port range {first}-{last}", path="port_range")
        count = last - first + 1
        per_port = -(-devices // count)
        if per_port > MAX_UNITS_PER_PORT:
            raise SpecError(
                f"{devices} devices need {per_port} unit ids on each of {count} ports "
                f"(at most {MAX_UNITS_PER_PORT})",
                path="port_range",
            )
        numbers = list(range(first, first + -(-devices // per_port)))
    else:
        if not 1 <= units_per_port <= MAX_UNITS_PER_PORT:
            raise SpecError(
                f"units per port must be 1..{MAX_UNITS_PER_PORT}, not {units_per_port}",
                path="units_per_port",
            )
        if not 0 <= port <= 0xFFFF:  # noqa: PLR2004
            raise SpecError(f"bad port {port}", path="port")
        per_port = units_per_port
        needed = -(-devices // per_port)
        if port and port + needed - 1 > 0xFFFF:  # noqa: PLR2004
            raise SpecError(f"{needed} ports from {port} run past 65535", path="port")
        numbers = [port + i if port else 0 for i in range(needed)]
    layout = []
    for index, number in enumerate(numbers):
        first_device = index * per_port
        units = [
            (unit, device)
            for unit, device in enumerate(
                range(first_device, min(devices, first_device + per_port)), 1
            )
        ]
        layout.append((number, units))
    return layout


def _port_of(number: int, units: list[tuple[int, int]]) -> _Port:
    port = _Port(number)
    for unit, device in units:
        port.units[unit] = device
    return port
