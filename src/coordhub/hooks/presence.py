"""Session lifecycle: ``session-start`` registers and briefs the agent, ``session-end`` deregisters.

Incarnations (docs/api.md, presence): each ``POST /presence/register`` starts
a new incarnation of the coord session, and a direct message sent to a live
incarnation is news only to that incarnation. Claude Code fires SessionStart
again in the *same* process after ``/clear``, ``/compact`` and ``/resume``
(``source`` = ``clear``/``compact``/``resume``), and SessionEnd with
``reason`` ``clear``/``resume`` before the first two of those. Those are not
new agent processes, so they keep the incarnation: SessionEnd does not
deregister, and SessionStart heartbeats the saved incarnation (see
:mod:`coordhub.hooks.state`) instead of registering, falling back to a
registration when there is none or the hub refuses it. A ``startup`` always
registers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from coordhub.hooks import inbox, output, state
from coordhub.hooks import leases as leases_text
from coordhub.hooks.hub import HubError, HubRefused, halt_of
from coordhub.hooks.invocation import Invocation
from coordhub.hooks.output import Answer
from coordhub.hooks.untrusted import one_line

CLIENT = "claude-code"
SAME_PROCESS_STARTS = ("clear", "compact", "resume")
SAME_PROCESS_ENDS = ("clear", "resume")
MAX_LEASES_LISTED = 20
MAX_LIVE_PER_SESSION = 1000  # live leases a session may hold (coordhub.core.leases; not imported: start-up time)


def state_file(inv: Invocation) -> Path:
    """Where this identity's incarnation is kept between hook runs."""
    return state.path_for(inv.client.url, inv.client.token or inv.client.session)


def register(inv: Invocation) -> dict[str, Any]:
    """Start a new incarnation (``POST /presence/register``), save it, and return the presence answer."""
    sid = inv.payload.get("session_id")
    me = _presence(inv.hub.post("/presence/register", {
        "client": CLIENT, "client_session": sid if isinstance(sid, str) else None, "cwd": str(inv.cwd)}))
    _remember(inv, me)
    return me


def heartbeat(inv: Invocation, incarnation: int | None) -> dict[str, Any]:
    """``POST /presence/heartbeat``, naming ``incarnation`` if given; the presence answer.

    Raises ``HubRefused`` (409 ``stale_incarnation``) when a newer
    incarnation has registered since: this process was superseded.
    """
    return _presence(inv.hub.post("/presence/heartbeat", {} if incarnation is None else {"incarnation": incarnation}))


def saved_incarnation(inv: Invocation, any_session: bool = False) -> int | None:
    """The incarnation saved by this Claude Code session's SessionStart, else None.

    The state is per coord identity; it was written by another Claude Code
    session when several run with the same token. ``any_session`` takes it
    anyway (a SessionStart after ``/clear`` carries a new Claude session id).
    """
    saved = state.load(state_file(inv))
    incarnation, owner = saved.get("incarnation"), saved.get("client_session")
    if not isinstance(incarnation, int) or incarnation <= 0:
        return None
    return incarnation if any_session or owner in (None, inv.payload.get("session_id")) else None


def _presence(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("session_id"), str):
        raise HubRefused(200, "unexpected", f"the hub answered {str(data)[:120]!r}, not a presence record")
    return data


def _remember(inv: Invocation, me: dict[str, Any]) -> None:
    try:
        state.save(state_file(inv), {"session_id": me["session_id"], "incarnation": me.get("incarnation"),
                                     "client_session": inv.payload.get("session_id")})
    except OSError as exc:
        output.log(inv.event, f"cannot save the incarnation ({exc}); heartbeats will not name it")


def _start(inv: Invocation) -> dict[str, Any]:
    """Register, or for a start inside the same process keep the saved incarnation alive."""
    saved = saved_incarnation(inv, any_session=True)
    if inv.payload.get("source") in SAME_PROCESS_STARTS and saved is not None:
        try:
            me = heartbeat(inv, saved)
            _remember(inv, me)
            return me
        except HubRefused:
            pass  # superseded or deregistered meanwhile: start a new incarnation
    return register(inv)


def session_start(inv: Invocation) -> Answer:
    """SessionStart: prints ``additionalContext`` briefing the agent; also exports ``COORD_SESSION``.

    The context holds, in this order: a ``HALTED`` notice for each halt that
    covers the session (the fleet, its machine, its project) and a ``COORD
    PAUSED`` notice if a resume paused it; the ``UNREAD COORD MESSAGES`` block (every unread message, not
    only unshown ones, since after ``/clear`` or compaction the agent no
    longer has the earlier ones; capped like every injection); the session's
    live leases; one line naming the session, incarnation and project. The
    messages shown are then marked shown, so ``prompt`` does not inject them
    again. ``export COORD_SESSION=<id>`` is appended to ``$CLAUDE_ENV_FILE``
    when Claude Code provides one, so ``coord`` in the agent's Bash tool
    acts as the same session. When the hub cannot be reached the context
    says so in one line (the agent should know coordination is down). While
    the fleet is halted the hub refuses the registration; the briefing is
    still given, naming the session from ``GET /whoami``.
    """
    try:
        me, who = _identify(inv)
    except HubRefused as exc:
        if exc.status == 401 and not inv.client.token:
            return output.context("SessionStart", "coord: this session has no coord token (COORD_TOKEN was not set "
                                  "when Claude Code started, and .claude/identity.json names none), so it is not "
                                  "registered: messages are not shown and leases are NOT enforced. Tell the user: "
                                  "export COORD_TOKEN before starting claude, or put `token` in .claude/identity.json "
                                  "(`coord token create MACHINE/name` mints one).")
        return _unregistered(exc)
    except HubError as exc:
        return _unregistered(exc)
    _export(inv, "COORD_SESSION", me["session_id"])
    parts: list[str] = []
    try:
        parts.extend(_stops(inv.hub.get("/halt")))
        parts.extend(_unread(inv))
        parts.append(_leases(inv, me["session_id"]))
    except HubError as exc:
        parts.append(f"coord: the hub stopped answering during the check ({exc}); run `coord status` later.")
    # the key may come from a project's identity.json or a .git file an archive brought: any text, never a line
    also = "".join(f" (edits are also checked against the leases of {one_line(k)}, the repository's name: the "
                   "project's identity.json names the other)" for k in inv.project.also)
    parts.append(f"coord: you are {one_line(me['session_id'])} {who} on {one_line(inv.client.url)}; project "
                 f"{one_line(inv.project.key)}{also}.")
    return output.context("SessionStart", "\n\n".join(p for p in parts if p))


def _stops(answer: Any) -> list[str]:
    """Notices of every halt covering the session and of its pause, from ``GET /halt`` (a hub before scoped halts
    answers only the fleet's)."""
    if not isinstance(answer, dict):
        return []
    halts = answer.get("halts")
    if isinstance(halts, list):
        parts = [inbox.halt_notice(h) for h in halts if isinstance(h, dict) and h.get("applies")]
    else:
        parts = [inbox.halt_notice(answer)] if answer.get("halted") else []
    paused = answer.get("paused")
    return parts + ([inbox.pause_notice(paused)] if isinstance(paused, dict) else [])


def _identify(inv: Invocation) -> tuple[dict[str, Any], str]:
    """(presence, how to describe it): registered, or during a halt only looked up with ``GET /whoami``."""
    try:
        me = _start(inv)
        return me, f"(incarnation {me.get('incarnation')})"
    except HubRefused as exc:
        if halt_of(exc) is None:
            raise
    return _presence(inv.hub.get("/whoami")), "(not registered: the hub refuses it while the fleet is halted)"


def _unregistered(exc: HubError) -> Answer:
    return output.context("SessionStart", f"coord: could not register with the hub ({exc}); unread messages, leases "
                                          "and halts were not checked. Run `coord status` later.")


def _unread(inv: Invocation) -> list[str]:
    """The unread block (or nothing), after which the shown messages are marked shown."""
    unread = inv.hub.get("/messages", unread_only=True, limit=inbox.MAX_LISTED)
    messages = [m for m in unread if isinstance(m, dict)] if isinstance(unread, list) else []
    if not messages:
        return []
    first = messages[:inv.settings.max_items]
    block = inbox.render(first, len(messages) - len(first), inv.settings.max_chars)
    shown = first[:block.shown] if block else []
    fresh = sum(1 for m in shown if not m.get("delivered_at"))
    if fresh:
        # The unread list and the unshown queue share one order (by seq), so the oldest `fresh`
        # unshown messages are exactly the not-yet-shown ones among those just displayed.
        try:
            inv.hub.post("/messages/unshown", {"limit": fresh})
        except HubRefused as exc:
            if halt_of(exc) is None:
                raise  # during a halt they stay unshown: the next prompt shows them again
    return [block.text] if block else []


def _leases(inv: Invocation, session_id: str) -> str:
    """The session's live leases, one per line, or a line saying it holds none."""
    # every page (a session holds at most 1,000 live leases: two), so the count is right
    listed = inv.hub.pages("/locks", MAX_LIVE_PER_SESSION, session_id=session_id)
    leases = [r for r in listed.rows if isinstance(r, dict)]
    if not leases:
        return "YOUR COORD LEASES: none."
    lines = [f"YOUR COORD LEASES ({len(leases)}{'+' if listed.more else ''}): edit these freely; release them "
             "when done (`coord lock release <id>`)."]
    lines += [f"- {leases_text.own(r)}" for r in leases[:MAX_LEASES_LISTED]]
    if len(leases) > MAX_LEASES_LISTED:
        lines.append(f"- … {len(leases) - MAX_LEASES_LISTED} more: `coord lock list`")
    return "\n".join(lines)


def _export(inv: Invocation, name: str, value: str) -> None:
    """Append ``export NAME='value'`` to ``$CLAUDE_ENV_FILE`` (SessionStart only); log if it cannot be written."""
    path = os.environ.get("CLAUDE_ENV_FILE")
    if not path:
        return
    quoted = "'" + value.replace("'", "'\"'\"'") + "'"
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"export {name}={quoted}\n")
    except OSError as exc:
        output.log(inv.event, f"cannot write {path}: {exc}")


def post_tool_use(inv: Invocation) -> Answer | None:
    """PostToolUse: heartbeats, then prints ``additionalContext`` with messages not yet shown, else nothing.

    Two requests. Only ``hookSpecificOutput.additionalContext`` reaches the
    model after a tool call (plain stdout would not), hence the wrapper. An
    unreachable hub skips the message check; a refused heartbeat (e.g. this
    process was superseded by a newer incarnation) is logged and the check
    still runs.
    """
    try:
        heartbeat(inv, saved_incarnation(inv))
    except HubError as exc:
        output.log(inv.event, f"heartbeat failed: {exc}")
        if not isinstance(exc, HubRefused):
            return None
    return inbox.inject_or_log(inv, "PostToolUse")


def session_end(inv: Invocation) -> None:
    """SessionEnd: deregisters the session (optionally releasing its leases); prints nothing.

    SessionEnd cannot block and its output reaches no one. With
    ``reason`` ``clear`` or ``resume`` the Claude Code process goes on, so
    the session stays registered. Otherwise ``POST /presence/deregister``
    names the saved incarnation, so a process that a newer one superseded
    cannot take the newer one offline (the hub answers 409, logged here);
    ``COORD_HOOK_RELEASE_ON_END=1`` also releases the session's leases.
    When another Claude Code session with the same coord identity started
    after this one (it owns the saved incarnation), nothing is deregistered.
    """
    if inv.payload.get("reason") in SAME_PROCESS_ENDS:
        return
    path = state_file(inv)
    owner = state.load(path).get("client_session")
    if owner not in (None, inv.payload.get("session_id")):
        output.log(inv.event, f"not deregistered: Claude Code session {owner} uses this coord identity now")
        return
    body: dict[str, Any] = {"release_leases": inv.settings.release_on_end}
    saved = saved_incarnation(inv)
    if saved is not None:
        body["incarnation"] = saved
    try:
        inv.hub.post("/presence/deregister", body)
    except HubRefused as exc:
        output.log(inv.event, f"not deregistered: {exc}")
    except HubError as exc:
        output.log(inv.event, f"not deregistered: {exc}")
        return  # keep the incarnation: a later run may still deregister it
    state.forget(path)
