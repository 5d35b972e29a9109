"""The load test's baseline end to end: simulator → the imitation → device manager.

The baseline is a Python imitation of mapper-framework's design (per-property tickers, one
unary report per property), against twinplane's device manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import raw_http
from edge_helpers import free_port, running_app, short_home
from twinplane import heap
from twinplane.edge.app import EdgeApp
from twinplane.edge.core import EdgeCore
from twinplane.fleet import device_manifests
from twinplane.loadtest.baselines import IMITATION
from twinplane.loadtest.imitation import ImitationMapper, run_imitation_mapper
from twinplane.mapper.config import MapperConfig
from twinplane.mapper.scheduler import now_ms
from twinplane.sim.modbus import ModbusSimulator
from waits import WAIT_S, until

CYCLE_MS = 200
DEVICES = 3
PROPERTIES = 4
LOOPS = DEVICES * PROPERTIES

METRICS = (
    "twinplane_mapper_bus_polls_total",
    "twinplane_mapper_bus_poll_errors_total",
    "twinplane_mapper_polls_on_time_total",
    "twinplane_mapper_polls_late_total",
    "twinplane_mapper_report_errors_total",
    "twinplane_mapper_twin_changes_total",
    "twinplane_mapper_reports_sent_total",
    "twinplane_mapper_registrations_total",
)


def manifests(sim: ModbusSimulator) -> str:
    """``twinplane up``'s model and thermostats on the simulator, every property at 200 ms."""
    doc: dict[str, Any] = json.loads(
        device_manifests([sim.address(i) for i in range(DEVICES)], properties=PROPERTIES)
    )
    for item in doc["items"]:
        for prop in item["spec"].get("properties", []):
            prop["collectCycle"] = CYCLE_MS
    return json.dumps(doc)


def pin_values(sim: ModbusSimulator) -> None:
    """Temperature 20.u (x 0.1), counter 7u, running on, for each unit u."""
    for unit in range(1, DEVICES + 1):
        sim.set_registers(unit, 0, [200 + unit])
        sim.set_registers(unit, 2, [7 * unit])
        sim.set_registers(unit, 0, [True], kind="CoilRegister")


def reported(core: EdgeCore, device: str, prop: str) -> str | None:
    """The device manager's reported value of a twin."""
    side = core.twins(f"default/{device}")[prop]["reported"]
    return None if side is None else side["value"]


def config(home: Path, app: EdgeApp, http_port: int = 0) -> MapperConfig:
    """The imitation on ``home/run/modbus.sock``, registering with ``app``."""
    return MapperConfig(
        protocol="modbus",
        name="imitation",
        socket_path=home / "run" / "modbus.sock",
        edgecore_sock=app.config.socket_path,
        http_port=http_port,
    )


@contextlib.asynccontextmanager
async def fleet() -> AsyncIterator[tuple[ModbusSimulator, EdgeApp, Path]]:
    """A frozen simulator with pinned values, and a device manager holding its 3 devices."""
    async with ModbusSimulator(devices=DEVICES, port=0, units_per_port=DEVICES, rate=0) as sim:
        pin_values(sim)
        with short_home() as home:
            async with running_app(home, manifests(sim)) as app:
                yield sim, app, home


async def metrics(url: str) -> str:
    """The body of ``GET url/metrics``."""
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return await resp.text()


def total(text: str, name: str) -> float:
    """The sum of a metric family's samples in Prometheus text."""
    return sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith((f"{name} ", f"{name}{{"))
    )


def has_values(core: EdgeCore, unit: int) -> bool:
    """Whether every twin of ``thermostat-<unit>`` holds the simulator's value."""
    name = f"thermostat-{unit}"
    return (
        reported(core, name, "temperature") == f"20.{unit}"
        and reported(core, name, "counter") == str(7 * unit)
        and reported(core, name, "running") == "true"
        and reported(core, name, "setpoint") == "21"  # the desired value, written at start
    )


async def check_rates(mapper: ImitationMapper, loops: int) -> None:
    """Over one second, each loop polls and reports once per cycle (±1 cycle per loop)."""
    s = mapper.stats
    polls0, sent0 = s.polls, s.reports_sent
    await asyncio.sleep(1.0)
    polls, sent = s.polls - polls0, s.reports_sent - sent0
    assert abs(polls - loops * 1000 / CYCLE_MS) <= loops, polls
    assert abs(sent - polls) <= loops, (sent, polls)


@pytest.mark.timeout(30)
async def test_each_property_polls_and_reports_once_per_cycle() -> None:
    """Registers, reports the simulator's values one twin per call per cycle; removal stops."""
    async with fleet() as (_, app, home):
        assert app.core is not None
        assert app.mappers is not None
        core = app.core
        mapper = ImitationMapper(config(home, app))
        try:
            await mapper.start()
            async with asyncio.timeout(WAIT_S):
                await mapper.registered.wait()
            assert mapper.stats.registrations == 1
            assert "imitation" in app.mappers.links
            assert len(list(mapper.loops())) == LOOPS
            for unit in range(1, DEVICES + 1):
                await until(functools.partial(has_values, core, unit), f"thermostat-{unit}")
            side = core.twins("default/thermostat-2")["temperature"]["reported"]
            assert side is not None
            assert abs(side["timestamp"] - now_ms()) < 5_000  # the read's time
            await until(lambda: core.states["default/thermostat-2"].state == "online", "state")

            await check_rates(mapper, LOOPS)
            s = mapper.stats
            assert s.on_time > 0
            assert s.poll_errors == 0
            assert s.report_errors == 0
            on_time = s.on_time  # the live counters go on; the scrape comes after this
            text = await metrics(mapper.url)
            for name in METRICS:
                assert f"# TYPE {name} counter" in text, name
            assert total(text, "twinplane_mapper_registrations_total") == 1
            assert total(text, "twinplane_mapper_bus_polls_total") >= on_time

            # removing a device stops its loops; the others go on
            removed = mapper.devices["default/thermostat-1"]
            assert await core.delete_device("default", "thermostat-1")
            await until(lambda: "default/thermostat-1" not in mapper.devices, "removal")
            assert not removed.tasks
            assert len(list(mapper.loops())) == LOOPS - PROPERTIES
            await check_rates(mapper, LOOPS - PROPERTIES)
        finally:
            await mapper.stop()
        # quiescent: every tick is accounted for, every twin was sent or failed
        s = mapper.stats
        assert s.polls == s.on_time + s.late - s.skipped
        assert s.reports_sent + s.report_errors <= s.twins <= s.reports_sent + LOOPS
        assert not list(mapper.loops())


@pytest.mark.timeout(30)
async def test_it_has_the_product_mappers_collector_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As the product mapper: the heap policy held from start to stop, told of each device.

    A device started is a change (the steward freezes the heap once it is quiet), a device
    stopped a removal (it unfreezes, so the next freeze frees what the device left).
    """
    changes: list[bool] = []  # the imitation's calls (the device manager's run here too)
    told = heap.changed

    def changed(*, removed: bool = False) -> None:
        if sys._getframe(1).f_globals["__name__"] == ImitationMapper.__module__:
            changes.append(removed)
        told(removed=removed)

    monkeypatch.setattr(heap, "changed", changed)
    threshold = gc.get_threshold()
    async with fleet() as (_, app, home):
        assert app.core is not None
        users = heap._USERS  # the device manager's, in this process
        mapper = ImitationMapper(config(home, app))
        try:
            await mapper.start()
            assert (heap._USERS, gc.get_threshold()[0]) == (users + 1, heap.GEN0_THRESHOLD)
            async with asyncio.timeout(WAIT_S):
                await mapper.registered.wait()
            assert changes == [False] * DEVICES  # one per device started
            assert await app.core.delete_device("default", "thermostat-1")
            await until(lambda: "default/thermostat-1" not in mapper.devices, "removal")
            assert changes == [False] * DEVICES + [True]
        finally:
            await mapper.stop()
        assert users == heap._USERS
    assert gc.get_threshold() == threshold  # the last user restored the collector


@pytest.mark.timeout(30)
async def test_run_imitation_mapper_serves_metrics_until_stopped() -> None:
    """``run_imitation_mapper`` sets ``ready`` once registered and stops when ``stop`` is set.

    Its ``/metrics`` answers only its own host, as every twinplane REST server.
    """
    async with fleet() as (_, app, home):
        assert app.core is not None
        core = app.core
        port = free_port()
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(
            run_imitation_mapper(config(home, app, port), stop=stop, ready=ready)
        )
        try:
            async with asyncio.timeout(WAIT_S):
                await ready.wait()
            await until(lambda: reported(core, "thermostat-3", "temperature") == "20.3", "twin")
            text = await metrics(f"http://127.0.0.1:{port}")
            assert total(text, "twinplane_mapper_registrations_total") == 1
            assert total(text, "twinplane_mapper_reports_sent_total") > 0
            assert f'style="{IMITATION.name}"' in text
            url = f"http://127.0.0.1:{port}"  # a page that rebound its name reads nothing
            answer = await raw_http.request(url, "GET", "/metrics", host=f"evil.example:{port}")
            assert (answer.status, answer.json()["header"]) == (403, "Host")
        finally:
            stop.set()
            async with asyncio.timeout(WAIT_S):
                await task
        assert not (home / "run" / "modbus.sock").exists()
