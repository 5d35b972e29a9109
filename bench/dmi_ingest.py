"""DMI ingest benchmark: twin updates per second through ``ReportDeviceStatus``.

Runs, in one go and over the same kind of Unix socket:

* the **ceiling**: an empty ``grpc.aio`` unary handler in a server process of its own — the most
  calls per second this machine's gRPC stack can carry one-at-a-time per device;
* **twinplane's device manager** (a real ``EdgeApp``: engine, SQLite persistence, event hub) in
  its own process, fed by the same client with 1, 10 and 100 twins per call;
* the **fast path** (``twinplane.v1.TwinStream``) of the same device manager process: one stream,
  each message a batch of one request per device (the same 100-twin requests), ``--window``
  batches unacked at a time.

The client keeps ``--devices`` calls in flight (one per device, as mappers do); every call carries
new values, so every twin is a real change that is applied, versioned and persisted. Requests are
serialized once up front, so the client's cost per call is the same in every run.

Beside each run's rate: the device manager's CPU per call and per twin (its process CPU time
over the run, all threads), and how many twin rows it persisted against the twin changes it
applied in memory (a row is written once per flush however often its twin changed meanwhile, so
fewer rows than changes is the flusher coalescing, not a loss).

Targets (issue 3): >= 100,000 updates/s batched; single-twin calls >= 80 % of the ceiling.
Every stream ack is checked: all of a batch's reports applied.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import multiprocessing as mp
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc

from twinplane.dmi.v1beta1 import api_pb2
from twinplane.stream.v1 import stream_pb2

METHOD = "/v1beta1.DeviceManagerService/ReportDeviceStatus"
STREAM_METHOD = "/twinplane.v1.TwinStream/Report"
EMPTY_METHOD = "/bench.Empty/Call"


def manifests(devices: int, properties: int) -> str:
    """A model with ``properties`` INT properties and ``devices`` devices of it."""
    props = "\n".join(
        f"  - {{name: p{i}, type: INT, accessMode: ReadOnly}}" for i in range(properties)
    )
    docs = [
        "apiVersion: devices.kubeedge.io/v1beta1\nkind: DeviceModel\n"
        f"metadata: {{name: bench-model, namespace: default}}\nspec:\n  protocol: bench\n"
        f"  properties:\n{props}\n"
    ]
    dev_props = "\n".join(
        f"  - {{name: p{i}, visitors: {{protocolName: bench, configData: {{}}}}}}"
        for i in range(properties)
    )
    docs.extend(
        "apiVersion: devices.kubeedge.io/v1beta1\nkind: Device\n"
        f"metadata: {{name: dev{d}, namespace: default}}\nspec:\n"
        "  deviceModelRef: {name: bench-model}\n  protocol: {protocolName: bench}\n"
        f"  properties:\n{dev_props}\n"
        for d in range(devices)
    )
    return "---\n".join(docs)


def _serve_edge(home: str, text: str, conn: Connection) -> None:
    """Child process: a real device manager with the bench manifests applied."""
    from twinplane.edge.app import EdgeApp, EdgeConfig  # noqa: PLC0415 - in the child

    async def main() -> None:
        app = EdgeApp(EdgeConfig(home=Path(home), rest_addr="127.0.0.1:0", dmi_rate=0))
        await app.start()
        if app.core is None:
            raise RuntimeError("device manager did not start")
        await app.core.apply(text, source="bench")
        conn.send(str(app.config.socket_path))
        loop = asyncio.get_running_loop()
        while True:  # "snapshot" answers the counters and CPU so far; "stop" them at the end
            command = await loop.run_in_executor(None, conn.recv)
            if command == "stop":
                break
            await app.core.persist()  # what was applied so far is persisted before counting
            conn.send(_snapshot(app.core.counters))
        await app.stop()
        conn.send(_snapshot(app.core.counters))

    _run(main)


def _snapshot(counters: object) -> dict[str, Any]:
    """The device manager's counters and this process's CPU seconds (every thread)."""
    return {**dataclasses.asdict(counters), "cpu_s": time.process_time()}  # type: ignore[call-overload]


def _serve_empty(sock: str, conn: Connection) -> None:
    """Child process: the ceiling — an empty unary handler, same server options."""

    async def main() -> None:
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 4 << 20)])

        async def call(request: bytes, context: object) -> bytes:
            return b""

        handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(call)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("bench.Empty", {"Call": handler}),)
        )
        server.add_insecure_port(f"unix:{sock}")
        await server.start()
        conn.send(sock)
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        conn.send({})
        await server.stop(0.5)

    _run(main)


def _run(main: Callable[[], Any]) -> None:
    try:
        import uvloop  # noqa: PLC0415

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


def requests(devices: int, twins: int, rounds: int) -> list[list[bytes]]:
    """Serialized requests: per device, ``rounds`` requests with ever-changing values."""
    out = []
    for d in range(devices):
        per = []
        for r in range(rounds):
            req = api_pb2.ReportDeviceStatusRequest(deviceName=f"dev{d}", deviceNamespace="default")
            for i in range(twins):
                t = req.reportedDevice.twins.add(propertyName=f"p{i}")
                t.reported.value = str(r * 1000 + i)
                t.reported.metadata["timestamp"] = str(1_700_000_000_000 + r)
                t.observedDesired.SetInParent()
            per.append(req.SerializeToString())
        out.append(per)
    return out


async def load(sock: str, method: str, reqs: list[list[bytes]], seconds: float) -> float:
    """Calls per second with one call in flight per device, for ``seconds``."""
    async with grpc.aio.insecure_channel(f"unix:{sock}") as channel:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
        await call(reqs[0][0], timeout=5)  # warm the connection
        done = 0
        deadline = time.perf_counter() + seconds

        async def worker(per: list[bytes]) -> None:
            nonlocal done
            i = 0
            while time.perf_counter() < deadline:
                await call(per[i % len(per)], timeout=10)
                i += 1
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker(per) for per in reqs))
        return done / (time.perf_counter() - start)


async def load_stream(sock: str, reqs: list[list[bytes]], seconds: float, window: int) -> float:
    """Batches per second on one ``TwinStream.Report`` stream, ``window`` batches unacked.

    Each batch holds round ``r``'s request of every device. Its body is serialized once up front
    and the ``seq`` field prepended per message (concatenated protobuf messages merge), so the
    client's cost per batch is constant, as in the unary runs.
    """
    rounds = len(reqs[0])
    bodies = [
        stream_pb2.ReportBatch(reports=[per[r] for per in reqs]).SerializeToString()
        for r in range(rounds)
    ]
    expected = len(reqs)
    async with grpc.aio.insecure_channel(f"unix:{sock}") as channel:
        call: grpc.aio.StreamStreamCall[bytes, bytes] = channel.stream_stream(STREAM_METHOD)()
        slots = asyncio.Semaphore(window)
        acked = 0
        bad = 0

        async def read() -> None:
            nonlocal acked, bad
            while True:
                raw = await call.read()
                if raw is grpc.aio.EOF:
                    return
                assert isinstance(raw, bytes)  # noqa: S101 - no deserializer: raw bytes
                ack = stream_pb2.ReportAck.FromString(raw)
                if ack.applied != expected or ack.errors:
                    bad += 1
                acked += 1
                slots.release()

        reader = asyncio.create_task(read())
        seq = 0
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            await slots.acquire()
            seq += 1
            head = stream_pb2.ReportBatch(seq=seq).SerializeToString()
            await call.write(head + bodies[seq % rounds])
        await call.done_writing()
        await asyncio.wait_for(reader, 30)
        elapsed = time.perf_counter() - start
        if bad or acked != seq:
            raise RuntimeError(f"stream: {bad} bad acks, {acked}/{seq} batches acked")
        return acked / elapsed


def _start(
    target: Callable[..., None], *args: object
) -> tuple[mp.process.BaseProcess, Connection, str]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(*args, child), daemon=True)
    proc.start()
    if not parent.poll(120):
        proc.kill()
        raise RuntimeError(f"{target.__name__} did not start")
    return proc, parent, parent.recv()


def _snap(conn: Connection) -> dict[str, Any]:
    conn.send("snapshot")
    if not conn.poll(30):
        raise RuntimeError("the device manager did not answer a snapshot")
    snap: dict[str, Any] = conn.recv()
    return snap


@dataclasses.dataclass(frozen=True, slots=True)
class EdgeCost:
    """What one run cost the device manager, from its counters and CPU time."""

    calls: int
    twins: int
    persisted: int
    cpu_s: float

    @classmethod
    def between(cls, before: dict[str, Any], after: dict[str, Any], twins: int) -> EdgeCost:
        """The cost of a run of calls carrying ``twins`` twins each."""
        calls = after["dmi_reports"] - before["dmi_reports"]
        return cls(
            calls=calls,
            twins=after["dmi_twins_changed"] - before["dmi_twins_changed"],
            persisted=after["twins_persisted"] - before["twins_persisted"],
            cpu_s=after["cpu_s"] - before["cpu_s"],
        )

    def as_dict(self) -> dict[str, Any]:
        """The figures, with CPU per call and per twin in microseconds."""
        return {
            "calls": self.calls,
            "twins_applied": self.twins,
            "twin_rows_persisted": self.persisted,
            "persisted_per_applied": round(self.persisted / self.twins, 3) if self.twins else 0,
            "edge_cpu_s": round(self.cpu_s, 3),
            "edge_cpu_us_per_call": round(1e6 * self.cpu_s / self.calls, 1) if self.calls else 0,
            "edge_cpu_us_per_twin": round(1e6 * self.cpu_s / self.twins, 2) if self.twins else 0,
        }


def _finish(proc: mp.process.BaseProcess, conn: Connection) -> dict[str, Any]:
    conn.send("stop")
    stats: dict[str, Any] = conn.recv() if conn.poll(30) else {}
    proc.join(30)
    return stats


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Runs the ceiling and the three batch sizes; returns the figures."""
    rounds = 50
    with tempfile.TemporaryDirectory(prefix="twinplane-bench-") as tmp:
        proc, conn, sock = _start(_serve_empty, str(Path(tmp) / "empty.sock"))
        single = requests(args.devices, 1, rounds)
        ceiling = asyncio.run(load(sock, EMPTY_METHOD, single, args.seconds))
        _finish(proc, conn)

        proc, conn, sock = _start(
            _serve_edge, str(Path(tmp) / "edge"), manifests(args.devices, 100)
        )
        rates = {}
        costs: dict[str, EdgeCost] = {}
        for twins in (1, 10, 100):
            reqs = single if twins == 1 else requests(args.devices, twins, rounds)
            before = _snap(conn)
            rates[twins] = asyncio.run(load(sock, METHOD, reqs, args.seconds))
            costs[str(twins)] = EdgeCost.between(before, _snap(conn), twins)
            if twins == args.stream_twins:
                stream_reqs = reqs
        if args.stream_twins not in rates:
            stream_reqs = requests(args.devices, args.stream_twins, rounds)
        before = _snap(conn)
        batches = asyncio.run(load_stream(sock, stream_reqs, args.seconds, args.window))
        costs["stream"] = EdgeCost.between(before, _snap(conn), args.stream_twins)
        counters = _finish(proc, conn)
    return {
        "devices": args.devices,
        "seconds_per_run": args.seconds,
        "empty_call_ceiling_per_s": round(ceiling),
        "calls_per_s_single": round(rates[1]),
        "single_vs_ceiling": round(rates[1] / ceiling, 3),
        "calls_per_s_10": round(rates[10]),
        "updates_per_s_10": round(rates[10] * 10),
        "calls_per_s_batched": round(rates[100]),
        "updates_per_s_batched": round(rates[100] * 100),
        "stream_twins": args.stream_twins,
        "stream_window": args.window,
        "batches_per_s_stream": round(batches, 1),
        "reports_per_s_stream": round(batches * args.devices),
        "updates_per_s_stream": round(batches * args.devices * args.stream_twins),
        "edge_counters": counters,
        "edge_cost": {run: cost.as_dict() for run, cost in costs.items()},
        "targets": {
            "updates_per_s_batched": ">= 100000",
            "updates_per_s_stream": ">= 100000",
            "single_vs_ceiling": ">= 0.8",
        },
    }


def main() -> None:
    """Command line: prints a table, or one JSON object with ``--json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--devices", type=int, default=100, help="concurrent devices (calls in flight)"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each run")
    parser.add_argument(
        "--stream-twins", type=int, default=100, help="twins per report in the TwinStream run"
    )
    parser.add_argument("--window", type=int, default=4, help="unacked TwinStream batches")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    r = measure(args)
    if args.json:
        json.dump(r, sys.stdout)
        sys.stdout.write("\n")
        return
    print(
        f"DMI ingest over a Unix socket, {r['devices']} devices in flight, "
        f"{args.seconds:g} s per run"
    )
    head = ("run", "calls/s", "updates/s", "µs/call", "µs/twin", "rows/twins")
    print(f"{head[0]:<34}{head[1]:>10}{head[2]:>12}{head[3]:>10}{head[4]:>9}{head[5]:>11}")
    print(f"{'empty grpc.aio call (ceiling)':<34}{r['empty_call_ceiling_per_s']:>10}{'-':>12}")
    cost = r["edge_cost"]
    rows = [
        ("ReportDeviceStatus, 1 twin", r["calls_per_s_single"], r["calls_per_s_single"], "1"),
        ("ReportDeviceStatus, 10 twins", r["calls_per_s_10"], r["updates_per_s_10"], "10"),
        (
            "ReportDeviceStatus, 100 twins",
            r["calls_per_s_batched"],
            r["updates_per_s_batched"],
            "100",
        ),
        (
            f"TwinStream, {r['devices']} dev x {r['stream_twins']} twins",
            r["reports_per_s_stream"],
            r["updates_per_s_stream"],
            "stream",
        ),
    ]
    for name, calls, updates, run in rows:
        c = cost[run]
        print(
            f"{name:<34}{calls:>10}{updates:>12}{c['edge_cpu_us_per_call']:>10.1f}"
            f"{c['edge_cpu_us_per_twin']:>9.2f}{c['persisted_per_applied']:>11.3f}"
        )
    print(
        f"  (reports/s in the calls column; {r['batches_per_s_stream']:g} batches/s, "
        f"{r['stream_window']} unacked)"
    )
    print(
        "µs/call, µs/twin: the device manager's CPU time over the run per call (per stream report)"
        " and per twin applied; rows/twins: twin rows persisted per twin change applied (the "
        "flusher writes a twin once per flush however often it changed)"
    )
    print(
        f"single / ceiling = {r['single_vs_ceiling']:.2f} (target >= 0.80); "
        f"batched = {r['updates_per_s_batched']} updates/s (target >= 100000)"
    )


if __name__ == "__main__":
    main()
