"""Seed 002's script verbs on the hub: ``coord msg publish``, ``coord msg check``, ``coord msg ack [--comment]``.

Same arguments in the same order as seed 002's ``publish-message.sh``,
``check-messages.sh`` and ``ack-message.sh`` (``coord compat seed002-scripts``
writes those three as wrappers over these verbs). What changed, on purpose:

* Redis down made the seed's scripts fail fast; here the hub's softfail
  rules hold: a publish or an ack that cannot reach the hub is queued and
  sent later (exit 0), a check cannot be queued (exit 3).
* The sender is the caller's session (its token), never the environment;
  ``CLAUDE_INSTANCE_ID`` names the session only where nothing else does
  (docs/configuration.md).
* ``check`` lists, as seed 002's did, the messages addressed to the caller
  (its ``inbox:{instance}`` set held no broadcast: those went to
  ``inbox:all``), newest first, read or not. Seed 002's ``--all`` dropped the
  recipient filter and showed every instance's traffic, which the hub shows a
  session never: here ``--all`` shows all the hub lets the caller see, its
  direct messages and the broadcasts, and says so on stderr.
* Message ids: seed ids (``msg-1a2b3c4d``) of imported messages and hub ids
  are both accepted; an imported message is shown by its seed id.

``--seed-output`` (which the wrapper scripts pass) prints what seed 002's
scripts printed, line for line, for the scripts that parse it: ``  ID: …``,
``  From: A -> To: B``, ``Displayed N message(s)`` … (no colours; a field's
line breaks and control characters escaped, so each stays one line).
"""

from __future__ import annotations

import re
from typing import Any

import typer

from coordhub.cli.common import EXIT_USAGE, JSON_OPT, call, fail, show
from coordhub.cli.output import console, verbatim
from coordhub.cli.views import shown_time
from coordhub.client import CoordClient, HubError, Queued, Unreachable
from coordhub.client.wire import NEXT_BEFORE_SEQ, whole_number
from coordhub.core.identity import is_broadcast, unknown_recipient_warning
from coordhub.core.seed002 import (
    TO_ORCHESTRATOR,
    InboxScan,
    addressed,
    default_recipient,
    display_id,
    hub_message_id,
    matches,
    message_type,
    seed_message,
    unknown_message,
)
from coordhub.errors import Invalid

SEED_OUTPUT = typer.Option(False, "--seed-output", help="Print the lines seed 002's script printed (ID: …, "
                           "From: A -> To: B …), for scripts that parse them; --json wins.")


def _seconds(stamp: str) -> str:
    """A hub time (``2026-01-23T10:00:00.123456Z``) at seed 002's second precision (``2026-01-23T10:00:00Z``)."""
    return re.sub(r"\.\d+(?=Z$)", "", stamp)


def _type(text: str) -> str:
    try:
        return message_type(text).value
    except Invalid as exc:
        fail(exc.message, EXIT_USAGE)


def _me(c: CoordClient) -> str | None:
    """This client's session: the hub's answer, else the configured name (hub unreachable)."""
    try:
        return str(c.call("GET", "/api/coord/whoami")["session_id"])
    except Unreachable:
        session: str | None = c.settings.session
        return session


def publish(
    ctx: typer.Context,
    msg_type: str = typer.Argument(..., metavar="TYPE", help="READY_FOR_REVIEW, REVIEW_COMPLETE, REVIEW_FAILED, "
                                   "CONTRACT_CHANGE_PROPOSED, CONTRACT_APPROVED, META_CHANGE_REQUEST, GENERAL, "
                                   "NOTIFICATION (or another of seed 002's types)."),
    subject: str = typer.Argument(..., help="One-line subject."),
    description: str = typer.Argument(..., help="The message."),
    to: str | None = typer.Option(None, "--to", help="Recipient instance (session id), or 'all'. Default as seed "
                                  "002's script: orchestrator for review, contract-change and meta-change requests; "
                                  "backend and frontend each other; else all."),
    no_ack: bool = typer.Option(False, "--no-ack", help="Do not ask for an acknowledgement."),
    as_json: bool = JSON_OPT,
    seed_output: bool = SEED_OUTPUT,
) -> None:
    """Publish a typed message (seed 002's publish-message.sh): TYPE SUBJECT DESCRIPTION [--to INSTANCE]."""
    kind = _type(msg_type)

    def send(c: CoordClient) -> Any:
        target = to if to is not None else default_recipient(kind, None if kind in TO_ORCHESTRATOR else _me(c))
        return c.send_message(None if is_broadcast(target) else target, subject, description, message_type=kind,
                              requires_ack=not no_ack)

    m = call(ctx, send)
    if m.get("recipient_known") is False:
        typer.echo("coord: warning: " + unknown_recipient_warning(m["to_session"], m.get("did_you_mean") or []),
                   err=True)
    out = {**seed_message(m, m["from_session"]), "recipient_known": m.get("recipient_known")}
    show(out, as_json, _published_seed if seed_output else
         lambda s: console.print(f"published {s['id']} {s['type']} {s['from']} → {s['to']}: {m['subject']}"))


def _published_seed(s: dict[str, Any]) -> None:
    """What seed 002's publish-message.sh printed for a published message ``s`` (seed 002's message shape)."""
    from coordhub.hooks.untrusted import one_line

    lines = ["Message published:", f"  ID: {s['id']}", f"  Type: {s['type']}", f"  From: {s['from']} -> To: {s['to']}",
             f"  Subject: {one_line(s['payload']['subject'])}"]
    verbatim("\n".join(lines + (["  Requires acknowledgment: Yes"] if s["requires_ack"] else [])))


def check(
    ctx: typer.Context,
    pending: bool = typer.Option(False, "--pending", help="Only messages that need your ack and have none."),
    all_: bool = typer.Option(False, "--all", help="Broadcasts too (seed 002's showed every instance's "
                              "messages; the hub shows a session its own and the broadcasts only)."),
    sender: str | None = typer.Option(None, "--from", help="Only messages from this instance."),
    msg_type: str | None = typer.Option(None, "--type", help="Only messages of this type."),
    limit: int = typer.Option(100, "--limit", min=1, max=1000, help="At most this many, newest first."),
    as_json: bool = JSON_OPT,
    seed_output: bool = SEED_OUTPUT,
) -> None:
    """Messages to you, newest first, read or not (seed 002's check-messages.sh): [--pending] [--all] [--from I] …

    Broadcasts only with --all: seed 002's check listed the instance's own inbox, which held none.
    """
    kind = _type(msg_type) if msg_type else None
    if all_:
        typer.echo("coord: note: --all: your messages and the broadcasts; the hub shows no session another's "
                   "messages (seed 002's --all showed every instance's)", err=True)

    def scan(c: CoordClient) -> tuple[str, list[dict[str, Any]]]:
        me = str(c.call("GET", "/api/coord/whoami")["session_id"])
        walk = InboxScan(lambda m: addressed(m, None if all_ else me) and matches(m, sender, kind, pending), limit)
        fields: dict[str, str] = {}
        while walk.take(c.call("GET", "/api/coord/messages", params=walk.params(), fields=fields),
                        whole_number(fields.get(NEXT_BEFORE_SEQ))):
            fields.clear()
        return me, walk.found

    me, msgs = call(ctx, scan)
    rows = [seed_message(m, me) for m in msgs]
    show({"count": len(rows), "messages": rows}, as_json,
         lambda d: _listing_seed(d["messages"], me, pending) if seed_output else _listing(d["messages"]))


def _listing_seed(rows: list[dict[str, Any]], me: str, pending: bool) -> None:
    """What seed 002's check-messages.sh printed for ``rows`` (seed 002's message shape) checked by session ``me``,
    colours left out: its heading (``=== Coordination Messages ===``, ``Instance: …``; with ``--pending`` the
    ``Messages Pending Acknowledgment:`` line), a block per message, then its count and how to ack. The hub always
    knows who asks, so the seed's line for an unset instance id never shows."""
    from coordhub.hooks.untrusted import one_line

    lines = ["", "=== Coordination Messages ===", f"Instance: {one_line(me)}", ""]
    if pending:
        lines += ["Messages Pending Acknowledgment:", ""]
    if not rows:
        verbatim("\n".join([*lines, "  No pending messages." if pending else "No messages match the filter."]))
        return
    for s in rows:
        mark = "ACK" if s["acknowledged"] else "PENDING" if s["requires_ack"] else "INFO"
        lines += [f"[{mark}] {s['type'] or '-'}", f"  ID: {s['id']}", f"  From: {s['from']} -> To: {s['to']}",
                  f"  Time: {_seconds(s['timestamp'])}", f"  Subject: {one_line(s['payload']['subject'])}",
                  f"  Description: {one_line(s['payload']['description'])}", ""]
    # the seed's last line names its script where the seed kept it, whatever directory the wrappers are in
    verbatim("\n".join([*lines, "---", f"Displayed {len(rows)} message(s)", "",
                         "To acknowledge: ./scripts/coordination/ack-message.sh <message-id>"]))


def _listing(rows: list[dict[str, Any]]) -> None:
    from coordhub.hooks.untrusted import one_line

    if not rows:
        console.print("no messages")
    for s in rows:
        mark = "ACK" if s["acknowledged"] else "PENDING" if s["requires_ack"] else "INFO"
        verbatim(f"[{mark}] {s['id']} {s['type'] or '-'} {s['from']} → {s['to']} {s['timestamp']}")
        verbatim(f"    {one_line(s['payload']['subject'])}")
        if s["payload"]["description"]:
            verbatim(f"    {one_line(s['payload']['description'])}")


def named(err: HubError, ref: str) -> HubError:
    """``err`` as it should read for ``ref``, the id as typed: a 404 for a reference that is no UUID names ``ref``
    (:func:`~coordhub.core.seed002.unknown_message`)."""
    text = unknown_message(ref) if err.status == 404 else None
    if text is None:
        return err
    body: dict[str, Any] = err.body if isinstance(err.body, dict) else {}
    error = body.get("error")
    return HubError(err.status, err.code, text,
                    {**body, "error": {**(error if isinstance(error, dict) else {}), "message": text}})


def ack(
    ctx: typer.Context,
    message_id: str = typer.Argument(..., help="Message id, as `coord msg inbox` shows it (a hub id, or an "
                                               "imported message's seed id msg-…)."),
    comment: str | None = typer.Option(None, "--comment", help="Sent to the message's sender as a reply."),
    as_json: bool = JSON_OPT,
    seed_output: bool = SEED_OUTPUT,
) -> None:
    """Acknowledge a message (also marks it read); --comment replies to its sender (seed 002's ack-message.sh).

    One you had acked already is left as it is and said so ("already acked", --json "already": true; exit 0).
    """
    hub_id = hub_message_id(message_id)
    acker: list[str | None] = []  # who acked, for --seed-output's "Acknowledged by"

    def acknowledge(c: CoordClient) -> Any:
        try:
            m = c.ack(hub_id)
        except HubError as err:
            if seed_output and not as_json and err.status == 404:  # the lines seed 002's script printed, on stdout
                from coordhub.hooks.untrusted import one_line

                verbatim(f"Error: Message '{one_line(message_id)}' not found\n\nUse "
                         "'./scripts/coordination/check-messages.sh --pending' to see pending messages")
            raise named(err, message_id) from None
        if seed_output and not isinstance(m, Queued):
            acker.append(_me(c))
        if not comment:
            return m
        if isinstance(m, Queued):  # the hub is unreachable: the comment waits in the queue behind the ack
            c.send_message(None, f"Ack comment on {message_id}"[:500], comment, reply_to=hub_id)
            return m
        if m["from_session"].lower() != str(_me(c)).lower():
            reply = c.send_message(None, f"Re: {m['subject']}"[:500], comment, reply_to=m["id"])
            m = {**m, "comment_message": reply}
        return m

    m = call(ctx, acknowledge)
    sent = m.get("comment_message")
    if seed_output and not as_json:
        _acked_seed(m, acker[0] if acker else None, comment)
        return
    show(m, as_json, lambda r: console.print(_acked_line(r, sent if isinstance(sent, dict) else None)))


def _acked_seed(m: dict[str, Any], acker: str | None, comment: str | None) -> None:
    """What seed 002's ack-message.sh printed for message ``m`` (the hub's answer), acked by ``acker``.

    An ack that changed nothing (acked before) prints the same lines, as the
    seed's did, and says so on stderr.
    """
    from coordhub.hooks.untrusted import one_line

    lines = ["Message acknowledged:", f"  ID: {display_id(m)}", f"  Acknowledged by: {acker or '-'}",
             f"  Time: {_seconds(str(m.get('acked_at') or '-'))}"]
    verbatim("\n".join(lines + ([f"  Comment: {one_line(comment)}"] if comment else [])))
    if m.get("already"):
        typer.echo(f"coord: note: {display_id(m)} was acked already (at {shown_time(m['acked_at'])}); "
                   "nothing changed", err=True)


def _acked_line(m: dict[str, Any], comment: dict[str, Any] | None) -> str:
    """What ``ack`` says of message ``m`` (the hub's answer) and the ``comment`` reply it sent, if any."""
    said = (f"already acked {display_id(m)} (at {shown_time(m['acked_at'])})" if m.get("already")
            else f"acked {display_id(m)}")
    if comment is not None:
        return f"{said}; comment sent to {m['from_session']} as {comment['id']}"
    return f"{said}; nothing changed" if m.get("already") else said
