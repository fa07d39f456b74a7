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
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

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
    and ``git.GitError`` when ``repo`` is not a git repository. ``pre-commit``
    brings ``pre-merge-commit`` along (a merge would otherwise commit unchecked).
    """
    if "pre-commit" in names and "pre-merge-commit" not in names:
        names = (*names, "pre-merge-commit")
    hooks_dir = git.git_path("hooks", repo)
    plans = [_plan(hooks_dir / name, force) for name in names]
    hooks_dir.mkdir(parents=True, exist_ok=True)
    command = hook_command()
    done = []
    for name, (path, move, chained) in zip(names, plans, strict=True):
        if move:
            os.replace(path, path.with_name(f"{name}.local"))
        _write(path, script(name, command, chained))
        done.append(f"{path}: coordhub guard installed" + (
            f" (runs {name}.local first)" if chained else ""))
    return done


def _plan(path: Path, force: bool) -> tuple[Path, bool, bool]:
    """(path, move the existing hook to .local?, chain .local?) for one hook; ``InstallError`` if refused."""
    local = path.with_name(f"{path.name}.local")
    if not path.exists():
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


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.coordhub.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o755)
    os.replace(tmp, path)
