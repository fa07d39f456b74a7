"""End to end (issue 11, "Show it"): a real ``coord serve``, two real ``coord agent`` processes with different
machine names on this box, real git repositories cloned from one bare ``origin``, the fake ``claude`` on PATH.

* 6 issues, ``max_workers: 2``, two hosts of 2 slots each: never more than 2 workers at once (the recorded
  start and end of every claude process, and the hub's dispatch and end times), all done, every branch pushed,
  every worktree cleaned, costs totalled.
* kill -9 of a host mid-run: the restarted host re-attaches to its running worker (nothing lost, nothing run
  twice); and once the hub has given the attempt up, the restarted host kills the orphan, saves its work, and
  the new attempt finishes on the same branch.
* ``resume-stuck`` through the hub continues the same Claude session in the same worktree; a fleet halt
  stops the running worker (SIGSTOP) and the resume continues it; overlapping files never run at once; bad
  input to ``coord agent`` is one clear line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.conftest import LiveHub
from tests.orchestrator.host.conftest import Repo, make_repo, run

API = "/api/coord/orchestrator"


@dataclass
class Agent:
    machine: str
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    log: Path
    state: Path

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(60)


class Fleet:
    """A hub with a config applied, clones per machine, and ``coord agent`` processes started on demand."""

    def __init__(self, hub: LiveHub, root: Path, claude_bin: Path, repo: Repo, machines: list[str]) -> None:
        self.hub, self.root, self.claude_bin, self.repo = hub, root, claude_bin, repo
        self.admin = {"Authorization": f"Bearer {hub.admin_token}"}
        self.clones = {m: self._clone(m) for m in machines}
        self.agents: list[Agent] = []
        config = {"repos": [{"name": "app", "default_branch": "main"}],
                  "machines": [{"name": m, "repos": ["app"], "repo_paths": {"app": str(p)}}
                               for m, p in self.clones.items()],
                  "concurrency": {"max_workers": 2, "stagger_seconds": 0, "heartbeat_seconds": 0.5,
                                  "stale_threshold": 4},
                  "workers": {"first_output_seconds": 30, "silence_seconds": 30}}
        r = httpx2.put(hub.url + f"{API}/config", json=config, headers=self.admin)
        assert r.status_code == 200, r.text
        self.tokens = {m: hub.token(f"{m}/agent") for m in machines}

    def configure(self, **concurrency: Any) -> None:
        """Apply the config again with these ``concurrency`` settings changed."""
        config = httpx2.get(self.hub.url + f"{API}/config", headers=self.admin).json()["config"]
        config["concurrency"].update(concurrency)
        httpx2.put(self.hub.url + f"{API}/config", json=config, headers=self.admin).raise_for_status()

    def _clone(self, machine: str) -> Path:
        path = self.root / f"clone-{machine}"
        run(self.root, "git", "clone", "-q", str(self.repo.origin), str(path))
        run(path, "git", "config", "user.email", f"dev@{machine}")
        run(path, "git", "config", "user.name", machine)
        return path

    def start(self, machine: str, *args: str) -> Agent:
        home = self.root / f"home-{machine}"
        home.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
        env.update(PATH=f"{self.claude_bin}{os.pathsep}{os.environ['PATH']}", HOME=str(home),
                   XDG_CONFIG_HOME=str(home / ".config"), XDG_STATE_HOME=str(home / ".state"),
                   CLAUDE_CONFIG_DIR=str(self.root / "claude"))
        log = self.root / f"agent-{machine}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "coordhub", "--url", self.hub.url, "--token",
                                     self.tokens[machine], "agent", "--machine", machine, "--poll-wait", "2",
                                     "--linger", "3", "--stop-grace", "3", *args],
                                    env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        agent = Agent(machine, proc, env, log, home / ".state" / "coordhub" / "agent" / machine)
        self.agents.append(agent)
        return agent

    def assign(self, issue: int, briefing: str, **extra: Any) -> str:
        body = {"repo": "app", "issue": issue, "briefing": briefing, **({"any": True} if "machine" not in extra
                                                                         else {}), **extra}
        r = httpx2.post(self.hub.url + f"{API}/assignments", json=body, headers=self.admin)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def get(self, aid: str) -> dict[str, Any]:
        r = httpx2.get(self.hub.url + f"{API}/assignments/{aid}", headers=self.admin)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def wait(self, aid: str, cond: Callable[[dict[str, Any]], bool], timeout: float = 90.0) -> dict[str, Any]:
        deadline = time.time() + timeout
        while True:
            a = self.get(aid)
            if cond(a):
                return a
            if time.time() > deadline:
                logs = "\n".join(f"--- {x.machine}\n{x.log.read_text()[-3000:]}" for x in self.agents)
                raise AssertionError(f"assignment {aid} never got there: {a}\n{logs}")
            time.sleep(0.2)

    def runs(self) -> list[dict[str, Any]]:
        """Every claude process the fake recorded (its start, and its end when it finished normally)."""
        d = self.root / "claude" / "env"
        return [json.loads(p.read_text()) for p in d.iterdir()] if d.is_dir() else []


@pytest.fixture
def fleet(tmp_path: Path, claude_bin: Path, live_hub: LiveHub) -> Iterator[Fleet]:
    repo = make_repo(tmp_path, "app")
    f = Fleet(live_hub, tmp_path, claude_bin, repo, ["m1", "m2"])
    yield f
    for a in f.agents:
        a.stop(signal.SIGKILL if a.proc.poll() is None else 0)
    for r in f.runs():  # no fake claude outlives the test
        try:
            os.killpg(r["pgid"], signal.SIGKILL)
        except OSError:
            pass


ENDED = ("done", "failed", "stuck", "needs_input", "cancelled")


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def test_six_issues_two_hosts_max_two_workers(fleet: Fleet) -> None:
    agents = [fleet.start("m1"), fleet.start("m2")]
    ids = [fleet.assign(n, "fake: slow work=1 beat=0.2") for n in range(1, 7)]
    finals = [fleet.wait(aid, lambda a: a["state"] in ENDED) for aid in ids]
    assert [a["state"] for a in finals] == ["done"] * 6, [a["reason"] for a in finals]
    # never more than max_workers at once: the claude processes' own start/end, and the hub's dispatch/end
    runs = fleet.runs()
    assert len(runs) == 6 and all("ended" in r for r in runs)
    assert most_at_once([(r["started"], r["ended"]) for r in runs]) <= 2
    from datetime import datetime
    def ts(v: str) -> float:
        return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
    assert most_at_once([(ts(a["dispatched_at"]), ts(a["ended_at"])) for a in finals]) <= 2
    assert {a["ran_on"] for a in finals} <= {"m1", "m2"}
    # branches pushed to the bare origin, worktrees cleaned, costs totalled
    assert sorted(b for b in fleet.repo.remote_branches() if b != "main") == sorted(a["branch"] for a in finals)
    assert all(a["pushed"] for a in finals)
    for agent in agents:
        wts = agent.state / "worktrees"
        assert not wts.exists() or list(wts.iterdir()) == [], list(wts.iterdir())
    status = httpx2.get(fleet.hub.url + f"{API}/status", headers=fleet.admin).json()
    assert status["totals"]["cost_usd"] == pytest.approx(sum(a["cost_usd"] for a in finals))
    assert sum(a["cost_usd"] for a in finals) > 0
    log = httpx2.get(fleet.hub.url + f"{API}/assignments/{ids[0]}/log", headers=fleet.admin).json()
    assert "[init]" in log["text"] and "[result] completed" in log["text"] and "[end] done" in log["text"]
    for agent in agents:
        assert agent.stop() == 0  # SIGTERM: a clean stop
        assert "Traceback" not in agent.log.read_text()


def _pid_of_running_claude(fleet: Fleet, aid: str) -> int:
    deadline = time.time() + 60
    while time.time() < deadline:
        for r in fleet.runs():
            if r["cwd"].endswith(f"/worktrees/{aid}") and "ended" not in r:
                return int(r["pid"])
        time.sleep(0.1)
    raise AssertionError("no claude started")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].split()[0] not in ("Z", "X")


def test_kill_9_of_a_host_mid_run_then_restart_reattaches(fleet: Fleet) -> None:
    fleet.configure(stale_threshold=120)  # the host is back well before the hub would give it up
    agent = fleet.start("m1")
    aid = fleet.assign(1, "fake: slow work=4 beat=0.2", machine="m1")
    fleet.wait(aid, lambda a: a["state"] == "running")
    pid = _pid_of_running_claude(fleet, aid)
    assert agent.stop(signal.SIGKILL) == -9
    assert _alive(pid)  # the worker goes on without its host
    again = fleet.start("m1")
    final = fleet.wait(aid, lambda a: a["state"] in ENDED)
    assert final["state"] == "done" and final["attempt"] == 1 and final["pushed"], final
    assert len(fleet.runs()) == 1  # nothing ran twice
    assert "re-attach" in again.log.read_text()
    assert not (again.state / "worktrees" / aid).exists()
    assert again.stop() == 0


def test_kill_9_then_the_hub_gives_the_attempt_up_the_orphan_is_stopped(fleet: Fleet) -> None:
    fleet.configure(backoff_base=0.5)  # the re-queued attempt may go again at once
    agent = fleet.start("m1")
    aid = fleet.assign(1, "fake: slow work=60 beat=0.2", machine="m1")
    fleet.wait(aid, lambda a: a["state"] == "running")
    pid = _pid_of_running_claude(fleet, aid)
    agent.stop(signal.SIGKILL)
    # the host is silent: after stale_after_seconds (4 x 0.5 s) the hub re-queues the attempt
    fleet.wait(aid, lambda a: a["state"] == "queued", timeout=30)
    again = fleet.start("m1")
    deadline = time.time() + 30
    while _alive(pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)  # the dead attempt's worker never runs beside the new one
    second = fleet.wait(aid, lambda a: a["attempt"] >= 2 and a["state"] == "running")
    assert second["branch"] == "issue-1"
    assert second["attempt"] == 2, second["attempts"]  # the new attempt waited for the old one to stop, not lost
    # the new attempt starts from the branch holding the old attempt's saved work
    wip = run(fleet.clones["m1"], "git", "log", "--format=%s", "issue-1")
    assert wip.splitlines()[0].startswith("wip: assignment " + aid + " attempt 1")
    httpx2.post(fleet.hub.url + f"{API}/assignments/{aid}/stop", headers=fleet.admin)
    fleet.wait(aid, lambda a: a["state"] == "cancelled")
    assert again.stop() == 0


def test_sigterm_of_a_host_mid_run_requeues_and_the_restarted_host_finishes_it(fleet: Fleet) -> None:
    """A graceful stop (SIGTERM: Ctrl-C, ``systemctl restart`` of the unit ``--install-service`` writes) loses the
    attempt as kill -9 does: the assignment goes back to the queue, never ``failed`` for good, and the restarted
    host runs it again on its branch."""
    fleet.configure(backoff_base=0.5)
    agent = fleet.start("m1")
    aid = fleet.assign(1, "fake: slow work=60 beat=0.2", machine="m1")
    fleet.wait(aid, lambda a: a["state"] == "running")
    pid = _pid_of_running_claude(fleet, aid)
    assert agent.stop() == 0
    assert not _alive(pid)  # the host stopped its worker before it exited
    after = fleet.get(aid)
    assert after["state"] == "queued", after  # back in the queue, not failed (nor taken again by the stopping host)
    assert (after["attempts"][0]["state"], after["attempts"][0]["reason"]) == ("lost", "host_stopped: the host was "
                                                                                       "stopped")
    again = fleet.start("m1")
    second = fleet.wait(aid, lambda a: a["state"] == "running" and a["attempts"][-1]["host_incarnation"] == 2)
    earlier = second["attempts"][:-1]
    assert [(x["state"], x["reason"]) for x in earlier] == [("lost", "host_stopped: the host was stopped")], earlier
    assert second["branch"] == "issue-1"
    httpx2.post(fleet.hub.url + f"{API}/assignments/{aid}/stop", headers=fleet.admin)
    fleet.wait(aid, lambda a: a["state"] == "cancelled")
    assert again.stop() == 0


def test_a_stopping_host_never_takes_back_the_work_it_hands_back(fleet: Fleet) -> None:
    """With no backoff the assignment a stopping host hands back is runnable at once, and that host's long-poll
    was still open: it took the assignment again before it exited (a second attempt ``host_stopped: the host was
    stopping when it arrived``, or one left dispatched to a dead host until the hub gave it up). A stopping host
    first tells the hub it takes nothing more; then it stops its workers, and the work waits for another host."""
    fleet.configure(backoff_base=0)
    agent = fleet.start("m1", "--poll-wait", "25")  # the long-poll stays open across the whole stop
    aid = fleet.assign(1, "fake: slow work=60 beat=0.2", machine="m1")
    fleet.wait(aid, lambda a: a["state"] == "running")
    assert agent.stop() == 0
    # a new incarnation of m1 (as a restarted agent registers): whatever the old one had not taken by now it can
    # never take, so what follows is what the stopping host did
    r = httpx2.post(fleet.hub.url + f"{API}/hosts/register", headers={"Authorization": f"Bearer {fleet.tokens['m1']}"},
                    json={"machine": "m1", "repos": {"app": str(fleet.clones["m1"])}, "slots": 1})
    assert r.status_code == 200, r.text
    after = fleet.get(aid)
    assert [(x["attempt"], x["state"], x["reason"]) for x in after["attempts"]] == [
        (1, "lost", "host_stopped: the host was stopped")], after["attempts"]
    assert after["state"] == "queued", after
    log = agent.log.read_text()
    assert "stopping when it arrived" not in log and "Traceback" not in log, log[-3000:]
    status = httpx2.get(fleet.hub.url + f"{API}/status", headers=fleet.admin).json()
    assert [m["state"] for m in status["machines"] if m["machine"] == "m1"] == ["online"]  # registered again


def test_overlapping_files_never_run_at_once(fleet: Fleet) -> None:
    """Two workers briefed with overlapping files: the second is refused (files_busy), re-queued, and runs after."""
    fleet.configure(backoff_base=0.5, max_retries=20)
    fleet.start("m1")
    fleet.start("m2")
    first = fleet.assign(1, "fake: slow work=3 beat=0.2", files_likely=["src/"])
    fleet.wait(first, lambda a: a["state"] == "running")
    second = fleet.assign(2, "fake: success", files_likely=["src/parser.py"])
    a1 = fleet.wait(first, lambda a: a["state"] in ENDED)
    a2 = fleet.wait(second, lambda a: a["state"] in ENDED)
    assert (a1["state"], a2["state"]) == ("done", "done")
    assert a2["attempt"] >= 2  # refused at least once while the first held src/
    runs = {r["cwd"].rsplit("/", 1)[-1]: r for r in fleet.runs()}
    assert len(runs) == 2 and runs[second]["started"] > runs[first]["ended"]  # never both editing


def test_agent_bad_input_is_one_clear_line(fleet: Fleet, tmp_path: Path) -> None:
    def agent(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
        env.update(HOME=str(tmp_path / "h"), XDG_CONFIG_HOME=str(tmp_path / "h" / "c"),
                   XDG_STATE_HOME=str(tmp_path / "h" / "s"))
        return subprocess.run([sys.executable, "-m", "coordhub", "--url", fleet.hub.url, "--token",
                               token or fleet.tokens["m1"], "agent", *args], env=env, capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
    p = agent("--machine", "nosuch")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().endswith("coord: machine 'nosuch' is not in the hub's coordinator.yml (machines: m1, m2); "
                                     "pass --machine")
    p = agent("--machine", "m1", "--pass-env", "CLAUDECODE")
    assert p.returncode == 2 and "binds a process to another Claude Code session" in p.stderr
    p = agent("--machine", "m1", "--repo", "broken")
    assert p.returncode == 2 and "expected NAME=PATH" in p.stderr
    p = agent("--machine", "m1", "--install-service")
    assert p.returncode == 0, p.stderr
    unit = tmp_path / "h" / "c" / "systemd" / "user" / "coord-agent-m1.service"
    text = unit.read_text()
    assert f"ExecStart={sys.executable} -m coordhub agent --machine m1" in text and "KillMode=mixed" in text
    env_file = tmp_path / "h" / "c" / "coordhub" / "agent-m1.env"
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    assert env_file.read_text() == f"COORD_URL={fleet.hub.url}\nCOORD_TOKEN={fleet.tokens['m1']}\n"
    assert fleet.tokens["m1"] not in text  # the token is only in the private env file


def test_a_repo_path_that_is_not_a_git_repository_is_reported(fleet: Fleet, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    agent = fleet.start("m1", "--repo", f"app={plain}")
    deadline = time.time() + 60
    while "not a git repository" not in agent.log.read_text():
        assert time.time() < deadline and agent.proc.poll() is None, agent.log.read_text()
        time.sleep(0.2)
    assert f"repo app: {plain} is not a git repository; not offered to the hub" in agent.log.read_text()
    assert agent.stop() == 0


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()[0]


def test_resume_stuck_through_the_hub_continues_the_session_in_its_worktree(fleet: Fleet) -> None:
    agent = fleet.start("m1")
    aid = fleet.assign(1, "fake: stuck", machine="m1")
    stuck = fleet.wait(aid, lambda a: a["state"] in ENDED)
    assert stuck["state"] == "stuck" and stuck["reason"].startswith("STUCK: the config loader")
    assert Path(stuck["worktree"]).is_dir() and stuck["wip_commit"]  # kept for the resume, work saved
    r = httpx2.post(fleet.hub.url + f"{API}/assignments/{aid}/resume-stuck", headers=fleet.admin,
                    json={"guidance": "The loader is config/legacy.py; use it."})
    assert r.status_code == 200, r.text
    done = fleet.wait(aid, lambda a: a["attempt"] == 2 and a["state"] in ENDED)
    assert done["state"] == "done" and done["pushed"], done
    assert (done["session_id"], done["worktree"]) == (stuck["session_id"], stuck["worktree"])
    argv = json.loads((fleet.root / "claude" / "env" / f"{stuck['session_id']}.json").read_text())["argv"]
    assert argv[argv.index("--resume") + 1] == stuck["session_id"]
    assert "The loader is config/legacy.py" in argv[1]
    assert not Path(done["worktree"]).exists()
    assert agent.stop() == 0


def _slow_worker_past_its_edit(fleet: Fleet) -> tuple[Agent, str, dict[str, Any], int]:
    """A worker on m1 that has made its edit and runs on for 3 s: ``(agent, id, assignment, claude's pid)``."""
    fleet.configure(stale_threshold=120)
    agent = fleet.start("m1")
    aid = fleet.assign(1, "fake: slow work=3 beat=0.2", machine="m1")
    running = fleet.wait(aid, lambda a: a["state"] == "running" and a["worktree"])
    pid = _pid_of_running_claude(fleet, aid)
    deadline = time.time() + 30
    while not (Path(running["worktree"]) / "fake" / "issue-1.txt").exists():
        assert time.time() < deadline
        time.sleep(0.05)
    return agent, aid, running, pid


def test_a_fleet_halt_pauses_the_running_worker_and_the_resume_continues_it(fleet: Fleet) -> None:
    agent, aid, _, pid = _slow_worker_past_its_edit(fleet)
    r = httpx2.post(fleet.hub.url + "/api/coord/halt", headers=fleet.admin, json={"reason": "estop"})
    assert r.status_code == 201, r.text
    deadline = time.time() + 30
    while _state(pid) != "T":
        assert time.time() < deadline, _state(pid)
        time.sleep(0.1)
    time.sleep(4)  # longer than the worker's whole run: stopped, it does not go on
    assert _state(pid) == "T" and fleet.get(aid)["state"] == "running"
    r = httpx2.post(fleet.hub.url + "/api/coord/resume", headers=fleet.admin, json={})
    assert r.status_code == 200, r.text
    done = fleet.wait(aid, lambda a: a["state"] in ENDED)
    assert done["state"] == "done" and done["attempt"] == 1, (done["reason"], done)
    assert "[halt] paused (SIGSTOP)" in httpx2.get(fleet.hub.url + f"{API}/assignments/{aid}/log",
                                                    headers=fleet.admin).json()["text"]
    assert agent.stop() == 0


def test_halt_kill_stops_the_worker_saves_its_work_and_the_resume_runs_it_again(fleet: Fleet) -> None:
    agent, aid, running, pid = _slow_worker_past_its_edit(fleet)
    r = httpx2.post(fleet.hub.url + "/api/coord/halt", headers=fleet.admin,
                    json={"reason": "runaway", "scope": "machine:m1", "kill": True})
    assert r.status_code == 201, r.text
    assert r.json()["killed"] == [aid]
    queued = fleet.get(aid)
    assert queued["state"] == "queued" and queued["machine"] == "m1" and "halted with --kill" in queued["reason"]
    deadline = time.time() + 30
    while _alive(pid):  # the host stops it on its next heartbeat
        assert time.time() < deadline, "the killed worker still runs"
        time.sleep(0.1)
    # its uncommitted edit is saved on the branch in m1's clone, and nothing is dispatched under the halt
    branch = running["branch"]
    deadline = time.time() + 30
    while "issue-1" not in run(fleet.clones["m1"], "git", "log", "--stat", "--format=%s", branch):
        assert time.time() < deadline, run(fleet.clones["m1"], "git", "log", "--format=%s", branch)
        time.sleep(0.1)
    time.sleep(2)
    assert fleet.get(aid)["state"] == "queued"
    attempts = httpx2.get(fleet.hub.url + f"{API}/assignments/{aid}", headers=fleet.admin).json()
    r = httpx2.post(fleet.hub.url + "/api/coord/resume", headers=fleet.admin, json={"scope": "machine:m1"})
    assert r.status_code == 200, r.text
    done = fleet.wait(aid, lambda a: a["state"] in ENDED)
    assert done["state"] == "done" and done["attempt"] == 2 and done["pushed"], (done["reason"], done, attempts)
    assert agent.stop() == 0


def test_a_running_agent_takes_a_changed_config_without_a_restart(fleet: Fleet) -> None:
    agent = fleet.start("m1")
    lib = make_repo(fleet.root, "lib")
    clone = fleet.root / "clone-lib-m1"
    run(fleet.root, "git", "clone", "-q", str(lib.origin), str(clone))
    for key, value in (("user.email", "dev@m1"), ("user.name", "m1")):
        run(clone, "git", "config", key, value)
    deadline = time.time() + 30
    while _machine(fleet, "m1")["state"] != "online":
        assert time.time() < deadline
        time.sleep(0.1)
    first = _machine(fleet, "m1")["incarnation"]
    config = httpx2.get(fleet.hub.url + f"{API}/config", headers=fleet.admin).json()["config"]
    config["repos"].append({"name": "lib", "default_branch": "main"})
    m1 = next(m for m in config["machines"] if m["name"] == "m1")
    m1["repos"].append("lib")
    m1["repo_paths"]["lib"] = str(clone)
    httpx2.put(fleet.hub.url + f"{API}/config", json=config, headers=fleet.admin).raise_for_status()
    deadline = time.time() + 30
    while _machine(fleet, "m1")["incarnation"] == first:  # it registered again, now offering lib
        assert time.time() < deadline, agent.log.read_text()[-2000:]
        time.sleep(0.1)
    r = httpx2.post(fleet.hub.url + f"{API}/assignments", headers=fleet.admin,
                    json={"repo": "lib", "issue": 7, "briefing": "fake: work", "machine": "m1"})
    assert r.status_code == 201, r.text
    done = fleet.wait(r.json()["id"], lambda a: a["state"] in ENDED)
    assert done["state"] == "done" and done["pushed"], done
    assert "configuration changed" in agent.log.read_text()
    assert agent.stop() == 0


def _machine(fleet: Fleet, name: str) -> dict[str, Any]:
    r = httpx2.get(fleet.hub.url + f"{API}/status", headers=fleet.admin)
    assert r.status_code == 200, r.text
    return dict(next(m for m in r.json()["machines"] if m["machine"] == name))


def test_the_user_cli_drives_a_real_worker_and_shows_its_log(fleet: Fleet, tmp_path: Path) -> None:
    """`coord assign` → a real `coord agent` runs the fake → `coord wait`, `coord log` and `coord status` from
    another directory (any machine: they only talk to the hub)."""
    from tests.coordcli import Coord, git_init, isolated_env

    agent = fleet.start("m1")
    coord = Coord(git_init(tmp_path / "elsewhere"), isolated_env(tmp_path / "user"), url=fleet.hub.url,
                  token=fleet.hub.admin_token)
    out = coord.json("assign", "m1", "app", "12", "--title", "Fix the parser", "--briefing", "fake: success")
    aid = out["id"]
    assert out["branch"] == "issue-12-fix-the-parser"
    coord.ok("wait", aid, "--timeout", "120")
    text = coord.ok("log", aid).out
    for tag in ("[init]", "[tool] Write", "[result] completed", "[end] done"):
        assert tag in text, text
    status = coord.json("status")
    json_text = json.dumps(status)
    assert aid in json_text and "m1" in json_text
    assert "issue-12-fix-the-parser" in fleet.repo.remote_branches()
    assert agent.stop() == 0
