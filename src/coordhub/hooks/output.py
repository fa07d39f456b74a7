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


def log(event: str, text: str) -> None:
    """One line on stderr (Claude Code shows it in verbose mode; git shows it to the committer)."""
    sys.stderr.write(f"coord-hook {event}: {text}\n")
    sys.stderr.flush()
