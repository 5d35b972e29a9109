"""A real Kubernetes control plane for the tests, in the manner of controller-runtime's envtest.

Importable as ``kube_cluster`` from every test module (see ``conftest.py``, which also holds the
session fixture of the same name). :func:`running_kube_cluster` starts:

- etcd (``tools/kube/build.sh``'s build) with its own data folder, client and peer URLs on free
  loopback ports, no fsync (nothing here needs to survive a power cut);
- kube-apiserver on a free loopback port, secure port only, with its own CA and serving
  certificate (made with the ``openssl`` CLI), client-certificate authentication,
  ``--authorization-mode=RBAC``, a service-account signing key pair and a service IP range. No
  controller manager, scheduler or kubelet runs: nothing here needs one. The default admission
  plugins stay on; none of them waits for a controller when no pod is created.

The identities, each with its own kubeconfig (:meth:`KubeCluster.kubeconfig`):

- ``admin``: a client certificate with ``O=system:masters`` (the built-in superuser group);
- ``nobody``: a client certificate for the user ``nobody``, bound to nothing;
- ``twinplane-cloud``: the ServiceAccount ``twinplane-system/twinplane-cloud`` of
  ``deploy/rbac.yaml``, with a token the API server issues for it (TokenRequest, as a pod's
  projected token), so its rights are exactly those the deploy folder's ClusterRoleBinding gives
  that ServiceAccount, reached through the same authenticator a pod's in-cluster config uses. Its
  kubeconfig exists once :meth:`KubeCluster.apply_deploy` has created the ServiceAccount.

The watch cache is on, as on any production API server: it is what sends bookmarks. A watch
served from it outlives an etcd compaction (the cache keeps its own history), so a watch that must
meet the compaction goes to a second API server over the same etcd with ``--watch-cache=false``
(:meth:`KubeCluster.uncached_kubeconfig`, started on first use), as several API servers share one
etcd in a highly available cluster. There a watch from a compacted version gets etcd's answer:
an ``ERROR`` event with a 410 ``Expired`` Status.

Start-up (certificates, etcd, kube-apiserver until ``/readyz``) took 3.2 s on this 2-core
machine, :meth:`KubeCluster.apply_deploy` 0.8 s, the uncached API server under 3 s more when a
test first asks for it, and stopping everything 2.2 s.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from needs import unavailable

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "tools/kube/build.sh"
DEPLOY = REPO / "deploy"

Identity = Literal["admin", "twinplane-cloud", "nobody"]

CRDS = (
    "devices.devices.kubeedge.io",
    "devicemodels.devices.kubeedge.io",
    "devicestatuses.devices.kubeedge.io",
    "devicecalls.twinplane.io",
)
"""The CRDs in ``deploy/crds/``, which :meth:`KubeCluster.apply_deploy` waits for."""

SERVICE_ACCOUNT = ("twinplane-system", "twinplane-cloud")
"""The namespace and name of the ServiceAccount of ``deploy/rbac.yaml``."""

SERVICE_IP_RANGE = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"  # the first address of the range: the ``kubernetes`` Service
ISSUER = "https://kubernetes.default.svc.cluster.local"

STARTS_WITHIN = 60.0
"""Seconds etcd or kube-apiserver may take to be ready before the session fails."""

STOPS_WITHIN = 10.0
"""Seconds a process has between SIGTERM and SIGKILL."""


def kube_bin_dir() -> Path:
    """The folder of etcd, kube-apiserver and kubectl; missing, the test fails under CI."""
    out = subprocess.run(  # noqa: S603 - our own script
        [str(BUILD), "--bin-dir"], capture_output=True, text=True, check=True, timeout=30
    )
    bin_dir = Path(out.stdout.strip())
    missing = [n for n in ("etcd", "kube-apiserver", "kubectl") if not (bin_dir / n).is_file()]
    if missing:
        unavailable(f"{', '.join(missing)} not built in {bin_dir} (make kube-tools builds them)")
    return bin_dir


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- certificates ----------------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        unavailable("openssl is not installed (Debian package openssl)")
    subprocess.run(  # noqa: S603 - fixed arguments
        [openssl, *args], cwd=cwd, check=True, capture_output=True, timeout=30
    )


def _issue(pki: Path, name: str, subject: str, *extensions: str) -> None:
    """A P-256 key ``name.key`` and a certificate ``name.crt`` for it, signed by the CA."""
    _openssl(
        "req", "-new", "-x509", "-nodes", "-days", "2",
        "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj", subject,
        "-CA", "ca.crt", "-CAkey", "ca.key",
        "-addext", "basicConstraints=critical,CA:FALSE",
        "-addext", "keyUsage=critical,digitalSignature,keyEncipherment",
        *(arg for ext in extensions for arg in ("-addext", ext)),
        cwd=pki,
    )  # fmt: skip


def make_pki(pki: Path) -> None:
    """The CA, the API server's serving certificate, two client certificates, the SA key pair."""
    pki.mkdir(parents=True)
    _openssl(
        "req", "-new", "-x509", "-nodes", "-days", "2",
        "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=twinplane-test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=pki,
    )  # fmt: skip
    names = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
    alt = ",".join(["IP:127.0.0.1", f"IP:{SERVICE_IP}", *(f"DNS:{n}" for n in names)])
    _issue(
        pki,
        "apiserver",
        "/CN=kube-apiserver",
        f"subjectAltName={alt}",
        "extendedKeyUsage=serverAuth",
    )
    _issue(pki, "admin", "/O=system:masters/CN=admin", "extendedKeyUsage=clientAuth")
    _issue(pki, "nobody", "/CN=nobody", "extendedKeyUsage=clientAuth")
    _openssl(
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "sa.key",
        cwd=pki,
    )
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


# -- processes -------------------------------------------------------------------------------------


def _spawn(argv: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 - our own binaries and flags
            list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after :data:`STOPS_WITHIN` s; waits for the exit either way."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(STOPS_WITHIN)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(STOPS_WITHIN)


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _wait_ready(
    proc: subprocess.Popen[bytes],
    url: str,
    log: Path,
    context: ssl.SSLContext | None = None,
) -> None:
    """Polls ``url`` until it answers 200; fails with the log's tail if the process dies first."""
    deadline = time.monotonic() + STARTS_WITHIN
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args!r} exited with {proc.returncode}:\n{_tail(log)}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=2, context=context) as answer,  # noqa: S310
        ):
            if answer.status == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready within {STARTS_WITHIN}s:\n{_tail(log)}")


@dataclass
class KubeCluster:
    """etcd and kube-apiserver on loopback, the kubeconfigs of three identities, and kubectl.

    Attributes:
        workdir: Holds the PKI, etcd's data, the logs and the kubeconfigs.
        bin_dir: Where etcd, kube-apiserver and kubectl are.
    """

    workdir: Path
    bin_dir: Path
    etcd_port: int = field(default_factory=free_port)
    port: int = field(default_factory=free_port)
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _uncached: Path | None = None

    @property
    def pki(self) -> Path:
        """The certificates and keys."""
        return self.workdir / "pki"

    @property
    def etcd_url(self) -> str:
        """The etcd client URL (plain HTTP on loopback; also its grpc-gateway's JSON API)."""
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def server(self) -> str:
        """The API server's URL."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def pids(self) -> dict[str, int]:
        """The process ids of ``etcd`` and ``kube-apiserver`` (the first one), for CPU figures."""
        return {"etcd": self._procs[0].pid, "apiserver": self._procs[1].pid}

    def kubeconfig(self, identity: Identity = "admin") -> Path:
        """The kubeconfig file of ``identity`` (``twinplane-cloud``: after :meth:`apply_deploy`)."""
        path = self.workdir / f"{identity}.kubeconfig"
        if not path.exists():
            raise AssertionError(f"no kubeconfig for {identity} yet: apply_deploy() writes it")
        return path

    # -- lifecycle

    def start(self) -> None:
        """Makes the PKI, starts etcd, then kube-apiserver, and writes the kubeconfigs."""
        make_pki(self.pki)
        self._start_etcd()
        self._start_apiserver(self.port, "kube-apiserver", watch_cache=True)
        for identity in ("admin", "nobody"):
            self._write_kubeconfig(identity, self.server, self._cert_user(identity))

    def stop(self) -> None:
        """Stops the API servers, then etcd (the last started first)."""
        while self._procs:
            _stop(self._procs.pop())

    def _start_etcd(self) -> None:
        peer = f"http://127.0.0.1:{free_port()}"
        log = self.workdir / "etcd.log"
        proc = _spawn(
            [
                str(self.bin_dir / "etcd"),
                "--name=test",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=test={peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
                # Progress notifications every second (etcd's default: 10 min) keep the watch
                # cache's version at etcd's, so its bookmarks carry versions a watcher has not
                # yet seen even while the watched resource is quiet.
                "--watch-progress-notify-interval=1s",
            ],
            log,
        )
        self._procs.append(proc)
        _wait_ready(proc, f"{self.etcd_url}/health", log)

    def _start_apiserver(self, port: int, name: str, *, watch_cache: bool) -> None:
        pki = self.pki
        log = self.workdir / f"{name}.log"
        proc = _spawn(
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / name}",  # unused: the files below are given
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={ISSUER}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_IP_RANGE}",
                f"--watch-cache={str(watch_cache).lower()}",
                # The kubernetes Service's endpoints may not be a loopback address; nothing
                # here reaches the API server through that Service.
                "--endpoint-reconciler-type=none",
                "--v=1",
            ],
            log,
        )
        self._procs.append(proc)
        _wait_ready(proc, f"https://127.0.0.1:{port}/readyz", log, self._ssl_context())

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        context.load_cert_chain(self.pki / "admin.crt", self.pki / "admin.key")
        return context

    def _cert_user(self, identity: str) -> dict[str, str]:
        return {
            "client-certificate": str(self.pki / f"{identity}.crt"),
            "client-key": str(self.pki / f"{identity}.key"),
        }

    def _write_kubeconfig(
        self, identity: str, server: str, user: dict[str, str], path: Path | None = None
    ) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "twinplane-test",
                    "cluster": {
                        "server": server,
                        "certificate-authority": str(self.pki / "ca.crt"),
                    },
                }
            ],
            "users": [{"name": identity, "user": user}],
            "contexts": [
                {"name": identity, "context": {"cluster": "twinplane-test", "user": identity}}
            ],
            "current-context": identity,
        }
        path = path or self.workdir / f"{identity}.kubeconfig"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path

    # -- helpers for the tests

    def kubectl(
        self, *args: str, identity: Identity = "admin", stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Runs kubectl as ``identity``; with ``check``, a non-zero exit fails with its stderr."""
        argv = [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig(identity)}", *args]
        done = subprocess.run(  # noqa: S603 - our own kubectl
            argv, input=stdin, capture_output=True, text=True, check=False, timeout=60
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {done.returncode}:\n{done.stderr}"
            )
        return done

    def apply_deploy(self) -> None:
        """``kubectl apply -f deploy/ -R``, waits for the CRDs to be Established.

        Then writes the ``twinplane-cloud`` kubeconfig with a token for the ServiceAccount just
        created. Applying again changes nothing and issues a fresh token.
        """
        self.kubectl("apply", "-f", str(DEPLOY), "-R")
        self.kubectl(
            "wait", "--for=condition=Established", "--timeout=30s", *(f"crd/{c}" for c in CRDS)
        )
        namespace, name = SERVICE_ACCOUNT
        token = self.kubectl("create", "token", name, "-n", namespace, "--duration=2h").stdout
        self._write_kubeconfig("twinplane-cloud", self.server, {"token": token.strip()})

    def compact_etcd(self) -> int:
        """Compacts etcd to its current revision (physically); that revision.

        Through etcd's grpc-gateway: ``/v3/kv/range`` for the header's revision, then
        ``/v3/kv/compaction``. Every resourceVersion before it is gone from etcd.
        """
        header = self._etcd(
            "/v3/kv/range", {"key": base64.b64encode(b"/").decode(), "count_only": True}
        )
        revision = int(header["header"]["revision"])
        self._etcd("/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    def _etcd(self, path: str, body: dict[str, object]) -> dict[str, dict[str, str]]:
        request = urllib.request.Request(  # noqa: S310 - our own loopback etcd
            self.etcd_url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            result: dict[str, dict[str, str]] = json.load(answer)
            return result

    def uncached_kubeconfig(self) -> Path:
        """The ``admin`` kubeconfig of a second API server over this etcd, without watch cache.

        Started on the first call; stopped with the cluster.
        """
        if self._uncached is None:
            port = free_port()
            self._start_apiserver(port, "kube-apiserver-uncached", watch_cache=False)
            self._uncached = self._write_kubeconfig(
                "admin",
                f"https://127.0.0.1:{port}",
                self._cert_user("admin"),
                self.workdir / "admin-uncached.kubeconfig",
            )
        return self._uncached


@contextlib.contextmanager
def running_kube_cluster(workdir: Path) -> Iterator[KubeCluster]:
    """A started :class:`KubeCluster` working in ``workdir``; every process stopped on exit."""
    cluster = KubeCluster(workdir, kube_bin_dir())
    try:
        cluster.start()  # inside: a half-started cluster is stopped too
        yield cluster
    finally:
        cluster.stop()
