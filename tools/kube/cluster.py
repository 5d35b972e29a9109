"""A local Kubernetes control plane to try ``twinplane cloud`` on: ``make kube-up``.

The tests' control plane (``tests/kube_cluster.py``: etcd and kube-apiserver from ``make
kube-tools``, on loopback, with their own certificates and RBAC on; no controller manager,
scheduler or kubelet), started on its own until Ctrl-C. It writes, in ``--workdir``:

- ``admin.kubeconfig``: a cluster admin (a client certificate in ``system:masters``), for kubectl;
- ``twinplane-cloud.kubeconfig`` (with ``--deploy``, once ``deploy/`` is applied): the
  ``twinplane-system/twinplane-cloud`` ServiceAccount of ``deploy/rbac.yaml``, with a token the
  API server issued for 2 hours, for ``twinplane cloud --kubeconfig``.

etcd's data lives in the work folder and goes with it: this is a cluster to try things on, not to
keep. Without ``--deploy`` the CRDs and RBAC are left for you: ``kubectl apply -f deploy/ -R``.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from kube_cluster import kube_bin_dir, running_kube_cluster  # noqa: E402

MARKER = ".twinplane-kube"
"""The file that marks a work folder as this script's, so that emptying it is safe."""


def fresh_workdir(workdir: Path) -> str | None:
    """Empties ``workdir`` (only if it is empty or this script's) and marks it; else why not."""
    if workdir.exists():
        if any(workdir.iterdir()) and not (workdir / MARKER).is_file():
            return f"{workdir} is not empty and not a work folder of tools/kube/cluster.py"
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, mode=0o700)
    (workdir / MARKER).touch()
    return None


def main(argv: list[str] | None = None) -> int:
    """Starts the control plane, prints how to reach it, and waits for SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "twinplane-kube",
        help="where the certificates, kubeconfigs, logs and etcd's data go (emptied first; "
        "default: /tmp/twinplane-kube)",
    )
    parser.add_argument(
        "--deploy",
        action="store_true",
        help="kubectl apply -f deploy/ -R and write twinplane-cloud.kubeconfig",
    )
    args = parser.parse_args(argv)
    workdir: Path = args.workdir.resolve()
    refused = fresh_workdir(workdir)
    if refused is not None:
        print(f"tools/kube/cluster.py: --workdir: {refused}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with running_kube_cluster(workdir) as cluster:
        if args.deploy:
            cluster.apply_deploy()
        print(f"kube-apiserver {cluster.server}  etcd {cluster.etcd_url}  (Ctrl-C stops both)")
        print(f"  export KUBECONFIG={cluster.kubeconfig('admin')}")
        print(f"  export PATH={kube_bin_dir()}:$PATH      # kubectl v1.37.2")
        if args.deploy:
            print(f"  twinplane cloud --kubeconfig {cluster.kubeconfig('twinplane-cloud')} ...")
        print(f"  logs: {workdir}/*.log", flush=True)
        stop.wait()
        print("stopping kube-apiserver and etcd ...", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
