"""The driver registry: entry points of group ``twinplane.drivers``, run-time registrations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from twinplane.drivers import registry
from twinplane.drivers.base import DeviceClient, Driver, PropertyVisitor, ProtocolConfig
from twinplane.drivers.registry import get_driver, register_driver, registered_protocols
from twinplane.drivers.virtual import VirtualDriver

# A distribution installed beside twinplane that adds one driver with one entry-point line.
ACME = """
from twinplane.drivers.base import DeviceClient, Driver, PropertyVisitor, ProtocolConfig


class AcmeClient(DeviceClient):
    async def write(self, prop: PropertyVisitor, value: str) -> None:
        pass


class AcmeDriver(Driver):
    protocol = "acme"

    def new_client(self, protocol: ProtocolConfig) -> DeviceClient:
        return AcmeClient()
"""

CHILD = """
import json, sys
from twinplane.drivers.registry import get_driver, registered_protocols

protocols = registered_protocols()
driver = get_driver("acme")
try:
    get_driver("broken")
    broken = ""
except LookupError as err:
    broken = str(err)
loaded = sorted(m for m in sys.modules if m.startswith("twinplane.drivers."))
print(json.dumps({"protocols": protocols, "driver": type(driver).__name__,
                  "broken": broken, "loaded": loaded}))
"""


class _Client(DeviceClient):
    async def write(self, prop: PropertyVisitor, value: str) -> None:
        del prop, value


class _Driver(Driver):
    protocol = "virtual"

    def new_client(self, protocol: ProtocolConfig) -> DeviceClient:
        del protocol
        return _Client()


def test_builtin_drivers_are_declared_as_entry_points() -> None:
    """Twinplane's own drivers come from its entry points: modbus (frames) and virtual."""
    declared = {p.name: p.value for p in entry_points(group=registry.ENTRY_POINT_GROUP)}
    assert declared["modbus"] == "twinplane.drivers.modbus.adapter:ModbusDriver"
    assert declared["virtual"] == "twinplane.drivers.virtual.adapter:VirtualDriver"
    assert {"modbus", "virtual"} <= set(registered_protocols())
    assert isinstance(get_driver("virtual"), VirtualDriver)
    assert get_driver("modbus").frames


def test_unknown_protocol_is_a_lookup_error_naming_the_known_ones() -> None:
    """Asking for a protocol nobody serves says which ones are served."""
    with pytest.raises(LookupError, match=r"no driver for protocol 'zigbee'; known: .*modbus"):
        get_driver("zigbee")


def test_a_registration_at_run_time_comes_before_the_entry_points(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """register_driver serves a protocol in this process, ahead of an installed driver."""
    monkeypatch.setattr(registry, "_REGISTERED", {})
    register_driver("virtual", _Driver)
    register_driver("jsonsensor", _Driver)
    assert isinstance(get_driver("virtual"), _Driver)
    assert "jsonsensor" in registered_protocols()


def test_a_package_adds_a_driver_with_one_entry_point(tmp_path: Path) -> None:
    """A distribution beside twinplane adds protocol ``acme`` by one line in its entry points.

    Only the asked-for driver is imported (the interface and the registry import none), and an
    entry point that cannot be loaded is a LookupError naming it.
    """
    (tmp_path / "acme_driver.py").write_text(ACME)
    info = tmp_path / "acme_driver-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-driver\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent("""\
            [twinplane.drivers]
            acme = acme_driver:AcmeDriver
            broken = acme_missing:Nothing
            """)
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", CHILD],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        timeout=60,
    )
    result = json.loads(out.stdout)
    assert {"acme", "broken", "modbus", "virtual"} <= set(result["protocols"])
    assert result["driver"] == "AcmeDriver"
    assert "acme_missing:Nothing" in result["broken"]
    assert result["loaded"] == [
        "twinplane.drivers.base",
        "twinplane.drivers.commands",  # the interface's command types
        "twinplane.drivers.registry",
    ]
