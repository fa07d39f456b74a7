"""What each hook asks the hub, request by request (handlers in-process against a recording TCP server).

The hooks run before and after every tool call, so the number of round trips
is part of their contract: pre-tool-use 1, prompt 1, post-tool-use 2, stop 1
(0 when ``stop_hook_active``), and none at all for a file outside the project.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coordhub.hooks import run
from tests.client.test_wire import Canned, json_answer

HALT = {"halted": True, "halted_by": "admin", "reason": "bad deploy", "halted_at": "2026-11-20T10:00:00.123456Z"}
LEASE = {"id": "l-1", "fence": 7, "project_key": "shop", "resource": "src/", "session_id": "B/claude-main",
         "description": "refactor", "expires_at": "2026-11-20T11:00:00.5Z", "expires_in_seconds": 1800.0}


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Canned]:
    server = Canned()
    for name in ("COORD_PROJECT", "COORD_SESSION", "CLAUDE_PROJECT_DIR", "COORD_HOOK_FAIL_MODE",
                 "COORD_HOOK_MAX_ITEMS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("COORD_URL", server.url)
    monkeypatch.setenv("COORD_TOKEN", "tok")
    (tmp_path / "shop" / ".git").mkdir(parents=True)
    yield server
    server.close()


def call(event: str, tmp_path: Path, **fields: Any) -> Any:
    name = run.CLAUDE_EVENTS[event]
    payload = {"session_id": "c-1", "cwd": str(tmp_path / "shop"), "hook_event_name": name, **fields}
    return run.run_claude_event(event, json.dumps(payload).encode())


def requests(hub: Canned) -> list[str]:
    return [r.split(b"\r\n", 1)[0].decode().removesuffix(" HTTP/1.1") for r in hub.requests]


def body(raw: bytes) -> Any:
    return json.loads(raw.partition(b"\r\n\r\n")[2])


def edit(tmp_path: Path, rel: str) -> dict[str, Any]:
    return {"tool_name": "Write", "tool_input": {"file_path": str(tmp_path / "shop" / rel), "content": ""}}


def test_pre_tool_use_asks_once_with_a_relative_path_resource(hub: Canned, tmp_path: Path) -> None:
    hub.answer = json_answer(b"[]")
    assert call("pre-tool-use", tmp_path, **edit(tmp_path, "src/deploy:x.py")) is None
    assert requests(hub) == ["GET /api/coord/locks/conflicts?project_key=shop&resource=.%2Fsrc%2Fdeploy%3Ax.py"]


def test_pre_tool_use_reads_leases_and_a_halt_from_an_object_answer(hub: Canned, tmp_path: Path) -> None:
    hub.answer = json_answer(json.dumps({"leases": [LEASE], "halt": None}).encode())
    reason = call("pre-tool-use", tmp_path, **edit(tmp_path, "src/a.py"))["hookSpecificOutput"][
        "permissionDecisionReason"]
    assert reason.startswith('coord: src/a.py is leased by B/claude-main — "refactor" (lease l-1 on src/ in project '
                             "shop, until 2026-11-20T11:00:00Z, 30 min left).")
    hub.answer = json_answer(json.dumps({"leases": [], "halt": HALT}).encode())
    reason = call("pre-tool-use", tmp_path, **edit(tmp_path, "src/a.py"))["hookSpecificOutput"][
        "permissionDecisionReason"]
    assert reason.startswith("coord: the fleet is halted by admin since 2026-11-20T10:00:00Z: bad deploy.")


def test_no_request_for_a_file_outside_the_project(hub: Canned, tmp_path: Path) -> None:
    assert call("pre-tool-use", tmp_path, **edit(tmp_path, "../elsewhere/a.py")) is None
    assert call("pre-tool-use", tmp_path, tool_name="Bash", tool_input={"command": "rm -rf src"}) is None
    assert hub.requests == []


def test_prompt_asks_once(hub: Canned, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COORD_HOOK_MAX_ITEMS", "3")
    hub.answer = json_answer(b'{"messages": [], "more": 0}')
    assert call("prompt", tmp_path, prompt="hi") is None
    assert requests(hub) == ["POST /api/coord/messages/unshown"] and body(hub.requests[0]) == {"limit": 3}


def test_post_tool_use_asks_twice(hub: Canned, tmp_path: Path) -> None:
    hub.answer = json_answer(b'{"session_id": "A/claude-main", "incarnation": 4, "messages": [], "more": 0}')
    assert call("post-tool-use", tmp_path, tool_name="Read", tool_input={}, tool_response={}) is None
    assert requests(hub) == ["POST /api/coord/presence/heartbeat", "POST /api/coord/messages/unshown"]
    assert body(hub.requests[0]) == {}


def test_a_halt_refusal_becomes_the_halt_notice(hub: Canned, tmp_path: Path) -> None:
    envelope = {"error": {"code": "halted", "message": "halted", "halt": HALT}}
    hub.answer = json_answer(json.dumps(envelope).encode(), "423 Locked")
    ctx = call("prompt", tmp_path, prompt="hi")["hookSpecificOutput"]["additionalContext"]
    assert ctx.startswith("FLEET HALTED by admin since 2026-11-20T10:00:00Z: bad deploy\n")


def test_a_pause_in_the_conflicts_answer_denies_the_edit(hub: Canned, tmp_path: Path) -> None:
    paused = {"paused": True, "paused_at": "2026-11-20T10:05:00.5Z", "scope": "project:shop"}
    hub.answer = json_answer(json.dumps({"leases": [], "halt": None, "paused": paused}).encode())
    reason = call("pre-tool-use", tmp_path, **edit(tmp_path, "src/a.py"))["hookSpecificOutput"][
        "permissionDecisionReason"]
    assert reason.startswith("coord: your session is paused since 2026-11-20T10:05:00Z: the halt of project:shop ")
    assert "`coord engage`" in reason and len(hub.requests) == 1


def test_a_paused_refusal_becomes_the_pause_notice(hub: Canned, tmp_path: Path) -> None:
    paused = {"paused": True, "paused_at": "2026-11-20T10:05:00.5Z", "scope": "fleet"}
    envelope = {"error": {"code": "paused", "message": "paused", "paused": paused}}
    hub.answer = json_answer(json.dumps(envelope).encode(), "423 Locked")
    ctx = call("prompt", tmp_path, prompt="hi")["hookSpecificOutput"]["additionalContext"]
    assert ctx.startswith("COORD PAUSED since 2026-11-20T10:05:00Z: the halt of fleet was lifted")
    assert "run `coord engage` only once the user says to go on" in ctx


def test_stop_asks_once_and_not_at_all_when_already_continuing(hub: Canned, tmp_path: Path) -> None:
    hub.answer = json_answer(b"[]")
    assert call("stop", tmp_path, stop_hook_active=True) is None
    assert hub.requests == []
    assert call("stop", tmp_path, stop_hook_active=False) is None
    assert requests(hub) == ["GET /api/coord/messages?unread_only=true&limit=500"]


def test_a_hub_answering_more_than_asked_gets_at_most_max_items_shown_and_the_rest_counted(
        hub: Canned, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # room for every message, so without the cap the block would list all 20,000 (quickly: no message is dropped)
    monkeypatch.setenv("COORD_HOOK_MAX_ITEMS", "3")
    monkeypatch.setenv("COORD_HOOK_MAX_CHARS", "100000000")
    messages = [{"id": f"m-{i}", "from_session": "B/claude-main", "subject": f"s{i}", "body": "b"}
                for i in range(20_000)]
    turns = [{"id": f"t-{i}", "conversation_id": f"c{i}", "from": "b", "title": "t", "body": "b"} for i in range(50)]
    hub.answer = json_answer(json.dumps({"messages": messages, "more": 7, "turns": turns, "turns_more": 2}).encode())
    ctx = call("prompt", tmp_path, prompt="hi")["hookSpecificOutput"]["additionalContext"]
    assert ctx.count("MESSAGE FROM") == 3 and "CONVERSATION TURN FROM" not in ctx
    assert ctx.startswith("UNREAD COORD MESSAGES (3 of 20059): ")
    assert "\n20004 more unread: run `coord msg inbox`.\n" in ctx  # the hub's 7 and the 19,997 not shown
    assert "\n52 more pending conversation turns: run `coord conv inbox`.\n" in ctx

    hub.answer = json_answer(json.dumps({"messages": messages[:1], "more": 0, "turns": turns,
                                         "turns_more": 0}).encode())
    ctx = call("prompt", tmp_path, prompt="hi")["hookSpecificOutput"]["additionalContext"]
    assert ctx.count("MESSAGE FROM") == 1 and ctx.count("CONVERSATION TURN FROM") == 2  # turns fill what is left
    assert "\n48 more pending conversation turns: run `coord conv inbox`.\n" in ctx
