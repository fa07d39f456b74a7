"""Writing turns into a seed-004 inbox folder: ``.asc`` first, nothing overwritten, nothing half-written.

Seed 004's receivers act on ``*.org`` files and verify each against the
``<file>.asc`` beside it, so a ``.org`` must never be visible without its
signature, and a file a receiver sees must be complete. Its sender wrote each
file under a temporary name starting ``.tmp.`` (which receivers and the
watcher skip) and renamed it into place, the ``.asc`` before the ``.org``.

:func:`place` keeps those rules and adds two the seed lacked:

* **nothing is overwritten.** The seed's rename silently replaced a message
  sent twice in one second under the same name. Here the final name is made
  with ``link(2)``, which fails when the name exists: an existing identical
  file counts as already written, and a different one makes the turn take
  the next free name of :func:`candidates`;
* **durable in order.** Each file is fsynced before it is linked, and the
  folder is fsynced after the ``.asc`` is linked and before the ``.org`` is,
  so after a crash a ``.org`` never survives without its ``.asc``;
* **only its own file.** Others may write the folder (seed 004's peers did):
  a staging file swapped for a symlink is never followed into place, and a
  FIFO under a name is never waited on.

:func:`place_all` does the same for a page of turns with far fewer disk
waits (concurrent fsyncs of the temporary files, one folder fsync per phase).
On a filesystem without hard links the final step is a rename after a check
that the name is free (a concurrent writer of the same name could then win
the race; the file it leaves is still complete).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordhub.core.orgturn import parse_timestamp
from coordhub.errors import Invalid

TMP_PREFIX = ".tmp."  # seed 004: receivers and the watcher ignore files starting with it
# A file name the hub may give a turn: what receivers glob for (*.org), nothing hidden, no path.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}\.org")
_NO_LINK = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK)
_NO_FOLLOW: dict[str, bool] = {"follow_symlinks": False} if os.link in os.supports_follow_symlinks else {}


@dataclass(frozen=True)
class Placed:
    """Where a turn's file is: ``name`` in the folder; ``written`` False when an identical file was already there."""

    name: str
    written: bool
    renamed: bool  # not the turn's own file_name: that name held a different file


def read_capped(path: Path, limit: int, what: str) -> bytes:
    """The bytes of ``path``, reading at most ``limit + 1`` of them whatever its size; ``Invalid`` (naming ``what``
    and its size) when it holds more than ``limit``, ``OSError`` when it cannot be read.

    For files someone else may have put in an inbox: a sparse or huge file must cost a receiver ``limit`` bytes,
    not its size in memory.
    """
    with open(path, "rb") as f:
        data = f.read(limit + 1)
        size = os.fstat(f.fileno()).st_size
    if len(data) > limit:
        raise Invalid(f"{what} is {max(size, len(data))} bytes; the limit is {limit}", limit=limit)
    return data


def candidates(turn: dict[str, Any]) -> Iterator[str]:
    """The names a turn may take, in order: its ``file_name``, then ``<stem>-t<id>.org``, ``<stem>-t<id>-2.org`` …

    Each alternative keeps the seed's readable pattern and names the hub's turn
    id, so two different turns can never need the same name. A ``file_name``
    that is not a plain ``*.org`` name (a path, a hidden file) is replaced by
    ``turn-<id>.org``.
    """
    name = str(turn.get("file_name") or "")
    if not _NAME.fullmatch(name) or name.startswith(TMP_PREFIX):
        name = f"turn-{int(turn['id'])}.org"
    yield name
    stem = name.removesuffix(".org")
    yield f"{stem}-t{int(turn['id'])}.org"
    for n in range(2, 1000):
        yield f"{stem}-t{int(turn['id'])}-{n}.org"


def mtime_of(turn: dict[str, Any]) -> float | None:
    """The turn's arrival at the hub as a POSIX time (seed 004's status takes a file's mtime as its arrival)."""
    try:
        return parse_timestamp(str(turn.get("created_at") or turn.get("timestamp") or "")).timestamp()
    except ValueError:
        return None


def place(folder: Path, turn: dict[str, Any]) -> Placed:
    """Write ``turn`` (a turn as the hub renders it) into ``folder``, or find it already there.

    The ``.org`` holds exactly ``turn["content"]`` (for a signed turn, the
    signed bytes) and ``<name>.asc`` exactly ``turn["signature"]``. A name is
    used only if it is free or already holds these exact bytes: an unsigned
    turn never takes a name whose ``.asc`` exists (a receiver would pair them).
    Creates ``folder`` if needed. Raises ``OSError`` when the folder cannot be
    written, ``RuntimeError`` when no candidate name is usable.
    """
    content = str(turn["content"]).encode("utf-8")
    signature = turn.get("signature")
    sig = str(signature).encode("utf-8") if signature else None
    folder.mkdir(parents=True, exist_ok=True)
    mtime = mtime_of(turn)
    first = None
    for name in candidates(turn):
        first = first or name
        written = _try(folder, name, content, sig, mtime)
        if written is not None:
            return Placed(name, written, name != first)
    raise RuntimeError(f"no free name in {folder} for turn {turn['id']}")


def _try(folder: Path, name: str, content: bytes, sig: bytes | None, mtime: float | None) -> bool | None:
    """Put the pair under ``name``: True written, False already there, None when ``name`` holds something else."""
    org, asc = folder / name, folder / f"{name}.asc"
    asc_state = _holds(asc, sig)
    if sig is None and asc_state is not None:
        return None  # a signature of something else waits under this name
    if sig is not None and asc_state is False:
        return None
    org_state = _holds(org, content)
    if org_state is False:
        return None
    if org_state is True and (sig is None or asc_state is True):
        return False
    made_asc = False
    if sig is not None and asc_state is None:
        made = _create(folder, asc.name, sig, mtime)
        if made is False and _holds(asc, sig) is not True:
            return None  # another writer put a different signature here meanwhile
        made_asc = bool(made)
    if org_state is True:  # the .org was there and only its .asc was missing
        return True
    made = _create(folder, name, content, mtime)
    if made is False and _holds(org, content) is not True:
        if made_asc:
            with contextlib.suppress(OSError):
                asc.unlink()
        return None
    return bool(made) or made_asc


def _holds(path: Path, data: bytes | None) -> bool | None:
    """None when ``path`` does not exist; else whether it holds exactly ``data`` (False for anything but a regular
    file: opened without blocking, so a FIFO someone left under a turn's name is never waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        return False
    with os.fdopen(fd, "rb") as f:
        if data is None or not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        return f.read(len(data) + 1) == data


def _create(folder: Path, name: str, data: bytes, mtime: float | None) -> bool:
    """Create ``folder/name`` holding ``data`` via a fsynced ``.tmp.`` file; False when the name already exists."""
    tmp = _staged(folder, name, data, mtime)
    try:
        made = _link(tmp, folder / name, fallback=True)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    if made:
        _fsync_dir(folder)
    return bool(made)


def _staged(folder: Path, name: str, data: bytes, mtime: float | None) -> Path:
    """A new ``.tmp.…-<name>`` file in ``folder`` holding ``data``, fsynced, with ``mtime``; its path."""
    tmp = folder / f"{TMP_PREFIX}{secrets.token_hex(6)}-{name}"
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            if mtime is not None:  # on the descriptor: the name may be something else by now (see _link)
                os.utime(f.fileno(), (mtime, mtime))
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def _link(tmp: Path, final: Path, fallback: bool) -> bool | None:
    """Give ``tmp`` the name ``final`` unless it exists: True made, False exists, None when the filesystem has no
    hard links and ``fallback`` is off (with it: rename after checking the name is free).

    Whoever else can write the folder may rename a symlink over ``tmp`` before this runs: the link is made to
    ``tmp`` itself, never to what a symlink there points at (``os.link`` follows one by default, which put the
    target, any file of the user's, into the folder under the turn's name), and a name that then holds anything
    but a regular file is removed again: ``OSError`` (EPERM).
    """
    try:
        os.link(tmp, final, **_NO_FOLLOW)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
        if not fallback:
            return None
        if os.path.lexists(final):
            return False
        os.rename(tmp, final)
    if not stat.S_ISREG(os.lstat(final).st_mode):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(final)
        raise OSError(errno.EPERM, f"{tmp.name} was replaced while being written (by something other than a "
                                   f"regular file): {final.name} not placed")
    return True


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class _Job:
    """One turn of a batch whose name was free when looked at."""

    index: int
    folder: Path
    name: str
    first: str
    content: bytes
    sig: bytes | None
    mtime: float | None
    staged: list[Path] = field(default_factory=list)  # [.asc tmp,] .org tmp
    linked_asc: bool = False
    failed: bool = False  # its name was taken meanwhile (or no hard links): it goes through place()
    done: bool = False


def _state(folder: Path, name: str, content: bytes, sig: bytes | None) -> str:
    """``free``, ``present`` (these exact files), ``taken`` (something else) or ``partial`` (half of the pair)."""
    asc_state = _holds(folder / f"{name}.asc", sig)
    org_state = _holds(folder / name, content)
    if org_state is False or asc_state is False or (sig is None and asc_state is not None):
        return "taken"
    if org_state is True and (sig is None or asc_state is True):
        return "present"
    return "free" if org_state is None and asc_state is None else "partial"


def place_all(items: Sequence[tuple[Path, dict[str, Any]]], workers: int = 32) -> list[Placed]:
    """:func:`place` for many turns at once, with the same rules and guarantees, in far fewer disk waits.

    Every temporary file is written and fsynced first (concurrently: the
    filesystem commits concurrent fsyncs together), then every ``.asc`` is
    linked and each folder fsynced, then every ``.org`` is linked and each
    folder fsynced again. So no ``.org`` becomes visible, or durable, before
    its ``.asc``. A name found taken meanwhile, half of a pair already there
    or a filesystem without hard links sends that turn through :func:`place`.
    Returns one :class:`Placed` per item, in order; raises like :func:`place`.
    """
    results: list[Placed | None] = [None] * len(items)
    jobs: list[_Job] = []
    slow: list[int] = []
    claimed: set[Path] = set()
    for i, (folder, turn) in enumerate(items):
        folder.mkdir(parents=True, exist_ok=True)
        content = str(turn["content"]).encode("utf-8")
        sig = str(turn["signature"]).encode("utf-8") if turn.get("signature") else None
        first = ""
        for name in candidates(turn):
            first = first or name
            state = "taken" if folder / name in claimed else _state(folder, name, content, sig)
            if state == "taken":
                continue
            if state == "present":
                results[i] = Placed(name, False, name != first)
            elif state == "partial":
                slow.append(i)
            else:
                claimed.add(folder / name)
                jobs.append(_Job(i, folder, name, first, content, sig, mtime_of(turn)))
            break
        else:
            raise RuntimeError(f"no free name in {folder} for turn {turn['id']}")
    try:
        _stage_all(jobs, workers)
        _link_all(jobs, asc=True)
        _link_all(jobs, asc=False)
    finally:
        for job in jobs:
            for tmp in job.staged:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
    for job in jobs:
        if job.done:
            results[job.index] = Placed(job.name, True, job.name != job.first)
        else:
            slow.append(job.index)
    for i in sorted(slow):
        results[i] = place(*items[i])
    return [r for r in results if r is not None]


def _stage_all(jobs: list[_Job], workers: int) -> None:
    def stage(job: _Job) -> None:
        if job.sig is not None:
            job.staged.append(_staged(job.folder, f"{job.name}.asc", job.sig, job.mtime))
        job.staged.append(_staged(job.folder, job.name, job.content, job.mtime))

    if jobs:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool:
            for _ in pool.map(stage, jobs):
                pass


def _link_all(jobs: list[_Job], asc: bool) -> None:
    """Link every job's ``.asc`` (``asc``) or ``.org``, then fsync each folder touched."""
    folders = set()
    for job in jobs:
        if asc and job.sig is not None:
            job.linked_asc = _link(job.staged[0], job.folder / f"{job.name}.asc", fallback=False) is True
            job.failed = not job.linked_asc
            folders.add(job.folder)
        elif not asc and not job.failed:
            job.done = _link(job.staged[-1], job.folder / job.name, fallback=False) is True
            if not job.done and job.linked_asc:
                with contextlib.suppress(OSError):
                    (job.folder / f"{job.name}.asc").unlink()
            folders.add(job.folder)
    for folder in folders:
        _fsync_dir(folder)
