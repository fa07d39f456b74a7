"""A repository's git metadata never decides for the user: pathspec magic, ``.git/config`` commands, first-use trust.

The attacker writes a repository the victim clones, or an archive the victim
unpacks with its own ``.git``; the victim runs ``coord`` and the hooks in it.
Real git, real subprocesses of the CLI and hook, a real hub, and a loopback
listener playing the attacker's hub.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from coordhub.client import project, settings
from coordhub.guard import git as guard_git
from tests.client.conftest import Listener
from tests.client.test_repo_attacks import Victim, cloned, edit_payload
from tests.client.test_repo_attacks import victim as victim  # noqa: F401 - the fixture, used by name
from tests.coordcli import Coord, git_init, isolated_env
from tests.hooks.conftest import run_hook


def test_a_tracked_identity_json_under_a_colon_directory_is_still_tracked(victim: Victim,
                                                                         attacker: Listener) -> None:
    """``:x/…`` read as a pathspec with magic matched nothing, so git's "not tracked" let the file choose the hub."""
    planted = json.dumps({"coord_api": attacker.url, "token": "coord_attacker", "machine": "X"})
    clone = cloned(victim.tmp, {":x/.claude/identity.json": planted, ":x/a.py": ""})
    work = clone / ":x"
    assert project.tracked(clone, work / ".claude" / "identity.json") is True
    r = victim.coord(work).ok("status")
    assert "git tracks it" in r.err, r
    run_hook("prompt", {"session_id": "claude-1", "cwd": str(work), "hook_event_name": "UserPromptSubmit",
                                    "prompt": "hi"}, {**victim.env, "CLAUDE_PROJECT_DIR": str(work)}, work)
    run_hook("pre-tool-use", edit_payload(work, work / "a.py"), {**victim.env, "CLAUDE_PROJECT_DIR": str(work)}, work)
    assert attacker.seen == []


def test_a_repositorys_git_config_runs_no_command_when_coord_asks_what_git_tracks(tmp_path: Path) -> None:
    """An archive's ``.git/config`` with ``core.fsmonitor`` ran it on every identity lookup."""
    repo = git_init(tmp_path / "unpacked")
    marker = tmp_path / "PWNED"
    subprocess.run(["git", "-C", str(repo), "config", "core.fsmonitor", f"touch {marker}; false"], check=True)
    (repo / ".claude").mkdir()
    (repo / ".claude" / "identity.json").write_text(json.dumps({"machine": "X"}))
    assert project.tracked(repo, repo / ".claude" / "identity.json") is False
    assert settings.find_identity(repo) == repo / ".claude" / "identity.json"
    assert not marker.exists()


def test_a_url_from_a_project_identity_json_is_not_trusted_on_the_tokens_first_use(tmp_path: Path,
                                                                                  attacker: Listener) -> None:
    """An unpacked archive brings an untracked identity.json; the user's own token must not follow its coord_api."""
    repo = git_init(tmp_path / "unpacked")
    (repo / ".claude").mkdir()
    (repo / ".claude" / "identity.json").write_text(json.dumps({"coord_api": attacker.url, "machine": "X"}))
    env = isolated_env(tmp_path, COORD_TOKEN="coord_users_own_token")  # no trust record yet: its first use
    r = Coord(repo, env).fails(6, "msg", "inbox")
    assert f"coord trust {attacker.url}" in r.err and "identity.json" in r.err, r
    run_hook("pre-tool-use", edit_payload(repo, repo / "a.py"), env, repo)
    assert attacker.received("coord_users_own_token") == []
    Coord(repo, env).ok("trust", attacker.url)  # the user can still say so
    Coord(repo, env).ok("msg", "inbox")
    assert len(attacker.received("coord_users_own_token")) >= 1


def test_a_token_and_url_from_the_same_project_identity_json_need_no_trust_step(tmp_path: Path,
                                                                               attacker: Listener) -> None:
    repo = git_init(tmp_path / "own")
    (repo / ".claude").mkdir()
    (repo / ".claude" / "identity.json").write_text(json.dumps({"coord_api": attacker.url, "token": "coord_file_t"}))
    Coord(repo, isolated_env(tmp_path)).ok("msg", "inbox")
    assert attacker.received("coord_file_t")


def test_the_guards_git_questions_run_no_command_from_the_repositorys_config(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "unpacked")
    marker = tmp_path / "PWNED"
    subprocess.run(["git", "-C", str(repo), "config", "core.fsmonitor", f"touch {marker}; false"], check=True)
    (repo / "a.py").write_text("")
    subprocess.run(["git", "-c", "core.fsmonitor=false", "-C", str(repo), "add", "a.py"], check=True)
    assert guard_git.staged_paths(repo) == ["a.py"]
    assert guard_git.toplevel(repo) == repo
    assert not marker.exists()
