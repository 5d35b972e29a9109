"""The virtual driver: counter, sine, random walk and constant properties; writes stick."""

from __future__ import annotations

import pytest

from twinplane.drivers.base import PropertyVisitor, ProtocolConfig
from twinplane.drivers.virtual import VirtualClient, VirtualDriver
from twinplane.errors import SpecError
from twinplane.twin import PropertyTypeName


def prop(name: str, type_: PropertyTypeName, **config: object) -> PropertyVisitor:
    """A property visitor with ``config`` as its configData."""
    return PropertyVisitor(name=name, index=0, type=type_, config=config)


def client() -> VirtualClient:
    """A fresh virtual device."""
    made = VirtualDriver().new_client(ProtocolConfig("virtual"))
    assert isinstance(made, VirtualClient)
    return made


async def test_counter_counts_and_wraps() -> None:
    """A counter returns start, start+step, ... and wraps to start past max."""
    c = client()
    p = prop("n", "INT", kind="counter", start=1, step=2, max=5)
    values = [(await c.read([p]))[0] for _ in range(4)]
    assert values == [1, 3, 5, 1]


async def test_randomwalk_stays_within_bounds_and_is_seeded() -> None:
    """A seeded random walk repeats and never leaves [min, max]."""
    p = prop("t", "FLOAT", kind="randomwalk", start=5, step=3, min=0, max=10, seed=7)
    a, b = client(), client()
    walk_a = [(await a.read([p]))[0] for _ in range(50)]
    walk_b = [(await b.read([p]))[0] for _ in range(50)]
    assert walk_a == walk_b
    assert all(isinstance(v, float) and 0 <= v <= 10 for v in walk_a)


async def test_sine_is_within_its_amplitude_and_typed() -> None:
    """A sine stays within offset ± amplitude; INT rounds, BOOLEAN is value > 0."""
    c = client()
    value = (await c.read([prop("s", "FLOAT", kind="sine", amplitude=2, offset=10)]))[0]
    assert isinstance(value, float)
    assert 8 <= value <= 12
    as_int = (await c.read([prop("i", "INT", kind="sine", amplitude=2, offset=10)]))[0]
    assert isinstance(as_int, int)
    as_bool = (await c.read([prop("b", "BOOLEAN", kind="sine", amplitude=1, offset=5)]))[0]
    assert as_bool is True


async def test_writes_stick() -> None:
    """After a write the property holds the written value, whatever its kind."""
    c = client()
    p = prop("n", "INT", kind="counter")
    await c.read([p])
    await c.write(p, "42")
    assert await c.read([p, p]) == ["42", "42"]


async def test_constant_holds_its_configured_value() -> None:
    """No kind: the configured value (or zero) is held."""
    c = client()
    assert await c.read([prop("a", "STRING", value="hello"), prop("z", "FLOAT")]) == [
        "hello",
        0.0,
    ]


async def test_unknown_kind_names_the_field() -> None:
    """An unknown kind is a SpecError whose path names the visitor's kind."""
    with pytest.raises(SpecError) as err:
        await client().read([prop("x", "INT", kind="square")])
    assert err.value.path == "x.visitors.configData.kind"
