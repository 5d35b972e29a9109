"""A self-signed certificate and key for trying the cloud over TLS (``twinplane cloud certs``).

Made with the ``openssl`` command (present wherever TLS is). For production, use certificates
from your own CA; the edge then trusts that CA (``twinplane edge --cloud-ca FILE``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from twinplane.errors import TwinplaneError
from twinplane.owner_only import make_dirs

__all__ = ["make_self_signed"]


def make_self_signed(out_dir: Path, hosts: list[str], *, days: int = 365) -> tuple[Path, Path]:
    """Writes ``cloud.crt`` and ``cloud.key`` (0600) to ``out_dir``, valid for ``hosts``.

    Returns:
        The certificate's and the key's paths.

    Raises:
        TwinplaneError: ``openssl`` is missing or failed (its message included).
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise TwinplaneError("'openssl' not found: install it to make a certificate")
    make_dirs(out_dir)
    crt, key = out_dir / "cloud.crt", out_dir / "cloud.key"
    names = []
    for host in hosts:
        kind = "IP" if host.replace(".", "").isdigit() or ":" in host else "DNS"
        names.append(f"{kind}:{host}")
    cmd = [
        openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-sha256", "-days", str(days), "-subj", f"/CN={hosts[0]}",
        "-addext", "subjectAltName=" + ",".join(names),
        "-keyout", str(key), "-out", str(crt),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise TwinplaneError(f"openssl failed: {done.stderr.strip()}")
    key.chmod(0o600)
    return crt, key
