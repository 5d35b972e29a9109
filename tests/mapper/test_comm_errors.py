"""Communication errors: simulator faults over Modbus TCP → mapper counts → edge ``comm`` events.

A real edge, a real mapper over gRPC on a Unix socket (TwinStream's ``ReportCommErrors``), and
the simulator answering exception codes or nothing, switched at run time.
"""

from __future__ import annotations

import dataclasses

import pytest
from mapper_helpers import manifests, mapper_config, running_mapper
from test_modbus_mapper_end_to_end import MODEL, modbus_device

from edge_helpers import running_app, short_home
from twinplane.drivers.modbus.adapter import ModbusDriver
from twinplane.drivers.modbus.errors import ModbusExceptionError
from twinplane.edge.core import EdgeCore
from twinplane.edge.events import DeviceEvent
from twinplane.edge.store.device_events import EventQuery
from twinplane.mapper.comm_errors import classify
from twinplane.sim.modbus import ModbusSimulator
from waits import until


class Seen:
    """The newest version of every event the edge emits (an :meth:`EdgeEvents.add_listener`)."""

    def __init__(self, core: EdgeCore) -> None:
        self.events: dict[str, DeviceEvent] = {}
        core.events.add_listener(self)

    def __call__(self, event: DeviceEvent) -> None:
        """Keeps ``event`` (replacing an older version of it)."""
        self.events[event.id] = event

    def of(self, device: str, kind: str = "comm") -> list[DeviceEvent]:
        """The events of ``device`` of type ``kind``."""
        return [e for e in self.events.values() if e.device == device and e.type == kind]


@pytest.mark.timeout(60)
async def test_exception_codes_and_timeouts_become_counted_comm_events() -> None:
    """A unit answering exception 2 and a dead unit are one aggregated event each, counted."""
    async with ModbusSimulator(devices=3, port=0, units_per_port=3, rate=0) as sim:
        sim.faults.exception(2, unit=2)
        sim.faults.dead(unit=3)
        docs = manifests(MODEL, *(modbus_device(f"b{u}", sim.port, u) for u in (1, 2, 3)))
        with short_home() as home:
            async with running_app(home, docs) as app:
                assert app.core is not None
                core = app.core
                seen = Seen(core)
                cfg = dataclasses.replace(
                    mapper_config(home, app.config.socket_path, protocol="modbus"),
                    comm_error_interval_ms=100,
                )
                async with running_mapper(cfg, ModbusDriver(timeout=0.2)) as mapper:
                    await until(lambda: seen.of("b2"), "b2's exception event")
                    await until(lambda: seen.of("b3"), "b3's timeout event")
                    await until(lambda: seen.of("b2")[0].count >= 3, "b2's count grows")
                    (exc,) = seen.of("b2")
                    assert exc.body["kind"] == "exception"
                    assert exc.body["code"] == 2
                    assert exc.reason == "CommunicationError"
                    assert exc.severity == "warning"
                    assert "ILLEGAL_DATA_ADDRESS" in exc.message
                    (timeout,) = seen.of("b3")
                    assert timeout.body["kind"] == "timeout"
                    assert seen.of("b1") == []
                    assert mapper.comm_errors is not None
                    assert mapper.comm_errors.stats.sent >= 2
                    # Switched at run time: b1 starts failing with another code.
                    sim.faults.exception(4, unit=1)
                    await until(lambda: seen.of("b1"), "b1's new exception event")
                    assert seen.of("b1")[0].body["code"] == 4
                await core.events.flush()
                query = EventQuery(namespace="default", device="b2", type=frozenset({"comm"}))
                stored = await core.events.query(query)
                assert [e.id for e in stored] == [exc.id]
                assert stored[0].count >= 3


@pytest.mark.timeout(60)
async def test_a_compat_mapper_reports_no_comm_errors_but_states_still_arrive() -> None:
    """With --edgecore-compat nothing is sent (counted unsent); the offline state is an event."""
    async with ModbusSimulator(devices=1, port=0, units_per_port=1, rate=0) as sim:
        sim.faults.dead(unit=1)
        with short_home() as home:
            async with running_app(home, manifests(MODEL, modbus_device("b1", sim.port, 1))) as app:
                assert app.core is not None
                core = app.core
                seen = Seen(core)
                cfg = dataclasses.replace(
                    mapper_config(home, app.config.socket_path, protocol="modbus"),
                    comm_error_interval_ms=100,
                    edgecore_compat=True,
                )
                async with running_mapper(cfg, ModbusDriver(timeout=0.2)) as mapper:
                    assert mapper.comm_errors is not None
                    stats = mapper.comm_errors.stats
                    await until(lambda: stats.unsent >= 2, "failed polls counted unsent")
                    await until(
                        lambda: (
                            core.states.get("default/b1") is not None
                            and core.states["default/b1"].state == "offline"
                        ),
                        "b1 offline",
                    )
                    assert stats.sent == 0
                    assert seen.of("b1") == []
                    assert [e.reason for e in seen.of("b1", "state")] == ["DeviceOffline"]


def test_errors_are_classified_by_kind() -> None:
    """Exception codes, timeouts and connection errors get their kind; anything else is protocol."""
    assert classify(ModbusExceptionError(3, 2, 1))[:2] == ("exception", 2)
    assert classify(TimeoutError())[0] == "timeout"
    assert classify(ConnectionRefusedError("refused"))[0] == "connection"
    assert classify(ValueError("bad frame"))[0] == "protocol"
