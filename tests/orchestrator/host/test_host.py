"""The host process's logic in-process over the :class:`FakeHub`: slots, heartbeats (halt, cancel), and recovery of
what a dead host left (re-attach, orphans killed, worktrees saved and cleaned)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from coordhub.orchestrator import worktree
from coordhub.orchestrator.host import Host, HostConfig
from coordhub.orchestrator.hoststate import HostState, start_ticks
from coordhub.orchestrator.worker import Context
from tests.orchestrator.host.conftest import Repo, payload, run
from tests.orchestrator.host.fakehub import FakeHub


@pytest.fixture
def start_host(make_ctx: Callable[..., Context], repo: Repo) -> Iterator[Callable[..., Host]]:
    hosts: list[tuple[Host, threading.Thread]] = []

    def start(slots: int = 2, ctx: Context | None = None) -> Host:
        ctx = ctx or make_ctx()
        host = Host(HostConfig(machine="m1", slots=slots, repos={"app": repo.path}, poll_wait=0.3), ctx)
        t = threading.Thread(target=host.run, kwargs={"install_signals": False}, daemon=True)
        t.start()
        hosts.append((host, t))
        return host

    yield start
    for host, t in hosts:
        host.shutdown()
        t.join(60)


def wait_for(cond: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.time() + timeout
    while True:
        value = cond()
        if value:
            return value
        assert time.time() < deadline, "condition not met in time"
        time.sleep(0.05)


def queue(hub: FakeHub, n: int, briefing: str) -> list[str]:
    ids = [f"{i:08x}" for i in range(1, n + 1)]
    for i, aid in enumerate(ids):
        p = payload(aid, issue=i + 1, briefing=briefing)
        hub.add(aid, **{k: v for k, v in p.items() if k not in ("id", "attempt", "worker_session")})
    return ids


def test_the_host_runs_at_most_its_slots(start_host: Callable[..., Host], fake_hub: FakeHub, repo: Repo) -> None:
    ids = queue(fake_hub, 4, "fake: slow work=0.6 beat=0.2")
    start_host(slots=2)
    finals = [fake_hub.final(aid) for aid in ids]
    assert [f["state"] for f in finals] == ["done"] * 4
    running, most = 0, 0
    for _, _, what in sorted(fake_hub.running_log):
        running += 1 if what == "start" else -1
        most = max(most, running)
    assert most == 2
    assert sorted(b for b in repo.remote_branches() if b != "main") == [f"issue-{i}-fix-it" for i in range(1, 5)]
    reg = fake_hub.registrations[0]
    assert reg["slots"] == 2 and reg["repos"] == {"app": str(repo.path)} and reg["recovered"] == []


def test_heartbeats_list_what_the_host_holds_and_apply_halt_and_cancel(start_host: Callable[..., Host],
                                                                       fake_hub: FakeHub) -> None:
    a, b = queue(fake_hub, 2, "fake: slow work=60 beat=0.2")
    host = start_host(slots=2)
    wait_for(lambda: len(host.workers) == 2 and all(w.telemetry.tool_progress for w in host.workers.values()))
    wait_for(lambda: any(h["running"] == [a, b] for h in fake_hub.heartbeats))
    fake_hub.paused_assignments = {a}  # a project halt covering one of them
    wait_for(lambda: host.workers[a].paused)
    assert not host.workers[b].paused
    fake_hub.paused_assignments = set()
    wait_for(lambda: not host.workers[a].paused)
    fake_hub.cancel = {a, b}  # `coord stop`, or halt --kill
    finals = [fake_hub.final(a), fake_hub.final(b)]
    assert all("state" not in f and f["reason"].startswith("cancelled") for f in finals)
    wait_for(lambda: not host.workers)


def test_a_fleet_halt_stops_polling_and_pauses_every_worker(start_host: Callable[..., Host],
                                                            fake_hub: FakeHub) -> None:
    (a,) = queue(fake_hub, 1, "fake: slow work=1.5 beat=0.2")
    host = start_host(slots=2)
    wait_for(lambda: a in host.workers and host.workers[a].telemetry.tool_progress)
    fake_hub.paused = True
    wait_for(lambda: host.workers[a].paused)
    queue_more = payload("000000ff", issue=9, briefing="fake: success")
    fake_hub.add("000000ff", **{k: v for k, v in queue_more.items() if k not in ("id", "attempt", "worker_session")})
    time.sleep(1.0)
    assert fake_hub.assignments["000000ff"].state == "queued"  # nothing dispatched under a halt
    fake_hub.paused = False
    assert fake_hub.final(a)["state"] == "done"
    assert fake_hub.final("000000ff")["state"] == "done"


def test_sigterm_to_the_host_stops_workers_with_their_work_saved(start_host: Callable[..., Host],
                                                                 fake_hub: FakeHub) -> None:
    (a,) = queue(fake_hub, 1, "fake: slow work=60 beat=0.2")
    host = start_host()
    wait_for(lambda: a in host.workers and host.workers[a].telemetry.tool_progress)
    host.shutdown()
    final = fake_hub.final(a)
    assert final["state"] == "failed" and final["reason"] == "host_stopped: the host was stopped"
    assert final["wip_commit"] and not Path(final["worktree"]).exists()


def _ps() -> str:
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout


def _stop_when_running(make_ctx: Callable[..., Context], repo: Repo, command: str) -> Host:
    """Run a host until ``command`` runs, then stop it as SIGTERM does; return it once :meth:`Host.run` returned."""
    host = Host(HostConfig(machine="m1", slots=2, repos={"app": repo.path}, poll_wait=0.3), make_ctx())
    t = threading.Thread(target=host.run, kwargs={"install_signals": False}, daemon=True)
    t.start()
    wait_for(lambda: command in _ps())
    host.shutdown()
    t.join(60)
    assert not t.is_alive()
    return host


def test_a_stopping_host_reports_its_merge_gate_host_stopped_before_it_exits(
        make_ctx: Callable[..., Context], fake_hub: FakeHub, repo: Repo) -> None:
    """A merge run's gate that a stop ends is reported ``retry: host_stopped …`` before ``coord agent`` exits,
    and its process group ends with it. The agent exited without waiting for its merge run: the gate's
    process outlived it, and the hub, seeing the next agent register, called the run's host restarted (found
    running the orchestrator end to end)."""
    run(repo.path, "git", "checkout", "-q", "-b", "issue-1-x")
    (repo.path / "x.txt").write_text("x\n")
    run(repo.path, "git", "add", "x.txt")
    run(repo.path, "git", "commit", "-q", "-m", "x")
    run(repo.path, "git", "push", "-q", "origin", "issue-1-x")
    run(repo.path, "git", "checkout", "-q", "main")
    fake_hub.merge_runs.append({"batch_id": "f1f2f3f4", "repo": "app", "target": "main", "method": "rebase",
                                "gate_command": "sleep 32.5", "gate_timeout_seconds": 60,
                                "entries": [{"id": "e1e2e3e4", "branch": "issue-1-x", "issue": 1, "title": "x"}]})
    _stop_when_running(make_ctx, repo, "sleep 32.5")
    assert [r["outcome"] for r in fake_hub.merge_reports] == ["retry"], fake_hub.merge_reports
    assert fake_hub.merge_reports[0]["reason"].startswith("host_stopped: m1 was stopped during the merge run")
    assert "sleep 32.5" not in _ps()


def test_a_stopping_host_reports_its_smoke_test_host_stopped_before_it_exits(
        make_ctx: Callable[..., Context], fake_hub: FakeHub, repo: Repo) -> None:
    """The same for a smoke test (a stage run): reported ``error: host_stopped …``, which the hub queues again."""
    fake_hub.stage_runs.append({"id": "d1d2d3d4", "attempt": 1, "stage": "test", "repo": "app", "branch": "main",
                                "command": "sleep 31.5", "timeout_seconds": 60})
    _stop_when_running(make_ctx, repo, "sleep 31.5")
    assert [(b["state"], b.get("reason")) for _, b in fake_hub.run_reports] == [
        ("running", None), ("error", "host_stopped: the host was stopped while it ran")]
    assert "sleep 31.5" not in _ps()


def test_a_cancel_of_a_worker_that_already_reported_is_not_a_stop(make_ctx: Callable[..., Context],
                                                                    fake_hub: FakeHub, repo: Repo,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A worker that delivered its final report is still listed while it cleans up; the hub, its record ended,
    answers ``cancel``. That is no stop: the agent logged "cancelled by the hub; stopping its worker" right
    before "done: completed", which read as a done assignment being cancelled (an end-to-end run)."""
    host = Host(HostConfig(machine="m1", slots=2, repos={"app": repo.path}), make_ctx())
    host.incarnation = fake_hub.register([], {}, 2, "x", [], [])["host_incarnation"]

    class Finishing:  # what the heartbeat reads of a worker whose final report went out
        verdict = object()
        cancelled = paused = False

        def cancel(self) -> None:
            self.cancelled = True

    finishing = Finishing()
    host.workers["a1b2c3d4"] = finishing  # type: ignore[assignment]
    fake_hub.cancel = {"a1b2c3d4"}
    with caplog.at_level(logging.INFO, logger="coordhub.agent"):
        assert host.heartbeat() is not None
    assert not finishing.cancelled and "cancelled by the hub" not in caplog.text


# ---- recovery: what a host that died (kill -9) leaves ------------------------------------------------------

def orphan(ctx: Context, repo: Repo, host_env: dict[str, str], aid: str, briefing: str,
           tmp_path: Path) -> dict[str, Any]:
    """Do what a host does up to a running claude, then 'die': a worktree, a claude in its own session writing to
    its raw log, and the record in the state file."""
    p = payload(aid, briefing=briefing)
    wt = worktree.create(repo.path, ctx.worktrees / aid, p["branch"], "main", ctx.worktrees)
    d = ctx.workers_dir / aid
    d.mkdir(parents=True, exist_ok=True)
    sid = str(uuid.uuid4())
    raw = d / "stream.1.jsonl"
    with open(raw, "ab") as out:
        proc = subprocess.Popen(["claude", "-p", f"Issue #7 of app.\n\n{briefing}", "--output-format", "stream-json",
                                 "--verbose", "--session-id", sid, "--permission-mode", "acceptEdits",
                                 "--allowedTools", "Read,Edit,Write,Bash"],
                                cwd=wt.path, env=host_env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    rec = {"attempt": 1, "payload": p, "phase": "running", "worktree": str(wt.path), "branch": wt.branch,
           "base": wt.base, "repo_path": str(repo.path), "pid": proc.pid, "pgid": proc.pid,
           "start_ticks": start_ticks(proc.pid), "session_id": sid, "raw_log": str(raw), "raw_offset": 0,
           "started_at": time.time(), "proc": proc}
    ctx.state.put(aid, **{k: v for k, v in rec.items() if k != "proc"})
    return rec


def test_a_restarted_host_reattaches_to_a_running_worker(make_ctx: Callable[..., Context],
                                                         start_host: Callable[..., Host], fake_hub: FakeHub,
                                                         repo: Repo, host_env: dict[str, str], tmp_path: Path) -> None:
    ctx = make_ctx()
    fake_hub.dispatched("0000000a")
    rec = orphan(ctx, repo, host_env, "0000000a", "fake: slow work=2 beat=0.2", tmp_path)
    time.sleep(0.5)  # it runs while no host watches
    ctx2 = make_ctx(state=tmp_path / "host")  # the new host process: same state dir
    host = start_host(ctx=ctx2)
    final = fake_hub.final("0000000a")
    assert final["state"] == "done" and final["pushed"] is True, final
    assert final["telemetry"]["session_id"] == rec["session_id"]
    assert fake_hub.registrations[0]["recovered"] == [
        {"assignment": "0000000a", "action": "re-attach", "detail": f"claude pid {rec['pid']} still runs"}]
    assert fake_hub.heartbeats[0]["running"] == ["0000000a"]  # listed at once, so the hub adopts it (A2)
    assert "[recover] re-attached to running claude" in fake_hub.assignments["0000000a"].log
    rec["proc"].wait(5)
    assert not Path(final["worktree"]).exists()
    wait_for(lambda: host.ctx.state.get("0000000a") is None)  # dropped once the hub had the report


def test_a_host_restarted_under_a_halt_logs_pausing_its_worker_once(make_ctx: Callable[..., Context],
                                                                   start_host: Callable[..., Host],
                                                                   fake_hub: FakeHub, repo: Repo,
                                                                   host_env: dict[str, str], tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    # the first heartbeat (listing the re-attached worker) came before its process was taken over: that pause did
    # nothing but was logged, and the next heartbeat's pause logged "halted; pausing its worker" again
    caplog.set_level(logging.INFO, logger="coordhub.agent")
    fake_hub.dispatched("0000000e")
    fake_hub.paused_assignments = {"0000000e"}  # a halt covering it, standing while the host restarts
    rec = orphan(make_ctx(), repo, host_env, "0000000e", "fake: slow work=60 beat=0.2", tmp_path)
    host = start_host(ctx=make_ctx())
    wait_for(lambda: "0000000e" in host.workers and host.workers["0000000e"].paused)
    seen = len(fake_hub.heartbeats)
    wait_for(lambda: len(fake_hub.heartbeats) >= seen + 3)  # later heartbeats under the same halt log nothing
    said = [r.getMessage() for r in caplog.records if "halted; pausing" in r.getMessage()]
    assert said == ["assignment 0000000e: halted; pausing its worker (SIGSTOP)"], said
    assert fake_hub.heartbeats[0]["running"] == ["0000000e"]  # (the heartbeat before the take-over: the case)
    host.shutdown()
    rec["proc"].wait(30)


def test_a_restarted_host_finishes_a_worker_that_ended_while_it_was_down(make_ctx: Callable[..., Context],
                                                                         start_host: Callable[..., Host],
                                                                         fake_hub: FakeHub, repo: Repo,
                                                                         host_env: dict[str, str],
                                                                         tmp_path: Path) -> None:
    ctx = make_ctx()
    fake_hub.dispatched("0000000b")
    rec = orphan(ctx, repo, host_env, "0000000b", "fake: question", tmp_path)
    assert rec["proc"].wait(30) == 0
    start_host(ctx=make_ctx())
    final = fake_hub.final("0000000b")
    assert final["state"] == "needs_input" and final["reason"].startswith("question:")
    assert fake_hub.registrations[0]["recovered"][0]["action"] == "finish"


def test_an_orphan_the_hub_gave_away_is_killed_and_its_work_saved(make_ctx: Callable[..., Context],
                                                                  start_host: Callable[..., Host],
                                                                  fake_hub: FakeHub, repo: Repo,
                                                                  host_env: dict[str, str], tmp_path: Path) -> None:
    ctx = make_ctx()
    fake_hub.dispatched("0000000c")
    rec = orphan(ctx, repo, host_env, "0000000c", "fake: slow work=60 beat=0.2", tmp_path)
    wait_for(lambda: (Path(rec["worktree"]) / "fake" / "issue-7.txt").exists())
    fake_hub.assignments["0000000c"].attempt = 2  # the hub re-queued it while the host was down
    start_host(ctx=make_ctx())
    assert rec["proc"].wait(30) == 143  # stopped, not left running beside the new attempt
    wait_for(lambda: not Path(rec["worktree"]).exists())
    assert run(repo.path, "git", "log", "-1", "--format=%s", "issue-7-fix-it").startswith(
        "wip: assignment 0000000c attempt 1")
    assert fake_hub.assignments["0000000c"].reports == []  # nothing reported for the dead attempt


def test_strays_no_record_names_are_killed_saved_and_removed(make_ctx: Callable[..., Context],
                                                             start_host: Callable[..., Host], fake_hub: FakeHub,
                                                             repo: Repo, host_env: dict[str, str],
                                                             tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="coordhub.agent")
    ctx = make_ctx()
    fake_hub.dispatched("0000000d")
    rec = orphan(ctx, repo, host_env, "0000000d", "fake: slow work=60 beat=0.2", tmp_path)
    wait_for(lambda: (Path(rec["worktree"]) / "fake" / "issue-7.txt").exists())
    ctx.state.drop("0000000d")  # the host died before it wrote its record
    junk = ctx.worktrees / "not-a-worktree"
    junk.mkdir()
    (junk / "notes.txt").write_text("keep me")
    host = start_host(ctx=make_ctx())
    wait_for(lambda: fake_hub.registrations)
    assert rec["proc"].wait(30) in (143, -9)
    notes = fake_hub.registrations[0]["recovered"]
    actions = sorted(n["action"] for n in notes)
    assert actions == ["killed", "moved", "removed"], notes
    assert not Path(rec["worktree"]).exists()
    assert run(repo.path, "git", "log", "-1", "--format=%s", "issue-7-fix-it").startswith("wip: saved by coordhub")
    moved = list((host.ctx.state.dir / "lost+found").iterdir())
    assert len(moved) == 1 and (moved[0] / "notes.txt").read_text() == "keep me"
    # the log names no assignment for what no record names (it said "recovery: assignment -: moved (…)")
    assert "recovery: moved (" in caplog.text and "assignment -" not in caplog.text


def test_a_merge_gate_the_host_was_killed_during_keeps_its_output_and_is_noted(
        make_ctx: Callable[..., Context], start_host: Callable[..., Host], fake_hub: FakeHub, repo: Repo) -> None:
    """A gate's output was a temporary file in the worktrees directory: a host killed mid-gate (kill -9) left it,
    and the next one moved it to lost+found as a stray that was "not a worktree". It goes beside the workers'
    logs now, only while the gate runs, and a restarted host keeps it and names it, with its last line."""
    from coordhub.orchestrator.merging import MergeRunner
    from tests.orchestrator.merge.test_run_ids import Link

    ctx = make_ctx()
    gate_log = ctx.workers_dir / "gate-c1c2c3c4" / "gate.log"
    runner = MergeRunner(Link(), "m1", lambda: {"app": repo.path}, ctx.worktrees,  # type: ignore[arg-type]
                         {"PATH": "/usr/bin:/bin"}, threading.Event(), lambda: 1, logs=ctx.workers_dir)
    # the gate itself checks where its output goes; after it, nothing is left
    assert runner._gate({"batch_id": "c1c2c3c4", "gate_command": f"echo building; test -f {gate_log}"},
                        repo.path) is None
    assert not gate_log.parent.exists()
    gate_log.parent.mkdir(parents=True)  # what a host killed mid-gate leaves
    gate_log.write_text("building\nstep 3 of 9\n")
    start_host(ctx=ctx)
    wait_for(lambda: fake_hub.registrations)
    notes = [n for n in fake_hub.registrations[0]["recovered"] if n["action"] == "gate_interrupted"]
    kept = gate_log.with_name("gate.interrupted.log")
    assert len(notes) == 1 and "merge run c1c2c3c4: the host ended during its gate" in notes[0]["detail"], notes
    assert str(kept) in notes[0]["detail"] and notes[0]["detail"].endswith("ending: step 3 of 9")
    assert kept.read_text() == "building\nstep 3 of 9\n" and not (ctx.state.dir / "lost+found").exists()


def test_a_second_host_for_the_same_machine_refuses(make_ctx: Callable[..., Context], tmp_path: Path) -> None:
    from coordhub.orchestrator.hoststate import AlreadyRunning

    first = HostState(tmp_path / "host", "m1")
    first.lock()
    with pytest.raises(AlreadyRunning, match="another coord agent for machine 'm1'"):
        HostState(tmp_path / "host", "m1").lock()
    first.unlock()


def test_the_state_file_is_private_and_replaced_atomically(tmp_path: Path) -> None:
    s = HostState(tmp_path / "host", "m1")
    s.put("a", worker_token="secret", phase="running")
    assert oct(s.path.stat().st_mode & 0o777) == "0o600" and oct(s.dir.stat().st_mode & 0o777) == "0o700"
    assert json.loads(s.path.read_text())["workers"]["a"]["worker_token"] == "secret"
    assert HostState(tmp_path / "host", "m1").get("a") == {"worker_token": "secret", "phase": "running"}
    assert [p.name for p in s.dir.iterdir()] == ["workers.json"]


def test_old_logs_of_finished_assignments_are_pruned_at_start(make_ctx: Callable[..., Context],
                                                              start_host: Callable[..., Host],
                                                              fake_hub: FakeHub) -> None:
    ctx = make_ctx()
    old, recent, kept = (ctx.workers_dir / n for n in ("00000001", "00000002", "00000003"))
    for d in (old, recent, kept):
        d.mkdir(parents=True)
        (d / "stream.1.jsonl").write_text("{}\n")
    long_ago = time.time() - 15 * 86400
    for d in (old, kept):
        os.utime(d / "stream.1.jsonl", (long_ago, long_ago))
    ctx.state.put("00000003", phase="parked", attempt=1, payload={})  # a parked assignment keeps its logs
    start_host(ctx=ctx)
    wait_for(lambda: fake_hub.registrations)
    assert not old.exists() and recent.exists() and kept.exists()


def test_a_kept_final_report_the_hub_refuses_as_stale_is_logged_refused_not_delivered(
        make_ctx: Callable[..., Context], fake_hub: FakeHub, repo: Repo, caplog: pytest.LogCaptureFixture) -> None:
    """A final report kept from before a restart that the hub refused as stale was logged "not taken" and then
    "delivered the final report kept from earlier"; the log says it was refused as stale, and the hub's why."""
    ctx = make_ctx()
    fake_hub.dispatched("0000000d", attempt=2)  # the hub moved on to attempt 2
    ctx.state.put("0000000d", phase="finished", attempt=1, pending={"attempt": 1, "state": "done"})
    host = Host(HostConfig(machine="m1", slots=1, repos={"app": repo.path}, poll_wait=0.3), ctx)
    with caplog.at_level(logging.INFO, logger="coordhub.agent"):
        host._deliver_pending()
    assert "delivered" not in caplog.text, caplog.text
    assert ("assignment 0000000d: the final report kept from earlier was refused as stale: attempt 1 is not 2"
            in caplog.text), caplog.text
    assert "0000000d" not in ctx.state.workers()
