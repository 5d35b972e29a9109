"""Method calls end to end: REST → edge → mapper → Modbus device → result, per second and latency.

Starts ``twinplane up`` (the embedded default: simulator, device manager and Modbus mapper in one
process, one event loop) as a subprocess and drives it from this process over HTTP:

- **calls**: ``POST /api/v1/namespaces/default/devices/{name}/methods/setpoint?wait=5s`` on the
  edge, each a durable call (stored in SQLite before it is answered, its outcome stored too)
  delivered to the mapper over the Methods gRPC service, written to the device's holding
  register ahead of its polls, read back and answered; ``--concurrency`` clients, each on a
  device of its own (calls to one device run one at a time, in order);
- **reference, same run**: mapper-framework's write route on the mapper
  (``GET /api/v1/devicemethod/default/{name}/setpoint/setpoint/{value}``), the same write on the
  same device without the edge, its durability or its result. It is an ablation of twinplane's
  own code (what the call path costs above a bare write), not a competitor's baseline; KubeEdge
  has no durable call to measure against.

Also runs bench/alarm_rules.py's measurement (the alarm rules' cost on the edge engine's pass),
so one ``--json`` has ``calls_per_s``, ``call_latency_p50_ms``, ``call_latency_p99_ms`` and
``alarm_rules_overhead_pct``. This machine's timings drift by ±30 % between runs: compare the
figures of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import alarm_rules

REST = re.compile(r"device manager\s+REST (http://\S+)")


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.asynccontextmanager
async def running_up(devices: int, home: Path, mapper_port: int) -> AsyncIterator[str]:
    """``twinplane up`` running; yields the edge's REST URL."""
    twinplane = Path(sys.executable).parent / "twinplane"
    proc = await asyncio.create_subprocess_exec(
        str(twinplane), "up", "--devices", str(devices), "--home", str(home),
        "--rest-addr", "127.0.0.1:0", "--mapper-port", str(mapper_port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "TERM": "dumb"},
    )  # fmt: skip
    if proc.stdout is None:
        raise RuntimeError("no pipe to twinplane up's output")
    url = ""
    try:
        async with asyncio.timeout(60):
            while not url:
                line = (await proc.stdout.readline()).decode()
                if not line:
                    raise RuntimeError("twinplane up ended before it printed its REST URL")
                found = REST.search(line)
                if found:
                    url = found.group(1)
        drain = asyncio.create_task(_drain(proc.stdout))
        yield url
        drain.cancel()
    finally:
        if proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 20)
            if proc.returncode is None:
                proc.kill()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def wait_online(http: aiohttp.ClientSession, url: str, count: int) -> None:
    """Until ``count`` devices are online on the edge."""
    async with asyncio.timeout(60):
        while True:
            async with http.get(f"{url}/api/v1/namespaces/default/devices") as answer:
                items = (await answer.json())["items"]
            online = sum(1 for i in items if (i.get("status") or {}).get("state") == "online")
            if online >= count:
                return
            await asyncio.sleep(0.5)


async def drive(
    one: Callable[[int, int], Awaitable[bool]], concurrency: int, seconds: float
) -> dict[str, Any]:
    """``concurrency`` workers calling ``one(worker, i)`` for ``seconds``; rate and latency."""
    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal failures
        i = 0
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            ok = await one(w, i)
            if ok:
                latencies.append((time.perf_counter() - t0) * 1000)
            else:
                failures += 1
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.5), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "ok": len(latencies),
        "failed": failures,
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Calls through the edge and the mapper's direct route, at each concurrency."""
    home = Path(tempfile.mkdtemp(prefix="tp-bench-calls-"))
    mapper_port = free_port()
    results: dict[str, Any] = {"devices": args.devices, "duration_s": args.duration}
    try:
        async with (
            running_up(args.devices, home, mapper_port) as url,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
        ):
            await wait_online(http, url, args.devices)
            mapper = f"http://127.0.0.1:{mapper_port}"

            async def call(w: int, i: int) -> bool:
                device = f"thermostat-{w % args.devices + 1}"
                path = f"{url}/api/v1/namespaces/default/devices/{device}/methods/setpoint"
                body = {"setpoint": 5 + (i % 30)}
                async with http.post(f"{path}?wait=5s", json=body) as answer:
                    return answer.status == 200 and (await answer.json())["state"] == "Succeeded"

            async def direct(w: int, i: int) -> bool:
                device = f"thermostat-{w % args.devices + 1}"
                value = 50 + (i % 300)  # raw register units: the route takes the stored value
                path = f"{mapper}/api/v1/devicemethod/default/{device}/setpoint/setpoint/{value}"
                async with http.get(path) as answer:
                    return answer.status == 200

            await drive(call, 1, 2.0)  # warm-up: connections, caches
            runs = []
            for concurrency in args.concurrency:
                edge = await drive(call, concurrency, args.duration)
                bare = await drive(direct, concurrency, args.duration)
                runs.append({"concurrency": concurrency, "edge_call": edge, "mapper_route": bare})
                print(
                    f"concurrency {concurrency}: calls {edge['per_s']}/s "
                    f"p50 {edge['p50_ms']} ms p99 {edge['p99_ms']} ms "
                    f"({edge['failed']} failed) | mapper route {bare['per_s']}/s "
                    f"p50 {bare['p50_ms']} ms p99 {bare['p99_ms']} ms",
                    flush=True,
                )
            results["runs"] = runs
            top = max(runs, key=lambda r: r["edge_call"]["per_s"])
            results["calls_per_s"] = top["edge_call"]["per_s"]
            results["calls_concurrency"] = top["concurrency"]
            one = next((r for r in runs if r["concurrency"] == 1), runs[0])
            results["call_latency_p50_ms"] = one["edge_call"]["p50_ms"]
            results["call_latency_p99_ms"] = one["edge_call"]["p99_ms"]
    finally:
        shutil.rmtree(home, ignore_errors=True)
    rules = alarm_rules.measure(
        argparse.Namespace(devices=10_000, properties=10, passes=20, rounds=6)
    )
    results["alarm_rules"] = rules
    results["alarm_rules_overhead_pct"] = rules["alarm_rules_overhead_pct"]
    return results


def main() -> None:
    """``python bench/calls.py [--devices N] [--duration S] [--concurrency 1 8] [--json FILE]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = parser.parse_args()
    results = asyncio.run(measure(args))
    print(
        f"calls/s {results['calls_per_s']} (concurrency {results['calls_concurrency']}), "
        f"latency p50 {results['call_latency_p50_ms']} ms p99 {results['call_latency_p99_ms']} ms "
        f"(one at a time); alarm rules +{results['alarm_rules_overhead_pct']} %"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
