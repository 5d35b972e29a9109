"""The layers of STYLE.md: separate processes share wire types, never each other's internals.

Each check imports every module of a package in a fresh interpreter and lists which modules of
another package came with it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CHILD = """
import importlib, json, pkgutil, sys

roots = sys.argv[1].split(",")
for root in roots:
    module = importlib.import_module(root)
    for info in pkgutil.walk_packages(getattr(module, "__path__", []), prefix=root + "."):
        importlib.import_module(info.name)
print(json.dumps(sorted(sys.modules)))
"""


def loaded_with(*roots: str) -> list[str]:
    """Every module loaded by importing all modules of ``roots`` in a fresh interpreter."""
    out = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", CHILD, ",".join(roots)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    modules: list[str] = json.loads(out.stdout)
    return modules


def within(modules: list[str], package: str) -> list[str]:
    """The modules of ``package`` (itself included) among ``modules``."""
    return [m for m in modules if m == package or m.startswith(package + ".")]


@pytest.mark.parametrize(
    ("roots", "foreign"),
    [
        (
            ("twinplane.mapper",),
            ("twinplane.edge", "twinplane.cloud", "twinplane.cli", "twinplane.loadtest"),
        ),
        # the edge runs on the gateway: no Kubernetes client there; of the cloud's code only the
        # link's wire types (test_the_edge_shares_only_the_link_wire_types_with_the_cloud)
        (
            ("twinplane.edge",),
            ("twinplane.mapper", "twinplane.drivers", "twinplane.cli", "kubernetes_asyncio"),
        ),
        # the cloud (its registries, kubernetes_asyncio among them) shares only wire types
        (
            ("twinplane.cloud",),
            ("twinplane.edge", "twinplane.mapper", "twinplane.drivers", "twinplane.cli"),
        ),
        (("twinplane.drivers",), ("twinplane.mapper", "twinplane.edge", "twinplane.cli")),
        # protocol configData meanings: wire types both sides share
        (
            ("twinplane.protocols",),
            ("twinplane.mapper", "twinplane.edge", "twinplane.drivers", "twinplane.cli"),
        ),
        # the load test drives the processes from outside: HTTP, manifests, subprocesses
        (
            ("twinplane.loadtest.scale",),
            ("twinplane.edge", "twinplane.mapper", "twinplane.up", "twinplane.cli"),
        ),
    ],
)
def test_a_process_package_loads_no_other_process(
    roots: tuple[str, ...], foreign: tuple[str, ...]
) -> None:
    """Importing every module of the mapper loads no edge module, and the other way round.

    Neither loads the CLI, nor the cloud either of them; the mapper loads nothing of the cloud,
    the edge no Kubernetes client (and of the cloud only the wire types, tested below); the load
    test's harness loads none of the processes it measures.
    """
    modules = loaded_with(*roots)
    assert within(modules, roots[0])  # the walk did import something
    for package in foreign:
        assert within(modules, package) == [], f"{roots[0]} loads {package}"


def test_the_edge_shares_only_the_link_wire_types_with_the_cloud() -> None:
    """The device manager loads the cloud link's message types and nothing else of the cloud."""
    modules = loaded_with("twinplane.edge")
    assert "twinplane.cloud.wire" in modules  # the edge link speaks it
    assert within(modules, "twinplane.cloud") == ["twinplane.cloud", "twinplane.cloud.wire"]
