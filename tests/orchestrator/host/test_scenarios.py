"""Each scenario of the fake ``claude`` → the state and reason the worker reports (issue 11 point 6).

Real parts: the fake CLI as a process in its own group, real git worktrees of
a repository with a bare ``origin``; the hub's host endpoints are the
in-process :class:`FakeHub`, which records every report.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from coordhub.orchestrator.dispatch import Dispatch
from coordhub.orchestrator.outcome import Verdict
from coordhub.orchestrator.worker import Context, Limits, Worker, work
from tests.orchestrator.host.conftest import FAST, Repo, payload, run
from tests.orchestrator.host.fakehub import FakeHub


def test_success_is_done_pushed_and_cleaned(run_worker: Callable[..., Worker], fake_hub: FakeHub, repo: Repo) -> None:
    w = run_worker(briefing="Fix the parser.")
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "done", final
    assert final["reason"].startswith("completed: 1 commit(s)")
    assert final["pushed"] is True and final["branch"] == "issue-7-fix-it"
    assert "issue-7-fix-it" in repo.remote_branches()
    assert repo.log("issue-7-fix-it")[0].startswith("issue work (success")
    assert not Path(final["worktree"]).exists()  # cleaned
    t = final["telemetry"]
    assert t["session_id"] == w.session_id and t["turns"] >= 4 and t["cost_usd"] > 0
    assert t["result"] == {"is_error": False, "subtype": "success", "terminal_reason": "completed"}
    assert t["model"].startswith("claude-sonnet")
    states = [r.get("state") for r in fake_hub.assignments["a1b2c3d4"].reports]
    assert states[0] == "running" and states[-1] == "done"
    log = fake_hub.assignments["a1b2c3d4"].log
    for tag in ("[start]", "[init]", "[status] reading", "[tool] Write", "[tool] Bash", "[result] completed",
                "[end] done"):
        assert tag in log, log
    assert w.ctx.state.get("a1b2c3d4") is None  # nothing left in the host's state file


def test_stuck_line_in_a_text_block_is_stuck_with_work_kept(run_worker: Callable[..., Worker],
                                                            fake_hub: FakeHub, repo: Repo) -> None:
    w = run_worker(briefing="fake: stuck")
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "stuck"
    assert final["reason"] == "STUCK: the config loader this issue names does not exist"
    assert final["wip_commit"] and final["pushed"] is True  # the uncommitted edit became a wip commit, on origin
    assert repo.log("issue-7-fix-it")[0].startswith("wip: assignment a1b2c3d4 attempt 1 (STUCK)")
    wt = Path(final["worktree"])
    assert wt.is_dir()  # parked for resume-stuck
    rec = w.ctx.state.get("a1b2c3d4")
    assert rec is not None and rec["phase"] == "parked" and rec["session_id"] == w.session_id
    assert "[stuck] the config loader" in fake_hub.assignments["a1b2c3d4"].log


def test_a_final_question_is_needs_input(run_worker: Callable[..., Worker], fake_hub: FakeHub) -> None:
    run_worker(briefing="fake: question")
    final = fake_hub.final("a1b2c3d4")
    assert (final["state"], final["reason"]) == ("needs_input", "question: Should I also update the documentation?")


def test_no_commit_is_not_done_and_the_work_is_saved(run_worker: Callable[..., Worker], fake_hub: FakeHub,
                                                     repo: Repo) -> None:
    run_worker(briefing="fake: no_commit")
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "stuck" and final["reason"].startswith("no_commit")
    sha = final["wip_commit"]
    assert sha
    files = (repo.path / ".git").parent
    assert "fake/issue-7.txt" in run(files, "git", "show", "--name-only", "--format=", sha)


def test_permission_denial_is_stuck(run_worker: Callable[..., Worker], fake_hub: FakeHub) -> None:
    run_worker(briefing="fake: denied", permission_mode="default", allowed_tools=["Read", "Bash"])
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "stuck"
    assert final["reason"].startswith("permission_denied: Write ") and final["reason"].endswith("fake/issue-7.txt")
    assert final["telemetry"]["permission_denials"][0]["tool_name"] == "Write"


def test_max_turns_is_stuck(run_worker: Callable[..., Worker], fake_hub: FakeHub) -> None:
    w = run_worker(briefing="fake: max_turns", max_turns=3)
    assert "--max-turns" in w.argv(Path("s.json"))
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "stuck"
    assert final["reason"].startswith("max_turns: Reached maximum number of turns (3)")


def test_budget_exhausted_by_the_cli_is_failed(run_worker: Callable[..., Worker], fake_hub: FakeHub) -> None:
    w = run_worker(briefing="fake: budget cost=0.02", budget_usd=0.05)
    argv = w.argv(Path("s.json"))
    assert argv[argv.index("--max-budget-usd") + 1] == "0.05"
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "failed" and final["reason"].startswith("budget_exhausted: $0.06")


def test_overspending_past_the_cli_budget_is_killed_by_the_host(run_worker: Callable[..., Worker],
                                                                fake_hub: FakeHub) -> None:
    w = run_worker(briefing="fake: overspend step=0.02", budget_usd=0.05)
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "failed"
    assert re.fullmatch(r"budget: estimated cost \$0\.0\d over the \$0\.05 budget", final["reason"]), final
    assert w.exit_code == 143  # SIGTERM, handled by the CLI


def test_rate_limit_events_are_reported_and_the_run_completes(run_worker: Callable[..., Worker],
                                                              fake_hub: FakeHub) -> None:
    before = time.time()
    w = run_worker(briefing="fake: rate_limit reset=120")
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "done"
    log = fake_hub.assignments["a1b2c3d4"].log
    assert "[rate_limit] rejected until" in log and "[retry] API error 429 (attempt 3/10)" in log
    assert "[rate_limit] allowed" in log
    # the last rate_limit_event allowed again: the final telemetry carries no pause
    assert "rate_limited_until" not in final["telemetry"]
    assert w.telemetry.rate_limit_rejections == 1 and w.telemetry.api_retries_429 == 3
    # but the hub heard of the pause while it lasted (reported at once, not at the next telemetry tick)
    pauses = [t["rate_limited_until"] for t in fake_hub.telemetry("a1b2c3d4") if "rate_limited_until" in t]
    assert pauses and before + 115 < pauses[0] < time.time() + 121


def test_auth_failure_that_looks_like_success_is_failed(run_worker: Callable[..., Worker], fake_hub: FakeHub) -> None:
    run_worker(briefing="fake: auth")
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "failed"
    assert final["reason"] == "auth: Not logged in · Please run /login"
    assert final["telemetry"]["result"] == {"is_error": True, "subtype": "success", "terminal_reason": "api_error"}


def test_a_crash_without_result_is_failed_with_stderr(run_worker: Callable[..., Worker], fake_hub: FakeHub) -> None:
    run_worker(briefing="fake: crash")
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "failed"
    assert final["reason"] == "no_result: claude exited 1 without a result: Error: Request failed: socket hang up"


def test_first_output_watchdog(make_ctx: Callable[..., Context], run_worker: Callable[..., Worker],
                               fake_hub: FakeHub) -> None:
    ctx = make_ctx(Limits(**{**FAST.__dict__, "first_output": 1.0}))
    w = run_worker(ctx, briefing="fake: hang_start")
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "failed" and final["reason"].startswith("first_output: no output in 1 s")
    assert w.exit_code == 143


def test_output_silence_watchdog_kills_the_whole_process_group(make_ctx: Callable[..., Context],
                                                               run_worker: Callable[..., Worker], fake_hub: FakeHub,
                                                               host_env: dict[str, str]) -> None:
    ctx = make_ctx(Limits(**{**FAST.__dict__, "silence": 1.0}))
    w = run_worker(ctx, briefing="fake: hang_mid child=1")
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "failed" and final["reason"].startswith("silence: no output for 1 s")
    child = int((Path(host_env["CLAUDE_CONFIG_DIR"]) / "pids" / f"{w.session_id}.txt").read_text())
    assert not _alive(child)  # the tool's own process went with claude


def test_tool_progress_heartbeats_keep_a_long_tool_alive(make_ctx: Callable[..., Context],
                                                        run_worker: Callable[..., Worker], fake_hub: FakeHub) -> None:
    ctx = make_ctx(Limits(**{**FAST.__dict__, "silence": 1.0}))
    run_worker(ctx, briefing="fake: slow work=2.5 beat=0.3")
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "done", final


def test_linger_after_result_is_killed_and_judged_by_its_result(make_ctx: Callable[..., Context],
                                                                run_worker: Callable[..., Worker],
                                                                fake_hub: FakeHub) -> None:
    ctx = make_ctx(Limits(**{**FAST.__dict__, "linger": 0.5}))
    w = run_worker(ctx, briefing="fake: hang_after_result")
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "done" and final["pushed"] is True
    assert "(killed 1 s after its result)" in final["reason"] or "(killed 0 s after its result)" in final["reason"]
    assert w.exit_code == 143


def test_wall_clock_limit_from_the_payload(run_worker: Callable[..., Worker], fake_hub: FakeHub) -> None:
    run_worker(briefing="fake: slow work=20 beat=0.2", wall_clock_seconds=1)
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "failed" and final["reason"].startswith("wall_clock: ran 1 s, over the 1 s limit")
    assert final["wip_commit"]  # the edit it had made was kept


def test_a_huge_line_is_skipped_and_bounded(run_worker: Callable[..., Worker], fake_hub: FakeHub) -> None:
    w = run_worker(briefing="fake: huge")
    assert fake_hub.final("a1b2c3d4")["state"] == "done"
    assert w.telemetry.oversized_lines == 1
    assert "[skip] a line over 1048576 bytes" in fake_hub.assignments["a1b2c3d4"].log


def test_cancel_stops_with_sigterm_and_reports_no_state(run_worker: Callable[..., Worker], fake_hub: FakeHub,
                                                        repo: Repo) -> None:
    w = run_worker(wait=False, briefing="fake: slow work=30 beat=0.2")
    _wait_for(lambda: w.telemetry.tool_progress > 0)
    w.cancel()
    assert w.finished.wait(20)
    final = fake_hub.final("a1b2c3d4")
    assert "state" not in final and final["reason"] == "cancelled: stopped on the hub's request"
    assert w.exit_code == 143
    assert final["wip_commit"] and not Path(final["worktree"]).exists()
    # the save is on origin's branch, where a retry on another machine starts (it stayed in this clone only)
    assert final["pushed"] is True and run(repo.origin, "git", "rev-parse", "issue-7-fix-it") == final["wip_commit"]


def test_a_stop_that_races_the_end_of_the_run_is_said_in_the_log(run_worker: Callable[..., Worker],
                                                                   fake_hub: FakeHub) -> None:
    """``coord stop`` as the worker finished: the hub takes the done report and keeps the cancel, but the log ended
    "[end] done: … branch pushed" beside a cancelled assignment (seed-003 user run); it now says which stands."""
    w = run_worker(wait=False, briefing="fake: slow work=0.5 beat=0.1")
    _wait_for(lambda: w.telemetry.tool_progress > 0)
    fake_hub.assignments["a1b2c3d4"].state = "cancelled"  # stopped on the hub; the host has not heard yet
    assert w.finished.wait(30)
    assert fake_hub.final("a1b2c3d4")["state"] == "done" and fake_hub.assignments["a1b2c3d4"].state == "cancelled"
    log = fake_hub.assignments["a1b2c3d4"].log
    assert log.index("[end] done: completed") < log.index(
        "[end] reported done after the stop; the assignment stays cancelled"), log


def test_a_saved_run_is_never_pushed_over_a_branch_that_moved(make_ctx: Callable[..., Context], repo: Repo,
                                                              tmp_path: Path) -> None:
    """The save of a run that is not done goes to origin fast-forward only: when someone pushed to the branch
    meanwhile, their commit stays and the save stays on this machine, as the reason says."""
    ctx = make_ctx()
    d = Dispatch.parse(payload())
    wt = work.open_worktree(ctx, d, repo.path)
    (wt.path / "half.txt").write_text("half done")
    other = tmp_path / "other"
    run(tmp_path, "git", "clone", "-q", str(repo.origin), str(other))
    run(other, "git", "checkout", "-q", "-b", d.branch)
    run(other, "git", "-c", "user.email=o@o", "-c", "user.name=o", "commit", "-q", "--allow-empty", "-m", "theirs")
    run(other, "git", "push", "-q", "origin", d.branch)
    saved = work.save(wt, d, Verdict("failed", "wall_clock: 60 s"), False, "m1")
    assert saved.wip and not saved.pushed and not wt.path.exists()
    assert saved.verdict.reason.startswith("wall_clock: 60 s (its work is saved on m1's branch only, not pushed: ")
    assert repo.log(d.branch) == ["theirs", "init"]
    assert run(repo.path, "git", "rev-parse", d.branch) == saved.wip


def test_halt_pauses_with_sigstop_and_the_watchdogs_wait(make_ctx: Callable[..., Context],
                                                         run_worker: Callable[..., Worker], fake_hub: FakeHub) -> None:
    ctx = make_ctx(Limits(**{**FAST.__dict__, "silence": 1.0}))
    w = run_worker(ctx, wait=False, briefing="fake: slow work=1.5 beat=0.2")
    _wait_for(lambda: w.telemetry.tool_progress > 0)
    w.pause()
    assert w.pid is not None
    _wait_for(lambda: _state(w.pid) == "T")  # type: ignore[arg-type]
    time.sleep(2.0)  # longer than the silence limit: a paused worker does not age
    assert not w.finished.is_set() and w.kill_reason is None
    w.unpause()
    assert w.finished.wait(30)
    assert fake_hub.final("a1b2c3d4")["state"] == "done"
    assert "[halt] paused (SIGSTOP)" in fake_hub.assignments["a1b2c3d4"].log


def test_missing_claude_is_a_clear_failure(make_ctx: Callable[..., Context], run_worker: Callable[..., Worker],
                                           fake_hub: FakeHub, tmp_path: Path) -> None:
    run_worker(make_ctx(claude="no-such-claude"))
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "failed"
    assert final["reason"].startswith("claude_missing: 'no-such-claude' is not found on the worker's PATH on m1")
    assert not (tmp_path / "host" / "worktrees" / "a1b2c3d4").exists()


def test_unknown_repo_is_a_clear_failure(run_worker: Callable[..., Worker], fake_hub: FakeHub) -> None:
    run_worker(repo="nope")
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "failed"
    assert final["reason"] == "unknown_repo: machine m1 has no path for repo 'nope' (it serves app)"


def test_environment_is_scrubbed_and_carries_the_worker_identity(run_worker: Callable[..., Worker],
                                                                 fake_hub: FakeHub, host_env: dict[str, str]) -> None:
    w = run_worker(worker_token="worker-token-xyz")
    dump = json.loads((Path(host_env["CLAUDE_CONFIG_DIR"]) / "env" / f"{w.session_id}.json").read_text())
    env = dump["env"]
    for gone in ("CLAUDECODE", "CLAUDE_CODE_SESSION_ID", "CLAUDE_CODE_MESSAGING_SOCKET", "COORD_DATA_DIR",
                 "SECRET_OF_THE_HOST"):
        assert gone not in env, gone
    assert env["COORD_TOKEN"] == "worker-token-xyz"  # the worker's own, never the host's
    assert env["COORD_SESSION"] == "m1/worker-a1b2c3d4" and env["COORD_PROJECT"] == "app"
    assert env["CLAUDE_CONFIG_DIR"] == host_env["CLAUDE_CONFIG_DIR"] and env["HOME"] == host_env["HOME"]
    assert env["DISABLE_AUTOUPDATER"] == "1"
    # its own session and process group, in the worktree
    assert dump["sid"] == dump["pid"] and dump["pgid"] == dump["pid"]
    assert dump["cwd"].endswith("/worktrees/a1b2c3d4")
    argv = dump["argv"]
    assert argv[:2] == ["-p", "--output-format"]  # the prompt went on stdin: others on the machine read argv
    assert dump["prompt"] == "Issue #7 of app.\n\nFix it.\n"
    assert argv[argv.index("--session-id") + 1] == w.session_id
    assert argv[argv.index("--disallowedTools") + 1].startswith("AskUserQuestion")
    settings = json.loads(Path(argv[argv.index("--settings") + 1]).read_text())
    assert "coord-hook" in settings["hooks"]["PreToolUse"][0]["hooks"][0]["command"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return _state(pid) not in ("Z", "X", None)


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()[0]


def _wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_a_report_the_hub_cannot_take_does_not_kill_the_worker(run_worker: Callable[..., Worker],
                                                               fake_hub: FakeHub) -> None:
    fake_hub.refuse_telemetry = True
    w = run_worker(briefing="fake: success")
    final = fake_hub.final("a1b2c3d4")
    assert w.kill_reason is None
    # sent again without what was refused (the telemetry), never without what the hub acts on (pushed)
    assert final == {"attempt": 1, "state": "done", "reason": final["reason"], "pushed": True,
                     "branch": "issue-7-fix-it", "worktree": final["worktree"]}
    assert final["reason"].startswith("completed: 1 commit(s)")


def test_the_files_named_in_the_system_prompt_stay_under_one_argument_s_limit() -> None:
    # An assignment queued by a hub before the 16 KiB bound may carry 200 names of 1,000 characters: listed whole,
    # they made --append-system-prompt a 200 KiB argument and every attempt failed to start (E2BIG, 128 KiB).
    from coordhub.orchestrator.dispatch import Dispatch
    from coordhub.orchestrator.worker.process import system_prompt

    files = tuple(f"src/{i:03d}/" + "x" * 990 for i in range(200))
    d = Dispatch(id="a1", attempt=1, repo="api", issue=1, branch="issue-1", briefing="", worker_session="m/w",
                 files_likely=files)
    text = system_prompt(d)
    assert len(text.encode()) < 20_000
    shown = text.count("src/")
    assert 10 < shown < 200 and f"and {200 - shown} more" in text
    assert files[0] in text and files[shown - 1] in text
    small = Dispatch(id="a1", attempt=1, repo="api", issue=1, branch="issue-1", briefing="", worker_session="m/w",
                     files_likely=("a.py", "b.py"))
    assert "Files leased for you: a.py, b.py." in system_prompt(small)


def test_a_first_attempt_on_a_branch_origin_already_has_says_it_continues_it(run_worker: Callable[..., Worker],
                                                                             fake_hub: FakeHub, repo: Repo) -> None:
    """A team moving from seed 003 has its ``issue-N-*`` branches on origin. Seed 003 refused to dispatch such an
    issue (a pushed branch claimed it for good); here the first attempt continues the branch, never losing it,
    but the log said only "on issue-7-fix-it", as for a new branch (seed-003 user run): now it says so."""
    run(repo.path, "git", "checkout", "-q", "-b", "issue-7-fix-it")
    (repo.path / "old.txt").write_text("seed-era work\n")
    run(repo.path, "git", "add", "old.txt")
    run(repo.path, "git", "commit", "-q", "-m", "seed-era work")
    run(repo.path, "git", "push", "-q", "origin", "issue-7-fix-it")
    run(repo.path, "git", "checkout", "-q", "main")
    run(repo.path, "git", "branch", "-q", "-D", "issue-7-fix-it")
    run_worker(briefing="Fix it.")
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "done" and repo.log("issue-7-fix-it")[1] == "seed-era work", final
    start = [line for line in fake_hub.assignments["a1b2c3d4"].log.splitlines() if "[start]" in line]
    assert len(start) == 1 and start[0].endswith(
        "on issue-7-fix-it (continuing the branch as origin has it: 1 commit(s) not on origin/main)"), start


def test_a_first_attempt_on_a_new_branch_says_nothing_more(run_worker: Callable[..., Worker],
                                                          fake_hub: FakeHub) -> None:
    run_worker(briefing="Fix it.")
    start = [line for line in fake_hub.assignments["a1b2c3d4"].log.splitlines() if "[start]" in line]
    assert len(start) == 1 and start[0].endswith(" on issue-7-fix-it"), start
