"""The twin engine: typed facade over the native module ``twinplane._engine``.

This package is the only importer of ``twinplane._engine``. The engine turns raw device bytes
into twin changes without a Python object per sample:

* :class:`Engine` holds devices, their compiled property configs, sampling rings and twins.
  Configure with :meth:`Engine.upsert_device` (a :class:`PropertySpec` per property), feed it
  with :meth:`Engine.ingest_frame` (a coalesced Modbus read), :meth:`Engine.ingest_frames`
  (many replies to planned reads, of many devices, in one call) or :meth:`Engine.ingest_values`,
  and call :meth:`Engine.report` at the report cycle (or :meth:`Engine.report_encoded`, which
  also encodes the changes to DMI and MQTT bytes, as an :class:`EncodedReport`); on the
  device-manager side,
  :meth:`Engine.apply_reported` / :meth:`Engine.apply_dmi_report` and
  :meth:`Engine.set_desired`.
* :class:`LatencyHistogram` is a snapshot of one of the engine's latency histograms
  (:meth:`Engine.latency`: device read → twin applied, and → twin persisted, which the caller
  confirms with :meth:`Engine.mark_persisted` after storing the rows of :meth:`Engine.take_dirty`).
* :class:`Changes` is what a batch call changed; it encodes in one call to DMI
  ``ReportDeviceStatusRequest`` bytes (:meth:`Changes.to_dmi`), KubeEdge MQTT twin payloads
  (:meth:`Changes.to_mqtt`) and Arrow (``pyarrow.record_batch(changes)``).

Batch calls release the GIL, so ``await asyncio.to_thread(engine.report)`` keeps the event loop
free. Errors are the classes of :mod:`twinplane.errors`.
"""

from __future__ import annotations

from twinplane._engine import (
    Changes,
    EncodedReport,
    Engine,
    LatencyHistogram,
    canonical,
    decode_register,
    encode_register,
    is_kubeedge_safe,
)
from twinplane.twin.spec import (
    AggregateName,
    AlarmRuleSpec,
    PropertySpec,
    PropertyTypeName,
    RegisterKindName,
    TwinDict,
    TwinSideDict,
    ValueLike,
    VersionDict,
    VisitorConfig,
)

__all__ = [
    "AggregateName",
    "AlarmRuleSpec",
    "Changes",
    "EncodedReport",
    "Engine",
    "LatencyHistogram",
    "PropertySpec",
    "PropertyTypeName",
    "RegisterKindName",
    "TwinDict",
    "TwinSideDict",
    "ValueLike",
    "VersionDict",
    "VisitorConfig",
    "canonical",
    "decode_register",
    "encode_register",
    "is_kubeedge_safe",
]
