"""How a worker's run ended: the state and reason the host reports (issue 11 point 6).

One pure function, :func:`decide`, over what the host saw: the parsed
telemetry, the exit status, which watchdog (if any) ended the process, and
what git says about the worktree. The rules, first match wins:

1. stopped by the hub (``cancel``) → no state of its own (the hub already
   cancelled it); a watchdog (wall clock, first output, output silence,
   budget, output past its bound on disk) → ``failed`` with the watchdog's
   reason, whatever the output said (a worker that can flood the host's disk
   is not judged by what it printed);
2. no ``result`` line → ``failed`` (``terminated`` for SIGTERM/143, else
   ``no_result`` with the exit code);
3. ``is_error`` (never ``subtype``: an auth failure says ``success``) →
   ``failed`` (``auth``, ``budget_exhausted``, ``api_error`` …), except the
   turn limit → ``stuck`` (the session can be resumed with guidance);
4. a non-zero exit after a clean result → ``failed``;
5. a ``STUCK:`` line anywhere → ``stuck``;
6. permission denials (an edit of a leased file, a tool not allowed) → ``stuck``;
7. the last line of the final text is a question → ``needs_input``;
8. no commit on the branch since the run started → ``stuck`` (``no_commit``);
9. otherwise ``done``.

Seed 003 called every exit 0 "done": a worker that wrote ``STUCK:`` or asked
a question and stopped (all a ``-p`` worker can do) was recorded as finished.
A process killed because it lingered after its ``result`` is judged by that
result (rules 3–9); the kill is noted in the reason.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from coordhub.orchestrator.streamjson import Telemetry, ends_with_question

OUTPUT_LIMIT = "output_limit"  # the kill of an attempt whose output on disk passed its bound (worker.supervisor)
WATCHDOGS = ("wall_clock", "first_output", "silence", "budget", OUTPUT_LIMIT)


@dataclass(frozen=True)
class Ending:
    """What the host observed when the worker's process group was gone.

    ``exit_code`` is None when unknown (a re-attached orphan is not our child);
    a negative value is a signal (``subprocess`` convention). ``killed`` names
    why the host ended it (a :data:`WATCHDOGS` entry, ``linger``, ``cancelled``,
    ``host_stopped``), with ``detail`` for the reason text. ``new_commits`` counts
    commits on the branch since the run started; None when they could not be
    counted (the worktree gone and its branch unreadable): never "no commit".
    """

    exit_code: int | None
    killed: str | None = None
    detail: str = ""
    new_commits: int | None = 0
    stderr_tail: str = ""


@dataclass(frozen=True)
class Verdict:
    """The state to report (None: report no state, only the reason) and the reason, one line."""

    state: str | None
    reason: str


def decide(t: Telemetry, end: Ending) -> Verdict:
    """The state and reason of a finished run, by the rules in the module docstring."""
    if end.killed == "cancelled":
        return Verdict(None, "cancelled: stopped on the hub's request")
    if end.killed in WATCHDOGS or end.killed == "host_stopped":
        return Verdict("failed", f"{end.killed}: {end.detail}".rstrip(": "))
    r = t.result
    note = f" (killed {end.detail})" if end.killed == "linger" and end.detail else ""
    if r is None:
        if end.exit_code in (143, -signal.SIGTERM):
            return Verdict("failed", f"terminated: claude exited {end.exit_code} before its result")
        tail = f": {end.stderr_tail}" if end.stderr_tail else ""
        code = "unknown" if end.exit_code is None else str(end.exit_code)
        return Verdict("failed", f"no_result: claude exited {code} without a result{tail}")
    if r.is_error:
        detail = r.text or "; ".join(r.errors) or r.subtype
        if r.subtype == "error_max_turns" or r.terminal_reason == "max_turns":
            return Verdict("stuck", f"max_turns: {detail}{note}")
        if r.api_error_status in (401, 403) or r.subtype == "authentication_failed":
            return Verdict("failed", f"auth: {detail}{note}")
        if r.subtype == "error_max_budget_usd" or r.terminal_reason == "budget_exhausted":
            return Verdict("failed", f"budget_exhausted: ${t.cost_usd:.2f}; {detail}{note}")
        return Verdict("failed", f"{r.terminal_reason or r.subtype}: {detail}{note}")
    if end.exit_code not in (0, None) and end.killed != "linger":
        return Verdict("failed", f"exit {end.exit_code} after a successful result{note}")
    if t.stuck:
        return Verdict("stuck", f"STUCK: {t.stuck}{note}")
    if t.permission_denials:
        what = ", ".join(f"{d['tool_name']} {d['target']}".strip() for d in t.permission_denials[:5])
        return Verdict("stuck", f"permission_denied: {what}{note}")
    question = ends_with_question(r.text or t.last_text)
    if question:
        return Verdict("needs_input", f"question: {question}{note}")
    if end.new_commits is None:
        return Verdict("stuck", f"commits_unknown: the run's worktree is gone and its branch could not be "
                                f"counted; look at the branch before re-running it{note}")
    if end.new_commits <= 0:
        return Verdict("stuck", f"no_commit: the run ended without a commit on its branch{note}")
    return Verdict("done", f"completed: {end.new_commits} commit(s), {t.turns} turns, ${t.cost_usd:.2f}{note}")
