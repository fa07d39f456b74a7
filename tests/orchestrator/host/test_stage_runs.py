"""The host's pieces of a stage run, without a hub: verdicts read from a reviewer's result, the smoke runner's
exit codes and timeout, the detached checkout of the branch under test."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from coordhub.core.verdict import from_result, normalize
from coordhub.orchestrator import review, smoke, worktree
from coordhub.orchestrator.worker import Context
from tests.orchestrator.host.conftest import Repo, push_file, run, stop_when
from tests.orchestrator.host.fakehub import FakeHub


def result(text: str | None = None, **extra: object) -> dict[str, object]:
    return {"type": "result", "subtype": "success", "is_error": False, "result": text, **extra}


def test_the_verdict_comes_from_structured_output_or_the_last_json_block() -> None:
    ok = {"verdict": "approve", "summary": "fine", "findings": []}
    assert from_result(result("prose", structured_output=ok))[0] == ok
    text = "first\n```json\n{\"verdict\": \"request_changes\"}\n```\nthen\n```json\n" + json.dumps(ok) + "\n```\n"
    assert from_result(result(text))[0] == ok  # the last block counts
    changes = from_result(result('```json\n{"verdict": "request_changes", "summary": "no test", "findings": []}\n```'))
    assert changes[0] is not None and changes[0]["findings"][0]["message"] == "no test"  # something to fix


def test_no_verdict_is_never_an_approval() -> None:
    assert from_result(None) == (None, "the reviewer ended without a result")
    assert "no ```json block" in from_result(result("Looks good to me, I approve."))[1]
    assert "not JSON" in from_result(result("```json\n{verdict: approve}\n```"))[1]
    assert "'lgtm' is not approve" in from_result(result('```json\n{"verdict": "lgtm"}\n```'))[1]
    assert "not a JSON object" in from_result(result('```json\n["approve"]\n```'))[1]
    failed = from_result({"type": "result", "subtype": "error_max_structured_output_retries", "is_error": True,
                          "errors": ["Failed to provide valid structured output after 3 attempts"]})
    assert failed[0] is None and "error_max_structured_output_retries" in failed[1]
    auth = from_result(result("Not logged in", is_error=True, structured_output={"verdict": "approve"}))
    assert auth[0] is None  # is_error wins over anything else in the result


def test_findings_are_bounded_and_cleaned() -> None:
    got = normalize("request_changes", "x" * 5000, [{"message": "m" * 5000, "line": -1, "severity": "huge"}, "junk",
                                                    {"file": "a.py"}] + [{"message": "n"}] * 100)
    assert got is not None and len(got["summary"]) == 2000 and len(got["findings"]) == 50
    first = got["findings"][0]
    assert (first["line"], first["severity"], len(first["message"])) == (None, "major", 2000)


def test_the_smoke_runner_reports_the_command_s_own_exit_code_and_times_out(tmp_path: Path) -> None:
    stop = threading.Event()
    env = {"PATH": "/usr/bin:/bin"}
    red = smoke.run_command("echo one; echo two >&2; exit 3", tmp_path, env, 10, tmp_path / "a.log", stop)
    assert (red.exit_code, red.killed) == (3, None) and "one" in red.tail and "two" in red.tail
    green = smoke.run_command("true", tmp_path, env, 10, tmp_path / "b.log", stop)
    assert green.exit_code == 0
    slow = smoke.run_command("sleep 30 & sleep 30; echo never", tmp_path, env, 0.5, tmp_path / "c.log", stop, grace=1)
    assert (slow.exit_code, slow.killed) == (124, "timeout") and slow.seconds < 5 and "never" not in slow.tail


def test_a_run_checks_out_the_branch_tip_detached_and_the_reviewer_is_read_only(tmp_path: Path, repo: Repo) -> None:
    tip = push_file(repo, "issue-1", "work")
    owned = tmp_path / "wts"
    sha = worktree.checkout_detached(repo.path, owned / "run-1", "issue-1", owned)
    assert sha == tip and (owned / "run-1" / "x.txt").exists()
    assert run(owned / "run-1", "git", "branch", "--show-current") == ""  # detached: the branch stays free
    p = {"id": "r1", "attempt": 1, "repo": "app", "issue": 1, "branch": "issue-1", "base": "main", "model": "opus",
         "review": {"checklist": ["tests?"], "briefing": "fake: success", "title": "Fix it",
                    "allowed_tools": ["Read", "Bash(git diff *)"], "disallowed_tools": ["Edit", "Write"]}}
    text = review.prompt(p, "+x", "Be careful.")
    assert "- tests?" in text and "+x" in text and "Be careful." in text and "```json" in text
    argv = review.argv("claude", p, "3f0c9a7e-5b1d-4c1e-9a0f-2d7c8e1b4a55")
    assert argv[1:3] == ["-p", "--output-format"] and text not in argv  # the prompt goes on stdin
    assert argv[argv.index("--tools") + 1] == "Read,Grep,Glob,Bash"
    assert argv[argv.index("--disallowedTools") + 1] == "Edit,Write"
    assert json.loads(argv[argv.index("--json-schema") + 1])["required"] == ["verdict", "summary", "findings"]
    try:
        worktree.checkout_detached(repo.path, owned / "run-2", "issue-404", owned)
    except worktree.GitError as exc:
        assert "origin has no branch 'issue-404'" in str(exc)
    else:
        raise AssertionError("a missing branch must be an error")


def test_the_reviewers_claude_md_is_the_committed_file_never_a_link_out_of_the_repository(tmp_path: Path,
                                                                                             repo: Repo) -> None:
    """The branch under review is anyone's writing: a ``CLAUDE.md`` committed as a symbolic link to the host
    user's GitHub credentials must not bring them into the reviewer's prompt (found by a review)."""
    secret = tmp_path / "home" / ".config" / "gh" / "hosts.yml"
    secret.parent.mkdir(parents=True)
    secret.write_text("github.com:\n  oauth_token: gho_SECRET\n")
    owned = tmp_path / "wts"
    for n, (kind, target) in enumerate((("file", "Prefer small functions. \xff"), ("link", str(secret)),
                                        ("link", "../../home/.config/gh/hosts.yml"))):
        branch = f"issue-{n}"
        run(repo.path, "git", "checkout", "-q", "-b", branch, "main")
        md = repo.path / "CLAUDE.md"
        if kind == "file":
            md.write_bytes(target.encode("latin-1"))  # not UTF-8: read with replacement, not a crash
        else:
            md.symlink_to(target)
        run(repo.path, "git", "add", "CLAUDE.md")
        run(repo.path, "git", "commit", "-qm", "docs")
        run(repo.path, "git", "push", "-q", "origin", branch)
        wt = owned / f"run-{n}"
        worktree.checkout_detached(repo.path, wt, branch, owned)
        text = review.committed_text(wt, "CLAUDE.md", review.MAX_CLAUDE_MD_CHARS)
        if kind == "file":
            assert text == "Prefer small functions. \ufffd"
        else:
            assert (wt / "CLAUDE.md").is_file()  # the link resolves on disk: the file system would have read it
            assert text == "", text
    assert review.committed_text(wt, "NOPE.md", 100) == ""


def test_a_reply_nested_too_deep_is_no_verdict_not_a_crash(tmp_path: Path) -> None:
    """A reviewer's reply is text a prompt can steer: a final block of '[' x 100,000 raised RecursionError out of
    the stage run's thread (json raises that, not a ValueError); so did such a line in its stream."""
    deep = "```json\n" + "[" * 100_000 + "\n```"
    verdict, why = from_result(result(deep))
    assert verdict is None and "nested too deep" in why
    stream = tmp_path / "stream.jsonl"
    stream.write_text('{"type": "result", ' + '"a": [' * 100_000 + "\n" + json.dumps(result("ok")) + "\n")
    found = review.final_result(stream)
    assert found is not None and found["result"] == "ok"


def test_a_smoke_test_the_host_stops_is_reported_host_stopped(make_ctx: Callable[..., Context],
                                                              fake_hub: FakeHub) -> None:
    """``coord agent`` stopping ends a smoke test and reports ``error: host_stopped …``, which the hub queues
    again (tests/orchestrator/test_host_departures.py); it reported nothing before, and the hub, finding the
    run when the next agent registered, called it ``host_lost``."""
    from coordhub.orchestrator import runs

    ctx = make_ctx()
    threading.Timer(0.5, ctx.stopping.set).start()
    body = runs.execute(ctx, {"id": "b1b2c3d4", "attempt": 2, "repo": "app", "stage": "test", "branch": "main",
                              "command": "sleep 30", "timeout_seconds": 60})
    assert body is not None and body["state"] == "error" and body["attempt"] == 2
    assert body["reason"] == "host_stopped: the host was stopped while it ran"
    assert [b["state"] for _, b in fake_hub.run_reports] == ["running"]  # the final one is the poller's to send


def test_a_review_the_host_stops_reports_what_its_reviewer_spent(make_ctx: Callable[..., Context]) -> None:
    """A reviewer stopped with the host has no ``result`` line, so no ``total_cost_usd``: its cost is estimated from
    the token usage its stream gave so far, as a worker's is (it was reported 0.0, and lost)."""
    from coordhub.orchestrator import runs

    ctx = make_ctx()
    stream = ctx.workers_dir / "run-b1b2c3d5" / "review.1.jsonl"

    stop_when(lambda: '"name": "Bash"' in (stream.read_text() if stream.exists() else ""), ctx.stopping)
    body = runs.execute(ctx, {"id": "b1b2c3d5", "attempt": 1, "repo": "app", "stage": "review", "branch": "main",
                              "base": "main", "issue": 7, "model": "sonnet", "timeout_seconds": 60,
                              "review": {"briefing": "fake-review: approve step=3"}})
    assert body is not None and body["reason"] == runs.STOPPED
    # two assistant messages (Read, Bash) of 1200 input and 300 output tokens at sonnet's $3 / $15 per million
    assert body["cost_usd"] == pytest.approx(2 * (1200 * 3 + 300 * 15) / 1e6)


def test_the_agent_log_says_why_a_run_reported_error(make_ctx: Callable[..., Context],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """The agent's log said "stage run …: reported error" for a run its stop ended, which the hub queues again:
    the reason is the news (an end-to-end run)."""
    from coordhub.orchestrator import runs

    with caplog.at_level(logging.INFO, logger="coordhub.agent"):
        runs.deliver(make_ctx(), "b1b2c3d4", {"attempt": 1, "state": "error", "reason": runs.STOPPED})
        runs.deliver(make_ctx(), "b1b2c3d5", {"attempt": 1, "state": "done", "exit_code": 0, "reason": None})
    assert "stage run b1b2c3d4: reported error: host_stopped: the host was stopped while it ran" in caplog.text
    assert "stage run b1b2c3d5: reported done\n" in caplog.text + "\n"


def test_the_agent_log_says_a_report_the_hub_refused_as_stale_was_refused(make_ctx: Callable[..., Context],
                                                                          fake_hub: FakeHub,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    """A final report the hub refused as stale (the run is over there) was logged "stage run …: reported done"
    as if taken; the log says it was refused as stale, and the hub's why."""
    from coordhub.orchestrator import runs

    fake_hub.stale_runs.add("b1b2c3d6")
    with caplog.at_level(logging.INFO, logger="coordhub.agent"):
        runs.deliver(make_ctx(), "b1b2c3d6", {"attempt": 3, "state": "done", "exit_code": 0, "reason": None})
    assert "reported" not in caplog.text, caplog.text
    assert ("stage run b1b2c3d6: done report refused as stale (the run is over on the hub): stage run b1b2c3d6 "
            "attempt 3 is over" in caplog.text), caplog.text
    assert fake_hub.run_reports == []
