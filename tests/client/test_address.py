"""The caller's conversation address (seed 004's ``<machine>.<project>``), worked out on the client."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from coordhub.client import address
from tests.coordcli import git_init


def test_machine_from_identity_then_session_then_host_name() -> None:
    assert address.machine({"machine": "HOWARD-HOME"}, "DESKTOP-0O8A1RL/claude-main", "h") == "howard-home"
    assert address.machine({}, "DESKTOP-0O8A1RL/claude-main", "h") == "desktop-0o8a1rl"
    assert address.machine({}, "backend", "Velox.tail1234.ts.net") == "velox"
    assert address.machine({"machine": "  "}, None, "ratio") == "ratio"


def test_project_from_env_then_identity_then_git_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = git_init(tmp_path / "My.Project")
    (repo / "src").mkdir()
    monkeypatch.delenv("COORD_PROJECT", raising=False)
    assert address.project_name({}, repo / "src") == "my-project"
    assert address.project_name({"project": "Career"}, repo) == "career"
    monkeypatch.setenv("COORD_PROJECT", "HomeLab")
    assert address.project_name({"project": "career"}, repo) == "homelab"
    monkeypatch.delenv("COORD_PROJECT")
    assert address.project_name({}, tmp_path) is None


def test_a_linked_worktree_is_its_repositorys_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COORD_PROJECT", raising=False)
    repo = git_init(tmp_path / "career")
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q",
                    "--allow-empty", "-m", "x"], check=True)
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "-q", str(tmp_path / "wt-7")], check=True)
    assert address.project_name({}, tmp_path / "wt-7") == "career"


def test_parts_and_destinations() -> None:
    assert address.part(" Foo Bar!! ") == "foo-bar"
    # names the hub would take as they are come out as the client before address_part made them (review r7)
    for name, made in (("api_", "api"), ("web-", "web"), ("tools__", "tools"), ("x-", "x"),
                       ("My.Project", "my-project"), ("_a_b_", "a_b"), ("career", "career"),
                       ("a" * 63 + "-b", "a" * 63 + "-")):
        assert address.part(name) == made, name
    for empty in ("-", "_", "__-"):
        with pytest.raises(ValueError):
            address.part(empty)
    with pytest.raises(ValueError):
        address.part("...")
    assert address.parse("local.Career", "velox") == address.Address("velox", "career")
    assert str(address.parse("RATIO.homelab", "velox")) == "ratio.homelab"
    for bad in ("career", ".career", "velox.", "ve lox.career", "velox.ca.reer"):
        with pytest.raises(ValueError):
            address.parse(bad, "velox")
