"""Twin engine benchmark: the Rust engine against the pure-Python reference, same inputs.

A pass is what a mapper does every cycle for its whole fleet: for each of ``--devices`` devices,
one coalesced holding-register frame covering its ``--properties`` properties of mixed data types
goes in (``ingest_frame``), one ``report`` turns the samples into twin changes, and the changes
go out as KubeEdge MQTT payloads and DMI ``ReportDeviceStatusRequest`` bytes. About 5 % of the
values change from one pass to the next. Both engines get the same frames, after a warm-up pass
(which reports every value as new), and must produce the same changes.

Also measured, in a fresh subprocess (so nothing of the reference is counted), the engine's
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

Targets (issue 2): engine/reference ratio >= 30, <= 150 resident bytes per property.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import platform
import random
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import reference  # tests/reference.py, the pure-Python reference engine
from twinplane.twin import Engine

RATIO_TARGET = 30.0
BYTES_TARGET = 150.0
NOW_MS = 1_700_000_000_000

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
    """What a pass needs of an engine (both engines have it)."""

    def upsert_device(self, device_id: str, properties: Any) -> int:  # noqa: ANN401
        """Adds a device."""

    def ingest_frame(self, device: int, register: Any, start: int, frame: bytes, ts_ms: int) -> int:  # noqa: ANN401
        """Queues a frame's samples."""

    def report(self) -> Any:  # noqa: ANN401
        """Reports the changes."""


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


def run_pass(engine: TwinEngine, frames: list[bytes], ts: int) -> tuple[int, int, int]:
    """One pass: every frame in, one report, the changes out as MQTT and DMI.

    Returns the number of changes, of MQTT messages and of DMI bytes.
    """
    for device, frame in enumerate(frames):
        engine.ingest_frame(device, "HoldingRegister", 0, frame, ts)
    changes = engine.report()
    mqtt = changes.to_mqtt(NOW_MS)
    dmi = changes.to_dmi()
    return len(changes), len(mqtt), sum(len(b) for _, b in dmi)


def build(engine: TwinEngine, devices: int, specs: list[dict[str, Any]]) -> None:
    """Adds the fleet: ``devices`` devices of the model."""
    for d in range(devices):
        engine.upsert_device(f"bench/d{d:05d}", specs)


def measure(
    engine: TwinEngine, frames: list[list[bytes]]
) -> tuple[float, list[tuple[int, int, int]]]:
    """Runs the warm-up pass, then the timed passes.

    Returns the seconds per timed pass and what each pass produced.
    """
    produced = [run_pass(engine, frames[0], 0)]
    gc.collect()
    start = time.perf_counter()
    for i, pass_frames in enumerate(frames[1:], start=1):
        produced.append(run_pass(engine, pass_frames, 1000 * i))
    elapsed = time.perf_counter() - start
    return elapsed / (len(frames) - 1), produced


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


def probed_pass(engine: TwinEngine, frames: list[bytes], ts: int, probe: MemoryProbe) -> None:
    """:func:`run_pass`, sampling ``VmRSS`` after each step while its outputs are alive."""
    for device, frame in enumerate(frames):
        engine.ingest_frame(device, "HoldingRegister", 0, frame, ts)
    probe.sample()
    changes = engine.report()
    probe.sample()
    mqtt = changes.to_mqtt(NOW_MS)
    probe.sample()
    dmi = changes.to_dmi()
    probe.sample()
    del changes, mqtt, dmi  # the pass's outputs: not the engine's state


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
    parser.add_argument("--passes", type=int, default=3, help="timed passes after the warm-up")
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

    engine = Engine()
    build(engine, args.devices, specs)
    engine_s, engine_out = measure(engine, frames)
    del engine
    gc.collect()
    model = reference.ReferenceEngine()
    build(model, args.devices, specs)
    reference_s, reference_out = measure(model, frames)
    del model
    if [out[0] for out in engine_out] != [out[0] for out in reference_out]:
        raise SystemExit(f"engines disagree: changes {engine_out} vs {reference_out}")
    memory = engine_memory(args.devices, args.properties, args.passes, args.changed, args.seed)

    result = {
        "engine_props_per_s": total / engine_s,
        "reference_props_per_s": total / reference_s,
        "ratio": reference_s / engine_s,
        "bytes_per_property": memory["bytes_per_property"],
        "peak_bytes_per_property": memory["peak_bytes_per_property"],
        "peak_bytes_per_property_timed": memory["peak_bytes_per_property_timed"],
        "devices": args.devices,
        "properties_per_device": args.properties,
        "properties": total,
        "changed_fraction": args.changed,
        "passes": args.passes,
        "changes_per_pass": sum(out[0] for out in engine_out[1:]) / args.passes,
        "mqtt_messages_per_pass": sum(out[1] for out in engine_out[1:]) / args.passes,
        "dmi_bytes_per_pass": sum(out[2] for out in engine_out[1:]) / args.passes,
        "engine_pass_s": engine_s,
        "reference_pass_s": reference_s,
        "engine_rss_growth_bytes": memory["rss_growth"],
        "engine_peak_rss_growth_bytes": memory["peak_rss_growth"],
        "bytes_per_property_built": memory["bytes_per_property_built"],
        "malloc_trim": memory["malloc_trim"],
        "peak_source": memory["peak_source"],
        "targets": {"ratio": RATIO_TARGET, "bytes_per_property": BYTES_TARGET},
    }
    result["meets_targets"] = result["ratio"] >= RATIO_TARGET and (
        result["bytes_per_property"] <= BYTES_TARGET
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
        f"{r['passes']} timed passes after a warm-up"
    )
    print(
        f"per pass: {r['changes_per_pass']:,.0f} changes, {r['mqtt_messages_per_pass']:,.0f} "
        f"MQTT messages, {r['dmi_bytes_per_pass'] / 1e3:,.0f} kB of DMI requests"
    )
    print()
    rows = [
        ("", "engine", "reference", "target"),
        ("seconds per pass", f"{r['engine_pass_s']:.4f}", f"{r['reference_pass_s']:.3f}", ""),
        (
            "properties per second",
            f"{r['engine_props_per_s']:,.0f}",
            f"{r['reference_props_per_s']:,.0f}",
            "",
        ),
        (
            "ratio",
            f"{r['ratio']:.1f}x",
            "1x",
            f">= {RATIO_TARGET:.0f}x  {verdict(r['ratio'] >= RATIO_TARGET)}",
        ),
        (
            "resident bytes per property",
            f"{r['bytes_per_property']:.0f}",
            "",
            f"<= {BYTES_TARGET:.0f}  {verdict(r['bytes_per_property'] <= BYTES_TARGET)}",
        ),
        ("  of it: the devices alone", f"{r['bytes_per_property_built']:.0f}", "", ""),
        ("peak bytes per property", f"{r['peak_bytes_per_property']:.0f}", "", ""),
        ("  in a timed pass", f"{r['peak_bytes_per_property_timed']:.0f}", "", ""),
    ]
    for row in rows:
        print(f"{row[0]:<28}{row[1]:>16}{row[2]:>16}   {row[3]}")
    trim = "gc.collect() + glibc malloc_trim(0)" if r["malloc_trim"] else "gc.collect() only"
    print()
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
