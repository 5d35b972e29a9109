"""State files, folders and sockets that only their owner can use, whatever the umask.

The device manager's database holds every device's address and twin; the DMI socket and a
mapper's socket take lifecycle and twin calls without authentication. So the folders twinplane
creates for them are 0700, the database file is 0600 (SQLite gives its ``-wal`` and ``-shm``
files the database's mode), and a socket is 0600 from the moment it exists: it is bound under
umask 0o177, then set to 0600 in case the binding ignored the umask. Folders that exist already
(an operator's ``/etc/kubeedge``) are left as they are.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

__all__ = ["DIR_MODE", "FILE_MODE", "creating", "make_dirs", "prepare_socket", "private_file"]

DIR_MODE: Final = 0o700
"""Mode of the folders twinplane creates."""

FILE_MODE: Final = 0o600
"""Mode of state files and sockets."""

_UMASK: Final = 0o177  # what leaves FILE_MODE of a new file's 0o777


def make_dirs(path: Path) -> None:
    """Creates ``path`` and its missing parents, each one it creates with mode 0700."""
    missing: list[Path] = []
    here = path
    while not here.exists():
        missing.append(here)
        if here.parent == here:
            break
        here = here.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:  # made meanwhile by someone else: theirs
            continue
        folder.chmod(DIR_MODE)  # mkdir's mode is narrowed by the umask, never widened


def private_file(path: Path) -> None:
    """Creates ``path`` empty if it is missing; either way, makes it mode 0600."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


@contextlib.contextmanager
def creating(path: Path) -> Iterator[None]:
    """The block creates ``path`` (binds a socket there): mode 0600 from its first moment.

    The process's umask is 0o177 during the block (it is process-wide: another thread creating
    a file meanwhile gets a stricter mode, never a wider one), and ``path`` is set to 0600 after.
    """
    old = os.umask(_UMASK)
    try:
        yield
    finally:
        os.umask(old)
    path.chmod(FILE_MODE)


def prepare_socket(path: Path) -> None:
    """Creates a socket's missing folders (0700) and removes a stale socket file at ``path``."""
    make_dirs(path.parent)
    if path.exists() or path.is_symlink():
        path.unlink()
