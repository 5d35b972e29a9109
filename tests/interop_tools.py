"""The Go programs of interop/go (KubeEdge's own code), built by tools/interop/build.sh.

:func:`interop_binary` builds what is missing (a cache outside the clone keeps the binaries, so
after the first build this costs one hash of the sources) and returns the program's path. Without
Go the test fails under CI and skips elsewhere (:func:`needs.unavailable`).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

from needs import unavailable

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "tools" / "interop" / "build.sh"


@functools.cache
def _bin_dir() -> Path:
    if shutil.which("go") is None:
        unavailable("Go is not installed: the KubeEdge interop programs (interop/go) need it")
    done = subprocess.run(  # noqa: S603 - our own script
        [str(BUILD)], capture_output=True, text=True, timeout=900, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"tools/interop/build.sh failed:\n{done.stdout}\n{done.stderr}")
    out = subprocess.run(  # noqa: S603
        [str(BUILD), "--bin-dir"], capture_output=True, text=True, timeout=60, check=True
    )
    return Path(out.stdout.strip())


def interop_binary(name: str) -> Path:
    """The path of interop/go's program ``name`` (``cmd/<name>``), built if needed."""
    path = _bin_dir() / name
    assert path.is_file(), f"tools/interop/build.sh built no {name} in {path.parent}"
    return path
