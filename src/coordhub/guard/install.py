"""Installing the git guard: ``pre-commit``, ``pre-merge-commit`` and ``pre-push`` scripts that exec ``coord-hook``.

``pre-merge-commit`` is the pre-commit check for the commit ``git merge``
makes (git runs no ``pre-commit`` then), so it is installed whenever
``pre-commit`` is. ``git cherry-pick``, ``rebase`` and ``am`` run no commit
hook at all: what they commit is checked only at ``pre-push``.

The hooks directory is ``git rev-parse --git-path hooks``, which honours
``core.hooksPath`` and linked worktrees. A hook already there that is not
ours is never overwritten: the install is refused, or with ``force`` the old
hook is kept as ``<name>.local`` and our script runs it first (its refusal
stands; pre-push gets the same stdin). Our scripts carry :data:`MARKER`, so
re-installing replaces them in place (idempotent) and keeps any chaining.

``core.hooksPath`` may name a directory the repository tracks, and an
archive's ``.git/config`` may name any directory at all; whatever lies there
came with the repository. So the hooks directory must be a real directory
inside the work tree or the git directory, a hook we replace must be a
regular file, and each script is written by
:func:`coordhub.client.project.write_private`, which never follows a symlink
planted under its temporary name.
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

from coordhub.client import project
from coordhub.guard import git
from coordhub.hooks.install import hook_command

MARKER = "# coordhub-git-guard"
HOOKS = ("pre-commit", "pre-merge-commit", "pre-push")
WHAT = {"pre-commit": "commit", "pre-merge-commit": "merge commit", "pre-push": "push"}


class InstallError(Exception):
    """The guard cannot be installed as asked; nothing was changed for the hook named in the message."""


def script(name: str, command: list[str], chained: bool) -> str:
    """The text of our ``name`` hook running ``command git-<name>`` (after ``<name>.local`` if ``chained``)."""
    run = " ".join(shlex.quote(c) for c in command) + f" git-{name} \"$@\""
    lines = ["#!/bin/sh", MARKER,
             f"# Installed by `coord install-git-hook`: refuses a {WHAT.get(name, name)} touching paths leased by",
             "# other live sessions. One-off bypass (recorded on the hub): COORD_GUARD_BYPASS=1 git …"]
    if chained and name == "pre-push":
        lines += ['local_hook="$(dirname "$0")/pre-push.local"', 'input=$(cat)',
                  'if [ -x "$local_hook" ]; then',
                  '    printf \'%s\\n\' "$input" | "$local_hook" "$@" || exit $?',
                  'fi',
                  f'printf \'%s\\n\' "$input" | exec {run}']
    elif chained:
        lines += [f'local_hook="$(dirname "$0")/{name}.local"',
                  'if [ -x "$local_hook" ]; then',
                  '    "$local_hook" "$@" || exit $?',
                  'fi',
                  f"exec {run}"]
    else:
        lines.append(f"exec {run}")
    return "\n".join(lines) + "\n"


def is_ours(path: Path) -> bool:
    """Whether the hook file at ``path`` was written by us."""
    try:
        return MARKER in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def install(repo: Path, names: tuple[str, ...] = HOOKS, force: bool = False) -> list[str]:
    """Write our hooks into ``repo``'s hooks directory; return one line per hook saying what was done.

    Raises ``InstallError`` (before writing anything) when a foreign hook is
    in the way and ``force`` is not given, or ``<name>.local`` already exists,
    when the hooks directory is not one of the repository's own
    (:func:`check_hooks_dir`) or a hook there is a symlink or not a regular
    file; ``git.GitError`` when ``repo`` is not a git repository.
    ``pre-commit`` brings ``pre-merge-commit`` along (a merge would otherwise
    commit unchecked).
    """
    if "pre-commit" in names and "pre-merge-commit" not in names:
        names = (*names, "pre-merge-commit")
    hooks_dir = git.git_path("hooks", repo)
    check_hooks_dir(hooks_dir, repo)
    plans = [_plan(hooks_dir / name, force) for name in names]
    hooks_dir.mkdir(parents=True, exist_ok=True)
    command = hook_command()
    done = []
    for name, (path, move, chained) in zip(names, plans, strict=True):
        if move:
            os.replace(path, path.with_name(f"{name}.local"))
        project.write_private(path, script(name, command, chained), mode=0o755)
        done.append(f"{path}: coordhub guard installed" + (
            f" (runs {name}.local first)" if chained else ""))
    return done


def check_hooks_dir(hooks_dir: Path, repo: Path) -> None:
    """Raise ``InstallError`` unless ``hooks_dir`` is missing or a real directory inside ``repo``'s work tree or git
    directory, when the repository chose it (``core.hooksPath`` in its own config, or none: ``.git/hooks``); one the
    user's global or system config names is theirs, symlinked or shared.

    A symlink there, or a path (``core.hooksPath``) leading elsewhere, would
    make the install write wherever the repository chose: a tracked
    ``.githooks -> ~/.config`` or an archive's ``.git/config`` naming
    ``~/bin``. The git directory is the common one too, where a linked
    worktree's hooks live.
    """
    how = ("see where core.hooksPath is set (`git config --show-origin core.hooksPath`), then unset it or point it "
           "at a directory of this repository and rerun; nothing installed")
    if _hooks_path_scope(repo) in ("global", "system", "command"):
        return  # the user's own choice (~/.gitconfig, /etc/gitconfig, -c): a shared hooks directory, maybe linked
    if hooks_dir.is_symlink():
        raise InstallError(f"refusing to install into {hooks_dir}: it is a symlink (a repository may have put it "
                           f"there) and the hooks would go wherever it points. Replace it with a directory, or {how}")
    if not project.real_dir(hooks_dir):
        raise InstallError(f"refusing to install into {hooks_dir}: it is not a directory. Remove it, or {how}")
    homes = _own_dirs(repo)
    if not any(hooks_dir.resolve().is_relative_to(home) for home in homes):
        raise InstallError(f"refusing to install into {hooks_dir}: it lies outside this repository's work tree and git "
                           f"directory ({', '.join(str(h) for h in homes)}): a repository's config or a symlink on the "
                           f"way may have chosen it, and other repositories may run the hooks there. To proceed, {how}")


def _hooks_path_scope(repo: Path) -> str | None:
    """Where the ``core.hooksPath`` in effect is set (``local``, ``worktree``, ``global``, ``system``, ``command``),
    or None when it is not."""
    try:
        out = git.git(["config", "--show-scope", "--get", "core.hooksPath"], repo)
    except git.GitError:
        return None  # not set (exit 1): the hooks live in the git directory
    return out.split("\t", 1)[0].strip() or None


def _own_dirs(repo: Path) -> list[Path]:
    """``repo``'s work tree (none in a bare repository), git directory and common git directory, resolved."""
    dirs = []
    try:
        dirs.append(git.toplevel(repo))
    except git.GitError:
        pass  # bare: hooks can only be in the git directory
    for flag in ("--git-dir", "--git-common-dir"):
        found = Path(git.git(["rev-parse", flag], repo).strip())
        dirs.append(found if found.is_absolute() else repo / found)
    return list(dict.fromkeys(d.resolve() for d in dirs))


def _plan(path: Path, force: bool) -> tuple[Path, bool, bool]:
    """(path, move the existing hook to .local?, chain .local?) for one hook; ``InstallError`` if refused."""
    local = path.with_name(f"{path.name}.local")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):  # is_ours would read through it, --force would chain it
        raise InstallError(f"{path} is a symlink or not a regular file (a repository may have put it there); "
                           "nothing installed. Remove it, or put the hook it stands for there as a file, then rerun")
    if mode is None:
        return path, False, local.exists()
    if is_ours(path):
        return path, False, local.exists()
    if not force:
        raise InstallError(f"{path} exists and is not coordhub's; nothing installed. Rerun with --force to keep it "
                           f"as {local.name} and run it before the guard")
    if local.exists():
        raise InstallError(f"{path} is not coordhub's and {local} already exists; nothing installed. "
                           "Merge them by hand, then rerun")
    return path, True, True
