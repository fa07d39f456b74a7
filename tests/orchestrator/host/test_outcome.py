"""The rules that turn what a worker did into a state (issue 11 point 6): a table of cases."""

from __future__ import annotations

import pytest

from coordhub.orchestrator.outcome import Ending, decide
from coordhub.orchestrator.streamjson import Result, Telemetry


def t(result: Result | None = None, **fields: object) -> Telemetry:
    tel = Telemetry(result=result, turns=5, cost_usd=0.5, cost_estimated=result is None)
    for k, v in fields.items():
        setattr(tel, k, v)
    return tel


OK = Result(is_error=False, subtype="success", terminal_reason="completed", text="Done.")


@pytest.mark.parametrize(("tel", "end", "state", "reason"), [
    (t(OK), Ending(0, new_commits=2), "done", "completed: 2 commit(s), 5 turns, $0.50"),
    (t(OK), Ending(0, new_commits=0), "stuck", "no_commit: the run ended without a commit on its branch"),
    (t(OK, stuck="no loader"), Ending(0, new_commits=3), "stuck", "STUCK: no loader"),
    (t(Result(False, "success", "completed", "Fixed.\nShall I push?")), Ending(0, new_commits=1), "needs_input",
     "question: Shall I push?"),
    (t(OK, permission_denials=[{"tool_name": "Edit", "target": "a.py"}]), Ending(0, new_commits=1), "stuck",
     "permission_denied: Edit a.py"),
    (t(Result(True, "success", "api_error", "Not logged in · Please run /login", api_error_status=401)),
     Ending(1), "failed", "auth: Not logged in · Please run /login"),
    (t(Result(True, "error_max_turns", "max_turns", None, errors=["Reached maximum number of turns (9)"])),
     Ending(1), "stuck", "max_turns: Reached maximum number of turns (9)"),
    (t(Result(True, "error_max_budget_usd", "budget_exhausted", None, errors=["over"])), Ending(1), "failed",
     "budget_exhausted: $0.50; over"),
    (t(Result(True, "error_during_execution", None, None, errors=["boom"])), Ending(1), "failed",
     "error_during_execution: boom"),
    (t(OK), Ending(2, new_commits=1), "failed", "exit 2 after a successful result"),
    (t(), Ending(143), "failed", "terminated: claude exited 143 before its result"),
    (t(), Ending(1, stderr_tail="Error: x"), "failed", "no_result: claude exited 1 without a result: Error: x"),
    (t(), Ending(None), "failed", "no_result: claude exited unknown without a result"),
    (t(), Ending(143, killed="silence", detail="no output for 900 s"), "failed", "silence: no output for 900 s"),
    (t(OK), Ending(143, killed="budget", detail="cost $3 over $2"), "failed", "budget: cost $3 over $2"),
    (t(OK), Ending(-9, killed="linger", detail="31 s after its result", new_commits=1), "done",
     "completed: 1 commit(s), 5 turns, $0.50 (killed 31 s after its result)"),
    (t(OK), Ending(143, killed="cancelled", new_commits=1), None, "cancelled: stopped on the hub's request"),
    (t(), Ending(143, killed="host_stopped", detail="the host was stopped"), "failed",
     "host_stopped: the host was stopped"),
])
def test_decide(tel: Telemetry, end: Ending, state: str | None, reason: str) -> None:
    v = decide(tel, end)
    assert (v.state, v.reason) == (state, reason)


def test_is_error_wins_over_subtype_success() -> None:
    """Research §1: branch on is_error, never on subtype."""
    v = decide(t(Result(True, "success", "api_error", "Overloaded")), Ending(1, new_commits=1))
    assert v.state == "failed"
