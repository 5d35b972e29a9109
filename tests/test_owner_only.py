"""Folders, files and sockets for their owner only, under the most permissive umask (0)."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from twinplane.owner_only import creating, make_dirs, prepare_socket, private_file


def mode(path: Path) -> int:
    """The permission bits of ``path`` (not following a symlink)."""
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Umask 0 for the test: every mode comes out as asked, nothing narrowed."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("open_umask")
def test_make_dirs_creates_each_missing_folder_0700(tmp_path: Path) -> None:
    """Every folder it creates is 0700; one that existed keeps its mode."""
    tmp_path.chmod(0o755)
    make_dirs(tmp_path / "a" / "b" / "c")
    for folder in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert mode(folder) == 0o700, folder
    assert mode(tmp_path) == 0o755
    make_dirs(tmp_path / "a")  # exists: nothing to do
    assert mode(tmp_path / "a") == 0o700


@pytest.mark.usefixtures("open_umask")
def test_private_file_creates_0600_and_tightens_an_existing_file(tmp_path: Path) -> None:
    """A new file is 0600; an existing world-readable one becomes 0600, its bytes kept."""
    new = tmp_path / "new.db"
    private_file(new)
    assert (mode(new), new.read_bytes()) == (0o600, b"")
    old = tmp_path / "old.db"
    old.write_bytes(b"kept")
    old.chmod(0o666)
    private_file(old)
    assert (mode(old), old.read_bytes()) == (0o600, b"kept")


@pytest.mark.usefixtures("open_umask")
def test_a_socket_bound_while_creating_is_0600_at_once(tmp_path: Path) -> None:
    """A Unix socket bound in the block is 0600 already inside it; the umask is restored."""
    path = tmp_path / "s.sock"
    with contextlib.closing(socket.socket(socket.AF_UNIX)) as sock:
        with creating(path):
            sock.bind(str(path))
            assert mode(path) == 0o600  # no moment with a wider mode
        assert mode(path) == 0o600
    assert os.umask(0) == 0  # restored to the fixture's


@pytest.mark.usefixtures("open_umask")
def test_prepare_socket_makes_folders_and_removes_a_stale_socket(tmp_path: Path) -> None:
    """Missing folders of a socket path are 0700; a stale socket file is removed."""
    path = tmp_path / "run" / "x" / "dmi.sock"
    prepare_socket(path)
    assert mode(tmp_path / "run") == mode(tmp_path / "run" / "x") == 0o700
    with contextlib.closing(socket.socket(socket.AF_UNIX)) as sock:
        sock.bind(str(path))
    assert path.exists()
    prepare_socket(path)
    assert not path.exists()
