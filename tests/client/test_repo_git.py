"""A repository's git metadata never decides for the user: pathspec magic, ``.git/config`` commands, first-use trust.

The attacker writes a repository the victim clones, or an archive the victim
unpacks with its own ``.git``; the victim runs ``coord`` and the hooks in it.
Real git, real subprocesses of the CLI and hook, a real hub, and a loopback
listener playing the attacker's hub.
"""

from __future__ import annotations

import json
import subprocess
import sys
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


def _archive(tmp_path: Path, identity: dict[str, str]) -> Path:
    """An unpacked archive: its own ``.git`` and an untracked ``.claude/identity.json`` (git cannot tell it apart
    from one the user wrote)."""
    repo = git_init(tmp_path / "unpacked")
    (repo / ".claude").mkdir()
    (repo / ".claude" / "identity.json").write_text(json.dumps(identity))
    return repo


def _agent_in(repo: Path, env: dict[str, str]) -> None:
    """What an agent's tools do in ``repo``: the prompt hook (which puts the inbox in the agent's context), the edit
    hook, and the MCP server (which refuses to start: exit 6)."""
    hook_env = {**env, "CLAUDE_PROJECT_DIR": str(repo)}
    run_hook("prompt", {"session_id": "claude-1", "cwd": str(repo), "hook_event_name": "UserPromptSubmit",
                        "prompt": "hi"}, hook_env, repo)
    run_hook("pre-tool-use", edit_payload(repo, repo / "a.py"), hook_env, repo)
    r = Coord(repo, env).fails(6, "mcp")
    assert "coord trust" in r.err, r


def test_an_archives_identity_json_with_its_own_token_asks_its_hub_only_once_trusted(tmp_path: Path,
                                                                                    attacker: Listener) -> None:
    """Before, a token beside the URL in the same file went there on first use: the archive's hub then saw the
    session's edits and messages and put its own text in the agent's context."""
    repo = _archive(tmp_path, {"coord_api": attacker.url, "token": "coord_archive_t", "machine": "X"})
    env = isolated_env(tmp_path)
    r = Coord(repo, env).fails(6, "msg", "inbox")
    assert f"coord trust {attacker.url}" in r.err and "that URL and the token come from" in r.err, r
    _agent_in(repo, env)
    assert attacker.seen == []
    Coord(repo, env).ok("trust", attacker.url)  # the user says it is their hub: it is asked from then on
    Coord(repo, env).ok("msg", "inbox")
    assert attacker.received("coord_archive_t")


def test_an_archives_identity_json_without_a_token_asks_its_no_auth_hub_only_once_trusted(
        tmp_path: Path, attacker: Listener) -> None:
    attacker.health["auth"] = False  # a --no-auth hub: the session name is the identity
    repo = _archive(tmp_path, {"coord_api": attacker.url, "session": "victim-1"})
    env = isolated_env(tmp_path)
    r = Coord(repo, env).fails(6, "msg", "inbox")
    assert "(no token)" in r.err and f"coord trust {attacker.url}" in r.err, r
    _agent_in(repo, env)
    assert attacker.seen == []
    r = Coord(repo, env).ok("trust", attacker.url)
    assert "session victim-1 (named by" in r.out and "without a token may now ask" in r.out, r  # that name alone
    Coord(repo, env).ok("msg", "inbox")
    assert any(seen["headers"].get("X-Coord-Session") == "victim-1" for seen in attacker.seen), attacker.seen


def test_a_project_identity_json_naming_the_users_own_hub_needs_no_trust_step(tmp_path: Path,
                                                                             attacker: Listener) -> None:
    """The hub ``~/.claude/identity.json`` names (here a listener standing in for it) is the user's choice already;
    a project's file naming it, with the user's own token, chooses nothing new."""
    env = isolated_env(tmp_path, COORD_TOKEN="coord_users_own")
    home = Path(env["HOME"]) / ".claude"
    home.mkdir(parents=True)
    (home / "identity.json").write_text(json.dumps({"coord_api": attacker.url + "/"}))
    repo = _archive(tmp_path, {"coord_api": attacker.url, "machine": "X"})
    Coord(repo, env).ok("msg", "inbox")
    assert attacker.received("coord_users_own")


def test_a_project_identity_json_naming_no_hub_or_token_keeps_the_users_own(tmp_path: Path,
                                                                           attacker: Listener) -> None:
    """Review: a project file of machine and project alone hid ``~/.claude/identity.json``'s hub and token: the
    default hub was asked, with no token."""
    env = isolated_env(tmp_path)
    home = Path(env["HOME"]) / ".claude"
    home.mkdir(parents=True)
    (home / "identity.json").write_text(json.dumps({"coord_api": attacker.url, "token": "coord_users_own"}))
    repo = _archive(tmp_path, {"machine": "X", "project": "shop"})
    Coord(repo, env).ok("msg", "inbox")
    assert attacker.received("coord_users_own")


def test_a_token_a_project_identity_json_holds_acts_only_once_trusted_even_on_the_users_own_hub(
        tmp_path: Path, attacker: Listener) -> None:
    """Review: a colleague's token in an archive's identity.json, naming the user's own (shared) hub, made the
    user's agent act as the colleague: its hooks read that session's inbox into the agent's context."""
    env = isolated_env(tmp_path)
    home = Path(env["HOME"]) / ".claude"
    home.mkdir(parents=True)
    (home / "identity.json").write_text(json.dumps({"coord_api": attacker.url, "token": "coord_users_own"}))
    repo = _archive(tmp_path, {"coord_api": attacker.url + "/", "token": "coord_colleague", "session": "colleague"})
    r = Coord(repo, env).fails(6, "msg", "inbox")
    assert "the token comes from" in r.err and "and that token yours" in r.err, r
    _agent_in(repo, env)
    assert attacker.seen == []
    Coord(repo, env).ok("trust", attacker.url)
    Coord(repo, env).ok("msg", "inbox")
    assert attacker.received("coord_colleague")


def test_no_side_path_asks_or_hands_on_a_hub_an_archive_chose(tmp_path: Path, attacker: Listener) -> None:
    """Review: ``coord sync`` and ``coord conv keys add`` asked its ``/health`` first, the seed-002 API's
    ``health_check`` reported it healthy, ``coord agent --install-service`` wrote its URL and token into a service
    unit, and ``coord web`` / ``coord mcp-config`` handed its URL on, where it would count as the user's choice."""
    attacker.health["auth"] = False
    repo = _archive(tmp_path, {"coord_api": attacker.url, "token": "coord_archive_t", "machine": "X"})
    env = isolated_env(tmp_path)
    for args in (("sync",), ("web", "--print"), ("mcp-config",), ("agent", "--machine", "m1", "--install-service")):
        r = Coord(repo, env).fails(6, *args)
        assert f"coord trust {attacker.url}" in r.err and attacker.url not in r.out, r
    assert not list(tmp_path.rglob("coord-agent-m1.service")) and not list(tmp_path.rglob("agent-m1.env"))
    probe = ("import asyncio, json\n"
             "from coordhub.client.seed002 import CoordinationClient\n"
             "from coordhub.client.settings import resolve\n"
             "print(json.dumps(asyncio.run(CoordinationClient(resolve()).health_check())))\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=60)
    health = json.loads(done.stdout)
    assert health["connected"] is False and "coord trust" in health["error"], (health, done.stderr)
    assert attacker.seen == []


def test_the_guards_git_questions_run_no_command_from_the_repositorys_config(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "unpacked")
    marker = tmp_path / "PWNED"
    subprocess.run(["git", "-C", str(repo), "config", "core.fsmonitor", f"touch {marker}; false"], check=True)
    (repo / "a.py").write_text("")
    subprocess.run(["git", "-c", "core.fsmonitor=false", "-C", str(repo), "add", "a.py"], check=True)
    assert guard_git.staged_paths(repo) == ["a.py"]
    assert guard_git.toplevel(repo) == repo
    assert not marker.exists()
