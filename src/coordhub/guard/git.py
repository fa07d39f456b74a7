"""What the guard asks git: the paths a commit or a push changes, and where hooks and state live.

Every call runs ``git`` with the environment git gave the hook, so
``GIT_INDEX_FILE`` (the temporary index of ``git commit -a`` or ``git commit
<paths>``) and ``GIT_DIR`` are honoured. Paths come NUL-separated (``-z``),
so no name is quoted or mangled, and are decoded as the file system's names are
(UTF-8, a byte that is not kept as a lone surrogate, ``os.fsdecode``): a name
that is not UTF-8 is one path the guard reports, never a crash. Like the client's identity lookups, every
call passes :data:`coordhub.client.project.GIT_SAFE`: a repository that came
as an archive brings its own ``.git/config``, and ``core.fsmonitor`` there
would otherwise run a command of its choosing (``coord install-git-hook``
asks git before any hook of the user's exists).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from coordhub.client.project import GIT_SAFE

ZERO = "0" * 40


class GitError(Exception):
    """A git command failed; the message carries its stderr."""


def git(args: list[str], cwd: Path | None = None) -> str:
    """Run ``git ARGS`` and return stdout (text); ``GitError`` on a non-zero exit or no git at all."""
    try:
        p = subprocess.run(["git", *GIT_SAFE, *args], cwd=cwd, capture_output=True, encoding="utf-8",
                           errors="surrogateescape", check=False)
    except OSError as exc:
        raise GitError(f"cannot run git: {exc}") from None
    if p.returncode != 0:
        raise GitError(f"git {' '.join(args)}: {p.stderr.strip() or f'exit {p.returncode}'}")
    return p.stdout


def _names(out: str) -> list[str]:
    """NUL-separated names (``-z`` output), in order, without duplicates or empties; each exactly as git gave it
    (a name may begin or end with a newline: review, such a name stripped was checked as another file)."""
    return list(dict.fromkeys(name for name in out.split("\0") if name))


def _logged_names(revs: list[str], cwd: Path | None) -> list[str]:
    """Every path the commits of ``revs`` change, a merge's own edits included (``-c``: what it changes against
    every parent; `git log` lists nothing of a merge by default; ``-c`` rather than ``--diff-merges``, which git
    before 2.31 refuses).

    ``git log --format=%H -z --name-only`` writes each commit's id and a NUL, one separator (a newline, or a NUL
    for a merge), then its names, each ending in a NUL. A name may hold any character but NUL, so a commit is
    told from a name by its id, known beforehand from ``git rev-list`` (a marker character could end a name:
    review). ``GitError`` when the output is not laid out so.
    """
    shas = git(["rev-list", *revs], cwd).split()
    if not shas:
        return []
    tokens = git(["log", "--format=%H", "--name-only", "-z", "--no-renames", "-c", *revs], cwd).split("\0")
    names: list[str] = []
    i = 0
    for k, sha in enumerate(shas):
        if i >= len(tokens) or tokens[i] not in (sha, "\n" + sha):
            raise GitError(f"git log did not list commit {sha} where it was expected")
        i += 1
        following = (shas[k + 1], "\n" + shas[k + 1]) if k + 1 < len(shas) else ()
        first = True
        while i < len(tokens) and tokens[i] not in following:
            name, i = tokens[i], i + 1
            if first and name.startswith("\n"):  # the separator after the id, not part of the name
                name = name[1:]
            first = False
            if name:
                names.append(name)
    return list(dict.fromkeys(names))


def toplevel(cwd: Path | None = None) -> Path:
    """The working tree's top directory."""
    return Path(git(["rev-parse", "--show-toplevel"], cwd).strip())


def git_path(name: str, cwd: Path | None = None) -> Path:
    """``git rev-parse --git-path NAME`` as an absolute path (honours core.hooksPath and worktrees)."""
    out = Path(git(["rev-parse", "--git-path", name], cwd).strip())
    return out if out.is_absolute() else (cwd or Path.cwd()) / out


def staged_paths(cwd: Path | None = None) -> list[str]:
    """Every path the commit being made changes: added, modified, deleted, and both sides of a rename.

    ``--no-renames`` reports a rename as a deletion plus an addition, so a
    lease on either the old or the new name is seen. Works on an unborn
    branch (the first commit) too.
    """
    return _names(git(["diff", "--cached", "--name-only", "-z", "--no-renames"], cwd))


def pushed_paths(remote: str, updates: list[tuple[str, str, str, str]], cwd: Path | None = None) -> list[str]:
    """Every path changed by a commit that ``git push`` is about to send.

    ``updates`` are the pre-push stdin lines (githooks(5)): local ref, local
    sha, remote ref, remote sha. A deleted ref sends no commits. For a new
    ref, or one whose remote tip is unknown here, the commits are those not on
    any ref of ``remote``; otherwise ``remote_sha..local_sha``. A merge commit
    counts what it changes against every parent (an edit made in the merge
    itself: :func:`_logged_names`). With the remote tip known, the paths the push changes on the
    remote (``git diff remote_sha local_sha``) count too: a forced push that
    drops commits sends none of them but changes what they changed (review).
    """
    names: list[str] = []
    for _local_ref, local_sha, _remote_ref, remote_sha in updates:
        if local_sha == ZERO:
            continue
        known = remote_sha != ZERO and _has_commit(remote_sha, cwd)
        revs = [f"{remote_sha}..{local_sha}"] if known else [local_sha, "--not", f"--remotes={remote}"]
        names += _logged_names(revs, cwd)
        if known:
            names += _names(git(["diff", "--name-only", "-z", "--no-renames", remote_sha, local_sha], cwd))
    return list(dict.fromkeys(names))


def _has_commit(sha: str, cwd: Path | None) -> bool:
    try:
        git(["cat-file", "-e", f"{sha}^{{commit}}"], cwd)
    except GitError:
        return False
    return True


def parse_push_updates(text: str) -> list[tuple[str, str, str, str]]:
    """The ``<local ref> <local sha> <remote ref> <remote sha>`` lines of pre-push stdin (blank lines skipped)."""
    updates = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4:
            updates.append((parts[0], parts[1], parts[2], parts[3]))
    return updates
