"""A ``coord agent`` killed (SIGKILL, ``crash_inject.py``) at exact points of a worker's life, then restarted:
the real hub, the real agent, the fake claude (the wiring of ``test_agent_e2e``).

* after the done branch is pushed, while or after its worktree is removed: the restarted host delivers the
  done report (pushed, one run of claude), never "no_commit ... work NOT saved";
* between taking the job and starting claude: the attempt is re-queued (like the hub's own
  ``host_restarted``), and runs again.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from coordhub.cli.common import EXIT_REFUSED
from coordhub.clock import parse_iso
from tests.orchestrator.host import test_agent_e2e
from tests.orchestrator.host.conftest import FAKE_CLAUDE
from tests.orchestrator.host.test_agent_e2e import API, ENDED, Agent, Fleet

crash_fleet = test_agent_e2e.fleet  # the fixture, under this name here

INJECT = Path(__file__).resolve().parent / "crash_inject.py"
SRC = str(Path(__file__).resolve().parents[3] / "src")


def start(fleet: Fleet, machine: str, *args: str, crash: str | None = None, skew: float | None = None,
          state_dir: Path | None = None) -> Agent:
    """``Fleet.start`` through ``crash_inject.py``: killed once at ``crash``, its clock off by ``skew``."""
    home = fleet.root / f"home-{machine}"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
    env.update(PATH=f"{fleet.claude_bin}{os.pathsep}{os.environ['PATH']}", HOME=str(home),
               XDG_CONFIG_HOME=str(home / ".config"), XDG_STATE_HOME=str(home / ".state"),
               CLAUDE_CONFIG_DIR=str(fleet.root / "claude"),
               PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p))
    if crash:
        env.update(CRASH_AT=crash, CRASH_MARK=str(fleet.root / f"crash-{crash}.mark"))
    if skew:
        env.update(CLOCK_SKEW=str(skew))
    log = fleet.root / f"agent-{machine}-{len(fleet.agents)}.log"
    extra = ["--state-dir", str(state_dir)] if state_dir else []
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, str(INJECT), "--url", fleet.hub.url, "--token",
                                 fleet.tokens[machine], "agent", "--machine", machine, "--poll-wait", "2",
                                 "--linger", "3", "--stop-grace", "3", *extra, *args],
                                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    state = state_dir or home / ".state" / "coordhub" / "agent" / machine
    agent = Agent(machine, proc, env, log, state)
    fleet.agents.append(agent)
    return agent


@pytest.mark.parametrize("point", ["after_push", "after_remove"])
def test_a_host_killed_after_the_push_delivers_the_done_report_on_restart(crash_fleet: Fleet, point: str) -> None:
    fleet = crash_fleet
    fleet.configure(stale_threshold=120)  # the host is back well before the hub would give it up
    first = start(fleet, "m1", crash=point)
    aid = fleet.assign(1, "fake: success", machine="m1")
    assert first.proc.wait(60) == -9
    assert (fleet.root / f"crash-{point}.mark").exists()
    assert "issue-1" in fleet.repo.remote_branches()
    again = start(fleet, "m1")
    final = fleet.wait(aid, lambda a: a["state"] in ENDED, timeout=60)
    assert final["state"] == "done" and final["pushed"] and final["attempt"] == 1, final
    assert "no_commit" not in (final["reason"] or "") and "NOT saved" not in (final["reason"] or ""), final
    assert len(fleet.runs()) == 1  # claude ran once
    assert not (again.state / "worktrees" / aid).exists()
    assert again.stop() == 0


def test_a_host_killed_before_claude_started_re_queues_the_attempt(crash_fleet: Fleet) -> None:
    fleet = crash_fleet
    fleet.configure(stale_threshold=120, backoff_base=0.5)
    first = start(fleet, "m1", crash="before_spawn")
    aid = fleet.assign(1, "fake: success", machine="m1")
    assert first.proc.wait(60) == -9
    again = start(fleet, "m1")
    final = fleet.wait(aid, lambda a: a["state"] in ENDED, timeout=60)
    assert final["state"] == "done" and final["pushed"] and final["attempt"] == 2, final
    assert final["attempts"][0]["state"] == "lost" and "host_restarted" in final["attempts"][0]["reason"], final
    assert len(fleet.runs()) == 1
    assert again.stop() == 0


def test_a_gone_worktree_is_counted_on_its_branch_never_judged_no_commit(repo: Any) -> None:
    from coordhub.orchestrator import worktree
    from coordhub.orchestrator.dispatch import Dispatch
    from coordhub.orchestrator.outcome import Ending, decide
    from coordhub.orchestrator.streamjson import Result, Telemetry
    from coordhub.orchestrator.worker import work
    from tests.orchestrator.host.conftest import run

    base = run(repo.path, "git", "rev-parse", "HEAD")
    run(repo.path, "git", "branch", "issue-1")
    wt = worktree.Worktree(repo.path, repo.path.parent / "gone", "issue-1", base)
    d = Dispatch.parse({"id": "a1", "attempt": 1, "repo": "app", "issue": 1, "briefing": "x",
                        "worker_session": "s1"})
    assert work.new_commits(wt, d) == 0  # the branch is there: counted (no commits yet)
    run(repo.path, "git", "commit", "-q", "--allow-empty", "-m", "work")
    run(repo.path, "git", "branch", "-f", "issue-1", "HEAD")
    assert work.new_commits(wt, d) == 1
    lost = worktree.Worktree(repo.path, repo.path.parent / "gone", "no-such-branch", base)
    assert work.new_commits(lost, d) is None
    ok = Telemetry(result=Result(is_error=False, subtype="success", terminal_reason="completed", text="Done."))
    verdict = decide(ok, Ending(0, new_commits=None))
    assert verdict.state != "done" and "no_commit" not in verdict.reason and "commits_unknown" in verdict.reason
    saved = work.save(wt, d, decide(ok, Ending(0, new_commits=1)), False, "m1")
    assert saved.pushed and "issue-1" in repo.remote_branches()


def _registered(agent: Agent, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while "registered machine" not in agent.log.read_text():
        assert time.time() < deadline and agent.proc.poll() is None, agent.log.read_text()
        time.sleep(0.1)


def test_a_second_agent_for_one_machine_makes_the_first_stop_not_a_tug_of_war(crash_fleet: Fleet) -> None:
    fleet = crash_fleet
    fleet.configure(stale_threshold=4, backoff_base=0.5, max_retries=3)
    first = start(fleet, "m1", state_dir=fleet.root / "stateA")
    _registered(first)
    second = start(fleet, "m1", state_dir=fleet.root / "stateB")
    _registered(second)
    ids = [fleet.assign(n, "fake: slow work=2 beat=0.2", machine="m1") for n in (1, 2)]
    assert first.proc.wait(30) == EXIT_REFUSED  # superseded: it stops with a clear error
    assert "another coord agent registered machine m1" in first.log.read_text()
    for aid in ids:
        final = fleet.wait(aid, lambda a: a["state"] in ENDED, timeout=60)
        assert final["state"] == "done" and final["attempt"] == 1, final
    assert len(fleet.runs()) == 2  # claude ran once an issue
    assert second.proc.poll() is None and second.log.read_text().count("registered machine") == 1
    status = httpx2.get(fleet.hub.url + f"{API}/status", headers=fleet.admin).json()
    assert next(m for m in status["machines"] if m["machine"] == "m1")["incarnation"] == 2
    assert second.stop() == 0


def test_a_host_clock_hours_fast_pauses_the_fleet_only_as_long_as_the_storm_asks(crash_fleet: Fleet) -> None:
    """A 429 storm (no rate_limit_event) on a host whose clock is 5 h fast: the hub pauses dispatch for the
    storm's minute on its own clock, not for 5 h (the host says how long, not until when)."""
    fleet = crash_fleet
    retry = json.dumps({"type": "system", "subtype": "api_retry", "attempt": 1, "max_retries": 10,
                        "retry_delay_ms": 500, "error_status": 429, "error": "rate_limit"})
    launcher = fleet.claude_bin / "claude"
    launcher.write_text("#!/bin/sh\n" + "".join(f"printf '%s\\n' {shlex.quote(retry)}\n" for _ in range(3))
                        + f"exec {shlex.quote(sys.executable)} {shlex.quote(str(FAKE_CLAUDE))} \"$@\"\n")
    skewed = start(fleet, "m1", skew=5 * 3600)
    aid = fleet.assign(1, "fake: success", machine="m1")
    assert fleet.wait(aid, lambda a: a["state"] in ENDED, timeout=60)["state"] == "done"
    status = httpx2.get(fleet.hub.url + f"{API}/status", headers=fleet.admin).json()
    pause = status.get("paused") or {}
    assert pause.get("paused_until"), status  # the storm paused dispatch
    left = parse_iso(pause["paused_until"]) - time.time()
    assert 0 < left <= 61, pause  # a minute on the hub's clock, not 5 h
    assert skewed.stop() == 0


def test_the_hub_takes_a_pause_as_seconds_from_now_and_bounds_an_absolute_one() -> None:
    from coordhub.orchestrator.streamjson import Parser

    p = Parser()
    retry = {"type": "system", "subtype": "api_retry", "retry_delay_ms": 500, "error_status": 429}
    p.feed(("\n".join(json.dumps(retry) for _ in range(3)) + "\n").encode())
    out = p.telemetry.compact()
    assert 59 <= out["rate_limited_for"] <= 60 and out["rate_limited_until"] > time.time()
    event = {"type": "rate_limit_event", "rate_limit_info": {"status": "rejected", "resetsAt": time.time() + 600}}
    p.feed((json.dumps(event) + "\n").encode())
    out = p.telemetry.compact()  # the API's own reset time: absolute, no host clock in it
    assert "rate_limited_for" not in out and out["rate_limited_until"] > time.time() + 590
