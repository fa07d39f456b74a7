"""Messages: direct, broadcast and threaded, with per-recipient read and ack state.

Contract §2.6: a message acknowledged to its sender is durable; read and ack
state belongs to each recipient, so one session reading a broadcast never
hides it from another; reading never consumes. Field names are seed 001's
(``from_session``, ``to_session``, ``project_key``, ``subject``, ``body``);
``to_session`` null, omitted or ``"ALL_SESSIONS"`` is a broadcast (seeds 001
and 000 disagree; both are accepted). ``message_type`` is a free label; seed
002's types are the documented set (:data:`KNOWN_TYPES`).
"""

from __future__ import annotations

import json
from typing import Any

from coordhub.clock import isoformat
from coordhub.core import paging, presence, projects, quota
from coordhub.core.events import emit_nowait
from coordhub.core.identity import (
    SYSTEM_SENDER,
    Actor,
    address,
    addressed,
    close_matches,
    is_orchestrated,
    machine_recipient,
    orchestrator_role,
    recipient,
    validate_session_id,
)
from coordhub.core.seed002 import display_id, message_ref
from coordhub.core.vocab import Importance, values
from coordhub.errors import Forbidden, Invalid, NotFound
from coordhub.ids import new_id
from coordhub.store.base import Row
from coordhub.store.tx import Tx

IMPORTANCE = values(Importance)
KNOWN_TYPES = ("READY_FOR_REVIEW", "REVIEW_COMPLETE", "REVIEW_FAILED", "CONTRACT_CHANGE_PROPOSED",
               "CONTRACT_APPROVED", "META_CHANGE_REQUEST", "GENERAL", "NOTIFICATION")  # seed 002
BROADCAST = "ALL_SESSIONS"
MAX_INBOX = 500
DEFAULT_ACK_WAIT_SECONDS = 300.0  # redeliver an unacked ack-required message after 5 minutes
DEFAULT_MAX_DELIVERIES = 3        # then dead-letter it and tell the sender
TEXT = ("subject", "body")        # a message's stored text, as paging.size counts it


def render(row: Row, viewer: str) -> dict[str, Any]:
    """The JSON form of a message as session ``viewer`` sees it (its receipt's read and ack state).

    A broadcast ``viewer`` sent is read for it (``read`` true, ``read_at``
    its receipt's or else the time it was sent): a sender never has its own
    broadcast unread (:func:`unread_count`), so a listing of the inbox agrees
    with the count. Likewise an ack-required one is acked for it
    (``acked_at`` its receipt's or else the time it was sent): a sender owes
    no ack to itself, so nothing that lists what awaits an ack (seed 002's
    ``pending_only``, the dashboard's Ack button) lists it.

    ``updated_at`` (seed 001's message record had it; missing here before) is the
    latest of its times as ``viewer`` sees them: sent, read, acked, delivered
    again, dead-lettered; the text of that one, so no timestamp more is rendered.
    """
    own = row["to_session"] is None and row["from_session"] == viewer
    read_at, acked_at = row.get("read_at"), row.get("acked_at")
    if own:
        read_at = row["created_at"] if read_at is None else read_at
        acked_at = row["created_at"] if acked_at is None and row["requires_ack"] else acked_at
    delivered_at, dead_at = row.get("delivered_at"), row.get("dead_at")
    created, read, acked = isoformat(row["created_at"]), isoformat(read_at), isoformat(acked_at)
    delivered, dead = isoformat(delivered_at), isoformat(dead_at)
    latest, updated = row["created_at"], created
    for at, text in ((read_at, read), (acked_at, acked), (delivered_at, delivered), (dead_at, dead)):
        if at is not None and at > latest:
            latest, updated = at, text
    return {
        "id": row["id"],
        "seq": row["seq"],
        "from_session": row["from_session"],
        "to_session": row["to_session"] if row["to_session"] is not None else BROADCAST,
        "broadcast": row["to_session"] is None,
        "project_key": row["project_key"],
        "subject": row["subject"],
        "body": row["body"],
        "thread_id": row["thread_id"],
        "reply_to": row["reply_to"],
        "importance": row["importance"],
        "message_type": row["message_type"],
        "requires_ack": bool(row["requires_ack"]),
        "created_at": created,
        "queued_at": isoformat(row.get("queued_at")),
        "read": read_at is not None,
        "read_at": read,
        "acked_at": acked,
        "to_incarnation": row.get("to_incarnation"),
        "delivered_at": delivered,
        "deliveries": row.get("deliveries") or 1,
        "ack_deadline": isoformat(row.get("ack_deadline")),
        "dead_lettered_at": dead,
        "origin_id": row.get("origin_id"),
        "updated_at": updated,
    }


def send(tx: Tx, actor: Actor, *, to_session: str | None, subject: str, body: str, to_machine: str | None = None,
         project_key: str | None = None, thread_id: str | None = None, reply_to: str | None = None,
         importance: str = "normal", message_type: str | None = None, requires_ack: bool = False,
         ack_wait_seconds: float | None = None, max_deliveries: int | None = None,
         escalate_to: str | None = None, to_incarnation: int | None = None, queued_at: float | None = None,
         now: float) -> dict[str, Any]:
    """Store a message from the actor; a direct one gets its recipient's unread receipt at once.

    ``reply_to`` must name a message the actor can see; the reply joins its
    thread (``thread_id`` defaults to the parent's thread, else the parent's
    id) and, unless ``to_session`` says otherwise (``"ALL_SESSIONS"`` to
    answer the whole fleet), goes to the parent's sender. A direct message
    records the recipient's live incarnation (or the given
    ``to_incarnation``): a later incarnation still gets it as unread, flagged
    as sent to its predecessor (:func:`unshown`). An
    ack-required direct message is redelivered every ``ack_wait_seconds``
    until acked, at most ``max_deliveries`` times, then dead-lettered (see
    :func:`process_ack_deadlines`). ``queued_at`` is when a client first
    tried to send it (replayed from its softfail queue); kept as given unless
    later than ``now``, which it then becomes. Raises ``Invalid`` for bad values,
    ``NotFound`` for an unknown ``reply_to``.

    Recipients are stored under their first spelling (see
    :func:`~coordhub.core.identity.address`). A recipient the hub has never
    seen (no token, never acted) still gets the message, and the answer says
    so (issue 7): ``recipient_known`` is False and ``did_you_mean`` lists known
    sessions with similar ids; for a broadcast ``recipient_known`` is None.

    ``to_machine`` (instead of ``to_session``; ``Invalid`` with both) names the recipient by a bare name as seed
    000's CLI takes it, a machine: :func:`~coordhub.core.identity.machine_recipient` decides which session that is
    (``NAME/claude-main``, or a known session named ``NAME`` when the hub has never seen that one).

    ``reply_to`` is stored in the hub's spelling of an id (:func:`~coordhub.ids.canonical`); an imported message's
    seed-002 id (``msg-1a2b3c4d``) names it too (:func:`~coordhub.core.seed002.message_ref`). A ``thread_id`` is
    stored as given (:func:`thread_name`) unless it spells the id of a message in another spelling: then it is that
    message's thread, stored as the hub spells the id.
    """
    if to_machine is not None:  # only a send naming a machine pays for the look-up
        if to_session is not None:
            raise Invalid("give the recipient as to_session or as to_machine, not both", field="to_machine")
        to_session = machine_recipient(tx, to_machine)
    parent_ref = reply_to  # as the sender wrote it, for the 404
    reply_to = None if reply_to is None else message_ref(reply_to)
    thread_id = None if thread_id is None else thread_name(tx, actor, thread_id)
    if reply_to is not None and to_session is None:
        to_session = _visible(tx, actor, reply_to, parent_ref)["from_session"]  # a reply goes to the parent's sender
    to = recipient(to_session)
    _worker_may_send(actor, to)
    if escalate_to is not None:  # a dead letter is told to escalate_to, from the hub itself (review)
        _worker_may_send(actor, escalate_to.strip(), "escalate_to")
    known: bool | None = None
    row_to: Row | None = None
    if to is not None:
        to, known, row_to = addressed(tx, to, now)  # one read: the spelling, known, and the live incarnation
    if importance not in IMPORTANCE:
        raise Invalid(f"importance must be one of {', '.join(IMPORTANCE)}, not {importance!r}", field="importance")
    wait, tries = _ack_policy(ack_wait_seconds, max_deliveries)
    if escalate_to is not None:
        escalate_to, _ = address(tx, validate_session_id(escalate_to, "escalate_to"), now)
    if reply_to is not None:
        parent = _visible(tx, actor, reply_to, parent_ref)
        thread_id = thread_id or parent["thread_id"] or parent["id"]
    if to is not None and to_incarnation is None:
        to_incarnation = presence.live_incarnation(row_to, now)
    quota.charge_message(tx, actor, now, quota.size_of(subject, body))
    project_key = projects.fold(project_key)
    row: Row = {"id": new_id(), "from_session": actor.session_id, "to_session": to,
                "project_key": project_key, "subject": subject, "body": body, "thread_id": thread_id,
                "reply_to": reply_to, "importance": importance, "message_type": message_type,
                "requires_ack": int(requires_ack), "created_at": now,
                "to_incarnation": to_incarnation if to is not None else None,
                "ack_wait_seconds": wait if requires_ack else None, "max_deliveries": tries if requires_ack else None,
                "escalate_to": escalate_to, "queued_at": None if queued_at is None else min(queued_at, now)}
    seq = tx.messages.add(row)
    deadline = now + wait if requires_ack and to is not None else None
    if to is not None:
        tx.messages.add_receipt(to, seq, deadline)
    emit_nowait(tx, "message.sent", now, session_id=actor.session_id, project_key=project_key, subject_id=row["id"],
         target=to or "*", seq=seq, to_session=to or BROADCAST, subject=subject, importance=importance,
         message_type=message_type, thread_id=thread_id, requires_ack=requires_ack)
    out = render({**row, "seq": seq, "ack_deadline": deadline}, actor.session_id)
    out["recipient_known"] = known
    if known is False and to is not None:
        out["did_you_mean"] = close_matches(tx, to, actor.session_id)
    return out


def thread_name(tx: Tx, actor: Actor, given: str) -> str:
    """The ``thread_id`` a message sent with ``given`` is stored under: ``given`` itself, as the sender spelt it,
    unless it spells the id of a stored message ``actor`` may see (:func:`_visible`) in another of the hub's id
    spellings (upper case, braces, 32 hex digits, ``urn:uuid:``; :func:`~coordhub.ids.canonical`) or is the
    seed-002 id of an imported one (``msg-1a2b3c4d``; :func:`~coordhub.core.seed002.message_ref`), which names that
    message's thread and is stored as the hub spells the id.

    A message the actor may not see is treated as a missing one (the name is kept as given): otherwise the answer's
    ``thread_id`` would tell whether someone else's direct message exists (an existence oracle).

    A free name may look like a UUID (an MD5 digest is 32 hex digits): read as one, it was stored dashed, so
    the sender's own thread came back and was listed under a name it never gave. Looks one message up, and only
    for a name in an id spelling other than the hub's own.
    """
    as_id = message_ref(given)
    if as_id == given:
        return given
    try:
        _visible(tx, actor, as_id)
    except NotFound:
        return given
    return as_id


def _ack_policy(wait: float | None, tries: int | None) -> tuple[float, int]:
    wait = DEFAULT_ACK_WAIT_SECONDS if wait is None else wait
    tries = DEFAULT_MAX_DELIVERIES if tries is None else tries
    if not 1 <= wait <= 7 * 86400:
        raise Invalid("ack_wait_seconds must be between 1 and 604800 (a week)", field="ack_wait_seconds")
    if not 1 <= tries <= 100:
        raise Invalid("max_deliveries must be between 1 and 100", field="max_deliveries")
    return wait, tries


def _visible(tx: Tx, actor: Actor, message_id: str, shown: str | None = None) -> Row:
    """The message as the actor sees it; 404 if it does not exist or is someone else's direct message, naming it
    as ``shown`` (the reference the caller gave, when it is not the id itself)."""
    row = tx.messages.get(message_id, actor.session_id)
    if row is None or not (row["to_session"] in (None, actor.session_id)
                           or row["from_session"] == actor.session_id or actor.is_admin):
        raise NotFound(f"no message {shown or message_id!r} for {actor.session_id}")
    return row


def recipient_of(tx: Tx, message_id: str, shown: str | None = None) -> str | None:
    """The one recipient of a direct message, None for a broadcast; ``NotFound`` if there is no such message
    (naming it as ``shown``, when given)."""
    row = tx.messages.get(message_id, "")
    if row is None:
        raise NotFound(f"no message {shown or message_id!r}")
    return str(row["to_session"]) if row["to_session"] is not None else None


def get(tx: Tx, actor: Actor, message_id: str, shown: str | None = None) -> dict[str, Any]:
    """One message the actor sent, received, or that was broadcast; 404 otherwise, naming it as ``shown`` (the
    seed-002 id the caller gave for it, when not the id itself)."""
    return render(_visible(tx, actor, message_id, shown), actor.session_id)


def inbox(tx: Tx, session_id: str, *, unread_only: bool, limit: int = 100,
          before_seq: int | None = None) -> list[dict[str, Any]]:
    """A session's messages: unread ones oldest first, or (``unread_only=False``) all, newest first.

    Unread = direct messages to the session without ``read_at`` plus
    broadcasts (not its own) it has not read. Cost grows with the unread count,
    not with history. ``before_seq`` pages the full history. At most ``limit``
    messages and about :data:`~coordhub.core.paging.PAGE_BYTES` of them (see :func:`inbox_page`).
    """
    return inbox_page(tx, session_id, unread_only=unread_only, limit=limit, before_seq=before_seq)[0]


def inbox_page(tx: Tx, session_id: str, *, unread_only: bool, limit: int = 100, before_seq: int | None = None,
               after_seq: int = 0) -> tuple[list[dict[str, Any]], int | None]:
    """:func:`inbox`'s messages (unread ones with ``seq > after_seq``, history below ``before_seq``) and the seq
    to continue from when more follow, None at the end.

    An answer holds at most ``limit`` (≤ :data:`MAX_INBOX`) messages and about
    :data:`~coordhub.core.paging.PAGE_BYTES` of subjects and bodies (at least
    one message). The next answer starts at ``after_seq=`` the returned seq
    for unread messages, ``before_seq=`` it for history. Reading marks nothing
    read, so an unread message left out of this answer is still unread. Each
    message carries ``earlier_incarnation`` (see :func:`unshown`).
    """
    limit = max(1, min(limit, MAX_INBOX))
    session = tx.sessions.get(session_id)
    if unread_only:
        def fetch(k: int, last: Row | None) -> list[Row]:
            return _unread(tx, session_id, session, k, after_seq if last is None else int(last["seq"]))
    else:
        def fetch(k: int, last: Row | None) -> list[Row]:
            return tx.messages.history(session_id, (before_seq or 2**62) if last is None else int(last["seq"]), k)
    rows, more = paging.take(fetch, limit, TEXT)
    incarnation = int(session["incarnation"]) if session else 0
    return ([_flagged(render(r, session_id), incarnation) for r in rows],
            (int(rows[-1]["seq"]) if more and rows else None))


def thread_page(tx: Tx, session_id: str, thread_id: str, *, limit: int = 100,
                after_seq: int = 0) -> tuple[list[dict[str, Any]], int | None]:
    """The messages of thread ``thread_id`` that session ``session_id`` may read, oldest first from ``seq >
    after_seq``, and the seq to continue from (``after_seq=``) when more follow, None at the end.

    A thread holds every message sent with that ``thread_id`` (a reply takes its parent's) and the message whose
    id it is (the one a first reply answered). The session sees those it sent, those sent to it and broadcasts,
    each with its own read and ack state (:func:`render`); other sessions' direct messages in the thread are left
    out. An answer holds at most ``limit`` (≤ :data:`MAX_INBOX`) messages and about
    :data:`~coordhub.core.paging.PAGE_BYTES` of their subjects and bodies (at least one message). Empty for a
    thread with no message it may read, whether or not the thread exists. Reading marks nothing read. A
    ``thread_id`` names the thread stored under it as given (:func:`thread_name`) and, when it spells a UUID in any
    spelling the hub takes an id in (upper case, braces, 32 hex digits: :func:`~coordhub.ids.canonical`) or is an
    imported message's seed-002 id (``msg-…``: :func:`~coordhub.core.seed002.message_ref`), the thread stored
    under the hub's spelling of that id too: a message's thread, or a name an earlier hub stored dashed. Two names
    cost two reads of the store, each at most ``limit`` rows.
    """
    limit = max(1, min(limit, MAX_INBOX))
    names = dict.fromkeys((thread_id, message_ref(thread_id)))  # one name, or the given one and the id's spelling

    def fetch(k: int, last: Row | None) -> list[Row]:
        above = after_seq if last is None else int(last["seq"])
        # a row is stored under one name, but the message whose id names the thread is read by id as well
        found = {int(r["seq"]): r for name in names for r in tx.messages.thread(session_id, name, above, k)}
        return [found[seq] for seq in sorted(found)[:k]]

    rows, more = paging.take(fetch, limit, TEXT)
    return [render(r, session_id) for r in rows], (int(rows[-1]["seq"]) if more and rows else None)


def _unread(tx: Tx, session_id: str, row: Row | None, limit: int, after_seq: int) -> list[Row]:
    """Unread messages above ``after_seq``, oldest first; ``row``: the session's row (None: never seen)."""
    cursor = max(int(row["broadcast_cursor"]) if row else 0, after_seq)
    rows = (tx.messages.unread_direct(session_id, limit, after_seq)
            + tx.messages.unread_broadcasts(session_id, cursor, limit))
    rows.sort(key=lambda r: r["seq"])
    return rows[:limit]


def _worker_may_send(actor: Actor, to: str | None, field: str = "to_session") -> None:
    """Refuse (403) a send by an orchestrator worker to the whole fleet or to another of the orchestrator's
    sessions (a worker or a host); ``to`` None is a broadcast.

    A worker is a ``claude -p`` with Bash in a repository anyone may have written to, and every worker's hooks
    put its unread messages into its agent's context: one prompt-injected worker could instruct every other
    (review; the rule :func:`coordhub.core.assignments.may_direct` keeps for directing work). Its messages to
    people's sessions, and to itself, go through. ``field``: the request field that named ``to``. Hosts
    (``<m>/agent``) are not held to it: the name is a session's like any other to the dashboard and the
    seeds' habits, and a host's token is its machine's user's.
    """
    if orchestrator_role(actor.session_id) != "worker":
        return
    if to is None:
        raise Forbidden("an orchestrator worker may not broadcast: message a person's session instead",
                        field=field, acting_as=actor.session_id)
    if is_orchestrated(to) and to.lower() != actor.session_id.lower():
        raise Forbidden(f"an orchestrator worker may not message another of the orchestrator's sessions ({to!r}): "
                        "message a person's session instead", field=field, acting_as=actor.session_id)


def unread_count(tx: Tx, session_id: str) -> int:
    """How many messages the session has not read (direct and broadcast)."""
    row = tx.sessions.get(session_id)
    cursor = int(row["broadcast_cursor"]) if row else 0
    return (tx.messages.unread_direct_count(session_id)
            + tx.messages.unread_broadcast_count(session_id, cursor))


def unshown(tx: Tx, actor: Actor, limit: int, now: float) -> dict[str, Any]:
    """The actor's unread messages not yet shown to its agent (oldest first, at most ``limit``), now marked shown.

    "Shown" is the first step of a delivery (shown → read → acked): a hook
    injects these into the agent's context once. A redelivered message
    becomes unshown again. A direct message sent while an earlier
    incarnation of the session was live is shown too (nobody was shown it:
    unread is unread, seed 000), with ``earlier_incarnation`` true, so the
    agent knows it was meant for its predecessor and may no longer apply
    (a stale completion must not be taken as news: Gas Town #909). An answer holds about
    :data:`~coordhub.core.paging.PAGE_BYTES` of subjects and bodies at most
    (at least one message); ``more`` counts what is left, still unshown, for
    the next call.
    """
    limit = max(1, min(limit, MAX_INBOX))
    row = tx.sessions.get(actor.session_id)
    incarnation = int(row["incarnation"]) if row else 0
    cursor = int(row["broadcast_shown_cursor"]) if row else 0

    def fetch(k: int, last: Row | None) -> list[Row]:
        after = 0 if last is None else int(last["seq"])
        found = (tx.messages.unshown_direct(actor.session_id, k, after)
                 + tx.messages.unshown_broadcasts(actor.session_id, max(cursor, after), k))
        found.sort(key=lambda r: r["seq"])
        return found[:k]

    shown, more = paging.take(fetch, limit, TEXT)  # only what is answered is marked shown: nothing left out is lost
    # counted before marking; no count when nothing was left out
    left = tx.messages.unshown_count(actor.session_id, cursor) - len(shown) if more else 0
    for r in shown:
        tx.messages.mark_delivered(actor.session_id, r["seq"], now)
    if any(r["to_session"] is None for r in shown):
        first = tx.messages.first_unshown_broadcast(actor.session_id, cursor)
        new = first - 1 if first is not None else tx.messages.last_broadcast_seq()
        if new > cursor:
            tx.sessions.set_cursor(actor.session_id, "broadcast_shown_cursor", new)
    return {"messages": [_flagged(render({**r, "delivered_at": now}, actor.session_id), incarnation)
                         for r in shown],
            "more": max(0, left)}


def _flagged(message: dict[str, Any], incarnation: int) -> dict[str, Any]:
    """``message`` with ``earlier_incarnation``: whether it was sent to an incarnation before ``incarnation``."""
    sent_to = message["to_incarnation"]
    message["earlier_incarnation"] = sent_to is not None and sent_to < incarnation
    return message


def _recipient_of(actor: Actor, row: Row, verb: str) -> None:
    if row["to_session"] is not None and row["to_session"] != actor.session_id:
        raise Forbidden(f"message {row['id']} is addressed to {row['to_session']}; only it may {verb} it")


def mark_read(tx: Tx, actor: Actor, message_id: str, now: float, shown: str | None = None) -> dict[str, Any]:
    """Mark a message read for the actor only (seed 001 ``PUT …/read``); idempotent.

    The message as :func:`render` gives it, with ``already``: True when the actor had read it before (the call
    changed nothing and emitted no event), read from the receipt the call reads anyway, as a lease release says
    it (:func:`coordhub.core.leases.release`).
    """
    row = _visible(tx, actor, message_id, shown)
    _recipient_of(actor, row, "mark read")
    already = row["read_at"] is not None
    if not already:
        tx.messages.mark_read(actor.session_id, row["seq"], now)
        if row["to_session"] is None:
            _advance_broadcast_cursor(tx, actor.session_id)
        emit_nowait(tx, "message.read", now, session_id=actor.session_id, subject_id=message_id,
             target=row["from_session"], **seed_id(row))
    return {**render(_visible(tx, actor, message_id), actor.session_id), "already": already}


def ack(tx: Tx, actor: Actor, message_id: str, now: float, shown: str | None = None) -> dict[str, Any]:
    """Acknowledge a message for the actor (also marks it read); idempotent.

    With ``already`` as :func:`mark_read` has it: True when the actor had acked it before (read alone is not
    acked: acking a message read but not acked is news, ``already`` False).
    """
    row = _visible(tx, actor, message_id, shown)
    _recipient_of(actor, row, "ack")
    already = row["acked_at"] is not None
    if not already:
        tx.messages.mark_acked(actor.session_id, row["seq"], now)
        if row["to_session"] is None:
            _advance_broadcast_cursor(tx, actor.session_id)
        emit_nowait(tx, "message.acked", now, session_id=actor.session_id, subject_id=message_id,
             target=row["from_session"], from_session=row["from_session"], **seed_id(row))
    return {**render(_visible(tx, actor, message_id), actor.session_id), "already": already}


def seed_id(row: Row) -> dict[str, str]:
    """``{"origin_id": …}`` for an event about message ``row`` when it was imported from seed 002 and its seed id
    leads back to it (:func:`~coordhub.core.seed002.display_id`), else ``{}``: a notification about it then names
    it as seed 002's code knew it (``get_message(n.message_id)``), as the imported notification of its sending
    does (:mod:`coordhub.core.imports`)."""
    shown = display_id(row)
    return {"origin_id": shown} if shown != row["id"] else {}


def _advance_broadcast_cursor(tx: Tx, session_id: str) -> None:
    """Move the cursor past every broadcast the session has now read, so unread scans stay short."""
    cursor = tx.sessions.broadcast_cursor(session_id)
    first_unread = tx.messages.first_unread_broadcast(session_id, cursor)
    new = first_unread - 1 if first_unread is not None else tx.messages.last_broadcast_seq()
    if new > cursor:
        tx.sessions.set_broadcast_cursor(session_id, new)


def process_ack_deadlines(tx: Tx, now: float, escalation_session: str | None = None) -> dict[str, int]:
    """Redeliver or dead-letter every ack-required receipt whose deadline passed; return the counts.

    Redelivery (at-least-once, as NATS JetStream's AckWait/MaxDeliver): the
    receipt becomes unread and unshown again, ``deliveries`` grows by one and
    a new deadline is set. After ``max_deliveries`` it is dead-lettered: the
    sender (and the message's ``escalate_to``, else ``escalation_session``)
    gets a message saying so. Idempotent for a given ``now``.
    """
    redelivered = dead = 0
    for r in tx.messages.ack_due(now):
        if r["deliveries"] < (r["max_deliveries"] or DEFAULT_MAX_DELIVERIES):
            wait = r["ack_wait_seconds"] or DEFAULT_ACK_WAIT_SECONDS
            tx.messages.redeliver(r["recipient"], r["seq"], now + wait)
            emit_nowait(tx, "message.redelivered", now, session_id=None, subject_id=r["id"], target=r["recipient"],
                 seq=r["seq"], deliveries=r["deliveries"] + 1, subject=r["subject"], **seed_id(r))
            redelivered += 1
            continue
        tx.messages.dead_letter(r["recipient"], r["seq"], now)
        emit_nowait(tx, "message.dead_lettered", now, session_id=None, subject_id=r["id"], target=r["from_session"],
             recipient=r["recipient"], deliveries=r["deliveries"], subject=r["subject"], **seed_id(r))
        _tell_dead_letter(tx, r, escalation_session, now)
        dead += 1
    return {"redelivered": redelivered, "dead_lettered": dead}


def _tell_dead_letter(tx: Tx, r: Row, escalation_session: str | None, now: float) -> None:
    """The hub's own notice of a dead letter, to its sender and its escalation session.

    The notice is the hub's (from ``coordhub``, high importance), but the sender chose the subject and the
    escalation session: the subject is quoted in the body as the sender's, JSON-escaped, never in the notice's
    own subject, so a sender cannot make text arrive in another agent's context as the hub's words.
    """
    system = Actor(SYSTEM_SENDER, is_admin=True)
    sender, recipient = r["from_session"], r["recipient"]
    text = (f"Message {r['id']} from {sender} to {recipient} was not acknowledged after {r['deliveries']} "
            f"deliveries and is dead-lettered. Its subject, as {sender} wrote it: "
            f"{json.dumps(r['subject'], ensure_ascii=False)}")
    for to in dict.fromkeys(x for x in (sender, r["escalate_to"] or escalation_session) if x):
        whose = "your message" if to == sender else f"a message from {sender}"
        send(tx, system, to_session=to, subject=f"Not acknowledged: {whose} to {recipient}"[:500], body=text,
             project_key=r["project_key"], importance="high", message_type="DEAD_LETTER", reply_to=None,
             thread_id=r["thread_id"] or r["id"], now=now)
