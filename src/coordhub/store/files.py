"""Private files and directories: what the hub keeps on disk is readable by its user only.

The database, its ``-wal``/``-shm`` files and ``admin.token`` hold session
state and secrets, so files are 0600 and every directory the hub creates is
0700 (issue 7, point 6), wherever they live (``--database-url
sqlite:///elsewhere/x.db`` included). Modes are set explicitly, not left to
the umask.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> list[Path]:
    """Create ``path`` and any missing parents with mode 0700; return the directories created (outermost first).

    Directories that already exist are left as they are (the data dir's own
    check is :func:`tighten_dir`). Raises ``OSError`` when one cannot be created.
    """
    missing = [p for p in (path, *path.parents) if not p.exists()]
    created = []
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # made by someone else meanwhile: not ours to change
        os.chmod(directory, DIR_MODE)  # mkdir's mode is filtered by the umask
        created.append(directory)
    return created


def tighten_dir(path: Path) -> int | None:
    """Make an existing directory 0700 if group or others may use it; return its old mode, or None if it was private.

    Raises ``PermissionError`` when the directory belongs to another user.
    """
    mode = stat.S_IMODE(path.stat().st_mode)
    if not mode & 0o077:
        return None
    os.chmod(path, mode & ~0o077 | DIR_MODE)
    return mode


def private_file(path: Path) -> int | None:
    """Create ``path`` empty with mode 0600, or make an existing file 0600; return its old mode if it changed.

    SQLite gives a database's ``-wal``, ``-shm`` and journal files the mode of
    the database file, so a 0600 database keeps its companions 0600 too.
    Raises ``OSError`` when the file cannot be created or changed.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode == FILE_MODE:
            return None
        os.fchmod(fd, FILE_MODE)
        return mode
    finally:
        os.close(fd)
