"""Modbus poll benchmark: polls per second and client CPU per poll, against one simulator.

Runs, in one go and against the same simulator (``twinplane.sim.modbus`` in a process of its
own), the same request (read ``--count`` holding registers, each poll to the next unit id) with
the same concurrency (``--concurrency`` connections, one request in flight on each):

* **twinplane**: :class:`twinplane.drivers.modbus.ModbusTcpClient`, one per connection;
* **pymodbus**: ``pymodbus.client.AsyncModbusTcpClient``, one per connection;
* the **floor**: a bare ``asyncio.Protocol`` per connection that writes one pre-built request
  and counts the reply's bytes before writing it again -- the cheapest client there is;

and, as an extra row, twinplane's client **pipelined**: the same number of requests in flight
on a single connection. Each client runs ``--repeat`` times, interleaved, and the run with the
median CPU per poll is reported.

CPU is the client process's own (``time.process_time``), so the simulator's work is not in it;
the simulator's CPU per poll is reported beside it. Target (issue 4): twinplane's CPU per poll
at most half of pymodbus's.

Last, the **fleet**: every simulated device (10,000 by default, 247 unit ids per port) read once
a second, staggered over the second, one pipelined twinplane client per port; the simulator's
CPU shows whether it carries that load well under one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing as mp
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, cast

from pymodbus.client import AsyncModbusTcpClient

from twinplane.drivers.modbus import ModbusTcpClient
from twinplane.drivers.modbus.frames import READ_ADU
from twinplane.sim.modbus import ModbusSimulator

HOST = "127.0.0.1"


def _new_loop(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if kind == "uvloop":
        try:
            import uvloop  # noqa: PLC0415 - optional
        except ImportError:
            return asyncio.new_event_loop
        return uvloop.new_event_loop
    return asyncio.new_event_loop


def _serve(conn: Connection, devices: int, loop_kind: str) -> None:
    """Child process: the simulator; answers ``cpu`` with its CPU seconds, ``stop`` stops it."""

    async def serve() -> None:
        sim = ModbusSimulator(devices, host=HOST, port=0, registers=100, rate=1.0)
        async with sim:
            conn.send(sim.layout())
            loop = asyncio.get_running_loop()
            while True:
                message = await loop.run_in_executor(None, conn.recv)
                conn.send({"cpu": time.process_time(), "requests": sim.counters.requests})
                if message == "stop":
                    return

    with asyncio.Runner(loop_factory=_new_loop(loop_kind)) as runner:
        runner.run(serve())


@dataclass
class Run:
    """One client's measurement."""

    name: str
    polls: int
    seconds: float
    cpu: float
    sim_cpu: float
    errors: int

    @property
    def polls_per_s(self) -> float:
        """Polls per wall-clock second."""
        return self.polls / self.seconds

    @property
    def cpu_us_per_poll(self) -> float:
        """Client process CPU microseconds per poll."""
        return self.cpu / self.polls * 1e6

    @property
    def sim_cpu_us_per_poll(self) -> float:
        """Simulator process CPU microseconds per poll."""
        return self.sim_cpu / self.polls * 1e6


@dataclass
class Load:
    """The shared shape of every run."""

    ports: list[int]
    units: int
    count: int
    concurrency: int
    seconds: float
    warmup: float


class Counter:
    """Polls done, and whether to keep going."""

    def __init__(self) -> None:
        self.polls = 0
        self.errors = 0
        self.running = True


Worker = Callable[[Counter, int], Coroutine[Any, Any, None]]


def _sim_cpu(sim: Connection) -> float:
    sim.send("cpu")
    cpu: float = sim.recv()["cpu"]
    return cpu


async def _measure(name: str, load: Load, sim: Connection, workers: list[Worker]) -> Run:
    """Runs the workers: a warm-up, then ``seconds`` timed."""
    counter = Counter()
    tasks = [asyncio.create_task(w(counter, i)) for i, w in enumerate(workers)]
    await asyncio.sleep(load.warmup)
    sim_cpu0 = _sim_cpu(sim)
    polls0, cpu0, wall0 = counter.polls, time.process_time(), time.perf_counter()
    await asyncio.sleep(load.seconds)
    polls1, cpu1, wall1 = counter.polls, time.process_time(), time.perf_counter()
    sim_cpu1 = _sim_cpu(sim)
    counter.running = False
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
    return Run(
        name, polls1 - polls0, wall1 - wall0, cpu1 - cpu0, sim_cpu1 - sim_cpu0, counter.errors
    )


def _unit(load: Load, index: int, poll: int) -> int:
    return 1 + (index + poll * load.concurrency) % load.units


async def run_twinplane(load: Load, sim: Connection, *, pipelined: bool = False) -> Run:
    """Our client: one per connection, or one connection with every request on it."""
    port = load.ports[0]
    clients = [
        ModbusTcpClient(HOST, port, timeout=5) for _ in range(1 if pipelined else load.concurrency)
    ]
    for client in clients:
        await client.connect()

    def worker(client: ModbusTcpClient) -> Worker:
        async def run(counter: Counter, index: int) -> None:
            poll = 0
            while counter.running:
                await client.read(_unit(load, index, poll), "HoldingRegister", 0, load.count)
                counter.polls += 1
                poll += 1

        return run

    workers = [worker(clients[i % len(clients)]) for i in range(load.concurrency)]
    try:
        name = "twinplane, pipelined (1 connection)" if pipelined else "twinplane"
        return await _measure(name, load, sim, workers)
    finally:
        for client in clients:
            await client.close()


async def run_pymodbus(load: Load, sim: Connection) -> Run:
    """The pymodbus async TCP client, one per connection."""
    clients = [
        AsyncModbusTcpClient(HOST, port=load.ports[0], timeout=5, retries=0)
        for _ in range(load.concurrency)
    ]
    for client in clients:
        if not await client.connect():
            raise RuntimeError("pymodbus could not connect to the simulator")

    def worker(client: AsyncModbusTcpClient) -> Worker:
        async def run(counter: Counter, index: int) -> None:
            poll = 0
            while counter.running:
                rr = await client.read_holding_registers(
                    0, count=load.count, device_id=_unit(load, index, poll)
                )
                if rr.isError() or len(rr.registers) != load.count:
                    counter.errors += 1
                counter.polls += 1
                poll += 1

        return run

    try:
        return await _measure("pymodbus", load, sim, [worker(c) for c in clients])
    finally:
        for client in clients:
            client.close()


class _Floor(asyncio.Protocol):
    """The cheapest client: a pre-built request, the reply's bytes counted, the request again."""

    def __init__(
        self, request: bytes, reply_size: int, counter: Counter, done: asyncio.Future[None]
    ) -> None:
        self.request = request
        self.reply_size = reply_size
        self.counter = counter
        self.done = done
        self.pending = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.pending += len(data)
        while self.pending >= self.reply_size:
            self.pending -= self.reply_size
            self.counter.polls += 1
            if self.counter.running and self.transport is not None:
                self.transport.write(self.request)
            elif not self.done.done():
                self.done.set_result(None)


async def run_floor(load: Load, sim: Connection) -> Run:
    """The raw-socket floor, one connection per concurrency slot."""
    loop = asyncio.get_running_loop()
    reply_size = 9 + 2 * load.count
    transports: list[asyncio.BaseTransport] = []

    def worker(index: int) -> Worker:
        async def run(counter: Counter, _: int) -> None:
            request = READ_ADU.pack(1, 0, 6, _unit(load, index, 0), 3, 0, load.count)
            done: asyncio.Future[None] = loop.create_future()
            transport, _protocol = await loop.create_connection(
                lambda: _Floor(request, reply_size, counter, done), HOST, load.ports[0]
            )
            transports.append(transport)
            await done

        return run

    try:
        workers = [worker(i) for i in range(load.concurrency)]
        return await _measure("raw-socket floor", load, sim, workers)
    finally:
        for transport in transports:
            transport.close()


@dataclass
class Fleet:
    """Every simulated device polled once a second."""

    devices: int
    polls: int
    errors: int
    seconds: float
    cpu: float
    sim_cpu: float
    late_ticks: int


async def run_fleet(layout: list[tuple[int, int, int]], seconds: float, sim: Connection) -> Fleet:
    """Reads every device of the simulator once a second (10 holding registers).

    Reads are staggered over the second in 10 ms ticks, one pipelined client per port.
    """
    loop = asyncio.get_running_loop()
    clients = [ModbusTcpClient(HOST, port, timeout=5) for port, _, _ in layout]
    for client in clients:
        await client.connect()
    tick = 0.01
    polls = errors = late = 0
    running = True

    async def port_worker(client: ModbusTcpClient, units: list[int]) -> None:
        nonlocal polls, errors, late
        acc, at, next_t = 0.0, 0, loop.time()
        while running:
            acc += len(units) * tick
            k = int(acc)
            acc -= k
            batch = [units[(at + j) % len(units)] for j in range(k)]
            at += k
            results = await asyncio.gather(
                *(client.read(u, "HoldingRegister", 0, 10) for u in batch), return_exceptions=True
            )
            polls += len(results)
            errors += sum(1 for r in results if not isinstance(r, bytes))
            next_t += tick
            delay = next_t - loop.time()
            if delay < 0:
                late += 1
            await asyncio.sleep(max(0.0, delay))

    devices = sum(last - first + 1 for _, first, last in layout)
    tasks = [
        asyncio.create_task(port_worker(c, list(range(first, last + 1))))
        for c, (_, first, last) in zip(clients, layout, strict=True)
    ]
    await asyncio.sleep(1.0)
    sim_cpu0 = _sim_cpu(sim)
    polls0, late0, cpu0, wall0 = polls, late, time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    polls1, late1, cpu1, wall1 = polls, late, time.process_time(), time.perf_counter()
    sim_cpu1 = _sim_cpu(sim)
    running = False
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
    for client in clients:
        await client.close()
    return Fleet(
        devices,
        polls1 - polls0,
        errors,
        wall1 - wall0,
        cpu1 - cpu0,
        sim_cpu1 - sim_cpu0,
        late1 - late0,
    )


def _median(runs: list[Run]) -> Run:
    """The run with the median CPU per poll."""
    return sorted(runs, key=lambda r: r.cpu_us_per_poll)[len(runs) // 2]


def main() -> None:  # noqa: PLR0915 - one table
    """Runs the benchmark and prints a table (or, with --json, one JSON object)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=10_000, help="simulated devices")
    parser.add_argument("--count", type=int, default=10, help="holding registers per read")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per client (median)")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument(
        "--fleet-seconds", type=float, default=5.0, help="every device once a second (0: skip)"
    )
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    logging.getLogger("pymodbus").setLevel(logging.ERROR)

    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    child = ctx.Process(target=_serve, args=(there, args.devices, args.loop), daemon=True)
    child.start()
    try:
        layout: list[tuple[int, int, int]] = here.recv()
        first_port, first_unit, last_unit = layout[0]
        load = Load(
            [first_port],
            last_unit - first_unit + 1,
            args.count,
            args.concurrency,
            args.seconds,
            args.warmup,
        )

        async def all_runs() -> tuple[dict[str, list[Run]], Fleet | None]:
            runs: dict[str, list[Run]] = {"floor": [], "ours": [], "pymodbus": [], "pipe": []}
            for _ in range(args.repeat):  # interleaved, so drift hits every client alike
                runs["floor"].append(await run_floor(load, here))
                runs["ours"].append(await run_twinplane(load, here))
                runs["pymodbus"].append(await run_pymodbus(load, here))
                runs["pipe"].append(await run_twinplane(load, here, pipelined=True))
            fleet = (
                await run_fleet(layout, args.fleet_seconds, here) if args.fleet_seconds else None
            )
            return runs, fleet

        with asyncio.Runner(loop_factory=_new_loop(args.loop)) as runner:
            runs, fleet = runner.run(all_runs())
        here.send("stop")
        here.recv()
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()

    floor, ours, pymodbus, pipelined = (
        _median(runs[k]) for k in ("floor", "ours", "pymodbus", "pipe")
    )
    ratio = ours.cpu_us_per_poll / pymodbus.cpu_us_per_poll
    errors = sum(r.errors for rs in runs.values() for r in rs)
    result: dict[str, Any] = {
        "polls_per_s": round(ours.polls_per_s),
        "cpu_us_per_poll": round(ours.cpu_us_per_poll, 2),
        "pymodbus_polls_per_s": round(pymodbus.polls_per_s),
        "pymodbus_cpu_us_per_poll": round(pymodbus.cpu_us_per_poll, 2),
        "floor_polls_per_s": round(floor.polls_per_s),
        "floor_cpu_us_per_poll": round(floor.cpu_us_per_poll, 2),
        "pipelined_polls_per_s": round(pipelined.polls_per_s),
        "pipelined_cpu_us_per_poll": round(pipelined.cpu_us_per_poll, 2),
        "sim_cpu_us_per_poll": round(ours.sim_cpu_us_per_poll, 2),
        "ratio": round(ratio, 3),
        "ratio_vs_floor": round(ours.cpu_us_per_poll / floor.cpu_us_per_poll, 3),
        "target_met": ratio <= 0.5,
        "errors": errors,
        "concurrency": args.concurrency,
        "count": args.count,
        "loop": args.loop,
    }
    if fleet is not None:
        result |= {
            "fleet_devices": fleet.devices,
            "fleet_polls_per_s": round(fleet.polls / fleet.seconds),
            "fleet_sim_cpu_cores": round(fleet.sim_cpu / fleet.seconds, 3),
            "fleet_client_cpu_cores": round(fleet.cpu / fleet.seconds, 3),
            "fleet_errors": fleet.errors,
            "fleet_late_ticks": fleet.late_ticks,
        }
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"Modbus TCP poll: read {args.count} holding registers, {args.concurrency} in flight, "
        f"median of {args.repeat} runs of {args.seconds:g} s per client, {args.loop}, "
        "simulator in its own process\n"
    )
    print(
        "| client | polls/s | client CPU µs/poll | vs pymodbus | vs floor | simulator CPU µs/poll |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for run in (floor, ours, pymodbus, pipelined):
        print(
            f"| {run.name} | {run.polls_per_s:,.0f} | {run.cpu_us_per_poll:.1f} | "
            f"{run.cpu_us_per_poll / pymodbus.cpu_us_per_poll:.2f} | "
            f"{run.cpu_us_per_poll / floor.cpu_us_per_poll:.2f} | {run.sim_cpu_us_per_poll:.1f} |"
        )
    verdict = "met" if ratio <= 0.5 else "NOT met"
    print(f"\ntwinplane / pymodbus CPU per poll: {ratio:.2f} (target ≤ 0.5: {verdict})")
    if fleet is not None:
        print(
            f"\nFleet: {fleet.devices:,} devices each read once a second, "
            f"{fleet.seconds:.1f} s: {fleet.polls / fleet.seconds:,.0f} polls/s, simulator "
            f"{fleet.sim_cpu / fleet.seconds:.2f} cores, client {fleet.cpu / fleet.seconds:.2f} "
            f"cores (a task per read), {fleet.errors} errors, {fleet.late_ticks} late 10 ms ticks"
        )
    if errors:
        print(f"errors: {errors}", file=sys.stderr)


if __name__ == "__main__":
    main()
