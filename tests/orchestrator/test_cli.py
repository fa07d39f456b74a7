"""Seed 003's verbs end to end: real ``coord`` subprocesses against a real ``coord serve``, hosts driven over HTTP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from coordhub.cli.views import shown_time
from coordhub.hooks.leases import when
from tests.conftest import LiveHub, free_port
from tests.coordcli import Coord, git_init, isolated_env
from tests.orchestrator.conftest import ORCH, config


class HttpHost:
    """A machine's host speaking to the live hub with its own token."""

    def __init__(self, hub: LiveHub, machine: str) -> None:
        self.url = hub.url + ORCH
        self.machine = machine
        self.headers = {"Authorization": f"Bearer {hub.token(f'{machine}/agent')}"}
        r = httpx2.post(self.url + "/hosts/register", headers=self.headers,
                        json={"machine": machine, "slots": 2, "repos": {"api": "/src/api"}, "capabilities": ["python"]})
        assert r.status_code == 200, r.text
        self.incarnation = r.json()["host_incarnation"]

    def next(self, wait: float = 0) -> dict[str, Any] | None:
        r = httpx2.post(self.url + "/hosts/next", headers=self.headers, timeout=wait + 10,
                        json={"machine": self.machine, "host_incarnation": self.incarnation, "wait": wait})
        assert r.status_code == 200, r.text
        return r.json()["assignment"]  # type: ignore[no-any-return]

    def post(self, path: str, body: dict[str, Any]) -> httpx2.Response:
        if path.endswith("/report"):  # a report names the host's incarnation
            body = {**body, "host_incarnation": self.incarnation}
        return httpx2.post(self.url + path, headers=self.headers, json=body)


@pytest.fixture
def cli(live_hub: LiveHub, tmp_path: Path) -> tuple[Coord, Coord]:
    """``coord`` as the hub's admin and as a user session, in a git working directory with a coordinator.yml."""
    work = git_init(tmp_path / "work")
    (work / "coordinator.yml").write_text(yaml.safe_dump(config()))
    base = Coord(work, isolated_env(tmp_path), url=live_hub.url)
    return base.as_token(live_hub.admin_token), base.as_token(live_hub.token("desk/claude-main"))


def test_init_detects_repositories_and_writes_a_valid_file(tmp_path: Path) -> None:
    work = tmp_path / "projects"
    api = git_init(work / "api")
    subprocess.run(["git", "-C", str(api), "remote", "add", "origin", "git@github.com:acme/api.git"], check=True)
    git_init(work / "lib")
    (work / "notes").mkdir()
    env = isolated_env(tmp_path)
    coord = Coord(work, env)
    r = coord.ok("init", "--yes", "--machine", "laptop")
    assert "2 repo(s) (api, lib), machine laptop" in r.out
    written = yaml.safe_load((work / "coordinator.yml").read_text())
    assert [x["name"] for x in written["repos"]] == ["api", "lib"]
    assert written["repos"][0]["github"] == "acme/api" and "github" not in written["repos"][1]
    assert written["machines"][0]["repo_paths"] == {"api": str(api.resolve()), "lib": str((work / "lib").resolve())}
    shown = coord.ok("config")
    assert "valid — 2 repo(s), 1 machine(s)" in shown.out and "max_workers: 2" in shown.out
    assert coord.json("config")["workers"]["permission_mode"] == "acceptEdits"
    coord.fails(1, "init", "--yes")  # never overwrites without --force
    # interactive: leave lib out, name the machine, two workers
    coord.ok("init", "--force", stdin="y\nn\ndesk\n2\n")
    written = yaml.safe_load((work / "coordinator.yml").read_text())
    assert [x["name"] for x in written["repos"]] == ["api"] and written["machines"][0]["name"] == "desk"
    empty = tmp_path / "empty"
    empty.mkdir()
    r = Coord(empty, env).fails(1, "init", "--yes", "--search", str(empty))
    assert "no git repositories found" in r.err


def test_init_keeps_coordinator_yml_out_of_git(tmp_path: Path) -> None:
    # seed 003: "coordinator.yml is gitignored"; it names this machine's paths, and users keep secrets in it
    work = git_init(tmp_path / "work")
    git_init(tmp_path / "src" / "api")
    env = isolated_env(tmp_path)
    r = Coord(work, env).ok("init", "--yes", "--machine", "laptop", "--search", str(tmp_path / "src"))
    assert "coordinator.yml is git-ignored through" in r.out
    status = subprocess.run(["git", "-C", str(work), "status", "--porcelain"], capture_output=True, text=True,
                            check=True).stdout
    assert "coordinator.yml" not in status
    assert "/coordinator.yml" in (work / ".git" / "info" / "exclude").read_text().splitlines()
    # a planted .git file naming a directory that is no repository gets no info/exclude made there
    planted, victim = tmp_path / "planted", tmp_path / "victim"
    planted.mkdir()
    victim.mkdir()
    (planted / ".git").write_text(f"gitdir: {victim}\n")
    r = Coord(planted, env).ok("init", "--yes", "--machine", "laptop", "--search", str(tmp_path / "src"))
    assert "git-ignored" not in r.out and (planted / "coordinator.yml").is_file()
    assert list(victim.iterdir()) == []


def test_config_errors_name_key_paths(tmp_path: Path) -> None:
    work = git_init(tmp_path / "w")
    bad = config(machines=[{"name": "laptop", "repos": ["api", "web"]}], concurrency={"max_workers": 0})
    (work / "coordinator.yml").write_text(yaml.safe_dump(bad))
    r = Coord(work, isolated_env(tmp_path)).fails(1, "config")
    assert "concurrency.max_workers: Input should be greater than or equal to 1" in r.err
    (work / "coordinator.yml").write_text("repos: [\n")
    r = Coord(work, isolated_env(tmp_path)).fails(1, "config")
    assert "not valid YAML" in r.err and "line " in r.err


def test_assign_and_status(live_hub: LiveHub, cli: tuple[Coord, Coord]) -> None:
    admin, me = cli
    me.fails(4, "assign", "laptop", "api", "1")  # 409 not_configured: nothing applied yet
    applied = admin.ok("config", "apply")
    assert "as version 1: 2 repo(s), 2 machine(s)" in applied.out
    hub = admin.json("config", "--hub")
    assert hub["version"] == 1
    shown = admin.ok("config", "--hub").out.splitlines()[0]  # to the second; --json keeps the microseconds
    assert shown.endswith(f" at {shown_time(hub['applied_at'])}:") and "." not in shown.split(" at ")[-1], shown
    out = me.ok("assign", "laptop", "api", "42", "--label", "documentation", "--title", "Fix auth",
                "--briefing", "Fix the auth bug").out
    assert "laptop → api #42: Fix auth" in out and "model: haiku (label documentation)" in out
    assert "position 1 in the queue, branch issue-42-fix-auth" in out
    other = me.json("assign", "--any", "api", "43", "--model", "opus", "--file", "src/a.py")
    assert other["any"] is True and other["files_likely"] == ["src/a.py"]
    me.fails(4, "assign", "server", "api", "42")  # already assigned
    assert "unknown machine 'desktop'" in me.fails(1, "assign", "desktop", "api", "1").err
    assert "unknown repo 'web'" in me.fails(1, "assign", "laptop", "web", "1").err
    me.fails(2, "assign", "laptop", "api")
    big = me.cwd / "big.txt"
    big.write_text("x" * 70_000)
    assert "the limit is 65536" in me.fails(1, "assign", "laptop", "api", "44", "--briefing-file", str(big)).err
    dry = me.json("assign", "laptop", "api", "45", "--dry-run")
    assert dry["dry_run"] is True and dry["position"] == 3
    host = HttpHost(live_hub, "laptop")
    job = host.next()
    assert job is not None and job["issue"] == 42
    orch = me.json("status")["orchestrator"]
    assert [m["machine"] for m in orch["machines"]] == ["laptop", "server"]
    assert orch["machines"][0]["state"] == "online" and orch["machines"][1]["state"] == "never"
    assert [q["issue"] for q in orch["queue"]] == [43] and orch["assignments"][0]["state"] == "dispatched"
    human = me.ok("status", "--machine", "laptop").out
    assert "machines" in human and "1/2" in human and "queue" in human and "dispatched" in human


def test_log_wait_stop_retry(live_hub: LiveHub, cli: tuple[Coord, Coord]) -> None:
    admin, me = cli
    admin.ok("config", "apply")
    first = me.json("assign", "laptop", "api", "42", "--model", "haiku")
    queued = me.json("assign", "server", "api", "43", "--model", "opus")["id"]
    host = HttpHost(live_hub, "laptop")
    job = host.next()
    assert job is not None and job["id"] == first["id"]
    assert host.post(f"/assignments/{job['id']}/log", {"attempt": 1, "offset": 0,
                                                       "text": "[init] haiku session 3f0c\n"}).status_code == 200
    assert me.ok("log", job["id"]).out == "[init] haiku session 3f0c\n"

    def finish() -> None:
        host.post(f"/assignments/{job['id']}/log", {"attempt": 1, "offset": 26, "text": "[result] done\n"})
        host.post(f"/assignments/{job['id']}/report", {"attempt": 1, "state": "done",
                                                       "telemetry": {"cost_usd": 0.45}})

    timer = threading.Timer(1.5, finish)
    timer.start()
    followed = me.ok("log", job["id"], "-f", "--interval", "0.2").out
    timer.join()
    assert followed == "[init] haiku session 3f0c\n[result] done\n"
    waited = me.ok("wait", job["id"], "--interval", "0.2")
    assert f"{job['id']} done" in waited.out and "$0.45" in waited.out
    me.fails(4, "retry", queued)  # queued: nothing to retry
    me.ok("stop", queued)
    r = me("wait", queued, "--interval", "0.2")
    assert r.code == 1 and "cancelled" in r.out
    again = me.json("retry", queued)
    # stopped: the retry keeps the model and where it came from (a stop is not a failure), and says so
    assert again["state"] == "queued" and (again["model"], again["model_source"]) == ("opus", "flag")
    me.ok("stop", queued)
    assert me.ok("retry", queued).out == "queued " + queued + " again on server, model opus (kept: a stop is not a " \
                                         "failure)\n"
    assert me("wait", queued, "--timeout", "0.3", "--interval", "0.1").code == 124
    assert "re-queued: none; failed: none" in me.ok("reconcile").out  # (laptop may be stale by now: no beats)
    assert "only a stuck or needs_input one is resumed" in me.fails(4, "resume-stuck", queued, "--guidance", "x").err


def test_unpause_lifts_a_rate_limit_pause(live_hub: LiveHub, cli: tuple[Coord, Coord]) -> None:
    admin, me = cli
    admin.ok("config", "apply")
    me.json("assign", "laptop", "api", "42")
    host = HttpHost(live_hub, "laptop")
    job = host.next()
    assert job is not None
    assert host.post(f"/assignments/{job['id']}/report", {"attempt": 1, "state": "running",
                                                       "telemetry": {"rate_limited_for": 3600}}).status_code == 200
    paused = next(line for line in me.ok("status").out.splitlines() if "DISPATCH PAUSED" in line)
    assert re.match(r"DISPATCH PAUSED until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: ", paused), paused  # to the second
    lifted = admin.ok("unpause").out
    assert lifted.startswith("dispatch resumed (was paused until ") and "rate limit reported by laptop" in lifted
    assert re.match(r"dispatch resumed \(was paused until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: ", lifted), lifted
    assert "DISPATCH PAUSED" not in me.ok("status").out
    assert admin.json("unpause") == {"was": None}


def _dispatched(live_hub: LiveHub, cli: tuple[Coord, Coord]) -> tuple[Coord, dict[str, Any], HttpHost, dict[str, Any]]:
    """The hub's coordinator.yml applied, api #5 assigned to laptop and dispatched to its host: (the person's CLI,
    the assignment as assigned, the host, the job it was given)."""
    admin, me = cli
    admin.ok("config", "apply")
    a = me.json("assign", "laptop", "api", "5")
    host = HttpHost(live_hub, "laptop")
    job = host.next()
    assert job is not None
    return me, a, host, job


def test_watch_with_an_id_follows_the_worker(live_hub: LiveHub, cli: tuple[Coord, Coord]) -> None:
    me, a, host, job = _dispatched(live_hub, cli)
    host.post(f"/assignments/{job['id']}/log", {"attempt": 1, "offset": 0, "text": "[init] sonnet\n[result] ok\n"})
    host.post(f"/assignments/{job['id']}/report", {"attempt": 1, "state": "done"})
    assert me.ok("watch", a["id"]).out == "[init] sonnet\n[result] ok\n"
    # seed 003's --all (every raw event, the worker's prose included): the hub holds only the filtered log, so it is
    # refused with where each part is, never answered with less and exit 0 (review: it was "No such option")
    r = me.fails(2, "watch", a["id"], "--all")
    assert r.out == "" and "cannot be shown through the hub" in r.err
    assert "`coord watch ID` prints all of that log" in r.err and "workers/ID/stream.ATTEMPT.jsonl" in r.err


def test_watch_exits_as_wait_does(live_hub: LiveHub, cli: tuple[Coord, Coord], tmp_path: Path) -> None:
    # `watch ID`: 0 when the run's result succeeded, 1 when it was an error (review: every end exited 0, and it
    # waited without bound), 124 when --timeout ran out first, as `coord wait`: it exited 3, which is also what an
    # unreachable hub exits, so a script could not tell "still running" from "could not ask"
    me, a, host, job = _dispatched(live_hub, cli)
    host.post(f"/assignments/{job['id']}/log", {"attempt": 1, "offset": 0, "text": "[init] sonnet\n"})
    r = me("watch", a["id"], "--timeout", "0.5", "--interval", "0.1")
    assert (r.code, r.out) == (124, "[init] sonnet\n"), r
    assert "timed out after 0.5s waiting for" in r.err and f"coord wait {a['id']}" in r.err
    host.post(f"/assignments/{job['id']}/report", {"attempt": 1, "state": "failed", "reason": "tests failed"})
    r = me("watch", a["id"])
    assert (r.code, r.out, r.err) == (1, "[init] sonnet\n", ""), r
    down = Coord(tmp_path, isolated_env(tmp_path / "down"), url=f"http://127.0.0.1:{free_port()}", token="coord_x")
    r = down.unreachable("watch", a["id"], "--timeout", "0.5")
    assert "timed out" not in r.err, r


def test_log_and_watch_with_an_id_print_json_lines(live_hub: LiveHub, cli: tuple[Coord, Coord]) -> None:
    # `coord watch ID --json` printed the text log (its --json was read only without an ID) and `coord log` had no
    # --json: a script reading "one JSON object per line" failed on the first line
    me, a, host, job = _dispatched(live_hub, cli)
    aid = job["id"]
    host.post(f"/assignments/{aid}/log", {"attempt": 1, "offset": 0, "text": "[init] sonnet\n[tool] Re"})
    running = [json.loads(line) for line in me.ok("log", aid, "--json").out.splitlines()]
    # a line the host has sent only part of is printed whole (not yet ended: no state)
    assert running == [{"assignment_id": aid, "line": "[init] sonnet"}, {"assignment_id": aid, "line": "[tool] Re"}]
    host.post(f"/assignments/{aid}/log", {"attempt": 1, "offset": 23, "text": "ad a.py\n[result] ok\n"})
    host.post(f"/assignments/{aid}/report", {"attempt": 1, "state": "done"})
    want = [{"assignment_id": aid, "line": "[init] sonnet"}, {"assignment_id": aid, "line": "[tool] Read a.py"},
            {"assignment_id": aid, "line": "[result] ok"}, {"assignment_id": aid, "state": "done"}]
    assert [json.loads(line) for line in me.ok("log", aid, "--json").out.splitlines()] == want
    assert [json.loads(line) for line in me.ok("watch", aid, "--json").out.splitlines()] == want
    assert me.ok("watch", aid).out == "[init] sonnet\n[tool] Read a.py\n[result] ok\n"  # the text view unchanged


def test_status_shows_why_an_assignment_ended(live_hub: LiveHub, cli: tuple[Coord, Coord]) -> None:
    # an assignment that failed showed its worker's last STATUS: line as its status, which read as if it still ran
    me, a, host, job = _dispatched(live_hub, cli)

    def row() -> str:
        return next(line for line in me.ok("status").out.splitlines() if line.startswith(a["id"]))

    host.post(f"/assignments/{job['id']}/report", {"attempt": 1, "state": "running",
                                                   "telemetry": {"status_line": "reading the issue and the code"}})
    assert "running" in row() and "reading the issue and the code" in row()  # a running one: its progress
    host.post(f"/assignments/{job['id']}/report", {"attempt": 1, "state": "failed",
                                                   "reason": "wall_clock: ran 10 s, over the 10 s limit"})
    assert "failed" in row() and "wall_clock: ran 10 s" in row() and "reading the issue" not in row()


def test_an_id_in_upper_case_names_the_assignment(live_hub: LiveHub, cli: tuple[Coord, Coord]) -> None:
    # ids are hex: A1B2C3D4 is a1b2c3d4, as an upper-case UUID names its message (review: watch answered 404)
    me, a, host, job = _dispatched(live_hub, cli)
    for issue in range(6, 60):  # an id of 8 decimal digits (1 in 43: (10/16)**8) has no case to change: next one
        if a["id"] != a["id"].upper():
            break
        host.post(f"/assignments/{job['id']}/report", {"attempt": 1, "state": "done"})
        a = me.json("assign", "laptop", "api", str(issue))
        job = host.next()
        assert job is not None and job["id"] == a["id"]
    shout = a["id"].upper()
    assert shout != a["id"]
    host.post(f"/assignments/{shout}/log", {"attempt": 1, "offset": 0, "text": "[init] sonnet\n"})
    host.post(f"/assignments/{job['id']}/report", {"attempt": 1, "state": "done"})
    assert me.ok("watch", shout).out == "[init] sonnet\n"
    assert f"{a['id']} done" in me.ok("wait", shout).out


def test_status_freshness_shows_what_each_machines_check_found(live_hub: LiveHub, cli: tuple[Coord, Coord]) -> None:
    # seed 003's `coord status --freshness` (it exited 2 here): each machine's dependency repos, as last checked
    me, a, host, job = _dispatched(live_hub, cli)
    stale = "lib: STALE: 2 commit(s) behind origin/main (workers.auto_pull is off)"
    assert host.post(f"/assignments/{job['id']}/report", {"attempt": 1, "state": "running",
                                                       "freshness": [stale]}).status_code == 200
    out = me.ok("status", "--freshness").out
    assert "freshness of dependency repos" in out
    row = next(line for line in out.splitlines() if "STALE: 2 commit(s)" in line)
    assert "laptop" in row and " lib " in f" {row} " and a["id"] in row
    assert "freshness of dependency repos" not in me.ok("status").out
    assert "laptop" in me.ok("status", "--freshness", "--machine", "laptop").out


def test_freshness_rows_keep_the_newest_note_per_machine_and_repo() -> None:
    from coordhub.cli.fleet import freshness_rows

    def run(ident: str, machine: str, started: str, *notes: str) -> dict[str, object]:
        return {"id": ident, "ran_on": machine, "started_at": started, "freshness": {"mode": "config",
                                                                                       "notes": list(notes)}}

    rows = freshness_rows([run("bbbbbbbb", "m1", "2026-01-02T00:00:00Z", "lib: fresh: at or ahead of origin/main"),
                           run("aaaaaaaa", "m1", "2026-01-01T00:00:00Z", "lib: STALE: 1 commit(s) behind origin/main",
                               "core: fresh: at or ahead of origin/main"),
                           run("cccccccc", "m2", "2026-01-03T00:00:00Z",
                               "skipped (coord approve --skip-freshness)"),
                           {"id": "dddddddd", "ran_on": None, "started_at": None,
                            "freshness": {"mode": "config", "notes": None}}])
    assert [(r["machine"], r["repo"], r["note"], r["assignment"]) for r in rows] == [
        ("m1", "core", "fresh: at or ahead of origin/main", "aaaaaaaa"),
        ("m1", "lib", "fresh: at or ahead of origin/main", "bbbbbbbb"),
        ("m2", "-", "skipped (coord approve --skip-freshness)", "cccccccc")]


def test_status_prints_times_to_the_second(capsys: pytest.CaptureFixture[str]) -> None:
    """`coord status` printed the hub's timestamps with their microseconds (seed-003 user run); the CLI prints
    times to the second (coordhub.cli.views.shown_time)."""
    from coordhub.cli.fleet import show_orchestrator
    from coordhub.cli.main import halt_line, pause_line
    from coordhub.cli.views import lease_rows

    t = "2026-01-01T00:00:10.123456Z"
    a = {"id": "aaaaaaaa", "repo": "api", "issue": 1, "machine": None, "ran_on": "m1", "model": "haiku",
         "state": "running", "attempt": 1, "total_cost_usd": 0.0, "stage": None, "reason": None, "status_line": None,
         "last_tool": None, "started_at": t, "freshness": {"mode": "config", "notes": ["lib: fresh"]}}
    view = {"configured": True, "paused": {"paused_until": t, "reason": "rate limit"}, "machines": [],
            "queue": [{**a, "id": "bbbbbbbb", "state": "queued", "position": 1, "not_before": t,
                       "reason": "host_stopped"}],
            "stagger": None, "assignments": [a], "totals": {"running": 1, "queued": 1, "cost_usd": 0.0, "by_day": {}}}
    show_orchestrator(view, freshness=True)
    out = capsys.readouterr().out
    assert ".123456" not in out and out.count("2026-01-01T00:00:10Z") == 3, out  # paused, not before, checked
    halt = {"scope": "fleet", "halted_by": "x", "halted_at": t, "reason": "r"}
    assert halt_line(halt) == "HALTED by x at 2026-01-01T00:00:10Z: r"
    assert "since 2026-01-01T00:00:10Z " in pause_line({"paused_at": t, "scope": "fleet"})
    assert lease_rows([{"expires_at": t}, {"expires_at": None}]) == [{"expires_at": "2026-01-01T00:00:10Z"},
                                                                      {"expires_at": "never"}]


def test_assignment_events_read_as_lines() -> None:
    from coordhub.cli.watch import describe

    event = {"id": 9, "kind": "assignment.dispatched", "session_id": "laptop/agent", "project_key": "api",
             "created_at": "2026-11-29T10:00:00Z",
             "payload": {"assignment_id": "25a03ecb", "repo": "api", "issue": 42, "model": "haiku",
                         "machine": "laptop", "attempt": 2}}
    assert describe(event).endswith("[api] 25a03ecb api #42 [haiku] dispatched to laptop (attempt 2)")
    stopping = {"id": 10, "kind": "host.stopping", "session_id": "laptop/agent", "project_key": None,
                "created_at": "2026-11-29T10:00:01Z", "payload": {"machine": "laptop", "incarnation": 3}}
    assert describe(stopping).endswith("  host laptop stopping: it takes no more work")
    stopped = {**stopping, "id": 11, "kind": "host.stopped", "session_id": None}
    assert describe(stopped).endswith("  host laptop stopped (it said so, then went silent): what it still ran is "
                                      "re-queued")
    # what was queued again, and why (these showed only an id: a restart's host_stopped was invisible in watch)
    again = {**event, "id": 12, "kind": "assignment.queued",
             "payload": {**event["payload"], "reason": "host_stopped: the host was stopped"}}
    assert describe(again).endswith("25a03ecb api #42 [haiku] queued: host_stopped: the host was stopped")
    run = {**event, "id": 13, "kind": "stage_run.queued", "session_id": None,
           "payload": {"run_id": "c50fbb67", "assignment_id": "25a03ecb", "stage": "test", "state": "queued",
                       "machine": None, "reason": "host_stopped: the host was stopped while it ran (it ran attempt 1)"}}
    assert describe(run).endswith("[api] test run c50fbb67 of 25a03ecb queued: host_stopped: the host was stopped "
                                  "while it ran (it ran attempt 1)")
    entry = {**event, "id": 14, "kind": "merge.queued", "session_id": None,
             "payload": {"entry_id": "6ea01fcd", "assignment_id": "25a03ecb", "repo": "api", "issue": 42,
                         "branch": "issue-42-x", "target": "main", "state": "queued", "merged_sha": None,
                         "machine": "laptop", "reason": "host_stopped: laptop was stopped during the merge run"}}
    assert describe(entry).endswith("merge entry 6ea01fcd api #42 issue-42-x → main queued: host_stopped: "
                                    "laptop was stopped during the merge run")


def test_pipeline_verbs_test_fix_stages_done(live_hub: LiveHub, cli: tuple[Coord, Coord], tmp_path: Path) -> None:
    admin, me = cli
    cfg = config(smoke_tests={"auto_queue": False}, hooks={"on_session_end": ["summary_report"]})
    (me.cwd / "coordinator.yml").write_text(yaml.safe_dump(cfg))
    admin.ok("config", "apply")
    host = HttpHost(live_hub, "laptop")
    aid = me.ok("assign", "laptop", "api", "7", "--json").json()["id"]
    job = host.next()
    assert job is not None
    assert host.post(f"/assignments/{aid}/report", {"attempt": 1, "state": "done",
                                                    "telemetry": {"cost_usd": 0.25}}).status_code == 200
    me.fails(2, "test", "--passed", "--fail", aid)  # one verdict
    r = me.ok("test", aid)
    assert "test run" in r.out and "queued" in r.out
    run = httpx2.post(host.url + "/hosts/next-run", headers=host.headers,
                      json={"machine": "laptop", "host_incarnation": host.incarnation}).json()["run"]
    # the test holds one of laptop's slots (runs share them with workers): the board says so (it said 0/2)
    (laptop,) = [line for line in me.ok("status").out.splitlines() if line.startswith("laptop ")]
    assert " 1/2 " in laptop, laptop
    assert host.post(f"/stage-runs/{run['id']}/report", {"attempt": 1, "state": "done", "exit_code": 1,
                                                        "output_tail": "E   assert 1 == 2",
                                                        "cost_usd": 0.04}).status_code == 200
    shown = me.ok("stages", aid).out
    assert "stage fix" in shown and "(exit 1)" in shown and "E   assert 1 == 2" in shown
    # the run's cost (the sum over its attempts) is shown, and is in --json
    assert f"test run {run['id']} of {aid}: failed (exit 1) on laptop, $0.04" in shown, shown
    assert [(r["id"], r["cost_usd"]) for r in me.json("stages", aid)["runs"]] == [(run["id"], 0.04)]
    assert me("fix", aid).code == 4  # a fix is already queued: refused (409)
    job = host.next()
    assert job is not None and job["model"] == "opus"
    assert host.post(f"/assignments/{aid}/report", {"attempt": 2, "state": "done",
                                                    "telemetry": {"cost_usd": 0.5}}).status_code == 200
    # the total is not the last attempt's (it read "attempt 2 on laptop, $0.75")
    assert "(attempt 2 on laptop, $0.75 over 2 attempts, $0.50 this one)" in me.ok("wait", aid).out
    r = me.ok("test", "--passed", aid, "--reason", "checked by hand")
    assert "passed" in r.out
    assert "stage merge" in me.ok("stages", aid).out
    done = me.ok("done").out
    assert "1 assignment(s), 2 attempt(s), 1 fix round(s)" in done and "hook summary_report: ran" in done
    # the fix's automatic rerun was still queued when the human's verdict came: cancelled by it
    assert "by stage: merge 1" in done and "test runs: cancelled 1, failed 1, passed 1" in done
    # since the last `coord done`, printed to the second as the CLI prints times (it showed microseconds)
    assert re.match(r"since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: 0 assignment", me.ok("done").out)


def test_status_shows_the_merge_queue(live_hub: LiveHub, cli: tuple[Coord, Coord]) -> None:
    admin, me = cli
    (me.cwd / "coordinator.yml").write_text(yaml.safe_dump(config(pipeline={"stages": []})))
    admin.ok("config", "apply")
    host = HttpHost(live_hub, "laptop")
    ids = []
    for issue in (50, 51):
        aid = me.json("assign", "laptop", "api", str(issue))["id"]
        job = host.next()
        assert job is not None and job["id"] == aid
        assert host.post(f"/assignments/{aid}/report", {"attempt": 1, "state": "done", "pushed": True,
                                                        "branch": job["branch"]}).status_code == 200
        ids.append(aid)
    assert "merge queue" not in me.ok("status").out  # nothing entered yet: no section
    entered = me.json("merge", *ids)["entered"]
    merges = me.json("status")["orchestrator"]["merges"]
    assert [(e["id"], e["assignment_id"], e["repo"], e["target"], e["state"], e["position"]) for e in merges] == [
        (entered[0], ids[0], "api", "main", "queued", 1), (entered[1], ids[1], "api", "main", "queued", 2)]
    assert [e["id"] for e in me.json("status", "--machine", "server")["orchestrator"]["merges"]] == entered
    human = me.ok("status").out
    assert "merge queue" in human and "api → main" in human and entered[0] in human and "api#51" in human
    assert "merge queue: 2" in human


def test_assign_refuses_issue_zero_before_asking_anything(live_hub: LiveHub, cli: tuple[Coord, Coord],
                                                           tmp_path: Path) -> None:
    # `coord assign laptop api 0` asked gh for issue 0 (a warning when that failed), then exited 1 with the hub's 422;
    # GitHub numbers issues from 1, so 0 is a usage error like `abc`, found before gh or the hub is asked
    from tests.fakes.ghstore import FakeGitHub

    admin, me = cli
    admin.ok("config", "apply")  # api has github: acme/api, so a valid number would be looked up with gh
    gh = FakeGitHub(tmp_path)
    me = me.with_(env={**me.env, **gh.env, "PATH": f"{gh.bin}{os.pathsep}{me.env['PATH']}"})
    for bad in ("0", "00", "abc", "²"):
        r = me.fails(2, "assign", "laptop", "api", bad)
        assert f"ISSUE must be an issue number (a positive integer), not {bad!r}" in r.err, r
        assert "warning" not in r.err
    assert me.fails(2, "assign", "laptop", "api", "--", "-3").err.count("positive integer") == 1
    assert gh.calls() == [] and admin.json("status")["orchestrator"]["queue"] == []


def test_status_of_a_machine_the_hub_does_not_know_is_refused(live_hub: LiveHub, cli: tuple[Coord, Coord]) -> None:
    # `coord status --machine nosuch` showed an empty queue and no assignments, exit 0: a misspelled name read as an
    # idle machine. Refused as `assign` refuses one (422, exit 1), naming the machines the hub knows
    admin, me = cli
    r = me.fails(1, "status", "--machine", "laptop")  # no coordinator.yml applied: the hub knows no machine
    assert "unknown machine 'laptop': the hub knows none (no coordinator.yml is applied" in r.err, r
    admin.ok("config", "apply")
    r = me.fails(1, "status", "--machine", "nosuch")
    assert r.out == "" and "unknown machine 'nosuch': the hub knows laptop, server [422 invalid]" in r.err, r
    r = me.fails(1, "status", "--machine", "nosuch", "--json")
    error = r.json()["error"]
    assert (error["code"], error["status"], error["field"]) == ("invalid", 422, "machine"), r
    assert "the hub knows laptop, server" in error["message"]
    assert [m["machine"] for m in me.json("status", "--machine", "LAPTOP")["orchestrator"]["machines"]] == ["laptop"]


def test_log_machine_and_local_say_why_they_are_not_needed(tmp_path: Path) -> None:
    # seed 003's `coord log ID --machine NAME` / `--local` answered "No such option" (seed-003 user run); now, as
    # `watch --all` and `agent --port`, exit 2 saying why and where the machine's own files are; nothing is asked
    coord = Coord(git_init(tmp_path / "w"), isolated_env(tmp_path), url="http://127.0.0.1:9", token="t")
    for flags, named in ((["--machine", "laptop"], "--machine"), (["--local"], "--local"),
                         (["-f", "--machine", "laptop"], "--machine")):
        r = coord("log", "25a03ecb", *flags)
        text = " ".join(r.err.split())
        assert r.code == 2 and r.out == "", r
        assert text.startswith(f"coord: {named} (seed 003: read the log from a machine's agent or from this "
                               "machine's files) is not needed"), text
        assert "`coord log ID` shows it from any machine" in text and "stream.ATTEMPT.jsonl" in text, text


def test_resume_help_says_it_is_not_seed_003s_board_recovery(tmp_path: Path) -> None:
    # a seed-003 user runs `coord resume` after a crash to recover the board; here it lifts a halt (seed 004), which
    # --help did not say was a different command from the seed's (seed-003 user run)
    coord = Coord(git_init(tmp_path / "w"), isolated_env(tmp_path), url="http://127.0.0.1:9", token="t")
    text = " ".join(coord.ok("resume", "--help").out.replace("│", " ").split())
    assert "Not seed 003's `coord resume` (the board's recovery after a crash)" in text, text
    assert "`coord reconcile` runs a pass now" in text, text


def test_agent_host_and_port_say_the_agent_connects_out(tmp_path: Path) -> None:
    # seed 003's `coord agent --port 7433` was a server the coordinator called; here it exited 2 with "No such
    # option: --port". Still exit 2, now saying the agent has no port and what to give it instead; nothing is asked
    coord = Coord(git_init(tmp_path / "w"), isolated_env(tmp_path), url="http://127.0.0.1:9", token="t")
    for flags in (["--port", "7433"], ["--host", "0.0.0.0"], ["--machine", "laptop", "--host", "x", "--port", "y"]):
        r = coord.fails(2, "agent", *flags)
        assert "this agent has no port of its own: it connects out to the hub" in r.err, r
        assert "`coord --url http://HUB:PORT --token T agent`" in r.err and "unreachable" not in r.err, r


def test_status_shows_a_queue_waiting_out_the_stagger(live_hub: LiveHub, cli: tuple[Coord, Coord]) -> None:
    # with stagger_seconds (coord init writes 30) a second assignment waited with a free slot while `coord status`
    # left "not before" and "why" blank. 600 s: the stagger still holds whatever this machine's speed
    admin, me = cli
    (me.cwd / "coordinator.yml").write_text(yaml.safe_dump(config(concurrency={"stagger_seconds": 600})))
    admin.ok("config", "apply")
    me.json("assign", "laptop", "api", "1")
    second = me.json("assign", "laptop", "api", "2")
    host = HttpHost(live_hub, "laptop")
    assert host.next() is not None and host.next() is None  # a slot free, the stagger holds the second back
    orch = me.json("status")["orchestrator"]
    assert orch["stagger"]["seconds"] == 600 and orch["queue"][0]["not_before"] is None
    row = next(line for line in me.ok("status").out.splitlines() if second["id"] in line)
    assert "stagger: 600 s between dispatches" in row and when(orch["stagger"]["until"]) in row, row  # to the second


def test_queue_wait_names_the_later_of_backoff_and_stagger() -> None:
    from coordhub.cli.fleet import queue_wait

    stagger = {"until": "2026-01-01T00:00:30Z", "seconds": 30.0}
    backoff = {"not_before": "2026-01-01T00:01:00Z", "reason": "host_stopped"}
    assert queue_wait(backoff, stagger) == {"not_before": "2026-01-01T00:01:00Z", "why": "re-queued: host_stopped"}
    early = {"not_before": "2026-01-01T00:00:10.5Z", "reason": "host_stopped"}
    assert queue_wait(early, stagger) == {"not_before": "2026-01-01T00:00:30Z", "why": "stagger: 30 s between "
                                          "dispatches (concurrency.stagger_seconds); re-queued: host_stopped"}
    assert queue_wait({"not_before": None, "reason": None}, None) == {"not_before": None, "why": None}


def test_a_run_again_says_its_reason_is_an_earlier_attempt_s() -> None:
    """`coord stages` showed a re-dispatched run as "running on laptop: host_restarted: …", which read as trouble
    of the run in progress; the reason is why the attempt before it ended (an end-to-end run)."""
    from coordhub.cli.pipeline import _run_line

    run = {"stage": "test", "id": "ba9758ec", "assignment_id": "8e32812a", "state": "running", "exit_code": None,
           "verdict": None, "findings": [], "machine": "laptop", "attempt": 2,
           "reason": "host_restarted: laptop came back as incarnation 8 without it (it ran attempt 1)"}
    assert _run_line(run) == ("test run ba9758ec of 8e32812a: running on laptop, attempt 2 (before it: host_restarted: "
                              "laptop came back as incarnation 8 without it (it ran attempt 1))")
    queued = {**run, "state": "queued", "machine": None}
    assert _run_line(queued).endswith("queued: host_restarted: laptop came back as incarnation 8 without it (it ran "
                                      "attempt 1)")
