"""``twinplane bench scale``: N simulated Modbus devices through a real mapper and device manager.

One phase starts three processes — ``twinplane sim modbus``, ``twinplane edge`` and a mapper
(``twinplane mapper``, or for the baseline ``twinplane bench imitation-mapper``, a Python
imitation of mapper-framework's design: :mod:`twinplane.loadtest.baselines`) — applies the
generated manifests through the device manager's REST API, waits until every device is online,
warms up, then scrapes both ``/metrics`` and the processes' ``/proc`` usage every second for the
window. :func:`run_scale` runs twinplane's phase (then, with a baseline, the baseline's with fresh
processes and the same load) and writes ``results.json`` and ``results.md``, then the plots: a
plot that cannot be drawn (matplotlib missing or failing) is a warning, not a failed run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import aiohttp
import yaml

from twinplane.fleet import device_manifests, registers_for
from twinplane.loadtest import plots, report
from twinplane.loadtest.baselines import BASELINES
from twinplane.loadtest.procs import BenchError, Proc, raise_fd_limit
from twinplane.loadtest.progress import Progress, bar
from twinplane.loadtest.prom import Snapshot, parse
from twinplane.loadtest.window import PROCESSES, Tick, WindowLoad, summarize
from twinplane.ports import port_free

__all__ = ["SCENARIOS", "ScaleConfig", "ScaleRun", "run_scale"]

SCENARIOS: Final = {"1k": 1_000, "5k": 5_000, "10k": 10_000}
"""``--scenario`` presets: devices (x 10 properties x 1,000 ms, 60 s after a 10 s warm-up)."""

PIPELINED_IN_FLIGHT: Final = 16
"""``maxInFlight`` of the devices in a pipelined run."""
APPLY_CHUNK: Final = 500
"""Devices per ``POST /api/v1/apply`` (the body limit is 16 MiB)."""
START_TIMEOUT_S: Final = 30.0
SCRAPE_TIMEOUT_S: Final = 5.0
MAX_SCRAPE_FAILURES: Final = 5
STATE_REPORT_MS: Final = 10_000
"""Every device's ``spec.stateReport.reportCycle``: mapper-framework reports a device's state
only with ``reportToCloud`` (and the device manager counts a device online by its state), so
every phase's devices ask for a state report every 10 s, the same for every mapper."""
EDGECORE_RATE: Final = 1.0
EDGECORE_BURST: Final = 100
"""EdgeCore's DMI admission: one limiter of 1 call/s, burst 100, shared by every DMI call."""
_FD_HEADROOM: Final = 256
_MAX_UNIX_PATH: Final = 100  # sun_path is 108 bytes on Linux


@dataclass(frozen=True, slots=True)
class ScaleConfig:
    """Settings of ``twinplane bench scale``.

    Attributes:
        devices: Simulated devices.
        properties: Properties per device (at most 80).
        cycle_ms: Every property's ``collectCycle``.
        duration_s: The measured window.
        warmup_s: Seconds between every device online and the window.
        devices_per_port: Devices per simulator port (unit ids 1..K).
        out: Where results (and ``work/``, the processes' state and logs) go.
        mqtt: A broker for the device manager's ``$hw/events`` topics, or ``None``.
        baseline: A baseline's name (:data:`~twinplane.loadtest.baselines.BASELINES`) to
            measure it too, or ``None``.
        scenario: The preset the settings came from, if any.
        command: The command line, for the record.
        tty: Redraw the progress line in place.
        pipelined: Pipeline the Modbus requests: the simulator answers pipelined requests and
            the devices ask for :data:`PIPELINED_IN_FLIGHT` in flight (``maxInFlight``).
            Without it (the default, what real devices need) the simulator takes one
            transaction at a time per connection, as many PLCs and gateways do, and so does
            the mapper.
        edgecore_admission: Run the device manager with EdgeCore's DMI admission
            (:data:`EDGECORE_RATE` call/s, burst :data:`EDGECORE_BURST`, shared by all calls)
            instead of its own budget.
    """

    devices: int
    properties: int
    cycle_ms: int
    duration_s: float
    warmup_s: float
    devices_per_port: int
    out: Path
    mqtt: str | None = None
    baseline: str | None = None
    scenario: str | None = None
    command: tuple[str, ...] = ()
    tty: bool = False
    pipelined: bool = False
    edgecore_admission: bool = False

    @property
    def modbus_mode(self) -> str:
        """How the Modbus requests travel, for the report."""
        if self.pipelined:
            return f"pipelined ({PIPELINED_IN_FLIGHT} in flight per connection)"
        return "one transaction at a time per connection"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive free ports, below the ephemeral range when they fit.

    Raises:
        BenchError: No such block was found.
    """
    low, high = 10_000, _ephemeral_start()
    if high - low < count:
        low, high = 1_024, 65_535
    for _ in range(50):
        if high - count <= low:
            break
        base = random.randint(low, high - count)  # noqa: S311 - not a secret
        if all(port_free("127.0.0.1", base + i) for i in range(count)):
            return base
    raise BenchError(f"found no {count} consecutive free ports for the simulator")


class _Phase:
    """One measured run: three processes, the onboarding, the warm-up and the window."""

    def __init__(self, cfg: ScaleConfig, kind: str, work: Path, progress: Progress) -> None:
        self.cfg = cfg
        self.kind = kind
        self.work = work
        self.progress = progress
        self.procs: dict[str, Proc] = {}
        self.edge_url = ""
        self.mapper_url = ""
        self.metrics_url = ""  # the mapper's /metrics: its REST port, or the baseline's own
        self.base_port = 0
        self.onboarding: dict[str, Any] = {}
        self._sockets: Path | None = None
        self.load = WindowLoad(
            cfg.devices, cfg.properties, cfg.cycle_ms, per_property=kind != "twinplane", mapper=kind
        )

    # -- processes ----------------------------------------------------------------------

    def _socket_dir(self) -> Path:
        run = self.work / "run"
        if len(str(run / "modbus.sock")) <= _MAX_UNIX_PATH:
            run.mkdir(parents=True, exist_ok=True)
            return run
        self._sockets = Path(tempfile.mkdtemp(prefix="tp-bench-"))
        return self._sockets

    def _spawn(self, name: str, args: Sequence[str]) -> Proc:
        proc = Proc(name, args, self.work)
        self.procs[name] = proc
        proc.start()
        return proc

    def _check(self) -> None:
        for proc in self.procs.values():
            proc.check()

    async def _until(
        self, what: str, ready: Callable[[], Awaitable[bool]], limit_s: float = START_TIMEOUT_S
    ) -> None:
        deadline = time.monotonic() + limit_s
        while True:
            self._check()
            with contextlib.suppress(OSError, aiohttp.ClientError, TimeoutError):
                if await ready():
                    return
            if time.monotonic() > deadline:
                logs = "\n".join(f"{p.name}:\n{p.tail()}" for p in self.procs.values())
                raise BenchError(f"{what} not ready after {limit_s:g} s; last log lines:\n{logs}")
            await asyncio.sleep(0.1)

    async def start(self, session: aiohttp.ClientSession) -> None:
        """Starts the simulator, the device manager and the mapper, each once it is ready."""
        cfg = self.cfg
        self.work.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.work / "edge", ignore_errors=True)  # a previous run's device manager
        run = self._socket_dir()
        ports = -(-cfg.devices // cfg.devices_per_port)
        base = self.base_port = free_port_block(ports)
        t0 = time.monotonic()
        registers = registers_for(cfg.properties)
        self._spawn(
            "sim",
            [
                "sim", "modbus", "--devices", str(cfg.devices),
                "--unit-ids-per-port", str(cfg.devices_per_port), "--port", str(base),
                "--registers", str(registers), "--log-level", "warning",
                *(() if cfg.pipelined else ("--max-in-flight", "1")),
            ],
        )  # fmt: skip

        async def sim_ready() -> bool:
            for port in {base, base + ports - 1}:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
            return True

        await self._until("the simulator", sim_ready)
        last = f"..{base + ports - 1}" if ports > 1 else ""
        self.progress.step(
            f"simulator       {cfg.devices:,} devices on 127.0.0.1:{base}{last}, Modbus "
            f"{cfg.modbus_mode}",
            t0,
        )

        t0 = time.monotonic()
        rest = _free_port()
        self.edge_url = f"http://127.0.0.1:{rest}"
        dmi = run / "dmi.sock"
        edge_args = ["edge", "--home", str(self.work / "edge"), "--dmi-socket", str(dmi)]
        edge_args += ["--rest-addr", f"127.0.0.1:{rest}", "--log-level", "warning"]
        if cfg.mqtt:
            edge_args += ["--mqtt", cfg.mqtt]
        if cfg.edgecore_admission:
            edge_args += ["--dmi-rate", f"{EDGECORE_RATE:g}", "--dmi-burst", str(EDGECORE_BURST)]
        self._spawn("edge", edge_args)
        await self._until("the device manager", lambda: self._get_ok(session, self.edge_url))
        self.progress.step(f"device manager  REST {self.edge_url}", t0)

        t0 = time.monotonic()
        http_port = _free_port()
        self.mapper_url = f"http://127.0.0.1:{http_port}"
        config = self.work / "mapper.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "grpc_server": {"socket_path": str(run / "modbus.sock")},
                    "common": {
                        "name": "modbus-mapper",
                        "version": "v1.0.0",
                        "api_version": "v1.0.0",
                        "protocol": "modbus",
                        "edgecore_sock": str(dmi),
                        "http_port": str(http_port),
                    },
                }
            )
        )
        self._spawn_mapper(config)

        async def registered() -> bool:
            if not await self._get_ok(session, self.metrics_url):
                return False
            mappers = (await self.scrape(session, self.edge_url)).total(
                "twinplane_mappers_registered"
            )
            return mappers is None or mappers >= 1

        await self._until(f"the {self.kind} mapper", registered)
        self.progress.step(f"mapper          {self.kind}, REST {self.mapper_url}", t0)

    def _spawn_mapper(self, config: Path) -> None:
        """Starts the mapper of this phase on ``config`` (mapper-framework's config file)."""
        known = BASELINES.get(self.kind)
        if known is not None and known.program is not None:
            metrics = _free_port()
            self.metrics_url = f"http://127.0.0.1:{metrics}"
            args = ["--config-file", str(config), "--v", "0"]
            args += ["--metrics-addr", f"127.0.0.1:{metrics}"]
            proc = Proc("mapper", args, self.work, program=interop_program(known.program))
            self.procs["mapper"] = proc
            proc.start()
            return
        self.metrics_url = self.mapper_url
        command = ["mapper"] if known is None else list(known.command)
        self._spawn("mapper", [*command, "--config-file", str(config), "--log-level", "warning"])

    def stop(self) -> None:
        """Stops the processes in reverse order (SIGTERM, then SIGKILL)."""
        for proc in reversed(list(self.procs.values())):
            proc.stop()
        if self._sockets is not None:
            shutil.rmtree(self._sockets, ignore_errors=True)

    # -- HTTP ---------------------------------------------------------------------------

    @staticmethod
    async def _get_ok(session: aiohttp.ClientSession, base: str) -> bool:
        async with session.get(base + "/metrics") as resp:
            await resp.read()
            return resp.status == 200  # noqa: PLR2004

    @staticmethod
    async def scrape(session: aiohttp.ClientSession, base: str) -> Snapshot:
        """``GET /metrics``, parsed."""
        timeout = aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S)
        async with session.get(base + "/metrics", timeout=timeout) as resp:
            resp.raise_for_status()
            return parse(await resp.text())

    async def _apply(self, session: aiohttp.ClientSession, items: list[Any]) -> None:
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": items}).encode()
        url = self.edge_url + "/api/v1/apply?source=twinplane-bench"
        timeout = aiohttp.ClientTimeout(total=120)
        headers = {"Content-Type": "application/json"}
        async with session.post(url, data=body, headers=headers, timeout=timeout) as resp:
            text = await resp.text()
            if resp.status != 200:  # noqa: PLR2004
                raise BenchError(f"apply failed with HTTP {resp.status}: {text[:800]}")

    # -- onboarding -----------------------------------------------------------------------

    async def onboard(self, session: aiohttp.ClientSession) -> None:
        """Applies the model, then the devices in chunks; waits until every one is online."""
        cfg = self.cfg
        t0 = time.monotonic()
        per, base = cfg.devices_per_port, self.base_port
        addresses = [(base + i // per, i % per + 1) for i in range(cfg.devices)]
        text = device_manifests(
            addresses,
            properties=cfg.properties,
            cycle_ms=cfg.cycle_ms,
            max_in_flight=PIPELINED_IN_FLIGHT if cfg.pipelined else None,
        )
        items = json.loads(text)["items"]
        for device in items[1:]:
            device["spec"]["stateReport"] = {"reportToCloud": True, "reportCycle": STATE_REPORT_MS}
        await self._apply(session, items[:1])
        devices = items[1:]
        for start in range(0, len(devices), APPLY_CHUNK):
            self._check()
            await self._apply(session, devices[start : start + APPLY_CHUNK])
            done = min(len(devices), start + APPLY_CHUNK)
            frac = done / len(devices)
            self.progress.status(f"  applying  {bar(frac)} {done:,}/{cfg.devices:,} devices")
        self.progress.step(f"applied         {cfg.devices:,} devices ({cfg.properties} props)", t0)

        t0 = time.monotonic()
        timeout = 60 + cfg.devices * 0.02
        deadline = t0 + timeout
        online = 0.0
        while True:
            self._check()
            with contextlib.suppress(OSError, aiohttp.ClientError, TimeoutError):
                online = await self._online(session)
            if online >= cfg.devices:
                break
            if time.monotonic() > deadline:
                # Measured anyway: a mapper that cannot bring its devices online at this load
                # (the mapper-framework imitation, typically) is a result, not a failed run.
                self.onboarding = {
                    "online": online,
                    "seconds": round(time.monotonic() - t0, 1),
                    "complete": False,
                }
                self.progress.step(
                    f"onboarding INCOMPLETE: {online:,.0f} of {cfg.devices:,} devices online "
                    f"after {timeout:g} s; measuring anyway (logs in {self.work})"
                )
                return
            left = deadline - time.monotonic()
            self.progress.status(
                f"  onboarding {bar(online / cfg.devices)} {online:,.0f}/{cfg.devices:,} online"
                f"  (timeout in {left:,.0f} s)"
            )
            await asyncio.sleep(0.5)
        self.onboarding = {
            "online": online,
            "seconds": round(time.monotonic() - t0, 1),
            "complete": True,
        }
        self.progress.step(f"online          {cfg.devices:,}/{cfg.devices:,} devices", t0)

    async def _online(self, session: aiohttp.ClientSession) -> float:
        edge = await self.scrape(session, self.edge_url)
        online = edge.total("twinplane_devices", state="online")
        if online is not None:  # a KubeEdge mapper reports "ok", which means online too
            online += edge.total("twinplane_devices", state="ok") or 0.0
        if online is None:
            mapper = await self.scrape(session, self.metrics_url)
            online = mapper.total("twinplane_mapper_devices", state="online")
        return online or 0.0

    # -- measuring ----------------------------------------------------------------------

    async def tick(self, session: aiohttp.ClientSession, t: float) -> Tick:
        """One scrape of both ``/metrics`` and the processes' usage."""
        mapper, edge = await asyncio.gather(
            self.scrape(session, self.metrics_url), self.scrape(session, self.edge_url)
        )
        usage = {name: self.procs[name].usage() for name in PROCESSES}
        return Tick(t, mapper, edge, usage)

    async def measure(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        """The warm-up, then the window; the window's figures."""
        cfg = self.cfg
        t0 = time.monotonic()
        await self._timed(session, "warm-up", cfg.warmup_s)
        ticks = await self._timed(session, "measuring", cfg.duration_s)
        self.progress.step(
            f"measured        {cfg.duration_s:g} s after a {cfg.warmup_s:g} s warm-up", t0
        )
        if len(ticks) < 2:  # noqa: PLR2004
            raise BenchError("fewer than two scrapes in the window: nothing to compute")
        result = summarize(ticks, self.load, mqtt=bool(cfg.mqtt))
        result["onboarding"] = self.onboarding
        return result

    async def _timed(self, session: aiohttp.ClientSession, what: str, seconds: float) -> list[Tick]:
        ticks: list[Tick] = []
        failures = 0
        t0 = time.monotonic()
        k = 0
        while True:
            self._check()
            now = time.monotonic() - t0
            try:
                ticks.append(await self.tick(session, now))
                failures = 0
            except (OSError, aiohttp.ClientError, TimeoutError) as err:
                failures += 1
                if failures > MAX_SCRAPE_FAILURES:
                    raise BenchError(f"scraping /metrics failed {failures} times: {err}") from err
            self._show(what, now, seconds, ticks)
            if now >= seconds:
                return ticks
            k += 1
            next_at = min(k, seconds)
            await asyncio.sleep(max(0.0, t0 + next_at - time.monotonic()))

    def _show(self, what: str, now: float, seconds: float, ticks: list[Tick]) -> None:
        rates = ""
        if len(ticks) >= 2:  # noqa: PLR2004
            s = summarize(ticks[-2:], self.load, mqtt=False)
            polls, twins = s["polls_per_s"], s["twin_updates_per_s"]
            rates = f"  polls/s {_n(polls)}  twin updates/s {_n(twins)}"
        frac = now / seconds if seconds > 0 else 1.0
        left = max(0.0, seconds - now)
        self.progress.status(
            f"  {what:<9} {bar(frac)} {now:4.0f}/{seconds:g} s, {left:.0f} s left{rates}"
        )


def _n(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


async def _run_phase(cfg: ScaleConfig, kind: str, work: Path, progress: Progress) -> dict[str, Any]:
    known = BASELINES.get(kind)
    what = kind if known is None else f"baseline {kind} ({known.description})"
    progress.step(f"{what}: {cfg.devices:,} devices x {cfg.properties} properties")
    phase = _Phase(cfg, kind, work, progress)
    connector = aiohttp.TCPConnector(limit=8)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            await phase.start(session)
            await phase.onboard(session)
            return await phase.measure(session)
    finally:
        progress.clear()
        phase.stop()


INTEROP_BUILD: Final = Path(__file__).resolve().parents[3] / "tools" / "interop" / "build.sh"
"""The build script of interop/go, in a checkout of the repository."""


def interop_program(name: str) -> Path:
    """interop/go's program ``name``, built (or found up to date) by tools/interop/build.sh.

    Raises:
        BenchError: Not a checkout of the repository, or the build failed (Go missing, ...).
    """
    import subprocess  # noqa: PLC0415 - only a baseline phase needs it

    if not INTEROP_BUILD.is_file():
        raise BenchError(
            f"the {name} baseline is built from interop/go in a checkout of twinplane "
            f"({INTEROP_BUILD} is missing): run the bench from a clone, with Go installed"
        )
    built = subprocess.run(  # noqa: S603 - the repository's own script
        [str(INTEROP_BUILD)], capture_output=True, text=True, check=False
    )
    if built.returncode != 0:
        raise BenchError(f"tools/interop/build.sh failed:\n{built.stdout}{built.stderr}")
    where = subprocess.run(  # noqa: S603
        [str(INTEROP_BUILD), "--bin-dir"], capture_output=True, text=True, check=True
    )
    program = Path(where.stdout.strip()) / name
    if not program.is_file():
        raise BenchError(f"tools/interop/build.sh built no {name} in {program.parent}")
    return program


def _check_fds(cfg: ScaleConfig) -> None:
    soft = raise_fd_limit()
    needed = -(-cfg.devices // cfg.devices_per_port) + _FD_HEADROOM
    if soft < needed:
        raise BenchError(
            f"{cfg.devices:,} devices at {cfg.devices_per_port} per port need about {needed:,} "
            f"open files per process, and the limit is {soft:,}: raise it (ulimit -n) or use "
            "more --devices-per-port"
        )


def _results(
    cfg: ScaleConfig, started: str, ours: dict[str, Any], base: dict[str, Any] | None
) -> dict[str, Any]:
    results: dict[str, Any] = {
        "devices": cfg.devices,
        "properties": cfg.properties,
        "cycle_ms": cfg.cycle_ms,
        "duration_s": cfg.duration_s,
        "warmup_s": cfg.warmup_s,
        "devices_per_port": cfg.devices_per_port,
        "modbus_mode": cfg.modbus_mode,
        "pipelined": cfg.pipelined,
        "scenario": cfg.scenario,
        "mqtt": cfg.mqtt,
        **ours,
    }
    results["targets"] = report.targets(results)
    results["hardware"] = report.hardware()
    results["command"] = list(cfg.command)
    results["edgecore_admission"] = cfg.edgecore_admission
    results["started_at"] = started
    results["baseline"] = base
    known = BASELINES.get(cfg.baseline) if cfg.baseline is not None else None
    results["baseline_name"] = cfg.baseline
    results["baseline_description"] = known.description if known is not None else None
    results["ratios"] = report.ratios(ours, base) if base is not None else None
    return results


@dataclass(frozen=True, slots=True)
class ScaleRun:
    """What a run wrote.

    Attributes:
        results: What ``results.json`` holds.
        files: The files written into ``out``, results first, then the plots drawn.
        warnings: What went wrong without failing the run (plots not drawn, and why).
    """

    results: dict[str, Any]
    files: tuple[Path, ...]
    warnings: tuple[str, ...] = ()


def write_results(out: Path, results: dict[str, Any]) -> ScaleRun:
    """Writes ``results.json`` and ``results.md``, then the plots if they can be drawn.

    Raises:
        OSError: A results file cannot be written.
    """
    json_path, md_path = out / "results.json", out / "results.md"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    md_path.write_text(report.markdown(results))
    base = results.get("baseline")
    known = BASELINES.get(results.get("baseline_name") or "")
    try:
        drawn = plots.plot(
            out,
            results["series"],
            base["series"] if base is not None else None,
            known.label if known is not None else "baseline",
        )
    except plots.PlotsUnavailable as err:
        return ScaleRun(results, (json_path, md_path), (f"plots not written: {err}",))
    return ScaleRun(results, (json_path, md_path, *drawn))


async def run_scale(cfg: ScaleConfig, progress: Progress) -> ScaleRun:
    """Runs the benchmark (and its baseline) and writes the results into ``cfg.out``.

    Returns:
        The results, the files written and any warnings (the plots not drawn).

    Raises:
        BenchError: Something could not run (a process exited, devices never came online, ...).
        OSError: A results file cannot be written.
    """
    _check_fds(cfg)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    cfg.out.mkdir(parents=True, exist_ok=True)
    work = cfg.out / "work"
    progress.step(f"twinplane bench scale: results in {cfg.out}, logs in {work}")
    ours = await _run_phase(cfg, "twinplane", work / "twinplane", progress)
    base = None
    if cfg.baseline is not None:
        base = await _run_phase(cfg, cfg.baseline, work / cfg.baseline, progress)
    return write_results(cfg.out, _results(cfg, started, ours, base))
