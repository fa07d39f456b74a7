"""The fake ``claude`` refuses and answers as the real CLI does (research orchestrator.md §1–§3).

A fake that accepts anything tests nothing (STYLE 18): these pin the
behaviours the host depends on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.orchestrator.host.conftest import run

SID = "5b0c9a7e-5b1d-4c1e-9a0f-2d7c8e1b4a55"


@pytest.fixture
def cli(tmp_path: Path, claude_bin: Path) -> Any:
    work = tmp_path / "work"
    work.mkdir()
    run(work, "git", "init", "-q", "-b", "main")
    run(work, "git", "config", "user.email", "a@b")
    run(work, "git", "config", "user.name", "a")
    (work / "README.md").write_text("x\n")
    run(work, "git", "add", ".")
    run(work, "git", "commit", "-qm", "init")
    env = {"PATH": f"{claude_bin}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path),
           "CLAUDE_CONFIG_DIR": str(tmp_path / "cfg")}

    def call(*args: str, cwd: Path = work, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["claude", *args], cwd=cwd, env={**env, **(extra or {})}, capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
    call.work = work  # type: ignore[attr-defined]
    call.cfg = tmp_path / "cfg"  # type: ignore[attr-defined]
    return call


def events(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def test_stream_json_needs_verbose(cli: Any) -> None:
    p = cli("-p", "hi", "--output-format", "stream-json")
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.strip() == "Error: When using --print, --output-format=stream-json requires --verbose"


def test_session_id_must_be_a_uuid(cli: Any) -> None:
    p = cli("-p", "hi", "--output-format", "stream-json", "--verbose", "--session-id", "abc")
    assert (p.returncode, p.stderr.strip()) == (1, "Error: Invalid session ID. Must be a valid UUID.")


def test_unknown_option_and_bad_choices(cli: Any) -> None:
    assert cli("-p", "hi", "--bogus").stderr.strip() == "error: unknown option '--bogus'"
    p = cli("-p", "hi", "--permission-mode", "yolo")
    assert p.returncode == 1 and "Allowed choices are default, acceptEdits" in p.stderr


def test_tool_lists_are_variadic_and_swallow_a_prompt_after_them(cli: Any) -> None:
    p = cli("-p", "--allowedTools", "Read,Edit", "do the thing")
    assert p.returncode == 1 and p.stderr.startswith("Error: Input must be provided")
    ok = cli("-p", "do the thing", "--allowedTools", "Read,Edit")
    assert ok.returncode == 0 and ok.stdout.strip() == "Done: the change is committed."


def test_stream_json_shape(cli: Any) -> None:
    p = cli("-p", "Issue #3", "--output-format", "stream-json", "--verbose", "--session-id", SID,
            "--permission-mode", "acceptEdits", "--allowedTools", "Bash")
    assert p.returncode == 0, p.stderr
    evs = events(p.stdout)
    assert evs[0]["type"] == "system" and evs[0]["subtype"] == "init" and evs[0]["session_id"] == SID
    assert evs[-1]["type"] == "result" and evs[-1]["is_error"] is False and evs[-1]["terminal_reason"] == "completed"
    assistant = [e for e in evs if e["type"] == "assistant"]
    assert all(len(e["message"]["content"]) == 1 for e in assistant)  # one block per line
    assert all(e["session_id"] == SID and "uuid" in e for e in evs)
    assert evs[-1]["num_turns"] == len({e["message"]["id"] for e in assistant})
    assert run(cli.work, "git", "log", "-1", "--format=%s").startswith("issue work (success")
    assert (cli.work / "fake" / "issue-3.txt").exists()


def test_session_id_cannot_be_reused_and_resume_needs_the_same_directory(cli: Any, tmp_path: Path) -> None:
    base = ("--output-format", "stream-json", "--verbose", "--permission-mode", "acceptEdits", "--allowedTools", "Bash")
    assert cli("-p", "fake: stuck", *base, "--session-id", SID).returncode == 0
    transcript = cli.cfg / "projects" / str(cli.work).replace("/", "-").replace("_", "-").replace(".", "-")
    assert (transcript / f"{SID}.jsonl").exists()
    again = cli("-p", "x", *base, "--session-id", SID)
    assert (again.returncode, again.stderr.strip()) == (1, f"Error: Session ID {SID} is already in use.")
    both = cli("-p", "x", *base, "--session-id", str(uuid.uuid4()), "--resume", SID)
    assert both.returncode == 1 and "--fork-session" in both.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    lost = cli("-p", "go on", *base, "--resume", SID, cwd=elsewhere)
    assert (lost.returncode, lost.stderr.strip()) == (1, f"No conversation found with session ID: {SID}")
    resumed = cli("-p", "go on", *base, "--resume", SID)
    assert resumed.returncode == 0, resumed.stderr
    evs = events(resumed.stdout)
    assert evs[0]["session_id"] == SID and evs[-1]["result"].startswith("Continued with the guidance")
    assert evs[-1]["num_turns"] > len({e["message"]["id"] for e in evs if e["type"] == "assistant"})


def test_auth_failure_looks_like_success(cli: Any) -> None:
    p = cli("-p", "fake: auth", "--output-format", "json")
    res = json.loads(p.stdout)
    assert p.returncode == 1
    assert (res["subtype"], res["is_error"], res["api_error_status"]) == ("success", True, 401)


def test_json_with_verbose_is_an_array(cli: Any) -> None:
    p = cli("-p", "fake: question", "--output-format", "json", "--verbose", "--permission-mode", "acceptEdits",
            "--allowedTools", "Bash")
    data = json.loads(p.stdout)
    assert isinstance(data, list) and data[0]["subtype"] == "init" and data[-1]["type"] == "result"


def test_print_mode_denies_what_would_prompt(cli: Any) -> None:
    p = cli("-p", "fake: denied", "--output-format", "stream-json", "--verbose")
    res = events(p.stdout)[-1]
    assert p.returncode == 0 and res["permission_denials"][0]["tool_name"] == "Write"


def test_sigterm_exits_143(cli: Any, claude_bin: Path, tmp_path: Path) -> None:
    env = {"PATH": f"{claude_bin}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path),
           "CLAUDE_CONFIG_DIR": str(tmp_path / "cfg")}
    with subprocess.Popen(["claude", "-p", "fake: slow work=30 beat=0.2", "--output-format", "stream-json",
                           "--verbose", "--permission-mode", "acceptEdits", "--allowedTools", "Bash"],
                          cwd=cli.work, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert json.loads(first)["subtype"] == "init"
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 143


def test_stream_json_input_runs_one_turn_per_line_until_stdin_closes(cli: Any, claude_bin: Path,
                                                                     tmp_path: Path) -> None:
    env = {"PATH": f"{claude_bin}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path),
           "CLAUDE_CONFIG_DIR": str(tmp_path / "cfg")}
    turns = [{"type": "user", "message": {"role": "user", "content": "Issue #5: first"}, "parent_tool_use_id": None},
             {"type": "control_request", "request_id": "r1", "request": {"subtype": "interrupt"}},
             {"type": "user", "message": {"role": "user", "content": [{"type": "text", "text": "fake: question"}]}}]
    p = subprocess.run(["claude", "-p", "--input-format", "stream-json", "--output-format", "stream-json",
                        "--verbose", "--permission-mode", "acceptEdits", "--allowedTools", "Bash"], cwd=cli.work,
                       env=env, input="".join(json.dumps(t) + "\n" for t in turns), capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    evs = events(p.stdout)
    inits = [e for e in evs if e.get("subtype") == "init"]
    results = [e for e in evs if e["type"] == "result"]
    assert len(inits) == 2 and len(results) == 2 and evs[-1] is results[-1]
    assert inits[0]["session_id"] == inits[1]["session_id"]
    assert results[1]["total_cost_usd"] > results[0]["total_cost_usd"]  # cumulative: read the latest, don't sum
    assert results[1]["result"].endswith("Should I also update the documentation?")
    assert any(e["type"] == "control_response" for e in evs)
    bad = cli("-p", "--input-format", "stream-json", "--output-format", "json")
    assert bad.returncode == 1 and "requires output-format=stream-json" in bad.stderr


def test_compaction_events_are_parsed(cli: Any) -> None:
    from coordhub.orchestrator.streamjson import Parser

    p = cli("-p", "fake: success compact=1", "--output-format", "stream-json", "--verbose", "--permission-mode",
            "acceptEdits", "--allowedTools", "Bash")
    parser = Parser()
    out = parser.feed(p.stdout.encode())
    assert "[compact] compacting the conversation" in out and parser.telemetry.result is not None


def test_a_scripted_answer_is_checked_against_the_json_schema(cli: Any, tmp_path: Path) -> None:
    """``FAKE_CLAUDE_ANSWER`` (the planning brain's tests): with ``--output-format json`` the stdout is the one
    result object; a JSON answer that matches ``--json-schema`` is its ``structured_output``, anything else ends
    as the CLI does when the model never gives valid structured output (exit 1, ``is_error``, no ``result``)."""
    schema = json.dumps({"type": "object", "properties": {"proposals": {"type": "array", "items": {
        "type": "object", "properties": {"issue": {"type": "integer", "minimum": 1}}, "required": ["issue"]}}},
        "required": ["proposals"], "additionalProperties": False})
    answer = tmp_path / "answer.txt"

    def ask(text: str) -> tuple[int, dict[str, Any]]:
        answer.write_text(text)
        p = cli("-p", "plan", "--output-format", "json", "--json-schema", schema, "--tools", "",
                extra={"FAKE_CLAUDE_ANSWER": str(answer)})
        lines = p.stdout.splitlines()
        assert len(lines) == 1, p.stdout
        return p.returncode, json.loads(lines[0])

    code, res = ask('{"proposals": [{"issue": 3}]}')
    assert code == 0 and res["type"] == "result" and res["subtype"] == "success" and not res["is_error"]
    assert res["structured_output"] == {"proposals": [{"issue": 3}]}
    assert res["result"] == '{"proposals": [{"issue": 3}]}'
    for bad in ('{"proposals": [{"issue": 0}]}', '{"proposals": [], "extra": 1}', "issue 3, I think"):
        code, res = ask(bad)
        assert code == 1 and res["is_error"] and res["subtype"] == "error_max_structured_output_retries", bad
        assert "result" not in res and "structured_output" not in res and res["errors"]
