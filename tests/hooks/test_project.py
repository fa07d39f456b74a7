"""Project key, project-relative paths and hook settings (in-process, real git repositories)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from coordhub.core.paths import ResourceKind, classify
from coordhub.hooks import project, settings


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository with one commit, named ``shop``."""
    for name in ("COORD_PROJECT", "CLAUDE_PROJECT_DIR"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "shop"
    path.mkdir()
    git("init", "-q", cwd=path)
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "init",
        cwd=path)
    return path


def test_key_is_the_repository_name_from_any_subdirectory(repo: Path) -> None:
    (repo / "src" / "deep").mkdir(parents=True)
    p = project.resolve(repo / "src" / "deep")
    assert (p.key, p.root) == ("shop", repo)


def test_linked_worktrees_share_the_main_repositorys_key(repo: Path, tmp_path: Path) -> None:
    git("worktree", "add", "-q", str(tmp_path / "agent-7"), cwd=repo)
    p = project.resolve(tmp_path / "agent-7")
    assert (p.key, p.root) == ("shop", tmp_path / "agent-7")
    assert p.relative(str(tmp_path / "agent-7" / "src" / "a.py")) == "src/a.py"


def test_env_then_identity_then_directory(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert project.resolve(repo, {"project": "gururmm"}).key == "gururmm"
    monkeypatch.setenv("COORD_PROJECT", "from-env")
    assert project.resolve(repo, {"project": "gururmm"}).key == "from-env"


def test_the_key_is_folded_as_the_hub_folds_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A clone named ``GuruRMM`` is project ``gururmm`` (coordhub.core.projects), whichever rule named it."""
    for name in ("COORD_PROJECT", "CLAUDE_PROJECT_DIR"):
        monkeypatch.delenv(name, raising=False)
    clone = tmp_path / "GuruRMM"
    clone.mkdir()
    git("init", "-q", cwd=clone)
    assert project.resolve(clone).key == "gururmm"
    assert project.resolve(clone, {"project": "GuruRMM"}).key == "gururmm"
    monkeypatch.setenv("COORD_PROJECT", "GuruRMM")
    assert project.resolve(clone).key == "gururmm"


def test_claude_project_dir_picks_the_root(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_PROJECT_DIR", str(repo))
    assert project.resolve(tmp_path).root == repo
    assert project.resolve(tmp_path, claude_project_dir=False).root == tmp_path


def test_outside_git_the_directory_is_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COORD_PROJECT", raising=False)
    monkeypatch.delenv("CLAUDE_PROJECT_DIR", raising=False)
    (tmp_path / "plain").mkdir()
    p = project.resolve(tmp_path / "plain")
    assert (p.key, p.root) == ("plain", tmp_path / "plain")


def test_relative_paths(repo: Path, tmp_path: Path) -> None:
    p = project.Project("shop", repo)
    assert p.relative(str(repo / "src" / "a.py")) == "src/a.py"
    assert p.relative(str(repo / "src" / ".." / "b.py")) == "b.py"
    assert p.relative("c.py", cwd=repo / "lib") == "lib/c.py"
    assert p.relative(str(repo)) == "."
    assert p.relative(str(tmp_path / "other" / "a.py")) is None
    assert p.relative(str(repo / ".." / "shopping" / "a.py")) is None
    link = tmp_path / "link"
    link.symlink_to(repo)
    assert p.relative(str(link / "src" / "a.py")) == "src/a.py"
    assert project.Project("shop", link).relative(str(repo / "x.py")) == "x.py"


def test_names_list_the_lexical_and_the_resolved_name(repo: Path, tmp_path: Path) -> None:
    """Issue 7, point 13: an edit through a symlink inside the project has two names; both are checked."""
    p = project.Project("shop", repo)
    (repo / "src").mkdir()
    (repo / "src" / "a.py").write_text("")
    (repo / "alias").symlink_to("src")
    (repo / "link.py").symlink_to("src/a.py")
    (repo / "out").symlink_to(tmp_path)
    outside = tmp_path / "outside.py"
    outside.symlink_to(repo / "src" / "a.py")
    assert p.names(str(repo / "alias" / "a.py")) == ["alias/a.py", "src/a.py"]
    assert p.names(str(repo / "alias" / "new.py")) == ["alias/new.py", "src/new.py"]  # not created yet
    assert p.names("link.py", cwd=repo) == ["link.py", "src/a.py"]
    assert p.names(str(outside)) == ["src/a.py"]
    assert p.names(str(repo / "out" / "x.py")) == ["out/x.py"]  # resolves outside: the lexical name only
    assert p.names(str(repo / "src" / "a.py")) == ["src/a.py"]
    assert p.names(str(tmp_path / "elsewhere.py")) == []


def test_claimed_paths_are_project_relative_and_directories_end_in_a_slash(repo: Path, tmp_path: Path) -> None:
    """Issue 7, points 11 and 13: what ``coord lock claim`` and the stdio MCP server send for what was typed."""
    p = project.Project("shop", repo)
    (repo / "src" / "api").mkdir(parents=True)
    (repo / "src" / "a.py").write_text("")
    (repo / "alias").symlink_to("src")
    sub = repo / "src"
    cases = {
        str(repo / "src" / "a.py"): "src/a.py",  # absolute
        "a.py": "src/a.py",  # relative to the working directory
        "../README.md": "README.md",
        "api": "src/api/",  # an existing directory
        "api/": "src/api/",
        "new/": "src/new/",  # typed as a directory
        "new": "src/new",  # nothing there: a file
        str(repo / "alias"): "src/",  # through a symlink
        str(repo / "alias" / "a.py"): "src/a.py",
        ".": "src/",
        str(repo): "./",
        "deploy:notes.md": "deploy:notes.md",  # a NAME
        "../deploy:notes.md": "./deploy:notes.md",  # a file of that name keeps its ./
        "**/*.py": "**/*.py",  # globs pass unchanged
        str(tmp_path / "elsewhere.py"): str(tmp_path / "elsewhere.py"),  # outside the project
        "C:\\src\\x.py": "C:\\src\\x.py",  # a Windows path on a POSIX machine
        "bad\nname": "bad\nname",  # invalid: the hub says why
    }
    assert {typed: p.claimed(typed, sub) for typed in cases} == cases
    assert all(classify(r) is ResourceKind.PATH for t, r in cases.items() if t.startswith(("a", "n", "/", ".")))
    assert p.claimed("C:x", repo) == "C:x" and p.claimed("./C:x", repo) == "./C:x"  # a drive stays; a file too


def test_as_resource_keeps_odd_names_relative_paths() -> None:
    from coordhub.core.paths import ResourceKind, classify, overlaps

    for name in ("deploy:notes.md", "C:x", "src/a.py"):
        assert classify(project.as_resource(name)) is ResourceKind.PATH
    assert overlaps("src/", project.as_resource("src/a.py"))
    assert project.as_resource("src/") == "./src/" and classify("./src/") is ResourceKind.PATH
    assert not overlaps("deploy:notes.md", project.as_resource("deploy:notes.md"))  # a NAME is not that file


def test_settings_parse_and_fall_back(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for s in settings.HOOK_SETTINGS:
        monkeypatch.delenv(s.env, raising=False)
    assert settings.load() == settings.HookSettings("open", 2.0, 0.0, 5, 4000, False)
    monkeypatch.setenv("COORD_HOOK_FAIL_MODE", "CLOSED")
    monkeypatch.setenv("COORD_HOOK_TIMEOUT", "0.5")
    monkeypatch.setenv("COORD_HOOK_MAX_ITEMS", "2")
    monkeypatch.setenv("COORD_HOOK_RELEASE_ON_END", "yes")
    loaded = settings.load()
    assert loaded == settings.HookSettings("closed", 0.5, 0.0, 2, 4000, True) and loaded.fail_closed
    assert capsys.readouterr().err == ""
    for name, value in (("COORD_HOOK_TIMEOUT", "nan"), ("COORD_HOOK_MAX_CHARS", "-1"),
                        ("COORD_HOOK_MAX_ITEMS", "2.5"), ("COORD_HOOK_RELEASE_ON_END", "maybe")):
        monkeypatch.setenv(name, value)
    assert settings.load() == settings.HookSettings("closed", 2.0, 0.0, 5, 4000, False)
    err = capsys.readouterr().err
    assert err.count("coord-hook: ignoring") == 4


def test_settings_table_lists_every_setting() -> None:
    table = settings.settings_table()
    for s in settings.HOOK_SETTINGS:
        assert f"| `{s.env}` |" in table
