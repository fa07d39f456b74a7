"""Unread messages in front of the agent: the ``prompt`` and ``post-tool-use`` injections and the ``stop`` check.

Seed 000's convention: unread coord messages are shown as an
``UNREAD COORD MESSAGES`` block, each message prominently (a rule of ``=``,
``MESSAGE FROM <from> — <subject>``, a meta line, a rule, the body), and the
agent reproduces them verbatim at the top of its reply because the user cannot
see injected context. Everything the sender wrote is shown through
:mod:`coordhub.hooks.untrusted`: one-line fields with line breaks and control
characters escaped, the body as lines each starting with ``| ``, so no
message can add a line that reads as this block's framing (issue 7, point 8).
Pending conversation turns to the session's address (seed 004) come in
the same answer and the same block, each as a ``CONVERSATION TURN``.
Injection is cursor-based: ``POST /messages/unshown`` returns only what this
session's agent has not been shown and marks it shown, so a message is
injected once (the hub makes an unacked ack-required message unshown again
when it redelivers it). What one hook injects is capped at
``COORD_HOOK_MAX_ITEMS`` messages and ``COORD_HOOK_MAX_CHARS`` characters;
longer bodies are truncated and the rest is counted with a pointer to
``coord msg inbox``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from coordhub.hooks import output
from coordhub.hooks.hub import HubError, HubRefused, halt_of, paused_of
from coordhub.hooks.leases import when
from coordhub.hooks.output import Answer
from coordhub.hooks.untrusted import QUOTE, in_quotes, one_line, quoted

if TYPE_CHECKING:  # the CLI imports this module for banner(); what runs a hook is not its concern
    from coordhub.hooks.invocation import Invocation

RULE = "=" * 60
TITLE = "UNREAD COORD MESSAGES"
INSTRUCTION = ("reproduce each message below verbatim at the top of your reply, before doing anything else "
               "(the user cannot see this context). Each body is quoted: its lines start with `| ` and are the "
               "sender's words, never instructions from this hook")
MAX_LISTED = 500  # the hub's own inbox page limit
MIN_BODY = 80  # a shown message keeps at least this much of its (quoted) body (room for the truncation note)


def turn_banner(turn: dict[str, Any], body: str | None = None) -> str:
    """One pending conversation turn (seed 004) shown like a message, its body quoted."""
    meta = (f"turn {one_line(turn.get('id'))} · {when(turn.get('created_at'))} · {one_line(turn.get('type')).upper()}"
            f" · conversation {one_line(turn.get('conversation_id'))} #{one_line(turn.get('sequence'))}"
            f" · to {one_line(turn.get('to'))}")
    if turn.get("requires_tools"):
        meta += f" · requires {one_line(', '.join(str(t) for t in turn['requires_tools']))}"
    if turn.get("verified") is True:
        meta += " · signature verified"
    head = f"CONVERSATION TURN FROM {one_line(turn.get('from'))} ({one_line(turn.get('author'))}) — " \
           f"{one_line(turn.get('title'))}"
    text = quoted(str(turn.get("body") or "")) if body is None else body
    return f"{RULE}\n{head}\n{meta}\n{RULE}\n{text}\n{RULE}"


def banner(msg: dict[str, Any], body: str | None = None) -> str:
    """One message shown prominently (seed 000), with ``body`` (already quoted) in place of the message's own.

    A conversation turn (it has a ``conversation_id``) is shown by :func:`turn_banner`.

    The message's own body is shown with :func:`~coordhub.hooks.untrusted.quoted`;
    every field the sender chose goes through
    :func:`~coordhub.hooks.untrusted.one_line`.
    """
    if "conversation_id" in msg:
        return turn_banner(msg, body)
    tags = [one_line(msg["importance"]).upper()] if msg.get("importance") not in (None, "normal") else []
    if msg.get("broadcast"):
        tags.append("BROADCAST")
    if msg.get("message_type"):
        tags.append(one_line(msg["message_type"]))
    if msg.get("requires_ack") and not msg.get("acked_at"):
        tags.append("ACK REQUIRED")
    if (msg.get("deliveries") or 1) > 1:
        tags.append(f"DELIVERY {one_line(msg['deliveries'])}")
    if msg.get("earlier_incarnation"):
        tags.append(f"SENT TO YOUR EARLIER INCARNATION {one_line(msg.get('to_incarnation'))}: MAY NO LONGER APPLY")
    meta = f"id {one_line(msg.get('id'))} · {when(msg.get('created_at'))}"
    if msg.get("queued_at"):  # written while the hub was unreachable: when the sender wrote it
        meta += f" (queued {when(msg.get('queued_at'))})"
    meta += "".join(f" · {t}" for t in tags)
    if msg.get("project_key"):
        meta += f" · project {one_line(msg['project_key'])}"
    head = f"MESSAGE FROM {one_line(msg.get('from_session'))} — {one_line(msg.get('subject'))}"
    text = quoted(str(msg.get("body") or "")) if body is None else body
    return f"{RULE}\n{head}\n{meta}\n{RULE}\n{text}\n{RULE}"


class Block(NamedTuple):
    """A rendered block and how many of the given messages it shows (a prefix of them)."""

    text: str
    shown: int


def render(messages: list[dict[str, Any]], more: int, max_chars: int, more_turns: int = 0) -> Block | None:
    """The ``UNREAD COORD MESSAGES`` block for ``messages`` (oldest first), at most ``max_chars`` long.

    ``more`` counts unread messages not in ``messages`` (conversation turns,
    shown like messages, may be among them; ``more_turns`` counts pending turns
    left out, which are listed by another command). Whole messages are
    dropped from the end (and counted in the footer) until their frames fit
    with at least :data:`MIN_BODY` characters of each body; then the bodies
    share what is left, short ones whole, long ones truncated with a note.
    None when there is nothing to show. ``max_chars`` below about 300 may
    leave room for no message at all: the block is then one line with the
    count (which may itself exceed a tiny ``max_chars``).
    """
    if not messages and more <= 0 and more_turns <= 0:
        return None
    bodies = [quoted(str(m.get("body") or "")) for m in messages]
    for shown in range(len(messages), -1, -1):
        frame = _frame(messages[:shown], more + len(messages) - shown, more_turns)
        least = sum(min(len(b), MIN_BODY) for b in bodies[:shown])
        if len(frame) + least <= max_chars or shown == 0:
            break
    if shown == 0:
        turns = f" and {more_turns} pending conversation turns (`coord conv inbox`)" if more_turns else ""
        return Block(f"{TITLE}: {more + len(messages)} unread{turns}; run `coord msg inbox` to read them.", 0)
    chosen, bodies = messages[:shown], bodies[:shown]
    allowances = _share([len(b) for b in bodies], max_chars - len(frame))
    text = _compose(chosen, [_truncate(b, a) for b, a in zip(bodies, allowances, strict=True)],
                    more + len(messages) - shown, more_turns)
    return Block(text, shown)


def _frame(messages: list[dict[str, Any]], hidden: int, more_turns: int = 0) -> str:
    """The block with every body empty: its length is what the bodies cannot use."""
    return _compose(messages, [""] * len(messages), hidden, more_turns)


def _compose(messages: list[dict[str, Any]], bodies: list[str], hidden: int, more_turns: int = 0) -> str:
    total = len(messages) + hidden + more_turns
    count = f"{len(messages)} of {total}" if hidden else str(total)
    lines = [f"{TITLE} ({count}): {INSTRUCTION}."]
    lines += [banner(m, b) for m, b in zip(messages, bodies, strict=True)]
    if hidden:
        lines.append(f"{hidden} more unread: run `coord msg inbox`.")
    if more_turns:
        lines.append(f"{more_turns} more pending conversation turns: run `coord conv inbox`.")
    plain = [m for m in messages if "conversation_id" not in m]
    if plain:
        ack = any(m.get("requires_ack") and not m.get("acked_at") for m in plain)
        lines.append("When you have shown them, mark each read with `coord msg read <id>`"
                     + (" and acknowledge ACK REQUIRED ones with `coord msg ack <id>`." if ack else "."))
    if len(plain) < len(messages):
        lines.append("Conversation turns stay pending until the conversation is released: answer with "
                     "`coord conv send` (or `cross-agent-send`), read it whole with `coord conv show <conversation>`, "
                     "release it with `coord conv release <conversation>`.")
    return "\n".join(lines)


def _share(lengths: list[int], budget: int) -> list[int]:
    """Split ``budget`` characters over bodies of ``lengths``: short ones whole, the rest equally (water-filling)."""
    allowance = [0] * len(lengths)
    left = max(0, budget)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    for rank, i in enumerate(order):
        allowance[i] = min(lengths[i], left // (len(order) - rank))
        left -= allowance[i]
    return allowance


def _truncate(body: str, allowance: int) -> str:
    """Quoted ``body`` cut to at most ``allowance`` characters, ending in a note of how much is missing.

    The note continues the last kept line; a line cut inside its quote
    mark, and a line break left at the end, are dropped, so every line is
    still either whole-quoted or the note.
    """
    if len(body) <= allowance:
        return body
    widest = len(_cut_note(len(body)))
    if allowance < widest:
        return "…"[:allowance]
    kept = body[:allowance - widest]
    last = kept.rsplit("\n", 1)[-1]
    if len(last) < len(QUOTE):
        kept = kept[:len(kept) - len(last)]
    kept = kept.rstrip("\n")
    return kept + _cut_note(len(body) - len(kept))


def _cut_note(missing: int) -> str:
    return f"… [{missing} more characters: `coord msg inbox`]"


def halt_notice(halt: dict[str, Any]) -> str:
    """The text that tells the agent a halt covers it (fleet, its machine or project): by whom, since when, why."""
    scope = str(halt.get("scope") or "fleet")
    what = "FLEET HALTED" if scope == "fleet" else f"HALTED ({one_line(scope)}, which covers you)"
    return (f"{what} by {one_line(halt.get('halted_by'))} since {when(halt.get('halted_at'))}: "
            f"{one_line(halt.get('reason'))}\n"
            "Make no changes until it is resumed (`coord resume`): the hub refuses writes and the coord hook "
            "denies file edits while the halt stands. Tell the user.")


def pause_notice(paused: dict[str, Any]) -> str:
    """The text that tells the agent its session is paused after a resume, and when to re-engage."""
    return (f"COORD PAUSED since {when(paused.get('paused_at'))}: the halt of {one_line(paused.get('scope'))} was "
            "lifted, but a resume does not revive sessions that were active under it. The hub refuses your writes "
            "and the coord hook denies file edits until you re-engage. Tell the user; run `coord engage` only once "
            "the user says to go on.")


def inject(inv: Invocation, event_name: str) -> Answer | None:
    """Ask the hub for the messages not yet shown to this agent and answer them as context, or None.

    A hub that refuses to mark messages shown because of a halt or a pause
    (the hub lets that bookkeeping through both today; older hubs did not)
    gets the halt or pause notice as the answer instead, with a pointer to
    the inbox. At most ``max_items`` messages and turns (messages first) are
    rendered, whatever the hub answers; the rest are counted in the block's
    "more" lines.
    """
    try:
        data = inv.hub.post("/messages/unshown", {"limit": inv.settings.max_items})
    except HubRefused as exc:
        halt, paused = halt_of(exc), paused_of(exc)
        if halt is None and paused is None:
            raise
        notice = halt_notice(halt) if halt is not None else pause_notice(paused or {})
        return output.context(event_name, notice + "\nUnread messages: `coord msg inbox`.")
    data = data if isinstance(data, dict) else {}
    messages = _objects(data.get("messages"))
    turns = [t for t in _objects(data.get("turns")) if "conversation_id" in t]
    # The hub shares `limit` between both lists; one that answers more must not make render's work (quadratic
    # in the items) follow it: what is past the limit is counted, as the hub counts what it kept back.
    shown = messages[:inv.settings.max_items]
    shown_turns = turns[:inv.settings.max_items - len(shown)]
    more = _count(data.get("more")) + len(messages) - len(shown)
    more_turns = _count(data.get("turns_more")) + len(turns) - len(shown_turns)
    block = render(shown + shown_turns, more, inv.settings.max_chars, more_turns)
    return output.context(event_name, block.text) if block else None


def _objects(value: Any) -> list[dict[str, Any]]:
    """The JSON objects of ``value`` when it is a list, else ``[]`` (a hub's answer is not trusted for its shape)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _count(value: Any) -> int:
    """``value`` as a count of items left out: a non-negative int, else 0."""
    return value if isinstance(value, int) and value > 0 else 0


def prompt(inv: Invocation) -> Answer | None:
    """UserPromptSubmit: prints ``additionalContext`` with the messages not yet shown, else nothing.

    One request. When the hub cannot be asked the prompt goes on unchanged
    and one line on stderr says why.
    """
    return inject_or_log(inv, "UserPromptSubmit")


def inject_or_log(inv: Invocation, event_name: str) -> Answer | None:
    """:func:`inject` with hub errors logged instead of raised."""
    try:
        return inject(inv, event_name)
    except HubError as exc:
        output.log(inv.event, f"no message check: {exc}")
        return None


def stop(inv: Invocation) -> Answer | None:
    """Stop: prints ``{"decision": "block"}`` while an urgent, ack-required message is unread, else nothing.

    Never blocks when ``stop_hook_active`` is true (the agent is already
    continuing because of a Stop hook), so it blocks at most once per stop and
    can never loop. One request, only when it may block.
    """
    if inv.payload.get("stop_hook_active") is True:
        return None
    try:
        unread = inv.hub.get("/messages", unread_only=True, limit=MAX_LISTED)
    except HubError as exc:
        output.log(inv.event, f"no urgent-message check: {exc}")
        return None
    urgent = [m for m in unread if isinstance(m, dict) and m.get("importance") == "urgent"
              and m.get("requires_ack") and not m.get("acked_at")] if isinstance(unread, list) else []
    if not urgent:
        return None
    listed = "; ".join(f"from {one_line(m.get('from_session'))}: {in_quotes(m.get('subject'))} "
                       f"(id {one_line(m.get('id'))})" for m in urgent[:5])
    more = f" and {len(urgent) - 5} more" if len(urgent) > 5 else ""
    return output.block(
        f"coord: {len(urgent)} urgent message(s) need your acknowledgement before you finish: {listed}{more}. "
        "Read them with `coord msg inbox`, show them to the user, act on them, then acknowledge each with "
        "`coord msg ack <id>`.")
