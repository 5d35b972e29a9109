"""The desired side: edge updates, cloud syncs with versions, and the delta."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
from twinplane.errors import VersionConflictError
from twinplane.twin import PropertySpec

from .engine_strategies import (
    DesiredUpdate,
    assert_same_changes,
    both,
    device_ids,
    property_specs,
    reported_batches,
    same_outcome,
    snapshot,
    type_of,
    values,
)

pytestmark = pytest.mark.engine


@st.composite
def desired_values(draw: st.DrawFn, specs: list[PropertySpec]) -> DesiredUpdate:
    """An edge update: property -> value (a typed object or its text), sometimes None."""
    out: DesiredUpdate = {}
    for name in draw(st.lists(st.sampled_from([s["name"] for s in specs]), max_size=3)):
        ty = type_of(specs, name)
        if draw(st.integers(0, 4)) == 0:
            out[name] = None
            continue
        value = draw(values(ty))
        as_text = ty != "STRING" and draw(st.booleans())
        out[name] = ref.canonical(ty, value) if as_text else value
    return out


@st.composite
def synced_values(
    draw: st.DrawFn, specs: list[PropertySpec], model: ref.ReferenceEngine, device: str
) -> dict[str, tuple[str | None, int, int]]:
    """A cloud sync: property -> (text or None, cloud version, edge version).

    The versions are mostly at or ahead of the local ones, sometimes behind.
    """
    out: dict[str, tuple[str | None, int, int]] = {}
    twins = model.twins(device)
    for name in draw(st.lists(st.sampled_from([s["name"] for s in specs]), max_size=3)):
        ty = type_of(specs, name)
        local = twins[name]["desired_version"]
        cloud = local["cloud"] + draw(st.integers(-1, 2))
        edge = local["edge"] + draw(st.integers(-1, 1))
        remove = draw(st.integers(0, 4)) == 0
        text = None if remove else ref.canonical(ty, draw(values(ty)))
        out[name] = (
            text,
            max(cloud, 0),
            max(edge, 0),
        )
    return out


@given(property_specs(), device_ids, st.data())
def test_desired_runs_match_reference(
    specs: list[PropertySpec], device: str, data: st.DataObject
) -> None:
    """Edge updates, cloud syncs and reports in any order give the reference's changes."""
    engine, model = both(specs, device)
    ts = 0
    for _ in range(data.draw(st.integers(1, 8), label="steps")):
        ts += 10
        step = data.draw(st.sampled_from(["set", "sync", "report"]))
        if step == "set":
            update = data.draw(desired_values(specs))
            calls: tuple[Any, Any] = (
                partial(engine.set_desired, device, update, ts),
                partial(model.set_desired, device, update, ts),
            )
        elif step == "sync":
            synced = data.draw(synced_values(specs, model, device))
            calls = (
                partial(engine.sync_desired, device, synced, ts),
                partial(model.sync_desired, device, synced, ts),
            )
        else:
            batch = data.draw(reported_batches(specs, ts))
            calls = (
                partial(engine.apply_reported, device, batch),
                partial(model.apply_reported, device, batch),
            )
        outcome = same_outcome(*calls)
        if outcome is not None:
            assert_same_changes(*outcome)
        assert snapshot(engine) == snapshot(model)


def test_setting_desired_returns_the_delta() -> None:
    """A desired value that differs from the reported one is a delta; reaching it clears it."""
    engine, model = both([{"name": "sp", "type": "INT"}, {"name": "t", "type": "DOUBLE"}])
    for e in (engine, model):
        e.apply_reported("ns/dev", [("sp", "20", 1)])
    changes = engine.set_desired("ns/dev", {"sp": 22}, 2)
    assert_same_changes(changes, model.set_desired("ns/dev", {"sp": 22}, 2))
    assert changes.deltas() == {"ns/dev": {"sp": "22"}}
    assert changes.to_list()[0]["after"]["desired_version"] == {"cloud": 0, "edge": 1}
    reached = engine.apply_reported("ns/dev", [("sp", "22", 3)])
    assert_same_changes(reached, model.apply_reported("ns/dev", [("sp", "22", 3)]))
    assert reached.deltas() == {}


def test_setting_the_same_desired_value_changes_nothing() -> None:
    """Setting the desired value it already has emits nothing and bumps no version."""
    engine, _ = both([{"name": "sp", "type": "INT"}])
    engine.set_desired("ns/dev", {"sp": 5}, 1)
    again = engine.set_desired("ns/dev", {"sp": "5"}, 2)
    assert len(again) == 0
    assert engine.twins("ns/dev")["sp"]["desired"] == {"value": "5", "timestamp": 1}
    assert engine.twins("ns/dev")["sp"]["desired_version"] == {"cloud": 0, "edge": 1}


def test_cloud_sync_follows_kubeedge_version_rule() -> None:
    """A cloud sync older than the edge is refused; otherwise the cloud's version is taken."""
    engine, model = both([{"name": "sp", "type": "INT"}])
    for e in (engine, model):
        e.set_desired("ns/dev", {"sp": 1}, 1)
        e.set_desired("ns/dev", {"sp": 2}, 2)  # local {cloud 0, edge 2}
    before = snapshot(engine)
    for stale in [(5, 1), (0, 1)]:
        with pytest.raises(VersionConflictError) as info:
            engine.sync_desired("ns/dev", {"sp": ("9", *stale)}, 3)
        assert (info.value.device, info.value.property) == ("ns/dev", "sp")
        assert snapshot(engine) == before
    accepted = engine.sync_desired("ns/dev", {"sp": ("9", 3, 2)}, 4)
    assert_same_changes(accepted, model.sync_desired("ns/dev", {"sp": ("9", 3, 2)}, 4))
    assert engine.twins("ns/dev")["sp"]["desired_version"] == {"cloud": 3, "edge": 2}
    with pytest.raises(VersionConflictError):
        engine.sync_desired("ns/dev", {"sp": ("9", 2, 2)}, 5)


def test_removing_a_desired_value_emits_a_change_and_ends_the_delta() -> None:
    """Setting a desired value to None removes it: one desired change, and no delta left."""
    engine, model = both([{"name": "sp", "type": "INT"}])
    engine.set_desired("ns/dev", {"sp": 5}, 1)
    model.set_desired("ns/dev", {"sp": 5}, 1)
    removed = engine.set_desired("ns/dev", {"sp": None}, 2)
    [change] = removed.to_list()
    assert (change["kind"], change["value"], change["after"]["desired"]) == ("desired", None, None)
    assert change["after"]["desired_version"] == {"cloud": 0, "edge": 2}
    assert removed.deltas() == model.set_desired("ns/dev", {"sp": None}, 2).deltas() == {}


def test_removing_a_desired_value_keeps_its_version() -> None:
    """Versions only grow: after a removal the desired version stays, the next update bumps it."""
    engine, model = both([{"name": "sp", "type": "INT"}])
    for value, edge in ((5, 1), (None, 2), (6, 3)):
        assert_same_changes(
            engine.set_desired("ns/dev", {"sp": value}, 1),
            model.set_desired("ns/dev", {"sp": value}, 1),
        )
        assert engine.twins("ns/dev")["sp"]["desired_version"] == {"cloud": 0, "edge": edge}
        assert snapshot(engine) == snapshot(model)


def test_a_cloud_removal_takes_the_cloud_version() -> None:
    """A cloud sync removing a desired value that is not there still takes the cloud's version."""
    engine, model = both([{"name": "sp", "type": "INT"}])
    for e in (engine, model):
        assert len(e.sync_desired("ns/dev", {"sp": (None, 2, 3)}, 1)) == 0
    assert model.twins("ns/dev")["sp"]["desired_version"] == {"cloud": 2, "edge": 3}
    with pytest.raises(VersionConflictError):
        model.sync_desired("ns/dev", {"sp": (None, 2, 2)}, 2)
    version = engine.twins("ns/dev")["sp"]["desired_version"]
    assert version == {"cloud": 2, "edge": 3}, f"desired_version {version}"


@pytest.mark.parametrize(("desired", "reported"), [("NaN", "NaN"), ("-0", "0")])
def test_delta_compares_canonical_text(desired: str, reported: str) -> None:
    """KubeEdge's delta compares expected and actual as strings: NaN meets NaN, -0 is not 0."""
    engine, model = both([{"name": "x", "type": "DOUBLE"}])
    for e in (engine, model):
        e.apply_reported("ns/dev", [("x", reported, 1)])
    got = engine.set_desired("ns/dev", {"x": desired}, 2)
    assert_same_changes(got, model.set_desired("ns/dev", {"x": desired}, 2))
    assert got.deltas() == ({} if desired == reported else {"ns/dev": {"x": desired}})


@pytest.mark.parametrize("ty", ["STRING", "BYTES"])
def test_an_empty_desired_value_is_no_delta(ty: str) -> None:
    """KubeEdge's delta skips twins whose expected value is empty."""
    specs: list[Any] = [{"name": "x", "type": ty}]
    engine, model = both(specs)
    for e in (engine, model):
        e.apply_reported("ns/dev", [("x", "00", 1)])
    empty = "" if ty == "STRING" else b""
    got = engine.set_desired("ns/dev", {"x": empty}, 2)
    assert_same_changes(got, model.set_desired("ns/dev", {"x": empty}, 2))
    assert got.deltas() == {}
    assert len(got) == 1  # the desired change itself is still emitted
