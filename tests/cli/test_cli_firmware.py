"""``twinplane firmware push|get|delete`` against a real ``twinplane edge``."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from edge_helpers import edge_command, edge_process


def twinplane(server: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI against ``server``."""
    return subprocess.run(  # noqa: S603 - our own command
        [*edge_command(), *args, "--server", server],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_push_get_and_delete_a_firmware_image(tmp_path: Path) -> None:
    """An image pushed is listed with its digest; delete removes it.

    A changed file under the same version is refused, naming the conflict.
    """
    image = tmp_path / "thermo-1.3.bin"
    image.write_bytes(os.urandom(2 * 1024 * 1024 + 3))  # over one read of the CLI
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    with edge_process() as edge:
        edge.start()
        pushed = twinplane(
            edge.url, "firmware", "push", str(image), "--name", "thermo-fw", "--version", "1.3",
            "--model", "sim-thermostat",
        )  # fmt: skip
        assert pushed.returncode == 0, pushed.stderr
        assert f"sha256 {digest}" in pushed.stdout
        listed = twinplane(edge.url, "firmware", "get")
        assert listed.returncode == 0, listed.stderr
        assert "thermo-fw" in listed.stdout
        assert "default/sim-thermostat" in listed.stdout
        assert digest[:12] in listed.stdout
        one = twinplane(edge.url, "firmware", "get", "thermo-fw", "1.3", "-o", "json")
        assert f'"sha256": "{digest}"' in one.stdout

        image.write_bytes(b"another build")
        again = twinplane(
            edge.url, "firmware", "push", str(image), "--name", "thermo-fw", "--version", "1.3",
            "--model", "sim-thermostat",
        )  # fmt: skip
        assert again.returncode == 1
        assert "immutable" in again.stderr

        missing = twinplane(
            edge.url, "firmware", "push", str(tmp_path / "nope.bin"), "--name", "x",
            "--version", "1", "--model", "m",
        )  # fmt: skip
        assert missing.returncode == 1
        assert "nope.bin" in missing.stderr

        gone = twinplane(edge.url, "firmware", "delete", "thermo-fw", "1.3")
        assert gone.returncode == 0, gone.stderr
        assert "No firmware found" in twinplane(edge.url, "firmware", "get").stderr
