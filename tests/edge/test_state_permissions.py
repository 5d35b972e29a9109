"""``twinplane edge`` and ``twinplane mapper`` keep their state and sockets to their owner.

Both run as subprocesses under umask 0, the most permissive there is: what they create must be
0600 (files, sockets) and 0700 (folders) all the same.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from edge_helpers import EdgeProcess, edge_process, thermo_model
from raw_http import request
from twinplane.rest.guard import CLIENT_HEADER


def mode(path: Path) -> int:
    """The permission bits of ``path``."""
    return stat.S_IMODE(path.lstat().st_mode)


async def apply_model(edge: EdgeProcess) -> None:
    """An apply, so the database has written through its WAL."""
    headers = {"Content-Type": "application/yaml", CLIENT_HEADER: "tests"}
    body = thermo_model("temperature").encode()
    answer = await request(edge.url, "POST", "/api/v1/apply", headers, body)
    assert answer.status == 200, answer.body


def state_files(edge: EdgeProcess) -> dict[str, int]:
    """The modes of the database, its side files and the DMI socket, by name."""
    files = [edge.db, edge.db.with_name("edge.db-wal"), edge.db.with_name("edge.db-shm")]
    return {p.name: mode(p) for p in [*files, edge.socket]}


async def test_edge_state_is_owner_only_under_umask_0() -> None:
    """edge.db, -wal, -shm and dmi.sock are 0600, state/ and run/ 0700, with umask 0."""
    with edge_process("--log-level", "warning", umask=0) as edge:
        edge.start()
        await apply_model(edge)
        assert state_files(edge) == dict.fromkeys(
            ["edge.db", "edge.db-wal", "edge.db-shm", "dmi.sock"], 0o600
        )
        assert mode(edge.home / "state") == mode(edge.home / "run") == 0o700
        assert edge.terminate() == 0, edge.output()


async def test_a_world_readable_database_of_an_earlier_release_is_tightened() -> None:
    """A database left 0644 (an older release's umask) is 0600 after the next start."""
    with edge_process("--log-level", "warning", umask=0) as edge:
        edge.start()
        await apply_model(edge)
        assert edge.terminate() == 0, edge.output()
        for path in edge.db.parent.iterdir():
            path.chmod(0o644)
        edge.start()
        await apply_model(edge)
        assert {name: m for name, m in state_files(edge).items() if name != "dmi.sock"} == {
            "edge.db": 0o600,
            "edge.db-wal": 0o600,
            "edge.db-shm": 0o600,
        }
        assert edge.terminate() == 0, edge.output()


def test_mapper_socket_is_owner_only_under_umask_0() -> None:
    """``twinplane mapper``'s socket is 0600 and its new folder 0700, with umask 0."""
    with edge_process("--log-level", "warning") as edge:
        edge.start()
        socket_path = edge.home / "mapper" / "virtual.sock"
        where = ["--socket", str(socket_path), "--edgecore-sock", str(edge.socket)]
        args = [*where, "--http-port", "0", "--log-level", "warning"]
        with subprocess.Popen(  # noqa: S603 - our own command
            [sys.executable, "-m", "twinplane.cli", "mapper", "--protocol", "virtual", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            umask=0,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        ) as proc:
            try:
                assert proc.stdout is not None
                lines: list[bytes] = []  # the banner is printed once every part started
                while not (lines and lines[-1].startswith(b"twinplane mapper")):
                    line = proc.stdout.readline()
                    assert line, f"the mapper ended: {b''.join(lines)!r}"
                    lines.append(line)
                assert mode(socket_path) == 0o600
                assert mode(socket_path.parent) == 0o700
            finally:
                proc.terminate()
                proc.wait(timeout=30)
