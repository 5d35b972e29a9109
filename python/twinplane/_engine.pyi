"""Native twin engine (pyo3). Import it through :mod:`twinplane.twin`."""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, final

from twinplane.twin.spec import (
    PropertySpec,
    PropertyTypeName,
    RegisterKindName,
    TwinDict,
    ValueLike,
    VisitorConfig,
)

__all__ = [
    "Changes",
    "EncodedReport",
    "Engine",
    "LatencyHistogram",
    "ModbusIo",
    "__version__",
    "canonical",
    "decode_register",
    "encode_register",
    "is_kubeedge_safe",
]

__version__: str

_WriteOp = tuple[int, int, list[int] | list[bool]]

@final
class Changes:
    """What one engine call changed: an immutable batch with its encoders."""

    def __len__(self) -> int: ...
    def __bool__(self) -> bool: ...
    def devices(self) -> list[str]:
        """Device ids with changes, in order."""
    def to_dmi(self) -> list[tuple[str, bytes]]:
        """One serialized DMI ``ReportDeviceStatusRequest`` per device (reported changes)."""
    def to_mqtt(self, now_ms: int | None = None) -> list[tuple[str, bytes]]:
        """KubeEdge ``$hw/events/device/...`` twin result, document and delta messages."""
    def to_list(self) -> list[dict[str, Any]]:
        """Each change as a dict (device, property, kind, value, timestamp, before, after)."""
    def alarms(self) -> list[tuple[str, str, str, bool, float, float, int]]:
        """Alarm transitions: (device, rule, property, raised, value, threshold, ts)."""
    def deltas(self) -> dict[str, dict[str, str]]:
        """Per device with a delta: property -> desired value."""
    def __arrow_c_array__(self, requested_schema: object | None = None) -> tuple[object, object]:
        """Arrow PyCapsule export: a struct array of the changes."""

@final
class EncodedReport:
    """What :meth:`Engine.report_encoded` returns: the changes and their encodings."""

    @property
    def changes(self) -> Changes:
        """The changes of the report."""
    @property
    def dmi(self) -> list[tuple[str, bytes]]:
        """``(device id, ReportDeviceStatusRequest bytes)`` per device with reported changes."""
    @property
    def mqtt(self) -> list[tuple[str, bytes]]:
        """``(topic, payload)`` per KubeEdge twin publication."""

@final
class LatencyHistogram:
    """One latency histogram at one moment: fixed buckets in ms, Prometheus ``le`` semantics."""

    @property
    def bounds_ms(self) -> list[float]:
        """Finite bucket upper bounds in ms, ascending (a last ``+Inf`` bucket follows)."""
    @property
    def counts(self) -> list[int]:
        """Non-cumulative counts, ``len(bounds_ms) + 1`` of them; the last is ``+Inf``."""
    @property
    def count(self) -> int:
        """Values recorded."""
    @property
    def sum_ms(self) -> float:
        """Sum of the values recorded, in ms."""
    @property
    def max_ms(self) -> float:
        """Largest value recorded, in ms (0 when empty)."""
    def quantile(self, q: float) -> float | None:
        """The ``q``-quantile in ms, interpolated in its bucket; ``None`` when empty."""
    def __len__(self) -> int: ...

@final
class Engine:
    """The twin engine: devices, sampling rings, twins, change detection."""

    def __new__(
        cls,
        *,
        max_registers: int = 125,
        max_bits: int = 2000,
        max_gap: int = 0,
        track_dirty: bool = False,
    ) -> Engine: ...
    def upsert_device(self, device_id: str, properties: Iterable[PropertySpec]) -> int: ...
    def remove_device(self, device_id: str) -> None: ...
    def device_index(self, device_id: str) -> int: ...
    def device_id(self, index: int) -> str: ...
    def device_ids(self) -> list[str]: ...
    def property_index(self, device: int | str, name: str) -> int: ...
    def properties(self, device: int | str) -> list[tuple[str, str]]: ...
    def __len__(self) -> int: ...
    def read_plan(
        self, device: int | str, properties: Sequence[int] | None = None
    ) -> list[tuple[str, int, int]]: ...
    def ingest_frame(
        self,
        device: int,
        register: RegisterKindName,
        start: int,
        frame: bytes,
        ts_ms: int,
        count: int | None = None,
    ) -> int: ...
    def ingest_frames(
        self,
        devices: Sequence[int],
        frames: Iterable[bytes],
        ts_ms: int | Sequence[int],
        reads: Sequence[int] | None = None,
    ) -> int: ...
    def ingest_values(
        self, device: int, values: Iterable[tuple[int, ValueLike]], ts_ms: int
    ) -> None: ...
    def report(self) -> Changes: ...
    def report_encoded(
        self, now_ms: int | None = None, *, dmi: bool = True, mqtt: bool = True
    ) -> EncodedReport: ...
    def report_devices(self, devices: Sequence[int]) -> Changes: ...
    def apply_reported(self, device: str, values: Sequence[tuple[str, str, int]]) -> Changes: ...
    def apply_dmi_report(self, payload: bytes, ts_ms: int) -> Changes: ...
    def set_desired(
        self, device: str, values: dict[str, ValueLike | None], ts_ms: int
    ) -> Changes: ...
    def sync_desired(
        self, device: str, values: dict[str, tuple[str | None, int, int]], ts_ms: int
    ) -> Changes: ...
    def take_dirty(self) -> list[tuple[str, str, str]]: ...
    def twins(self, device: str) -> dict[str, TwinDict]: ...
    def restore(self, device: str, property: str, state: Mapping[str, Any]) -> None: ...
    def restore_alarm(self, device: str, rule: str, active: bool) -> None:
        """Sets a rule's state as persisted (restart recovery); counters reset."""
    def active_alarms(self, device: str) -> list[tuple[str, str]]:
        """The active alarms of a device: (rule, property)."""
    def encode_write(
        self, device: int | str, property: int | str, value: ValueLike
    ) -> _WriteOp: ...
    def mark_persisted(self, now_ms: int) -> None: ...
    def latency(self) -> dict[Literal["applied", "persisted"], LatencyHistogram]: ...
    def reset_latency(self) -> None: ...
    def stats(self) -> dict[str, int]: ...

def canonical(type: PropertyTypeName, text: str) -> str:
    """The canonical string form of ``text`` read as a value of ``type``."""

def is_kubeedge_safe(text: str) -> bool:
    """Whether ``text`` is inside KubeEdge's twin value character set."""

def decode_register(
    visitor: VisitorConfig, type: PropertyTypeName, start: int, frame: bytes
) -> str:
    """Decode one property from a register frame read from address ``start``."""

def encode_register(visitor: VisitorConfig, type: PropertyTypeName, value: ValueLike) -> _WriteOp:
    """The Modbus write that sets one property: ``(function, offset, values)``."""

@final
class ModbusIo:
    """One event loop's channel to the process's Modbus TCP I/O thread.

    Calls buffer commands; :meth:`flush` hands them to the thread in one wake-up; :meth:`take`
    returns what finished (tuples whose first item says what: see
    :mod:`twinplane.drivers.modbus.tcp`). :meth:`fileno` is readable when there is some.
    """

    def __init__(self) -> None: ...
    def fileno(self) -> int: ...
    def attach(self, fd: int, limit: int) -> int:
        """Takes over a connected TCP socket's descriptor; the connection's id."""
    def read(
        self,
        conn: int,
        token: int,
        unit: int,
        reads: Sequence[tuple[int, int, int, int]],
        timeout_s: float,
        first: bool = False,
    ) -> None:
        """Queues a poll: ``(function, address, count, data bytes)`` per read (``first``: ahead)."""
    def request(
        self, conn: int, token: int, unit: int, pdu: bytes, timeout_s: float, first: bool = True
    ) -> None:
        """Queues one PDU (a write), ahead of the queued polls when ``first``."""
    def set_limit(self, conn: int, limit: int) -> None: ...
    def close(self, conn: int) -> None: ...
    def flush(self) -> None: ...
    def take(self) -> list[tuple[Any, ...]]: ...
