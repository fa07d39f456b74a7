"""The answers a hook prints, in the shapes Claude Code reads (docs/research: ecosystem.md §2.3).

Every answer is one JSON object on stdout with exit status 0: Claude Code
reads JSON only on exit 0, and ignores it on exit 2. Event-specific fields go
inside ``hookSpecificOutput`` together with ``hookEventName`` (without the
wrapper a deny or a context is silently dropped). Printing nothing leaves
Claude Code's normal behaviour unchanged; that is the answer whenever there
is nothing to say.
"""

from __future__ import annotations

import sys
from typing import Any

Answer = dict[str, Any]


def context(event_name: str, text: str) -> Answer:
    """Add ``text`` to the model's context (SessionStart, UserPromptSubmit, PostToolUse).

    For PostToolUse this wrapper is the *only* way to reach the model; plain
    stdout is shown in the transcript view alone.
    """
    return {"hookSpecificOutput": {"hookEventName": event_name, "additionalContext": text}}


def deny(reason: str) -> Answer:
    """Refuse a tool call (PreToolUse); ``reason`` is shown to the model, so it says what to do instead."""
    return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                   "permissionDecisionReason": reason}}


def block(reason: str) -> Answer:
    """Keep the agent from finishing (Stop); ``reason`` tells it what to do first."""
    return {"decision": "block", "reason": reason}


def with_note(answer: Answer | None, note: str) -> Answer | None:
    """``answer`` with ``note`` added to what of it reaches the model (a context first, a deny or block reason
    last); None stays None, so a hook that had nothing to say still prints nothing."""
    if answer is None:
        return None
    specific = answer.get("hookSpecificOutput")
    if isinstance(specific, dict) and "additionalContext" in specific:
        return {**answer, "hookSpecificOutput": {**specific,
                                                 "additionalContext": f"{note}\n\n{specific['additionalContext']}"}}
    if isinstance(specific, dict) and "permissionDecisionReason" in specific:
        return {**answer, "hookSpecificOutput": {
            **specific, "permissionDecisionReason": f"{specific['permissionDecisionReason']}\n{note}"}}
    if "reason" in answer:
        return {**answer, "reason": f"{answer['reason']}\n{note}"}
    return answer


def log(event: str, text: str) -> None:
    """One line on stderr (Claude Code shows it in verbose mode; git shows it to the committer)."""
    sys.stderr.write(f"coord-hook {event}: {text}\n")
    sys.stderr.flush()
