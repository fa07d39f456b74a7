"""``coord-hook <event>``: the Claude Code hooks and the git guard, one process per event.

Claude Code events (the payload is the JSON object on stdin):

==============  ==================  ===============================================
event           Claude Code event   handler
==============  ==================  ===============================================
session-start   SessionStart        :func:`coordhub.hooks.presence.session_start`
prompt          UserPromptSubmit    :func:`coordhub.hooks.inbox.prompt`
pre-tool-use    PreToolUse          :func:`coordhub.hooks.edits.pre_tool_use`
post-tool-use   PostToolUse         :func:`coordhub.hooks.presence.post_tool_use`
stop            Stop                :func:`coordhub.hooks.inbox.stop`
session-end     SessionEnd          :func:`coordhub.hooks.presence.session_end`
==============  ==================  ===============================================

Each prints at most one JSON object on stdout and exits 0, whatever happens:
Claude Code reads JSON only on exit 0, and a hook that failed must never
block the agent by accident. A payload that is not a JSON object, or names
another event in ``hook_event_name``, gets one line on stderr and no action
(no request to the hub). ``git-pre-commit``, ``git-pre-merge-commit`` and ``git-pre-push`` run the git
guard (:mod:`coordhub.guard.run`), whose exit status is git's: 0 accept,
1 refuse.

Standard library only (plus coordhub's stdlib-only modules), and each event
imports only its own handler: this runs before every file edit.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from coordhub.hooks import output, settings
from coordhub.hooks.invocation import Invocation
from coordhub.hooks.output import Answer
from coordhub.jsonkeys import unique_keys

CLAUDE_EVENTS = {"session-start": "SessionStart", "prompt": "UserPromptSubmit", "pre-tool-use": "PreToolUse",
                 "post-tool-use": "PostToolUse", "stop": "Stop", "session-end": "SessionEnd"}
GIT_EVENTS = ("git-pre-commit", "git-pre-merge-commit", "git-pre-push")
USAGE = ("usage: coord-hook EVENT\n"
         f"  Claude Code hooks (JSON payload on stdin): {', '.join(CLAUDE_EVENTS)}\n"
         f"  git guard (run by the hooks of `coord install-git-hook`): {', '.join(GIT_EVENTS)}\n"
         "Install with `coord install-hooks` and `coord install-git-hook`; see docs/hooks.md.\n")

Handler = Callable[[Invocation], Answer | None]


def handler(event: str) -> Handler:
    """The handler of a Claude Code event name (importing only its module)."""
    if event == "pre-tool-use":
        from coordhub.hooks.edits import pre_tool_use
        return pre_tool_use
    if event in ("prompt", "stop"):
        from coordhub.hooks import inbox
        return inbox.prompt if event == "prompt" else inbox.stop
    from coordhub.hooks import presence
    return {"session-start": presence.session_start, "post-tool-use": presence.post_tool_use,
            "session-end": presence.session_end}[event]


def read_payload(event: str, raw: bytes) -> dict[str, Any] | None:
    """The hook payload, or None after one line on stderr saying what is wrong with it."""
    expected = CLAUDE_EVENTS[event]
    try:
        # a key named twice is refused, as the hub refuses it (coordhub.jsonkeys): no reader may take another value
        payload = json.loads(raw.decode("utf-8"), object_pairs_hook=unique_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: nested too deep for json
        problem = f"stdin is not JSON ({exc})" if raw.strip() else "stdin is empty"
        _malformed(event, f"{problem}; expected the {expected} hook payload from Claude Code")
        return None
    if not isinstance(payload, dict):
        _malformed(event, f"stdin is JSON but not an object; expected the {expected} hook payload")
        return None
    name = payload.get("hook_event_name")
    if name != expected:
        _malformed(event, f"payload is for hook_event_name {name!r}, not {expected!r}; is the hook "
                          "installed under the right event? (`coord install-hooks` writes them)")
        return None
    return payload


def _malformed(event: str, problem: str) -> None:
    sys.stderr.write(f"coord-hook {event}: {problem}; nothing done.\n")


def run_claude_event(event: str, raw: bytes) -> Answer | None:
    """Parse the payload and run the handler; every failure becomes a line on stderr and no answer."""
    payload = read_payload(event, raw)
    if payload is None:
        return None
    inv = Invocation(event, payload, settings.load())
    try:
        answer = handler(event)(inv)
    except Exception as exc:  # a bug must not block the agent: report it and do nothing
        sys.stderr.write(f"coord-hook {event}: internal error, nothing done: {type(exc).__name__}: {exc}\n")
        return None
    finally:
        inv.close()
    if (note := inv.admin_note()) is None:
        return answer
    # acting as the hub's admin is said wherever this run speaks to the agent, and on stderr every run, as the
    # CLI says it on every command (coordhub.client.settings.admin_token_note)
    output.log(event, note)
    return output.with_note(answer, note)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit status (0 for every Claude Code event)."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        (sys.stdout if args else sys.stderr).write(USAGE)
        return 0
    event = args[0]
    if event in GIT_EVENTS:
        from coordhub.guard.run import main as guard_main
        return guard_main(event, args[1:])
    if event not in CLAUDE_EVENTS:
        sys.stderr.write(f"coord-hook: unknown event {event!r}; nothing done.\n{USAGE}")
        return 0
    answer = run_claude_event(event, sys.stdin.buffer.read())
    if answer is not None:
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
