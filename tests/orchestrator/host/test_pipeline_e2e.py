"""The pipeline end to end (issue 12, "Show it", points 1–4): a real ``coord serve``, real ``coord agent`` processes
on two machine names, real git repositories with a bare ``origin``, the fake ``claude`` on PATH.

* a smoke test that fails — its verdict from the command's exit code while the fake worker says success — is
  fixed by a worker with the escalated model, runs again and passes; the branch enters the merge stage;
* a review that requests changes is fixed, reviewed again and approved; each reviewer is a fresh Claude session
  checked out on the branch under review (its tip, not ``main``), on the other machine, denied write tools;
* a review without a verdict block is a clear failure (``needs_input``), never an approval;
* kill -9 of the hub while a smoke test runs: the host keeps running it and reports when the hub is back; the run
  is not started twice.

Each test also prints the hub's overhead per stage (from the recorded timestamps).
"""

from __future__ import annotations

import signal
import time
from datetime import datetime
from typing import Any

import httpx2

from tests.orchestrator.host.conftest import run
from tests.orchestrator.host.test_agent_e2e import API, Fleet, fleet  # noqa: F401

SETTLED = ("merge", "passed", "needs_input", "merged")


def _ts(v: str | None) -> float:
    assert v is not None
    return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()


def apply(f: Fleet, **sections: Any) -> None:
    """Apply the fleet's config with ``sections`` merged in (dicts updated, lists replaced)."""
    config = httpx2.get(f.hub.url + f"{API}/config", headers=f.admin).json()["config"]
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    r = httpx2.put(f.hub.url + f"{API}/config", json=config, headers=f.admin)
    assert r.status_code == 200, r.text


def stages_of(f: Fleet, aid: str) -> dict[str, Any]:
    r = httpx2.get(f.hub.url + f"{API}/assignments/{aid}/stages", headers=f.admin)
    assert r.status_code == 200, r.text
    return dict(r.json())


def settle(f: Fleet, aid: str, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = stages_of(f, aid)
        if v["stage"] in SETTLED and v["state"] == "done":
            return v
        time.sleep(0.2)
    logs = "\n".join(f"--- {x.machine}\n{x.log.read_text()[-3000:]}" for x in f.agents)
    raise AssertionError(f"{aid} never settled: {stages_of(f, aid)}\n{logs}")


def overhead(f: Fleet, aid: str) -> dict[str, float]:
    """Hub overhead per stage, in ms: work done → run dispatched, and run ended → the next step dispatched."""
    a = f.get(aid)
    runs = stages_of(f, aid)["runs"]
    attempts = a["attempts"]
    out: dict[str, float] = {}
    for r in runs:
        if r["manual"]:
            continue
        before = max((_ts(t["ended_at"]) for t in attempts if t["ended_at"] and _ts(t["ended_at"]) <= _ts(
            r["created_at"]) + 1e-3), default=None)
        if before is not None:
            out[f"done→{r['stage']} queued (round {r['round']})"] = round((_ts(r["created_at"]) - before) * 1000, 1)
        out[f"{r['stage']} queued→dispatched (round {r['round']})"] = round(
            (_ts(r["dispatched_at"]) - _ts(r["created_at"])) * 1000, 1)
        if r["state"] == "failed":
            fix = min((_ts(t["dispatched_at"]) for t in attempts if _ts(t["dispatched_at"]) >= _ts(r["ended_at"])),
                      default=None)
            if fix is not None:
                out[f"{r['stage']} failed→fix worker dispatched"] = round((fix - _ts(r["ended_at"])) * 1000, 1)
    if runs and runs[-1]["state"] == "passed" and a["stage_at"]:
        out[f"{runs[-1]['stage']} passed→{a['stage']}"] = round((_ts(a["stage_at"]) - _ts(runs[-1]["ended_at"])) * 1000,
                                                                1)
    return out


def test_a_red_smoke_is_fixed_with_an_escalated_model_and_passes(fleet: Fleet) -> None:  # noqa: F811
    # the smoke test passes only once the branch has two commits: the worker's, and the fix worker's
    check = 'n=$(git rev-list --count origin/main..HEAD); echo "commits on the branch: $n"; test "$n" -ge 2'
    apply(fleet, repos=[{"name": "app", "default_branch": "main", "test_command": check}],
          smoke_tests={"auto_queue": True, "timeout_seconds": 60},
          pipeline={"stages": ["test", "review", "merge"], "max_fix_rounds": 2},
          models={"default": "sonnet", "escalation": ["haiku", "sonnet", "opus"], "labels": {}})
    fleet.start("m1")
    aid = fleet.assign(1, "fake: success")
    v = settle(fleet, aid)
    assert v["stage"] in ("merge", "merged"), v  # handed to the merge queue
    first, second = [r for r in v["runs"] if r["stage"] == "test"]
    # the worker said success ("Done: the change is committed."); the command exited 1: red
    assert (first["state"], first["exit_code"]) == ("failed", 1) and "commits on the branch: 1" in first["output_tail"]
    assert (second["state"], second["exit_code"], second["round"]) == ("passed", 0, 1)
    assert first["commit"] != second["commit"]
    a = fleet.get(aid)
    assert [t["model"] for t in a["attempts"]] == ["sonnet", "opus"] and a["fix_round"] == 1
    models = sorted(r["argv"][r["argv"].index("--model") + 1] for r in fleet.runs())
    assert models == ["opus", "sonnet"]  # the fix worker really ran with the escalated model
    print("hub overhead per stage:", overhead(fleet, aid))


def test_a_review_requests_changes_then_approves_on_the_branch_under_review(fleet: Fleet) -> None:  # noqa: F811
    apply(fleet, reviews={"enabled": True, "checklist": ["Did the worker add tests?"], "model": "claude-haiku-4-5"},
          pipeline={"stages": ["review", "merge"], "max_fix_rounds": 2})
    fleet.start("m1")
    fleet.start("m2")
    base = run(fleet.repo.origin, "git", "rev-parse", "main")  # the merge stage may land the branch on main later
    aid = fleet.assign(2, "fake: success\nfake-review: request_changes until_commits=2 try_write=1 "
                          "finding=add-a-test", machine="m1")
    v = settle(fleet, aid)
    assert v["stage"] in ("merge", "merged"), v
    reviews = [r for r in v["runs"] if r["stage"] == "review"]
    assert [(r["state"], r["verdict"]) for r in reviews] == [("failed", "request_changes"), ("passed", "approve")]
    assert reviews[0]["findings"][0]["message"] == "add-a-test"
    assert all(r["machine"] == "m2" for r in reviews)  # not the worker's machine while another was online
    records = {r["head"]: r for r in fleet.runs() if "review" in r}
    assert len(records) == 2
    for r in reviews:
        rec = records[r["commit"]]  # the reviewer's checkout was the branch's tip when it ran
        assert rec["head"] != base and "/worktrees/run-" in rec["cwd"]
        assert rec["wrote"] is False  # its Write was denied
        argv = rec["argv"]
        assert "Write" in argv[argv.index("--disallowedTools") + 1].split(",")
        assert argv[argv.index("--permission-mode") + 1] == "default"
        assert "COORD_TOKEN" not in rec["env"]
        assert argv[argv.index("--model") + 1] == "claude-haiku-4-5"  # reviews.model, the same in both rounds
    branch = fleet.get(aid)["branch"]
    assert "fake/review-was-here.txt" not in run(fleet.repo.origin, "git", "ls-tree", "-r", "--name-only", branch)
    fix = fleet.get(aid)
    assert fix["attempts"][-1]["model"] == "opus"
    print("hub overhead per stage:", overhead(fleet, aid))


def test_a_review_fix_that_breaks_the_tests_does_not_merge(fleet: Fleet) -> None:  # noqa: F811
    # the tests pass with the worker's one commit and fail once the fix worker adds a second; the reviewer asks
    # for changes until the branch has two commits; the merge gate does not run the tests (a build-only gate)
    check = 'n=$(git rev-list --count origin/main..HEAD); echo "commits on the branch: $n"; test "$n" -lt 2'
    apply(fleet, repos=[{"name": "app", "default_branch": "main", "test_command": check}],
          smoke_tests={"auto_queue": True, "timeout_seconds": 60}, reviews={"enabled": True},
          pipeline={"stages": ["test", "review", "merge"], "max_fix_rounds": 1},
          merge={"gate_command": "true", "tick_seconds": 0})
    fleet.start("m1")
    base = run(fleet.repo.origin, "git", "rev-parse", "main")
    aid = fleet.assign(4, "fake: success\nfake-review: request_changes until_commits=2 finding=rename-it")
    v = settle(fleet, aid, timeout=120)
    assert v["stage"] == "needs_input", v
    assert [(r["stage"], r["state"]) for r in v["runs"]] == [("test", "passed"), ("review", "failed"),
                                                             ("test", "failed")]
    last = v["runs"][-1]
    assert "commits on the branch: 2" in last["output_tail"] and last["commit"] != v["runs"][0]["commit"]
    assert run(fleet.repo.origin, "git", "rev-parse", "main") == base  # nothing landed
    r = httpx2.get(fleet.hub.url + f"{API}/merges", headers=fleet.admin)
    assert r.status_code == 200 and not any(e["assignment_id"] == aid for k in ("queue", "recent", "fixing")
                                            for e in r.json()[k])


def test_a_review_without_a_verdict_is_a_failure_not_an_approval(fleet: Fleet) -> None:  # noqa: F811
    apply(fleet, reviews={"enabled": True}, pipeline={"stages": ["review", "merge"]})
    fleet.start("m1")
    aid = fleet.assign(3, "fake: success\nfake-review: missing")
    v = settle(fleet, aid)
    assert v["stage"] == "needs_input", v
    (r,) = v["runs"]
    assert r["state"] == "error" and r["verdict"] is None
    assert "review_verdict_missing" in r["reason"] and "error_max_structured_output_retries" in r["reason"]


def test_kill_9_of_the_hub_mid_smoke_the_stage_continues(fleet: Fleet) -> None:  # noqa: F811
    apply(fleet, repos=[{"name": "app", "default_branch": "main",
                         "test_command": "echo started >> $HOME/smoke-starts; sleep 3; echo ok"}],
          smoke_tests={"auto_queue": True}, pipeline={"stages": ["test"]})  # no merge gate running the command too
    agent = fleet.start("m1")
    aid = fleet.assign(4, "fake: success")
    deadline = time.time() + 60
    while not [r for r in stages_of(fleet, aid)["runs"] if r["state"] == "running"]:
        assert time.time() < deadline, stages_of(fleet, aid)
        time.sleep(0.1)
    assert fleet.hub.stop(signal.SIGKILL) == -signal.SIGKILL
    time.sleep(1.0)
    fleet.hub.start()
    v = settle(fleet, aid)
    assert v["stage"] == "passed", v
    (r,) = v["runs"]
    assert (r["state"], r["attempt"], r["exit_code"]) == ("passed", 1, 0)  # the same run, not started again
    starts = (fleet.root / f"home-{agent.machine}" / "smoke-starts").read_text().splitlines()
    assert starts == ["started"]


def test_kill_9_of_a_host_mid_smoke_runs_it_again_after_its_restart(fleet: Fleet) -> None:  # noqa: F811
    apply(fleet, repos=[{"name": "app", "default_branch": "main",
                         "test_command": "echo started >> $HOME/smoke-starts; sleep 2; echo ok"}],
          smoke_tests={"auto_queue": True}, pipeline={"stages": ["test"]})
    agent = fleet.start("m1")
    aid = fleet.assign(5, "fake: success")
    deadline = time.time() + 60
    starts_file = fleet.root / "home-m1" / "smoke-starts"
    # mid-smoke: the command itself has started (the run is reported running before its shell's first line runs;
    # a kill in between, on a loaded machine, left one start in the file where the test counted two)
    while not ([r for r in stages_of(fleet, aid)["runs"] if r["state"] == "running"] and starts_file.exists()):
        assert time.time() < deadline, stages_of(fleet, aid)
        time.sleep(0.1)
    assert agent.stop(signal.SIGKILL) == -signal.SIGKILL
    again = fleet.start("m1")  # a new incarnation: the hub queues the run again, the host cleans the orphan
    v = settle(fleet, aid)
    assert v["stage"] == "passed", v
    (r,) = v["runs"]
    assert (r["state"], r["attempt"], r["exit_code"]) == ("passed", 2, 0)
    starts = starts_file.read_text().splitlines()
    assert len(starts) == 2  # the first run was killed with its host, the second ran to its end
    assert again.stop() == 0 and "Traceback" not in again.log.read_text()
