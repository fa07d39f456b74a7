"""Seed 002's script verbs (``coord msg publish/check/ack``), its wrapper scripts run as subprocesses with the
seed's argument order, and ``CLAUDE_INSTANCE_ID`` as the session name."""

from __future__ import annotations

import json
import os
import queue
import re
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2
import pytest

from coordhub.client.settings import resolve
from coordhub.core.seed002 import hub_message_id
from tests.conftest import LiveHub, free_port
from tests.coordcli import Coord, git_init, isolated_env


@pytest.fixture
def team(live_hub: LiveHub, tmp_path: Path) -> dict[str, Coord]:
    """CLIs acting as the seed's three instances, each with its own token."""
    base = Coord(git_init(tmp_path / "work"), isolated_env(tmp_path / "env"), url=live_hub.url)
    return {name: base.as_token(live_hub.token(name)) for name in ("backend", "frontend", "orchestrator")}


def test_publish_check_ack_with_seed_types_and_recipients(team: dict[str, Coord]) -> None:
    be, fe, orch = team["backend"], team["frontend"], team["orchestrator"]
    sent = be.json("msg", "publish", "READY_FOR_REVIEW", "feature-x", "ready for review")
    assert (sent["from"], sent["to"], sent["type"], sent["requires_ack"]) == (
        "backend", "orchestrator", "READY_FOR_REVIEW", True)  # the seed's default recipient for a review
    assert be.json("msg", "publish", "general", "hi", "frontend?")["to"] == "frontend"  # backend ↔ frontend
    assert orch.json("msg", "publish", "CONTRACT_APPROVED", "v2", "ok", "--no-ack")["to"] == "all"
    assert fe.json("msg", "publish", "GENERAL", "x", "y", "--to", "orchestrator")["to"] == "orchestrator"

    bad = be.fails(2, "msg", "publish", "BUILD_BROKEN", "s", "d")
    assert "unknown message type 'BUILD_BROKEN'" in bad.err and "READY_FOR_REVIEW" in bad.err \
        and "SWARM_FAILED" in bad.err

    got = orch.json("msg", "check")  # seed 002's check: the instance's own inbox, which held no broadcast
    assert [(m["type"], m["from"], m["to"]) for m in got["messages"]] == [
        ("GENERAL", "frontend", "orchestrator"), ("READY_FOR_REVIEW", "backend", "orchestrator")]
    assert [m["type"] for m in orch.json("msg", "check", "--pending")["messages"]] == ["GENERAL", "READY_FOR_REVIEW"]
    assert orch.json("msg", "check", "--from", "BACKEND")["count"] == 1
    assert orch.json("msg", "check", "--type", "contract_approved")["count"] == 0
    assert orch.json("msg", "check", "--all", "--type", "contract_approved")["count"] == 1
    listing = orch.ok("msg", "check", "--all")
    assert "[PENDING]" in listing.out and "[INFO]" in listing.out and "broadcasts" in listing.err

    acked = orch.ok("msg", "ack", sent["id"], "--comment", "merged, thanks")
    assert f"acked {sent['id']}" in acked.out and "comment sent to backend" in acked.out
    assert [m["type"] for m in orch.json("msg", "check", "--pending")["messages"]] == ["GENERAL"]
    (reply,) = [m for m in be.json("msg", "check")["messages"] if m["to"] == "backend"]
    assert reply["payload"] == {"subject": "Re: feature-x", "description": "merged, thanks"}
    assert "[ACK]" in orch.ok("msg", "check", "--type", "READY_FOR_REVIEW").out


def test_softfail_publish_and_ack_queue_while_check_fails(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    cli = Coord(git_init(tmp_path / "work"), isolated_env(tmp_path / "env"), url=url, token="coord_x")
    cli.queued("msg", "publish", "GENERAL", "s", "d", "--to", "backend")
    cli.queued("msg", "ack", "msg-0000abcd", "--comment", "later")
    cli.unreachable("msg", "check")


def coord_shim(tmp_path: Path) -> Path:
    """An executable that runs this checkout's coord (what `COORD_BIN` points the wrappers at)."""
    shim = tmp_path / "bin" / "coord"
    shim.parent.mkdir(parents=True, exist_ok=True)
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m coordhub \"$@\"\n")
    shim.chmod(0o755)
    return shim


def test_wrapper_scripts_run_with_the_seeds_arguments(live_hub: LiveHub, tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    env = isolated_env(tmp_path / "env", COORD_URL=live_hub.url, COORD_BIN=str(coord_shim(tmp_path)))
    cli = Coord(repo, env)
    scripts = repo / "scripts" / "coordination"
    scripts.mkdir(parents=True)
    (scripts / "publish-message.sh").write_text("#!/bin/sh\necho the seed's own script\n")
    refused = cli.fails(1, "compat", "seed002-scripts", str(scripts))
    assert "--force" in refused.err
    cli.ok("compat", "seed002-scripts", str(scripts), "--force")
    for name in ("publish-message.sh", "check-messages.sh", "ack-message.sh"):
        assert (scripts / name).stat().st_mode & stat.S_IXUSR

    def run(who: str, script: str, *args: str) -> subprocess.CompletedProcess[str]:
        agent = {**env, "CLAUDE_INSTANCE_ID": who, "COORD_TOKEN": live_hub.token(who)}
        return subprocess.run([str(scripts / script), *args], cwd=repo, env=agent, capture_output=True, text=True,
                              timeout=60)

    p = run("backend", "publish-message.sh", "READY_FOR_REVIEW", "-feature-x", "--starts with dashes", "--to",
            "orchestrator")
    assert p.returncode == 0, p.stderr
    assert "  Type: READY_FOR_REVIEW\n  From: backend -> To: orchestrator\n  Subject: -feature-x\n" in p.stdout
    p = run("orchestrator", "check-messages.sh", "--pending", "--from", "backend")
    assert p.returncode == 0 and "[PENDING]" in p.stdout and "--starts with dashes" in p.stdout, p.stdout + p.stderr
    msg_id = seed_ids(p.stdout)[0]
    p = run("orchestrator", "ack-message.sh", msg_id, "--comment", "merged")
    assert p.returncode == 0 and f"  ID: {msg_id}\n" in p.stdout, p.stderr
    assert "No pending messages." in run("orchestrator", "check-messages.sh", "--pending").stdout
    # a usage error exits 1, as the seed's scripts did (seed-002 user run: 2, coord's)
    usage = run("backend", "publish-message.sh", "GENERAL", "only-two")
    assert usage.returncode == 1 and "usage: publish-message.sh" in usage.stderr
    bad = run("backend", "publish-message.sh", "NOPE", "s", "d")
    assert bad.returncode == 1 and "unknown message type" in bad.stderr
    # review: a dangling option took the wrapper's own -- as its value (a message to a session named "--")
    dangling = run("backend", "publish-message.sh", "GENERAL", "s", "d", "--to")
    assert dangling.returncode == 1 and "--to needs an <instance>" in dangling.stderr, dangling
    dangling = run("orchestrator", "ack-message.sh", msg_id, "--comment")
    assert dangling.returncode == 1 and "--comment needs a <comment>" in dangling.stderr, dangling
    for args in (("--bogus",), ("stray",), ("--type", "NOPE")):  # the seed's "Unknown option", a bad type
        unknown = run("orchestrator", "check-messages.sh", *args)
        assert unknown.returncode == 1, (args, unknown)


def seed_ids(out: str) -> list[str]:
    """The ids a seed-002 user's script takes from its scripts' output: the value of each ``  ID:`` line."""
    return [line.split()[1] for line in out.splitlines() if line.startswith("  ID: ")]


def test_wrappers_print_the_seeds_lines_for_scripts_that_parse_them(live_hub: LiveHub, tmp_path: Path) -> None:
    """publish-message.sh | awk '/ID:/{print $2}' gives an id that ack-message.sh takes; check and ack print the
    seed's fields one per line (seed-002 user run: the wrappers printed coord's own one-line layout, no ID: line)."""
    repo = git_init(tmp_path / "repo")
    env = isolated_env(tmp_path / "env", COORD_URL=live_hub.url, COORD_BIN=str(coord_shim(tmp_path)))
    scripts = repo / "scripts" / "coordination"
    Coord(repo, env).ok("compat", "seed002-scripts", str(scripts))

    def run(who: str, script: str, *args: str) -> subprocess.CompletedProcess[str]:
        agent = {**env, "CLAUDE_INSTANCE_ID": who, "COORD_TOKEN": live_hub.token(who)}
        return subprocess.run([str(scripts / script), *args], cwd=repo, env=agent, capture_output=True, text=True,
                              timeout=60)

    run("backend", "check-messages.sh")  # the hub knows backend: no unknown-recipient warning below
    p = run("orchestrator", "publish-message.sh", "REVIEW_FAILED", "feat-z", "lint:\nthree errors", "--to", "backend")
    assert p.returncode == 0, p.stderr
    (sent,) = seed_ids(p.stdout)
    assert p.stdout == (f"Message published:\n  ID: {sent}\n  Type: REVIEW_FAILED\n  From: orchestrator -> To: "
                        "backend\n  Subject: feat-z\n  Requires acknowledgment: Yes\n")
    assert "Requires acknowledgment" not in run("orchestrator", "publish-message.sh", "GENERAL", "fyi", "x",
                                                "--no-ack", "--to", "backend").stdout
    run("orchestrator", "publish-message.sh", "CONTRACT_APPROVED", "v2", "to everyone", "--to", "all")
    p = run("backend", "check-messages.sh", "--pending")
    assert p.returncode == 0 and seed_ids(p.stdout) == [sent], p.stdout  # the broadcast is not in the inbox
    lines = p.stdout.splitlines()
    assert lines[:7] == ["", "=== Coordination Messages ===", "Instance: backend", "",  # the seed's heading
                         "Messages Pending Acknowledgment:", "", "[PENDING] REVIEW_FAILED"], lines
    assert lines[8] == "  From: orchestrator -> To: backend"
    assert re.fullmatch(r"  Time: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lines[9]), lines[9]  # the seed's seconds
    assert lines[10:13] == ["  Subject: feat-z", "  Description: lint:\\nthree errors", ""]  # one line each
    assert lines[-4:] == ["---", "Displayed 1 message(s)", "",
                          "To acknowledge: ./scripts/coordination/ack-message.sh <message-id>"]
    plain = run("backend", "check-messages.sh").stdout
    assert len(seed_ids(plain)) == 2 and "Messages Pending" not in plain and "v2" not in plain, plain
    assert "  Subject: v2" in run("backend", "check-messages.sh", "--all").stdout  # --all: the broadcasts too
    p = run("backend", "ack-message.sh", sent, "--comment", "fixing")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[:3] == ["Message acknowledged:", f"  ID: {sent}", "  Acknowledged by: backend"]
    assert p.stdout.splitlines()[-1] == "  Comment: fixing"
    again = run("backend", "ack-message.sh", sent)
    assert again.returncode == 0 and f"  ID: {sent}" in again.stdout and "acked already" in again.stderr
    unknown = run("backend", "ack-message.sh", "msg-deadbeef")  # the seed's lines, on stdout (were on stderr only)
    assert unknown.returncode == 1 and unknown.stdout == ("Error: Message 'msg-deadbeef' not found\n\nUse "
                                                          "'./scripts/coordination/check-messages.sh --pending' to "
                                                          "see pending messages\n"), unknown
    assert "no message 'msg-deadbeef'" in unknown.stderr
    heading = "\n=== Coordination Messages ===\nInstance: backend\n\n"
    empty = run("backend", "check-messages.sh", "--pending")
    assert empty.returncode == 0 and empty.stdout == heading + "Messages Pending Acknowledgment:\n\n" \
        "  No pending messages.\n", empty.stdout
    assert run("backend", "check-messages.sh", "--from", "nobody").stdout == heading + "No messages match the filter.\n"
    data = json.loads(run("backend", "check-messages.sh", "--json").stdout)  # --json wins over the seed's lines
    assert data["count"] == 2 and {m["id"] for m in data["messages"]} >= {sent}


def test_wrappers_read_arguments_as_the_seeds_scripts_did(live_hub: LiveHub, tmp_path: Path) -> None:
    """Options before or between the positional arguments, -h/--help teaching with exit 0, a second id refused
    (seed-002 user run: `publish-message.sh --to X TYPE S D` was a usage error, and `ack-message.sh --help`
    acked a message named --help: 404, exit 1)."""
    repo = git_init(tmp_path / "repo")
    env = isolated_env(tmp_path / "env", COORD_URL=live_hub.url, COORD_BIN=str(coord_shim(tmp_path)))
    scripts = repo / "scripts" / "coordination"
    Coord(repo, env).ok("compat", "seed002-scripts", str(scripts))

    def run(who: str, script: str, *args: str) -> subprocess.CompletedProcess[str]:
        agent = {**env, "CLAUDE_INSTANCE_ID": who, "COORD_TOKEN": live_hub.token(who)}
        return subprocess.run([str(scripts / script), *args], cwd=repo, env=agent, capture_output=True, text=True,
                              timeout=60)

    run("orchestrator", "check-messages.sh")
    p = run("backend", "publish-message.sh", "--to", "orchestrator", "GENERAL", "first", "options first")
    assert p.returncode == 0 and "  From: backend -> To: orchestrator" in p.stdout, p.stdout + p.stderr
    p = run("backend", "publish-message.sh", "GENERAL", "--no-ack", "second", "--to", "orchestrator", "between")
    assert p.returncode == 0 and "Requires acknowledgment" not in p.stdout, p.stdout + p.stderr
    got = run("orchestrator", "check-messages.sh", "--from", "backend")
    ids = seed_ids(got.stdout)
    assert len(ids) == 2 and "  Subject: second" in got.stdout and "  Subject: first" in got.stdout, got.stdout
    p = run("orchestrator", "ack-message.sh", "--comment", "thanks", ids[1])
    assert p.returncode == 0 and f"  ID: {ids[1]}" in p.stdout and "  Comment: thanks" in p.stdout, p.stderr
    for script in ("publish-message.sh", "check-messages.sh", "ack-message.sh"):
        for flag in ("-h", "--help"):
            helped = run("backend", script, flag)
            assert helped.returncode == 0 and "Usage:" in helped.stdout, (script, flag, helped)
    assert "READY_FOR_REVIEW" in run("backend", "publish-message.sh", "--help").stdout  # the types are taught
    two = run("orchestrator", "ack-message.sh", ids[0], ids[1])
    assert two.returncode == 1 and "unexpected argument" in two.stderr and "usage: ack-message.sh" in two.stderr
    four = run("backend", "publish-message.sh", "GENERAL", "a", "b", "c")
    assert four.returncode == 1 and "usage: publish-message.sh" in four.stderr and "--help" in four.stderr
    # under --json a usage error of the wrapper's own is coord's envelope on stdout, as coord's own are
    for script, args in (("publish-message.sh", ("GENERAL", "a", "--json")), ("publish-message.sh", (
            "GENERAL", "a", "b", "--json", "--to")), ("ack-message.sh", ("--json", "x", "y")),
            ("ack-message.sh", ("--json",)), ("ack-message.sh", ("x", "--json", "--comment"))):
        bad = run("backend", script, *args)
        assert bad.returncode == 1, (args, bad)
        error = json.loads(bad.stdout)["error"]
        assert error["code"] == "usage" and error["message"].startswith(f"{script}: "), (args, bad.stdout)
    assert run("backend", "publish-message.sh", "GENERAL", "a").stdout == ""  # without --json: stderr only


def test_wrapper_scripts_say_what_replaces_the_seeds_redis_only_scripts(tmp_path: Path) -> None:
    """watch-notifications.sh and mcp-server.sh stay and still speak to Redis: the user is told what replaces
    them (seed-002 user run: nothing said so, and they failed once Redis was switched off)."""
    repo = git_init(tmp_path / "repo")
    scripts = repo / "scripts" / "coordination"
    scripts.mkdir(parents=True)
    (scripts / "watch-notifications.sh").write_text("#!/bin/sh\nredis-cli SUBSCRIBE coord:notify:pm\n")
    done = Coord(repo, isolated_env(tmp_path / "env")).ok("compat", "seed002-scripts", str(scripts))
    assert "watch-notifications.sh as it is" in done.err and "coord watch" in done.err, done.err
    assert "mcp-server.sh" not in done.err  # only what is there
    assert (scripts / "watch-notifications.sh").read_text().endswith("coord:notify:pm\n")  # left as it was


def test_the_seed_002_commands_help_reads_whole_in_80_columns(tmp_path: Path) -> None:
    """Each seed-002 command's --help in a terminal 80 columns wide cuts no word (seed-002 user run: `coord import
    redis --help` showed the default --url as 'redis://$REDIS_HOST:$REDIS_PORT/…', REDIS_DB cut off)."""
    cli = Coord(git_init(tmp_path / "w"), isolated_env(tmp_path / "env", COLUMNS="80"))
    for command in (("import", "redis"), ("msg", "publish"), ("msg", "check"), ("msg", "ack"),
                    ("compat", "seed002-scripts")):
        shown = cli.ok(*command, "--help").out
        assert not re.search(r"\w…", shown), (command, shown)  # rich marks a word cut at the edge with "…"
        assert "--help" in shown
    assert "REDIS_DB" in cli.ok("import", "redis", "--help").out


def test_wrappers_say_so_when_coord_cannot_be_found(tmp_path: Path) -> None:
    """A wrapper run where coord is not installed (a hook's shell without the venv) says what is missing and how
    to point at it (seed-002 user run: 'line 17: exec: coord: not found')."""
    repo = git_init(tmp_path / "repo")
    scripts = repo / "scripts" / "coordination"
    Coord(repo, isolated_env(tmp_path / "env")).ok("compat", "seed002-scripts", str(scripts))
    missing = str(tmp_path / "nowhere" / "coord")
    env = isolated_env(tmp_path / "env", COORD_BIN=missing)
    for script, args in (("publish-message.sh", ("GENERAL", "s", "d")), ("check-messages.sh", ()),
                         ("ack-message.sh", ("msg-1a2b3c4d",)), ("publish-message.sh", ("--help",))):
        p = subprocess.run([str(scripts / script), *args], cwd=repo, env=env, capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 127 and p.stdout == "", (script, p)
        assert f"{script}: {missing} (coordhub's CLI) not found" in p.stderr and "COORD_BIN" in p.stderr, p.stderr


def test_claude_instance_id_names_the_session_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = git_init(tmp_path / "w")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("COORD_SESSION", "COORD_TOKEN", "COORD_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLAUDE_INSTANCE_ID", "backend")
    assert resolve(start=work).session == "backend"
    monkeypatch.setenv("CLAUDE_INSTANCE_ID", "unknown")  # seed 002's placeholder names nobody
    assert resolve(start=work).session is None
    monkeypatch.setenv("CLAUDE_INSTANCE_ID", "backend")
    (work / ".claude").mkdir()
    (work / ".claude" / "identity.json").write_text('{"machine": "HOWARD-HOME"}')
    assert resolve(start=work).session == "HOWARD-HOME/claude-main"  # identity.json comes first
    monkeypatch.setenv("COORD_SESSION", "frontend")
    assert resolve(start=work).session == "frontend"
    assert resolve(session="orchestrator", start=work).session == "orchestrator"


def test_claude_instance_id_is_the_identity_only_on_a_no_auth_hub(tmp_path: Path) -> None:
    open_hub = LiveHub(tmp_path / "open", args=("--no-auth",)).start()
    auth_hub = LiveHub(tmp_path / "auth").start()
    try:
        env = isolated_env(tmp_path / "env", CLAUDE_INSTANCE_ID="backend")
        cli = Coord(git_init(tmp_path / "work"), env)
        sent = cli.with_(url=open_hub.url).json("msg", "publish", "GENERAL", "s", "d", "--to", "frontend")
        assert sent["from"] == "backend"
        refused = cli.with_(url=auth_hub.url).fails(6, "msg", "publish", "GENERAL", "s", "d", "--to", "frontend")
        assert "session 'backend' is named but" in refused.err and "needs a token" in refused.err
        # a token decides who acts, whatever CLAUDE_INSTANCE_ID says; no silent admin either
        as_fe = cli.with_(url=auth_hub.url).as_token(auth_hub.token("frontend"))
        assert as_fe.json("msg", "publish", "GENERAL", "s", "d", "--to", "backend")["from"] == "frontend"
        assert "admin" not in os.environ.get("COORD_TOKEN", "")
    finally:
        open_hub.stop()
        auth_hub.stop()


def test_wrapper_scripts_never_write_through_planted_symlinks(tmp_path: Path) -> None:
    """A cloned repository's ``.publish-message.sh.tmp -> ~/.bashrc`` is neither written nor chmodded, and a
    script name that is itself a symlink is refused even with --force (review: the temp file was followed)."""
    repo = git_init(tmp_path / "repo")
    cli = Coord(repo, isolated_env(tmp_path / "env"))
    victim = tmp_path / "home-bashrc"
    victim.write_text("export MINE=1\n")
    victim.chmod(0o600)
    scripts = repo / "scripts" / "coordination"
    scripts.mkdir(parents=True)
    (scripts / "publish-message.sh").write_text("echo the seed's own\n")
    for name in ("publish-message.sh", "check-messages.sh", "ack-message.sh"):
        (scripts / f".{name}.tmp").symlink_to(victim)
    cli.ok("compat", "seed002-scripts", str(scripts), "--force")
    assert victim.read_text() == "export MINE=1\n" and stat.S_IMODE(victim.stat().st_mode) == 0o600
    for name in ("publish-message.sh", "check-messages.sh", "ack-message.sh"):
        written = scripts / name
        assert not written.is_symlink() and stat.S_IMODE(written.stat().st_mode) == 0o755
        assert "coordhub" in written.read_text()

    (scripts / "ack-message.sh").unlink()
    (scripts / "ack-message.sh").symlink_to(victim)
    refused = cli.fails(1, "compat", "seed002-scripts", str(scripts), "--force")
    assert "ack-message.sh" in refused.err and "symlink" in refused.err
    assert (scripts / "ack-message.sh").is_symlink() and victim.read_text() == "export MINE=1\n"


def test_wrapper_scripts_never_go_through_a_planted_directory_symlink(tmp_path: Path) -> None:
    """A cloned repository's ``scripts -> ~/.bashrc.d`` (a directory every file of which a login shell sources)
    would put the scripts, and their ``exit 2``, outside the repository: refused even with --force, nothing
    written; a directory the user named by an absolute path outside the project is taken as it is."""
    repo = git_init(tmp_path / "repo")
    cli = Coord(repo, isolated_env(tmp_path / "env"))
    sourced = tmp_path / "home" / ".bashrc.d"
    sourced.mkdir(parents=True)
    (repo / "scripts").symlink_to(sourced)
    for args in (("scripts/coordination",), ("scripts/coordination", "--force"), (str(repo / "scripts"),)):
        refused = cli.fails(1, "compat", "seed002-scripts", *args)
        assert "symlink" in refused.err and "scripts" in refused.err, refused
    assert list(sourced.iterdir()) == []
    elsewhere = tmp_path / "tools"
    cli.ok("compat", "seed002-scripts", str(elsewhere))
    assert sorted(p.name for p in elsewhere.iterdir()) == ["ack-message.sh", "check-messages.sh",
                                                           "publish-message.sh"]


def test_check_reads_on_past_a_page_the_hub_ended_at_its_text_bound(live_hub: LiveHub, team: dict[str, Coord]) -> None:
    """Ten messages of 500,000 characters: the hub ends its page after 8 (about 4 MiB) and names where older ones
    follow (Coord-Next-Before-Seq); `coord msg check` reads on and lists all ten (it stopped at a page shorter
    than 500, listing 8)."""
    import httpx2

    token = live_hub.token("backend")
    with httpx2.Client(base_url=live_hub.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        for n in range(10):
            r = http.post("/api/coord/messages", json={"to_session": "orchestrator", "subject": f"m{n}",
                                                       "body": f"{n} " + "x" * 500_000, "message_type": "GENERAL"})
            assert r.status_code == 201, r.text
    got = team["orchestrator"].json("msg", "check", "--from", "backend")
    assert [m["payload"]["subject"] for m in got["messages"]] == [f"m{n}" for n in range(9, -1, -1)]


def test_an_imported_messages_seed_id_works_where_a_user_pastes_it(live_hub: LiveHub, team: dict[str, Coord]) -> None:
    """`coord msg read`, `coord msg send --reply-to` and `coord msg thread` take the seed id of an imported message
    as `coord msg check` shows it (seed-002 user run: read said it was no id, exit 2; --reply-to and the REST API's
    reply_to said no message; the thread was empty), and `coord msg read` names it so in its confirmation (it
    printed the hub's UUID)."""
    item = {"kind": "message", "id": "msg-a810fae1", "from_session": "backend", "to_session": "orchestrator",
            "subject": "feature-auth", "body": "ready", "message_type": "READY_FOR_REVIEW", "requires_ack": True,
            "created_at": "2026-01-23T10:00:00Z"}
    r = httpx2.post(live_hub.url + "/api/coord/imports/seed002", json={"source": "t", "items": [item]},
                    headers={"Authorization": f"Bearer {live_hub.admin_token}"})
    assert r.status_code == 200 and r.json()["counts"]["imported"] == 1, r.text
    orch, be = team["orchestrator"], team["backend"]
    assert [m["id"] for m in orch.json("msg", "check")["messages"]] == ["msg-a810fae1"]
    # named as typed (was the hub's UUID for it, which the user never saw), as `coord msg ack` names it
    assert orch.ok("msg", "read", "msg-a810fae1").out == "read msg-a810fae1\n"
    again = orch.ok("msg", "read", "msg-a810fae1").out
    assert again.startswith("already read msg-a810fae1 (at ") and hub_message_id("msg-a810fae1") not in again, again
    reply = orch.json("msg", "send", "frontend/claude-main", "Re: feature-auth", "looking", "--reply-to",
                      "msg-a810fae1")
    assert reply["reply_to"] == hub_message_id("msg-a810fae1")
    assert [m["subject"] for m in orch.json("msg", "thread", "msg-a810fae1")] == ["feature-auth", "Re: feature-auth"]
    assert [m["subject"] for m in be.json("msg", "thread", "msg-a810fae1")] == ["feature-auth"]  # not frontend's
    gone = orch.fails(1, "msg", "read", "msg-nope0000")  # named as typed, not by the UUID it maps to
    assert "no message 'msg-nope0000'" in gone.err and hub_message_id("msg-nope0000") not in gone.err, gone.err
    assert "no message 'msg-nope0000'" in orch.fails(1, "msg", "send", "backend", "s", "b", "--reply-to",
                                                     "msg-nope0000").err
    orch.fails(2, "msg", "read", "12")  # what is neither a UUID nor a seed id is still no id
    orch.ok("msg", "ack", "msg-a810fae1")
    # the sender's `coord watch` names it by its seed id too (it printed the hub's UUID for the read and the ack)
    lines = _watched(be, "orchestrator acked")
    assert any(line.endswith("orchestrator read msg-a810fae1") for line in lines), lines
    assert any(line.endswith("orchestrator acked msg-a810fae1 from backend") for line in lines), lines
    assert hub_message_id("msg-a810fae1") not in "".join(lines), lines


def _watched(cli: Coord, until: str) -> list[str]:
    """The lines `coord watch --after 0 --kinds message.` prints, as ``cli``, up to the first containing ``until``
    (at most 30 s). A thread reads the lines: ``select`` on the pipe misses a line already in the reader's buffer
    (the two lines came in one chunk, and the wait for a second ran out with one line read)."""
    cmd = [sys.executable, "-m", "coordhub", "--url", str(cli.url), "--token", str(cli.token), "watch", "--after",
           "0", "--kinds", "message."]
    proc = subprocess.Popen(cmd, cwd=cli.cwd, env={**cli.env, "COLUMNS": "300"}, stdout=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    got: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [got.put(line) for line in proc.stdout or ()], daemon=True)
    reader.start()
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while (left := deadline - time.monotonic()) > 0:
            try:
                lines.append(got.get(timeout=left).rstrip("\n"))
            except queue.Empty:
                break
            if until in lines[-1]:
                break
    finally:
        proc.terminate()
        proc.wait(10)
        reader.join(10)  # the pipe ends with the process
        proc.stdout.close()
    return lines


def test_msg_send_to_a_bare_instance_name_reaches_that_session(team: dict[str, Coord]) -> None:
    """Seed 000's rule reads `coord msg send backend` as machine backend, session backend/claude-main; a seed-002
    team's session is `backend` alone, so while the hub knows only that one the message goes to it, said in one
    line (seed-002 user run: it waited for backend/claude-main, never seen, and only then came a warning). A name
    the hub knows neither way keeps seed 000's reading, the warning and the way to reach a bare session."""
    team["backend"].ok("msg", "check")  # the hub knows backend
    sent = team["orchestrator"].ok("msg", "send", "backend", "hi", "direct")
    assert sent.err.splitlines() == ["coord: sent to the session backend: the hub has never seen "
                                     "backend/claude-main, the machine backend's session"], sent.err
    assert sent.out.rstrip().endswith(" to backend"), sent.out
    assert [(m["from"], m["to"]) for m in team["backend"].json("msg", "check")["messages"]] == [
        ("orchestrator", "backend")]
    ghost = team["orchestrator"].ok("msg", "send", "ghost", "hi", "direct")
    assert "never seen ghost/claude-main" in ghost.err and "sent to the session" not in ghost.err
    assert "`coord msg publish TYPE SUBJECT TEXT --to ghost`" in ghost.err, ghost.err
    assert "read as a machine" not in team["orchestrator"].ok("msg", "send", "backend/claude-main", "hi", "x").err
