"""Alarm rules' cost: the edge engine's pass over a fleet with a rule on every property vs none.

The fleet is ``--devices`` devices x ``--properties`` DOUBLE properties (default 10,000 x 10).
Two edge engines are built in the same process from the same specs, one with an ``above`` rule
(hysteresis 1, raiseAfter 3) on every property and one without: the baseline is the same engine
pass without rules. A pass applies one DMI ``ReportDeviceStatusRequest`` per device (every
property a new value, encoded once up front by a mapper engine), as the edge's device manager
does for each report (``Engine.apply_dmi_report``). The values ramp across the threshold, so
rules raise and clear during the run. Passes alternate between the two engines; the median pass
of each is compared.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

from twinplane.twin import Engine, PropertySpec


def specs(properties: int, *, rules: bool) -> list[PropertySpec]:
    """The fleet's property specs, with or without one rule per property."""
    out: list[PropertySpec] = []
    for i in range(properties):
        spec: PropertySpec = {"name": f"p{i}", "type": "DOUBLE"}
        if rules:
            spec["alarms"] = [
                {
                    "name": f"p{i}-hot",
                    "condition": "above",
                    "threshold": 50.0,
                    "hysteresis": 1.0,
                    "raise_after": 3,
                }
            ]
        out.append(spec)
    return out


def payloads(devices: int, properties: int, rounds: int) -> list[list[bytes]]:
    """Per round, one DMI report per device; the values of round r ramp over 0..100."""
    mapper = Engine()
    for d in range(devices):
        mapper.upsert_device(f"default/d{d}", specs(properties, rules=False))
    out = []
    for r in range(rounds):
        value = str(float((r * 17) % 100))
        per: list[bytes] = []
        for d in range(devices):
            vals = [(f"p{i}", value, 1000 + r) for i in range(properties)]
            per.extend(b for _, b in mapper.apply_reported(f"default/d{d}", vals).to_dmi())
        out.append(per)
    return out


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Times alternating passes of both engines; the medians and the overhead."""
    engines = {}
    for name, rules in (("without_rules", False), ("with_rules", True)):
        e = Engine()
        for d in range(args.devices):
            e.upsert_device(f"default/d{d}", specs(args.properties, rules=rules))
        engines[name] = e
    reqs = payloads(args.devices, args.properties, args.rounds)
    times: dict[str, list[float]] = {k: [] for k in engines}
    transitions = 0
    for p in range(args.passes):
        batch = reqs[p % len(reqs)]
        order = list(engines.items()) if p % 2 == 0 else list(engines.items())[::-1]
        for name, e in order:
            t0 = time.perf_counter()
            for b in batch:
                changes = e.apply_dmi_report(b, 2000)
            times[name].append(time.perf_counter() - t0)
            if name == "with_rules":
                # Outside the timing: the last device's transitions, to show rules fire.
                transitions += len(changes.alarms())
    base = statistics.median(times["without_rules"])
    with_rules = statistics.median(times["with_rules"])
    return {
        "devices": args.devices,
        "properties": args.properties,
        "passes": args.passes,
        "pass_without_rules_ms": round(base * 1000, 2),
        "pass_with_rules_ms": round(with_rules * 1000, 2),
        "alarm_rules_overhead_pct": round((with_rules - base) / base * 100, 2),
        "target_overhead_pct": 10,
        "last_device_transitions": transitions,
    }


def main() -> None:
    """Command line: prints a table, or one JSON object with ``--json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--properties", type=int, default=10)
    parser.add_argument("--passes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=6, help="distinct value rounds")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    r = measure(args)
    if args.json:
        json.dump(r, sys.stdout)
        print()
        return
    print(f"{'fleet':<28}{r['devices']:,} devices x {r['properties']} properties")
    print(f"{'pass without rules (ms)':<28}{r['pass_without_rules_ms']:>10}")
    print(f"{'pass with a rule each (ms)':<28}{r['pass_with_rules_ms']:>10}")
    print(f"{'alarm_rules_overhead_pct':<28}{r['alarm_rules_overhead_pct']:>10}  (target < 10)")


if __name__ == "__main__":
    main()
