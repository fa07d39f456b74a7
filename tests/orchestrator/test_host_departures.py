"""Stage runs and merge runs say how their host went away, as assignments do: ``host_stopped`` when its last
heartbeat said it stops (``coord agent`` got SIGTERM), ``host_stale`` when it vanished, ``host_restarted`` when
another incarnation registered without it; and a stopping host's own ``host_stopped`` report of a stage run
queues it again instead of stopping the pipeline for a human. Both backends, over HTTP."""

from __future__ import annotations

from typing import Any

from coordhub.clock import ManualClock
from tests.conftest import Api
from tests.orchestrator.conftest import ORCH, Host, apply_config, config
from tests.orchestrator.merge.test_queue_api import enter, finish, merge_config
from tests.orchestrator.merge.test_queue_api import next_run as next_merge
from tests.orchestrator.test_pipeline import PIPE, next_run, report_run, stages_of, work_done

M = ORCH + "/merges"


def say_stopping(host: Host) -> None:
    """The last heartbeat of a ``coord agent`` that got SIGTERM."""
    r = host.api.post(f"{ORCH}/hosts/heartbeat", headers=host.headers, json={
        "machine": host.machine, "host_incarnation": host.incarnation, "free_slots": 0, "running": [],
        "stopping": True})
    assert r.status_code == 200, r.text


def reconcile_now(api: Api) -> dict[str, Any]:
    r = api.post(f"{ORCH}/reconcile", headers=api.admin)
    assert r.status_code == 200, r.text
    return dict(r.json())


def run_of(api: Api, aid: str) -> dict[str, Any]:
    (run,) = stages_of(api, aid)["runs"]
    return dict(run)


def test_a_stage_run_says_whether_its_host_stopped_or_vanished(orch: Api, clock: ManualClock, laptop: Host,
                                                              server: Host, user: dict[str, str]) -> None:
    apply_config(orch, PIPE)
    a = work_done(laptop, orch, user, issue=1, machine="laptop")
    b = work_done(server, orch, user, issue=2, machine="server")
    mine, theirs = next_run(laptop), next_run(server)
    assert mine is not None and theirs is not None and mine["assignment_id"] == a["id"]
    say_stopping(laptop)  # the laptop's agent was stopped; the server just went silent
    clock.advance(16)
    done = reconcile_now(orch)
    assert sorted(done["pipeline"]["runs_requeued"]) == sorted([mine["id"], theirs["id"]])
    assert run_of(orch, a["id"])["reason"] == "host_stopped: laptop stopped (its last heartbeat said so) and has " \
                                              "been silent for 16 s (it ran attempt 1)"
    assert run_of(orch, b["id"])["reason"] == "host_stale: no heartbeat from server for 16 s (it ran attempt 1)"


def test_a_restarted_host_s_stage_run_says_so(orch: Api, laptop: Host, user: dict[str, str]) -> None:
    apply_config(orch, PIPE)
    a = work_done(laptop, orch, user)
    assert next_run(laptop) is not None
    laptop.register()  # kill -9 and start again: incarnation 2, which never re-attaches a run
    reconcile_now(orch)
    run = run_of(orch, a["id"])
    assert (run["state"], run["reason"]) == ("queued", "host_restarted: laptop came back as incarnation 2 "
                                                       "without it (it ran attempt 1)")


def test_a_stopping_host_s_own_report_queues_the_run_again(orch: Api, laptop: Host, server: Host,
                                                           user: dict[str, str]) -> None:
    """``coord agent`` stopping ends its smoke test and says so: no verdict, the run queued again at once (it
    was an ``error`` before, which stopped the pipeline for a human; silent, it read ``host_restarted``)."""
    apply_config(orch, PIPE)
    a = work_done(laptop, orch, user)
    run = next_run(laptop)
    assert run is not None
    say_stopping(laptop)
    got = report_run(laptop, run, state="error", reason="host_stopped: the host was stopped while it ran")
    assert (got["state"], got["reason"]) == ("queued", "host_stopped: the host was stopped while it ran (it ran "
                                                       "attempt 1)")
    assert next_run(laptop) is None  # a stopping host takes nothing back
    again = next_run(server)
    assert again is not None and again["id"] == run["id"] and again["attempt"] == 2
    report_run(server, again, state="done", exit_code=0)
    assert stages_of(orch, a["id"])["stage"] == "merge"


def test_a_review_a_stopping_host_ends_keeps_its_cost(orch: Api, laptop: Host, server: Host,
                                                     user: dict[str, str]) -> None:
    """The reviewer's ``claude -p`` a stopping host ends has spent money: its ``host_stopped`` report carries the
    cost, and the run keeps it beside the next attempt's (it was dropped: the run read only the last attempt's)."""
    apply_config(orch, config(reviews={"enabled": True}, pipeline={"stages": ["review", "merge"]}))
    a = work_done(laptop, orch, user)
    run = next_run(server)
    assert run is not None and run["stage"] == "review"
    say_stopping(server)
    got = report_run(server, run, state="error", reason="host_stopped: the host was stopped while it ran",
                     cost_usd=0.25)
    assert (got["state"], got["cost_usd"]) == ("queued", 0.25)
    again = next_run(laptop)
    assert again is not None and again["id"] == run["id"] and again["attempt"] == 2
    report_run(laptop, again, state="done", verdict="approve", summary="fine", findings=[], cost_usd=0.5)
    ended = run_of(orch, a["id"])
    # the stopped attempt's reason is not the verdict's: `coord stages` read "passed (approve) …: host_stopped: …"
    assert (ended["state"], ended["cost_usd"], ended["reason"]) == ("passed", 0.75, None)


def test_a_merge_run_says_whether_its_host_stopped_or_vanished(orch: Api, clock: ManualClock, laptop: Host,
                                                              user: dict[str, str]) -> None:
    apply_config(orch, merge_config())
    aid = finish(orch, laptop, user, "lib", 20)
    (entry,) = enter(orch, [aid])["entered"]
    assert next_merge(laptop) is not None
    say_stopping(laptop)
    clock.advance(16)
    reconcile_now(orch)
    got = orch.get(f"{M}/{entry}", headers=orch.admin).json()
    assert got["state"] == "queued" and got["reason"].startswith(
        "host_stopped: laptop stopped (its last heartbeat said so) and has been silent for 16 s, during the merge "
        "run"), got["reason"]
    laptop.register()  # back, and gone again without a word
    assert next_merge(laptop) is not None
    clock.advance(16)
    reconcile_now(orch)
    got = orch.get(f"{M}/{entry}", headers=orch.admin).json()
    assert got["reason"].startswith("host_stale: no heartbeat from laptop for 16 s, during the merge run"), got
