"""The incremental stream-json parser on recorded lines (shapes from research orchestrator.md §2).

Lines are written as the CLI prints them: one content block per line repeating
``message.id``, ``result`` last. Seed 003 lost a ``STUCK:`` said inside an
assistant text block; these tests would fail if the parser did.
"""

from __future__ import annotations

import json
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from coordhub.orchestrator.streamjson import Parser, Telemetry, ends_with_question

SID = "3f0c9a7e-5b1d-4c1e-9a0f-2d7c8e1b4a55"
INIT = {"type": "system", "subtype": "init", "cwd": "/wt/issue-42", "session_id": SID,
        "tools": ["Bash", "Read", "Edit"], "mcp_servers": [], "model": "claude-sonnet-4-5-20250929",
        "permissionMode": "acceptEdits", "apiKeySource": "none", "claude_code_version": "2.1.200", "uuid": "9e04"}


def block(mid: str, content: dict[str, Any], parent: str | None = None, usage: dict[str, int] | None = None
          ) -> dict[str, Any]:
    return {"type": "assistant", "parent_tool_use_id": parent, "session_id": SID,
            "message": {"id": mid, "model": "claude-sonnet-4-5-20250929", "role": "assistant", "content": [content],
                        "usage": usage or {"input_tokens": 1000, "output_tokens": 100}}}


RESULT = {"type": "result", "subtype": "success", "is_error": False, "duration_ms": 184233, "num_turns": 23,
          "result": "Fixed expiry check; tests pass.", "stop_reason": "end_turn", "session_id": SID,
          "total_cost_usd": 1.8342, "usage": {}, "permission_denials": [], "terminal_reason": "completed"}

RUN = [
    INIT,
    block("msg_1", {"type": "text", "text": "STATUS: reading the middleware"}),
    block("msg_1", {"type": "tool_use", "id": "t1", "name": "Read", "input": {"file_path": "/wt/auth/mw.py"}}),
    {"type": "user", "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                                               "content": "STUCK: this is file content"}]}},
    block("msg_2", {"type": "tool_use", "id": "t2", "name": "Edit", "input": {"file_path": "/wt/auth/mw.py",
                                                                             "old_string": "a", "new_string": "b"}}),
    {"type": "tool_progress", "tool_use_id": "t3", "tool_name": "Bash", "elapsed_time_seconds": 30, "heartbeat": True},
    block("msg_3", {"type": "text", "text": "Tried twice.\n**STUCK:** the token store has no expiry field"}),
    RESULT,
]


def lines(events: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


def test_a_whole_run_gives_telemetry_and_the_human_log() -> None:
    p = Parser()
    out = p.feed(lines(RUN))
    t = p.telemetry
    assert (t.session_id, t.model, t.claude_version) == (SID, "claude-sonnet-4-5-20250929", "2.1.200")
    assert t.turns == 23 and t.cost_usd == 1.8342 and not t.cost_estimated  # the result's figures win
    assert (t.last_tool, t.last_file) == ("Edit", "/wt/auth/mw.py")
    assert t.status_line == "reading the middleware"
    assert t.stuck == "the token store has no expiry field"  # from an assistant text block, markdown and all
    assert t.tool_progress == 1
    assert t.result is not None and t.result.compact() == {"is_error": False, "subtype": "success",
                                                             "terminal_reason": "completed"}
    assert out == ["[init] claude-sonnet-4-5-20250929 session 3f0c9a7e (claude 2.1.200)",
                   "[status] reading the middleware", "[tool] Read /wt/auth/mw.py", "[tool] Edit /wt/auth/mw.py",
                   "[stuck] the token store has no expiry field", "[result] completed in 3m 4s, 23 turns, $1.83"]


def test_stuck_in_tool_output_is_not_the_worker_speaking() -> None:
    p = Parser()
    p.feed(lines(RUN[:4]))
    assert p.telemetry.stuck is None


def test_one_turn_per_message_not_per_line_and_subagents_apart() -> None:
    p = Parser()
    p.feed(lines([INIT, block("m1", {"type": "text", "text": "a"}), block("m1", {"type": "tool_use", "id": "x",
                                                                               "name": "Bash", "input": {}}),
                   block("m2", {"type": "text", "text": "b"}),
                   block("s1", {"type": "text", "text": "STUCK: subagent noise"}, parent="toolu_9")]))
    assert p.telemetry.turns == 2
    assert p.telemetry.stuck is None  # a subagent's text is not the worker's verdict


def test_partial_lines_in_any_chunking_give_the_same_result() -> None:
    data = lines(RUN)
    whole = Parser()
    expected = whole.feed(data)
    for size in (1, 7, 64, 1000):
        p = Parser()
        out: list[str] = []
        for i in range(0, len(data), size):
            out += p.feed(data[i:i + size])
        assert out == expected and p.telemetry.snapshot() == whole.telemetry.snapshot()


def test_a_last_line_without_newline_is_parsed_at_close() -> None:
    p = Parser()
    p.feed(lines([INIT]) + json.dumps(RESULT).encode())
    assert p.telemetry.result is None
    assert p.close()[-1].startswith("[result] completed")


def test_huge_lines_are_skipped_without_being_buffered() -> None:
    p = Parser(max_line=1000)
    big = json.dumps({"type": "user", "message": {"content": "x" * 5000}}).encode()
    out = p.feed(lines([INIT]) + big[:600])
    out += p.feed(big[600:3000])
    assert len(p._buf) <= 1000  # bounded while the huge line goes by
    out += p.feed(big[3000:] + b"\n" + lines([RESULT]))
    assert p.telemetry.oversized_lines == 1
    assert "[skip] a line over 1000 bytes" in out and out[-1].startswith("[result]")


def test_plain_text_lines_are_scanned_too() -> None:
    p = Parser()
    out = p.feed(b"STATUS: 2 of 3 tests fixed\nsome other output\n  STUCK: cannot reach the database\n")
    assert p.telemetry.status_line == "2 of 3 tests fixed" and p.telemetry.stuck == "cannot reach the database"
    assert out == ["[status] 2 of 3 tests fixed", "[text] some other output", "[stuck] cannot reach the database"]


def test_auth_failure_looks_like_success_but_is_an_error() -> None:
    p = Parser()
    p.feed(lines([INIT, {"type": "result", "subtype": "success", "is_error": True, "terminal_reason": "api_error",
                         "api_error_status": 401, "result": "Not logged in · Please run /login", "num_turns": 0,
                         "total_cost_usd": 0}]))
    r = p.telemetry.result
    assert r is not None and r.is_error and r.subtype == "success" and r.api_error_status == 401


def test_error_results_carry_errors() -> None:
    p = Parser()
    out = p.feed(lines([{"type": "result", "subtype": "error_max_turns", "is_error": True, "num_turns": 3,
                         "terminal_reason": "max_turns", "errors": ["Reached maximum number of turns (3)"],
                         "total_cost_usd": 0.2}]))
    assert out == ["[result] error max_turns, 3 turns, $0.20: Reached maximum number of turns (3)"]


def test_rate_limits_and_retries() -> None:
    now = 1_800_000_000.0
    p = Parser(now=lambda: now)
    rejected = {"type": "rate_limit_event", "rate_limit_info": {"status": "rejected", "resetsAt": 1_800_000_600}}
    out = p.feed(lines([rejected, rejected]))
    assert p.telemetry.rate_limited_until == 1_800_000_600 and p.telemetry.rate_limit_rejections == 2
    assert out == ["[rate_limit] rejected until 08:10:00Z"]  # one line per change of status
    p.feed(lines([{"type": "rate_limit_event", "rate_limit_info": {"status": "allowed", "resetsAt": 0}}]))
    assert p.telemetry.rate_limited_until is None
    retry = {"type": "system", "subtype": "api_retry", "attempt": 1, "max_retries": 10, "retry_delay_ms": 2000,
             "error_status": 429, "error": "rate_limit"}
    p.feed(lines([retry, retry]))
    assert p.telemetry.rate_limited_until is None  # two retries are not yet a storm
    out = p.feed(lines([retry]))
    assert p.telemetry.api_retries_429 == 3 and p.telemetry.rate_limited_until == now + 60
    assert out == ["[retry] API error 429 (attempt 1/10), retrying in 2s"]


def test_resets_at_in_milliseconds() -> None:
    p = Parser()
    p.feed(lines([{"type": "rate_limit_event", "rate_limit_info": {"status": "rejected",
                                                                    "resetsAt": 1_800_000_600_000}}]))
    assert p.telemetry.rate_limited_until == 1_800_000_600


def test_permission_denials_from_events_and_the_result() -> None:
    p = Parser()
    p.feed(lines([{"type": "system", "subtype": "permission_denied", "tool_name": "Bash",
                   "tool_input": {"command": "rm -rf build"}},
                  {**RESULT, "permission_denials": [{"tool_name": "Edit", "tool_use_id": "t9",
                                                      "tool_input": {"file_path": "/wt/a.py"}},
                                                     {"tool_name": "Bash", "tool_use_id": "t8",
                                                      "tool_input": {"command": "rm -rf build"}}]}]))
    assert p.telemetry.permission_denials == [{"tool_name": "Bash", "target": "rm -rf build"},
                                              {"tool_name": "Edit", "target": "/wt/a.py"}]


def test_cost_is_estimated_from_usage_until_the_result() -> None:
    p = Parser()
    p.feed(lines([INIT, block("m1", {"type": "text", "text": "a"}, usage={"input_tokens": 1_000_000,
                                                                         "output_tokens": 100_000}),
                  block("m1", {"type": "text", "text": "b"})]))  # same message: counted once
    assert p.telemetry.cost_estimated and round(p.telemetry.cost_usd, 4) == 3.0 + 1.5
    p.feed(lines([RESULT]))
    assert not p.telemetry.cost_estimated and p.telemetry.cost_usd == 1.8342


def test_unknown_types_and_garbage_are_tolerated() -> None:
    p = Parser()
    out = p.feed(b'{"type":"stream_event","event":{}}\n{"type":"system","subtype":"hook_started"}\n{not json\n'
                 b'[1,2]\n\n{"type":"assistant","message":"not an object"}\n')
    assert out == ["[text] {not json", "[text] [1,2]"]
    assert p.telemetry.events == 3


def test_snapshot_and_restore_continue_where_they_were() -> None:
    p = Parser()
    p.feed(lines(RUN[:5]))
    again = Parser(Telemetry.restore(json.loads(json.dumps(p.telemetry.snapshot()))))
    again.feed(lines(RUN[5:]))
    assert again.telemetry.stuck == "the token store has no expiry field" and again.telemetry.result is not None


def test_question_detection() -> None:
    assert ends_with_question("I fixed it.\nShould I also update the docs?\n\n") == "Should I also update the docs?"
    assert ends_with_question("Which one do you want? A or B.") is None
    assert ends_with_question("**Do you want me to push?**") == "**Do you want me to push?"
    assert ends_with_question(None) is None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(min_value=1, max_value=50), max_size=40))
def test_any_bytes_in_any_chunks_never_raise_and_stay_bounded(data: bytes, cuts: list[int]) -> None:
    p = Parser(max_line=256)
    i = 0
    for c in cuts:
        p.feed(data[i:i + c])
        assert len(p._buf) <= 256
        i += c
    p.feed(data[i:])
    p.close()


def test_a_line_nested_too_deep_is_plain_text_not_a_crash() -> None:
    """json raises RecursionError, not ValueError, for '{"a":' x 100,000: the parser's thread died on it."""
    parser = Parser()
    parser.line(b'{"a":' * 100_000)
    assert parser.telemetry.lines == 1 and parser.telemetry.events == 0


def test_numbers_no_cli_prints_are_ignored_not_a_crash() -> None:
    """Python's json takes Infinity, NaN and integers of any size, which the CLI (JavaScript) never prints; a
    worker that writes its own lines into its output (any process of the same user can) made the parser raise,
    and the worker's supervision ended in host_error with claude's process group never reaped."""
    events = [
        '{"type":"assistant","message":{"id":"m1","usage":{"input_tokens":Infinity,"output_tokens":NaN}}}',
        '{"type":"assistant","message":{"id":"m2","usage":{"input_tokens":1' + "0" * 400 + '}}}',
        '{"type":"system","subtype":"api_retry","error_status":429,"retry_delay_ms":1' + "0" * 400 + '}',
        '{"type":"system","subtype":"api_retry","error_status":429,"retry_delay_ms":Infinity}',
        '{"type":"system","subtype":"api_retry","error_status":429,"retry_delay_ms":NaN}',
        '{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":NaN}}',
        '{"type":"rate_limit_event","rate_limit_info":{"status":"allowed"}}',
        '{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1e300}}',
        '{"type":"rate_limit_event","rate_limit_info":{"status":"allowed"}}',
        '{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1' + "0" * 400 + '}}',
        '{"type":"result","subtype":"success","is_error":false,"total_cost_usd":Infinity,"duration_ms":1'
        + "0" * 400 + ',"num_turns":3}',
    ]
    for text in events:
        parser = Parser()
        parser.feed(text.encode() + b"\n")
        t = parser.telemetry
        json.dumps(t.compact(), allow_nan=False)  # what the hub is sent stays valid JSON
        assert t.rate_limited_until is None or t.rate_limited_until < 253402300800  # before the year 10000


def test_terminal_control_characters_never_reach_the_log_or_the_telemetry(tmp_path: Any) -> None:
    """The human log is relayed to the hub and printed as it is by `coord log -f`, and the telemetry shows in
    `coord status`: an escape sequence in a worker's text (an OSC 52 clipboard write, a cursor move that hides
    a line) would reach the operator's terminal."""
    from coordhub.orchestrator.worker.reports import HumanLog

    esc = "\x1b]52;c;ZXZpbA==\x07\x1b[1A\x1b[2K\x9b31m\x7f"
    parser = Parser()
    out = parser.feed(lines([
        {**INIT, "model": f"opus{esc}"},
        block("m1", {"type": "text", "text": f"STATUS: fine{esc}\nSTUCK: really{esc}"}),
        block("m2", {"type": "tool_use", "id": "t", "name": f"Bash{esc}", "input": {"command": f"ls {esc}",
                                                                                  "file_path": f"/a{esc}"}}),
        {**block("m3", {"type": "text", "text": "x"}), "error": f"oops{esc}"},
        {"type": "user", "message": {"content": [{"type": "tool_result", "is_error": True,
                                                  "content": f"failed{esc}"}]}},
    ]) + f"a plain line {esc}\n".encode())
    log = HumanLog(tmp_path / "human.log")
    log.write([*out, f"[end] failed: {esc}"])
    written = (tmp_path / "human.log").read_text()
    t = parser.telemetry.compact()
    shown = [written, *(v for v in t.values() if isinstance(v, str)), parser.telemetry.stuck or ""]
    for text in shown:
        assert not any(ord(c) < 32 and c != "\n" or 0x7f <= ord(c) <= 0x9f for c in text), repr(text)
    assert "STATUS" not in written and "[status] fine" in written and "[stuck] really" in written


def test_a_worker_that_prints_infinity_still_ends_done(run_worker: Any, fake_hub: Any, make_ctx: Any,
                                                       tmp_path: Any) -> None:
    """End to end: the line above ended a worker that committed and finished as failed (host_error:
    OverflowError), its branch never pushed."""
    stub = tmp_path / "bin-inf" / "claude"
    stub.parent.mkdir()
    init = {"type": "system", "subtype": "init", "session_id": SID, "model": "opus"}
    bad = '{"type":"assistant","message":{"id":"m1","usage":{"input_tokens":Infinity}}}'
    res = {"type": "result", "subtype": "success", "is_error": False, "result": "ok", "num_turns": 1}
    stub.write_text("#!/bin/sh\ncat >/dev/null\n"
                    f"echo '{json.dumps(init)}'\necho '{bad}'\ngit commit -q --allow-empty -m work\n"
                    f"echo '{json.dumps(res)}'\n")
    stub.chmod(0o755)
    run_worker(ctx=make_ctx(claude=str(stub)))
    final = fake_hub.final("a1b2c3d4")
    assert (final["state"], final["pushed"]) == ("done", True), final


def test_a_host_error_kills_a_claude_that_ignores_sigterm(run_worker: Any, fake_hub: Any, make_ctx: Any,
                                                         tmp_path: Any, monkeypatch: Any) -> None:
    """A failure of the host's own ends the attempt as host_error; claude was sent SIGTERM only, so one that (or
    a tool of which) ignores it ran on with the worktree after its slot was given back."""
    from coordhub.orchestrator.worker.supervisor import Supervisor

    pids = tmp_path / "pids"
    stub = tmp_path / "bin-deaf" / "claude"
    stub.parent.mkdir()
    init = {"type": "system", "subtype": "init", "session_id": SID, "model": "opus"}
    stub.write_text("#!/bin/sh\ntrap '' TERM\ncat >/dev/null\n"
                    f"echo '{json.dumps(init)}'\nsleep 300 &\necho $$ $! > {pids}\nwait\n")
    stub.chmod(0o755)

    def broken(self: Any, now: float) -> None:
        if pids.exists():
            raise RuntimeError("a bug in supervision")

    monkeypatch.setattr(Supervisor, "_watch", broken)
    run_worker(ctx=make_ctx(claude=str(stub)))
    final = fake_hub.final("a1b2c3d4")
    assert final["state"] == "failed" and "host_error" in final["reason"], final
    for pid in map(int, pids.read_text().split()):
        deadline = time.monotonic() + 10
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(pid), pid


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False
