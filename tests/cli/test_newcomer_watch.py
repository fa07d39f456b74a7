"""``coord watch`` says what happened for the events a newcomer's first session makes.

Reads, acks, todos, component states, presence and tokens were shown as the
session and an id only (``… todo.added  [shop] A 01a2…``), without what was
added, set or acked.
"""

from __future__ import annotations

from typing import Any

from coordhub.cli.watch import describe

A = "HOWARD-HOME/claude-main"


def _line(kind: str, payload: dict[str, Any], subject: str | None = "S1", project: str | None = None) -> str:
    event = {"id": 7, "kind": kind, "session_id": A, "project_key": project, "subject_id": subject,
             "created_at": "2026-12-05T15:00:00Z", "payload": payload}
    return describe(event).split(kind, 1)[1].strip()


def test_watch_lines_say_what_each_event_did() -> None:
    assert _line("message.read", {}) == f"{A} read S1"
    assert _line("message.acked", {"from_session": "B/x"}) == f"{A} acked S1 from B/x"
    assert _line("todo.added", {"text": "write docs"}, project="shop") == f"[shop] {A} added todo S1: write docs"
    assert _line("todo.done", {}) == f"{A} did todo S1"
    assert _line("component.set", {"state": "deployed", "version": "1.0"}, "server") == f"{A} set server deployed 1.0"
    assert _line("component.set", {"state": "degraded", "version": None}, "server") == f"{A} set server degraded"
    assert _line("presence.registered", {"incarnation": 2, "client": "claude-code"}) == \
        f"{A} started (incarnation 2, claude-code)"
    assert _line("presence.deregistered", {"incarnation": 2}) == f"{A} ended (incarnation 2)"
    assert _line("token.created", {"name": "B/x", "admin": False}) == f"{A} created a token for B/x"
    assert _line("token.revoked", {"name": "B/x", "count": 1}) == f"{A} revoked 1 token(s) of B/x"
    assert _line("lease.renewed", {"fence": 4}) == f"{A} renewed lease S1 (fence 4)"
    # a seed-002 import: where from and how much (the line was only the admin's name)
    assert _line("import.applied", {"source": "redis://h:6379/0 coord:*", "imported": 3, "already": 1, "skipped": 2},
                 None) == f"{A} imported from redis://h:6379/0 coord:*: 3 imported, 1 there already, 2 left out"


def test_a_todo_text_cannot_break_the_line() -> None:
    assert _line("todo.added", {"text": "a\nFLEET HALTED"}) == f"{A} added todo S1: a\\nFLEET HALTED"


def test_a_halt_said_anew_is_not_shown_as_a_new_one() -> None:
    # POST /halt with refresh (cross-agent-halt run again) gives a standing halt a new reason: one more halt.set
    assert _line("halt.set", {"scope": "machine:velox", "reason": "loop"}) == f"HALTED machine:velox by {A}: loop"
    assert _line("halt.set", {"scope": "machine:velox", "reason": "the watcher", "refreshed": True,
                              "previous_reason": "loop"}) == \
        f"HALTED machine:velox by {A}: the watcher (said anew; was: loop)"
