"""The merge queue's rules through the HTTP API, on both backends, with hosts driven by the test (fast: no git).

FIFO per (repo, target) and across queues, one run per queue at a time, idempotent entering, write-ahead
landing, stale runs refused, conflict → fix worker (the assignment queued again, the model escalated) → queued
again when it is done, caps → needs_input, bisection caps, the per-tick limit, a lost host's run re-queued with
its tip, GitHub repos only for hosts with capability ``github``, and ``depends_on`` at assign and in the queue.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Api
from tests.orchestrator.conftest import ORCH, Host, apply_config, assign, config

M = ORCH + "/merges"


def merge_config(**merge: Any) -> dict[str, Any]:
    cfg = config(merge={"tick_seconds": 0, "red_fixes": 1, "conflict_fixes": 1, **merge},
                 pipeline={"stages": []})  # entries by hand here; test_pipeline_seam has the pipeline
    cfg["repos"][1]["github"] = None  # lib is local only; api stays on GitHub (acme/api)
    cfg["machines"][1]["capabilities"].append("github")  # the server makes GitHub's posts and merges
    return cfg


def finish(orch: Api, host: Host, user: dict[str, str], repo: str, issue: int) -> str:
    a = assign(orch, user, repo=repo, issue=issue, machine=host.machine)
    job = host.next()
    assert job is not None and job["id"] == a["id"]
    host.report(job, "done", branch=job["branch"], pushed=True)
    return str(a["id"])


def next_run(host: Host, expect: int = 200) -> dict[str, Any] | None:
    r = host.api.post(M + "/next", headers=host.headers, json={"machine": host.machine,
                                                               "host_incarnation": host.incarnation})
    assert r.status_code == expect, r.text
    return r.json()["run"] if expect == 200 else None  # type: ignore[no-any-return]


def report(host: Host, run: dict[str, Any], outcome: str, expect: int = 200, **body: Any) -> dict[str, Any]:
    r = host.api.post(M + "/report", headers=host.headers, json={
        "machine": host.machine, "host_incarnation": host.incarnation, "batch_id": run["batch_id"],
        "outcome": outcome, **body})
    assert r.status_code == expect, r.text
    return dict(r.json())


def enter(orch: Api, ids: list[str], expect: int = 200, **body: Any) -> dict[str, Any]:
    r = orch.post(M, headers=orch.admin, json={"ids": ids, **body})
    assert r.status_code == expect, r.text
    return dict(r.json())


@pytest.fixture
def mq(orch: Api) -> Api:
    apply_config(orch, merge_config())
    return orch


@pytest.fixture
def gh_host(mq: Api) -> Host:
    h = Host(mq, "server", mq.token("server/agent"))
    h.register(capabilities=["python", "github"])
    return h


def test_fifo_one_run_per_queue_write_ahead_and_stale_runs(mq: Api, laptop: Host, gh_host: Host,
                                                            user: dict[str, str]) -> None:
    ids = [finish(mq, laptop, user, "lib", n) for n in (1, 2)]
    api_id = finish(mq, laptop, user, "api", 3)
    out = enter(mq, [ids[0], ids[1], api_id])
    assert [e["repo"] for e in out["queue"]] == ["lib", "lib", "api"] and out["next"] == out["entered"][:1]
    assert enter(mq, [ids[0]])["unchanged"] == [out["entered"][0]]  # idempotent
    run = next_run(laptop)
    assert run is not None and [e["id"] for e in run["entries"]] == out["entered"][:1]
    assert run["github"] is None and run["target"] == "main" and run["method"] == "rebase"
    # the api queue's head is a GitHub repo: not for laptop (no `github` capability); lib is busy
    assert next_run(laptop) is None
    api_run = next_run(gh_host)
    assert api_run is not None and api_run["github"] == "acme/api" and api_run["entries"][0]["issue"] == 3
    report(laptop, run, "landing", tip="ab" * 20)
    assert mq.get(f"{M}/{run['entries'][0]['id']}", headers=mq.admin).json()["tip"] == "ab" * 20
    done = report(laptop, run, "merged", sha="ab" * 20)
    assert [e["state"] for e in done["entries"]] == ["merged"]
    report(laptop, run, "merged", expect=409, sha="ab" * 20)  # a late or repeated report of an ended run
    second = next_run(laptop)
    assert second is not None and second["entries"][0]["id"] == out["entered"][1]


def test_conflict_queues_a_fix_worker_then_the_entry_again(mq: Api, laptop: Host, user: dict[str, str]) -> None:
    aid = finish(mq, laptop, user, "lib", 5)
    (entry,) = enter(mq, [aid])["entered"]
    run = next_run(laptop)
    assert run is not None
    out = report(laptop, run, "conflict", culprit=entry, reason="conflicts in shared.txt",
                 evidence={"files": ["shared.txt"]})
    assert out["entries"][0]["state"] == "fixing" and out["entries"][0]["conflict_fixes"] == 1
    a = mq.get(f"{ORCH}/assignments/{aid}", headers=mq.admin).json()
    assert a["state"] == "queued" and a["model"] == "opus" and a["model_source"] == "escalation"
    assert next_run(laptop) is None  # fixing: not in the queue
    job = laptop.next()
    assert job is not None and job["id"] == aid and job["attempt"] == 2
    assert "Merge queue fix (conflict) for #5." in job["briefing"] and "shared.txt" in job["briefing"]
    laptop.report(job, "done", branch=job["branch"], pushed=True)
    again = next_run(laptop)  # the fix ended done: queued again at its old position, and taken
    assert again is not None and again["entries"][0]["id"] == entry
    out = report(laptop, again, "conflict", culprit=entry, reason="still conflicting")
    e = out["entries"][0]
    assert e["state"] == "needs_input" and "merge.conflict_fixes is 1" in e["reason"]
    back = enter(mq, [entry])  # a human sends it back
    assert back["requeued"] == [entry]


def test_a_red_batch_is_bisected_and_the_tick_limit_holds(mq: Api, laptop: Host, user: dict[str, str]) -> None:
    apply_config(mq, merge_config(batch=4, max_per_tick=3, tick_seconds=3600))
    ids = [finish(mq, laptop, user, "lib", n) for n in (10, 11, 12, 13)]
    entries = enter(mq, ids)["entered"]
    run = next_run(laptop)
    assert run is not None and len(run["entries"]) == 3  # the tick's budget (3) caps the batch of 4
    out = report(laptop, run, "red", reason="the gate exited 1", evidence={"exit_code": 1, "output": "x" * 50000})
    assert {e["state"] for e in out["entries"]} == {"queued"} and {e["batch_cap"] for e in out["entries"]} == {2}
    run = next_run(laptop)
    assert run is not None and [e["id"] for e in run["entries"]] == entries[:2]
    report(laptop, run, "merged", sha="cd" * 20)
    run = next_run(laptop)
    assert run is not None and [e["id"] for e in run["entries"]] == entries[2:3]  # 2 landed: 1 left this tick
    report(laptop, run, "retry", reason="the target moved")
    assert next_run(laptop) is not None
    assert next_run(laptop) is None  # one running (1) + two landed (2) = max_per_tick


def test_a_retry_naming_a_tip_hands_it_to_the_next_run(mq: Api, laptop: Host, gh_host: Host,
                                                      user: dict[str, str]) -> None:
    """A host stopped while a PR's checks ran reports ``retry`` with the tip it pushed to the PR's head: the next
    run (another host) gets it as ``prior_tip`` with the PR, so it takes that head as the queue's own push."""
    aid = finish(mq, laptop, user, "api", 21)
    (entry,) = enter(mq, [aid])["entered"]
    run = next_run(gh_host)
    assert run is not None
    out = report(gh_host, run, "retry", tip="ab" * 20, pr_number=7, reason="host_stopped: server was stopped")
    assert out["entries"][0]["state"] == "queued"
    again = next_run(gh_host)
    assert again is not None and again["entries"][0]["id"] == entry
    assert (again["entries"][0]["prior_tip"], again["entries"][0]["pr_number"]) == ("ab" * 20, 7)


def test_a_lost_host_run_is_requeued_with_its_tip(mq: Api, laptop: Host, user: dict[str, str]) -> None:
    aid = finish(mq, laptop, user, "lib", 20)
    (entry,) = enter(mq, [aid])["entered"]
    run = next_run(laptop)
    assert run is not None
    report(laptop, run, "landing", tip="ef" * 20)
    laptop.register()  # kill -9 and restart: a new incarnation
    again = next_run(laptop)
    assert again is not None and again["entries"][0]["id"] == entry and again["entries"][0]["prior_tip"] == "ef" * 20
    assert again["entries"][0]["attempt"] == 2
    r = mq.post(M + "/report", headers=laptop.headers, json={  # the old incarnation's report: refused
        "machine": "laptop", "host_incarnation": laptop.incarnation - 1, "batch_id": run["batch_id"],
        "outcome": "merged", "sha": "ef" * 20})
    assert r.status_code == 409


def test_depends_on_refuses_assign_and_orders_the_queue(mq: Api, laptop: Host, user: dict[str, str]) -> None:
    cfg = merge_config()
    cfg["repos"][0]["depends_on"] = ["lib"]
    apply_config(mq, cfg)
    up = assign(mq, user, repo="lib", issue=30, machine="laptop")
    job = laptop.next()
    assert job is not None and job["id"] == up["id"]  # running upstream work
    r = mq.post(f"{ORCH}/assignments", headers=user, json={"any": True, "repo": "api", "issue": 31})
    assert r.status_code == 409 and r.json()["error"]["code"] == "upstream_in_flight"
    assert "lib#30" in r.json()["error"]["message"]
    laptop.report(job, "done", branch=job["branch"], pushed=True)
    (lib_entry,) = enter(mq, [up["id"]])["entered"]
    r = mq.post(f"{ORCH}/assignments", headers=user, json={"any": True, "repo": "api", "issue": 31})
    assert r.status_code == 409  # upstream still in the merge queue
    mq.post(f"{M}/{lib_entry}/cancel", headers=mq.admin).raise_for_status()
    assign(mq, user, repo="api", issue=31, machine="laptop")


def test_bad_input_is_refused_and_changes_nothing(mq: Api, laptop: Host, user: dict[str, str]) -> None:
    a = assign(mq, user, repo="lib", issue=40, machine="laptop")
    r = mq.post(M, headers=mq.admin, json={"ids": [a["id"]]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_mergeable"
    assert mq.post(M, headers=mq.admin, json={"ids": ["nothexid"]}).status_code == 422
    assert mq.post(M, headers=mq.admin, json={"ids": ["0badc0de"]}).status_code == 404
    assert mq.post(M, headers=mq.admin, json={"ids": [], "method": "octopus"}).status_code == 422
    r = mq.post(M + "/report", headers=user, json={"machine": "laptop", "host_incarnation": laptop.incarnation,
                                                   "batch_id": "abcdef", "outcome": "merged", "sha": "ab" * 20})
    assert r.status_code == 403  # only the machine's host reports
    assert mq.get(M, headers=mq.admin).json()["queue"] == []


def test_pipeline_seam_merge_stage_enters_fix_loop_returns_merged(orch: Api, laptop: Host,
                                                                  user: dict[str, str]) -> None:
    cfg = merge_config()
    cfg["pipeline"] = {"stages": ["test", "review", "merge"], "max_fix_rounds": 2}  # lib has no test command
    apply_config(orch, cfg)
    aid = finish(orch, laptop, user, "lib", 50)
    a = orch.get(f"{ORCH}/assignments/{aid}", headers=orch.admin).json()
    assert a["stage"] == "merge"
    (entry,) = [e for e in orch.get(M, headers=orch.admin).json()["queue"] if e["assignment_id"] == aid]
    run = next_run(laptop)
    assert run is not None and run["entries"][0]["id"] == entry["id"]
    out = report(laptop, run, "conflict", culprit=entry["id"], reason="conflicts in x.txt", evidence={"files": ["x"]})
    assert out["entries"][0]["state"] == "fixing"
    a = orch.get(f"{ORCH}/assignments/{aid}", headers=orch.admin).json()
    assert (a["stage"], a["state"], a["fix_round"], a["fix_stage"]) == ("fix", "queued", 1, "merge")
    job = laptop.next()
    assert job is not None and "Merge queue fix (conflict) for #50." in job["briefing"]
    laptop.report(job, "done", branch=job["branch"], pushed=True)
    again = next_run(laptop)  # the pipeline re-entered merge: the same entry, at its old place
    assert again is not None and again["entries"][0]["id"] == entry["id"]
    report(laptop, again, "merged", sha="12" * 20)
    a = orch.get(f"{ORCH}/assignments/{aid}", headers=orch.admin).json()
    assert a["stage"] == "merged" and "1212" in a["stage_reason"]
    # a policy refusal stops the pipeline at needs_input with the reason
    bid = finish(orch, laptop, user, "lib", 51)
    run = next_run(laptop)
    assert run is not None
    report(laptop, run, "policy", reason="protected branch: main needs a review")
    b = orch.get(f"{ORCH}/assignments/{bid}", headers=orch.admin).json()
    assert b["stage"] == "needs_input" and "protected branch" in b["stage_reason"]


def _smoke(orch: Api, host: Host, aid: str, exit_code: int) -> None:
    """Take the assignment's queued smoke test on ``host`` and report ``exit_code``."""
    r = host.api.post(f"{ORCH}/hosts/next-run", headers=host.headers,
                      json={"machine": host.machine, "host_incarnation": host.incarnation})
    run = r.json()["run"]
    assert run is not None and run["stage"] == "test" and run["assignment_id"] == aid, r.text
    r = host.api.post(f"{ORCH}/stage-runs/{run['id']}/report", headers=host.headers,
                      json={"attempt": run["attempt"], "host_incarnation": host.incarnation, "state": "done",
                            "exit_code": exit_code})
    assert r.status_code == 200, r.text


def test_a_merge_fix_runs_the_tests_again_and_a_red_one_never_lands(orch: Api, laptop: Host,
                                                                     user: dict[str, str]) -> None:
    cfg = merge_config()
    cfg["repos"][1]["test_command"] = "make check"
    cfg["smoke_tests"] = {"auto_queue": True}
    cfg["pipeline"] = {"stages": ["test", "merge"], "max_fix_rounds": 1}
    apply_config(orch, cfg)
    aid = finish(orch, laptop, user, "lib", 52)
    _smoke(orch, laptop, aid, 0)
    (entry,) = [e for e in orch.get(M, headers=orch.admin).json()["queue"] if e["assignment_id"] == aid]
    run = next_run(laptop)
    assert run is not None
    report(laptop, run, "red", reason="the gate failed at the rebased tip")
    job = laptop.next()
    assert job is not None and job["id"] == aid
    laptop.report(job, "done", branch=job["branch"], pushed=True)
    a = orch.get(f"{ORCH}/assignments/{aid}", headers=orch.admin).json()
    assert a["stage"] == "test"  # the fix changed the branch: its tests first, not straight back to the queue
    assert next_run(laptop) is None
    _smoke(orch, laptop, aid, 1)  # the fixed branch is red: the pipeline stops (max_fix_rounds 1) ...
    a = orch.get(f"{ORCH}/assignments/{aid}", headers=orch.admin).json()
    assert a["stage"] == "needs_input"
    assert next_run(laptop) is None  # ... and so does its merge entry: it waits for a human, it never lands
    e = orch.get(f"{M}/{entry['id']}", headers=orch.admin).json()
    assert e["state"] == "needs_input" and "the pipeline stopped after the fix" in e["reason"], e


def test_pr_requests_and_the_trail_are_keyed_once(mq: Api, laptop: Host, gh_host: Host, user: dict[str, str]) -> None:
    aid = finish(mq, laptop, user, "api", 60)  # api is on GitHub (acme/api)
    first = mq.post(f"{ORCH}/assignments/{aid}/pr", headers=user, json={"review": False})
    again = mq.post(f"{ORCH}/assignments/{aid}/pr", headers=user)
    assert first.status_code == 200 and again.status_code == 200, first.text
    assert first.json()["key"] == again.json()["key"] == f"{aid}:1:pr" and first.json()["state"] == "pending"
    lib = finish(mq, laptop, user, "lib", 61)
    r = mq.post(f"{ORCH}/assignments/{lib}/pr", headers=user)
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_on_github"
    made = mq.post(f"{ORCH}/notify", headers=user).json()
    assert mq.post(f"{ORCH}/notify", headers=user).json()["made"] == 0 and made["made"] >= 2  # briefing, completion
    body = {"machine": "laptop", "host_incarnation": laptop.incarnation}
    assert mq.post(f"{ORCH}/github/next", headers=laptop.headers, json=body).json()["posts"] == []  # no `github`
    body = {"machine": "server", "host_incarnation": gh_host.incarnation}
    posts = mq.post(f"{ORCH}/github/next", headers=gh_host.headers, json=body).json()["posts"]
    assert {p["key"] for p in posts} == {f"{aid}:1:briefing", f"{aid}:1:completion", f"{aid}:1:pr"}
    assert all(p["github"] == "acme/api" and "<!-- coord:post key=" in p["body"] for p in posts)
    assert mq.post(f"{ORCH}/github/next", headers=gh_host.headers, json=body).json()["posts"] == []  # taken
    for p in posts:
        r = mq.post(f"{ORCH}/github/report", headers=gh_host.headers,
                    json={**body, "key": p["key"], "ok": True, "url": f"https://github.com/acme/api/x/{p['event']}"})
        assert r.status_code == 200 and r.json()["state"] == "posted"
    trail = mq.get(f"{ORCH}/assignments/{aid}/trail", headers=user).json()["posts"]
    assert {p["state"] for p in trail} == {"posted"} and len(trail) == 3
    assert mq.get(f"{ORCH}/assignments/{lib}/trail", headers=user).json()["posts"] == []  # local only: hub trail


def test_nothing_enters_the_queue_before_passing_its_gates_and_no_worker_drives_it(orch: Api, laptop: Host,
                                                                                    user: dict[str, str]) -> None:
    # Contract §2.11: a branch waiting for its review (or smoke test, or approval) must not reach the queue, neither by
    # merge.auto_queue nor by hand; and a worker's token (one prompt injection) may not drive the queue at all.
    cfg = config(merge={"tick_seconds": 0, "auto_queue": True}, smoke_tests={"auto_queue": False},
                 reviews={"enabled": True, "require_approval": True})
    cfg["repos"][1]["github"] = None
    apply_config(orch, cfg)
    aid = finish(orch, laptop, user, "lib", 1)
    assert orch.get(f"{ORCH}/assignments/{aid}", headers=user).json()["stage"] == "review"
    r = orch.post(M, headers=user, json={})  # runs a pass of the queue (auto_queue included)
    assert r.status_code == 200 and r.json()["entered"] == [] and r.json()["queue"] == [], r.text
    r = orch.post(M, headers=user, json={"ids": [aid]})
    assert r.status_code == 409 and "stage review" in r.text, r.text
    assign(orch, user, repo="lib", issue=2, machine="laptop")
    other = laptop.next()
    assert other is not None
    worker = {"Authorization": f"Bearer {other['worker_token']}"}
    for who in (worker, laptop.headers):
        assert orch.post(M, headers=who, json={"ids": [aid]}).status_code == 403
        assert orch.post(f"{ORCH}/assignments/{aid}/pr", headers=who).status_code == 403
    assert orch.get(M, headers=user).json()["queue"] == []


def test_a_project_halt_stops_merges_into_that_repo(mq: Api, laptop: Host, user: dict[str, str]) -> None:
    aid = finish(mq, laptop, user, "lib", 70)
    enter(mq, [aid])
    r = mq.post("/api/coord/halt", headers=mq.admin, json={"reason": "freeze", "scope": "project:lib"})
    assert r.status_code == 201, r.text
    assert next_run(laptop) is None
    assert mq.post("/api/coord/resume", headers=mq.admin, json={"scope": "project:lib"}).status_code == 200
    assert next_run(laptop) is not None


def test_a_gate_s_output_and_reason_reach_every_session_with_tokens_masked(mq: Api, laptop: Host,
                                                                         user: dict[str, str]) -> None:
    """A merge gate runs the branch's code; its output tail and the host's reason are shown to every session and
    go into the audit trail. A token in them (a gate that prints its environment) is masked like the relayed
    log's (core/redaction.py)."""
    token = "coord_" + "Gt5" * 14 + "q"
    apply_config(mq, merge_config(batch=1))
    entry = enter(mq, [finish(mq, laptop, user, "lib", 21)])["entered"][0]
    run = next_run(laptop)
    assert run is not None and run["entries"][0]["id"] == entry
    out = report(laptop, run, "red", reason=f"the gate printed {token}",
                 evidence={"exit_code": 1, "output": f"COORD_TOKEN={token}\n"})
    shown = mq.get(f"{ORCH}/merges/{entry}", headers=user)
    assert shown.status_code == 200, shown.text
    for text in (str(out), shown.text):
        assert token not in text and "printed coord_***" in text
    assert "COORD_TOKEN=coord_***" in shown.text  # the evidence is shown, masked
    # and what a host says it found when it registers
    r = laptop.api.post(f"{ORCH}/hosts/register", headers=laptop.headers, json={
        "machine": "laptop", "capabilities": ["python"], "repos": {"api": "/src/laptop/api", "lib": "/src/lib"},
        "slots": laptop.slots, "agent_version": "test", "problems": [f"a worker left COORD_TOKEN={token} in /tmp/x"]})
    assert r.status_code == 200, r.text
    status = mq.get(f"{ORCH}/status", headers=user).text
    assert "a worker left COORD_TOKEN=coord_" in status and token not in status


@pytest.mark.parametrize("output", ["é" * 9000, "ok\n" * 3000 + "✓" * 3000])
def test_a_long_gate_output_of_any_characters_is_kept_as_json(mq: Api, laptop: Host, user: dict[str, str],
                                                               output: str) -> None:
    """The evidence is cut to its output's end when long; the cut was of the JSON text, and a non-ASCII output
    (6 characters escaped each) left it unterminated: the red report and every later read of the entry answered
    500 (json.loads of the stored evidence)."""
    apply_config(mq, merge_config(batch=1))
    entry, other = enter(mq, [finish(mq, laptop, user, "lib", n) for n in (22, 24)])["entered"]
    run = next_run(laptop)
    assert run is not None and run["entries"][0]["id"] == entry
    out = report(laptop, run, "red", reason="the gate exited 1", evidence={"exit_code": 1, "output": output})
    shown = mq.get(f"{ORCH}/merges/{entry}", headers=user)
    assert shown.status_code == 200, shown.text
    for e in (out["entries"][0], shown.json()):
        assert e["evidence"]["exit_code"] == 1 and output.endswith(e["evidence"]["output"])
        assert len(e["evidence"]["output"]) >= 1000
    run = next_run(laptop)
    assert run is not None and run["entries"][0]["id"] == other
    files = [f"src/{'d' * 200}/{n}.py" for n in range(200)]  # another value over the bound: left out, named
    report(laptop, run, "red", reason="again", evidence={"exit_code": 2, "output": "FAILED", "files": files})
    e = mq.get(f"{ORCH}/merges/{other}", headers=user).json()
    assert e["evidence"] == {"exit_code": 2, "output": "FAILED", "cut": ["files"]}


@pytest.mark.parametrize("cut", [0, 6, 20, 40])
def test_a_token_at_the_cut_of_a_long_gate_output_is_masked(mq: Api, laptop: Host, user: dict[str, str],
                                                            cut: int) -> None:
    """A long output keeps its end; it was cut before it was masked, so a token the cut fell in showed its body
    without the prefix that makes it one (and a reader adds ``coord_`` back)."""
    token = "coord_" + "Ct7" * 14 + "q"
    apply_config(mq, merge_config(batch=1))
    entry = enter(mq, [finish(mq, laptop, user, "lib", 23)])["entered"][0]
    run = next_run(laptop)
    assert run is not None
    # the output's last 4000 characters (what is kept) start ``cut`` characters into the token
    output = "x" * 5000 + "\nCOORD_TOKEN=" + token + "\n" + "y" * (3999 - len(token) + cut)
    report(laptop, run, "red", reason="the gate exited 1", evidence={"exit_code": 1, "output": output})
    shown = mq.get(f"{ORCH}/merges/{entry}", headers=user).text
    assert token[cut:][-30:] not in shown and token[6:][-30:] not in shown


@pytest.mark.parametrize(("outcome", "evidence"), [("red", {"exit_code": 1, "output": 5}),
                                                   ("conflict", {"files": [1, None]}), ("conflict", {"files": 7})])
def test_evidence_of_an_odd_shape_gets_its_fix_worker(mq: Api, laptop: Host, user: dict[str, str], outcome: str,
                                                      evidence: dict[str, Any]) -> None:
    """The evidence is any JSON object the host sends; the fix worker's instructions took ``files`` apart as a
    list of names and sliced ``output`` as text, so a number or a null there answered 500 and queued no fix."""
    apply_config(mq, merge_config(batch=1))
    entry = enter(mq, [finish(mq, laptop, user, "lib", 31)])["entered"][0]
    run = next_run(laptop)
    assert run is not None
    extra = {"culprit": entry} if outcome == "conflict" else {}
    out = report(laptop, run, outcome, reason="the gate failed", evidence=evidence, **extra)
    assert out["entries"][0]["state"] == "fixing", out


@pytest.mark.parametrize("extra", [{"k" * 300_000: 1}, {f"k{i}": "v" * 10 for i in range(30_000)},
                                   {"exit_code": "9" * 300_000}], ids=["long-key", "many-keys", "long-exit-code"])
def test_evidence_of_long_or_many_keys_is_stored_within_its_bound(mq: Api, laptop: Host, user: dict[str, str],
                                                                  extra: dict[str, Any]) -> None:
    """9b93690 bounded a long evidence by leaving out long values and naming them in ``cut``; but a key counted
    for nothing (one of 300,000 characters was kept), ``cut`` itself was unbounded (30,000 short values: all
    named) and a long ``exit_code`` was always kept: the stored evidence, answered with every read of the entry,
    was as large as the report's body."""
    import json

    from coordhub.core.mergereports import MAX_EVIDENCE_CHARS

    apply_config(mq, merge_config(batch=1))
    entry = enter(mq, [finish(mq, laptop, user, "lib", 25)])["entered"][0]
    run = next_run(laptop)
    assert run is not None
    report(laptop, run, "red", reason="the gate exited 1", evidence={"exit_code": 1, "output": "FAILED", **extra})
    shown = mq.get(f"{ORCH}/merges/{entry}", headers=user)
    assert shown.status_code == 200, shown.text
    evidence = shown.json()["evidence"]
    assert len(json.dumps(evidence)) <= 2 * MAX_EVIDENCE_CHARS and evidence["output"] == "FAILED", evidence
    assert evidence["cut"], evidence


def test_an_entry_whose_stored_evidence_an_older_hub_cut_unreadable_still_reads(mq: Api, laptop: Host,
                                                                                 user: dict[str, str]) -> None:
    """Before 9b93690 a long non-ASCII gate output was stored as JSON text cut at 16,000 characters, unterminated.
    The fix stops new ones, but a row an older hub stored stays after the upgrade, and json.loads of it made every
    read of the entry, and every list holding it, answer 500. Such evidence now reads as its text."""
    from coordhub.server import SYSTEM

    apply_config(mq, merge_config(batch=1))
    entry = enter(mq, [finish(mq, laptop, user, "lib", 26)])["entered"][0]
    cut = ('{"exit_code": 1, "output": "' + "\\u00e9" * 3000)[:16_000]
    mq.hub.mutate_sync(SYSTEM, lambda tx, now: tx.merge_entries.set(entry, {"evidence": cut}))
    shown = mq.get(f"{ORCH}/merges/{entry}", headers=user)
    assert shown.status_code == 200, shown.text
    assert shown.json()["evidence"]["unreadable"] == cut[-4000:]
    listed = mq.get(M, headers=user)
    assert listed.status_code == 200 and entry in listed.text, listed.text


def test_a_host_has_only_the_capabilities_the_config_gives_it(mq: Api, laptop: Host, gh_host: Host,
                                                               user: dict[str, str]) -> None:
    """Review (2026-12-06): a host's token registered ``gpu`` and ``github`` its machine was never given, took a job
    meant for another machine's GPU, and would have made GitHub's posts and merges and reported them."""
    laptop.register(capabilities=["python", "github", "gpu"])
    stored = mq.hub.query_sync(lambda tx, now: {m: json.loads(tx.hosts.get(m)["capabilities"])
                                                for m in ("laptop", "server")})
    assert stored == {"laptop": ["python"], "server": ["github", "python"]}
    aid = finish(mq, laptop, user, "api", 70)
    mq.post(f"{ORCH}/notify", headers=user)
    body = {"machine": "laptop", "host_incarnation": laptop.incarnation}
    assert mq.post(f"{ORCH}/github/next", headers=laptop.headers, json=body).json()["posts"] == []
    assert mq.get(f"{ORCH}/assignments/{aid}/trail", headers=user).json()["posts"]


def test_only_the_machine_that_claimed_a_post_reports_it(mq: Api, laptop: Host, gh_host: Host,
                                                         user: dict[str, str]) -> None:
    """Review (2026-12-06): any host could mark another's claimed post as made, with a link of its choosing."""
    aid = finish(mq, laptop, user, "api", 71)
    mq.post(f"{ORCH}/notify", headers=user)
    key = f"{aid}:1:briefing"
    mine = {"machine": "laptop", "host_incarnation": laptop.incarnation}
    r = mq.post(f"{ORCH}/github/report", headers=laptop.headers, json={**mine, "key": key, "ok": True,
                                                                        "url": "https://evil.example/fake"})
    assert r.status_code == 409 and "pending" in r.json()["error"]["message"], r.text  # nobody claimed it yet
    theirs = {"machine": "server", "host_incarnation": gh_host.incarnation}
    claimed = mq.post(f"{ORCH}/github/next", headers=gh_host.headers, json=theirs).json()["posts"]
    assert key in {p["key"] for p in claimed}
    r = mq.post(f"{ORCH}/github/report", headers=laptop.headers, json={**mine, "key": key, "ok": True,
                                                                        "url": "https://evil.example/fake"})
    assert r.status_code == 409 and "claimed by machine 'server'" in r.json()["error"]["message"], r.text
    r = mq.post(f"{ORCH}/github/report", headers=gh_host.headers, json={**theirs, "key": key, "ok": True,
                                                                         "url": "https://github.com/acme/api/1"})
    assert r.status_code == 200 and r.json()["state"] == "posted" and r.json()["url"].startswith("https://github")


def test_a_passed_branch_entered_by_hand_is_merged_in_its_stage_and_the_summary(mq: Api, laptop: Host,
                                                                                  user: dict[str, str]) -> None:
    """Merge is opt-in (the default stages stop at ``passed``), so seed 003's way — `coord merge ID` once a branch
    passed — is the common one. Its merge left the assignment in stage ``passed``: `coord status` showed it
    unmerged, and `coord done` said ``merged: none`` after the queue had landed it (seed-003 user run)."""
    aid = finish(mq, laptop, user, "lib", 1)
    assert mq.get(f"{ORCH}/assignments/{aid}", headers=user).json()["stage"] == "passed"
    entered = enter(mq, [aid])["entered"]
    run = next_run(laptop)
    assert run is not None and [e["id"] for e in run["entries"]] == entered
    report(laptop, run, "landing", tip="cd" * 20)
    report(laptop, run, "merged", sha="cd" * 20)
    a = mq.get(f"{ORCH}/assignments/{aid}", headers=user).json()
    assert (a["stage"], a["stage_reason"]) == ("merged", f"merged as {'cd' * 20}")
    summary = mq.get(f"{ORCH}/summary", headers=user).json()
    assert [m["id"] for m in summary["merged"]] == [aid]
