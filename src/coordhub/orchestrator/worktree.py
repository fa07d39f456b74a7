"""Git worktrees for workers: one per assignment, on the issue's branch, never losing work.

Seed 003's agent made ``issue-<N>-<slug>`` from ``origin/<branch>`` and removed
the worktree with ``--force`` when the worker ended, throwing away anything
uncommitted; a failed spawn or a crash leaked the worktree, which then held
the branch and made every later dispatch of that issue fail ("already checked
out"). Here:

* :func:`create` fetches ``origin``, reuses the branch when it exists (locally,
  caught up with ``origin`` when it is only behind; else from ``origin``:
  follow-ups land on the same branch) and otherwise
  branches from ``origin/<default_branch>``. A stale worktree of ours holding
  the branch is saved and removed first; a checkout outside our worktrees
  directory (the user's own) is never touched and makes :class:`GitError`.
* :func:`save_work` keeps uncommitted changes before any removal: as a ``wip``
  commit on the branch (so a retry or resume continues from it), or, for a
  finished run, as a commit under ``refs/coordhub/wip/…`` that leaves the
  branch as the worker made it. Either way its id is returned and reported.
* Git operations on one repository are serialised (an ``flock`` on its common
  git directory), so two workers — or two hosts on one box — never race on
  ``git worktree add``/``fetch`` (seed 003 did not serialise them).

Every git call has ``GIT_*`` variables of the caller removed and a timeout,
and raises :class:`GitError` with git's message on failure. A worker can
write to the ``.git`` its worktree shares with the host's clone, and what it
plants there (a hook, ``core.fsmonitor``) runs with git's environment: so no
call lets git run ``core.fsmonitor``, a local one (everything but
:data:`REMOTE`) runs no hook and gets none of the host's credentials
(:data:`CREDENTIALS`: the machine's hub token, a GitHub token), and only a
fetch or a push has them, for its credential helper; only a push runs its
hooks (Git LFS uploads its objects in ``pre-push``; a fetch needs none, and a
planted ``reference-transaction`` hook ran on every fetch). What that still leaves open is in
docs/orchestrator.md, "What a worker can reach".
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from coordhub.client import project

GIT_TIMEOUT = 120.0  # seconds; a fetch or push over a slow link
WIP_REF = "refs/coordhub/wip"
WIP_SUBJECT = "wip: "  # how every commit of :func:`save_work` begins (its callers' messages)
# The trailer :func:`save_work` ends its commits with: what marks a commit as the host's save, which the merge folds
# (the subject alone does not: a worker or a person may start their own commit 'wip: ', whose message stays).
SAVE_TRAILER = "Coordhub-Save"
AGENT_NAME = "coordhub agent"


class GitError(Exception):
    """A git command failed (the message has git's stderr), or a repository is not usable."""


@dataclass(frozen=True)
class Worktree:
    """A worker's checkout: ``path`` on ``branch`` of the repository at ``repo``; ``base`` is the commit the run
    started from (new commits are counted from it)."""

    repo: Path
    path: Path
    branch: str
    base: str
    remote: str | None = None  # origin's branch commit when the run started from exactly it (see :func:`push`)


REMOTE = frozenset({"fetch", "push", "pull", "ls-remote"})  # the git commands that talk to a remote
HOOKED = frozenset({"push"})  # the remote commands that keep their hooks (Git LFS uploads in pre-push)
CREDENTIALS = ("COORD_", "GH_", "GITHUB_")  # prefixes of the host's variables a local git command never gets
HUB = "COORD_"  # no git command needs the hub's: a push's pre-push hook, which a worker can plant, would get them


def git_env(remote: bool) -> dict[str, str]:
    """The environment of a git call: the host's without ``GIT_*`` (but author and committer), without the hub's
    variables (:data:`HUB`), and without the other :data:`CREDENTIALS` unless ``remote`` (a fetch or a push)."""
    env = {k: v for k, v in os.environ.items()
           if (not k.startswith("GIT_") or k.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_")))
           and not k.startswith(HUB) and (remote or not k.startswith(CREDENTIALS))}
    env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    return env


def _command(cwd: Path, args: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of ``git -C cwd ARGS`` as the module docstring says."""
    remote = bool(args) and args[0] in REMOTE
    guard = ("-c", "core.fsmonitor=false") if args and args[0] in HOOKED else (
        "-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null")
    return ["git", *guard, "-C", str(cwd), *args], git_env(remote)


def run_git(cwd: Path, *args: str, timeout: float = GIT_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``git -C cwd ARGS`` as the module docstring says (no fsmonitor; a local command without hooks or the
    host's credentials); the finished process, whatever its exit code. ``OSError`` or ``TimeoutExpired`` as
    ``subprocess.run`` raises them."""
    argv, env = _command(cwd, args)
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def git_head(cwd: Path, *args: str, limit: int, timeout: float = GIT_TIMEOUT) -> str:
    """The first ``limit`` bytes of what ``git -C cwd ARGS`` prints (as :func:`run_git` runs it), as text (invalid
    UTF-8 replaced); git is stopped once it printed that much, or at ``timeout``. Its exit code is not looked at;
    ``""`` when git cannot be run.

    For output the branch's contents decide (a diff): a committed file of a few hundred MB made ``git diff``
    print all of it, and :func:`git` holds all of it in memory.
    """
    argv, env = _command(cwd, args)
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                env=env)
    except OSError:
        return ""
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        chunks: list[bytes] = []
        left = limit
        while left > 0 and (chunk := os.read(proc.stdout.fileno(), min(left, 1 << 16))):
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        timer.cancel()
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    return b"".join(chunks).decode("utf-8", errors="replace")


def git(cwd: Path, *args: str, check: bool = True, timeout: float = GIT_TIMEOUT) -> str:
    """Run ``git -C cwd ARGS`` (:func:`run_git`); its stdout (stripped). ``GitError`` when it fails and ``check``."""
    try:
        p = run_git(cwd, *args, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(f"git {' '.join(args[:2])} in {cwd}: {exc}") from None
    if check and p.returncode != 0:
        raise GitError(f"git {' '.join(args[:3])} in {cwd} failed: {(p.stderr or p.stdout).strip()[:500]}")
    return p.stdout.strip()


def check_repo(path: Path) -> Path:
    """``path`` resolved if it is the top of a git working tree; ``GitError`` saying what it is otherwise."""
    path = path.expanduser()
    if not path.is_dir():
        raise GitError(f"{path} does not exist or is not a directory")
    try:
        top = git(path, "rev-parse", "--show-toplevel", timeout=10)
    except GitError:
        raise GitError(f"{path} is not a git repository") from None
    return Path(top).resolve()


def slug(title: str, limit: int = 40) -> str:
    """A branch-name slug of ``title``: lower case, ``[a-z0-9-]``, at most ``limit`` characters."""
    s = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return s[:limit].rstrip("-")


def branch_name(issue: int, title: str | None = None) -> str:
    """``issue-<N>-<slug>`` (seed 003's branch names), or ``issue-<N>`` without a title."""
    s = slug(title or "")
    return f"issue-{issue}-{s}" if s else f"issue-{issue}"


@contextlib.contextmanager
def repo_lock(repo: Path) -> Iterator[None]:
    """Serialise git operations on ``repo`` across threads and processes (``flock`` on its common git dir).

    Every fetch and push of a host's runs takes it: both rewrite the shared
    ``refs/remotes/origin/*`` (a ``fetch --prune`` and a ``push --delete``
    both rewrite ``packed-refs``), and git refuses the second of two
    concurrent ref updates instead of waiting (a smoke test's ``git fetch``
    failed beside a merge run's pushes). Not reentrant: never nest it.
    ``repo`` may be any worktree of the repository.
    """
    common = project.git_dir(repo) or repo / ".git"
    with project.locked(common):
        yield


def _checked_out(repo: Path) -> dict[str, Path]:
    """Branch name -> the worktree that has it checked out."""
    out: dict[str, Path] = {}
    path: Path | None = None
    for line in git(repo, "worktree", "list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            path = Path(line[len("worktree "):])
        elif line.startswith("branch refs/heads/") and path is not None:
            out[line[len("branch refs/heads/"):]] = path
    return out


def _has_ref(repo: Path, ref: str) -> bool:
    return bool(git(repo, "rev-parse", "--verify", "--quiet", ref + "^{commit}", check=False))


def create(repo: Path, path: Path, branch: str, default_branch: str, owned: Path) -> Worktree:
    """Make the worktree ``path`` of ``repo`` on ``branch`` (see the module docstring); return it.

    ``owned`` is the directory holding this host's worktrees: a stale worktree
    there that holds ``branch`` is saved (:func:`save_work`) and removed; one
    elsewhere raises ``GitError``. Raises ``GitError`` when ``origin`` or
    ``origin/<default_branch>`` is missing, or git fails.
    """
    with repo_lock(repo):
        if not git(repo, "remote", "get-url", "origin", check=False):
            raise GitError(f"{repo} has no remote 'origin' to branch from and push to")
        git(repo, "fetch", "--quiet", "--prune", "origin")
        git(repo, "worktree", "prune")
        holder = _checked_out(repo).get(branch)
        if holder is not None:
            if not _inside(holder, owned):
                raise GitError(f"branch {branch} is checked out at {holder}, outside this host's worktrees; "
                               "switch that checkout to another branch")
            _save_and_remove(repo, holder, f"stale worktree of {branch}")
        if path.exists():
            _save_and_remove(repo, path, "leftover worktree")
        path.parent.mkdir(parents=True, exist_ok=True)
        remote = git(repo, "rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{branch}^{{commit}}",
                     check=False) or None
        if _has_ref(repo, f"refs/heads/{branch}"):
            local = git(repo, "rev-parse", f"refs/heads/{branch}")
            if remote and local != remote and _ancestor(repo, local, remote):
                git(repo, "branch", "--quiet", "-f", branch, remote)  # behind origin (another machine's work): catch up
            git(repo, "worktree", "add", "--quiet", str(path), branch)
        elif _has_ref(repo, f"refs/remotes/origin/{branch}"):
            git(repo, "worktree", "add", "--quiet", "--track", "-b", branch, str(path), f"origin/{branch}")
        else:
            if not _has_ref(repo, f"refs/remotes/origin/{default_branch}"):
                raise GitError(f"{repo}: origin has no branch {default_branch!r} (the repo's default_branch)")
            git(repo, "worktree", "add", "--quiet", "--no-track", "-b", branch, str(path), f"origin/{default_branch}")
        base = git(path, "rev-parse", "HEAD")
    return Worktree(repo=repo, path=path, branch=branch, base=base, remote=remote if remote == base else None)


def _ancestor(repo: Path, commit: str, of: str) -> bool:
    """Whether ``commit`` is an ancestor of ``of`` (git exits 1 when not)."""
    try:
        git(repo, "merge-base", "--is-ancestor", commit, of)
    except GitError:
        return False
    return True


def checkout_detached(repo: Path, path: Path, branch: str, owned: Path) -> str:
    """A fresh worktree at ``path`` with ``origin/<branch>`` checked out detached (a smoke test's or review's: it
    never holds the branch, so the worker's own checkout is never in the way); the commit it is at.

    A leftover at ``path`` is removed first (inside ``owned`` only). ``GitError`` when origin has no such branch.
    """
    with repo_lock(repo):
        git(repo, "fetch", "--quiet", "--prune", "origin")
        git(repo, "worktree", "prune")
        if path.exists():
            if not _inside(path, owned):
                raise GitError(f"{path} is outside this host's worktrees")
            remove_worktree(repo, path)
        if not _has_ref(repo, f"refs/remotes/origin/{branch}"):
            raise GitError(f"origin has no branch {branch!r} (was it pushed?)")
        path.parent.mkdir(parents=True, exist_ok=True)
        git(repo, "worktree", "add", "--quiet", "--detach", str(path), f"origin/{branch}")
        return git(path, "rev-parse", "HEAD")


def changed_files(wt: Worktree, default_branch: str, limit: int = 2000) -> list[str]:
    """Paths the worktree's HEAD changed against ``origin/<default_branch>`` (at most ``limit``)."""
    out = git(wt.path, "diff", "--name-only", f"origin/{default_branch}...HEAD", check=False)
    return [line for line in out.splitlines() if line][:limit]


def ahead_of(wt: Worktree, default_branch: str) -> int | None:
    """Commits the worktree's HEAD has that ``origin/<default_branch>`` has not (None when git cannot say)."""
    out = git(wt.path, "rev-list", "--count", f"origin/{default_branch}..HEAD", check=False)
    return int(out) if out.isdigit() else None


def new_commits(wt: Worktree) -> int:
    """Commits on the worktree's HEAD since its run started (``base``)."""
    return int(git(wt.path, "rev-list", "--count", f"{wt.base}..HEAD") or 0)


def dirty(path: Path) -> bool:
    """Whether the worktree has uncommitted changes (untracked files included, ignored ones not)."""
    return bool(git(path, "status", "--porcelain", "--untracked-files=all"))


def commit_identity(path: Path, machine: str) -> list[str]:
    """``-c user.name/email`` for the host's own commits when the repository has no identity configured."""
    if git(path, "config", "user.email", check=False):
        return []
    return ["-c", f"user.name={AGENT_NAME}", "-c", f"user.email=agent@{machine or 'localhost'}.coordhub"]


def save_work(path: Path, message: str, *, on_branch: bool, ref_name: str | None = None,
              machine: str = "") -> str | None:
    """Keep the worktree's uncommitted changes; the commit id, or None when there were none.

    ``on_branch``: commit them on the checked-out branch (``--no-verify``: the
    host's own safety commit must not be refused by a pre-commit guard). Else
    record them as a commit under ``refs/coordhub/wip/<ref_name>`` without
    moving the branch (``git stash create`` makes the commit without touching
    the shared stash list). ``message`` starts with :data:`WIP_SUBJECT` (``ValueError`` else); a commit on the
    branch ends with the :data:`SAVE_TRAILER` trailer (naming ``machine``), by which the merge queue folds it into
    the worker's own commits (:func:`coordhub.orchestrator.merging.fold_wip`).
    """
    if not message.startswith(WIP_SUBJECT):
        raise ValueError(f"a wip save's message must start {WIP_SUBJECT!r} (the merge queue folds them): {message!r}")
    if not dirty(path):
        return None
    ident = commit_identity(path, machine)
    git(path, "add", "-A")
    if on_branch:
        git(path, *ident, "commit", "--quiet", "--no-verify", "-m", message,
            "-m", f"{SAVE_TRAILER}: {machine or 'this host'}")
        return git(path, "rev-parse", "HEAD")
    sha = git(path, *ident, "stash", "create", message)
    if not sha:
        return None
    git(path, "update-ref", "-m", message, f"{WIP_REF}/{ref_name or 'unnamed'}", sha)
    git(path, "reset", "--quiet")  # unstage again: the tree stays as the worker left it
    return sha


def push(wt: Worktree) -> None:
    """Push the branch to ``origin`` (setting upstream); ``GitError`` when refused.

    A run that started from exactly origin's branch (``wt.remote``) may have
    rewritten it (a conflict-fix worker rebases onto the target): it pushes
    with ``--force-with-lease`` on that commit, so it replaces the branch only
    if nobody else moved it meanwhile. Any other run pushes fast-forward only.
    """
    lease = [f"--force-with-lease=refs/heads/{wt.branch}:{wt.remote}"] if wt.remote else []
    with_origin(wt.path, "push", "--quiet", *lease, "-u", "origin", f"HEAD:refs/heads/{wt.branch}")


def with_origin(cwd: Path, *args: str, check: bool = True) -> str:
    """:func:`git` for a command that talks to ``origin`` (a fetch or a push), under :func:`repo_lock`: both
    update the shared ``refs/remotes/origin/*``. For a caller that does not hold the lock already."""
    with repo_lock(cwd):
        return git(cwd, *args, check=check)


def remove(repo: Path, path: Path) -> None:
    """Remove a worktree (already saved by the caller) and prune git's record of it; the branch stays."""
    with repo_lock(repo):
        remove_worktree(repo, path)


def remove_worktree(repo: Path, path: Path) -> None:
    """Remove the worktree ``path`` of ``repo`` (a half-made one by plain removal) and prune git's records.

    The caller holds :func:`repo_lock` (:func:`remove` takes it). Nothing is saved first: callers save
    work (:func:`save_work`) before, or know there is none.
    """
    if path.exists():
        git(repo, "worktree", "remove", "--force", str(path), check=False)
        if path.exists():  # not a registered worktree (half-made): plain removal
            shutil.rmtree(path, ignore_errors=True)
    git(repo, "worktree", "prune")


def _save_and_remove(repo: Path, path: Path, why: str) -> None:
    if (path / ".git").exists():
        try:
            save_work(path, f"wip: {why}, saved by coordhub before removal", on_branch=True)
        except GitError:
            pass  # a detached or broken checkout: removal below still keeps every commit
    remove_worktree(repo, path)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def owned_worktrees(repo: Path, owned: Path) -> list[tuple[Path, str | None]]:
    """The worktrees of ``repo`` inside ``owned``: ``(path, branch or None)``."""
    out: list[tuple[Path, str | None]] = []
    path: Path | None = None
    branch: str | None = None
    for line in [*git(repo, "worktree", "list", "--porcelain").splitlines(), ""]:
        if line.startswith("worktree "):
            path, branch = Path(line[len("worktree "):]), None
        elif line.startswith("branch refs/heads/"):
            branch = line[len("branch refs/heads/"):]
        elif not line and path is not None:
            if _inside(path, owned):
                out.append((path, branch))
            path = None
    return out


def freshness(path: Path, branch: str, pull: bool) -> str:
    """Compare the clone at ``path`` with ``origin/<branch>`` after a fetch (seed 003's freshness check); with
    ``pull``, fast-forward it (``git pull --ff-only``) when it is behind and on that branch. A one-line note:
    ``fresh …``, ``pulled …`` or ``STALE: …`` (never raises: a check that cannot run says why)."""
    try:
        with repo_lock(path):
            git(path, "fetch", "--quiet", "origin")
            remote = git(path, "rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{branch}^{{commit}}",
                         check=False)
            if not remote:
                return f"STALE?: origin has no branch {branch}"
            behind = int(git(path, "rev-list", "--count", f"HEAD..{remote}") or 0)
            if behind == 0:
                return f"fresh: at or ahead of origin/{branch}"
            current = git(path, "branch", "--show-current", check=False)
            if not pull:
                return f"STALE: {behind} commit(s) behind origin/{branch} (workers.auto_pull is off)"
            if current != branch:
                return f"STALE: {behind} commit(s) behind origin/{branch}, checked out on {current or 'no branch'}: " \
                       "not pulled"
            git(path, "merge", "--ff-only", "--quiet", remote)
            return f"pulled {behind} commit(s) from origin/{branch} (--ff-only)"
    except (GitError, ValueError) as exc:
        return f"STALE?: the check failed: {exc}"[:500]
