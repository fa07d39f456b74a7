"""``coord install-git-hook`` in a repository that came from someone else: it writes only the repository's own hooks.

``core.hooksPath`` may name a tracked ``.githooks`` (or, from an archive's
``.git/config``, any directory), so whatever is in the hooks directory, or is
the directory, may have been put there by the repository: the real CLI is run
against real clones and must neither write through a symlink nor install
outside the work tree and git directory.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from coordhub.guard import install
from tests.coordcli import Coord, isolated_env

BASHRC = "export PS1='mine'\n"


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout


def clone_of(tmp_path: Path, links: dict[str, str]) -> Path:
    """A clone (``<tmp>/clone``) of a repository that tracks the symlinks ``links`` (path -> target)."""
    origin = tmp_path / "origin"
    origin.mkdir()
    git("init", "-q", cwd=origin)
    (origin / "README.md").write_text("hello\n")
    for rel, target in links.items():
        (origin / rel).parent.mkdir(parents=True, exist_ok=True)
        (origin / rel).symlink_to(target)
    git("add", "-A", cwd=origin)
    git("commit", "-q", "-m", "init", cwd=origin)
    git("clone", "-q", str(origin), str(tmp_path / "clone"), cwd=tmp_path)
    return tmp_path / "clone"


def victim(tmp_path: Path) -> Path:
    """A file of the user's outside the repository, ``<tmp>/victim/.bashrc``."""
    path = tmp_path / "victim" / ".bashrc"
    path.parent.mkdir()
    path.write_text(BASHRC)
    path.chmod(0o644)
    return path


def coord(repo: Path, tmp_path: Path) -> Coord:
    return Coord(repo, isolated_env(tmp_path / "env"))


def test_a_symlink_at_the_temporary_name_is_not_written_through(tmp_path: Path) -> None:
    """The review's repro: the hook was written through ``.githooks/.pre-commit.coordhub.tmp``, made 0755."""
    bashrc = victim(tmp_path)
    repo = clone_of(tmp_path, {".githooks/.pre-commit.coordhub.tmp": "../../victim/.bashrc"})
    git("config", "core.hooksPath", ".githooks", cwd=repo)
    coord(repo, tmp_path).ok("install-git-hook")
    assert bashrc.read_text() == BASHRC and stat.S_IMODE(bashrc.stat().st_mode) == 0o644
    for name in install.HOOKS:
        hook = repo / ".githooks" / name
        st = os.lstat(hook)
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755 and install.is_ours(hook)


def test_a_hooks_directory_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "victim" / "bin"
    elsewhere.mkdir(parents=True)
    repo = clone_of(tmp_path, {".githooks": "../victim/bin"})
    git("config", "core.hooksPath", ".githooks", cwd=repo)
    r = coord(repo, tmp_path).fails(1, "install-git-hook")
    assert "is a symlink" in r.err and "core.hooksPath" in r.err, r
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("hooks_path", ["absolute", "through a tracked symlink"])
def test_a_hooks_directory_outside_the_repository_is_refused(tmp_path: Path, hooks_path: str) -> None:
    """As an archive's ``.git/config`` can set ``core.hooksPath``, or a tracked ``lnk -> ..`` lead out."""
    elsewhere = tmp_path / "victim" / "hooks"
    elsewhere.mkdir(parents=True)
    repo = clone_of(tmp_path, {"lnk": "../victim"})
    git("config", "core.hooksPath", str(elsewhere) if hooks_path == "absolute" else "lnk/hooks", cwd=repo)
    r = coord(repo, tmp_path).fails(1, "install-git-hook")
    assert "lies outside this repository's work tree and git directory" in r.err, r
    assert "git config --show-origin core.hooksPath" in r.err, r
    assert list(elsewhere.iterdir()) == []


def test_an_existing_hook_that_is_a_symlink_is_refused_even_with_force(tmp_path: Path) -> None:
    """--force would have moved it to ``pre-commit.local`` and made the guard run the file it names."""
    bashrc = victim(tmp_path)
    repo = clone_of(tmp_path, {".githooks/pre-commit": "../../victim/.bashrc"})
    git("config", "core.hooksPath", ".githooks", cwd=repo)
    r = coord(repo, tmp_path).fails(1, "install-git-hook", "--force")
    assert "pre-commit is a symlink or not a regular file" in r.err, r
    hooks = repo / ".githooks"
    assert sorted(p.name for p in hooks.iterdir()) == ["pre-commit"] and (hooks / "pre-commit").is_symlink()
    assert bashrc.read_text() == BASHRC


def test_linked_worktrees_and_bare_repositories_still_install(tmp_path: Path) -> None:
    """Their hooks live in the common git directory, which is the repository's own."""
    repo = clone_of(tmp_path, {})
    git("worktree", "add", "-q", str(tmp_path / "wt"), cwd=repo)
    coord(tmp_path / "wt", tmp_path).ok("install-git-hook")
    assert all(install.is_ours(repo / ".git" / "hooks" / name) for name in install.HOOKS)
    git("clone", "-q", "--bare", str(repo), str(tmp_path / "bare.git"), cwd=tmp_path)
    coord(tmp_path, tmp_path).ok("install-git-hook", "--repo", str(tmp_path / "bare.git"))
    assert all(install.is_ours(tmp_path / "bare.git" / "hooks" / name) for name in install.HOOKS)


def test_a_hooks_directory_the_users_global_config_names_is_theirs(tmp_path: Path) -> None:
    """``core.hooksPath`` in ``~/.gitconfig`` (a shared hooks directory, often a link into a dotfiles checkout) is
    the user's own choice, outside every repository: installed there, link and all."""
    shared = tmp_path / "dotfiles" / "githooks"
    shared.mkdir(parents=True)
    env = isolated_env(tmp_path / "env")
    home = Path(env["HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "hooks").symlink_to(shared)
    subprocess.run(["git", "config", "--global", "core.hooksPath", str(home / "hooks")], env=env, check=True)
    repo = clone_of(tmp_path, {})
    Coord(repo, env).ok("install-git-hook")
    assert all(install.is_ours(shared / name) for name in install.HOOKS)
