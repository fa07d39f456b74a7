"""The pipeline over HTTP, both backends (issue 12 points 1–4, 8): stages, smoke verdicts from exit codes, reviews
with parsed verdicts, the fix loop with escalation, the approval gate, lost runs, the session summary."""

from __future__ import annotations

from typing import Any

from coordhub.clock import ManualClock
from coordhub.core import stages
from tests.conftest import Api
from tests.orchestrator.conftest import ORCH, Host, apply_config, assign, config, get

PIPE = config(smoke_tests={"auto_queue": True, "timeout_seconds": 30,
                           "capability_rules": [{"files": ["ui/**"], "requires": ["gtk"]}]},
              pipeline={"max_fix_rounds": 1, "escalation_session": "desk/claude-main"})


def next_run(host: Host, wait: float = 0) -> dict[str, Any] | None:
    r = host.api.post(f"{ORCH}/hosts/next-run", headers=host.headers, json={
        "machine": host.machine, "host_incarnation": host.incarnation, "wait": wait})
    assert r.status_code == 200, r.text
    return r.json()["run"]  # type: ignore[no-any-return]


def report_run(host: Host, run: dict[str, Any], expect: int = 200, **body: Any) -> dict[str, Any]:
    r = host.api.post(f"{ORCH}/stage-runs/{run['id']}/report", headers=host.headers,
                      json={"attempt": run["attempt"], "host_incarnation": host.incarnation, **body})
    assert r.status_code == expect, r.text
    return dict(r.json())


def stages_of(api: Api, aid: str) -> dict[str, Any]:
    r = api.get(f"{ORCH}/assignments/{aid}/stages", headers=api.admin)
    assert r.status_code == 200, r.text
    return dict(r.json())


def work_done(host: Host, api: Api, user: dict[str, str], issue: int = 1, **extra: Any) -> dict[str, Any]:
    changed = extra.pop("changed", ["src/a.py"])
    a = assign(api, user, issue=issue, **extra)
    job = host.next()
    assert job is not None and job["id"] == a["id"]
    host.report(job, "done", pushed=True, changed_files=changed)
    return get(api, a["id"])


def test_a_red_smoke_is_fixed_with_an_escalated_model_then_passes(orch: Api, laptop: Host,
                                                                   user: dict[str, str]) -> None:
    apply_config(orch, PIPE)
    a = work_done(laptop, orch, user, model="sonnet")
    assert a["state"] == "done" and a["stage"] == "test"
    (waiting,) = orch.get(f"{ORCH}/status", headers=user).json()["stage_runs"]  # visible while it waits
    assert (waiting["stage"], waiting["state"], waiting["machine"]) == ("test", "queued", None)
    run = next_run(laptop)
    assert run is not None and run["stage"] == "test" and run["command"] == "( make ) && ( make test )"
    assert run["branch"] == a["branch"] and run["base"] == "main" and run["timeout_seconds"] == 30
    report_run(laptop, run, state="running", commit="abc1234")
    # the worker said success; the command's exit code decides
    got = report_run(laptop, run, state="done", exit_code=2, output_tail="FAILED test_auth.py::test_expiry")
    assert (got["state"], got["verdict"], got["exit_code"]) == ("failed", "failed", 2)
    a = get(orch, a["id"])
    assert (a["state"], a["stage"], a["fix_round"], a["fix_stage"], a["model"]) == ("queued", "fix", 1, "test", "opus")
    fix = laptop.next()
    assert fix is not None and fix["attempt"] == 2 and fix["model"] == "opus" and fix["branch"] == a["branch"]
    assert "FAILED test_auth.py::test_expiry" in fix["briefing"] and "exited 2" in fix["briefing"]
    laptop.report(fix, "done", pushed=True)
    assert get(orch, a["id"])["stage"] == "test"  # the failed stage runs again, automatically
    again = next_run(laptop)
    assert again is not None and again["id"] != run["id"]
    report_run(laptop, again, state="done", exit_code=0, output_tail="3 passed")
    v = stages_of(orch, a["id"])
    assert v["stage"] == "merge" and v["gates"] == ["test", "merge"]
    assert [(r["state"], r["round"]) for r in v["runs"]] == [("failed", 0), ("passed", 1)]
    assert [m["id"] for m in orch.hub.store.read_sync(lambda tx: stages.merge_queue(tx))] == [a["id"]]
    kinds = [e["kind"] for e in orch.get("/api/coord/audit", headers=orch.admin,
                                         params={"limit": 500, "kinds": "stage."}).json()]
    assert kinds == ["stage.test", "stage.fix", "stage.test", "stage.merge"]


def test_after_max_fix_rounds_it_stops_and_tells_the_escalation_session(orch: Api, laptop: Host,
                                                                        user: dict[str, str]) -> None:
    apply_config(orch, PIPE)
    a = work_done(laptop, orch, user)
    report_run(laptop, next_run(laptop) or {}, state="done", exit_code=1, output_tail="boom")
    laptop.report(laptop.next() or {}, "done", pushed=True)
    report_run(laptop, next_run(laptop) or {}, state="done", exit_code=1, output_tail="boom again")
    a = get(orch, a["id"])
    assert (a["state"], a["stage"], a["fix_round"]) == ("done", "needs_input", 1)
    assert "test failed after 1 fix round(s) (pipeline.max_fix_rounds 1)" in a["stage_reason"]
    msgs = orch.get("/api/coord/messages", headers=user).json()
    assert any("needs input" in m["subject"] and a["id"] in m["subject"] for m in msgs)
    assert laptop.next() is None and next_run(laptop) is None  # nothing runs by itself any more
    # `coord retry` is for an assignment that failed, not a pipeline that stopped: the refusal says what to run
    # instead (it said "only a failed, cancelled, stuck or needs_input one is retried" beside stage needs_input)
    r = orch.post(f"{ORCH}/assignments/{a['id']}/retry", headers=user)
    assert r.status_code == 409 and r.json()["error"]["stage"] == "needs_input", r.text
    assert f"`coord fix {a['id']} --guidance" in r.json()["error"]["message"], r.text
    # a human decides: a fix by hand (no round limit) with guidance
    r = orch.post(f"{ORCH}/assignments/{a['id']}/fix", headers=user, json={"guidance": "use the new clock"})
    assert r.status_code == 200, r.text
    job = laptop.next()
    assert job is not None and "use the new clock" in job["briefing"] and "boom again" in job["briefing"]


def test_by_default_a_passed_branch_waits_before_the_merge_queue(orch: Api, laptop: Host, user: dict[str, str]) -> None:
    """Merge is opt-in (`pipeline.stages`): with no test command or reviews, the default would land unchecked work."""
    cfg = config(smoke_tests={"auto_queue": False})
    del cfg["pipeline"]
    apply_config(orch, cfg)
    a = work_done(laptop, orch, user)
    r = orch.post(f"{ORCH}/assignments/{a['id']}/test", headers=user, json={"verdict": "passed"})
    assert r.status_code == 200
    assert get(orch, a["id"])["stage"] == "passed"
    queue = orch.get(f"{ORCH}/merges", headers=user)
    assert queue.status_code == 200 and a["id"] not in queue.text  # nothing entered the queue by itself


def test_manual_verdicts_and_bad_requests(orch: Api, laptop: Host, user: dict[str, str]) -> None:
    apply_config(orch, config(smoke_tests={"auto_queue": False}))
    a = work_done(laptop, orch, user)
    assert get(orch, a["id"])["stage"] == "test" and next_run(laptop) is None  # waits for `coord test`
    url = f"{ORCH}/assignments/{a['id']}/test"
    assert orch.post(url, headers=user, json={"verdict": "maybe"}).status_code == 422
    assert orch.post(f"{ORCH}/assignments/ffffffff/test", headers=user).status_code == 404
    r = orch.post(url, headers=user, json={"verdict": "failed", "reason": "the login page is blank"})
    assert r.status_code == 200 and r.json()["manual"] is True and r.json()["state"] == "failed"
    a = get(orch, a["id"])
    assert a["stage"] == "fix" and a["state"] == "queued"
    assert orch.post(url, headers=user).status_code == 409  # fixing: no test now
    laptop.report(laptop.next() or {}, "done", pushed=True)
    run = next_run(laptop)  # the fix's rerun is automatic even without auto_queue
    assert run is not None
    r = orch.post(url, headers=user, json={"verdict": "passed"})  # a human's verdict replaces the live run
    assert r.status_code == 200 and get(orch, a["id"])["stage"] == "merge"
    assert report_run(laptop, run, expect=409, state="done", exit_code=0)["error"]["code"] == "stale_attempt"


def test_reviews_parse_verdicts_prefer_another_machine_and_never_approve_without_one(
        orch: Api, laptop: Host, server: Host, user: dict[str, str]) -> None:
    apply_config(orch, config(reviews={"enabled": True, "checklist": ["tests added?"],
                                       "repo_overrides": {"api": ["rate limits?"]}},
                              pipeline={"stages": ["review", "merge"], "max_fix_rounds": 2}))
    a = work_done(laptop, orch, user)
    assert a["stage"] == "review"
    assert next_run(laptop) is None  # the worker's machine while another is online
    run = next_run(server)
    assert run is not None and run["stage"] == "review" and run["review"]["checklist"] == ["tests added?",
                                                                                          "rate limits?"]
    assert "Edit" in run["review"]["disallowed_tools"] and "Bash(git push *)" in run["review"]["disallowed_tools"]
    got = report_run(server, run, state="done", verdict="request_changes", summary="no test",
                     findings=[{"file": "src/a.py", "line": 3, "severity": "major", "message": "add a test"}])
    assert got["state"] == "failed" and got["findings"][0]["message"] == "add a test"
    fix = laptop.next() or server.next()
    assert fix is not None and "[major] src/a.py:3: add a test" in fix["briefing"]
    (laptop if fix["id"] in laptop.jobs else server).report(fix, "done", pushed=True)
    again = next_run(server)
    assert again is not None
    # a verdict that is neither approve nor request_changes is an error, never an approval
    got = report_run(server, again, state="done", verdict="lgtm")
    assert got["state"] == "error" and "review_verdict_invalid" in got["reason"]
    a = get(orch, a["id"])
    assert a["stage"] == "needs_input" and "review could not run" in a["stage_reason"]
    r = orch.post(f"{ORCH}/assignments/{a['id']}/review", headers=user)
    assert r.status_code == 200, r.text
    third = next_run(server)
    assert third is not None
    report_run(server, third, state="done", verdict="approve", summary="fine", findings=[])
    assert get(orch, a["id"])["stage"] == "merge"


def test_approval_gate_and_capability_routing(orch: Api, laptop: Host, server: Host,
                                              user: dict[str, str]) -> None:
    cfg = config(smoke_tests={"auto_queue": True, "capability_rules": [{"files": ["ui/**"], "requires": ["docker"]}]},
                 repos=[{"name": "api", "test_command": "make test", "require_approval": True},
                        {"name": "lib"}])
    apply_config(orch, cfg)
    server.register(capabilities=["python", "docker"])
    a = assign(orch, user, issue=1, machine="laptop")
    job = laptop.next()
    assert job is not None
    laptop.report(job, "done", pushed=True, changed_files=["ui/main.py", "README.md"])
    assert next_run(laptop) is None  # laptop lacks docker, which ui/** needs
    run = next_run(server)
    assert run is not None and run["stage"] == "test"
    assert stages_of(orch, a["id"])["runs"][0]["requires"] == ["docker"]
    report_run(server, run, state="done", exit_code=0)
    assert get(orch, a["id"])["stage"] == "approval"
    r = orch.post(f"{ORCH}/assignments/{a['id']}/accept", headers=user)
    assert r.status_code == 200 and r.json()["stage"] == "merge"
    assert orch.post(f"{ORCH}/assignments/{a['id']}/accept", headers=user).status_code == 409


def test_a_lost_host_s_run_is_queued_again_and_its_late_report_ignored(orch: Api, clock: ManualClock,
                                                                       laptop: Host, server: Host,
                                                                       user: dict[str, str]) -> None:
    apply_config(orch, PIPE)
    a = work_done(laptop, orch, user)
    run = next_run(laptop)
    assert run is not None
    clock.advance(16)  # laptop silent for more than 3 × 5 s
    server.beat()
    r = orch.post(f"{ORCH}/reconcile", headers=orch.admin)
    assert r.status_code == 200 and r.json()["pipeline"]["runs_requeued"] == [run["id"]]
    again = next_run(server)
    assert again is not None and again["id"] == run["id"] and again["attempt"] == 2
    # the old host's late report is refused (another machine runs it now) and changes nothing
    assert report_run(laptop, run, expect=403, state="done", exit_code=1)["error"]["code"] == "forbidden"
    assert stages_of(orch, a["id"])["runs"][0]["state"] == "dispatched"
    report_run(server, again, state="done", exit_code=0)
    assert get(orch, a["id"])["stage"] == "merge"


def test_done_runs_the_hooks_and_summarises(orch: Api, clock: ManualClock, laptop: Host,
                                            user: dict[str, str]) -> None:
    apply_config(orch, config(smoke_tests={"auto_queue": True}, hooks={"on_session_end": ["summary_report",
                                                                                          "close_merged_issues"]}))
    work_done(laptop, orch, user)
    report_run(laptop, next_run(laptop) or {}, state="done", exit_code=0)
    r = orch.post(f"{ORCH}/done", headers=user)
    assert r.status_code == 200, r.text
    d = r.json()
    assert [(h["hook"], h["status"]) for h in d["hooks"]] == [("summary_report", "ran"),
                                                             ("close_merged_issues", "skipped")]
    s = d["summary"]
    assert s["assignments"]["by_stage"] == {"merge": 1} and s["runs"] == {"test": {"passed": 1}}
    assert s["cost"]["by_machine"] == {"laptop": 0.0} and s["cost"]["by_model"] == {"sonnet": 0.0}
    clock.advance(1)
    assert orch.get(f"{ORCH}/summary", headers=user).json()["assignments"]["total"] == 0  # a new session


def test_on_round_complete_runs_once_when_the_queue_drains(orch: Api, laptop: Host, user: dict[str, str]) -> None:
    apply_config(orch, config(smoke_tests={"auto_queue": True}, hooks={"on_round_complete": ["summary_report"]}))
    work_done(laptop, orch, user)

    def reconcile() -> dict[str, Any]:
        r = orch.post(f"{ORCH}/reconcile", headers=orch.admin)
        assert r.status_code == 200, r.text
        return dict(r.json())

    assert "pipeline" not in reconcile()  # a smoke test is still queued: the round is not over
    report_run(laptop, next_run(laptop) or {}, state="done", exit_code=0)
    ran = reconcile()["pipeline"]["round_complete"]
    assert [(h["hook"], h["status"]) for h in ran] == [("summary_report", "ran")]
    assert ran[0]["result"]["summary"]["runs"] == {"test": {"passed": 1}}
    assert "pipeline" not in reconcile()  # once per drain
    events = orch.get("/api/coord/audit", headers=orch.admin, params={"kinds": "orchestrator.round_complete"}).json()
    assert len(events) == 1


def test_no_worker_or_host_may_pass_a_gate_or_steer_the_pipeline(orch: Api, laptop: Host,
                                                                 user: dict[str, str]) -> None:
    # A prompt-injected worker (any live one, on any issue) or a host must not record a smoke verdict, pass the
    # approval gate, queue runs or fixes, or close the session: else one injection merges unverified work.
    apply_config(orch, config(smoke_tests={"auto_queue": False}, reviews={"require_approval": True}))
    a = work_done(laptop, orch, user, issue=1)
    assert (a["state"], a["stage"]) == ("done", "test")
    assign(orch, user, issue=2)
    other = laptop.next()
    assert other is not None and other["id"] != a["id"]
    worker = {"Authorization": f"Bearer {other['worker_token']}"}
    for who in (worker, laptop.headers):
        for verb, body in (("test", {"verdict": "passed"}), ("test", None), ("review", None), ("fix", None),
                           ("accept", None)):
            r = orch.post(f"{ORCH}/assignments/{a['id']}/{verb}", headers=who, json=body)
            assert r.status_code == 403, (verb, body, r.text)
        assert orch.post(f"{ORCH}/done", headers=who).status_code == 403
    v = stages_of(orch, a["id"])
    assert v["stage"] == "test" and v["runs"] == []  # nothing recorded, nothing queued
    r = orch.post(f"{ORCH}/assignments/{a['id']}/test", headers=user, json={"verdict": "passed"})
    assert r.status_code == 200, r.text  # a person's session still may


def test_a_test_no_machine_can_run_stops_at_once_with_the_reason(orch: Api, laptop: Host,
                                                                 user: dict[str, str]) -> None:
    apply_config(orch, config(smoke_tests={"auto_queue": True,
                                           "capability_rules": [{"files": ["gpu/**"], "requires": ["cuda"]}]}))
    a = work_done(laptop, orch, user, changed=["gpu/kernel.cu"])
    assert a["stage"] == "needs_input"
    assert "no machine in coordinator.yml serves repo api with capabilities cuda" in a["stage_reason"]
    (run,) = stages_of(orch, a["id"])["runs"]
    assert run["state"] == "error" and run["requires"] == ["cuda"]
    assert next_run(laptop) is None


def test_reviews_run_with_reviews_model_the_same_every_round(orch: Api, laptop: Host, server: Host,
                                                            user: dict[str, str]) -> None:
    apply_config(orch, config(reviews={"enabled": True, "model": "claude-opus-4-5"},
                              pipeline={"stages": ["review", "merge"], "max_fix_rounds": 2}))
    a = work_done(laptop, orch, user, model="haiku")
    run = next_run(server)
    assert run is not None and run["stage"] == "review" and run["model"] == "claude-opus-4-5"
    report_run(server, run, state="done", verdict="request_changes", summary="no test", findings=[])
    fix = laptop.next() or server.next()
    assert fix is not None and fix["model"] == "sonnet"  # the fix worker climbs the ladder; the reviewer does not
    (laptop if fix["id"] in laptop.jobs else server).report(fix, "done", pushed=True)
    again = next_run(server)
    assert again is not None and again["model"] == "claude-opus-4-5"
    assert [r["model"] for r in stages_of(orch, a["id"])["runs"]] == ["claude-opus-4-5"] * 2
    # without reviews.model a reviewer runs with models.default, as before
    apply_config(orch, config(reviews={"enabled": True}, pipeline={"stages": ["review", "merge"]}))
    b = work_done(laptop, orch, user, issue=2)
    assert [r["model"] for r in stages_of(orch, b["id"])["runs"]] == ["sonnet"]


def test_after_a_review_fix_the_tests_run_again_before_the_re_review(orch: Api, laptop: Host, server: Host,
                                                                     user: dict[str, str]) -> None:
    apply_config(orch, config(smoke_tests={"auto_queue": False}, reviews={"enabled": True, "auto_dispatch": False},
                              pipeline={"stages": ["test", "review", "merge"], "max_fix_rounds": 1}))
    a = work_done(laptop, orch, user)
    assert a["stage"] == "test" and next_run(laptop) is None  # auto_queue off: it waits for `coord test`
    assert orch.post(f"{ORCH}/assignments/{a['id']}/test", headers=user).status_code == 200
    report_run(laptop, next_run(laptop) or {}, state="done", exit_code=0)
    assert get(orch, a["id"])["stage"] == "review"
    assert orch.post(f"{ORCH}/assignments/{a['id']}/review", headers=user).status_code == 200
    report_run(server, next_run(server) or {}, state="done", verdict="request_changes", summary="rename it",
               findings=[])
    fix = laptop.next() or server.next()
    assert fix is not None
    (laptop if fix["id"] in laptop.jobs else server).report(fix, "done", pushed=True)
    # the fix changed the branch: the test runs again first, by itself (the loop is automatic), then the review
    assert get(orch, a["id"])["stage"] == "test"
    again = next_run(laptop)
    assert again is not None and again["stage"] == "test"
    report_run(laptop, again, state="done", exit_code=1, output_tail="the rename broke test_x")
    a = get(orch, a["id"])
    assert (a["stage"], a["fix_round"]) == ("needs_input", 1) and "test failed" in a["stage_reason"]
    assert orch.hub.store.read_sync(lambda tx: stages.merge_queue(tx)) == []  # it never reached merge
    runs = stages_of(orch, a["id"])["runs"]
    assert [(r["stage"], r["state"]) for r in runs] == [("test", "passed"), ("review", "failed"), ("test", "failed")]
