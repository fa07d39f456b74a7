"""cross-agent-status, -discover, -halt, -resume and -watch against a real hub: the seed's output and exit codes."""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx2

from tests.compat.conftest import Agent, World, agent


def second_project(world: World, tmp_path: Path) -> Agent:
    """Another project on homelab's machine: ``kit``, with its own session, declared."""
    kit = agent(world.hub, tmp_path / "kit", f"{world.homelab.machine.upper()}/kit", "kit",
                Path(world.homelab.env["GNUPGHOME"]))
    kit = kit.with_env(HOME=world.homelab.env["HOME"], XDG_STATE_HOME=world.homelab.env["XDG_STATE_HOME"])
    assert kit.coord("conv", "profile").code == 0
    return kit


def send(world: World, to: str, body: str) -> dict[str, object]:
    r = world.career.coord("conv", "send", to, "--conversation", world.conv, "--type", "progress", "--body", body,
                           "--json")
    assert r.code == 0, r
    return dict(r.json())


def test_status_shows_the_seed_table_and_json_per_project_of_this_machine(world: World, tmp_path: Path) -> None:
    homelab = world.homelab
    second_project(world, tmp_path)
    send(world, homelab.address, "one")
    newest = send(world, homelab.address, "two")
    r = homelab.drop("status")
    assert r.code == 0, r
    head, first, second = r.out.splitlines()
    assert head.split() == ["project", "pending", "most-recent"]
    assert re.fullmatch(rf"homelab  2        {re.escape(str(newest['file_name']))} \(\d+s ago\)", first), first
    assert second == "kit      0        —"
    data = json.loads(homelab.drop("status", "--json").out)
    assert set(data) == {"scanned_at", "halt_active", "projects"} and data["halt_active"] is False
    # the seed's (and cross-agent-discover's) datetime.isoformat() in UTC: +00:00, not the hub's Z
    assert data["scanned_at"].endswith("+00:00") and dt.datetime.fromisoformat(data["scanned_at"]).utcoffset() == \
        dt.timedelta(0), data
    assert [(p["name"], p["pending_count"]) for p in data["projects"]] == [("homelab", 2), ("kit", 0)]
    assert data["projects"][0]["most_recent"]["filename"] == newest["file_name"]
    only = json.loads(homelab.drop("status", "--json", "--projects-glob", "~/projects/k*/inbox/from-agents/").out)
    assert [p["name"] for p in only["projects"]] == ["kit"]
    none = homelab.drop("status", "--projects-glob", "/nowhere/*/")
    assert none.out.strip() == "No projects with conversations on this machine — 0 pending."


def test_discover_lists_this_machine_and_its_peers_with_presence(world: World, tmp_path: Path) -> None:
    homelab, career = world.homelab, world.career
    second_project(world, tmp_path)
    quiet = agent(world.hub, tmp_path / "quiet", f"QUIET-{world.conv[-6:].replace('-', '')}/notes", "notes",
                  Path(homelab.env["GNUPGHOME"]))
    assert quiet.coord("conv", "profile").code == 0
    gone = httpx2.post(f"{world.hub.url}/api/coord/presence/deregister", json={},
                       headers={"Authorization": f"Bearer {quiet.env['COORD_TOKEN']}"})
    assert gone.status_code == 200, gone.text

    r = homelab.drop("discover", "--peer", career.machine, "--no-cache")
    assert r.code == 0, r
    assert r.out.splitlines() == [
        f"Local ({homelab.machine}):", "  homelab, kit [2 projects]", "",
        f"Peers (from the hub at {world.hub.url}):",
        f"  {career.machine:<16} {'1 session':<24} ✓ reachable"]
    full = homelab.drop("discover", "--peer", career.machine, "--enumerate-remote").out.splitlines()
    assert full[-2:] == ["    projects: career", f"    sessions: {career.session} (active)"]
    data = json.loads(homelab.drop("discover", "--json").out)
    assert (data["machine"], data["local"], data["halt_active"]) == (homelab.machine, ["homelab", "kit"], False)
    peers = {p["name"]: p for p in data["peers"]}
    assert peers[career.machine] == {"name": career.machine, "host": career.machine, "reachable": True,
                                     "projects": ["career"], "sessions": [
                                         {"session_id": career.session, "state": "active", "tools": [],
                                          "address": career.address}]}
    assert peers[quiet.machine]["reachable"] is False
    assert peers[quiet.machine]["error"] == "no session present (freshest: offline)"
    line = homelab.drop("discover", "--peer", quiet.machine).out.splitlines()[-1]
    assert line.endswith("✗ UNREACHABLE (no session present (freshest: offline))")

    # review (seed-004 user run): an unknown --peer said "(no other machines)"; exit 0 and no peer, as the seed
    nosuch = homelab.drop("discover", "--peer", "nosuch")
    assert nosuch.code == 0 and nosuch.out.splitlines()[-1].startswith("  (no peer named nosuch at the hub; peers: "), \
        nosuch
    assert career.machine in nosuch.out.splitlines()[-1] and quiet.machine in nosuch.out.splitlines()[-1]
    own = homelab.drop("discover", "--peer", homelab.machine.upper())
    assert own.out.splitlines()[-1] == f"  ({homelab.machine.upper()} is this machine: see Local)", own
    as_json = homelab.drop("discover", "--peer", "nosuch", "--json")
    assert as_json.code == 0 and json.loads(as_json.out)["peers"] == [], as_json
    assert as_json.err.startswith("no peer named nosuch at the hub; peers: "), as_json


def fake_notify(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A ``notify-send`` that records its arguments (one JSON list per line); the PATH that finds it first."""
    shim, record = tmp_path / "bin", tmp_path / "notified"
    shim.mkdir()
    tool = shim / "notify-send"
    tool.write_text(f"#!{sys.executable}\nimport json, sys\nopen({str(record)!r}, 'a').write(json.dumps("
                    "sys.argv[1:]) + '\\n')\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{shim}:/usr/bin:/bin"}, record


class Watch:
    """A running cross-agent-watch, stopped with SIGINT at the end."""

    def __init__(self, who: Agent, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "coordhub.compat.crossagent", "watch", *args],
                                     cwd=who.cwd, env={**who.env, **env}, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()  # printed once the hub streams to the watcher
        assert first.startswith("cross-agent-watch: following turns for "), (first, self.proc.stderr)
        self.lines: list[str] = []

    def line(self) -> str:
        assert self.proc.stdout is not None
        got = self.proc.stdout.readline().rstrip("\n")
        assert got, self.proc.stderr.read() if self.proc.stderr else "watch ended"
        return got

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err


def wait_for(path: Path, count: int) -> list[str]:
    deadline = time.monotonic() + 60
    while True:
        found = path.read_text().splitlines() if path.exists() else []
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"{path} has {found}"
        time.sleep(0.05)


def test_watch_logs_and_notifies_each_turn_for_this_machines_projects(world: World, tmp_path: Path) -> None:
    homelab = world.homelab
    kit = second_project(world, tmp_path)
    env, notified = fake_notify(tmp_path)
    log = tmp_path / "watch.log"
    w = Watch(homelab, ["--log", str(log), "--projects-glob", "~/projects/homelab/inbox/from-agents/"], env)
    try:
        send(world, kit.address, "not watched: another project's folder")
        send(world, world.career.address, "not this machine")
        turn = send(world, homelab.address, "watched")
        stamp, project, name = wait_for(log, 1)[0].split("\t")
        assert (project, name) == ("homelab", turn["file_name"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)
        assert w.line() == f"[{stamp}] homelab: {turn['file_name']}"
        assert json.loads(wait_for(notified, 1)[0]) == ["Cross-agent message", f"homelab: {turn['file_name']}"]
    finally:
        code, err = w.stop()
    assert code == 0 and "Traceback" not in err, err
    assert len(log.read_text().splitlines()) == 1


def test_watch_exits_1_as_the_seed_did_for_a_glob_matching_nothing_and_an_unknown_flag(
        world: World, tmp_path: Path) -> None:
    """Review (seed-004 user run): ``--projects-glob '/nonexistent/*/'`` ran forever, watching nothing, where the
    seed's script said "glob resolved 0 directories" and exited 1; an unknown flag exited 2 (argparse), the seed's
    script 1. A glob naming a declared project's inbox folder not made yet is still watched."""
    homelab = world.homelab
    log = str(tmp_path / "watch.log")
    r = homelab.drop("watch", "--log", log, "--no-notify", "--projects-glob", str(tmp_path / "nonexistent/*/"),
                     timeout=60)
    assert (r.code, r.err.strip()) == (1, f"cross-agent-watch: glob resolved 0 directories: "
                                          f"{tmp_path / 'nonexistent/*/'}"), r
    for args in (("--bogus",), ("extra",)):
        r = homelab.drop("watch", "--log", log, *args, timeout=60)
        assert (r.code, r.err.strip()) == (1, f"unknown flag: {args[0]}"), r
    r = homelab.drop("watch", "--projects-glob", timeout=60)
    assert r.code == 1 and "expected one argument" in r.err, r
    assert not homelab.inbox.exists()  # no sync ran: the folder is not there, the project is declared
    w = Watch(homelab, ["--log", log, "--no-notify", "--projects-glob", "~/projects/*/inbox/from-agents/"], {})
    code, err = w.stop()
    assert code == 0 and "Traceback" not in err, err
