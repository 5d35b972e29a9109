"""Twin engine benchmark: the Rust engine against a tuned pure-Python pass, same inputs.

A pass is what a mapper does every cycle for its whole fleet: for each of ``--devices`` devices,
one coalesced holding-register frame covering its ``--properties`` properties of mixed data types
goes in, the samples become twin changes (change policy, versions), and the changes go out as
KubeEdge MQTT payloads (``twin/update/result`` and ``/document``) and DMI
``ReportDeviceStatusRequest`` bytes. About 5 % of the values change from one pass to the next.

The implementations run the same passes on the same frames, engine and tuned baseline
interleaved pass by pass (so the machine's load drifts alike for both; the specification, whose
passes churn the heap a hundred times more, runs after them), under the same garbage-collector
policy (the product's: ``twinplane.heap``, a generation-0 threshold of 20,000 and the fleet
frozen once built):

* **engine**: the Rust engine through ``twinplane.twin``'s batch entry points: every frame in
  one ``ingest_frames`` call, the changes and their encodings out of one ``report_encoded``;
* **per_frame**: the same engine called once per frame (``ingest_frame``, then ``report``,
  ``to_dmi``, ``to_mqtt``), interleaved with the other two: what the batch entry points save;
* **tuned** (the baseline): ``bench/tuned.py``, the pass as a competent engineer writes it in
  pure Python: precompiled ``struct`` unpacking, unchanged frames skipped by ``bytes ==``, a
  tuple comparison with the previous raw fields, the project's upb-backed protobuf messages for
  DMI, ``msgspec`` for the JSON;
* **spec**: the executable specification ``tests/reference.py`` (every engine test's oracle),
  a correctness check here and a second ratio, not the baseline.

After a warm-up pass (every value new), ``--passes`` timed passes follow. The **outputs** of
all are kept (pickled, untimed, and dropped as a product drops what it sent) and, once every
pass ran, compared for every pass, warm-up included: each DMI request decoded back by protobuf
(device, name, namespace, every twin's values and metadata) and each MQTT message's topic and
JSON body (key order included) without its random ``event_id`` (checked to be a UUID, unique in
the pass). Any difference stops the bench with both versions of the first differing message.
Seconds per pass are the median over the timed passes; the ratios are of those medians.

Also measured, in a fresh subprocess (so nothing of the others is counted), the engine's
memory per property:

* ``bytes_per_property``, its resident state in steady state: ``VmRSS`` after creating the
  engine, the warm-up pass and the timed passes, with every pass output dropped (changes, MQTT
  payloads, DMI requests), ``gc.collect()`` and glibc's ``malloc_trim(0)`` (so freed memory
  that malloc keeps cached is not counted; skipped, and said so, when the C library is not
  glibc), minus the baseline ``VmRSS`` taken the same way before the engine is created (after
  every import and after building the input frames, which stay alive to the end, so the input
  is not counted);
* ``peak_bytes_per_property``, the peak growth over that baseline while the engine is created
  and the passes run, transient encoding buffers included: ``VmHWM`` reset at the baseline
  (``/proc/self/clear_refs``), or where that is refused, the highest ``VmRSS`` sampled after
  each step of a pass. The warm-up, which encodes every value, normally sets it;
  ``peak_bytes_per_property_timed`` is the peak of the timed passes alone (``VmHWM`` reset
  again after the warm-up).

Targets: engine >= 10x the tuned baseline and >= 25 M properties/s (issue 9); engine >= 30x the
specification and <= 150 resident bytes per property (issue 2).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import itertools
import json
import pickle
import platform
import random
import re
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import reference  # tests/reference.py, the executable specification
from tuned import PassOutput, TunedFleet  # bench/tuned.py, the tuned pure-Python baseline
from twinplane import heap
from twinplane.dmi.v1beta1 import api_pb2
from twinplane.twin import Engine

TUNED_TARGET = 10.0
RATE_TARGET = 25e6
RATIO_TARGET = 30.0
BYTES_TARGET = 150.0
NOW_MS = 1_700_000_000_000
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")

Maker = Callable[[random.Random], bytes]
"""Draws the register bytes of a new value of one property."""


def _u16(r: random.Random) -> bytes:
    return struct.pack(">H", r.randrange(2**16))


def _i16(r: random.Random) -> bytes:
    return struct.pack(">h", r.randrange(-(2**15), 2**15))


def _f32(r: random.Random) -> bytes:
    return struct.pack(">f", r.uniform(-1e3, 1e3))


def _f64(r: random.Random) -> bytes:
    return struct.pack(">d", r.uniform(-1e6, 1e6))


def _i32(r: random.Random) -> bytes:
    return struct.pack(">i", r.randrange(-(2**31), 2**31))


def _bit(r: random.Random) -> bytes:
    return struct.pack(">H", r.randrange(2))


def _u32(r: random.Random) -> bytes:
    return struct.pack(">I", r.randrange(2**32))


def _centi(r: random.Random) -> bytes:
    return struct.pack(">i", r.randrange(-(10**6), 10**6))


def _deci(r: random.Random) -> bytes:
    return struct.pack(">h", r.randrange(-1000, 1000))


def _text(r: random.Random) -> bytes:
    return f"s{r.randrange(10**6):06d}".encode()


MODEL: list[tuple[str, dict[str, Any], int, Maker]] = [
    ("DOUBLE", {"dataType": "uint16", "scale": 0.1}, 1, _u16),
    ("INT", {"dataType": "int16"}, 1, _i16),
    ("FLOAT", {"dataType": "float32"}, 2, _f32),
    ("DOUBLE", {"dataType": "float64"}, 4, _f64),
    ("INT", {"dataType": "int32", "isRegisterSwap": True}, 2, _i32),
    ("BOOLEAN", {"dataType": "boolean"}, 1, _bit),
    ("INT", {"dataType": "uint32", "isSwap": True}, 2, _u32),
    ("DOUBLE", {"dataType": "int32", "scale": 0.01}, 2, _centi),
    ("FLOAT", {"dataType": "float", "limit": 1, "scale": 0.1}, 1, _deci),
    ("STRING", {"dataType": "string", "limit": 4}, 4, _text),
]
"""The device model, property by property: type, visitor configData (without the offset),
registers, value maker. Properties past ten repeat it."""


class TwinEngine(Protocol):
    """What a pass needs of the engine and of the specification (both have it)."""

    def upsert_device(self, device_id: str, properties: Any) -> int:  # noqa: ANN401
        """Adds a device."""

    def ingest_frame(self, device: int, register: Any, start: int, frame: bytes, ts_ms: int) -> int:  # noqa: ANN401
        """Queues a frame's samples."""

    def report(self) -> Any:  # noqa: ANN401
        """Reports the changes."""


class Runner(Protocol):
    """One implementation of the pass."""

    name: str

    def build(self, devices: int, specs: list[dict[str, Any]]) -> None:
        """Adds the fleet: ``devices`` devices of the model."""

    def run_pass(self, frames: list[bytes], ts: int) -> PassOutput:
        """One pass: every frame in, the changes out as DMI and MQTT bytes."""


def model_specs(properties: int) -> tuple[list[dict[str, Any]], list[tuple[int, int, Maker]]]:
    """The property specs of the device model, and where each property's registers lie."""
    specs, layout, offset = [], [], 0
    for i in range(properties):
        ty, config, registers, maker = MODEL[i % len(MODEL)]
        visitor = {"register": "HoldingRegister", "offset": offset, **config}
        specs.append({"name": f"p{i}", "type": ty, "visitor": visitor})
        layout.append((offset, registers, maker))
        offset += registers
    if offset > 125:  # the Modbus limit of one read
        raise SystemExit(f"{properties} properties need {offset} registers; one read holds 125")
    return specs, layout


def make_frames(
    devices: int, layout: list[tuple[int, int, Maker]], passes: int, changed: float, seed: int
) -> list[list[bytes]]:
    """Frames of every device for every pass.

    The first pass has random values; each later pass gives ``changed`` of the properties a new
    value.
    """
    rng = random.Random(seed)
    size = 2 * sum(registers for _, registers, _ in layout)
    current = []
    for _ in range(devices):
        frame = bytearray(size)
        for offset, registers, maker in layout:
            frame[2 * offset : 2 * (offset + registers)] = maker(rng).ljust(2 * registers, b"\0")
        current.append(frame)
    out = [[bytes(f) for f in current]]
    total = devices * len(layout)
    for _ in range(passes):
        for slot in rng.sample(range(total), round(changed * total)):
            frame = current[slot // len(layout)]
            offset, registers, maker = layout[slot % len(layout)]
            old = bytes(frame[2 * offset : 2 * (offset + registers)])
            new = old
            while new == old:
                new = maker(rng).ljust(2 * registers, b"\0")
            frame[2 * offset : 2 * (offset + registers)] = new
        out.append([bytes(f) for f in current])
    return out


def run_pass(engine: TwinEngine, frames: list[bytes], ts: int) -> PassOutput:
    """One pass through an engine's API: every frame in, one report, the changes out."""
    for device, frame in enumerate(frames):
        engine.ingest_frame(device, "HoldingRegister", 0, frame, ts)
    changes = engine.report()
    return PassOutput(len(changes), changes.to_dmi(), changes.to_mqtt(NOW_MS))


def build(engine: TwinEngine, devices: int, specs: list[dict[str, Any]]) -> None:
    """Adds the fleet: ``devices`` devices of the model."""
    for d in range(devices):
        engine.upsert_device(f"bench/d{d:05d}", specs)


def batch_pass(engine: Engine, devices: list[int], frames: list[bytes], ts: int) -> PassOutput:
    """One pass through the batch entry points: one call in, one call out."""
    engine.ingest_frames(devices, frames, ts)
    report = engine.report_encoded(NOW_MS)
    return PassOutput(len(report.changes), report.dmi, report.mqtt)


class EngineRunner:
    """The Rust engine through its batch entry points (``ingest_frames``, ``report_encoded``)."""

    name = "engine"

    def __init__(self) -> None:
        self.engine = Engine()
        self.devices: list[int] = []

    def build(self, devices: int, specs: list[dict[str, Any]]) -> None:
        """Adds the fleet."""
        build(self.engine, devices, specs)
        self.devices = list(range(devices))

    def run_pass(self, frames: list[bytes], ts: int) -> PassOutput:
        """One pass."""
        return batch_pass(self.engine, self.devices, frames, ts)


class FrameRunner:
    """An engine called once per frame (``ingest_frame``, ``report``, ``to_dmi``, ``to_mqtt``).

    What the batch entry points save: a call crossing per frame.
    """

    name = "per_frame"

    def __init__(self) -> None:
        self.engine: TwinEngine = Engine()

    def build(self, devices: int, specs: list[dict[str, Any]]) -> None:
        """Adds the fleet."""
        build(self.engine, devices, specs)

    def run_pass(self, frames: list[bytes], ts: int) -> PassOutput:
        """One pass."""
        return run_pass(self.engine, frames, ts)


class SpecRunner(FrameRunner):
    """The executable specification, ``tests/reference.py``."""

    name = "spec"

    def __init__(self) -> None:
        self.engine = reference.ReferenceEngine()


class TunedRunner:
    """The tuned pure-Python baseline, ``bench/tuned.py``."""

    name = "tuned"

    def __init__(self) -> None:
        self.fleet = TunedFleet()

    def build(self, devices: int, specs: list[dict[str, Any]]) -> None:
        """Adds the fleet."""
        for d in range(devices):
            self.fleet.upsert_device(f"bench/d{d:05d}", specs)

    def run_pass(self, frames: list[bytes], ts: int) -> PassOutput:
        """One pass."""
        return self.fleet.run_pass(frames, ts, NOW_MS)


@contextmanager
def product_gc() -> Iterator[None]:
    """The product's collector policy (``twinplane.heap``) around the passes.

    What a long-lived fleet is built of is frozen out of the collections, and generation 0
    runs every ``GEN0_THRESHOLD`` allocations; restored afterwards.
    """
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(max(heap.GEN0_THRESHOLD, thresholds[0]), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def measure(
    groups: list[list[Runner]], frames: list[list[bytes]]
) -> tuple[dict[str, list[float]], list[PassSummary]]:
    """Runs the warm-up pass, then the timed passes, of each group of runners in turn.

    Within a group the passes are interleaved (pass i of every runner in turn; the order
    rotates, so no runner always follows the same one, whose garbage and cache footprint it
    would inherit). Each pass's outputs are pickled right after it (untimed) into one buffer
    each and dropped, as a product drops them once sent, so the next pass allocates from the
    same heap; they are compared (see :func:`compare`) once every pass ran. Returns each
    runner's seconds per timed pass and what each pass produced.
    """
    seconds: dict[str, list[float]] = {r.name: [] for group in groups for r in group}
    kept: list[dict[str, tuple[int, bytes, bytes]]] = [{} for _ in frames]
    with product_gc():
        for runners, (i, pass_frames) in itertools.product(groups, enumerate(frames)):
            for runner in runners[i % len(runners) :] + runners[: i % len(runners)]:
                start = time.perf_counter()
                out = runner.run_pass(pass_frames, 1000 * i)
                elapsed = time.perf_counter() - start
                dmi, mqtt = pickle.dumps(out.dmi, protocol=5), pickle.dumps(out.mqtt, protocol=5)
                kept[i][runner.name] = (out.changes, dmi, mqtt)
                del out
                if i > 0:
                    seconds[runner.name].append(elapsed)
    summaries = []
    for i, by_runner in enumerate(kept):
        outputs = {
            name: PassOutput(changes, pickle.loads(dmi), pickle.loads(mqtt))  # noqa: S301 - ours
            for name, (changes, dmi, mqtt) in by_runner.items()
        }
        compare(i, outputs)
        engine = outputs["engine"]
        dmi_bytes = sum(len(b) for _, b in engine.dmi)
        summaries.append(PassSummary(engine.changes, len(engine.mqtt), dmi_bytes))
    return seconds, summaries


@dataclass(frozen=True)
class PassSummary:
    """What the engine's pass produced."""

    changes: int
    mqtt_messages: int
    dmi_bytes: int


def ordered(value: Any) -> Any:  # noqa: ANN401 - any JSON value
    """A JSON value with every object as its list of (key, value) pairs (key order compared)."""
    if isinstance(value, dict):
        return [(k, ordered(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [ordered(v) for v in value]
    return value


def dmi_view(dmi: list[tuple[str, bytes]]) -> list[tuple[Any, ...]]:
    """DMI requests decoded back by protobuf: what a device manager reads of them."""

    def side(t: Any, name: str) -> tuple[Any, ...]:  # noqa: ANN401 - a protobuf message
        prop = getattr(t, name)
        return (t.HasField(name), prop.value, sorted(prop.metadata.items()))

    out = []
    for device, payload in dmi:
        req = api_pb2.ReportDeviceStatusRequest.FromString(payload)
        twins = [
            (t.propertyName, side(t, "observedDesired"), side(t, "reported"))
            for t in req.reportedDevice.twins
        ]
        out.append((device, req.deviceName, req.deviceNamespace, twins))
    return out


def mqtt_view(mqtt: list[tuple[str, bytes]], where: str) -> list[tuple[str, Any]]:
    """MQTT messages as topic and JSON body without the event id (each a fresh UUID)."""
    out, ids = [], set()
    for topic, payload in mqtt:
        body = json.loads(payload)
        event_id = body.pop("event_id", None)
        if not isinstance(event_id, str) or not UUID.fullmatch(event_id) or event_id in ids:
            raise SystemExit(f"{where}: bad or repeated event_id {event_id!r} on {topic}")
        ids.add(event_id)
        out.append((topic, ordered(body)))
    return out


def first_difference(a: list[Any], b: list[Any]) -> str:
    """The first entry where two output lists differ, both versions."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"entry {i}:\n  {x!r}\n  {y!r}"
    return f"lengths {len(a)} and {len(b)}"


def compare(i: int, outputs: dict[str, PassOutput]) -> None:
    """Stops the bench when any implementation's outputs of pass ``i`` differ from the engine's."""
    where = f"pass {i} ({'warm-up' if i == 0 else 'timed'})"
    mine = outputs["engine"]
    views = (dmi_view(mine.dmi), mqtt_view(mine.mqtt, where))
    for name, theirs in outputs.items():
        if name == "engine":
            continue
        if mine.changes != theirs.changes:
            raise SystemExit(f"{where}: engine {mine.changes} changes, {name} {theirs.changes}")
        for what, a, b in (
            ("DMI", views[0], dmi_view(theirs.dmi)),
            ("MQTT", views[1], mqtt_view(theirs.mqtt, where)),
        ):
            if a != b:
                diff = first_difference(a, b)
                raise SystemExit(f"{where}: {what} of engine and {name} differ, {diff}")


def proc_status(field: str) -> int:
    """A size field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def malloc_trimmer() -> Callable[[], object] | None:
    """The C library's ``malloc_trim(0)``, or None when that library is not glibc."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library this interpreter runs on
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


def reset_peak() -> bool:
    """Resets ``VmHWM`` to the current ``VmRSS``; False when the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class MemoryProbe:
    """Resident memory of this process relative to a baseline, settled and at its peak."""

    def __init__(self) -> None:
        self.trim = malloc_trimmer()
        self.baseline = self.settled()
        self.hwm = reset_peak()
        self.sampled = self.baseline

    def restart_peak(self) -> None:
        """Starts a new peak window at the settled ``VmRSS``."""
        self.sampled = self.settled()
        self.hwm = reset_peak()

    def settled(self) -> int:
        """``VmRSS`` once garbage is collected and malloc has returned its free memory."""
        gc.collect()
        if self.trim is not None:
            self.trim()
        return proc_status("VmRSS")

    def sample(self) -> None:
        """Records ``VmRSS`` now (the peak where ``VmHWM`` cannot be reset)."""
        self.sampled = max(self.sampled, proc_status("VmRSS"))

    def growth(self) -> int:
        """Settled growth over the baseline."""
        return self.settled() - self.baseline

    def peak_growth(self) -> int:
        """Peak growth over the baseline since the probe was made or its peak restarted."""
        peak = max(self.sampled, proc_status("VmHWM") if self.hwm else 0)
        return peak - self.baseline


def probed_pass(engine: Engine, frames: list[bytes], ts: int, probe: MemoryProbe) -> None:
    """:func:`batch_pass`, sampling ``VmRSS`` after each step while its outputs are alive."""
    engine.ingest_frames(list(range(len(frames))), frames, ts)
    probe.sample()
    report = engine.report_encoded(NOW_MS)
    probe.sample()
    del report  # the pass's outputs: not the engine's state


def memory_child(devices: int, properties: int, passes: int, changed: float, seed: int) -> None:
    """In a fresh process: the engine's settled and peak memory per property (see the top)."""
    specs, layout = model_specs(properties)
    frames = make_frames(devices, layout, passes, changed, seed)  # alive to the end: baseline
    probe = MemoryProbe()
    engine = Engine()
    build(engine, devices, specs)
    probe.sample()
    built = probe.growth()
    probed_pass(engine, frames[0], 0, probe)  # the warm-up: every value new, all encoded
    warm_up_peak = probe.peak_growth()
    probe.restart_peak()
    for i, pass_frames in enumerate(frames[1:], start=1):
        probed_pass(engine, pass_frames, 1000 * i, probe)
    timed_peak = probe.peak_growth()
    peak = max(warm_up_peak, timed_peak)
    settled = probe.growth()
    n = devices * properties
    print(
        json.dumps(
            {
                "rss_growth": settled,
                "peak_rss_growth": peak,
                "bytes_per_property": settled / n,
                "peak_bytes_per_property": peak / n,
                "peak_bytes_per_property_timed": timed_peak / n,
                "bytes_per_property_built": built / n,
                "malloc_trim": probe.trim is not None,
                "peak_source": "VmHWM" if probe.hwm else "VmRSS samples",
            }
        )
    )


def engine_memory(
    devices: int, properties: int, passes: int, changed: float, seed: int
) -> dict[str, Any]:
    """Runs :func:`memory_child` in a fresh interpreter."""
    args = [sys.executable, __file__, "--memory-child", "--devices", str(devices)]
    args += ["--properties", str(properties), "--passes", str(passes)]
    args += ["--changed", str(changed), "--seed", str(seed)]
    out = subprocess.run(args, check=True, capture_output=True, text=True)  # noqa: S603
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def main() -> None:
    """Runs the benchmark and prints a table (or, with --json, one JSON object)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--properties", type=int, default=10, help="per device")
    parser.add_argument("--passes", type=int, default=5, help="timed passes after the warm-up")
    parser.add_argument("--changed", type=float, default=0.05, help="fraction changed per pass")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.devices, args.properties, args.passes, args.changed, args.seed)
        return

    specs, layout = model_specs(args.properties)
    frames = make_frames(args.devices, layout, args.passes, args.changed, args.seed)
    total = args.devices * args.properties

    # The specification runs apart: a pass of it churns the heap as the others' whole run.
    groups: list[list[Runner]] = [[EngineRunner(), TunedRunner(), FrameRunner()], [SpecRunner()]]
    for runner in itertools.chain(*groups):
        runner.build(args.devices, specs)
    seconds, summaries = measure(groups, frames)
    del groups
    gc.collect()
    memory = engine_memory(args.devices, args.properties, args.passes, args.changed, args.seed)

    names = ("engine", "tuned", "per_frame", "spec")
    engine_s, tuned_s, frame_s, spec_s = (statistics.median(seconds[n]) for n in names)
    result = {
        "engine_props_per_s": total / engine_s,
        "tuned_props_per_s": total / tuned_s,
        "engine_per_frame_props_per_s": total / frame_s,
        "reference_props_per_s": total / spec_s,
        "ratio_vs_tuned": tuned_s / engine_s,
        "ratio": spec_s / engine_s,
        "bytes_per_property": memory["bytes_per_property"],
        "peak_bytes_per_property": memory["peak_bytes_per_property"],
        "peak_bytes_per_property_timed": memory["peak_bytes_per_property_timed"],
        "devices": args.devices,
        "properties_per_device": args.properties,
        "properties": total,
        "changed_fraction": args.changed,
        "passes": args.passes,
        "changes_per_pass": sum(p.changes for p in summaries[1:]) / args.passes,
        "mqtt_messages_per_pass": sum(p.mqtt_messages for p in summaries[1:]) / args.passes,
        "dmi_bytes_per_pass": sum(p.dmi_bytes for p in summaries[1:]) / args.passes,
        "engine_pass_s": engine_s,
        "tuned_pass_s": tuned_s,
        "engine_per_frame_pass_s": frame_s,
        "reference_pass_s": spec_s,
        "pass_s": seconds,
        "outputs_compared": True,
        "engine_rss_growth_bytes": memory["rss_growth"],
        "engine_peak_rss_growth_bytes": memory["peak_rss_growth"],
        "bytes_per_property_built": memory["bytes_per_property_built"],
        "malloc_trim": memory["malloc_trim"],
        "peak_source": memory["peak_source"],
        "targets": {
            "ratio_vs_tuned": TUNED_TARGET,
            "engine_props_per_s": RATE_TARGET,
            "ratio": RATIO_TARGET,
            "bytes_per_property": BYTES_TARGET,
        },
    }
    result["meets_targets"] = (
        result["ratio_vs_tuned"] >= TUNED_TARGET
        and result["engine_props_per_s"] >= RATE_TARGET
        and result["ratio"] >= RATIO_TARGET
        and result["bytes_per_property"] <= BYTES_TARGET
    )
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)


def print_table(r: dict[str, Any]) -> None:
    """The results as a readable table."""

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    print(
        f"twin engine: {r['devices']:,} devices x {r['properties_per_device']} properties "
        f"({r['properties']:,}), {r['changed_fraction']:.0%} changed per pass, "
        f"{r['passes']} timed passes after a warm-up, interleaved; the median pass"
    )
    print(
        f"per pass: {r['changes_per_pass']:,.0f} changes, {r['mqtt_messages_per_pass']:,.0f} "
        f"MQTT messages, {r['dmi_bytes_per_pass'] / 1e3:,.0f} kB of DMI requests; outputs of "
        "all compared (DMI decoded, MQTT bodies without event ids): equal"
    )
    print()
    tuned, spec = r["ratio_vs_tuned"], r["ratio"]
    frame = r["tuned_pass_s"] / r["engine_per_frame_pass_s"]
    rows = [
        ("", "engine", "tuned Python", "engine/frame", "spec", "target"),
        (
            "seconds per pass",
            f"{r['engine_pass_s']:.4f}",
            f"{r['tuned_pass_s']:.4f}",
            f"{r['engine_per_frame_pass_s']:.4f}",
            f"{r['reference_pass_s']:.3f}",
            "",
        ),
        (
            "properties per second",
            f"{r['engine_props_per_s']:,.0f}",
            f"{r['tuned_props_per_s']:,.0f}",
            f"{r['engine_per_frame_props_per_s']:,.0f}",
            f"{r['reference_props_per_s']:,.0f}",
            f">= {RATE_TARGET / 1e6:.0f} M  {verdict(r['engine_props_per_s'] >= RATE_TARGET)}",
        ),
        (
            "x the tuned baseline",
            f"{tuned:.1f}x",
            "1x",
            f"{frame:.1f}x",
            f"{tuned / spec:.2f}x",
            f">= {TUNED_TARGET:.0f}x  {verdict(tuned >= TUNED_TARGET)}",
        ),
        (
            "x the spec",
            f"{spec:.1f}x",
            "",
            "",
            "1x",
            f">= {RATIO_TARGET:.0f}x  {verdict(spec >= RATIO_TARGET)}",
        ),
        (
            "resident bytes per property",
            f"{r['bytes_per_property']:.0f}",
            "",
            "",
            "",
            f"<= {BYTES_TARGET:.0f}  {verdict(r['bytes_per_property'] <= BYTES_TARGET)}",
        ),
        ("  of it: the devices alone", f"{r['bytes_per_property_built']:.0f}", "", "", "", ""),
        ("peak bytes per property", f"{r['peak_bytes_per_property']:.0f}", "", "", "", ""),
        ("  in a timed pass", f"{r['peak_bytes_per_property_timed']:.0f}", "", "", "", ""),
    ]
    for row in rows:
        print(f"{row[0]:<28}{row[1]:>12}{row[2]:>14}{row[3]:>14}{row[4]:>10}   {row[5]}")
    trim = "gc.collect() + glibc malloc_trim(0)" if r["malloc_trim"] else "gc.collect() only"
    print()
    print("engine: ingest_frames + report_encoded (one call in, one out); engine/frame: the same")
    print("  engine called per frame (ingest_frame, report, to_dmi, to_mqtt)")
    print("baseline: tuned = bench/tuned.py (pure Python: struct, bytes/tuple diff, upb protobuf,")
    print("  msgspec); spec = tests/reference.py, the correctness oracle")
    print("memory: a fresh process, growth over its RSS with the input frames built;")
    print(
        f"  resident: after the warm-up and {r['passes']} passes, their outputs dropped, {trim}"
        + ("" if r["malloc_trim"] else " (malloc_trim skipped: not glibc)")
    )
    print(
        f"  peak: {r['peak_source']} while creating the devices and running the passes (the "
        "warm-up encodes every value), encoding buffers included"
    )


if __name__ == "__main__":
    main()
