"""``coord install-git-hook``: where the hooks go, never clobbering a foreign hook, chaining with --force."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from coordhub.cli.hooks import install_git_hook
from coordhub.guard import install
from tests.coordcli import isolated_env

app = typer.Typer()
app.command("install-git-hook")(install_git_hook)
app.command("noop")(lambda: None)  # a second command keeps install-git-hook a named subcommand


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git("init", "-q", cwd=path)
    return path


def cli(*args: str) -> object:
    return CliRunner().invoke(app, ["install-git-hook", *args], catch_exceptions=False)


def test_installs_both_hooks_executable_and_idempotent(repo: Path) -> None:
    r = cli("--repo", str(repo))
    assert r.exit_code == 0, r.output
    hooks = repo / ".git" / "hooks"
    first = {n: (hooks / n).read_text() for n in install.HOOKS}
    for name, text in first.items():
        assert text.startswith("#!/bin/sh\n" + install.MARKER) and f"git-{name} \"$@\"" in text
        assert (hooks / name).stat().st_mode & 0o111
    assert cli("--repo", str(repo)).exit_code == 0
    assert {n: (hooks / n).read_text() for n in install.HOOKS} == first


def test_no_pre_push(repo: Path) -> None:
    assert cli("--repo", str(repo), "--no-pre-push").exit_code == 0
    assert (repo / ".git" / "hooks" / "pre-commit").exists()
    assert not (repo / ".git" / "hooks" / "pre-push").exists()


def test_a_foreign_hook_is_never_clobbered(repo: Path) -> None:
    foreign = repo / ".git" / "hooks" / "pre-commit"
    foreign.write_text("#!/bin/sh\nexit 0\n")
    r = cli("--repo", str(repo))
    assert r.exit_code == 1 and "exists and is not coordhub's" in r.output and "--force" in r.output
    assert foreign.read_text() == "#!/bin/sh\nexit 0\n"
    assert not (repo / ".git" / "hooks" / "pre-push").exists()  # nothing installed at all


def test_force_chains_the_foreign_hook_first(repo: Path, tmp_path: Path) -> None:
    hooks = repo / ".git" / "hooks"
    (hooks / "pre-commit").write_text("#!/bin/sh\necho foreign-ran >&2\nexit 1\n")
    (hooks / "pre-commit").chmod(0o755)
    assert cli("--repo", str(repo), "--force").exit_code == 0
    assert (hooks / "pre-commit.local").read_text().startswith("#!/bin/sh\necho foreign-ran")
    assert "pre-commit.local" in (hooks / "pre-commit").read_text()
    env = isolated_env(tmp_path / "env", COORD_URL="http://127.0.0.1:9")
    git("config", "user.name", "t", cwd=repo)
    git("config", "user.email", "t@example.com", cwd=repo)
    (repo / "a.txt").write_text("a")
    git("add", "a.txt", cwd=repo)
    p = subprocess.run(["git", "commit", "-q", "-m", "x"], cwd=repo, env=env, capture_output=True, text=True)
    assert p.returncode == 1 and "foreign-ran" in p.stderr and "coord guard" not in p.stderr
    (hooks / "pre-commit.local").write_text("#!/bin/sh\necho foreign-ran >&2\nexit 0\n")
    p = subprocess.run(["git", "commit", "-q", "-m", "x"], cwd=repo, env=env, capture_output=True, text=True)
    assert p.returncode == 0 and "foreign-ran" in p.stderr and "coord guard: warning" in p.stderr
    # reinstalling keeps the chain; a second --force does not touch .local
    assert cli("--repo", str(repo)).exit_code == 0 and "pre-commit.local" in (hooks / "pre-commit").read_text()


def test_force_refuses_when_local_already_exists(repo: Path) -> None:
    hooks = repo / ".git" / "hooks"
    (hooks / "pre-commit").write_text("#!/bin/sh\nexit 0\n")
    (hooks / "pre-commit.local").write_text("#!/bin/sh\nexit 0\n")
    r = cli("--repo", str(repo), "--force")
    assert r.exit_code == 1 and "already exists" in r.output


def test_chained_pre_push_gives_both_hooks_the_refs(repo: Path, tmp_path: Path) -> None:
    hooks = repo / ".git" / "hooks"
    (hooks / "pre-push").write_text(f"#!/bin/sh\ncat > {tmp_path / 'seen'}\n")
    (hooks / "pre-push").chmod(0o755)
    assert cli("--repo", str(repo), "--force").exit_code == 0
    git("config", "user.name", "t", cwd=repo)
    git("config", "user.email", "t@example.com", cwd=repo)
    git("commit", "-q", "--allow-empty", "-m", "x", cwd=repo)
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "o.git")], check=True)
    git("remote", "add", "o", str(tmp_path / "o.git"), cwd=repo)
    env = isolated_env(tmp_path / "env", COORD_URL="http://127.0.0.1:9")
    p = subprocess.run(["git", "push", "-q", "o", "HEAD:refs/heads/main"], cwd=repo, env=env, capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "seen").read_text().split()[2] == "refs/heads/main"


def test_core_hooks_path_is_respected(repo: Path) -> None:
    git("config", "core.hooksPath", ".githooks", cwd=repo)
    assert cli("--repo", str(repo)).exit_code == 0
    assert (repo / ".githooks" / "pre-commit").exists()
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()


def test_not_a_repository(tmp_path: Path) -> None:
    r = cli("--repo", str(tmp_path))
    assert r.exit_code == 1 and "not a git repository" in r.output


def test_no_pre_push_still_guards_merges(repo: Path) -> None:
    """pre-merge-commit is pre-commit's check for ``git merge`` (which runs no pre-commit): installed with it."""
    assert cli("--repo", str(repo), "--no-pre-push").exit_code == 0
    assert install.is_ours(repo / ".git" / "hooks" / "pre-merge-commit")


def test_a_foreign_pre_merge_commit_is_chained_first_and_its_refusal_stands(repo: Path, tmp_path: Path) -> None:
    hooks = repo / ".git" / "hooks"
    (hooks / "pre-merge-commit").write_text("#!/bin/sh\necho foreign-merge-ran >&2\nexit 1\n")
    (hooks / "pre-merge-commit").chmod(0o755)
    r = cli("--repo", str(repo))
    assert r.exit_code == 1 and "pre-merge-commit exists and is not coordhub's" in r.output
    assert not (hooks / "pre-commit").exists()  # nothing installed at all
    assert cli("--repo", str(repo), "--force").exit_code == 0
    assert (hooks / "pre-merge-commit.local").read_text().startswith("#!/bin/sh\necho foreign-merge-ran")
    git("config", "user.name", "t", cwd=repo)
    git("config", "user.email", "t@example.com", cwd=repo)
    env = isolated_env(tmp_path / "env", COORD_URL="http://127.0.0.1:9")
    git("commit", "-q", "--allow-empty", "-m", "base", cwd=repo)
    git("checkout", "-q", "-b", "side", cwd=repo)
    git("commit", "-q", "--allow-empty", "-m", "side", cwd=repo)
    git("checkout", "-q", "-", cwd=repo)
    git("commit", "-q", "--allow-empty", "-m", "main", cwd=repo)
    p = subprocess.run(["git", "merge", "--no-ff", "-m", "m", "side"], cwd=repo, env=env, capture_output=True,
                       text=True)
    assert p.returncode != 0 and "foreign-merge-ran" in p.stderr and "coord guard" not in p.stderr
    git("merge", "--abort", cwd=repo)
    (hooks / "pre-merge-commit.local").write_text("#!/bin/sh\necho foreign-merge-ran >&2\nexit 0\n")
    p = subprocess.run(["git", "merge", "--no-ff", "-m", "m", "side"], cwd=repo, env=env, capture_output=True,
                       text=True)
    assert p.returncode == 0 and "foreign-merge-ran" in p.stderr, p.stderr
