"""Test configuration: hypothesis settings shared by the whole suite.

``tests/reference.py`` (the pure-Python reference of the twin engine) is importable as
``reference`` from every test module: pytest puts this directory on ``sys.path`` for this
conftest. So are the helpers shared across test folders: ``edge_helpers`` (running a device
manager, in process or as ``twinplane edge``), ``dmi_helpers`` (DMI requests, clients and a
server on a Unix socket) and ``waits`` (bounded waits for a condition).

The session fixture ``kube_cluster`` is a real etcd + kube-apiserver (``kube_cluster.py``),
started when a test first asks for it and stopped when the session ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from kube_cluster import KubeCluster, running_kube_cluster

# Modest example counts keep the suite well under a minute; no deadline, because a slow CI
# machine must not turn timing into failures (performance lives in bench/).
settings.register_profile(
    "twinplane",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# TWINPLANE_HYPOTHESIS_PROFILE=thorough explores much further (minutes, not seconds).
settings.register_profile("thorough", parent=settings.get_profile("twinplane"), max_examples=3000)
settings.load_profile(os.environ.get("TWINPLANE_HYPOTHESIS_PROFILE", "twinplane"))


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """A Kubernetes control plane for the session; without its binaries, a failure under CI."""
    with running_kube_cluster(tmp_path_factory.mktemp("kube")) as cluster:
        yield cluster
