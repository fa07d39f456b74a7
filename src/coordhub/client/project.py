"""The places a client keeps things: the project's git root, what git tracks, the user's own directories.

Standard library only, and no ``subprocess`` import (it costs ~3 ms): the edit
hook imports this before every edit. Git is found by looking for ``.git``
upwards (a directory, or a ``gitdir:`` file for worktrees and submodules);
``git`` itself runs only to ask whether it tracks a file.

The user's directories follow the XDG Base Directory spec: configuration
(the queue's signing key, trusted URLs) in ``$XDG_CONFIG_HOME/coordhub``, else
``~/.config/coordhub``; state (the softfail queue outside any project) in
``$XDG_STATE_HOME/coordhub``, else ``~/.local/state/coordhub``. Both are
created 0700, and files holding secrets in them 0600.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

EXCLUDE_HEADER = "# coordhub: files it writes into this working tree, never to be committed"
# git's options for asking about a repository whose files (``.git/config`` included, when it came in an
# archive) an attacker may have written: pathspecs are literal (git(1) --literal-pathspecs), and no
# configured command runs (core.fsmonitor is the one ls-files and rev-parse would run; git-config(1)).
GIT_SAFE = ("--literal-pathspecs", "-c", "core.fsmonitor=false")
MAX_EXCLUDE_BYTES = 1024 * 1024  # an info/exclude larger than this is not read (nor added to)
MAX_JSON_BYTES = 16 * 1024 * 1024  # a state or config JSON file larger than this reads as missing
MAX_GITFILE_BYTES = 64 * 1024  # a .git file (``gitdir: <path>``) or commondir longer than this is not git's
GIT_SECONDS = 10.0  # how long git may take to say whether it tracks a file; past it, it cannot say


def git_root(start: Path) -> Path | None:
    """The top of the git working tree containing ``start`` (``start`` itself included), else None."""
    here = Path(os.path.abspath(start))
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return None


def git_dir(root: Path) -> Path | None:
    """The repository's common git directory (where ``info/exclude`` lives) for the working tree ``root``.

    A linked worktree's ``.git`` file names ``<main>/.git/worktrees/<name>``,
    whose ``commondir`` leads back to ``<main>/.git``; a submodule's names its
    own directory under the superproject's ``.git/modules``.
    """
    dotgit = root / ".git"
    if dotgit.is_dir():
        return dotgit
    line = _small_text(dotgit)
    if line is None or not line.startswith("gitdir:"):
        return None
    gitdir = Path(line.removeprefix("gitdir:").strip())
    gitdir = gitdir if gitdir.is_absolute() else root / gitdir
    common = _small_text(gitdir / "commondir")
    return gitdir if common is None else (gitdir / common).resolve()


def _small_text(path: Path) -> str | None:
    """The stripped text of the regular file ``path`` (symlinks followed), or None when it is missing, not a regular
    file, over :data:`MAX_GITFILE_BYTES` or not UTF-8: a ``.git`` file an archive brought may be a FIFO (read
    without ``O_NONBLOCK``, it waits for a writer for ever) or a symlink to ``/dev/zero`` (never ends)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            raw = f.read(MAX_GITFILE_BYTES + 1)
        except OSError:
            return None
    if len(raw) > MAX_GITFILE_BYTES:
        return None
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None


def tracked(root: Path, path: Path) -> bool | None:
    """Whether git tracks ``path`` in the working tree ``root``: True, False, or None when git cannot say.

    Runs ``git ls-files --error-unmatch`` (exit 0: tracked, 1: not) with the
    caller's ``GIT_*`` variables removed, so a git hook's own ``GIT_DIR`` or
    ``GIT_INDEX_FILE`` does not change the answer. None when git is missing
    or fails (e.g. a repository owned by another user), and when it has not
    answered within :data:`GIT_SECONDS` (it is killed): a repository that
    came in an archive may hold a FIFO where git reads its index, HEAD or
    config, and git waits on it for ever.

    The repository is not trusted (:data:`GIT_SAFE`): the path is a literal
    pathspec, so a first directory named ``:x`` is not read as pathspec magic
    (which made a tracked file look untracked), and the repository's own
    ``.git/config`` cannot make git run a command (``core.fsmonitor``).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    try:
        rel = os.path.relpath(path, root)
        null = os.open(os.devnull, os.O_RDWR)
        try:
            argv = ["git", *GIT_SAFE, "-C", str(root), "ls-files", "--error-unmatch", "--", rel]
            pid = os.posix_spawnp("git", argv, env,
                                  file_actions=[(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1),
                                                (os.POSIX_SPAWN_DUP2, null, 2)])
        finally:
            os.close(null)
        status = _wait(pid, time.monotonic() + GIT_SECONDS)
    except OSError:
        return None
    if status is None:
        return None
    code = os.waitstatus_to_exitcode(status)
    return True if code == 0 else False if code == 1 else None


def _wait(pid: int, deadline: float) -> int | None:
    """The wait status of the child ``pid``, or None after killing it (``SIGKILL``) when it is still running at
    ``deadline`` (``time.monotonic()``).

    Waits on a pidfd (Linux), which wakes the moment the child ends; where
    there is none, polls with a pause doubled from 0.5 ms up to 50 ms.
    """
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux, or a kernel before 5.3
        pidfd = None
    if pidfd is not None:
        import select

        try:
            waiting = select.poll()  # not select.select: it refuses a descriptor past 1023 (FD_SETSIZE)
            waiting.register(pidfd, select.POLLIN)
            ended = waiting.poll(max(0.0, deadline - time.monotonic()) * 1000)  # milliseconds
        finally:
            os.close(pidfd)
        if ended:
            return os.waitpid(pid, 0)[1]
    else:
        pause = 0.0005
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def exclude(root: Path, patterns: tuple[str, ...]) -> Path | None:
    """Add each pattern not yet there to the repository's ``.git/info/exclude``; the file, or None outside git.

    ``info/exclude`` rather than ``.gitignore``: it ignores the files for this
    clone without changing a tracked file (gitignore(5)). Patterns are
    anchored (``/.claude/…``) so they name exactly the files written. Errors
    (a read-only repository) are swallowed: ignoring is a courtesy, never a
    reason to fail a write. So is an ``info`` or ``exclude`` that is a
    symlink or not this user's regular file (an archive's ``.git`` may hold
    one): it is left alone and None returned; and so is a git directory
    without a ``HEAD``, which is none (an archive's ``.git`` file may say
    ``gitdir: ~/.ssh``, and ``info/exclude`` would be made there).
    """
    common = git_dir(root)
    if common is None or not (common / "HEAD").is_file():  # an archive's .git file may name any directory
        return None
    path = common / "info" / "exclude"
    if not real_dir(path.parent) or unusable_file(path, MAX_EXCLUDE_BYTES) is not None:
        return None
    try:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        lines = current.splitlines()
        missing = [p for p in patterns if p not in lines]
        if missing:
            text = "" if not current or current.endswith("\n") else "\n"
            if EXCLUDE_HEADER not in lines:
                text += EXCLUDE_HEADER + "\n"
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            with os.fdopen(fd, "a", encoding="utf-8") as f:
                f.write(text + "".join(p + "\n" for p in missing))
    except (OSError, UnicodeDecodeError):
        return None
    return path


def exclude_file(path: Path) -> Path | None:
    """Add ``path`` (a file we wrote into a working tree) to its repository's ``info/exclude`` with :func:`exclude`;
    that file, or None outside git (and wherever :func:`exclude` leaves the repository alone)."""
    root = git_root(path.parent)
    if root is None:
        return None
    try:
        name = "/" + path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None  # not inside the working tree after all: nothing of it to ignore
    return exclude(root, (name,))


def _base(variable: str, fallback: tuple[str, ...]) -> Path:
    value = os.environ.get(variable)
    # the spec says relative values are invalid and must be ignored
    return Path(value) if value and os.path.isabs(value) else Path.home().joinpath(*fallback)


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/coordhub``, else ``~/.config/coordhub`` (not created here)."""
    return _base("XDG_CONFIG_HOME", (".config",)) / "coordhub"


def state_dir() -> Path:
    """``$XDG_STATE_HOME/coordhub``, else ``~/.local/state/coordhub`` (not created here)."""
    return _base("XDG_STATE_HOME", (".local", "state")) / "coordhub"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed, the last one 0700; return it.

    Only a directory this call creates gets a mode (``mkdir``'s, which the
    umask can only narrow); an existing one is never chmodded: it may be a
    symlink a repository planted (``.claude -> ~``), and chmod would follow
    it out of the repository. Raises ``OSError`` (``FileExistsError`` when
    ``path`` is a file).
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def unusable_file(path: Path, max_bytes: int) -> str | None:
    """Why ``path`` is not a file this client may read and append to, or None when it is (or does not exist).

    Looked at without following a symlink (``lstat``): it must be a regular
    file, owned by this user, of at most ``max_bytes`` bytes. A repository
    can commit a symlink (to ``/dev/zero``, to a file of the user's) or an
    archive a FIFO where the client expects its own file.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be examined ({exc.strerror})"
    return file_problem(st, max_bytes)


def file_problem(st: os.stat_result, max_bytes: int) -> str | None:
    """Why a file with status ``st`` is not this user's regular file of at most ``max_bytes`` bytes, or None."""
    if stat.S_ISLNK(st.st_mode):
        return "it is a symlink"
    if not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    if st.st_uid != os.getuid():
        return "another user owns it"
    if st.st_size > max_bytes:
        return f"it is larger than {max_bytes} bytes"
    return None


def real_dir(path: Path) -> bool:
    """Whether ``path`` is missing or a directory itself, not a symlink to one nor anything else (``lstat``)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return True
    except OSError:
        return False


def read_json_object(path: Path, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The JSON object stored in ``path``; ``{}`` when the file is missing, unreadable or not an object.

    ``{}`` too when it is not a regular file or holds more than ``max_bytes``
    bytes (a symlink to ``/dev/zero`` or a FIFO in a repository's ``.git``
    is not read without end). A symlink to a regular file is followed.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return {}
    with os.fdopen(fd, "rb") as f:
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return {}
            raw = f.read(max_bytes + 1)
        except OSError:
            return {}
    if len(raw) > max_bytes:
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError included; RecursionError: nested too deep
        return {}
    return data if isinstance(data, dict) else {}


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Replace ``path`` with ``text`` atomically (temp file + rename), mode ``mode`` (0600 by default), fsynced, its
    directory too (:func:`sync_dir`).

    The temp file is made new (``O_EXCL``, a stale one removed first), so a
    symlink planted under its name is replaced, never followed; its mode is
    set on the descriptor (``fchmod``), never through a name. A symlink at
    ``path`` itself is replaced by the rename, not written through.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        if mode != 0o600:
            os.fchmod(f.fileno(), mode)
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    sync_dir(path.parent)


def sync_dir(directory: Path) -> None:
    """``fsync`` ``directory`` itself, so that a file just made or renamed in it survives a power cut (a file's
    own ``fsync`` does not make its name durable: fsync(2)). A file system that cannot sync a directory is let be.
    """
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``directory`` itself for the ``with`` block.

    Locking the directory rather than a ``.lock`` file beside the data leaves
    nothing behind, and has none of the races of deleting a lock file that
    another process may be waiting on.
    """
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
