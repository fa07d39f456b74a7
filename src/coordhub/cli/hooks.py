"""``coord install-hooks``, ``coord uninstall-hooks``, ``coord install-git-hook``: put the hooks in place.

Thin front ends: the merging lives in :mod:`coordhub.hooks.install`, the git
hook scripts in :mod:`coordhub.guard.install`. Neither talks to the hub.
"""

from __future__ import annotations

from pathlib import Path

import typer

from coordhub.cli.common import EXIT_REFUSED, EXIT_USAGE, fail
from coordhub.cli.output import console, verbatim
from coordhub.client import project
from coordhub.client.project import git_root
from coordhub.client.settings import resolve
from coordhub.errors import CoordError
from coordhub.guard import git
from coordhub.guard import install as git_install
from coordhub.hooks import install

SCOPE_OPT = typer.Option("local", "--scope", help="Which settings file: local (.claude/settings.local.json, not "
                                                  "committed), project (.claude/settings.json) or user "
                                                  "(~/.claude/settings.json).")
DIR_OPT = typer.Option(None, "--dir", help="Project directory (default: the git working tree of the current "
                                           "directory, else the current directory).", show_default=False)
DRY_RUN_OPT = typer.Option(False, "--dry-run", help="Print the resulting settings file instead of writing it.")


def _settings_file(scope: str, project_dir: Path | None) -> Path:
    if scope not in install.SCOPES:
        fail(f"--scope must be one of {', '.join(install.SCOPES)}, not {scope!r}", EXIT_USAGE)
    root = (project_dir or git_root(Path.cwd()) or Path.cwd()).resolve()
    path = install.settings_path(scope, root)
    try:
        install.check_place(scope, path, root)
    except install.SettingsError as exc:
        fail(str(exc), EXIT_REFUSED)
    return path


def _read(path: Path) -> dict[str, object]:
    try:
        return install.read(path)
    except install.SettingsError as exc:
        fail(str(exc), EXIT_REFUSED)
    raise AssertionError("unreachable")


def install_hooks(scope: str = SCOPE_OPT, project_dir: Path | None = DIR_OPT, dry_run: bool = DRY_RUN_OPT) -> None:
    """Add the coordhub hooks to a Claude Code settings file, keeping everything else in it.

    SessionStart, UserPromptSubmit, PreToolUse (Edit|Write|MultiEdit|NotebookEdit), PostToolUse, Stop and
    SessionEnd run `coord-hook`. Running it again changes nothing and says the hooks were already installed (exit
    0). Claude Code reads hooks when a session starts.
    """
    path = _settings_file(scope, project_dir)
    command = install.hook_command()
    current = _read(path)
    merged = install.with_ours(current, command)
    if dry_run:
        verbatim(install.render(merged).rstrip("\n"))
        return
    if merged == current:
        console.print(f"coordhub hooks already installed in {path}, running {' '.join(command)}; nothing changed")
    else:
        install.write(path, merged)
        console.print(f"coordhub hooks installed in {path} ({', '.join(e for e, *_ in install.HOOK_SET)}), "
                      f"running {' '.join(command)}. Sessions started from now on use them.")
    if not _has_token(project_dir or Path.cwd()):
        typer.echo("coord: no coord token is set here (COORD_TOKEN, or `token` in .claude/identity.json or "
                   "~/.claude/identity.json): until Claude Code starts with one, its sessions are not registered, "
                   "messages are not shown and leases are NOT enforced. Export COORD_TOKEN before starting claude "
                   "(`coord token create MACHINE/name` mints one); on a --no-auth hub, COORD_SESSION names the "
                   "session instead.", err=True)
    if scope == "local":
        ignored = project.exclude_file(path)
        if ignored:
            console.print(f"{path.name} is git-ignored through {ignored} (it names this machine's hook command).")


def _has_token(start: Path) -> bool:
    """Whether a session started in ``start`` would find a token (or, for a --no-auth hub, a session name)."""
    try:
        settings = resolve(start=start)
    except CoordError:
        return True  # a broken setting: the hooks say so themselves, better than a guess here
    return bool(settings.token or settings.session_named)


def uninstall_hooks(scope: str = SCOPE_OPT, project_dir: Path | None = DIR_OPT,
                    dry_run: bool = DRY_RUN_OPT) -> None:
    """Remove the coordhub hooks from a Claude Code settings file; other hooks and settings stay."""
    path = _settings_file(scope, project_dir)
    if not path.exists():
        console.print(f"{path} does not exist; nothing to remove")
        return
    current = _read(path)
    cleaned = install.without_ours(current)
    if dry_run:
        verbatim(install.render(cleaned).rstrip("\n"))
        return
    if cleaned == current:
        console.print(f"no coordhub hooks in {path}; nothing changed")
        return
    install.write(path, cleaned)
    console.print(f"coordhub hooks removed from {path}")


def install_git_hook(
    repo: Path | None = typer.Option(None, "--repo", help="Repository (default: the current directory's).",
                                     show_default=False),
    no_pre_push: bool = typer.Option(False, "--no-pre-push",
                                     help="Install only the commit checks (pre-commit, pre-merge-commit)."),
    force: bool = typer.Option(False, "--force", help="Keep an existing foreign hook as <name>.local and run it "
                                                      "before the guard."),
) -> None:
    """Install the git guard: pre-commit, pre-merge-commit (and pre-push) refuse changes to paths leased by other
    live sessions.

    Your own leases pass only while their fence is current. Bypass once with COORD_GUARD_BYPASS=1 (and
    COORD_GUARD_BYPASS_REASON=...); every bypass is recorded on the hub as a guard.bypassed event.
    """
    names = ("pre-commit",) if no_pre_push else git_install.HOOKS
    target = (repo or Path.cwd()).resolve()
    try:
        done = git_install.install(target, names, force=force)
    except git.GitError as exc:
        if git_root(target) is None:  # the usual cause, said in the CLI's words rather than git's
            fail(f"{target} is not a git repository (no git working tree there): run this inside one, or name "
                 "one with --repo", EXIT_REFUSED)
        fail(f"git could not tell where this repository's hooks go: {exc}", EXIT_REFUSED)
    except git_install.InstallError as exc:
        fail(str(exc), EXIT_REFUSED)
    for line in done:
        console.print(line)
