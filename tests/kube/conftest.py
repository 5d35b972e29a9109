"""Fixtures of the Kubernetes registry tests: the deployed cluster, registries, namespaces.

Object builders and :func:`~kube.helpers.opened` are in ``helpers.py`` beside this file.

The control plane is the session's ``kube_cluster`` (``tests/kube_cluster.py``) with
``deploy/`` applied once; each test gets a namespace of its own, so tests see only their objects.
Namespaces are not deleted: without a controller manager one would stay ``Terminating``, and the
cluster ends with the session anyway.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from kube.helpers import opened
from kube_cluster import KubeCluster
from twinplane.cloud.registry.kube import KubeRegistry


@pytest.fixture(scope="session")
def deployed(kube_cluster: KubeCluster) -> KubeCluster:
    """The session's cluster with ``kubectl apply -f deploy/ -R`` done and the CRDs established."""
    kube_cluster.apply_deploy()
    return kube_cluster


@pytest.fixture
def namespace(deployed: KubeCluster) -> str:
    """A fresh namespace for one test."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    deployed.kubectl("create", "namespace", name)
    return name


@pytest.fixture
async def registry(deployed: KubeCluster) -> AsyncIterator[KubeRegistry]:
    """A started registry as ``admin``."""
    async with opened(deployed.kubeconfig("admin")) as started:
        yield started
