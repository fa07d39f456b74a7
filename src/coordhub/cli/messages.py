"""``coord msg``: send, inbox, read, ack (seed 000), thread; publish, check and ``ack --comment`` (seed 002)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from coordhub.cli import seed002, views
from coordhub.cli.common import EXIT_USAGE, JSON_OPT, call, expand_recipient, fail, read_text_arg, show
from coordhub.cli.output import console
from coordhub.client import HubError, Queued
from coordhub.client.calls import record_id
from coordhub.client.outcomes import BadArgument
from coordhub.client.wire import NEXT_AFTER_SEQ
from coordhub.core.identity import unknown_recipient_warning
from coordhub.core.seed002 import display_id, message_ref
from coordhub.core.vocab import Importance

app = typer.Typer(help="Messages: send, read your inbox or a thread, mark read, ack.", no_args_is_help=True)


@app.command()
def send(
    ctx: typer.Context,
    to: str = typer.Argument(..., help="ALL / fleet / broadcast for the whole fleet; a machine name "
                                       "(HOWARD-HOME → HOWARD-HOME/claude-main, or the session named HOWARD-HOME "
                                       "when the hub knows only that one); or a full session id."),
    subject: str = typer.Argument(..., help="One-line subject."),
    body: str | None = typer.Argument(None, help="Message body (or use --body-file)."),
    body_file: Path | None = typer.Option(None, "--body-file", help="Read the body from a file ('-' = stdin)."),
    project: str | None = typer.Option(None, "--project", help="Project key the message is about."),
    importance: Importance = typer.Option("normal", "--importance", help="How much it matters."),
    message_type: str | None = typer.Option(None, "--type", help="Label, e.g. READY_FOR_REVIEW (seed 002)."),
    requires_ack: bool = typer.Option(False, "--requires-ack", help="Ask the recipient to acknowledge."),
    reply_to: str | None = typer.Option(None, "--reply-to", help="Id of the message this answers (a hub id, or "
                                        "an imported message's seed id msg-…)."),
    as_json: bool = JSON_OPT,
) -> None:
    """Send a message to a session, a machine, or the whole fleet.

    Example: coord msg send HOWARD-HOME "review please" "PR 12 is ready" --requires-ack
    """
    text = read_text_arg(body, body_file, "body")
    extra: dict[str, Any] = {"importance": importance, "requires_ack": requires_ack}
    for key, value in (("project_key", project), ("message_type", message_type), ("reply_to", reply_to)):
        if value is not None:
            extra[key] = value
    recipient = expand_recipient(to)
    bare = recipient is not None and "/" not in to
    if bare:  # a machine name: the hub decides in the send which session it is (core.identity.machine_recipient);
        # a hub from before to_machine gets `recipient` (client.downgrade)
        extra["to_machine"] = to
    msg = call(ctx, lambda c: c.send_message(None if bare else recipient, subject, text, **extra))
    if bare and isinstance(msg, dict) and "/" not in msg["to_session"]:  # the hub knew only the session `to`
        typer.echo(f"coord: sent to the session {msg['to_session']}: the hub has never seen {recipient}, the "
                   f"machine {to}'s session", err=True)
    if isinstance(msg, dict) and msg.get("recipient_known") is False:  # a typo shows at once (issue 7)
        typer.echo("coord: warning: " + unknown_recipient_warning(msg["to_session"], msg.get("did_you_mean") or []),
                   err=True)
        if bare:  # a bare name became MACHINE/claude-main (seed 000's rule)
            typer.echo(f"coord: note: {to} was read as a machine, {recipient}; a session named {to} alone (seed "
                       f"002's instances) is addressed by `coord msg publish TYPE SUBJECT TEXT --to {to}`", err=True)
    show(msg, as_json, lambda m: console.print(f"sent {m['id']} to {m['to_session']}"))


@app.command()
def inbox(
    ctx: typer.Context,
    all_: bool = typer.Option(False, "--all", help="Every message (read too), newest first."),
    limit: int = typer.Option(100, "--limit", min=1, max=500, help="At most this many."),
    as_json: bool = JSON_OPT,
) -> None:
    """Your unread messages (direct and broadcast), shown prominently; --all for history."""
    fields: dict[str, str] = {}
    msgs = call(ctx, lambda c: c.inbox(unread_only=not all_, limit=limit, fields=fields))
    more = not all_ and NEXT_AFTER_SEQ in fields  # unread messages the hub left out of this answer
    if more and as_json:
        typer.echo(f"coord: more unread messages wait behind these {len(msgs)} (a higher --limit, at most 500, "
                   "or this command again once these are read)", err=True)
    show(msgs, as_json, lambda rows: views.inbox(rows, history=all_, more=more))


@app.command()
def thread(
    ctx: typer.Context,
    thread_id: str = typer.Argument(..., help="The thread_id messages carry (`coord msg inbox --json` shows it); "
                                              "a thread a reply started is named by the id of the message it "
                                              "answered (an imported message's seed id msg-… names it too)."),
    after_seq: int = typer.Option(0, "--after-seq", min=0, help="Only messages with a higher seq (the next page: "
                                                                "what the last answer said to use)."),
    limit: int = typer.Option(100, "--limit", min=1, max=500, help="At most this many."),
    as_json: bool = JSON_OPT,
) -> None:
    """A thread's messages you sent, were sent, or that were broadcast, oldest first; marks nothing read.

    Other sessions' direct messages in the thread are not shown. When more follow, the last line (on stderr
    with --json, which prints the list of messages) says which --after-seq reads on.

    Example: coord msg thread 019ad3f0-6c1e-7a4b-8f21-3c9d0e5b7a12
    """
    page = call(ctx, lambda c: c.thread(thread_id, after_seq=after_seq, limit=limit))
    show(page, as_json, lambda rows: views.thread(rows, thread_id))
    if page.next_after_seq is not None:
        typer.echo(f"More follow: coord msg thread {thread_id} --after-seq {page.next_after_seq}", err=as_json)


MAX_READ_ALL = 10_000  # --all marks at most this many (pages of 500), so a flood cannot keep it running


@app.command()
def read(ctx: typer.Context,
         message_ids: list[str] = typer.Argument(None, help="Message ids, as `coord msg inbox` shows them (or an "
                                                 "imported message's seed id, msg-…).", show_default=False),
         all_: bool = typer.Option(False, "--all", help="Mark every unread message read."),
         as_json: bool = JSON_OPT) -> None:
    """Mark messages read (for you only): the ids given, or every unread one with --all.

    One you had read already is left as it is and said so ("already read", --json "already": true; exit 0).
    """
    if not message_ids and not all_:
        fail("give the ids of the messages to mark read (`coord msg inbox` shows them), or --all for every unread "
             "one", EXIT_USAGE)
    if message_ids and all_:
        fail("give message ids or --all, not both", EXIT_USAGE)
    for given in message_ids or []:  # every id checked before the first is marked: none marked when one is bad
        try:
            record_id(message_ref(given), "message id")
        except BadArgument as err:
            fail(err.message, EXIT_USAGE)

    def mark_one(c: Any, given: str) -> Any:
        try:
            return c.mark_read(message_ref(given))
        except HubError as err:  # a seed id's 404 would name the UUID it maps to, which the user never typed
            raise seed002.named(err, given) from None

    def mark(c: Any) -> Any:
        if not all_:
            done = [mark_one(c, i) for i in message_ids]
            queued = [r for r in done if isinstance(r, Queued)]  # hub unreachable: the rest were queued too
            return queued[-1] if queued else done
        done = []
        while len(done) < MAX_READ_ALL:
            unread = c.inbox(unread_only=True, limit=500)
            if not unread:
                break
            for m in unread:
                marked = c.mark_read(m["id"])
                # Writes unanswered while reads are (a busy hub): stop at the first mark queued, as the rest
                # would each wait on the queue's drain, and the page, still unread, would be read again and again;
                # a later `--all` marks what is left.
                if isinstance(marked, Queued):
                    return marked
                done.append(marked)
        return done

    msgs = call(ctx, mark)
    show(msgs, as_json, lambda rows: console.print("\n".join(_read_line(m) for m in rows)
                                                   if rows else "no unread messages"))


def _read_line(m: dict[str, Any]) -> str:
    """``read <id>``, or for one read before this call, the line saying nothing changed.

    An imported message is named by its seed-002 id (:func:`~coordhub.core.seed002.display_id`), as ``coord msg
    check`` shows it and ``coord msg ack`` names it: the hub's UUID for it is one the user never typed.
    """
    if m.get("already"):
        return f"already read {display_id(m)} (at {views.shown_time(m['read_at'])}); nothing changed"
    return f"read {display_id(m)}"


# Seed 002's script verbs (publish, check, ack with --comment) live in their own module.
app.command()(seed002.ack)
app.command()(seed002.publish)
app.command()(seed002.check)
